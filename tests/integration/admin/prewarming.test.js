'use strict';

/*
 * Pre-warming endpoints (issue 3, "Pre-warming endpoints"): the shapes of
 * the pre-warming guide, and pause/resume — global and per token,
 * persisted in PostgreSQL, honoured by every worker, surviving a restart.
 *
 * Upstream tokens live LIFETIME s with a BUFFER s refresh buffer, so a
 * refresh cycle is about LIFETIME - BUFFER s; "two cycles" is TWO_CYCLES.
 */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');

const pg = h.filePg();

const LIFETIME = 6;
const BUFFER = 2;
const TWO_CYCLES = 2 * (LIFETIME - BUFFER) * 1000 + 1000;

async function kilnWith(label, names)
{
	const env = await a.adminKiln(pg, label, {
		sources: names.map((name) => ({ name, refresh_buffer: BUFFER })),
		lifetime: LIFETIME,
		workers: 2,
	});
	for (const n of names)
		await h.waitToken(env.k, n);
	env.admin = await a.jwt('admin');
	env.operator = await a.jwt('operator');
	return env;
}

/* Upstream token requests per client (= source name). */
async function upstreamCounts(idp)
{
	const st = await idp.stats();
	const out = {};
	for (const r of st.requests)
		out[r.client] = (out[r.client] || 0) + 1;
	out.total = st.requests.length;
	return out;
}

async function status(env)
{
	const r = await a.call(env.k, 'GET', '/api/prewarming/status',
	    { auth: env.admin });
	assert.equal(r.status, 200, `status: ${r.text}`);
	return r.json.data;
}

/*
 * The status once pred holds: the status is read from each worker's
 * cache, which follows a change through NOTIFY (DESIGN: within 100 ms);
 * allow a second.
 */
async function statusUntil(env, pred, what)
{
	let last = null;
	try {
		return await h.waitFor(async () => {
			last = await status(env);
			return pred(last) ? last : false;
		}, { timeout: 1000, interval: 20, what });
	} catch (e) {
		assert.fail(`${what}: ${JSON.stringify(last)}`);
	}
}

async function post(env, path, auth = env.operator)
{
	const r = await a.call(env.k, 'POST', path, { auth });
	assert.equal(r.status, 200, `POST ${path}: ${r.status} ${r.text}`);
	return r.json;
}

/* Let a refresh in flight at the moment of a pause settle. */
function settle()
{
	return h.sleep(500);
}

function assertGuideEntry(e, what)
{
	assert.ok(e.token && typeof e.token === 'object', `${what}: token`);
	assert.equal(typeof e.token.has_token, 'boolean',
	    `${what}: token.has_token`);
	assert.equal(typeof e.token.is_expired, 'boolean',
	    `${what}: token.is_expired`);
	assert.ok(e.token.expires_at === null ||
	    h.ISO_Z.test(e.token.expires_at), `${what}: token.expires_at ` +
	    `${e.token.expires_at}`);
	assert.ok(e.schedule && typeof e.schedule === 'object',
	    `${what}: schedule`);
	assert.ok(e.schedule.expires_at === null ||
	    h.ISO_Z.test(e.schedule.expires_at), `${what}: schedule.expires_at`);
	assert.ok(h.ISO_Z.test(e.schedule.refresh_at),
	    `${what}: schedule.refresh_at ${e.schedule.refresh_at}`);
	assert.equal(typeof e.schedule.next_refresh_in_minutes, 'number',
	    `${what}: schedule.next_refresh_in_minutes`);
	assert.ok(e.schedule.next_refresh_in_minutes >= 0,
	    `${what}: next_refresh_in_minutes >= 0`);
}

test('status_shape_matches_the_prewarming_guide', { timeout: 60000 },
    async () => {
	const env = await kilnWith('pw_shape', ['alpha', 'beta']);
	const { k } = env;

	const r = await a.call(k, 'GET', '/api/prewarming/status',
	    { auth: await a.jwt('viewer') });
	assert.equal(r.status, 200, r.text);
	assert.match(String(r.headers['content-type']), /application\/json/);
	assert.equal(r.json.success, true);
	const d = r.json.data;
	assert.equal(d.prewarming_active, true, 'prewarming_active');
	assert.equal(typeof d.refresh_buffer_minutes, 'number',
	    'refresh_buffer_minutes');
	assert.equal(d.refresh_buffer_minutes, 5,
	    'refresh_buffer_minutes: the default 5 minutes');
	assert.ok(Array.isArray(d.tokens), 'tokens[]');
	assert.deepEqual(d.tokens.map((t) => t.name).sort(),
	    ['alpha', 'beta']);
	const now = Date.now();
	for (const t of d.tokens) {
		assertGuideEntry(t, t.name);
		assert.equal(t.token.has_token, true, `${t.name}: has_token`);
		assert.equal(t.token.is_expired, false, `${t.name}: is_expired`);
		const exp = h.parseIso(t.token.expires_at);
		assert.ok(exp > now && exp <= now + LIFETIME * 1000 + 1000,
		    `${t.name}: expires_at ${t.token.expires_at}`);
		assert.equal(t.schedule.expires_at, t.token.expires_at);
		const at = h.parseIso(t.schedule.refresh_at);
		assert.ok(at < exp && at >= exp - BUFFER * 1000 * 1.1 - 50,
		    `${t.name}: refresh_at ${t.schedule.refresh_at} is ` +
		    `about ${BUFFER} s before expires_at ${t.token.expires_at}`);
		assert.ok(Math.abs(t.schedule.next_refresh_in_minutes -
		    Math.max(0, at - now) / 60000) <= 0.1,
		    `${t.name}: next_refresh_in_minutes`);
	}
	/* The guide's single-token fields: the next one due. */
	assertGuideEntry(d, 'data');

	/* The other shapes of the guide. */
	let j = await post(env, '/api/prewarming/refresh');
	assert.deepEqual(j, { success: true,
	    message: 'Token refresh initiated' });
	j = await post(env, '/api/prewarming/stop');
	assert.deepEqual(j, { success: true,
	    message: 'Token pre-warming stopped' });
	await statusUntil(env, (x) => x.prewarming_active === false,
	    'prewarming_active false after stop');
	let hl = await k.get('/health');
	assert.equal(hl.json.prewarming.active, false, '/health paused');
	j = await post(env, '/api/prewarming/start');
	assert.deepEqual(j, { success: true,
	    message: 'Token pre-warming started successfully' });
	await statusUntil(env, (x) => x.prewarming_active === true,
	    'prewarming_active true after start');
	hl = await k.get('/health');
	assert.equal(hl.json.prewarming.active, true, '/health active');
	assert.equal(typeof hl.json.prewarming.next_refresh_in_minutes,
	    'number');

	/* An unknown ?token= is 404 and changes nothing. */
	for (const p of ['refresh', 'stop', 'start']) {
		a.assertError(await a.call(k, 'POST',
		    `/api/prewarming/${p}?token=nope`, { auth: env.admin }), 404,
		    `${p} ?token=nope`);
	}
	assert.equal((await status(env)).prewarming_active, true,
	    'the 404s changed nothing');
});

test('stop_pauses_refresh_for_two_cycles_and_start_resumes',
    { timeout: 60000 }, async () => {
	const env = await kilnWith('pw_stop', ['alpha']);
	const { k, idp } = env;

	/* Running: a refresh a cycle. */
	const c0 = await upstreamCounts(idp);
	await h.waitFor(async () => (await upstreamCounts(idp)).total >
	    c0.total, { timeout: (LIFETIME + 2) * 1000, interval: 100,
	    what: 'a scheduled refresh' });

	await post(env, '/api/prewarming/stop');
	await settle();
	const c1 = await upstreamCounts(idp);
	await statusUntil(env, (x) => x.prewarming_active === false,
	    'prewarming_active false after stop');
	await h.sleep(TWO_CYCLES);
	const c2 = await upstreamCounts(idp);
	assert.equal(c2.total, c1.total, 'no upstream request for two ' +
	    `cycles while stopped (${c2.total - c1.total} made)`);
	/* The token ran out meanwhile; serving says so, nothing refreshes. */
	const st = await status(env);
	assert.equal(st.tokens[0].token.is_expired, true,
	    'the token expired while paused');

	const t0 = Date.now();
	await post(env, '/api/prewarming/start');
	await h.waitFor(async () => (await upstreamCounts(idp)).total >
	    c2.total, { timeout: 5000, interval: 100,
	    what: 'a refresh after start' });
	const r = await h.waitToken(k, 'alpha', { timeout: 5000 });
	h.assertTokenBody(r, 'alpha');
	/* And it goes on: another cycle. */
	const c3 = await upstreamCounts(idp);
	await h.waitFor(async () => (await upstreamCounts(idp)).total >
	    c3.total, { timeout: (LIFETIME + 2) * 1000, interval: 100,
	    what: 'the next scheduled refresh after start' });
	assert.ok(Date.now() - t0 < 15000);
});

test('per_token_stop_and_start', { timeout: 60000 }, async () => {
	const env = await kilnWith('pw_token', ['alpha', 'beta']);
	const { idp } = env;

	await post(env, '/api/prewarming/stop?token=alpha');
	await settle();
	const byName = (s, n) => s.tokens.find((t) => t.name === n);
	let st = await statusUntil(env, (x) => byName(x, 'alpha').paused,
	    'alpha paused');
	assert.equal(st.prewarming_active, true, 'still active globally');
	assert.equal(byName(st, 'beta').paused, false, 'beta not paused');

	const c1 = await upstreamCounts(idp);
	await h.sleep(TWO_CYCLES);
	const c2 = await upstreamCounts(idp);
	assert.equal(c2.alpha || 0, c1.alpha || 0,
	    'no upstream request for alpha while it is stopped');
	assert.ok((c2.beta || 0) - (c1.beta || 0) >= 2,
	    `beta went on refreshing (${(c2.beta || 0) - (c1.beta || 0)})`);

	/* The admin view says so too. */
	const v = await a.call(env.k, 'GET', '/api/tokens/alpha',
	    { auth: env.admin });
	assert.equal(v.json.data.paused, true, 'GET /api/tokens/alpha paused');

	await post(env, '/api/prewarming/start?token=alpha');
	await statusUntil(env, (x) => byName(x, 'alpha').paused === false,
	    'alpha resumed');
	await h.waitFor(async () => ((await upstreamCounts(idp)).alpha || 0) >
	    (c2.alpha || 0), { timeout: 5000, interval: 100,
	    what: 'a refresh of alpha after start' });
	await h.waitToken(env.k, 'alpha', { timeout: 5000 });
});

test('paused_state_survives_a_restart', { timeout: 90000 }, async () => {
	const env = await kilnWith('pw_restart', ['alpha', 'beta']);
	const { k, idp } = env;

	/* Global stop, and beta stopped on its own as well. */
	await post(env, '/api/prewarming/stop?token=beta');
	await post(env, '/api/prewarming/stop');
	await settle();
	await k.restart();
	const c1 = await upstreamCounts(idp);
	let st = await status(env);
	assert.equal(st.prewarming_active, false, 'still stopped after restart');
	const hl = await k.get('/health');
	assert.equal(hl.json.prewarming.active, false, '/health after restart');
	await h.sleep(TWO_CYCLES);
	const c2 = await upstreamCounts(idp);
	assert.equal(c2.total, c1.total, 'no upstream request for two ' +
	    'cycles after a restart while stopped');

	/* Global start: alpha resumes; beta stays stopped on its own. */
	await post(env, '/api/prewarming/start');
	st = await statusUntil(env, (x) => x.prewarming_active === true,
	    'prewarming_active after start');
	assert.equal(st.tokens.find((t) => t.name === 'beta').paused, true,
	    'beta still paused on its own');
	await h.sleep(TWO_CYCLES);
	const c3 = await upstreamCounts(idp);
	assert.ok((c3.alpha || 0) - (c2.alpha || 0) >= 2,
	    `alpha resumed (${(c3.alpha || 0) - (c2.alpha || 0)} requests)`);
	assert.equal(c3.beta || 0, c2.beta || 0, 'beta stayed stopped');

	await post(env, '/api/prewarming/start?token=beta');
	await h.waitFor(async () => ((await upstreamCounts(idp)).beta || 0) >
	    (c3.beta || 0), { timeout: 5000, interval: 100,
	    what: 'a refresh of beta after its start' });
	await h.waitToken(k, 'beta', { timeout: 5000 });
});
