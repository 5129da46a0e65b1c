'use strict';

/*
 * Helpers for the production-hardening tests (prod_*.test.js) and the
 * soak (tests/soak/soak.js). Loads no node:test hook, so plain scripts
 * may use it too.
 *
 *   const p = require('./lib/prod');
 *   const conf = p.koreConf(dir, { tls: { certDir, version: 'both' },
 *       hsts: 31536000, maxConnections: 8 });
 *   const k = await p.startInstance({ name, conf, databaseUrl, masterKey,
 *       sourcesFile, workers: 2, env: {...}, ca: certDir + '/ca.pem' });
 *   k.get('/health'), k.signal('SIGTERM'), await k.waitExit(ms),
 *   k.kill9(), k.workerPids(), k.rss()
 *   const pins = await p.pinWorkers(k, 2);   // {prefix: Pinned}
 *   await pins[x].get('/api/tokens/a/current-token')
 */

const { execFile, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const net = require('node:net');
const path = require('node:path');
const tls = require('node:tls');

const procs = require('./procs');
const util = require('./util');

const REPO = procs.REPO;
const MIGRATIONS = path.join(REPO, 'migrations');
const BIN = path.join(REPO, 'kiln');

/* ------------------------------------------------------------ config */

/*
 * A copy of the repo's kore.conf, edited: tls {certDir, version
 * ('both'|'1.2'|'1.3')} turns the listener into TLS with certDir's
 * server.pem/server.key/dhparam.pem; hsts sets http_hsts_enable;
 * maxConnections sets worker_max_connections (tests use a small value
 * to reach every worker with keep-alive connections: Kore hands the
 * accept lock on only when the holder is full).
 */
function koreConf(dir, { tls: t = null, hsts = null, maxConnections = null,
    name = 'kore.conf' } = {})
{
	let c = fs.readFileSync(path.join(REPO, 'kore.conf'), 'utf8');
	const sub = (re, to) => {
		if (!re.test(c))
			throw new Error(`koreConf: ${re} not found in kore.conf`);
		c = c.replace(re, to);
	};
	if (t !== null) {
		sub(/^(\s*)tls\s+no\s*$/m, '$1tls\t\tyes');
		c = c.replace(/^(server default \{)/m,
		    `tls_version\t${t.version || 'both'}\n` +
		    `tls_dhparam\t${path.join(t.certDir, 'dhparam.pem')}\n\n$1`);
		sub(/^(\s*)attach(\s+)default\s*$/m,
		    `$1attach$2default\n` +
		    `$1certfile\t${path.join(t.certDir, 'server.pem')}\n` +
		    `$1certkey\t\t${path.join(t.certDir, 'server.key')}`);
	}
	if (hsts !== null)
		sub(/^http_hsts_enable\s+\d+\s*$/m, `http_hsts_enable\t${hsts}`);
	if (maxConnections !== null)
		sub(/^worker_max_connections\s+\d+\s*$/m,
		    `worker_max_connections\t${maxConnections}`);
	fs.mkdirSync(dir, { recursive: true });
	const file = path.join(dir, name);
	fs.writeFileSync(file, c);
	return file;
}

/* conf/gen-cert.sh DIR rsa|ecdsa: DIR/{ca.pem,server.pem,server.key,
 * dhparam.pem}. */
function genCert(dir, type)
{
	execFileSync('bash', [path.join(REPO, 'conf', 'gen-cert.sh'), dir,
	    type], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60000 });
	return dir;
}

/* base64 SHA-256 of a certificate's SubjectPublicKeyInfo (Chromium's
 * --ignore-certificate-errors-spki-list). */
function spkiHash(certFile)
{
	const x = new crypto.X509Certificate(fs.readFileSync(certFile));
	const der = x.publicKey.export({ type: 'spki', format: 'der' });
	return crypto.createHash('sha256').update(der).digest('base64');
}

/* --------------------------------------------------------- requests */

/* Like util.request, over https with a CA when opts.ca is given. */
function request(url, opts = {})
{
	if (!url.startsWith('https:'))
		return util.request(url, opts);
	const u = new URL(url);
	const headers = Object.assign({}, opts.headers || {});
	let payload = null;
	if (opts.body !== undefined && opts.body !== null) {
		payload = Buffer.isBuffer(opts.body) ||
		    typeof opts.body === 'string' ? Buffer.from(opts.body) :
		    Buffer.from(JSON.stringify(opts.body));
		if (typeof opts.body === 'object' && !Buffer.isBuffer(opts.body))
			headers['Content-Type'] = 'application/json';
		headers['Content-Length'] = payload.length;
	}
	return new Promise((resolve, reject) => {
		const t0 = Date.now();
		const req = https.request({
			host: u.hostname, port: u.port,
			path: u.pathname + u.search,
			method: opts.method || 'GET', headers,
			ca: opts.ca, servername: opts.servername,
			agent: false,
		}, (res) => {
			const chunks = [];
			res.on('data', (c) => chunks.push(c));
			res.on('end', () => {
				clearTimeout(timer);
				const text = Buffer.concat(chunks).toString('utf8');
				let json;
				try {
					json = JSON.parse(text);
				} catch (e) {
					json = undefined;
				}
				resolve({ status: res.statusCode, headers:
				    res.headers, text, json, ms: Date.now() - t0,
				    at: Date.now() });
			});
		});
		const timer = setTimeout(() => req.destroy(Object.assign(
		    new Error(`${url}: timeout`), { code: 'ETIMEDOUT' })),
		    opts.timeout || 10000);
		req.on('error', (e) => {
			clearTimeout(timer);
			reject(e);
		});
		if (payload !== null)
			req.write(payload);
		req.end();
	});
}

/* curl with args; resolves {code, stdout, stderr} (never rejects). */
function curl(args, { timeout = 20000 } = {})
{
	return new Promise((resolve) => {
		execFile('curl', args, { timeout, encoding: 'utf8',
		    maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
			resolve({ code: err ? (err.code ?? -1) : 0, stdout,
			    stderr });
		});
	});
}

/*
 * One persistent HTTP/1.1 connection (keep-alive), requests one at a
 * time. The worker that accepted it answers every request on it, so a
 * Pinned is a probe into one worker. `closed` once the server closed it.
 */
class Pinned {
	constructor(port, { ca = null } = {})
	{
		this.port = port;
		this.ca = ca;
		this.queue = Promise.resolve();
		this.closed = false;
		this.worker = null;
		this.buf = Buffer.alloc(0);
		this.waiter = null;
	}

	connect()
	{
		return new Promise((resolve, reject) => {
			const opts = { host: '127.0.0.1', port: this.port };
			const s = this.ca === null ? net.connect(opts) :
			    tls.connect(Object.assign(opts, { ca: this.ca }));
			const ev = this.ca === null ? 'connect' :
			    'secureConnect';
			s.setNoDelay(true);
			s.once(ev, () => resolve(this));
			s.once('error', reject);
			s.on('error', (e) => this.fail(e));
			s.on('close', () => {
				this.closed = true;
				this.fail(new Error('connection closed'));
			});
			s.on('data', (d) => {
				this.buf = Buffer.concat([this.buf, d]);
				this.parse();
			});
			this.sock = s;
		});
	}

	fail(e)
	{
		if (this.waiter !== null) {
			const w = this.waiter;
			this.waiter = null;
			w.reject(e);
		}
	}

	parse()
	{
		if (this.waiter === null)
			return;
		const end = this.buf.indexOf('\r\n\r\n');
		if (end < 0)
			return;
		const head = this.buf.subarray(0, end).toString('latin1')
		    .split('\r\n');
		const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0]);
		const headers = {};
		for (const l of head.slice(1)) {
			const i = l.indexOf(':');
			if (i > 0)
				headers[l.slice(0, i).trim().toLowerCase()] =
				    l.slice(i + 1).trim();
		}
		const cl = Number(headers['content-length'] || 0);
		if (this.buf.length < end + 4 + cl)
			return;
		const text = this.buf.subarray(end + 4, end + 4 + cl)
		    .toString('utf8');
		this.buf = this.buf.subarray(end + 4 + cl);
		let json;
		try {
			json = JSON.parse(text);
		} catch (e) {
			json = undefined;
		}
		const w = this.waiter;
		this.waiter = null;
		w.resolve({ status: m ? Number(m[1]) : null, headers, text,
		    json, at: Date.now(), ms: Date.now() - w.t0 });
	}

	request(method, p, { headers = {}, body = null, timeout = 10000 } = {})
	{
		const run = () => new Promise((resolve, reject) => {
			if (this.closed) {
				reject(new Error('connection closed'));
				return;
			}
			const b = body === null ? null : Buffer.from(
			    typeof body === 'string' ? body :
			    JSON.stringify(body));
			const lines = [`${method} ${p} HTTP/1.1`,
			    'Host: 127.0.0.1'];
			for (const [n, v] of Object.entries(headers))
				lines.push(`${n}: ${v}`);
			if (b !== null) {
				if (!Object.keys(headers).some((n) =>
				    n.toLowerCase() === 'content-type'))
					lines.push('Content-Type: application/json');
				lines.push(`Content-Length: ${b.length}`);
			}
			const timer = setTimeout(() => this.fail(
			    new Error(`${method} ${p}: timeout`)), timeout);
			this.waiter = {
				t0: Date.now(),
				resolve: (r) => {
					clearTimeout(timer);
					resolve(r);
				},
				reject: (e) => {
					clearTimeout(timer);
					reject(e);
				},
			};
			this.sock.write(lines.join('\r\n') + '\r\n\r\n');
			if (b !== null)
				this.sock.write(b);
		});
		const p2 = this.queue.then(run, run);
		this.queue = p2.catch(() => {});
		return p2;
	}

	get(p, o)
	{
		return this.request('GET', p, o);
	}

	close()
	{
		this.closed = true;
		if (this.sock)
			this.sock.destroy();
	}
}

function workerOf(r)
{
	return String(r.headers['x-request-id'] || '').split('-')[0];
}

/*
 * Keep-alive connections to k until `workers` distinct workers answered
 * (by their X-Request-Id prefix), `perWorker` of them each. Needs a
 * config with a small worker_max_connections (see koreConf). Returns
 * {prefix: [Pinned, ...]}; the connections not needed are closed.
 */
async function pinWorkers(k, workers, { perWorker = 1, max = 64,
    ca = null } = {})
{
	const byWorker = new Map();
	const spare = [];
	for (let i = 0; i < max; i++) {
		const c = await new Pinned(k.port, { ca }).connect();
		const r = await c.get('/health');
		const w = workerOf(r);
		c.worker = w;
		if (!byWorker.has(w))
			byWorker.set(w, []);
		if (byWorker.get(w).length < perWorker)
			byWorker.get(w).push(c);
		else
			spare.push(c);
		if (byWorker.size >= workers && [...byWorker.values()]
		    .every((l) => l.length >= perWorker))
			break;
	}
	/* The spares keep the first worker(s) full, so the last one keeps
	 * the accept lock: close them only once we are done. */
	const out = Object.fromEntries(byWorker);
	out.spare = spare;
	if (byWorker.size < workers)
		throw new Error(`pinWorkers: reached ${byWorker.size} of ` +
		    `${workers} workers of ${k.name}`);
	procs.onCleanup(() => {
		for (const l of [...byWorker.values(), spare])
			for (const c of l)
				c.close();
	});
	return out;
}

/* ---------------------------------------------------------- instance */

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

/*
 * A kiln process with its own config file (conf), for TLS and for the
 * several-instance tests: the same database, master key and sources
 * file may be given to several. ca: a CA file, the instance speaks TLS.
 */
async function startInstance(opts)
{
	const {
		name = 'kiln',
		conf = path.join(REPO, 'kore.conf'),
		databaseUrl,
		workers = 1,
		env: extraEnv = {},
		waitHealth = true,
		healthTimeout = 30000,
		ca = null,
		quiet = false,
	} = opts;
	if (!databaseUrl)
		throw new Error('startInstance: databaseUrl is required');
	fs.accessSync(BIN, fs.constants.X_OK);

	const dir = procs.mkTmp(name.replace(/[^A-Za-z0-9_.-]/g, '_'));
	let sourcesFile = opts.sourcesFile;
	if (!sourcesFile) {
		sourcesFile = path.join(dir, 'sources.json');
		fs.writeFileSync(sourcesFile, JSON.stringify({ sources:
		    opts.sources || [] }, null, 2));
	}
	const masterKey = opts.masterKey ||
	    crypto.randomBytes(32).toString('base64');
	const caPem = ca === null ? null : fs.readFileSync(ca);
	const logFile = path.join(dir, 'kiln.log');
	const logFd = fs.openSync(logFile, 'a');
	let port = opts.port || await util.freePort();
	let child = null;
	let exitInfo = null;
	let exitWaiters = [];
	let logText = '';
	let stopping = null;

	const write = (s) => {
		try {
			fs.writeSync(logFd, s);
		} catch (e) {
			/* closed */
		}
	};
	const note = (s) => write(`--- ${new Date().toISOString()} ${s}\n`);

	function spawnOnce()
	{
		exitInfo = null;
		note(`spawn ./kiln -f -c ${conf} on 127.0.0.1:${port}`);
		const env = Object.assign(cleanEnv(), {
			KILN_BIND: `127.0.0.1:${port}`,
			KILN_WORKERS: String(workers),
			KILN_DATABASE_URL: databaseUrl,
			KILN_MASTER_KEY: masterKey,
			KILN_SOURCES_FILE: sourcesFile,
			KILN_MIGRATIONS_DIR: MIGRATIONS,
			LOG_FORMAT: 'json',
			LOG_LEVEL: quiet ? 'info' : 'debug',
		}, extraEnv);
		const c = procs.spawnTracked(BIN, ['-f', '-c', conf], {
			cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'],
		}, 'kiln');
		const sink = (d) => {
			const s = d.toString('utf8');
			if (!quiet) {
				logText += s;
				if (logText.length > (32 << 20))
					logText = logText.slice(-(16 << 20));
			}
			write(s);
		};
		c.stdout.on('data', sink);
		c.stderr.on('data', sink);
		c.on('exit', (code, signal) => {
			exitInfo = { code, signal, at: Date.now() };
			note(`exit code=${code} signal=${signal}`);
			for (const w of exitWaiters)
				w(exitInfo);
			exitWaiters = [];
		});
		child = c;
	}

	const base = () => `${ca === null ? 'http' : 'https'}://127.0.0.1:${port}`;
	const req = (p, o = {}) => request(base() + p, Object.assign({ ca:
	    caPem }, o));

	async function waitHealthy(timeout = healthTimeout)
	{
		const deadline = Date.now() + timeout;
		let last = 'no answer';
		while (Date.now() < deadline) {
			if (exitInfo !== null)
				throw new Error(`${name} exited before /health ` +
				    `answered (${JSON.stringify(exitInfo)}):\n` +
				    tail());
			try {
				const r = await req('/health', { timeout: 2000 });
				if (r.status === 200)
					return r;
				last = `${r.status}`;
			} catch (e) {
				last = e.message;
			}
			await util.sleep(100);
		}
		throw new Error(`${name}: /health not 200 within ${timeout} ms ` +
		    `(${last}):\n${tail()}`);
	}

	function tail(n = 40)
	{
		if (quiet) {
			try {
				return fs.readFileSync(logFile, 'utf8').split('\n')
				    .slice(-n).join('\n');
			} catch (e) {
				return '';
			}
		}
		return logText.split('\n').slice(-n).join('\n');
	}

	async function start({ waitHealth: w = true } = {})
	{
		if (child !== null && exitInfo === null)
			throw new Error(`${name} is already running`);
		spawnOnce();
		if (w)
			await waitHealthy();
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
		name, dir, conf, logFile, sourcesFile, masterKey, caPem,
		get port() {
			return port;
		},
		get url() {
			return base();
		},
		get pid() {
			return child && child.pid;
		},
		get exited() {
			return exitInfo;
		},
		start, stop, waitHealthy, waitExit, tail,
		restart: async (o) => {
			await stop();
			return start(o);
		},
		request: req,
		get: (p, o = {}) => req(p, Object.assign({}, o,
		    { method: 'GET' })),
		post: (p, body, o = {}) => req(p, Object.assign({}, o,
		    { method: 'POST', body })),
		currentToken: (src, o = {}) => req(`/api/tokens/${src}` +
		    `/current-token${o.query || ''}`, o),
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
		logs: () => quiet ? fs.readFileSync(logFile, 'utf8') : logText,
		jsonLogs: () => k.logs().split('\n').map((l) => {
			try {
				return l.startsWith('{') ? JSON.parse(l) : null;
			} catch (e) {
				return null;
			}
		}).filter((x) => x !== null),
	};
	procs.onCleanup(async () => {
		await stop();
		try {
			fs.closeSync(logFd);
		} catch (e) {
			/* closed */
		}
	});
	spawnOnce();
	if (waitHealth) {
		try {
			await waitHealthy();
		} catch (e) {
			await stop();
			throw e;
		}
	}
	return k;
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

/* ------------------------------------------------------------- misc */

function percentile(xs, p)
{
	const s = [...xs].sort((a, b) => a - b);
	if (s.length === 0)
		return NaN;
	const i = Math.min(s.length - 1, Math.ceil(p / 100 * s.length) - 1);
	return s[Math.max(0, i)];
}

/* POST /api/tokens/{name}/refresh with the admin key. */
function adminRefresh(target, name, key)
{
	return target.request(`/api/tokens/${name}/refresh`, {
		method: 'POST', headers: { Authorization: `Bearer ${key}` },
	});
}

/* The stored token row of a source, with times in ms. */
async function tokenRow(db, name)
{
	const rows = await db.pg.queryJson('SELECT t.generation, ' +
	    't.fingerprint, t.lease_owner, kiln_ms(t.lease_until) AS ' +
	    'lease_until_ms, kiln_ms(t.expires_at) AS expires_ms, ' +
	    'kiln_ms(t.next_attempt_at) AS next_ms, t.failures ' +
	    'FROM tokens t JOIN token_sources s ON s.id = t.source_id ' +
	    `WHERE s.name = '${name}'`, { db: db.name });
	return rows[0] || null;
}

/* refresh_events of a source with times in ms, oldest first. */
function eventsMs(db, name)
{
	return db.pg.queryJson('SELECT e.id, e.trigger, e.outcome, ' +
	    'e.generation, e.fingerprint, e.owner, e.http_status, e.error, ' +
	    'e.duration_ms, kiln_ms(e.started_at) AS started_ms, ' +
	    '(extract(epoch FROM e.finished_at) * 1000)::float8 AS ' +
	    'finished_ms FROM refresh_events e JOIN token_sources s ' +
	    `ON s.id = e.source_id WHERE s.name = '${name}' ` +
	    'ORDER BY e.id', { db: db.name });
}

module.exports = {
	REPO,
	MIGRATIONS,
	koreConf,
	genCert,
	spkiHash,
	request,
	curl,
	Pinned,
	pinWorkers,
	workerOf,
	startInstance,
	rssKb,
	childPids,
	percentile,
	adminRefresh,
	tokenRow,
	eventsMs,
};

/* State letter and CPU time (ms) of a pid from /proc, or null. */
function procState(pid)
{
	try {
		const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
		const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
		return { pid, state: f[0],
		    cpuMs: (Number(f[11]) + Number(f[12])) * 10 };
	} catch (e) {
		return null;
	}
}

/*
 * Workers of k that burn CPU without pause (more than
 * `busyMs` of CPU in `windowMs`): a worker stuck in a loop.
 */
async function spinningWorkers(k, { windowMs = 1000, busyMs = 300 } = {})
{
	const a = k.workerPids().map(procState).filter(Boolean);
	await util.sleep(windowMs);
	const out = [];
	for (const x of a) {
		const y = procState(x.pid);
		if (y !== null && y.cpuMs - x.cpuMs >= busyMs)
			out.push({ pid: x.pid, cpuMs: y.cpuMs - x.cpuMs,
			    state: y.state });
	}
	return out;
}

/* Kore's lines about a worker that died and was restarted. */
function workerDeaths(k)
{
	return k.logs().split('\n').filter((l) =>
	    /\(hdlr: [^)]*\) gone|restarting worker|exited with status (?!0\b)/
	    .test(l));
}

module.exports.procState = procState;
module.exports.spinningWorkers = spinningWorkers;
module.exports.workerDeaths = workerDeaths;

/*
 * A psql session that runs `sql` (e.g. BEGIN; LOCK TABLE ...) and keeps
 * its transaction open until release(): queries of kiln that touch the
 * locked tables wait, so they are surely in flight at a chosen moment.
 */
async function holdSession(db, sql)
{
	const { spawn } = require('node:child_process');
	const { pgBin } = require('./pg');
	const args = ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', db.pg.sock,
	    '-p', String(db.pg.port), '-U', 'postgres', '-d', db.name];
	const exe = path.join(pgBin(), 'psql');
	const [cmd, argv] = process.getuid() === 0 ?
	    ['runuser', ['-u', 'postgres', '--', exe, ...args]] : [exe, args];
	const c = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'],
	    cwd: db.pg.root });
	let out = '';
	c.stdout.on('data', (d) => {
		out += d;
	});
	c.stderr.on('data', (d) => {
		out += d;
	});
	c.stdin.write(`${sql}\n\\echo LOCKED\n`);
	await util.waitFor(() => out.includes('LOCKED'), { timeout: 10000,
	    interval: 20, what: `psql: ${sql} (${out})` });
	const release = () => new Promise((resolve) => {
		if (c.exitCode !== null || c.signalCode !== null) {
			resolve();
			return;
		}
		c.once('exit', () => resolve());
		try {
			c.stdin.end('ROLLBACK;\n\\q\n');
		} catch (e) {
			c.kill('SIGKILL');
		}
		setTimeout(() => c.kill('SIGKILL'), 3000).unref();
	});
	procs.onCleanup(release);
	return { release, output: () => out };
}

module.exports.holdSession = holdSession;
