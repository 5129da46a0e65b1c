'use strict';

/*
 * PostgreSQL is the state: a restarted kiln serves the stored token at
 * once without calling the upstream, and what is stored (and logged) holds
 * no token or secret in clear text.
 */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const h = require('../lib');

const pg = h.filePg();

test('restart_serves_stored_token_without_upstream_call',
    { timeout: 90000 }, async () => {
	const secret = h.secret('restart');
	const idp = await h.startOAuth(['--lifetime', '600',
	    '--client', `restart:${secret}:client_credentials`]);
	const db = await h.freshDb(pg, 'restart');
	const k = await h.startKiln({ name: 'restart', databaseUrl: db.url,
	    sources: [{
		name: 'kept',
		kind: 'client_credentials',
		token_url: idp.tokenUrl,
		client_id: 'restart',
		client_secret: secret,
		refresh_buffer: 30,
	    }] });
	const before = h.assertTokenBody(await h.waitToken(k, 'kept'), 'kept');
	const count = (await idp.stats()).token_requests;
	assert.equal(count, 1);

	await k.stop();
	const { spawnedAt } = await k.start({ waitHealth: false });
	/* Poll from the spawn: the first answer must be the stored
	 * token, within a second of the process start. */
	let first = null;
	const answers = [];
	while (Date.now() - spawnedAt < 5000) {
		try {
			const r = await k.currentToken('kept', { timeout: 1000 });
			answers.push(`${r.at - spawnedAt} ms: ${r.status}`);
			first = r;
			break;
		} catch (e) {
			/* not listening yet */
		}
		await h.sleep(10);
	}
	assert.ok(first !== null, `kiln answered within 5 s (${answers})`);
	assert.equal(first.status, 200,
	    `the first answer after the restart is 200 (${first.text})`);
	assert.equal(first.json.token, before.token, 'the same token');
	assert.ok(first.at - spawnedAt <= 1000,
	    `first answer ${first.at - spawnedAt} ms after the spawn`);
	h.assertTokenBody(first, 'kept');

	await k.waitHealthy();
	await h.sleep(2000);
	assert.equal((await idp.stats()).token_requests, count,
	    'no upstream call after the restart');
	assert.equal((await k.currentToken('kept')).json.token, before.token);
});

test('no_clear_text_secret_in_database_or_logs', { timeout: 120000 },
    async () => {
	const s = {
		ccPost: h.secret('leakccpost'),
		ccBasic: h.secret('leakccbasic'),
		ccEnv: h.secret('leakccenv'),
		rtClient: h.secret('leakrtclient'),
		seed: h.secret('leakseed'),
		pwClient: h.secret('leakpwclient'),
		alice: h.secret('leakalice'),
		wrong: h.secret('leakwrongpw'),
		wrongClient: h.secret('leakwrongclient'),
	};
	const idp = await h.startOAuth([
		'--lifetime', '8',
		'--client', `leak-post:${s.ccPost}:client_credentials`,
		'--client', `leak-basic:${s.ccBasic}:client_credentials`,
		'--client', `leak-env:${s.ccEnv}:client_credentials`,
		'--client', `leak-rt:${s.rtClient}:refresh_token`,
		'--client', `leak-pw:${s.pwClient}:password,refresh_token`,
		'--user', `alice:${s.alice}`,
		'--seed-refresh', `leak-rt:${s.seed}`,
	]);
	const db = await h.freshDb(pg, 'no_clear_text');
	const common = { token_url: idp.tokenUrl, refresh_buffer: 3 };
	const sources = [
		Object.assign({ name: 'leak-post', kind: 'client_credentials',
		    client_id: 'leak-post', client_secret: s.ccPost }, common),
		Object.assign({ name: 'leak-basic', kind: 'client_credentials',
		    client_id: 'leak-basic', client_secret: s.ccBasic,
		    auth_method: 'client_secret_basic' }, common),
		Object.assign({ name: 'leak-env', kind: 'client_credentials',
		    client_id: 'leak-env',
		    client_secret: { env: 'KILN_TEST_LEAK_SECRET' } }, common),
		Object.assign({ name: 'leak-rt', kind: 'refresh_token',
		    client_id: 'leak-rt', client_secret: s.rtClient,
		    refresh_token: s.seed }, common),
		Object.assign({ name: 'leak-pw', kind: 'password',
		    client_id: 'leak-pw', client_secret: s.pwClient,
		    username: 'alice', password: s.alice }, common),
		Object.assign({ name: 'leak-login', kind: 'json_login',
		    username: 'alice', password: s.alice,
		    token_path: 'Data.access_token',
		    expires_at_path: 'Data.expires' }, common,
		    { token_url: idp.loginUrl }),
		/* Failing sources: their errors get logged and recorded. */
		Object.assign({ name: 'leak-badpw', kind: 'password',
		    client_id: 'leak-pw', client_secret: s.pwClient,
		    username: 'alice', password: s.wrong }, common),
		Object.assign({ name: 'leak-badclient',
		    kind: 'client_credentials', client_id: 'leak-post',
		    client_secret: s.wrongClient }, common),
	];
	const k = await h.startKiln({ name: 'no_clear_text',
	    databaseUrl: db.url, sources,
	    env: { KILN_TEST_LEAK_SECRET: s.ccEnv } });

	for (const src of sources.slice(0, 6))
		await h.waitToken(k, src.name);
	/* Some refresh cycles (and rotations) for every source. */
	await h.waitFor(async () => {
		const st = await idp.stats();
		return st.requests.filter((q) => q.status === 200).length >= 18;
	}, { timeout: 60000, interval: 500, what: 'three cycles' });
	for (const src of sources.slice(0, 6))
		await h.waitToken(k, src.name);
	/* Use the rejected path and the admin-free endpoints too. */
	const cur = (await k.currentToken('leak-post')).json.token;
	await k.reject('leak-post', h.fingerprint(cur));
	await k.get('/health');
	await h.sleep(500);

	const st = await idp.stats();
	const needles = new Map();
	const add = (what, v) => {
		if (typeof v === 'string' && v.length >= 8)
			needles.set(v, what);
	};
	for (const t of st.issued_access_tokens)
		add('access token', t);
	for (const t of st.issued_refresh_tokens)
		add('refresh token', t);
	for (const t of st.seeded_refresh_tokens)
		add('seed refresh token', t);
	for (const [key, v] of Object.entries(s))
		add(`secret ${key}`, v);
	add('master key', k.masterKey);
	/* client_secret_basic's header value. */
	add('basic credentials', Buffer.from(`leak-basic:${s.ccBasic}`)
	    .toString('base64'));
	assert.ok(st.issued_access_tokens.length >= 18);
	assert.ok(st.issued_refresh_tokens.length >= 3);

	const dump = await db.pg.dump(db.name);
	assert.match(dump, /token_sources/, 'the dump has the schema');
	assert.match(dump, /refresh_events/, 'the dump has the events');
	const logs = k.logs() + require('node:fs').readFileSync(k.logFile,
	    'utf8');
	assert.ok(k.jsonLogs().length > 0, 'kiln wrote JSON logs');

	const leaks = [];
	for (const [needle, what] of needles) {
		if (dump.includes(needle))
			leaks.push(`${what} in the database dump`);
		if (logs.includes(needle))
			leaks.push(`${what} in the logs`);
	}
	assert.deepEqual(leaks, [], `found ${leaks.length} leaks`);
	/* Failures were recorded (so their texts were scanned too). */
	const bad = await h.events(db, 'leak-badpw');
	assert.ok(bad.some((e) => e.outcome === 'failure'));
});
