'use strict';

/*
 * Every upstream kind of DESIGN "Token sources and upstream kinds" gets a
 * token from a real OAuth 2.0 server, and the token kiln serves is one the
 * upstream accepts.
 */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const h = require('../lib');

const pg = h.filePg();

test('each_kind_obtains_a_token_the_upstream_accepts', { timeout: 90000 },
    async () => {
	const s = {
		ccPost: h.secret('ccpost'),
		ccBasic: h.secret('ccbasic'),
		rt: h.secret('rtclient'),
		pwClient: h.secret('pwclient'),
		alice: h.secret('alicepw'),
		seed: h.secret('seedrt'),
	};
	const idp = await h.startOAuth([
		'--lifetime', '300',
		'--client', `cc-post:${s.ccPost}:client_credentials`,
		'--client', `cc-basic:${s.ccBasic}:client_credentials`,
		'--client', `rt-client:${s.rt}:refresh_token`,
		'--client', `pw-client:${s.pwClient}:password,refresh_token`,
		'--user', `alice:${s.alice}`,
		'--seed-refresh', `rt-client:${s.seed}`,
	]);
	const db = await h.freshDb(pg, 'each_kind');
	const sources = [
		{
			name: 'cc-post',
			kind: 'client_credentials',
			token_url: idp.tokenUrl,
			client_id: 'cc-post',
			client_secret: s.ccPost,
			auth_method: 'client_secret_post',
			scope: 'read write',
		},
		{
			name: 'cc-basic',
			kind: 'client_credentials',
			token_url: idp.tokenUrl,
			client_id: 'cc-basic',
			client_secret: s.ccBasic,
			auth_method: 'client_secret_basic',
		},
		{
			name: 'rt',
			kind: 'refresh_token',
			token_url: idp.tokenUrl,
			client_id: 'rt-client',
			client_secret: s.rt,
			refresh_token: s.seed,
		},
		{
			name: 'pw',
			kind: 'password',
			token_url: idp.tokenUrl,
			client_id: 'pw-client',
			client_secret: s.pwClient,
			username: 'alice',
			password: s.alice,
		},
		{
			name: 'login',
			kind: 'json_login',
			token_url: idp.loginUrl,
			username: 'alice',
			password: s.alice,
			token_path: 'Data.access_token',
			expires_at_path: 'Data.expires',
		},
	];
	const k = await h.startKiln({ name: 'each_kind', databaseUrl: db.url,
	    sources });

	/* source name -> [upstream client id, grant] */
	const expect = {
		'cc-post': ['cc-post', 'client_credentials'],
		'cc-basic': ['cc-basic', 'client_credentials'],
		'rt': ['rt-client', 'refresh_token'],
		'pw': ['pw-client', 'password'],
		'login': ['json_login', 'json_login'],
	};

	for (const [name, [client, grant]] of Object.entries(expect)) {
		const r = await h.waitToken(k, name);
		const b = h.assertTokenBody(r, name);
		if (grant !== 'json_login')
			assert.match(b.token_type, /^bearer$/i, `${name} type`);

		/* The upstream accepts it, for the right client. */
		const p = await idp.protectedStatus(b.token);
		assert.equal(p.status, 200, `${name}: /protected ${p.text}`);
		assert.equal(p.json.client, client, `${name}: client`);
		const i = await idp.introspect(b.token);
		assert.equal(i.active, true, `${name}: introspect`);

		/* It is the token the upstream issued for that request,
		 * and kiln's expiry is no later than the upstream's. */
		const st = await idp.stats();
		const issued = st.requests.filter((q) => q.client === client &&
		    q.grant === grant && q.status === 200);
		assert.ok(issued.length >= 1, `${name}: upstream issued`);
		const mine = issued.find((q) => q.access_token === b.token);
		assert.ok(mine, `${name}: served token was issued by upstream`);
		const upExp = Date.parse(mine.expires_at);
		const kExp = h.parseIso(b.expires_at);
		assert.ok(kExp <= upExp + 1000,
		    `${name}: kiln expiry ${b.expires_at} after upstream's ` +
		    `${mine.expires_at}`);
		assert.ok(kExp >= upExp - 10000,
		    `${name}: kiln expiry ${b.expires_at} far before ` +
		    `upstream's ${mine.expires_at}`);
	}

	const st = await idp.stats();
	const by = (client, grant) => st.requests.filter((q) =>
	    q.client === client && q.grant === grant);

	/* client_secret_post vs client_secret_basic as configured. */
	assert.ok(by('cc-post', 'client_credentials').length >= 1);
	for (const q of by('cc-post', 'client_credentials'))
		assert.equal(q.auth, 'post', 'cc-post uses client_secret_post');
	assert.equal(by('cc-post', 'client_credentials')[0].scope,
	    'read write', 'scope is sent');
	assert.ok(by('cc-basic', 'client_credentials').length >= 1);
	for (const q of by('cc-basic', 'client_credentials'))
		assert.equal(q.auth, 'basic', 'cc-basic uses client_secret_basic');

	/* The refresh_token kind spent the configured refresh token. */
	const rts = by('rt-client', 'refresh_token');
	assert.ok(rts.length >= 1);
	assert.equal(rts[0].refresh_token_in, s.seed);
	assert.equal(st.reused_revoked_refresh_tokens, 0);

	/* json_login: the expiry was read from Data.expires. */
	const login = by('json_login', 'json_login').filter((q) =>
	    q.status === 200);
	assert.ok(login.length >= 1);
	const served = (await k.currentToken('login')).json;
	const up = login.find((q) => q.access_token === served.token);
	assert.ok(up, 'login token issued by upstream');
	assert.ok(Math.abs(h.parseIso(served.expires_at) -
	    Date.parse(up.expires_at)) <= 1000,
	    `json_login expiry ${served.expires_at} is Data.expires ` +
	    `${up.expires_at}`);

	/* No failed upstream call for any correctly configured source. */
	const failed = st.requests.filter((q) => q.status !== 200);
	assert.deepEqual(failed, [], 'no failed upstream requests');
});
