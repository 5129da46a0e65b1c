#!/usr/bin/env node
'use strict';

/*
 * A real OAuth 2.0 authorization server for kiln's tests and demo, built on
 * @node-oauth/oauth2-server with an in-memory model and plain node:http.
 *
 *   node tests/upstream/oauth.js --port 9001 \
 *       --client demo:demo-secret:client_credentials --lifetime 120
 *
 * Flags (all optional, repeatable where noted):
 *   --port N                 0 picks a free port (default 9001)
 *   --host ADDR              loopback only (default 127.0.0.1)
 *   --lifetime S             access-token lifetime in seconds (default 120)
 *   --refresh-lifetime S     refresh-token lifetime (default 14 days)
 *   --rotate true|false      rotate refresh tokens (default true)
 *   --no-rotate              same as --rotate false
 *   --client id:secret:g1,g2 grants: client_credentials,password,refresh_token
 *   --user name:password
 *   --seed-refresh client_id:TOKEN   a refresh token valid for that client
 *   --latency-ms N           delay before answering /token and /login
 *   --verbose                one line per request on stderr
 *
 * Without any --client a demo client demo:demo-secret (all grants) and a
 * user demo:demo exist. When listening it prints {"ready":true,"port":N}.
 *
 * Endpoints: POST /token, GET /protected, POST /introspect, POST /login
 * (json_login style, not OAuth), and for tests GET /_stats, POST /_reset,
 * POST /_control (JSON: lifetime, rotate, latency_ms, refresh_lifetime,
 * clients [{id,secret,grants}], users [{username,password}],
 * seed_refresh [{client_id,refresh_token}], fail_next {status,count},
 * revoke_access_tokens true, revoke_refresh [token]).
 */

const crypto = require('node:crypto');
const http = require('node:http');
const querystring = require('node:querystring');
const OAuth2Server = require('@node-oauth/oauth2-server');

const { Request, Response } = OAuth2Server;

const GRANTS = ['client_credentials', 'password', 'refresh_token'];

/* ---------------------------------------------------------------- state */

const cfg = {
	host: '127.0.0.1',
	port: 9001,
	lifetime: 120,
	refreshLifetime: 14 * 24 * 3600,
	rotate: true,
	latencyMs: 0,
	verbose: false,
	failNext: null,		/* {status, count} */
};

const clients = new Map();	/* id -> {id, secret, grants} */
const users = new Map();	/* username -> password */
const accessTokens = new Map();	/* token -> record */
const refreshTokens = new Map();	/* token -> record */
const revokedRefresh = new Set();

let stats;

function resetStats()
{
	stats = {
		token_requests: 0,
		by_grant: {},
		by_client: {},
		requests: [],
		issued_access_tokens: [],
		issued_refresh_tokens: [],
		seeded_refresh_tokens: [],
		used_refresh_tokens: [],
		reused_revoked_refresh_tokens: 0,
		protected_requests: { ok: 0, rejected: 0 },
		introspect_requests: 0,
		started_at: Date.now(),
	};
}
resetStats();

function addClient(id, secret, grants)
{
	if (!id || typeof id !== 'string')
		throw new Error('client needs an id');
	for (const g of grants) {
		if (!GRANTS.includes(g))
			throw new Error(`unknown grant ${g}`);
	}
	clients.set(id, { id, secret: secret || '', grants: grants.slice() });
}

function addUser(name, password)
{
	if (!name)
		throw new Error('user needs a name');
	users.set(name, password || '');
}

function seedRefresh(clientId, token)
{
	if (!clients.has(clientId))
		throw new Error(`seed-refresh: unknown client ${clientId}`);
	if (!token)
		throw new Error('seed-refresh needs a token');
	refreshTokens.set(token, {
		refreshToken: token,
		refreshTokenExpiresAt: new Date(Date.now() +
		    cfg.refreshLifetime * 1000),
		scope: undefined,
		client: { id: clientId },
		user: { id: `seed:${clientId}` },
	});
	revokedRefresh.delete(token);
	stats.seeded_refresh_tokens.push(token);
}

/* ---------------------------------------------------------------- model */

const model = {
	async getClient(clientId, clientSecret)
	{
		const c = clients.get(clientId);

		if (c === undefined)
			return null;
		/* A public client may refresh without its secret. */
		if (clientSecret !== undefined && clientSecret !== null &&
		    !safeEqual(clientSecret, c.secret))
			return null;
		return {
			id: c.id,
			grants: c.grants.slice(),
			accessTokenLifetime: cfg.lifetime,
			refreshTokenLifetime: cfg.refreshLifetime,
		};
	},

	async getUserFromClient(client)
	{
		return { id: `client:${client.id}` };
	},

	async getUser(username, password)
	{
		if (!users.has(username) || !safeEqual(password,
		    users.get(username)))
			return null;
		return { id: username };
	},

	async saveToken(token, client, user)
	{
		const rec = {
			accessToken: token.accessToken,
			accessTokenExpiresAt: token.accessTokenExpiresAt,
			refreshToken: token.refreshToken,
			refreshTokenExpiresAt: token.refreshTokenExpiresAt,
			scope: token.scope,
			client: { id: client.id },
			user,
		};

		accessTokens.set(rec.accessToken, rec);
		if (rec.refreshToken)
			refreshTokens.set(rec.refreshToken, rec);
		return rec;
	},

	async getAccessToken(accessToken)
	{
		return accessTokens.get(accessToken) || null;
	},

	async getRefreshToken(refreshToken)
	{
		if (revokedRefresh.has(refreshToken)) {
			stats.reused_revoked_refresh_tokens++;
			return null;
		}
		return refreshTokens.get(refreshToken) || null;
	},

	async revokeToken(token)
	{
		if (!refreshTokens.has(token.refreshToken))
			return false;
		refreshTokens.delete(token.refreshToken);
		revokedRefresh.add(token.refreshToken);
		return true;
	},

	async verifyScope()
	{
		return true;
	},
};

function oauthServer()
{
	return new OAuth2Server({
		model,
		accessTokenLifetime: cfg.lifetime,
		refreshTokenLifetime: cfg.refreshLifetime,
		alwaysIssueNewRefreshToken: cfg.rotate,
		requireClientAuthentication: { refresh_token: false },
	});
}

/* ---------------------------------------------------------------- http */

function safeEqual(a, b)
{
	const x = Buffer.from(String(a));
	const y = Buffer.from(String(b));

	return x.length === y.length && crypto.timingSafeEqual(x, y);
}

function readBody(req, limit = 1 << 20)
{
	return new Promise((resolve, reject) => {
		const chunks = [];
		let n = 0;

		req.on('data', (c) => {
			n += c.length;
			if (n > limit) {
				reject(new Error('body too large'));
				req.destroy();
				return;
			}
			chunks.push(c);
		});
		req.on('end', () => resolve(Buffer.concat(chunks)));
		req.on('error', reject);
	});
}

function send(res, status, body, headers = {})
{
	const text = typeof body === 'string' ? body : JSON.stringify(body);

	res.writeHead(status, Object.assign({
		'Content-Type': typeof body === 'string' ?
		    'text/plain' : 'application/json',
		'Content-Length': Buffer.byteLength(text),
	}, headers));
	res.end(text);
}

function sleep(ms)
{
	return new Promise((r) => setTimeout(r, ms));
}

function bump(map, key)
{
	map[key] = (map[key] || 0) + 1;
}

function isForm(req)
{
	return /^application\/x-www-form-urlencoded\b/i.test(
	    req.headers['content-type'] || '');
}

function basicClient(req)
{
	const m = /^Basic\s+(\S+)$/i.exec(req.headers.authorization || '');

	if (m === null)
		return null;
	const s = Buffer.from(m[1], 'base64').toString('utf8');
	const i = s.indexOf(':');
	return i < 0 ? null : s.slice(0, i);
}

function takeFailure()
{
	if (cfg.failNext === null || cfg.failNext.count <= 0)
		return null;
	cfg.failNext.count--;
	const status = cfg.failNext.status;
	if (cfg.failNext.count <= 0)
		cfg.failNext = null;
	return status;
}

async function handleToken(req, res)
{
	const raw = (await readBody(req)).toString('utf8');
	const body = isForm(req) ? querystring.parse(raw) : {};
	const basic = basicClient(req);
	const entry = {
		t: Date.now(),
		grant: typeof body.grant_type === 'string' ?
		    body.grant_type : null,
		client: basic !== null ? basic :
		    (typeof body.client_id === 'string' ? body.client_id : null),
		auth: basic !== null ? 'basic' :
		    (body.client_secret !== undefined ? 'post' : 'none'),
		status: null,
	};

	stats.token_requests++;
	bump(stats.by_grant, String(entry.grant));
	bump(stats.by_client, String(entry.client));
	stats.requests.push(entry);
	if (entry.grant === 'refresh_token' &&
	    typeof body.refresh_token === 'string') {
		entry.refresh_token_in = body.refresh_token;
		stats.used_refresh_tokens.push(body.refresh_token);
	}
	if (body.scope !== undefined)
		entry.scope = body.scope;
	if (body.audience !== undefined)
		entry.audience = body.audience;
	if (body.resource !== undefined)
		entry.resource = body.resource;

	if (cfg.latencyMs > 0)
		await sleep(cfg.latencyMs);

	const forced = takeFailure();
	if (forced !== null) {
		entry.status = forced;
		send(res, forced, { error: 'temporarily_unavailable',
		    error_description: 'injected failure' });
		return;
	}

	const request = new Request({
		method: req.method,
		headers: req.headers,
		query: {},
		body,
	});
	const response = new Response({ headers: {} });

	try {
		const tok = await oauthServer().token(request, response);

		entry.access_token = tok.accessToken;
		entry.expires_at = tok.accessTokenExpiresAt.toISOString();
		stats.issued_access_tokens.push(tok.accessToken);
		if (tok.refreshToken && tok.refreshToken !==
		    entry.refresh_token_in) {
			stats.issued_refresh_tokens.push(tok.refreshToken);
			entry.refresh_token_out = tok.refreshToken;
		}
	} catch (e) {
		/* The library has set the error status and body. */
		entry.error = e.name;
	}
	entry.status = response.status;
	send(res, response.status, response.body, response.headers);
}

async function handleProtected(req, res)
{
	const request = new Request({
		method: req.method,
		headers: req.headers,
		query: {},
		body: {},
	});
	const response = new Response({ headers: {} });

	try {
		const tok = await oauthServer().authenticate(request, response);

		stats.protected_requests.ok++;
		send(res, 200, { ok: true, client: tok.client.id,
		    user: tok.user.id,
		    expires_at: tok.accessTokenExpiresAt.toISOString() });
	} catch (e) {
		stats.protected_requests.rejected++;
		const status = e.code === 400 || e.code === 401 ||
		    e.code === 403 ? 401 : (e.code || 401);
		send(res, status, { ok: false, error: e.name,
		    error_description: e.message },
		    response.headers['www-authenticate'] ?
		    { 'WWW-Authenticate': response.headers['www-authenticate'] } :
		    { 'WWW-Authenticate': 'Bearer realm="Service"' });
	}
}

async function handleIntrospect(req, res)
{
	const raw = (await readBody(req)).toString('utf8');
	const body = isForm(req) ? querystring.parse(raw) : {};
	const token = typeof body.token === 'string' ? body.token : '';
	const now = Date.now();

	stats.introspect_requests++;
	if (token === '') {
		send(res, 400, { error: 'invalid_request',
		    error_description: 'Missing parameter: `token`' });
		return;
	}
	const hint = body.token_type_hint;
	let rec = hint === 'refresh_token' ? null : accessTokens.get(token);
	if (rec && rec.accessTokenExpiresAt.getTime() > now) {
		send(res, 200, {
			active: true,
			token_type: 'Bearer',
			client_id: rec.client.id,
			username: rec.user.id,
			scope: Array.isArray(rec.scope) ? rec.scope.join(' ') :
			    rec.scope,
			exp: Math.floor(rec.accessTokenExpiresAt / 1000),
		});
		return;
	}
	rec = refreshTokens.get(token);
	if (rec && !revokedRefresh.has(token) &&
	    (!rec.refreshTokenExpiresAt ||
	    rec.refreshTokenExpiresAt.getTime() > now)) {
		send(res, 200, {
			active: true,
			token_type: 'refresh_token',
			client_id: rec.client.id,
			username: rec.user.id,
			exp: rec.refreshTokenExpiresAt ?
			    Math.floor(rec.refreshTokenExpiresAt / 1000) :
			    undefined,
		});
		return;
	}
	send(res, 200, { active: false });
}

/* "2025-08-19T17:25:43.555542Z": six fraction digits, never later than
 * the instant the token really expires. */
function isoMicros(ms, micros)
{
	return new Date(ms).toISOString().replace(/\.(\d{3})Z$/,
	    (_, m) => `.${m}${String(micros).padStart(3, '0')}Z`);
}

async function handleLogin(req, res)
{
	const raw = (await readBody(req)).toString('utf8');
	const entry = {
		t: Date.now(),
		grant: 'json_login',
		client: 'json_login',
		auth: 'json',
		status: null,
	};
	let body = null;

	stats.token_requests++;
	bump(stats.by_grant, 'json_login');
	bump(stats.by_client, 'json_login');
	stats.requests.push(entry);

	try {
		body = JSON.parse(raw);
	} catch (e) {
		body = null;
	}
	if (cfg.latencyMs > 0)
		await sleep(cfg.latencyMs);

	const forced = takeFailure();
	if (forced !== null) {
		entry.status = forced;
		send(res, forced, { Success: false, Message: 'injected failure' });
		return;
	}
	if (body === null || typeof body !== 'object' ||
	    typeof body.username !== 'string' ||
	    typeof body.password !== 'string') {
		entry.status = 400;
		send(res, 400, { Success: false,
		    Message: 'username and password required' });
		return;
	}
	entry.user = body.username;
	if (!users.has(body.username) ||
	    !safeEqual(body.password, users.get(body.username))) {
		entry.status = 401;
		send(res, 401, { Success: false, Message: 'Invalid credentials' });
		return;
	}

	const token = crypto.randomBytes(32).toString('base64url');
	const ms = Date.now() + cfg.lifetime * 1000;
	const micros = crypto.randomInt(0, 1000);
	/* The stored expiry is the next millisecond: the text never
	 * promises more than the server grants. */
	const rec = {
		accessToken: token,
		accessTokenExpiresAt: new Date(ms + 1),
		client: { id: 'json_login' },
		user: { id: body.username },
	};
	accessTokens.set(token, rec);
	entry.access_token = token;
	entry.expires_at = isoMicros(ms, micros);
	entry.status = 200;
	stats.issued_access_tokens.push(token);
	send(res, 200, {
		Success: true,
		Message: 'Login successful',
		Data: {
			access_token: token,
			expires: entry.expires_at,
			username: body.username,
		},
	});
}

function publicConfig()
{
	return {
		lifetime: cfg.lifetime,
		refresh_lifetime: cfg.refreshLifetime,
		rotate: cfg.rotate,
		latency_ms: cfg.latencyMs,
		fail_next: cfg.failNext,
		clients: [...clients.values()].map((c) => ({ id: c.id,
		    grants: c.grants })),
		users: [...users.keys()],
	};
}

function applyControl(b)
{
	if (b.lifetime !== undefined) {
		if (!(Number.isInteger(b.lifetime) && b.lifetime > 0))
			throw new Error('lifetime must be a positive integer');
		cfg.lifetime = b.lifetime;
	}
	if (b.refresh_lifetime !== undefined) {
		if (!(Number.isInteger(b.refresh_lifetime) &&
		    b.refresh_lifetime > 0))
			throw new Error('refresh_lifetime: positive integer');
		cfg.refreshLifetime = b.refresh_lifetime;
	}
	if (b.rotate !== undefined)
		cfg.rotate = !!b.rotate;
	if (b.latency_ms !== undefined)
		cfg.latencyMs = Math.max(0, Number(b.latency_ms) || 0);
	for (const c of b.clients || [])
		addClient(c.id, c.secret, c.grants || GRANTS);
	for (const u of b.users || [])
		addUser(u.username, u.password);
	for (const s of b.seed_refresh || [])
		seedRefresh(s.client_id, s.refresh_token);
	if (b.fail_next !== undefined) {
		cfg.failNext = b.fail_next === null ? null : {
			status: Number(b.fail_next.status) || 503,
			count: Number(b.fail_next.count) || 1,
		};
	}
	if (b.revoke_access_tokens)
		accessTokens.clear();
	/* The grant of these refresh tokens is gone (a user revoked it). */
	for (const t of b.revoke_refresh || []) {
		refreshTokens.delete(t);
		revokedRefresh.add(t);
	}
}

async function handle(req, res)
{
	const url = new URL(req.url, 'http://localhost');
	const route = `${req.method} ${url.pathname}`;

	if (cfg.verbose)
		process.stderr.write(`oauth: ${route}\n`);

	switch (route) {
	case 'POST /token':
		return handleToken(req, res);
	case 'GET /protected':
	case 'POST /protected':
		return handleProtected(req, res);
	case 'POST /introspect':
		return handleIntrospect(req, res);
	case 'POST /login':
		return handleLogin(req, res);
	case 'GET /_stats':
		return send(res, 200, stats);
	case 'GET /_config':
		return send(res, 200, publicConfig());
	case 'POST /_reset': {
		const raw = (await readBody(req)).toString('utf8');
		let b = {};
		try {
			b = raw ? JSON.parse(raw) : {};
		} catch (e) {
			return send(res, 400, { error: 'bad json' });
		}
		resetStats();
		if (b.tokens) {
			accessTokens.clear();
			refreshTokens.clear();
			revokedRefresh.clear();
		}
		return send(res, 200, { ok: true });
	}
	case 'POST /_control': {
		const raw = (await readBody(req)).toString('utf8');
		try {
			applyControl(raw ? JSON.parse(raw) : {});
		} catch (e) {
			return send(res, 400, { error: e.message });
		}
		return send(res, 200, publicConfig());
	}
	case 'GET /':
	case 'GET /health':
		return send(res, 200, { ok: true, service: 'kiln-demo-idp' });
	default:
		return send(res, 404, { error: 'not_found' });
	}
}

/* ---------------------------------------------------------------- main */

function parseArgs(argv)
{
	const out = { clients: [], users: [], seeds: [] };

	for (let i = 0; i < argv.length; i++) {
		let a = argv[i];
		let v;
		const eq = a.indexOf('=');

		if (a.startsWith('--') && eq > 0) {
			v = a.slice(eq + 1);
			a = a.slice(0, eq);
		}
		const val = () => {
			if (v !== undefined)
				return v;
			if (i + 1 >= argv.length)
				throw new Error(`${a} needs a value`);
			return argv[++i];
		};
		switch (a) {
		case '--port':
			out.port = Number(val());
			break;
		case '--host':
			out.host = val();
			break;
		case '--lifetime':
			out.lifetime = Number(val());
			break;
		case '--refresh-lifetime':
			out.refreshLifetime = Number(val());
			break;
		case '--rotate':
			out.rotate = !/^(false|0|no|off)$/i.test(val());
			break;
		case '--no-rotate':
			out.rotate = false;
			break;
		case '--client': {
			const [id, secret, grants] = val().split(':');
			out.clients.push({ id, secret,
			    grants: grants ? grants.split(',') : GRANTS });
			break;
		}
		case '--user': {
			const s = val();
			const k = s.indexOf(':');
			out.users.push(k < 0 ? [s, ''] :
			    [s.slice(0, k), s.slice(k + 1)]);
			break;
		}
		case '--seed-refresh': {
			const s = val();
			const k = s.indexOf(':');
			if (k < 0)
				throw new Error('--seed-refresh client_id:TOKEN');
			out.seeds.push([s.slice(0, k), s.slice(k + 1)]);
			break;
		}
		case '--latency-ms':
			out.latencyMs = Number(val());
			break;
		case '--verbose':
			out.verbose = true;
			break;
		case '-h':
		case '--help':
			process.stdout.write(require('node:fs').readFileSync(
			    __filename, 'utf8').split('\n').slice(3, 30)
			    .join('\n') + '\n');
			process.exit(0);
			break;
		default:
			throw new Error(`unknown argument ${a}`);
		}
	}
	return out;
}

function loopback(host)
{
	return host === 'localhost' || host === '::1' ||
	    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function main()
{
	let o;

	try {
		o = parseArgs(process.argv.slice(2));
		if (o.port !== undefined) {
			if (!(Number.isInteger(o.port) && o.port >= 0 &&
			    o.port < 65536))
				throw new Error('--port must be 0..65535');
			cfg.port = o.port;
		}
		if (o.host !== undefined)
			cfg.host = o.host;
		if (!loopback(cfg.host))
			throw new Error('--host must be a loopback address');
		if (o.lifetime !== undefined) {
			if (!(Number.isInteger(o.lifetime) && o.lifetime > 0))
				throw new Error('--lifetime: positive integer');
			cfg.lifetime = o.lifetime;
		}
		if (o.refreshLifetime !== undefined)
			cfg.refreshLifetime = o.refreshLifetime;
		if (o.rotate !== undefined)
			cfg.rotate = o.rotate;
		if (o.latencyMs !== undefined)
			cfg.latencyMs = o.latencyMs;
		cfg.verbose = !!o.verbose;
		if (o.clients.length === 0 && o.users.length === 0) {
			addClient('demo', 'demo-secret', GRANTS);
			addUser('demo', 'demo');
		}
		for (const c of o.clients)
			addClient(c.id, c.secret, c.grants);
		for (const [u, p] of o.users)
			addUser(u, p);
		for (const [c, t] of o.seeds)
			seedRefresh(c, t);
	} catch (e) {
		process.stderr.write(`oauth: ${e.message}\n`);
		process.exit(2);
	}

	const server = http.createServer((req, res) => {
		handle(req, res).catch((e) => {
			if (!res.headersSent)
				send(res, 500, { error: 'server_error',
				    error_description: e.message });
			else
				res.destroy();
		});
	});
	server.keepAliveTimeout = 5000;
	server.on('error', (e) => {
		process.stderr.write(`oauth: ${e.message}\n`);
		process.exit(1);
	});
	server.listen(cfg.port, cfg.host, () => {
		process.stdout.write(JSON.stringify({ ready: true,
		    port: server.address().port }) + '\n');
	});
	const stop = () => {
		server.close();
		server.closeAllConnections();
		process.exit(0);
	};
	process.on('SIGTERM', stop);
	process.on('SIGINT', stop);
}

main();
