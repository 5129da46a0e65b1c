#!/usr/bin/env node
'use strict';

/*
 * oidc-provider 8.8.1 (a certified OpenID/OAuth server) behind HTTPS that
 * asks every client for a certificate, for kiln's mutual TLS tests
 * (RFC 8705).
 *
 *   node tests/upstream/oidc_mtls.js --port 0 --dir CERTDIR \
 *       --client pki:tls_client_auth:CN=kiln-client \
 *       --client self:self_signed_tls_client_auth:/path/client.pem \
 *       --client plain:client_secret_post:SECRET --lifetime 60
 *
 * CERTDIR holds ca.pem (the CA trusted for client certificates) and
 * server.pem / server.key (the HTTPS certificate). A tls_client_auth
 * client is matched by the subject DN of a certificate the CA signed
 * (node's X509Certificate.subject, RDNs joined by newlines); a
 * self_signed_tls_client_auth client by the certificate registered in
 * its jwks (x5c, compared by its SHA-256 thumbprint).
 *
 * It prints {"ready":true,"port":CONTROL,"https_port":N}. CONTROL is a
 * plain HTTP port on loopback: GET /_stats answers every token request
 * the provider decided ({client, method, outcome, error, thumbprint}).
 */

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const path = require('node:path');

function parseArgs(argv)
{
	const o = { port: 0, dir: null, clients: [], lifetime: 60 };
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
		} else if (a === '--client') {
			const [id, method, ...rest] = v.split(':');
			o.clients.push({ id, method, value: rest.join(':') });
			i++;
		} else {
			throw new Error(`unknown flag ${a}`);
		}
	}
	if (!o.dir)
		throw new Error('--dir is required');
	return o;
}

function clientMetadata(c)
{
	const m = {
		client_id: c.id,
		grant_types: ['client_credentials'],
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
	const { default: Provider } = await import('oidc-provider');
	const decisions = [];
	let provider = null;

	const server = https.createServer({
		key: fs.readFileSync(path.join(o.dir, 'server.key')),
		cert: fs.readFileSync(path.join(o.dir, 'server.pem')),
		ca: fs.readFileSync(path.join(o.dir, 'ca.pem')),
		requestCert: true,
		rejectUnauthorized: false,	/* the provider decides */
	}, (req, res) => provider.callback()(req, res));

	await new Promise((r) => server.listen(0, '127.0.0.1', r));
	const httpsPort = server.address().port;

	const peer = (ctx) => {
		const s = ctx.req.socket;
		const x = s.getPeerX509Certificate ?
		    s.getPeerX509Certificate() : undefined;
		return x || undefined;
	};

	provider = new Provider(`https://127.0.0.1:${httpsPort}`, {
		clients: o.clients.map(clientMetadata),
		clientAuthMethods: ['client_secret_post', 'tls_client_auth',
		    'self_signed_tls_client_auth'],
		features: {
			clientCredentials: { enabled: true },
			devInteractions: { enabled: false },
			mTLS: {
				enabled: true,
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
		ttl: { ClientCredentials: o.lifetime },
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

	const control = http.createServer((req, res) => {
		if (req.method === 'GET' && req.url === '/_stats') {
			res.setHeader('Content-Type', 'application/json');
			res.end(JSON.stringify({ decisions }));
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
