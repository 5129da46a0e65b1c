'use strict';

/*
 * Run the kiln binary (./kiln -f -c kore.conf from the repo root) for a
 * test, with its own port, database, master key and sources file.
 *
 *   const k = await startKiln({ name: 'my_test', databaseUrl: db.url,
 *       sources: [{ name: 'a', kind: 'client_credentials', ... }],
 *       workers: 1, env: { KILN_UPSTREAM_TIMEOUT: '3' } });
 *   const r = await k.get('/api/tokens/a/current-token');
 *   r.status, r.headers, r.json, r.text
 *   await k.restart({ waitHealth: false });  // -> { spawnedAt }
 *   k.logs(); k.jsonLogs(); await k.stop();
 *
 * stdout and stderr go to tests/integration/tmp/<name>-XXXX/kiln.log and
 * stay in memory for scanning.
 */

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const procs = require('./procs');
const { freePort, request, sleep } = require('./util');

const BIN = path.join(procs.REPO, 'kiln');
/* KILN_IT_CONF: another Kore config, e.g. one with seccomp_tracing. */
const CONF = process.env.KILN_IT_CONF || 'kore.conf';

function cleanEnv()
{
	const env = {};
	for (const [k, v] of Object.entries(process.env)) {
		if (/^(KILN_|PREWARMING_|LOG_)/.test(k))
			continue;
		env[k] = v;
	}
	return env;
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

async function startKiln(opts)
{
	const {
		name = 'kiln',
		databaseUrl,
		sources = [],
		workers = 1,
		env: extraEnv = {},
		waitHealth = true,
		healthTimeout = 20000,
	} = opts;

	if (!databaseUrl)
		throw new Error('startKiln: databaseUrl is required');
	checkBinary();

	const dir = procs.mkTmp(name.replace(/[^A-Za-z0-9_.-]/g, '_'));
	const sourcesFile = path.join(dir, 'sources.json');
	const logFile = path.join(dir, 'kiln.log');
	const masterKey = opts.masterKey ||
	    crypto.randomBytes(32).toString('base64');
	let port = await freePort();
	let child = null;
	let exitInfo = null;
	let logText = '';
	let spawnedAt = 0;
	let stopping = null;

	fs.writeFileSync(sourcesFile, JSON.stringify({ sources }, null, 2));
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
			LOG_FORMAT: 'json',
			LOG_LEVEL: 'debug',
		}, extraEnv);
	}

	function spawnOnce()
	{
		exitInfo = null;
		spawnedAt = Date.now();
		note(`spawn ./kiln -f -c ${CONF} on 127.0.0.1:${port}`);
		const c = procs.spawnTracked('./kiln', ['-f', '-c', CONF], {
			cwd: procs.REPO,
			env: env(),
			stdio: ['ignore', 'pipe', 'pipe'],
		}, 'kiln');
		const sink = (d) => {
			const s = d.toString('utf8');
			logText += s;
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
		});
		child = c;
		return c;
	}

	function tail(n = 40)
	{
		return logText.split('\n').slice(-n).join('\n');
	}

	async function waitHealthy(timeout = healthTimeout)
	{
		const deadline = Date.now() + timeout;
		let last = 'no answer';
		while (Date.now() < deadline) {
			if (exitInfo !== null) {
				throw new Error(`kiln exited before /health ` +
				    `answered (${JSON.stringify(exitInfo)}):\n` +
				    tail());
			}
			try {
				const r = await request(`http://127.0.0.1:${port}` +
				    '/health', { timeout: 2000 });
				if (r.status === 200)
					return r;
				last = `${r.status} ${r.text.slice(0, 200)}`;
			} catch (e) {
				last = e.message;
			}
			await sleep(100);
		}
		throw new Error(`kiln /health not 200 within ${timeout} ms ` +
		    `(last: ${last}):\n${tail()}`);
	}

	async function start({ waitHealth: wait = true } = {})
	{
		if (child !== null && exitInfo === null)
			throw new Error('kiln is already running');
		for (let attempt = 0; ; attempt++) {
			spawnOnce();
			if (!wait)
				return { spawnedAt };
			try {
				await waitHealthy();
				return { spawnedAt };
			} catch (e) {
				const inUse = /address already in use|EADDRINUSE/i
				    .test(logText.slice(-4000));
				if (exitInfo !== null && inUse && attempt < 3) {
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
			const c = child;
			stopping = procs.stopProcess(c, 10000).then((r) => {
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

	function base()
	{
		return `http://127.0.0.1:${port}`;
	}

	const k = {
		name,
		dir,
		logFile,
		sourcesFile,
		masterKey,
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
		request: (p, o = {}) => request(base() + p, o),
		get: (p, o = {}) => request(base() + p, Object.assign({}, o,
		    { method: 'GET' })),
		post: (p, body, o = {}) => request(base() + p, Object.assign({},
		    o, { method: 'POST', body })),
		currentToken: (src, { query = '', headers = {},
		    timeout = 10000 } = {}) => request(`${base()}/api/tokens/` +
		    `${src}/current-token${query}`, { headers, timeout }),
		reject: (src, fpr, { headers = {}, timeout = 20000 } = {}) =>
		    request(`${base()}/api/tokens/${src}/current-token/rejected`,
		    { method: 'POST', body: { fingerprint: fpr }, headers,
		    timeout }),
		logs: () => logText,
		jsonLogs: () => logText.split('\n').map((l) => {
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

module.exports = { startKiln, KILN_BIN: BIN };
