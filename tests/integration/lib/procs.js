'use strict';

/*
 * Every process the harness starts is registered here, so that all of them
 * are stopped at the end of a test file even when a test fails, the file
 * throws, or the runner is interrupted. Processes are started in their own
 * process group and stopped by PID and by that group, never by name.
 *
 * Each run shares a directory (KILN_IT_RUN_DIR, made by
 * tests/run-integration.sh, or one made here per test file) where every
 * spawned PID is written down, so the runner can reap what a crashed test
 * file left behind.
 */

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..', '..');
const TMP = path.join(REPO, 'tests', 'integration', 'tmp');

let ownRunDir = false;
const runDir = (() => {
	let d = process.env.KILN_IT_RUN_DIR;
	if (!d) {
		d = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-it-'));
		ownRunDir = true;
	}
	fs.mkdirSync(path.join(d, 'pids'), { recursive: true });
	/* PostgreSQL clusters live below: the postgres user must get in. */
	fs.chmodSync(d, 0o711);
	return d;
})();

const children = new Map();	/* pid -> {child, name} */
const syncCleanups = new Set();	/* functions run at process exit */
const asyncCleanups = [];	/* functions run by cleanupAll() */

function procStartTime(pid)
{
	try {
		const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
		return s.slice(s.lastIndexOf(')') + 2).split(' ')[19];
	} catch (e) {
		return null;
	}
}

function pidFile(pid)
{
	return path.join(runDir, 'pids', String(pid));
}

/* Spawn a process in its own process group and register it. */
function spawnTracked(cmd, args, opts = {}, name = path.basename(cmd))
{
	const child = spawn(cmd, args, Object.assign({}, opts, {
		detached: true,
	}));

	if (child.pid === undefined) {
		/* spawn failed; the 'error' event tells why. */
		return child;
	}
	children.set(child.pid, { child, name });
	try {
		fs.writeFileSync(pidFile(child.pid), JSON.stringify({
			pid: child.pid,
			pgid: child.pid,
			start: procStartTime(child.pid),
			name,
			owner: process.pid,
		}) + '\n');
	} catch (e) {
		/* best effort */
	}
	child.once('exit', () => {
		/* The group may outlive its leader: keep it registered
		 * until stopProcess() or the exit hook has swept it. */
		const c = children.get(child.pid);
		if (c !== undefined)
			c.exited = true;
	});
	return child;
}

function killGroup(pid, signal)
{
	try {
		process.kill(-pid, signal);
		return true;
	} catch (e) {
		try {
			process.kill(pid, signal);
			return true;
		} catch (e2) {
			return false;
		}
	}
}

function groupAlive(pid)
{
	try {
		process.kill(-pid, 0);
		return true;
	} catch (e) {
		return false;
	}
}

function forget(pid)
{
	children.delete(pid);
	try {
		fs.unlinkSync(pidFile(pid));
	} catch (e) {
		/* gone already */
	}
}

function waitExit(child, ms)
{
	if (child.exitCode !== null || child.signalCode !== null)
		return Promise.resolve(true);
	return new Promise((resolve) => {
		const t = setTimeout(() => resolve(false), ms);
		child.once('exit', () => {
			clearTimeout(t);
			resolve(true);
		});
	});
}

/*
 * SIGTERM to the process and its group, SIGKILL after graceMs, then make
 * sure nothing of the group is left.
 */
async function stopProcess(child, graceMs = 10000)
{
	const pid = child.pid;
	const t0 = Date.now();
	let killed = false;

	if (pid === undefined)
		return { ms: 0, killed };
	if (child.exitCode === null && child.signalCode === null)
		killGroup(pid, 'SIGTERM');
	if (!await waitExit(child, graceMs)) {
		killed = true;
		killGroup(pid, 'SIGKILL');
		await waitExit(child, 5000);
	}
	/* Leftover members of the group (workers of a killed parent). */
	for (let i = 0; i < 50 && groupAlive(pid); i++) {
		if (i === 10) {
			killed = true;
			killGroup(pid, 'SIGKILL');
		}
		await new Promise((r) => setTimeout(r, 100));
	}
	forget(pid);
	return { ms: Date.now() - t0, killed, code: child.exitCode,
	    signal: child.signalCode };
}

function onExitSync(fn)
{
	syncCleanups.add(fn);
	return () => syncCleanups.delete(fn);
}

function onCleanup(fn)
{
	asyncCleanups.push(fn);
}

/* Run the registered async cleanups (newest first), then stop whatever
 * process is still registered. Used in each test file's after(). */
async function cleanupAll()
{
	const errs = [];

	while (asyncCleanups.length > 0) {
		const fn = asyncCleanups.pop();
		try {
			await fn();
		} catch (e) {
			errs.push(e);
		}
	}
	for (const { child } of [...children.values()])
		await stopProcess(child, 3000);
	if (errs.length > 0)
		throw errs[0];
}

function exitSweep()
{
	for (const [pid] of children) {
		killGroup(pid, 'SIGKILL');
		forget(pid);
	}
	for (const fn of syncCleanups) {
		try {
			fn();
		} catch (e) {
			/* keep sweeping */
		}
	}
	syncCleanups.clear();
	if (ownRunDir) {
		spawnSync('rm', ['-rf', runDir]);
	}
}

process.on('exit', exitSweep);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
	process.once(sig, () => {
		exitSweep();
		process.exit(128 + os.constants.signals[sig]);
	});
}

function mkTmp(prefix)
{
	fs.mkdirSync(TMP, { recursive: true });
	return fs.mkdtempSync(path.join(TMP, `${prefix}-`));
}

module.exports = {
	REPO,
	TMP,
	runDir,
	spawnTracked,
	stopProcess,
	killGroup,
	groupAlive,
	onExitSync,
	onCleanup,
	cleanupAll,
	mkTmp,
};
