'use strict';

/*
 * The operator's subcommands (issue 16): kiln version, keygen, check,
 * migrate and reseal run and exit before the server starts, each with a
 * clear exit status and message, on success and on failure (a bad
 * variable, an unreachable database, a wrong master key).
 */

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { test } = require('node:test');

const h = require('../lib');
const procs = require('../lib/procs');

const pg = h.filePg();
const MIGRATIONS = fs.readdirSync(path.join(procs.REPO, 'migrations'))
    .filter((f) => /^\d{3}_.*\.sql$/.test(f)).length;

/* Run ./kiln with args; resolve { code, stdout, stderr, ms }. */
function kiln(args, env, { timeout = 30000 } = {})
{
	return new Promise((resolve, reject) => {
		const t0 = Date.now();
		const c = spawn(path.join(procs.REPO, 'kiln'), args, {
			cwd: procs.REPO, env: Object.assign(h.cleanEnv(), env),
			stdio: ['ignore', 'pipe', 'pipe'],
		});
		let stdout = '';
		let stderr = '';
		c.stdout.on('data', (d) => (stdout += d));
		c.stderr.on('data', (d) => (stderr += d));
		const timer = setTimeout(() => {
			c.kill('SIGKILL');
			reject(new Error(`kiln ${args.join(' ')}: no exit ` +
			    `within ${timeout} ms\n${stdout}${stderr}`));
		}, timeout);
		c.on('error', reject);
		c.on('exit', (code) => {
			clearTimeout(timer);
			resolve({ code, stdout, stderr, ms: Date.now() - t0 });
		});
	});
}

function key()
{
	return crypto.randomBytes(32).toString('base64');
}

test('version_and_keygen', async () => {
	const v = await kiln(['version'], {});
	assert.equal(v.code, 0, v.stderr);
	assert.match(v.stdout, /^kiln \d+\.\d+\.\d+\n$/);

	const a = await kiln(['keygen'], {});
	const b = await kiln(['keygen'], {});
	assert.equal(a.code, 0, a.stderr);
	assert.match(a.stdout, /^[A-Za-z0-9+/]{43}=\n$/);
	assert.equal(Buffer.from(a.stdout.trim(), 'base64').length, 32);
	assert.notEqual(a.stdout, b.stdout, 'two keys differ');

	/* Not a subcommand: the usage, status 1. */
	const u = await kiln(['bogus'], {});
	assert.equal(u.code, 1);
	assert.match(u.stderr, /usage: kiln/);
	const x = await kiln(['check', 'extra'], {});
	assert.equal(x.code, 1);
	assert.match(x.stderr, /kiln check: unexpected arguments/);
});

test('check_and_migrate_bad_variable_and_unreachable_database',
    { timeout: 60000 }, async () => {
	const port = await h.freePort();
	const unreachable = `postgresql://kiln@127.0.0.1:${port}/nowhere`;

	for (const cmd of ['check', 'migrate', 'reseal']) {
		let r = await kiln([cmd], { KILN_MASTER_KEY: key() });
		assert.equal(r.code, 1, `${cmd}: ${r.stdout}`);
		assert.match(r.stderr, new RegExp(`^kiln ${cmd}: ` +
		    'KILN_DATABASE_URL: not set', 'm'));

		r = await kiln([cmd], { KILN_DATABASE_URL: unreachable,
		    KILN_MASTER_KEY: key(), KILN_LEASE_SECONDS: 'soon' });
		assert.equal(r.code, 1);
		assert.match(r.stderr, /KILN_LEASE_SECONDS: expected an integer/);

		r = await kiln([cmd], { KILN_DATABASE_URL: unreachable,
		    KILN_MASTER_KEY: key(), KILN_BIND: 'nowhere' });
		assert.equal(r.code, 1);
		assert.match(r.stderr, /KILN_BIND: expected host:port/);

		r = await kiln(['-c', 'no/such.conf', cmd], {
		    KILN_DATABASE_URL: unreachable, KILN_MASTER_KEY: key() });
		assert.equal(r.code, 1);
		assert.match(r.stderr, new RegExp(`kiln ${cmd}: no/such\\.conf: ` +
		    'No such file'));

		r = await kiln([cmd], { KILN_DATABASE_URL: unreachable,
		    KILN_MASTER_KEY: 'not-a-key' });
		assert.equal(r.code, 1);
		assert.match(r.stderr, /KILN_MASTER_KEY: (not valid base64|must be 32 bytes)/);

		r = await kiln([cmd], { KILN_DATABASE_URL: unreachable,
		    KILN_MASTER_KEY: key() });
		assert.equal(r.code, 1, `${cmd}: ${r.stdout}`);
		assert.match(r.stderr, new RegExp(`kiln ${cmd}: ` +
		    'KILN_DATABASE_URL: cannot connect'));
		assert.ok(r.ms < 10000, `${cmd} gave up in ${r.ms} ms`);
	}
});

test('check_migrate_reseal_against_a_database', { timeout: 120000 },
    async () => {
	const db = await h.freshDb(pg, 'ship_sub');
	const oldKey = key();
	const newKey = key();
	const env = { KILN_DATABASE_URL: db.url, KILN_MASTER_KEY: oldKey };

	/* A fresh database: everything pending, nothing to open. */
	let r = await kiln(['check'], env);
	assert.equal(r.code, 0, r.stderr);
	assert.match(r.stdout, /^configuration: ok/m);
	assert.match(r.stdout, /^database: reachable$/m);
	assert.match(r.stdout, new RegExp(`^migrations: ${MIGRATIONS} of ` +
	    `${MIGRATIONS} pending`, 'm'));

	r = await kiln(['migrate'], env);
	assert.equal(r.code, 0, r.stderr);
	assert.match(r.stdout, new RegExp(`^migrations: ${MIGRATIONS} ` +
	    `applied, 0 of ${MIGRATIONS} pending$`, 'm'));
	r = await kiln(['migrate'], env);
	assert.equal(r.code, 0, r.stderr);
	assert.match(r.stdout, new RegExp(`^migrations: 0 applied, 0 of ` +
	    `${MIGRATIONS} pending$`, 'm'));

	/*
	 * Rows sealed under oldKey: a secret and a token (shipcc); a
	 * secret, a refresh token and a token (shiprt); and a connection's
	 * refresh token and token (shiprt/bob): 7 values in 3 rows.
	 */
	const secret = h.secret('shipcc');
	const rts = { client: h.secret('shiprt'), seed: h.secret('shipseed'),
	    bob: h.secret('shipbob') };
	const admin = h.secret('shipadmin');
	const idp = await h.startOAuth(['--lifetime', '600', '--no-rotate',
	    '--client', `shipcc:${secret}:client_credentials`,
	    '--client', `shiprt:${rts.client}:refresh_token`,
	    '--seed-refresh', `shiprt:${rts.seed}`,
	    '--seed-refresh', `shiprt:${rts.bob}`]);
	const sources = [{ name: 'shipcc', kind: 'client_credentials',
	    token_url: idp.tokenUrl, client_id: 'shipcc',
	    client_secret: secret }, { name: 'shiprt', kind: 'refresh_token',
	    token_url: idp.tokenUrl, client_id: 'shiprt',
	    client_secret: rts.client, refresh_token: rts.seed }];
	const k = await h.startKiln({ name: 'ship_sub', databaseUrl: db.url,
	    masterKey: oldKey, sources, env: { KILN_ADMIN_KEY: admin } });
	await h.waitToken(k, 'shipcc');
	await h.waitToken(k, 'shiprt');
	const bob = '/api/tokens/shiprt/connections/bob/current-token';
	r = await require('../lib/admin').call(k, 'POST',
	    '/api/tokens/shiprt/connections', { auth: admin,
	    body: { subject: 'bob', refresh_token: rts.bob } });
	assert.equal(r.status, 201, r.text);
	await h.waitFor(async () => (await k.get(bob)).status === 200,
	    { timeout: 15000, what: "bob's token" });
	await k.stop();

	r = await kiln(['check'], env);
	assert.equal(r.code, 0, r.stderr);
	assert.match(r.stdout, /^migrations: 0 of \d+ pending/m);
	assert.match(r.stdout, /^master key: opens all 7 stored values \(0 not/m);

	/* The wrong key: check and reseal say so and fail. */
	const wrong = { KILN_DATABASE_URL: db.url, KILN_MASTER_KEY: newKey };
	r = await kiln(['check'], wrong);
	assert.equal(r.code, 1, r.stdout);
	assert.match(r.stderr, /kiln check: master key: 7 of 7 stored values do not open/);
	r = await kiln(['reseal'], wrong);
	assert.equal(r.code, 1, r.stdout);
	assert.match(r.stdout, /^resealed: 0 values in 3 rows/m);
	assert.match(r.stderr, /kiln reseal: 7 stored values open with no key/);

	/* Rotation: reseal under the new key, then the old one can go. */
	r = await kiln(['reseal'], Object.assign({}, wrong,
	    { KILN_MASTER_KEY_OLD: oldKey }));
	assert.equal(r.code, 0, r.stderr);
	assert.match(r.stdout, /^resealed: 7 values in 3 rows under key \S+; 0 could not be opened$/m);
	r = await kiln(['check'], wrong);
	assert.equal(r.code, 0, r.stderr);
	assert.match(r.stdout, /^master key: opens all 7 stored values \(0 not/m);
	r = await kiln(['reseal'], wrong);
	assert.equal(r.code, 0, r.stderr);
	assert.match(r.stdout, /^resealed: 0 values in 0 rows/m);

	/* And kiln serves under the new key alone, no upstream call. */
	const before = (await idp.stats()).token_requests;
	const k2 = await h.startKiln({ name: 'ship_sub2', databaseUrl: db.url,
	    masterKey: newKey, sources });
	await h.waitToken(k2, 'shipcc');
	await h.waitToken(k2, 'shiprt');
	r = await k2.get(bob);
	assert.equal(r.status, 200, r.text);
	assert.equal((await idp.stats()).token_requests, before);
	await k2.stop();
});
