'use strict';

/*
 * Issue 5 §3: the soak in its 60 s mode (tests/soak/soak.js; the 30 min
 * mode is run by hand with --seconds 1800). The script runs its own
 * PostgreSQL, upstreams and 3 instances, prints the RSS of every kiln
 * process at start and end, and exits 0 when every check holds; this
 * test runs it and asserts on its summary.
 */

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');

const h = require('../lib');

const SOAK = path.join(h.procs.REPO, 'tests', 'soak', 'soak.js');

test('soak_60s', { timeout: 240000 }, async () => {
	const dir = h.procs.mkTmp('prod_soak');
	const out = path.join(dir, 'summary.json');
	const child = h.procs.spawnTracked(process.execPath, [SOAK,
	    '--seconds', '60', '--json', out], { cwd: h.procs.REPO,
	    env: process.env, stdio: ['ignore', 'pipe', 'pipe'] }, 'soak');
	let text = '';
	child.stdout.on('data', (d) => {
		text += d;
	});
	child.stderr.on('data', (d) => {
		text += d;
	});
	const code = await new Promise((resolve) => child.on('exit',
	    (c, sig) => resolve(c ?? sig)));
	fs.writeFileSync(path.join(dir, 'soak.log'), text);
	for (const l of text.split('\n')) {
		if (l.startsWith('soak:'))
			console.log(`# ${l}`);
	}
	assert.ok(fs.existsSync(out), `no summary (exit ${code}):\n` +
	    text.slice(-3000));
	const s = JSON.parse(fs.readFileSync(out, 'utf8'));
	assert.ok(s.seconds >= 59, `ran ${s.seconds} s`);
	assert.ok(s.requests > 60 * 3 * 20, `${s.requests} requests`);
	assert.ok((s.upstream_by_mode['5xx'] || 0) > 0, 'the upstream failed');
	assert.equal(s.expired_served, 0, JSON.stringify(s.examples));
	assert.equal(s.fivexx_while_valid, 0, JSON.stringify(s.examples));
	assert.equal(s.failed, 0, JSON.stringify(s.examples));
	assert.deepEqual(s.worker_deaths, []);
	assert.deepEqual(s.exited, []);
	assert.deepEqual(s.events_mismatch, [], 'an event per upstream ' +
	    'request');
	assert.deepEqual(s.rss_grew, [], 'RSS flat (end <= 1.5 x start + ' +
	    '8 MB for every kiln process)');
	assert.equal(s.pass, true);
	assert.equal(code, 0, `soak exit status ${code}`);
});
