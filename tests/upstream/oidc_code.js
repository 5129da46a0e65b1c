#!/usr/bin/env node
'use strict';

/*
 * oidc-provider 8.8.1 as the authorization server of a person's consent
 * (authorization code with PKCE), with its own login and consent pages.
 *
 *   node tests/upstream/oidc_code.js --port 0 --config '{...}'
 *
 * The config:
 *   clients   oidc-provider client metadata (client_id, client_secret,
 *             redirect_uris, token_endpoint_auth_method, ...); grant
 *             types default to authorization_code and refresh_token.
 *   ttl       access-token lifetime in seconds (default 60).
 *   password  the password every account signs in with.
 *
 * PKCE (S256) is required, every code grant gets a refresh token, which
 * rotates on use; revocation (/token/revocation) and introspection
 * (/token/introspection) are on.
 *
 * Pages (the browser's): GET /interaction/:uid shows the login form
 * (login, password) or the consent (Allow, Deny); POST .../login,
 * POST .../confirm, POST .../abort (access_denied).
 *
 * Test endpoints:
 *   GET  /_stats         {grants: [...], errors: [...], revocations: n (calls),
 *                        issued: {codes, verifiers, access, refresh}}:
 *                        per token request its grant type and the
 *                        account whose refresh token it presented (from
 *                        the provider's records); every code, PKCE
 *                        verifier and token it saw, for the tests to
 *                        look for them where they must not be.
 *   POST /_revoke_grant  {"account"}: every grant of that account and
 *                        its tokens are gone (the person revoked kiln's
 *                        access at the provider).
 *
 * When listening it prints {"ready":true,"port":N,"issuer":...}.
 */

const crypto = require('node:crypto');
const http = require('node:http');

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

function esc(s)
{
	return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;',
	    '<': '&lt;', '>': '&gt;', '"': '&quot;', '\'': '&#39;' })[c]);
}

function page(res, title, body)
{
	res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8',
	    'Cache-Control': 'no-store' });
	res.end(`<!doctype html><html><head><title>${esc(title)}</title>` +
	    `</head><body><h1>${esc(title)}</h1>${body}</body></html>`);
}

async function form(req)
{
	let body = '';
	for await (const chunk of req)
		body += chunk;
	return Object.fromEntries(new URLSearchParams(body));
}

async function main()
{
	const a = args();
	const { default: Provider } = await import('oidc-provider');
	const cfg = a.config;
	const password = cfg.password || 'correct horse';
	const stats = { grants: [], errors: [], revocations: 0,
	    issued: { codes: [], verifiers: [], access: [], refresh: [] } };
	/* refresh token jti -> account, to say whose a request presents */
	const refreshOwner = new Map();
	const grantsOf = new Map();
	let handler = null;

	const server = http.createServer((req, res) => {
		route(req, res).catch((e) => {
			res.writeHead(500, { 'Content-Type': 'text/plain' });
			res.end(String(e && e.message));
		});
	});
	await new Promise((resolve) => server.listen(a.port, a.host, resolve));
	const port = server.address().port;
	const issuer = `http://${a.host}:${port}`;

	const clients = (cfg.clients || []).map((c) => Object.assign({
		grant_types: ['authorization_code', 'refresh_token'],
		response_types: ['code'] }, c));
	const provider = new Provider(issuer, {
		clients,
		features: {
			devInteractions: { enabled: false },
			revocation: { enabled: true },
			introspection: { enabled: true },
		},
		pkce: { methods: ['S256'], required: () => true },
		issueRefreshToken: async (ctx, client) =>
		    client.grantTypeAllowed('refresh_token'),
		expiresWithSession: async () => false,
		rotateRefreshToken: true,
		ttl: { AccessToken: cfg.ttl || 60, RefreshToken: 86400,
		    Grant: 86400, Session: 86400, Interaction: 600,
		    AuthorizationCode: 60 },
		findAccount: async (ctx, id) => ({ accountId: id,
		    claims: async () => ({ sub: id }) }),
		cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
	});

	/* An opaque token's value is its jti. */
	provider.on('refresh_token.saved', (t) => {
		refreshOwner.set(t.jti, t.accountId);
		stats.issued.refresh.push(t.jti);
	});
	provider.on('access_token.saved', (t) =>
	    stats.issued.access.push(t.jti));
	provider.on('authorization_code.saved', (t) =>
	    stats.issued.codes.push(t.jti));
	provider.on('grant.success', (ctx) => {
		const rt = ctx.oidc.entities && ctx.oidc.entities.RefreshToken;
		const code = ctx.oidc.entities &&
		    ctx.oidc.entities.AuthorizationCode;
		if (ctx.oidc.params.code_verifier)
			stats.issued.verifiers.push(ctx.oidc.params.code_verifier);
		stats.grants.push({ at: Date.now(),
		    grant_type: ctx.oidc.params.grant_type,
		    account: (rt && rt.accountId) || (code && code.accountId),
		    pkce: !!ctx.oidc.params.code_verifier });
	});
	provider.on('grant.error', (ctx, err) => {
		const p = (ctx.oidc && ctx.oidc.params) || {};
		stats.errors.push({ at: Date.now(), grant_type: p.grant_type,
		    account: p.refresh_token ?
		    refreshOwner.get(p.refresh_token) || null : null,
		    error: err.error });
	});

	handler = provider.callback();

	async function route(req, res)
	{
		const url = new URL(req.url, issuer);
		const m = url.pathname.match(
		    /^\/interaction\/([^/]+)(\/(login|confirm|abort))?$/);
		if (url.pathname.startsWith('/_'))
			return control(req, res, url.pathname);
		if (url.pathname === '/token/revocation')
			stats.revocations++;
		if (!m)
			return handler(req, res);
		if (req.method === 'GET' && !m[2])
			return interaction(req, res, m[1]);
		if (req.method === 'POST' && m[3] === 'login')
			return login(req, res);
		if (req.method === 'POST' && m[3] === 'confirm')
			return confirm(req, res);
		if (req.method === 'POST' && m[3] === 'abort') {
			return provider.interactionFinished(req, res, {
				error: 'access_denied',
				error_description: 'the person said no',
			}, { mergeWithLastSubmission: false });
		}
		res.writeHead(404);
		res.end();
	}

	async function interaction(req, res, uid)
	{
		const d = await provider.interactionDetails(req, res);
		const deny = `<form method="post" action="/interaction/` +
		    `${esc(uid)}/abort"><button id="deny">Deny</button></form>`;
		if (d.prompt.name === 'login') {
			return page(res, 'Sign in', `<form method="post" ` +
			    `action="/interaction/${esc(uid)}/login">` +
			    '<input name="login" id="login">' +
			    '<input name="password" id="password" ' +
			    'type="password"><button id="signin">Sign in' +
			    `</button></form>${deny}`);
		}
		return page(res, `Allow ${d.params.client_id}?`,
		    `<p>${esc(d.session.accountId)}, allow access?</p>` +
		    `<form method="post" action="/interaction/${esc(uid)}` +
		    '/confirm"><button id="allow">Allow</button></form>' +
		    deny);
	}

	async function login(req, res)
	{
		const f = await form(req);
		const d = await provider.interactionDetails(req, res);
		if (!f.login || f.password !== password) {
			return page(res, 'Sign in', '<p id="wrong">Wrong ' +
			    `password</p><a href="/interaction/${esc(d.uid)}">` +
			    'again</a>');
		}
		return provider.interactionFinished(req, res,
		    { login: { accountId: f.login } },
		    { mergeWithLastSubmission: false });
	}

	async function confirm(req, res)
	{
		const d = await provider.interactionDetails(req, res);
		const { prompt: { details }, params, session: { accountId } } = d;
		const grant = d.grantId ? await provider.Grant.find(d.grantId) :
		    new provider.Grant({ accountId, clientId: params.client_id });
		if (details.missingOIDCScope)
			grant.addOIDCScope(details.missingOIDCScope.join(' '));
		if (details.missingOIDCClaims)
			grant.addOIDCClaims(details.missingOIDCClaims);
		for (const [ind, sc] of Object.entries(
		    details.missingResourceScopes || {}))
			grant.addResourceScope(ind, sc.join(' '));
		const grantId = await grant.save();
		if (!grantsOf.has(accountId))
			grantsOf.set(accountId, new Set());
		grantsOf.get(accountId).add(grantId);
		return provider.interactionFinished(req, res,
		    { consent: d.grantId ? {} : { grantId } },
		    { mergeWithLastSubmission: true });
	}

	async function control(req, res, path)
	{
		let raw = '';
		for await (const chunk of req)
			raw += chunk;
		const send = (status, obj) => {
			res.writeHead(status,
			    { 'Content-Type': 'application/json' });
			res.end(JSON.stringify(obj));
		};
		if (req.method === 'GET' && path === '/_stats')
			return send(200, stats);
		if (req.method === 'POST' && path === '/_revoke_grant') {
			const account = JSON.parse(raw || '{}').account;
			const ids = [...(grantsOf.get(account) || [])];
			for (const g of ids) {
				await Promise.all([
				    provider.AccessToken.revokeByGrantId(g),
				    provider.RefreshToken.revokeByGrantId(g),
				    provider.AuthorizationCode.revokeByGrantId(g),
				    provider.Grant.adapter.destroy(g)]);
			}
			grantsOf.delete(account);
			return send(200, { revoked: ids.length });
		}
		return send(404, { error: 'not found' });
	}

	process.stdout.write(JSON.stringify({ ready: true, port, issuer }) +
	    '\n');
}

main().catch((e) => {
	process.stderr.write(`oidc_code.js: ${e.stack || e}\n`);
	process.exit(1);
});
