#!/usr/bin/env node
'use strict';

/*
 * A small fault-injecting token endpoint for kiln's tests.
 *
 *   node tests/upstream/fault.js --port 0 [--mode ok] [--lifetime 30]
 *                                [--hang-ms 20000]
 *
 * POST /token answers according to the current mode:
 *   ok       200 {"access_token":random,"token_type":"Bearer","expires_in":L}
 *   5xx      503 JSON error (or "status" given to /_mode)
 *   hang     never answers; the connection is closed after hang_ms
 *   garbage  200 application/json with broken JSON bytes
 *   html     200 text/html page (a captive portal or a proxy error page)
 *   slow     answers like ok after hang_ms
 *   reuse    answers like ok on a new connection; a request that comes on
 *            a kept-alive connection gets it closed without an answer (a
 *            server or proxy that dropped the idle connection as the
 *            client reused it), so the client must send it again, body
 *            included, on a new one
 *
 * POST /_mode {"mode":..., "lifetime":S, "hang_ms":N, "status":N} switches
 * at run time; GET /_stats gives counts per mode and every request with its
 * arrival time; POST /_reset clears the stats. When listening it prints
 * {"ready":true,"port":N} on stdout.
 */

const crypto = require('node:crypto');
const http = require('node:http');

const MODES = ['ok', '5xx', 'hang', 'garbage', 'html', 'slow', 'reuse'];

const cfg = {
	host: '127.0.0.1',
	port: 0,
	mode: 'ok',
	lifetime: 30,
	hangMs: 20000,
	status: 503,
	verbose: false,
};

let stats;
const pending = new Set();

function resetStats()
{
	stats = {
		token_requests: 0,
		by_mode: {},
		requests: [],
		issued_access_tokens: [],
		mode_changes: [],
		started_at: Date.now(),
	};
}
resetStats();

function send(res, status, body, type)
{
	const buf = Buffer.isBuffer(body) ? body : Buffer.from(
	    typeof body === 'string' ? body : JSON.stringify(body));

	res.writeHead(status, {
		'Content-Type': type || 'application/json',
		'Content-Length': buf.length,
		'Cache-Control': 'no-store',
	});
	res.end(buf);
}

function readBody(req)
{
	return new Promise((resolve, reject) => {
		const chunks = [];
		req.on('data', (c) => chunks.push(c));
		req.on('end', () => resolve(Buffer.concat(chunks)));
		req.on('error', reject);
	});
}

function okToken(res, entry)
{
	const token = crypto.randomBytes(24).toString('hex');

	entry.status = 200;
	entry.access_token = token;
	stats.issued_access_tokens.push(token);
	send(res, 200, { access_token: token, token_type: 'Bearer',
	    expires_in: cfg.lifetime });
}

async function handleToken(req, res)
{
	const mode = cfg.mode;
	const entry = { t: Date.now(), mode, status: null };

	const body = await readBody(req);
	entry.body_bytes = body.length;
	entry.reused = (req.socket.kilnRequests =
	    (req.socket.kilnRequests || 0) + 1) > 1;
	stats.token_requests++;
	stats.by_mode[mode] = (stats.by_mode[mode] || 0) + 1;
	stats.requests.push(entry);

	switch (mode) {
	case 'ok':
		okToken(res, entry);
		break;
	case 'reuse':
		if (entry.reused) {
			entry.status = 'dropped';
			req.socket.destroy();
		} else {
			okToken(res, entry);
		}
		break;
	case '5xx':
		entry.status = cfg.status;
		send(res, cfg.status, { error: 'temporarily_unavailable',
		    error_description: 'upstream is down for maintenance' });
		break;
	case 'garbage':
		entry.status = 200;
		send(res, 200, Buffer.concat([
		    Buffer.from('{"access_token": "'),
		    Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0x22]),
		    Buffer.from('", "expires_in": 3')]));
		break;
	case 'html':
		entry.status = 200;
		send(res, 200, '<!DOCTYPE html>\n<html><head><title>Sign in' +
		    '</title></head><body><h1>Please sign in</h1><form ' +
		    'method="post"><input name="user"></form></body>' +
		    '</html>\n', 'text/html; charset=utf-8');
		break;
	case 'hang':
	case 'slow': {
		const hangMs = cfg.hangMs;
		const timer = setTimeout(() => {
			pending.delete(timer);
			if (mode === 'slow' && !res.destroyed) {
				okToken(res, entry);
			} else {
				entry.status = 'closed';
				entry.closed_after_ms = Date.now() - entry.t;
				req.socket.destroy();
			}
		}, hangMs);
		pending.add(timer);
		res.on('close', () => {
			if (entry.status === null) {
				entry.status = 'client_closed';
				entry.closed_after_ms = Date.now() - entry.t;
				clearTimeout(timer);
				pending.delete(timer);
			}
		});
		break;
	}
	}
}

async function handleMode(req, res)
{
	let b;

	try {
		b = JSON.parse((await readBody(req)).toString('utf8') || '{}');
	} catch (e) {
		return send(res, 400, { error: 'bad json' });
	}
	if (b.mode !== undefined) {
		if (!MODES.includes(b.mode))
			return send(res, 400, { error: `mode: one of ${MODES}` });
		cfg.mode = b.mode;
		stats.mode_changes.push({ t: Date.now(), mode: b.mode });
	}
	if (b.lifetime !== undefined)
		cfg.lifetime = Number(b.lifetime);
	if (b.hang_ms !== undefined)
		cfg.hangMs = Number(b.hang_ms);
	if (b.status !== undefined)
		cfg.status = Number(b.status);
	send(res, 200, { mode: cfg.mode, lifetime: cfg.lifetime,
	    hang_ms: cfg.hangMs, status: cfg.status });
}

async function handle(req, res)
{
	const path = new URL(req.url, 'http://localhost').pathname;
	const route = `${req.method} ${path}`;

	if (cfg.verbose)
		process.stderr.write(`fault[${cfg.mode}]: ${route}\n`);
	switch (route) {
	case 'POST /token':
		return handleToken(req, res);
	case 'POST /_mode':
		return handleMode(req, res);
	case 'GET /_mode':
		return send(res, 200, { mode: cfg.mode, lifetime: cfg.lifetime,
		    hang_ms: cfg.hangMs, status: cfg.status });
	case 'GET /_stats':
		return send(res, 200, Object.assign({ mode: cfg.mode }, stats));
	case 'POST /_reset':
		await readBody(req);
		resetStats();
		return send(res, 200, { ok: true });
	default:
		return send(res, 404, { error: 'not_found' });
	}
}

function main()
{
	const argv = process.argv.slice(2);

	try {
		for (let i = 0; i < argv.length; i++) {
			const a = argv[i];
			const val = () => {
				if (i + 1 >= argv.length)
					throw new Error(`${a} needs a value`);
				return argv[++i];
			};
			switch (a) {
			case '--port': cfg.port = Number(val()); break;
			case '--host': cfg.host = val(); break;
			case '--mode': cfg.mode = val(); break;
			case '--lifetime': cfg.lifetime = Number(val()); break;
			case '--hang-ms': cfg.hangMs = Number(val()); break;
			case '--status': cfg.status = Number(val()); break;
			case '--verbose': cfg.verbose = true; break;
			default: throw new Error(`unknown argument ${a}`);
			}
		}
		if (!MODES.includes(cfg.mode))
			throw new Error(`--mode: one of ${MODES}`);
		if (!(cfg.host === 'localhost' || cfg.host === '::1' ||
		    /^127\./.test(cfg.host)))
			throw new Error('--host must be a loopback address');
	} catch (e) {
		process.stderr.write(`fault: ${e.message}\n`);
		process.exit(2);
	}

	const server = http.createServer((req, res) => {
		handle(req, res).catch((e) => {
			if (!res.headersSent)
				send(res, 500, { error: e.message });
		});
	});
	server.keepAliveTimeout = 5000;
	server.on('error', (e) => {
		process.stderr.write(`fault: ${e.message}\n`);
		process.exit(1);
	});
	server.listen(cfg.port, cfg.host, () => {
		process.stdout.write(JSON.stringify({ ready: true,
		    port: server.address().port }) + '\n');
	});
	const stop = () => {
		for (const t of pending)
			clearTimeout(t);
		server.close();
		server.closeAllConnections();
		process.exit(0);
	};
	process.on('SIGTERM', stop);
	process.on('SIGINT', stop);
}

main();
