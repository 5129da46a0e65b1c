#!/usr/bin/env node
'use strict';

/*
 * oidc-provider 8.8.1 (a certified OpenID/OAuth server) behind HTTPS that
 * asks every client for a certificate, for kiln's mutual TLS tests
 * (RFC 8705); with --plain on HTTP instead (no --dir, no mTLS); with
 * --exchange it grants token exchange (RFC 8693) too.
 *
 *   node tests/upstream/oidc_mtls.js --port 0 --dir CERTDIR \
 *       --client pki:tls_client_auth:CN=kiln-client \
 *       --client self:self_signed_tls_client_auth:/path/client.pem \
 *       --client plain:client_secret_post:SECRET --lifetime 60 \
 *       [--ttl plain:5] [--plain] [--exchange]
 *
 * CERTDIR holds ca.pem (the CA trusted for client certificates) and
 * server.pem / server.key (the HTTPS certificate). A tls_client_auth
 * client is matched by the subject DN of a certificate the CA signed
 * (node's X509Certificate.subject, RDNs joined by newlines); a
 * self_signed_tls_client_auth client by the certificate registered in
 * its jwks (x5c, compared by its SHA-256 thumbprint).
 *
 * --exchange registers urn:ietf:params:oauth:grant-type:token-exchange
 * with the provider's registerGrantType, for every client: the
 * subject_token must be an access token this provider issued and that
 * is still valid (looked up in its own store, as introspection would);
 * the answer is a new access token of the exchanging client, with
 * issued_token_type. Every exchange is recorded.
 *
 * It prints {"ready":true,"port":CONTROL,"https_port":N}. CONTROL is a
 * plain HTTP port on loopback: GET /_stats answers every token request
 * the provider decided ({client, method, outcome, error, thumbprint})
 * and every exchange ({client, subject, actor, audience, issued, at};
 * tokens by SHA-256 prefix).
 */

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const path = require('node:path');

function parseArgs(argv)
{
	const o = { port: 0, dir: null, clients: [], lifetime: 60,
	    plain: false, exchange: false, ttl: {} };
	for (let i = 2; i < argv.length; i++) {
		const a = argv[i];
		const v = argv[i + 1];
		if (a === '--port') {
			o.port = Number(v);
			i++;
		} else if (a === '--dir') {
			o.dir = v;
			i++;
		} else if (a === '--lifetime') {
			o.lifetime = Number(v);
			i++;
		} else if (a === '--ttl') {
			const [id, secs] = v.split(':');
			o.ttl[id] = Number(secs);
			i++;
		} else if (a === '--plain') {
			o.plain = true;
		} else if (a === '--exchange') {
			o.exchange = true;
		} else if (a === '--client') {
			const [id, method, ...rest] = v.split(':');
			o.clients.push({ id, method, value: rest.join(':') });
			i++;
		} else {
			throw new Error(`unknown flag ${a}`);
		}
	}
	if (!o.dir && !o.plain)
		throw new Error('--dir is required');
	return o;
}

const TX = 'urn:ietf:params:oauth:grant-type:token-exchange';
const TX_AT = 'urn:ietf:params:oauth:token-type:access_token';

function fp(s)
{
	return crypto.createHash('sha256').update(String(s)).digest('hex')
	    .slice(0, 12);
}

function clientMetadata(c, exchange)
{
	const m = {
		client_id: c.id,
		grant_types: exchange ? ['client_credentials', TX] :
		    ['client_credentials'],
		response_types: [],
		redirect_uris: [],
		token_endpoint_auth_method: c.method,
	};
	if (c.method === 'tls_client_auth') {
		m.tls_client_auth_subject_dn = c.value;
	} else if (c.method === 'self_signed_tls_client_auth') {
		const pem = fs.readFileSync(c.value, 'utf8');
		const x = new crypto.X509Certificate(pem);
		const jwk = x.publicKey.export({ format: 'jwk' });
		jwk.x5c = [x.raw.toString('base64')];
		m.jwks = { keys: [jwk] };
	} else {
		m.client_secret = c.value;
	}
	return m;
}

async function main()
{
	const o = parseArgs(process.argv);
	const { default: Provider, errors } = await import('oidc-provider');
	const decisions = [];
	const exchanges = [];
	let provider = null;

	const serve = (req, res) => provider.callback()(req, res);
	const server = o.plain ? http.createServer(serve) : https.createServer({
		key: fs.readFileSync(path.join(o.dir, 'server.key')),
		cert: fs.readFileSync(path.join(o.dir, 'server.pem')),
		ca: fs.readFileSync(path.join(o.dir, 'ca.pem')),
		requestCert: true,
		rejectUnauthorized: false,	/* the provider decides */
	}, serve);

	await new Promise((r) => server.listen(0, '127.0.0.1', r));
	const httpsPort = server.address().port;
	const scheme = o.plain ? 'http' : 'https';

	const peer = (ctx) => {
		const s = ctx.req.socket;
		const x = !o.plain && s.getPeerX509Certificate ?
		    s.getPeerX509Certificate() : undefined;
		return x || undefined;
	};

	provider = new Provider(`${scheme}://127.0.0.1:${httpsPort}`, {
		clients: o.clients.map((c) => clientMetadata(c, o.exchange)),
		clientAuthMethods: o.plain ? ['client_secret_post'] :
		    ['client_secret_post', 'tls_client_auth',
		    'self_signed_tls_client_auth'],
		features: {
			clientCredentials: { enabled: true },
			devInteractions: { enabled: false },
			mTLS: {
				enabled: !o.plain,
				tlsClientAuth: true,
				selfSignedTlsClientAuth: true,
				getCertificate: peer,
				certificateAuthorized: (ctx) =>
				    ctx.req.socket.authorized === true,
				certificateSubjectMatches: (ctx, prop, want) =>
				    prop === 'tls_client_auth_subject_dn' &&
				    peer(ctx) !== undefined &&
				    peer(ctx).subject === want,
			},
		},
		ttl: { ClientCredentials: (ctx, token, client) =>
		    o.ttl[client.clientId] || o.lifetime },
	});
	provider.proxy = false;

	const record = (ctx, outcome, err) => {
		const x = peer(ctx);
		decisions.push({
			client: ctx.oidc && ctx.oidc.client ?
			    ctx.oidc.client.clientId : null,
			method: ctx.oidc && ctx.oidc.client ?
			    ctx.oidc.client.tokenEndpointAuthMethod : null,
			outcome,
			error: err ? `${err.error || err.message}: ` +
			    `${err.error_detail || err.error_description || ''}` :
			    null,
			thumbprint: x ? crypto.createHash('sha256')
			    .update(x.raw).digest('base64url') : null,
			at: Date.now(),
		});
	};
	provider.on('grant.success', (ctx) => record(ctx, 'success'));
	provider.on('grant.error', (ctx, err) => record(ctx, 'error', err));

	/* A token this provider issued, still valid. */
	const valid = async (value) => {
		const t = await provider.ClientCredentials.find(value);
		return t && !t.isExpired ? t : null;
	};

	if (o.exchange) {
		provider.registerGrantType(TX, async (ctx, next) => {
			const p = ctx.oidc.params;
			const subject = await valid(p.subject_token);
			if (!subject || p.subject_token_type !== TX_AT) {
				throw new errors.InvalidGrant('subject_token ' +
				    'is not a valid access token of this issuer');
			}
			let actor = null;
			if (p.actor_token) {
				actor = await valid(p.actor_token);
				if (!actor)
					throw new errors.InvalidGrant(
					    'actor_token is not valid');
			}
			const token = new provider.ClientCredentials({
				client: ctx.oidc.client,
				scope: p.scope || undefined,
			});
			const value = await token.save();
			exchanges.push({
				client: ctx.oidc.client.clientId,
				subject: fp(p.subject_token),
				subject_client: subject.clientId,
				actor: p.actor_token ? fp(p.actor_token) : null,
				audience: p.audience || null,
				requested: p.requested_token_type || null,
				issued: fp(value),
				at: Date.now(),
			});
			ctx.body = {
				access_token: value,
				issued_token_type: TX_AT,
				token_type: 'Bearer',
				expires_in: token.expiration,
			};
			await next();
		}, ['subject_token', 'subject_token_type', 'actor_token',
		    'actor_token_type', 'audience', 'resource', 'scope',
		    'requested_token_type']);
	}

	const control = http.createServer((req, res) => {
		if (req.method === 'GET' && req.url === '/_stats') {
			res.setHeader('Content-Type', 'application/json');
			res.end(JSON.stringify({ decisions, exchanges }));
			return;
		}

		res.statusCode = 404;
		res.end('{}');
	});
	await new Promise((r) => control.listen(o.port, '127.0.0.1', r));

	process.stdout.write(JSON.stringify({ ready: true,
	    port: control.address().port, https_port: httpsPort }) + '\n');

	const stop = () => {
		server.close();
		control.close();
		process.exit(0);
	};
	process.on('SIGTERM', stop);
	process.on('SIGINT', stop);
}

main().catch((e) => {
	process.stderr.write(`${e.stack || e}\n`);
	process.exit(1);
});
