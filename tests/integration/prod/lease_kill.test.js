'use strict';

/*
 * Issue 5 §2: kill -9 the instance holding a lease in the middle of a
 * slow refresh. Three instances (2 workers each), KILN_LEASE_SECONDS=5,
 * KILN_UPSTREAM_TIMEOUT=4; the upstream (tests/upstream/fault.js) turns
 * slow (3.5 s) before the scheduled refresh. The instance whose worker
 * holds the lease (tokens.lease_owner names its parent pid) loses its
 * whole process group to SIGKILL 2.2 s into the call (after one lease
 * renewal); the upstream then answers at once again. Another instance
 * takes the lease once it expires and completes the refresh within
 * lease + 1 s of the kill; the survivors serve a valid token throughout.
 */

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');

const h = require('../lib');
const p = require('../lib/prod');

const pg = h.filePg();

const LEASE_S = 5;
const LIFETIME = 30;
const BUFFER = 12;
const HANG_MS = 3500;
const KILL_AFTER_MS = 2200;

test('kill9_lease_holder_mid_slow_refresh', { timeout: 120000 }, async () => {
	const dir = h.procs.mkTmp('prod_lease_kill');
	const f = await h.startFault(['--lifetime', String(LIFETIME),
	    '--hang-ms', String(HANG_MS)]);
	const db = await h.freshDb(pg, 'prod_lease_kill');
	const sourcesFile = path.join(dir, 'sources.json');
	fs.writeFileSync(sourcesFile, JSON.stringify({ sources: [{
		name: 'leased', kind: 'client_credentials',
		token_url: f.tokenUrl, client_id: 'kiln',
		client_secret: h.secret('lease'), refresh_buffer: BUFFER,
	}] }));
	const masterKey = crypto.randomBytes(32).toString('base64');
	const env = { KILN_LEASE_SECONDS: String(LEASE_S),
	    KILN_UPSTREAM_TIMEOUT: '4', KILN_UPSTREAM_CONNECT_TIMEOUT: '2' };
	const ks = [];
	for (let i = 0; i < 3; i++)
		ks.push(await h.startKiln({ name: `prod_lease_${i}`,
		    databaseUrl: db.url, masterKey, sourcesFile, workers: 2,
		    env }));
	const first = [];
	for (const k of ks)
		first.push((await h.waitToken(k, 'leased')).json);
	assert.ok(first.every((b) => b.fingerprint === first[0].fingerprint),
	    'one token everywhere');
	assert.equal((await f.stats()).token_requests, 1);
	await f.mode({ mode: 'slow', hang_ms: HANG_MS });

	/* Clients on every instance, 10/s each, until the end. */
	let killed = null;
	let killedAt = Infinity;
	const problems = [];
	const answers = [];
	const pollers = ks.map((k) => h.poller(() => k.currentToken('leased',
	    { timeout: 3000 }), 10, (err, r, sentAt) => {
		if (killed === k && sentAt >= killedAt - 50)
			return;		/* the dead one refuses */
		if (err) {
			problems.push(`${k.name}: ${err.message}`);
			return;
		}
		if (r.status !== 200)
			problems.push(`${k.name}: ${r.status} ${r.text}`);
		else
			answers.push({ k: k.name, at: r.at, gen: r.json.generation,
			    exp: h.parseIso(r.json.expires_at) });
	}));

	/* The scheduled refresh takes the lease. */
	const lease = await h.waitFor(async () => {
		const row = await p.tokenRow(db, 'leased');
		return row.lease_owner ? row : false;
	}, { timeout: (LIFETIME - BUFFER + 5) * 1000, interval: 50,
	    what: 'a lease' });
	const leaseSeenAt = Date.now();
	const ppid = Number(lease.lease_owner.split(':')[1]);
	const holder = ks.find((k) => k.pid === ppid);
	assert.ok(holder, `lease owner ${lease.lease_owner} is one of ` +
	    ks.map((k) => k.pid).join(','));
	await h.waitFor(async () => (await f.stats()).token_requests === 2,
	    { timeout: 3000, interval: 20, what: 'the slow upstream call' });

	/* The lease is renewed while the call runs (every lease/3). */
	await h.sleep(Math.max(0, leaseSeenAt + KILL_AFTER_MS - Date.now()));
	const renewed = await p.tokenRow(db, 'leased');
	assert.equal(renewed.lease_owner, lease.lease_owner);
	assert.ok(renewed.lease_until_ms >= lease.lease_until_ms + 1000,
	    `lease renewed: until ${lease.lease_until_ms} -> ` +
	    `${renewed.lease_until_ms}`);
	assert.equal((await f.stats()).token_requests, 2,
	    'nobody else calls the upstream while the lease is held');

	/* kill -9 the holder, parent and workers at once */
	killed = holder;
	killedAt = Date.now();
	holder.kill9();
	await f.mode({ mode: 'ok' });
	const leaseUntilAtKill = renewed.lease_until_ms;

	const done = await h.waitFor(async () => {
		const row = await p.tokenRow(db, 'leased');
		return row.generation > first[0].generation ? row : false;
	}, { timeout: (LEASE_S + 10) * 1000, interval: 50,
	    what: 'the takeover refresh' });
	await h.sleep(1500);
	for (const x of pollers)
		await x.stop();

	const ev = await p.eventsMs(db, 'leased');
	const success = ev.filter((e) => e.outcome === 'success' &&
	    Number(e.generation) === Number(done.generation));
	assert.equal(success.length, 1, JSON.stringify(ev));
	const take = success[0];
	const takeOwner = Number(take.owner.split(':')[1]);
	assert.notEqual(takeOwner, ppid, 'another instance completed it');
	assert.ok(ks.some((k) => k !== holder && k.pid === takeOwner),
	    `owner ${take.owner}`);
	const st = await f.stats();
	assert.equal(st.token_requests, 3, 'first, killed, takeover: ' +
	    JSON.stringify(st.requests.map((q) => [q.mode, q.status])));
	const takeReq = st.requests[2];
	/* taken over once the dead lease expired, not before */
	assert.ok(takeReq.t >= leaseUntilAtKill - 100,
	    `takeover request ${takeReq.t - leaseUntilAtKill} ms after ` +
	    'the lease expired');
	const completedIn = take.finished_ms - killedAt;
	console.log(`# lease ${LEASE_S} s: killed ${holder.name} at +` +
	    `${killedAt - leaseSeenAt} ms into the lease; lease expired ` +
	    `${leaseUntilAtKill - killedAt} ms after the kill; takeover ` +
	    `request +${takeReq.t - killedAt} ms, committed +` +
	    `${Math.round(completedIn)} ms`);
	assert.ok(completedIn <= (LEASE_S + 1) * 1000,
	    `completed ${Math.round(completedIn)} ms after the kill ` +
	    `(bound ${(LEASE_S + 1) * 1000})`);

	/* no token expired: every survivor answered 200 throughout, and
	 * serves the new generation now */
	assert.deepEqual(problems.slice(0, 10), [],
	    `${problems.length} failed requests`);
	assert.ok(answers.length > 100, `${answers.length} answers`);
	for (const x of answers)
		assert.ok(x.exp > x.at, 'a valid token');
	for (const k of ks.filter((x) => x !== holder)) {
		const r = await k.currentToken('leased');
		assert.equal(r.status, 200);
		assert.equal(r.json.generation, Number(done.generation));
		assert.equal(k.exited, null);
	}
	const row = await p.tokenRow(db, 'leased');
	assert.equal(row.lease_owner, null, 'lease released after commit');
});
