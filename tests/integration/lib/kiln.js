'use strict';

/*
 * The one kiln launcher: runs the kiln binary (./kiln -f -c CONF from the
 * repo root) for a test, with its own port, database, master key and
 * sources file, or as one of several instances sharing a database, a
 * master key and a sources file (give the same databaseUrl, masterKey and
 * sourcesFile to each). Loads no node:test hook, so plain scripts (the
 * soak) may use it too.
 *
 *   const k = await startKiln({ name: 'my_test', databaseUrl: db.url,
 *       sources: [{ name: 'a', kind: 'client_credentials', ... }],
 *       workers: 1, env: { KILN_UPSTREAM_TIMEOUT: '3' } });
 *   const r = await k.get('/api/tokens/a/current-token');
 *   r.status, r.headers, r.json, r.text
 *   await k.restart({ waitHealth: false });  // -> { spawnedAt }
 *   k.logs(); k.jsonLogs(); await k.stop();
 *
 * Options: name, databaseUrl (required), sources (written to a sources
 * file of its own) or sourcesFile (shared), masterKey (random if not
 * given), workers (1), env (extra variables, last word), conf (a Kore
 * config, e.g. from prod.koreConf; default KILN_IT_CONF or kore.conf),
 * ca (a CA file: the instance speaks TLS, requests are verified
 * against it), port (fixed; otherwise a free one, changed if taken at
 * start), waitHealth (true), healthTimeout (ms), quiet (log level info
 * and the log kept on disk only, for long runs).
 *
 * stdout and stderr go to tests/integration/tmp/<name>-XXXXXX/kiln.log
 * (run-all.sh SAN=1 scans those) and stay in memory for scanning.
 */

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const procs = require('./procs');
const { request } = require('./http');
const { freePort, sleep } = require('./util');

const BIN = path.join(procs.REPO, 'kiln');
const MIGRATIONS = path.join(procs.REPO, 'migrations');
/* KILN_IT_CONF: another Kore config, e.g. one with seccomp_tracing. */
const CONF = process.env.KILN_IT_CONF || 'kore.conf';
/* In-memory log kept below this; the file has everything. */
const LOG_MAX = 32 << 20;

/* The harness's environment without kiln's own variables. */
function cleanEnv(extra)
{
	const env = {};
	for (const [k, v] of Object.entries(process.env)) {
		if (/^(KILN_|PREWARMING_|LOG_|NOTIFY_SOCKET|WATCHDOG_)/.test(k))
			continue;
		env[k] = v;
	}
	return Object.assign(env, extra || {});
}

function checkBinary()
{
	try {
		fs.accessSync(BIN, fs.constants.X_OK);
	} catch (e) {
		throw new Error(`kiln binary not found at ${BIN}: ` +
		    'run `make build` first');
	}
}

/* Resident set size of a pid in kB (VmRSS), or null. */
function rssKb(pid)
{
	try {
		const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(
		    `/proc/${pid}/status`, 'utf8'));
		return m ? Number(m[1]) : null;
	} catch (e) {
		return null;
	}
}

/* Children of pid whose command line is a Kore worker ("[wrk N]"),
 * or any child with `all`. */
function childPids(pid, { all = false } = {})
{
	let kids = [];
	try {
		kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`,
		    'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
	} catch (e) {
		return [];
	}
	return kids.filter((c) => {
		try {
			const cmd = fs.readFileSync(`/proc/${c}/cmdline`, 'utf8');
			return all || /\[wrk \d+\]/.test(cmd);
		} catch (e) {
			return false;
		}
	});
}

function procName(pid)
{
	try {
		return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')
		    .replace(/\0/g, ' ').trim();
	} catch (e) {
		return '?';
	}
}

async function startKiln(opts)
{
	const {
		name = 'kiln',
		databaseUrl,
		workers = 1,
		env: extraEnv = {},
		waitHealth = true,
		healthTimeout = 30000,
		conf = CONF,
		ca = null,
		quiet = false,
	} = opts;

	if (!databaseUrl)
		throw new Error('startKiln: databaseUrl is required');
	checkBinary();

	const dir = procs.mkTmp(name.replace(/[^A-Za-z0-9_.-]/g, '_'));
	let sourcesFile = opts.sourcesFile;
	if (!sourcesFile) {
		sourcesFile = path.join(dir, 'sources.json');
		fs.writeFileSync(sourcesFile, JSON.stringify({ sources:
		    opts.sources || [] }, null, 2));
	}
	const logFile = path.join(dir, 'kiln.log');
	const masterKey = opts.masterKey ||
	    crypto.randomBytes(32).toString('base64');
	const caPem = ca === null ? null : fs.readFileSync(ca);
	const fixedPort = Boolean(opts.port);
	let port = opts.port || await freePort();
	let child = null;
	let exitInfo = null;
	let exitWaiters = [];
	let logText = '';
	let truncated = false;
	let spawnedAt = 0;
	let stopping = null;

	const logFd = fs.openSync(logFile, 'a');
	procs.onExitSync(() => {
		try {
			fs.closeSync(logFd);
		} catch (e) {
			/* closed */
		}
	});

	function write(s)
	{
		try {
			fs.writeSync(logFd, s);
		} catch (e) {
			/* log file closed at the end of the file */
		}
	}

	function note(line)
	{
		write(`--- ${new Date().toISOString()} ${line}\n`);
	}

	function env()
	{
		return Object.assign(cleanEnv(), {
			KILN_BIND: `127.0.0.1:${port}`,
			KILN_WORKERS: String(workers),
			KILN_DATABASE_URL: databaseUrl,
			KILN_MASTER_KEY: masterKey,
			KILN_SOURCES_FILE: sourcesFile,
			KILN_MIGRATIONS_DIR: MIGRATIONS,
			LOG_FORMAT: 'json',
			LOG_LEVEL: quiet ? 'info' : 'debug',
		}, extraEnv);
	}

	function spawnOnce()
	{
		exitInfo = null;
		spawnedAt = Date.now();
		note(`spawn ./kiln -f -c ${conf} on 127.0.0.1:${port}`);
		const c = procs.spawnTracked('./kiln', ['-f', '-c', conf], {
			cwd: procs.REPO,
			env: env(),
			stdio: ['ignore', 'pipe', 'pipe'],
		}, 'kiln');
		const sink = (d) => {
			const s = d.toString('utf8');
			if (!quiet) {
				logText += s;
				if (logText.length > LOG_MAX) {
					logText = logText.slice(-(LOG_MAX >> 1));
					truncated = true;
				}
			}
			write(s);
		};
		c.stdout.on('data', sink);
		c.stderr.on('data', sink);
		c.on('error', (e) => {
			exitInfo = { error: e.message };
		});
		c.on('exit', (code, signal) => {
			exitInfo = { code, signal, at: Date.now() };
			note(`exit code=${code} signal=${signal}`);
			for (const w of exitWaiters)
				w(exitInfo);
			exitWaiters = [];
		});
		child = c;
		return c;
	}

	/* Everything kiln wrote: from memory, or from the file when the
	 * memory holds only part (quiet, or a very long run). */
	function logs()
	{
		if (!quiet && !truncated)
			return logText;
		try {
			return fs.readFileSync(logFile, 'utf8');
		} catch (e) {
			return logText;
		}
	}

	function tail(n = 40)
	{
		return logs().split('\n').slice(-n).join('\n');
	}

	function base()
	{
		return `${ca === null ? 'http' : 'https'}://127.0.0.1:${port}`;
	}

	function req(p, o = {})
	{
		return request(base() + p, Object.assign({ ca: caPem }, o));
	}

	async function waitHealthy(timeout = healthTimeout)
	{
		const deadline = Date.now() + timeout;
		let last = 'no answer';
		while (Date.now() < deadline) {
			if (exitInfo !== null) {
				throw new Error(`${name} exited before /health ` +
				    `answered (${JSON.stringify(exitInfo)}):\n` +
				    tail());
			}
			try {
				const r = await req('/health', { timeout: 2000 });
				if (r.status === 200)
					return r;
				last = `${r.status} ${r.text.slice(0, 200)}`;
			} catch (e) {
				last = e.message;
			}
			await sleep(100);
		}
		throw new Error(`${name}: /health not 200 within ${timeout} ms ` +
		    `(last: ${last}):\n${tail()}`);
	}

	async function start({ waitHealth: wait = true } = {})
	{
		if (child !== null && exitInfo === null)
			throw new Error(`${name} is already running`);
		for (let attempt = 0; ; attempt++) {
			spawnOnce();
			if (!wait)
				return { spawnedAt };
			try {
				await waitHealthy();
				return { spawnedAt };
			} catch (e) {
				/* A port of our choosing taken meanwhile: take
				 * another. A port the test chose stays. */
				const inUse = /address already in use|EADDRINUSE/i
				    .test(tail(100));
				if (exitInfo !== null && inUse && !fixedPort &&
				    attempt < 3) {
					port = await freePort();
					continue;
				}
				await stop();
				throw e;
			}
		}
	}

	function stop()
	{
		if (child === null)
			return Promise.resolve(null);
		if (stopping === null) {
			stopping = procs.stopProcess(child, 15000).then((r) => {
				stopping = null;
				return r;
			});
		}
		return stopping;
	}

	async function restart(o = {})
	{
		await stop();
		return start(o);
	}

	function waitExit(ms)
	{
		if (exitInfo !== null || child === null)
			return Promise.resolve(exitInfo);
		return new Promise((resolve) => {
			const t = setTimeout(() => resolve(null), ms);
			exitWaiters.push((x) => {
				clearTimeout(t);
				resolve(x);
			});
		});
	}

	const k = {
		name,
		dir,
		conf,
		logFile,
		sourcesFile,
		masterKey,
		caPem,
		get port() {
			return port;
		},
		get url() {
			return base();
		},
		get pid() {
			return child && child.pid;
		},
		get spawnedAt() {
			return spawnedAt;
		},
		get exited() {
			return exitInfo;
		},
		start,
		stop,
		restart,
		waitHealthy,
		waitExit,
		request: req,
		get: (p, o = {}) => req(p, Object.assign({}, o,
		    { method: 'GET' })),
		post: (p, body, o = {}) => req(p, Object.assign({}, o,
		    { method: 'POST', body })),
		currentToken: (src, { query = '', headers = {},
		    timeout = 10000 } = {}) => req(`/api/tokens/${src}` +
		    `/current-token${query}`, { headers, timeout }),
		reject: (src, fpr, { headers = {}, timeout = 20000 } = {}) =>
		    req(`/api/tokens/${src}/current-token/rejected`,
		    { method: 'POST', body: { fingerprint: fpr }, headers,
		    timeout }),
		/* a signal to the parent only (Kore's own path) */
		signal: (sig) => process.kill(child.pid, sig),
		/* the whole process group at once, like a lost machine */
		kill9: () => procs.killGroup(child.pid, 'SIGKILL'),
		workerPids: () => childPids(child.pid),
		allPids: () => [child.pid, ...childPids(child.pid,
		    { all: true })],
		rss: () => [child.pid, ...childPids(child.pid,
		    { all: true })].map((pid) => ({ pid, kb: rssKb(pid),
		    role: pid === child.pid ? 'parent' : procName(pid) })),
		logs,
		jsonLogs: () => logs().split('\n').map((l) => {
			const s = l.trim();
			if (!s.startsWith('{'))
				return null;
			try {
				return JSON.parse(s);
			} catch (e) {
				return null;
			}
		}).filter((x) => x !== null),
		tail,
	};
	procs.onCleanup(async () => {
		await stop();
		try {
			fs.closeSync(logFd);
		} catch (e) {
			/* closed */
		}
	});

	await start({ waitHealth });
	return k;
}

module.exports = {
	startKiln,
	cleanEnv,
	childPids,
	rssKb,
	KILN_BIN: BIN,
	MIGRATIONS,
};
