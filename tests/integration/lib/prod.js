'use strict';

/*
 * Helpers for the production tests (tests/integration/prod/) and the
 * soak (tests/soak/soak.js): Kore config variants, certificates, pinned
 * workers, stored rows with times in ms. Loads no node:test hook, so
 * plain scripts may use it too. Instances are started with
 * lib/kiln.js startKiln (h.startKiln).
 *
 *   const p = require('../lib/prod');
 *   const conf = p.koreConf(dir, { tls: { certDir, version: 'both' },
 *       hsts: 31536000, maxConnections: 8 });
 *   const k = await h.startKiln({ name, conf, databaseUrl, masterKey,
 *       sourcesFile, workers: 2, env: {...}, ca: certDir + '/ca.pem' });
 *   k.get('/health'), k.signal('SIGTERM'), await k.waitExit(ms),
 *   k.kill9(), k.workerPids(), k.rss()
 *   const pins = await p.pinWorkers(k, 2);   // {prefix: Pinned}
 *   await pins[x].get('/api/tokens/a/current-token')
 */

const { execFile, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const procs = require('./procs');
const { Pinned, workerOf } = require('./http');
const util = require('./util');

const REPO = procs.REPO;

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
 * Keep-alive connections to k until `workers` distinct workers answered
 * (by their X-Request-Id prefix), `perWorker` of them each (held
 * connections alternate between the workers: the fair accept lock).
 * Returns {prefix: [Pinned, ...], spare: [...]}; all are closed at the
 * test's end.
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
	koreConf,
	genCert,
	spkiHash,
	curl,
	pinWorkers,
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
