'use strict';

/*
 * A private PostgreSQL 15 cluster for a test file: initdb in a temp dir
 * below the run directory (as user postgres when we are root), listening on
 * a Unix socket in that dir and on 127.0.0.1:<free port>, trust auth.
 *
 *   const pg = await startPg();
 *   const db = await pg.createDatabase('t1');   // {name, url, conninfo}
 *   await pg.query('select 1', { db: 't1' });
 *   await pg.queryJson('select * from tokens', { db: 't1' });
 *   await pg.dump('t1');
 *   await pg.stop(); await pg.start(); await pg.destroy();
 */

const { execFile, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const procs = require('./procs');
const { freePort } = require('./util');

function pgBin()
{
	if (process.env.PG_BIN)
		return process.env.PG_BIN;
	const base = '/usr/lib/postgresql';
	let vers = [];
	try {
		vers = fs.readdirSync(base).filter((v) => /^\d+$/.test(v))
		    .sort((a, b) => Number(b) - Number(a));
	} catch (e) {
		/* fall through */
	}
	if (vers.includes('15'))
		return path.join(base, '15', 'bin');
	if (vers.length > 0)
		return path.join(base, vers[0], 'bin');
	throw new Error('PostgreSQL server binaries not found ' +
	    '(apt-get install postgresql-15, or set PG_BIN)');
}

const BIN = pgBin();
const AS_ROOT = process.getuid() === 0;
let pgUid = null;
let pgGid = null;
if (AS_ROOT) {
	const r = spawnSync('id', ['-u', 'postgres']);
	const g = spawnSync('id', ['-g', 'postgres']);
	if (r.status !== 0)
		throw new Error('running as root but there is no postgres user');
	pgUid = Number(r.stdout.toString());
	pgGid = Number(g.stdout.toString());
}

/* argv for a server-side binary, as postgres when we are root. */
function asPg(bin, args)
{
	const exe = path.join(BIN, bin);
	return AS_ROOT ? ['runuser', ['-u', 'postgres', '--', exe, ...args]] :
	    [exe, args];
}

function run(bin, args, { cwd, input, maxBuffer = 256 << 20,
    timeout = 60000 } = {})
{
	const [cmd, argv] = asPg(bin, args);
	return new Promise((resolve, reject) => {
		const p = execFile(cmd, argv, { cwd, maxBuffer, timeout,
		    encoding: 'utf8' }, (err, stdout, stderr) => {
			if (err) {
				err.message += `\n${bin} ${args.join(' ')}: ` +
				    `${stderr}`;
				err.stdout = stdout;
				err.stderr = stderr;
				reject(err);
				return;
			}
			resolve({ stdout, stderr });
		});
		if (input !== undefined)
			p.stdin.end(input);
	});
}

function runSync(bin, args, cwd)
{
	const [cmd, argv] = asPg(bin, args);
	return spawnSync(cmd, argv, { cwd, timeout: 30000 });
}

function chownPg(p)
{
	if (AS_ROOT)
		fs.chownSync(p, pgUid, pgGid);
}

function postmasterPid(data)
{
	try {
		const pid = Number(fs.readFileSync(path.join(data,
		    'postmaster.pid'), 'utf8').split('\n')[0]);
		return Number.isInteger(pid) && pid > 0 ? pid : null;
	} catch (e) {
		return null;
	}
}

function alive(pid)
{
	try {
		process.kill(pid, 0);
		return true;
	} catch (e) {
		return e.code === 'EPERM';
	}
}

/* Stop clusters that earlier test processes (now dead) left running. */
function reapStale()
{
	let entries = [];
	try {
		entries = fs.readdirSync(procs.runDir);
	} catch (e) {
		return;
	}
	for (const e of entries) {
		if (!e.startsWith('pg-'))
			continue;
		const root = path.join(procs.runDir, e);
		let owner = null;
		try {
			owner = Number(fs.readFileSync(path.join(root, 'owner'),
			    'utf8'));
		} catch (err) {
			continue;
		}
		if (owner === process.pid || alive(owner))
			continue;
		stopSync(path.join(root, 'data'));
		spawnSync('rm', ['-rf', root]);
	}
}

function stopSync(data)
{
	const pid = postmasterPid(data);
	if (pid === null || !alive(pid))
		return;
	const r = runSync('pg_ctl', ['-D', data, '-m', 'immediate', '-w',
	    '-t', '10', 'stop'], path.dirname(data));
	if (r.status !== 0 && alive(pid)) {
		try {
			process.kill(pid, 'SIGQUIT');
		} catch (e) {
			/* gone */
		}
	}
}

async function startPg({ label = 'pg' } = {})
{
	reapStale();

	const root = fs.mkdtempSync(path.join(procs.runDir, 'pg-'));
	const data = path.join(root, 'data');
	const sock = path.join(root, 'sock');
	let port = null;
	let running = false;

	fs.writeFileSync(path.join(root, 'owner'), String(process.pid));
	fs.chmodSync(root, 0o755);
	fs.mkdirSync(sock);
	chownPg(root);
	chownPg(sock);

	const unregister = procs.onExitSync(() => {
		stopSync(data);
		spawnSync('rm', ['-rf', root]);
	});

	await run('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust',
	    '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'],
	    { cwd: root });
	fs.appendFileSync(path.join(data, 'postgresql.conf'), [
		'',
		'# kiln integration tests',
		"listen_addresses = '127.0.0.1'",
		`unix_socket_directories = '${sock}'`,
		'max_connections = 300',
		'shared_buffers = 32MB',
		'fsync = off',
		'synchronous_commit = off',
		'full_page_writes = off',
		"log_min_messages = 'warning'",
		"log_line_prefix = '%m [%p] %d '",
		'',
	].join('\n'));

	async function start()
	{
		if (running)
			return;
		let lastErr = null;
		for (let i = 0; i < 5; i++) {
			if (port === null || i > 0)
				port = await freePort();
			try {
				await run('pg_ctl', ['-D', data, '-l',
				    path.join(root, 'postgres.log'), '-w',
				    '-t', '30', '-o', `-p ${port}`, 'start'],
				    { cwd: root });
				running = true;
				return;
			} catch (e) {
				lastErr = e;
				stopSync(data);
			}
		}
		let log = '';
		try {
			log = fs.readFileSync(path.join(root, 'postgres.log'),
			    'utf8').slice(-2000);
		} catch (e) {
			/* none */
		}
		throw new Error(`${label}: PostgreSQL did not start: ` +
		    `${lastErr && lastErr.message}\n${log}`);
	}

	async function stop()
	{
		if (!running && postmasterPid(data) === null)
			return;
		const pid = postmasterPid(data);
		try {
			await run('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t',
			    '20', 'stop'], { cwd: root });
		} catch (e) {
			if (pid !== null && alive(pid)) {
				try {
					process.kill(pid, 'SIGKILL');
				} catch (err) {
					/* gone */
				}
			}
		}
		running = false;
	}

	async function destroy()
	{
		await stop();
		unregister();
		fs.rmSync(root, { recursive: true, force: true });
	}

	function psqlArgs(db)
	{
		return ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', sock,
		    '-p', String(port), '-U', 'postgres', '-d', db];
	}

	async function query(sql, { db = 'kiln' } = {})
	{
		const { stdout } = await run('psql', [...psqlArgs(db), '-A', '-t',
		    '-c', sql], { cwd: root });
		return stdout;
	}

	/* Rows of a SELECT as objects (via json_agg). */
	async function queryJson(sql, { db = 'kiln' } = {})
	{
		const out = await query(`SELECT coalesce(json_agg(q), '[]') ` +
		    `FROM (${sql}) q`, { db });
		return JSON.parse(out.trim() || '[]');
	}

	async function createDatabase(name)
	{
		if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name))
			throw new Error(`bad database name ${name}`);
		await query(`CREATE DATABASE "${name}"`, { db: 'postgres' });
		return {
			name,
			url: `postgresql://postgres@127.0.0.1:${port}/${name}`,
			conninfo: `host=127.0.0.1 port=${port} dbname=${name} ` +
			    'user=postgres',
			socketConninfo: `host=${sock} port=${port} ` +
			    `dbname=${name} user=postgres`,
		};
	}

	async function dump(db = 'kiln')
	{
		const { stdout } = await run('pg_dump', ['-h', sock, '-p',
		    String(port), '-U', 'postgres', '--no-owner', db],
		    { cwd: root });
		return stdout;
	}

	await start();
	await createDatabase('kiln');

	const pg = {
		get port() {
			return port;
		},
		root,
		data,
		sock,
		get url() {
			return `postgresql://postgres@127.0.0.1:${port}/kiln`;
		},
		start,
		stop,
		destroy,
		query,
		queryJson,
		createDatabase,
		dump,
		pid: () => postmasterPid(data),
	};
	procs.onCleanup(destroy);
	return pg;
}

module.exports = { startPg, pgBin };
