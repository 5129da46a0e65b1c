#!/usr/bin/env node
'use strict';

/*
 * oidc-provider 8.8.1 (node_modules) with the device authorization grant
 * (RFC 8628) and its own pages: the device page (/device, confirm or
 * abort), the development login and consent pages (any login name and
 * password; the login name becomes the account's sub), and token
 * introspection. For kiln's device flow tests (connect_device.test.js).
 *
 *   node tests/upstream/oidc_device.js --port 0 --config '{...}'
 *
 * The config (every member optional):
 *   clients    oidc-provider client metadata, as given; grant_types
 *              default to the device code and refresh token grants.
 *   ttl        access-token lifetime in seconds (default 120).
 *   interval   the polling interval the device authorization answer
 *              names (oidc-provider names none: RFC 8628's 5 s apply).
 *
 * When listening it prints {"ready":true,"port":N,"issuer":...}.
 *
 * Test endpoints, beside the provider's own:
 *   GET  /_stats   {token: [...], device_codes: [...]}: every token
 *                  request (at, grant_type, status, error, injected, and
 *                  code: a digest of the device code polled for) and
 *                  the device codes handed out (to look for elsewhere).
 *   POST /_inject  {"answers":["slow_down", ...]}: the next token
 *                  requests get these OAuth errors (HTTP 400) instead of
 *                  the provider's answer; they are recorded as injected.
 */

const crypto = require('node:crypto');
const http = require('node:http');

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

function args()
{
	const a = { port: 0, host: '127.0.0.1', config: '{}' };
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

/* Which flow a poll was for: a digest, never the device code. */
function digest(code)
{
	if (typeof code !== 'string')
		return null;
	return crypto.createHash('sha256').update(code).digest('hex')
	    .slice(0, 12);
}

async function main()
{
	const a = args();
	const cfg = a.config;
	const { default: Provider } = await import('oidc-provider');
	const stats = { token: [], device_codes: [] };
	const inject = [];
	let handler = null;

	const server = http.createServer((req, res) => {
		if (req.url.startsWith('/_'))
			return control(req, res);
		return handler(req, res);
	});
	await new Promise((resolve) => server.listen(a.port, a.host, resolve));
	const port = server.address().port;
	const issuer = `http://${a.host}:${port}`;

	const clients = (cfg.clients || []).map((c) => Object.assign({
		grant_types: [DEVICE_GRANT, 'refresh_token'],
		response_types: [], redirect_uris: [] }, c));
	const provider = new Provider(issuer, {
		clients,
		features: {
			deviceFlow: { enabled: true },
			devInteractions: { enabled: true },
			introspection: { enabled: true },
			revocation: { enabled: true },
		},
		ttl: { AccessToken: cfg.ttl || 120, DeviceCode: 600 },
		findAccount: async (ctx, id) => ({
			accountId: id,
			claims: async () => ({ sub: id }),
		}),
		issueRefreshToken: async (ctx, client) =>
		    client.grantTypeAllowed('refresh_token'),
		cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
	});

	/* Before the provider's routes: injected answers, the record. */
	provider.use(async (ctx, next) => {
		const token = ctx.method === 'POST' && ctx.path === '/token';
		if (token && inject.length > 0) {
			const error = inject.shift();
			stats.token.push({ at: Date.now(), grant_type: null,
			    status: 400, error, injected: true });
			ctx.status = 400;
			ctx.set('Cache-Control', 'no-store');
			ctx.body = { error };
			return;
		}
		await next();
		if (token) {
			stats.token.push({ at: Date.now(),
			    grant_type: ctx.oidc && ctx.oidc.params &&
			    ctx.oidc.params.grant_type, status: ctx.status,
			    error: ctx.body && ctx.body.error,
			    code: digest(ctx.oidc && ctx.oidc.params &&
			    ctx.oidc.params.device_code), injected: false });
		}
		if (ctx.path === '/device/auth' && ctx.body &&
		    ctx.body.device_code) {
			stats.device_codes.push(ctx.body.device_code);
			if (cfg.interval)
				ctx.body.interval = cfg.interval;
		}
	});
	/* The pages load nothing from elsewhere (no network in tests). */
	provider.use(async (ctx, next) => {
		await next();
		if (typeof ctx.body === 'string')
			ctx.body = ctx.body.replace(/@import url\([^)]*\);/g,
			    '');
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
		if (req.method === 'POST' && path === '/_inject') {
			inject.push(...(JSON.parse(body || '{}').answers || []));
			return send(200, { ok: true });
		}
		return send(404, { error: 'not found' });
	}

	process.stdout.write(JSON.stringify({ ready: true, port, issuer }) +
	    '\n');
}

main().catch((e) => {
	process.stderr.write(`oidc_device.js: ${e.stack || e}\n`);
	process.exit(1);
});
