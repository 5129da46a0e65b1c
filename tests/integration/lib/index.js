'use strict';

/*
 * The harness in one require, for the test files in the folders by
 * surface (public/, admin/, dashboard/, prod/) and tests/browser:
 *
 *   const h = require('../lib');
 *   const pg = h.filePg();           // one cluster per test file
 *   test('x', async () => {
 *       const db = await (await pg()).createDatabase('x');
 *       const idp = await h.startOAuth([...]);
 *       const k = await h.startKiln({ name: 'x', databaseUrl: db.url,
 *           sources: [...] });
 *       ...
 *   });
 *
 * One launcher, h.startKiln (lib/kiln.js), for one instance or several
 * sharing a database; one HTTP client, h.request (lib/http.js), plus
 * h.Pinned (a keep-alive connection, so one worker) and h.workerOf.
 * Everything started is stopped in the file's after() hook (registered
 * here on first use) and, failing that, at process exit.
 */

const assert = require('node:assert/strict');
const { after } = require('node:test');

const procs = require('./procs');
const util = require('./util');
const { startPg } = require('./pg');
const { startOAuth, startFault, startOidc } = require('./upstream');
const http = require('./http');
const kiln = require('./kiln');

let afterRegistered = false;

function registerAfter()
{
	if (afterRegistered)
		return;
	afterRegistered = true;
	after(() => procs.cleanupAll());
}
registerAfter();

/* A lazily started PostgreSQL cluster shared by the tests of a file. */
function filePg()
{
	let p = null;
	return () => {
		if (p === null)
			p = startPg();
		return p;
	};
}

let dbSeq = 0;
/* A fresh database on the file's cluster, named after the test. */
async function freshDb(pgGetter, label)
{
	const pg = await pgGetter();
	const name = `${String(label).toLowerCase().replace(/[^a-z0-9_]/g, '_')
	    .slice(0, 40)}_${process.pid}_${++dbSeq}`;
	const db = await pg.createDatabase(name.replace(/^[^a-z_]/, 'd'));
	return Object.assign({ pg }, db);
}

/* Poll current-token until it answers 200. */
async function waitToken(k, source, { timeout = 20000, query = '',
    headers = {} } = {})
{
	return util.waitFor(async () => {
		const r = await k.currentToken(source, { query, headers });
		return r.status === 200 ? r : false;
	}, { timeout, interval: 100,
	    what: `a 200 from /api/tokens/${source}/current-token` });
}

/* The contract's 200 body, checked field by field. */
function assertTokenBody(r, source, { now = Date.now() } = {})
{
	assert.equal(r.status, 200, `status (${r.text})`);
	assert.match(String(r.headers['content-type']), /application\/json/i);
	const b = r.json;
	assert.ok(b && typeof b === 'object', `JSON body (${r.text})`);
	assert.equal(b.agent_name, source, 'agent_name');
	assert.equal(typeof b.token, 'string', 'token');
	assert.ok(b.token.length > 0, 'token not empty');
	assert.equal(typeof b.token_type, 'string', 'token_type');
	assert.equal(typeof b.expires_at, 'string', 'expires_at');
	assert.match(b.expires_at, util.ISO_Z, 'expires_at is ISO-8601 Z');
	assert.ok(Number.isInteger(b.expires_in), 'expires_in integer');
	assert.equal(b.valid, true, 'valid');
	assert.equal(typeof b.message, 'string', 'message');
	const exp = util.parseIso(b.expires_at);
	assert.ok(exp > now, `expires_at ${b.expires_at} is in the future`);
	/* expires_in agrees with expires_at (2 s for rounding and delay). */
	const left = (exp - now) / 1000;
	assert.ok(Math.abs(b.expires_in - left) <= 2,
	    `expires_in ${b.expires_in} vs expires_at (${left.toFixed(1)} s)`);
	return b;
}

/* Rows of refresh_events for a source, oldest first. */
function events(db, source)
{
	return db.pg.queryJson(`SELECT e.* FROM refresh_events e ` +
	    `JOIN token_sources s ON s.id = e.source_id ` +
	    `WHERE s.name = '${source.replace(/'/g, "''")}' ` +
	    'ORDER BY e.started_at, e.id', { db: db.name });
}

const BAD_LEVELS = /^(warn|warning|error|err|crit|critical|alert|emerg|fatal)$/i;

/* JSON log lines at warn level or worse that mention the source. */
function failureLogLines(k, source)
{
	return k.jsonLogs().filter((l) => BAD_LEVELS.test(String(l.level)) &&
	    JSON.stringify(l).includes(source));
}

/* Fire a GET at a fixed rate; collect every result (or error). */
function poller(fn, perSecond, onResult)
{
	let stopped = false;
	const inflight = new Set();
	const period = 1000 / perSecond;
	const t0 = Date.now();
	let n = 0;

	const done = (async () => {
		while (!stopped) {
			const sentAt = Date.now();
			const p = fn().then((r) => onResult(null, r, sentAt),
			    (e) => onResult(e, null, sentAt));
			inflight.add(p);
			p.finally(() => inflight.delete(p));
			n++;
			const next = t0 + n * period;
			await util.sleep(Math.max(0, next - Date.now()));
		}
		await Promise.all([...inflight]);
	})();
	const stop = async () => {
		stopped = true;
		await done;
	};
	/* A test that fails before it stops its poller must not keep the
	 * file alive: after() stops it first (cleanups run newest first). */
	procs.onCleanup(stop);
	return { stop };
}

module.exports = Object.assign({
	procs,
	startPg,
	startOAuth,
	startFault,
	startOidc,
	request: http.request,
	workerOf: http.workerOf,
	Pinned: http.Pinned,
	startKiln: kiln.startKiln,
	cleanEnv: kiln.cleanEnv,
	childPids: kiln.childPids,
	rssKb: kiln.rssKb,
	KILN_BIN: kiln.KILN_BIN,
	MIGRATIONS: kiln.MIGRATIONS,
	filePg,
	freshDb,
	waitToken,
	assertTokenBody,
	events,
	failureLogLines,
	poller,
}, util);
