'use strict';

/*
 * The embedded default (conf/embedded.sh, behind `make run`): from nothing
 * to a served demo token, then a clean stop that leaves nothing running.
 * The state goes to a temp dir (KILN_STATE_DIR) so the repo's .kiln is
 * left alone.
 */

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { test } = require('node:test');

const h = require('../lib');

/* PIDs of processes whose command line mentions dir. */
function processesUsing(dir)
{
	const found = [];
	for (const p of fs.readdirSync('/proc')) {
		if (!/^\d+$/.test(p) || Number(p) === process.pid)
			continue;
		let cmd;
		try {
			cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8')
			    .replace(/\0/g, ' ');
		} catch (e) {
			continue;
		}
		if (cmd.includes(dir))
			found.push(`${p}: ${cmd.trim()}`);
	}
	return found;
}

test('make_run_serves_the_demo_token_and_stops_clean', { timeout: 120000 },
    async () => {
	const state = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-run-'));
	fs.chmodSync(state, 0o711);
	const port = await h.freePort();
	let out = '';
	const child = h.procs.spawnTracked('bash', ['conf/embedded.sh'], {
		cwd: h.procs.REPO,
		env: Object.assign(h.cleanEnv(), {
			KILN_STATE_DIR: state,
			KILN_BIND: `127.0.0.1:${port}`,
		}),
		stdio: ['ignore', 'pipe', 'pipe'],
	}, 'embedded.sh');
	child.stdout.on('data', (d) => { out += d; });
	child.stderr.on('data', (d) => { out += d; });
	let exited = null;
	child.on('exit', (code, sig) => { exited = { code, sig }; });

	h.procs.onCleanup(async () => {
		await h.procs.stopProcess(child, 10000);
		/* If the script failed to stop its cluster, do it here. */
		const pidf = path.join(state, 'pg', 'postmaster.pid');
		if (fs.existsSync(pidf)) {
			const pid = Number(fs.readFileSync(pidf, 'utf8')
			    .split('\n')[0]);
			try {
				process.kill(pid, 'SIGQUIT');
			} catch (e) {
				/* gone */
			}
		}
		fs.rmSync(state, { recursive: true, force: true });
	});

	const url = `http://127.0.0.1:${port}/api/tokens/demo/current-token`;
	let r;
	try {
		r = await h.waitFor(async () => {
			if (exited !== null)
				throw new Error(`embedded.sh exited ` +
				    `${JSON.stringify(exited)}`);
			const q = await h.request(url, { timeout: 2000 });
			return q.status === 200 ? q : false;
		}, { timeout: 60000, interval: 250,
		    what: 'the demo token' });
	} catch (e) {
		e.message += `\n--- embedded.sh output:\n${out}`;
		throw e;
	}
	h.assertTokenBody(r, 'demo');

	/* It said where to look. */
	assert.match(out, new RegExp(`http://127\\.0\\.0\\.1:${port}/dashboard`));
	assert.match(out, new RegExp(
	    `http://127\\.0\\.0\\.1:${port}/api/tokens/demo/current-token`));
	assert.match(out, new RegExp(`http://127\\.0\\.0\\.1:${port}/health`));

	/* Its state: a 0600 key, the secret by reference only. */
	const key = path.join(state, 'master.key');
	assert.equal(fs.statSync(key).mode & 0o777, 0o600);
	assert.equal(Buffer.from(fs.readFileSync(key, 'utf8').trim(),
	    'base64').length, 32);
	const sources = fs.readFileSync(path.join(state, 'sources.json'),
	    'utf8');
	assert.deepEqual(JSON.parse(sources).sources[0].client_secret,
	    { env: 'KILN_DEMO_SECRET' });
	assert.ok(!sources.includes('demo-secret'));
	/* PostgreSQL listens on no TCP port. */
	const conf = fs.readFileSync(path.join(state, 'pg',
	    'postgresql.conf'), 'utf8');
	assert.match(conf, /^listen_addresses = ''$/m);
	assert.ok(processesUsing(state).some((p) => /postgres/.test(p)),
	    'the cluster runs from the state dir');

	const idpPid = Number(fs.readFileSync(path.join(state, 'idp.pid'),
	    'utf8'));
	assert.ok(idpPid > 0, 'the demo IdP runs');

	/* Stop the whole process group, as Ctrl-C or a supervisor would. */
	h.procs.killGroup(child.pid, 'SIGTERM');
	await h.waitFor(() => exited !== null, { timeout: 30000,
	    what: 'embedded.sh to exit' });
	await h.waitFor(() => processesUsing(state).length === 0,
	    { timeout: 10000, interval: 200,
	    what: `no process left using ${state}` }).catch((e) => {
		e.message += `\n${processesUsing(state).join('\n')}\n${out}`;
		throw e;
	});
	await h.waitFor(() => !h.procs.groupAlive(child.pid),
	    { timeout: 10000, what: 'kiln and the IdP to be gone' });
	assert.throws(() => process.kill(idpPid, 0), 'the IdP is gone');
	assert.ok(!fs.existsSync(path.join(state, 'pg', 'postmaster.pid')),
	    'the cluster was shut down');
	/* Nothing answers any more. */
	await assert.rejects(h.request(url, { timeout: 2000 }));
});
