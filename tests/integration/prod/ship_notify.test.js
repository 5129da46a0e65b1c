'use strict';

/*
 * kiln under a service manager (issue 16): READY=1 on NOTIFY_SOCKET only
 * once every worker serves from its loaded cache, WATCHDOG=1 at the
 * interval WATCHDOG_USEC asks for, no READY=1 while PostgreSQL is down,
 * and SIGHUP re-reads the sources file and the log level of
 * KILN_ENV_FILE without failing a single request meanwhile.
 *
 * node has no unix datagram sockets: a few lines of python3 listen on
 * the NOTIFY_SOCKET and print each datagram with its arrival time.
 */

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');

const h = require('../lib');
const procs = require('../lib/procs');

const pg = h.filePg();

const LISTENER = `
import json, os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps({"t": 0, "m": "LISTENING"}), flush=True)
while True:
    d = s.recv(4096)
    print(json.dumps({"t": time.time() * 1000, "m": d.decode()}), flush=True)
`;

/* A NOTIFY_SOCKET of our own: { path, messages: [{ t, m }] }. */
async function notifyListener(name)
{
	const dir = procs.mkTmp(name);
	const sock = path.join(dir, 'notify.sock');
	const c = procs.spawnTracked('python3', ['-c', LISTENER, sock],
	    { stdio: ['ignore', 'pipe', 'pipe'] }, 'notify-listener');
	const l = { path: sock, messages: [], child: c };
	let buf = '';
	c.stdout.on('data', (d) => {
		buf += d;
		let i;
		while ((i = buf.indexOf('\n')) >= 0) {
			l.messages.push(JSON.parse(buf.slice(0, i)));
			buf = buf.slice(i + 1);
		}
	});
	await h.waitFor(() => l.messages.length > 0,
	    { timeout: 10000, what: 'the notify listener' });
	l.messages.length = 0;
	procs.onCleanup(() => procs.stopProcess(c, 2000));
	return l;
}

function sent(l, re)
{
	return l.messages.filter((x) => re.test(x.m));
}

/* A GET on a connection of its own (so any worker may take it). */
async function freshGet(url, headers = {})
{
	return (await h.request(url, { headers, timeout: 5000 })).status;
}

async function seeded(name, workers)
{
	const db = await h.freshDb(pg, name);
	const idp = await h.startOAuth(['--lifetime', '900',
	    '--client', 'rdy:rdy-secret-0123456789:client_credentials']);
	const sources = [{ name: 'rdy', kind: 'client_credentials',
	    token_url: idp.tokenUrl, client_id: 'rdy',
	    client_secret: 'rdy-secret-0123456789' }];
	/* A token already stored: served at once from a loaded cache. */
	const k0 = await h.startKiln({ name: `${name}0`, databaseUrl: db.url,
	    sources });
	await h.waitToken(k0, 'rdy');
	await k0.stop();
	return { db, idp, sources, masterKey: k0.masterKey };
}

/*
 * A role of its own for kiln, limited to a few connections: the workers
 * that get none cannot load their cache until the limit is lifted.
 */
async function limitedRole(db, limit)
{
	const role = `${db.name}_r`.slice(0, 60);
	await db.pg.query(`CREATE ROLE "${role}" LOGIN CONNECTION LIMIT ` +
	    `${limit}`, { db: db.name });
	await db.pg.query(`GRANT CREATE, USAGE ON SCHEMA public TO "${role}"; ` +
	    `GRANT ALL ON ALL TABLES IN SCHEMA public TO "${role}"; ` +
	    `GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "${role}"`,
	    { db: db.name });
	return {
		url: db.url.replace('postgres@', `${role}@`),
		lift: () => db.pg.query(`ALTER ROLE "${role}" CONNECTION ` +
		    'LIMIT -1', { db: db.name }),
	};
}

test('ready_only_once_every_worker_serves_and_watchdog',
    { timeout: 120000 }, async () => {
	const s = await seeded('ship_ready', 3);
	const role = await limitedRole(s.db, 4);
	const l = await notifyListener('ship_ready');
	const statuses = [];
	const k = await h.startKiln({ name: 'ship_ready', databaseUrl: role.url,
	    masterKey: s.masterKey, sources: s.sources, workers: 3,
	    waitHealth: false, env: { NOTIFY_SOCKET: l.path,
	    WATCHDOG_USEC: '1000000', KILN_WAIT_MS: '0' } });

	/* Some workers serve, not all: no READY=1 yet. */
	const loaded = () => k.jsonLogs().filter((x) =>
	    x.msg === 'token cache loaded').length;
	await h.waitFor(() => loaded() >= 1, { timeout: 30000,
	    what: 'a worker with its cache loaded' });
	await h.sleep(1500);
	assert.ok(loaded() < 3, `${loaded()} of 3 workers loaded`);
	assert.deepEqual(sent(l, /^READY=1/m), [], 'no READY=1 while a ' +
	    'worker cannot load its cache');
	await role.lift();

	await h.waitFor(() => sent(l, /^READY=1/m).length > 0,
	    { timeout: 30000, interval: 5, what: 'READY=1' });
	/* From READY=1 on, every worker answers 200 without waiting. */
	const url = `${k.url}/api/tokens/rdy/current-token`;
	for (let i = 0; i < 8; i++) {
		statuses.push(...await Promise.all(Array.from({ length: 10 },
		    () => freshGet(url))));
	}
	assert.deepEqual([...new Set(statuses)], [200],
	    `answers right after READY=1: ${statuses.join(',')}`);
	assert.equal(loaded(), 3, 'every worker loaded');
	assert.equal(sent(l, /^READY=1/m).length, 1, 'READY=1 once');
	assert.match(sent(l, /^READY=1/m)[0].m, /STATUS=serving/);

	/* WATCHDOG=1 while healthy, well within WATCHDOG_USEC (1 s). */
	const t0 = Date.now();
	await h.sleep(4000);
	const dogs = sent(l, /^WATCHDOG=1$/).filter((x) => x.t >= t0)
	    .map((x) => x.t);
	assert.ok(dogs.length >= 5 && dogs.length <= 12,
	    `${dogs.length} WATCHDOG=1 in 4 s`);
	for (let i = 1; i < dogs.length; i++) {
		assert.ok(dogs[i] - dogs[i - 1] < 1000,
		    `WATCHDOG=1 gap ${dogs[i] - dogs[i - 1]} ms`);
	}
	assert.ok(dogs[0] - t0 < 1000, 'first WATCHDOG=1 within 1 s');

	/* A worker that hangs stops the pings: systemd would restart. */
	const workers = fs.readFileSync(`/proc/${k.pid}/task/${k.pid}/children`,
	    'utf8').trim().split(/\s+/).map(Number);
	assert.equal(workers.length, 3, 'three workers');
	process.kill(workers[1], 'SIGSTOP');
	try {
		await h.sleep(600);
		const t1 = Date.now();
		await h.sleep(2500);
		assert.deepEqual(sent(l, /^WATCHDOG=1$/).filter((x) => x.t >= t1),
		    [], 'no WATCHDOG=1 while a worker is stopped');
	} finally {
		process.kill(workers[1], 'SIGCONT');
	}
	const t2 = Date.now();
	await h.waitFor(() => sent(l, /^WATCHDOG=1$/).some((x) => x.t >= t2),
	    { timeout: 3000, what: 'WATCHDOG=1 again' });
	await k.stop();
});

test('no_ready_while_postgresql_is_down', { timeout: 60000 }, async () => {
	const port = await h.freePort();
	const l = await notifyListener('ship_nopg');
	const k = await h.startKiln({ name: 'ship_nopg',
	    databaseUrl: `postgresql://kiln@127.0.0.1:${port}/down`,
	    waitHealth: false, env: { NOTIFY_SOCKET: l.path,
	    WATCHDOG_USEC: '500000' } });
	await h.sleep(4000);
	assert.equal(k.exited, null, 'kiln still trying');
	assert.deepEqual(l.messages, [], 'nothing sent to the manager');
	await k.stop();
});

test('sighup_reloads_sources_and_log_level_without_a_failed_request',
    { timeout: 120000 }, async () => {
	const s = await seeded('ship_hup', 2);
	const l = await notifyListener('ship_hup');
	const envFile = path.join(procs.mkTmp('ship_hup_env'), 'kiln.env');
	fs.writeFileSync(envFile, '# kiln.env\nLOG_LEVEL=debug\n');
	const k = await h.startKiln({ name: 'ship_hup', databaseUrl: s.db.url,
	    masterKey: s.masterKey, sources: s.sources, workers: 2,
	    env: { NOTIFY_SOCKET: l.path, KILN_ENV_FILE: envFile } });
	await h.waitFor(() => sent(l, /^READY=1/m).length > 0,
	    { timeout: 20000, what: 'READY=1' });
	await h.waitToken(k, 'rdy');

	/* An unknown Host is logged at info level, before the reload. */
	const noisy = () => freshGet(`${k.url}/health`, { host: 'evil.test' });
	const hostLines = () => k.jsonLogs().filter((x) =>
	    x.msg === 'host not allowed').length;
	for (let i = 0; i < 4; i++)
		await noisy();
	await h.waitFor(() => hostLines() >= 4,
	    { timeout: 5000, what: 'info lines before the reload' });

	const results = [];
	const poll = h.poller(() => k.currentToken('rdy'), 50,
	    (err, r) => results.push(err ? err.message : r.status));
	await h.sleep(500);

	/* A new source in the file, a quieter log level, then SIGHUP. */
	const doc = JSON.parse(fs.readFileSync(k.sourcesFile, 'utf8'));
	doc.sources.push(Object.assign({}, s.sources[0], { name: 'added' }));
	fs.writeFileSync(k.sourcesFile, JSON.stringify(doc));
	fs.writeFileSync(envFile, 'LOG_LEVEL="warn"\n');
	const readyBefore = sent(l, /^READY=1/m).length;
	process.kill(k.pid, 'SIGHUP');

	const r = await h.waitToken(k, 'added', { timeout: 20000 });
	assert.equal(r.status, 200);
	await h.sleep(500);
	await poll.stop();

	const bad = results.filter((x) => x !== 200);
	assert.ok(results.length > 20, `${results.length} polls`);
	assert.deepEqual(bad, [], `failed polls during the reload`);
	assert.equal(k.exited, null, 'same process');
	assert.ok(sent(l, /^RELOADING=1$/).length === 1, 'RELOADING=1');
	assert.equal(sent(l, /^READY=1/m).length, readyBefore + 1,
	    'READY=1 after the reload');

	/* Info lines are gone from every worker now. */
	const before = hostLines();
	for (let i = 0; i < 8; i++)
		assert.equal(await noisy(), 421);
	await h.sleep(500);
	assert.equal(hostLines(), before, 'no info line after the reload');
	await k.stop();
});
