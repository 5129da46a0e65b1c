#!/usr/bin/env node
'use strict';

/*
 * A certified authorization server for kiln's tests: oidc-provider 8.8.1
 * (node_modules) on plain node:http, configured by one JSON document.
 *
 *   node tests/upstream/oidc.js --port 0 --config '{"clients":[...]}'
 *   OIDC_UPSTREAM_CONFIG='{...}' node tests/upstream/oidc.js --port 0
 *
 * The config (every member optional):
 *   clients      oidc-provider client metadata, as given (client_id,
 *                token_endpoint_auth_method, jwks or jwks_uri, grant_types,
 *                client_secret, ...); response_types and redirect_uris
 *                default to [] (token endpoint only).
 *   ttl          access-token lifetime in seconds (default 120).
 *   jwt_bearer   {keys: {client_email: public JWK}} registers the RFC
 *                7523 2.1 grant: the assertion is verified with jose
 *                (signature by the key of its iss, aud = the token URL,
 *                exp no more than 3600 s after iat, kid when the JWK has
 *                one); the answer is an opaque bearer token.
 *   features     merged into oidc-provider's features (e.g. mTLS).
 *
 * When listening it prints {"ready":true,"port":N,"issuer":...}.
 *
 * Test endpoints, beside the provider's own (/token, /jwks, ...):
 *   GET  /_stats       {grants: [...], errors: [...]}: per token request
 *                      the client, the grant, the client authentication
 *                      method the provider enforced and, for JWTs seen
 *                      (client_assertion, assertion), their header and
 *                      claims and the last 16 characters of the signature
 *                      (to look for the assertion elsewhere), never whole.
 *   POST /_reset       forget the stats.
 *   POST /_jwks_stale  {"client_id"}: the provider's cache of that client's
 *                      jwks_uri counts as expired (it keeps one at least
 *                      60 s): what the passing of that minute would do.
 */

const crypto = require('node:crypto');
const http = require('node:http');

const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

function args()
{
	const a = { port: 0, host: '127.0.0.1',
	    config: process.env.OIDC_UPSTREAM_CONFIG || '{}' };
	const v = process.argv.slice(2);
	for (let i = 0; i < v.length; i++) {
		if (v[i] === '--port')
			a.port = Number(v[++i]);
		else if (v[i] === '--host')
			a.host = v[++i];
		else if (v[i] === '--config')
			a.config = v[++i];
		else
			throw new Error(`unknown argument ${v[i]}`);
	}
	a.config = JSON.parse(a.config);
	return a;
}

/* Header and claims of a compact JWT, and a tail of its signature. */
function peek(jwt)
{
	if (typeof jwt !== 'string')
		return null;
	const p = jwt.split('.');
	if (p.length !== 3)
		return { malformed: true };
	try {
		return {
			header: JSON.parse(Buffer.from(p[0], 'base64url')),
			claims: JSON.parse(Buffer.from(p[1], 'base64url')),
			sig_tail: p[2].slice(-16),
		};
	} catch (e) {
		return { malformed: true };
	}
}

async function main()
{
	const a = args();
	const { default: Provider, errors } = await import('oidc-provider');
	const jose = await import('jose');
	const stats = { grants: [], errors: [] };
	let handler = null;

	const server = http.createServer((req, res) => {
		if (req.url.startsWith('/_'))
			return control(req, res);
		return handler(req, res);
	});
	await new Promise((resolve) => server.listen(a.port, a.host, resolve));
	const port = server.address().port;
	const issuer = `http://${a.host}:${port}`;
	const tokenUrl = `${issuer}/token`;

	const cfg = a.config;
	const clients = (cfg.clients || []).map((c) => Object.assign({
		response_types: [], redirect_uris: [] }, c));
	const provider = new Provider(issuer, {
		clients,
		features: Object.assign({
			clientCredentials: { enabled: true },
			devInteractions: { enabled: false },
		}, cfg.features || {}),
		ttl: { ClientCredentials: cfg.ttl || 120 },
		/* Every token request is about the client, never a user. */
		findAccount: async () => undefined,
		cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
	});

	if (cfg.jwt_bearer)
		registerJwtBearer(provider, cfg.jwt_bearer, tokenUrl, jose,
		    errors, stats);

	provider.on('grant.success', (ctx) => {
		const c = ctx.oidc.client;
		stats.grants.push({
			at: Date.now(),
			client_id: c && c.clientId,
			auth_method: c && c.clientAuthMethod,
			grant_type: ctx.oidc.params.grant_type,
			client_assertion: peek(ctx.oidc.params.client_assertion),
			assertion: peek(ctx.oidc.params.assertion),
		});
	});
	provider.on('grant.error', (ctx, err) => {
		stats.errors.push({
			at: Date.now(),
			client_id: ctx.oidc && ctx.oidc.client &&
			    ctx.oidc.client.clientId,
			grant_type: ctx.oidc && ctx.oidc.params &&
			    ctx.oidc.params.grant_type,
			error: err.error,
			description: err.error_description,
		});
	});

	handler = provider.callback();

	async function control(req, res)
	{
		let body = '';
		for await (const chunk of req)
			body += chunk;
		const send = (status, obj) => {
			res.writeHead(status,
			    { 'Content-Type': 'application/json' });
			res.end(JSON.stringify(obj));
		};
		const path = req.url.split('?')[0];
		if (req.method === 'GET' && path === '/_stats')
			return send(200, stats);
		if (req.method === 'POST' && path === '/_reset') {
			stats.grants.length = 0;
			stats.errors.length = 0;
			return send(200, { ok: true });
		}
		if (req.method === 'POST' && path === '/_jwks_stale') {
			const id = JSON.parse(body || '{}').client_id;
			const client = await provider.Client.find(id);
			if (!client)
				return send(404, { error: 'no such client' });
			client.asymmetricKeyStore.freshUntil = 0;
			return send(200, { ok: true });
		}
		return send(404, { error: 'not found' });
	}

	process.stdout.write(JSON.stringify({ ready: true, port, issuer }) +
	    '\n');
}

/*
 * RFC 7523 2.1 for the clients that list the grant: the assertion must
 * be signed by the key of its issuer, for this token URL, and live an
 * hour at most.
 */
function registerJwtBearer(provider, jb, tokenUrl, jose, errors, stats)
{
	const keys = new Map();
	for (const [iss, jwk] of Object.entries(jb.keys || {}))
		keys.set(iss, jwk);

	provider.registerGrantType(JWT_BEARER, async (ctx) => {
		const assertion = ctx.oidc.params.assertion;
		const seen = peek(assertion);
		const fail = (why) => {
			stats.errors.push({ at: Date.now(), grant_type:
			    JWT_BEARER, error: 'invalid_grant',
			    description: why });
			throw new errors.InvalidGrant(why);
		};
		if (!seen || seen.malformed)
			fail('assertion is not a JWT');
		const jwk = keys.get(seen.claims.iss);
		if (!jwk)
			fail('unknown issuer');
		if (jwk.kid && seen.header.kid !== jwk.kid)
			fail('kid is not the key id of the issuer');
		let claims;
		try {
			const key = await jose.importJWK(jwk, jwk.alg || 'RS256');
			({ payload: claims } = await jose.jwtVerify(assertion,
			    key, { audience: tokenUrl, issuer: seen.claims.iss,
			    algorithms: [jwk.alg || 'RS256'],
			    requiredClaims: ['exp', 'iat'] }));
		} catch (e) {
			fail(`assertion refused: ${e.code || e.message}`);
		}
		if (claims.exp - claims.iat > 3600)
			fail('assertion lives longer than an hour');

		ctx.body = {
			access_token: crypto.randomBytes(24).toString('base64url'),
			token_type: 'Bearer',
			expires_in: 3600,
			scope: claims.scope,
		};
		ctx.set('Cache-Control', 'no-store');
	}, ['assertion', 'scope']);
}

main().catch((e) => {
	process.stderr.write(`oidc.js: ${e.stack || e}\n`);
	process.exit(1);
});
