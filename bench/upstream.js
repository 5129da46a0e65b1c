#!/usr/bin/env node
'use strict';

/*
 * A fast OAuth 2.0 client_credentials token endpoint for the benchmarks:
 * no storage, no library, one answer per POST /token.
 *
 *   node bench/upstream.js --port 0 --client demo:demo-secret --lifetime 3600
 *
 * POST /token[?lifetime=S]  grant_type=client_credentials, credentials in
 *                           the form (client_secret_post) or Basic auth;
 *                           answers a 64-hex access token that expires in
 *                           S seconds (the query wins over --lifetime).
 * GET  /_stats              {"token_requests":N,"rejected":N}
 *
 * Prints {"ready":true,"port":N} when listening (loopback only).
 */

const crypto = require('node:crypto');
const http = require('node:http');
const querystring = require('node:querystring');

const cfg = { host: '127.0.0.1', port: 0, lifetime: 3600, clients: new Map() };
const stats = { token_requests: 0, rejected: 0 };

const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
	const a = argv[i];
	const v = argv[i + 1];
	if (a === '--port') {
		cfg.port = Number(v); i++;
	} else if (a === '--host') {
		cfg.host = v; i++;
	} else if (a === '--lifetime') {
		cfg.lifetime = Number(v); i++;
	} else if (a === '--client') {
		const [id, secret] = v.split(':');
		cfg.clients.set(id, secret || '');
		i++;
	} else {
		console.error(`upstream: unknown argument ${a}`);
		process.exit(2);
	}
}
if (!/^(127\.|::1$|localhost$)/.test(cfg.host)) {
	console.error('upstream: loopback addresses only');
	process.exit(2);
}
if (cfg.clients.size === 0)
	cfg.clients.set('demo', 'demo-secret');

function send(res, status, obj)
{
	const body = JSON.stringify(obj);
	res.writeHead(status, {
		'Content-Type': 'application/json',
		'Content-Length': Buffer.byteLength(body),
		'Cache-Control': 'no-store',
	});
	res.end(body);
}

function token(req, res, body, query)
{
	const form = querystring.parse(body);
	let id = form.client_id;
	let secret = form.client_secret;
	const auth = req.headers.authorization;

	if (auth && auth.startsWith('Basic ')) {
		const dec = Buffer.from(auth.slice(6), 'base64').toString();
		const c = dec.indexOf(':');
		id = decodeURIComponent(dec.slice(0, c));
		secret = decodeURIComponent(dec.slice(c + 1));
	}
	if (form.grant_type !== 'client_credentials') {
		stats.rejected++;
		send(res, 400, { error: 'unsupported_grant_type' });
		return;
	}
	if (!cfg.clients.has(id) || cfg.clients.get(id) !== secret) {
		stats.rejected++;
		send(res, 401, { error: 'invalid_client' });
		return;
	}
	const q = querystring.parse(query || '');
	const lifetime = q.lifetime !== undefined ? Number(q.lifetime) :
	    cfg.lifetime;
	stats.token_requests++;
	send(res, 200, {
		access_token: crypto.randomBytes(32).toString('hex'),
		token_type: 'Bearer',
		expires_in: lifetime,
	});
}

const server = http.createServer((req, res) => {
	const [path, query] = req.url.split('?', 2);
	if (req.method === 'GET' && path === '/_stats') {
		send(res, 200, stats);
		return;
	}
	if (req.method !== 'POST' || path !== '/token') {
		send(res, 404, { error: 'not_found' });
		return;
	}
	const chunks = [];
	req.on('data', (d) => chunks.push(d));
	req.on('end', () => token(req, res, Buffer.concat(chunks).toString(),
	    query));
});
server.keepAliveTimeout = 60000;
server.listen(cfg.port, cfg.host, () => {
	console.log(JSON.stringify({ ready: true,
	    port: server.address().port }));
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
