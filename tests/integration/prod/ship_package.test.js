'use strict';

/*
 * kiln as operators install it (issue 16): `make deb` builds a Debian
 * package whose file list holds the binary, the unit, the manual pages
 * and the configuration, with its libraries declared and /etc/kiln as
 * conffiles, and lintian finds no error in it. Extracted into a
 * temporary root, the packaged binary checks its configuration and
 * serves a token with /etc-style paths pointed into that root, finding
 * its migrations under usr/share/kiln by itself. The shipped unit rates
 * <= 2.0 in `systemd-analyze security` and verifies clean; both manual
 * pages are clean under `mandoc -Tlint`.
 */

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { test, before } = require('node:test');

const h = require('../lib');
const procs = require('../lib/procs');

const pg = h.filePg();
const REPO = procs.REPO;
const VERSION = fs.readFileSync(path.join(REPO, 'src', 'kiln.h'), 'utf8')
    .match(/#define KILN_VERSION\s+"([^"]+)"/)[1];

/* Run a command; resolve { code, stdout, stderr } (never rejects). */
function run(cmd, args, opts = {})
{
	return new Promise((resolve) => {
		execFile(cmd, args, Object.assign({ maxBuffer: 64 << 20,
		    timeout: 600000 }, opts), (err, stdout, stderr) => {
			resolve({ code: err ? (err.code ?? 1) : 0,
			    stdout: String(stdout), stderr: String(stderr) });
		});
	});
}

let deb = null;
let root = null;

before(async () => {
	const r = await run('make', ['--no-print-directory', 'deb'],
	    { cwd: REPO });
	assert.equal(r.code, 0, `make deb:\n${r.stdout}\n${r.stderr}`);
	deb = path.join(REPO, '.build', 'deb',
	    `kiln_${VERSION}_${(await run('dpkg',
	    ['--print-architecture'])).stdout.trim()}.deb`);
	assert.ok(fs.existsSync(deb), `${deb} built`);
	root = procs.mkTmp('ship_root');
	const x = await run('dpkg-deb', ['-x', deb, root]);
	assert.equal(x.code, 0, x.stderr);
});

test('package_files_dependencies_conffiles_and_lintian',
    { timeout: 300000 }, async () => {
	const list = (await run('dpkg-deb', ['-c', deb])).stdout;
	for (const f of ['./usr/sbin/kiln', './lib/systemd/system/kiln.service',
	    './usr/share/man/man8/kiln.8.gz', './usr/share/man/man5/kiln.env.5.gz',
	    './etc/kiln/kore.conf', './etc/kiln/kiln.env',
	    './usr/share/kiln/migrations/001_init.sql']) {
		assert.match(list, new RegExp(` ${f.replace(/\./g, '\\.')}\n`),
		    `${f} in the package`);
	}
	assert.doesNotMatch(list, /master\.key/, 'no key in the package');

	const depends = (await run('dpkg-deb', ['-f', deb, 'Depends'])).stdout;
	for (const d of ['libpq5', 'libyajl2', 'libssl3', 'libcurl4', 'adduser'])
		assert.match(depends, new RegExp(`\\b${d}\\b`), `Depends: ${d}`);

	const conffiles = (await run('dpkg-deb', ['-I', deb, 'conffiles']))
	    .stdout.split('\n').filter(Boolean).sort();
	assert.deepEqual(conffiles, ['/etc/kiln/kiln.env',
	    '/etc/kiln/kore.conf']);

	const postinst = (await run('dpkg-deb', ['-I', deb, 'postinst'])).stdout;
	assert.match(postinst, /adduser --system --group .* kiln/s,
	    'a system user at install');

	const env = fs.readFileSync(path.join(root, 'etc/kiln/kiln.env'),
	    'utf8');
	assert.doesNotMatch(env, /^\s*KILN_(MASTER_KEY|JWT_SECRET|ADMIN_KEY)=\S/m,
	    'no secret in the example');

	const l = await run('lintian', [deb]);
	const errors = (l.stdout + l.stderr).split('\n')
	    .filter((x) => /^E: /.test(x));
	assert.deepEqual(errors, [], `lintian:\n${l.stdout}${l.stderr}`);
});

test('extracted_package_checks_and_serves_a_token', { timeout: 180000 },
    async () => {
	const db = await h.freshDb(pg, 'ship_pkg');
	const bin = path.join(root, 'usr/sbin/kiln');
	const conf = path.join(root, 'etc/kiln/kore.conf');
	const keyFile = path.join(root, 'etc/kiln/master.key');
	const sourcesFile = path.join(root, 'etc/kiln/sources.json');

	const v = await run(bin, ['version']);
	assert.equal(v.stdout, `kiln ${VERSION}\n`);
	const kg = await run(bin, ['keygen']);
	assert.equal(kg.code, 0, kg.stderr);
	fs.writeFileSync(keyFile, kg.stdout, { mode: 0o600 });

	const secret = h.secret('pkgcc');
	const idp = await h.startOAuth(['--lifetime', '600',
	    '--client', `pkgcc:${secret}:client_credentials`]);
	fs.writeFileSync(sourcesFile, JSON.stringify({ sources: [{
	    name: 'pkgcc', kind: 'client_credentials', token_url: idp.tokenUrl,
	    client_id: 'pkgcc', client_secret: secret }] }));

	const port = await h.freePort();
	const env = h.cleanEnv({ KILN_DATABASE_URL: db.url,
	    KILN_MASTER_KEY_FILE: keyFile, KILN_SOURCES_FILE: sourcesFile,
	    KILN_ENV_FILE: path.join(root, 'etc/kiln/kiln.env'),
	    KILN_BIND: `127.0.0.1:${port}`,
	    KILN_PIDFILE: path.join(root, 'kiln.pid') });
	const cwd = procs.mkTmp('ship_pkg_cwd');

	let c = await run(bin, ['-c', conf, 'check'], { env, cwd });
	assert.equal(c.code, 0, c.stderr);
	assert.match(c.stdout, new RegExp('^migrations: \\d+ of \\d+ pending \\(' +
	    `${path.join(root, 'usr/share/kiln/migrations')}\\)$`, 'm'));

	const child = procs.spawnTracked(bin, ['-f', '-c', conf],
	    { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] }, 'kiln-pkg');
	let log = '';
	child.stdout.on('data', (d) => (log += d));
	child.stderr.on('data', (d) => (log += d));
	const r = await h.waitFor(async () => {
		try {
			const x = await h.request(`http://127.0.0.1:${port}` +
			    '/api/tokens/pkgcc/current-token', { timeout: 2000 });
			return x.status === 200 ? x : false;
		} catch (e) {
			return false;
		}
	}, { timeout: 30000, what: 'a token from the packaged kiln' })
	    .catch((e) => {
		throw new Error(`${e.message}\n${log.slice(-3000)}`);
	});
	assert.equal(r.json.agent_name, 'pkgcc');
	await procs.stopProcess(child, 10000);

	c = await run(bin, ['-c', conf, 'check'], { env, cwd });
	assert.equal(c.code, 0, c.stderr);
	assert.match(c.stdout, /^migrations: 0 of \d+ pending/m);
	assert.match(c.stdout, /^master key: opens all 2 stored values/m);
});

test('unit_security_rating_and_verify', { timeout: 120000 }, async () => {
	const unit = path.join(root, 'lib/systemd/system/kiln.service');
	const text = fs.readFileSync(unit, 'utf8');
	for (const want of [/^Type=notify$/m, /^WatchdogSec=\d+/m,
	    /^EnvironmentFile=\/etc\/kiln\/kiln\.env$/m,
	    /^LoadCredential=master\.key:\/etc\/kiln\/master\.key$/m,
	    /^Environment=KILN_MASTER_KEY_FILE=%d\/master\.key$/m,
	    /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m, /^KillSignal=SIGTERM$/m,
	    /^User=kiln$/m])
		assert.match(text, want);
	/* The stop waits longer than the drain may take. */
	const stop = Number(text.match(/^TimeoutStopSec=(\d+)$/m)[1]);
	assert.ok(stop > 30, `TimeoutStopSec=${stop} > KILN_DRAIN_TIMEOUT`);

	const s = await run('systemd-analyze', ['security', '--offline=yes',
	    '--no-pager', unit]);
	const m = (s.stdout + s.stderr).match(
	    /Overall exposure level for kiln\.service: (\d+\.\d+) (\S+)/);
	assert.ok(m, `systemd-analyze security:\n${s.stdout}${s.stderr}`);
	assert.ok(Number(m[1]) <= 2.0, `exposure ${m[1]} ${m[2]}`);
	assert.equal(m[2], 'OK');

	/* verify wants the binary where ExecStart says: the extracted one. */
	const dir = procs.mkTmp('ship_unit');
	fs.writeFileSync(path.join(dir, 'kiln.service'), text.replace(
	    /\/usr\/sbin\/kiln/g, path.join(root, 'usr/sbin/kiln')));
	const v = await run('systemd-analyze', ['verify',
	    path.join(dir, 'kiln.service')], { env: Object.assign({},
	    process.env, { MANPATH: path.join(root, 'usr/share/man') }) });
	assert.equal(v.code, 0, v.stderr);
	assert.equal((v.stdout + v.stderr).trim(), '');
});

test('manual_pages_are_mandoc_lint_clean', async () => {
	const dir = path.join(REPO, 'docs', 'man');
	for (const page of ['kiln.8', 'kiln.env.5']) {
		/* Nothing at warning level or above. */
		let r = await run('mandoc', ['-Tlint', '-Wwarning', page],
		    { cwd: dir });
		assert.equal(r.code, 0, `${page}: ${r.stderr}`);
		assert.equal((r.stdout + r.stderr).trim(), '', page);

		/*
		 * Every style message too, but whether the pages it refers to
		 * (systemd(1), ...) are installed is the host's business.
		 */
		r = await run('mandoc', ['-Tlint', page], { cwd: dir });
		assert.equal(r.code, 0, `${page}: ${r.stderr}`);
		const msgs = (r.stdout + r.stderr).split('\n').filter((x) => x &&
		    !/referenced manual not found: Xr (postgres|systemd)|outdated mandoc\.db/
		    .test(x));
		assert.deepEqual(msgs, [], page);

		/* What the package ships is that page. */
		const sec = page.slice(-1);
		const z = await run('sh', ['-c', `zcat "$0"`, path.join(root,
		    `usr/share/man/man${sec}/${page}.gz`)]);
		assert.equal(z.stdout, fs.readFileSync(path.join(dir, page),
		    'utf8'), `packaged ${page}`);
	}
	const kiln8 = fs.readFileSync(path.join(dir, 'kiln.8'), 'utf8');
	for (const cmd of ['check', 'migrate', 'keygen', 'reseal', 'version'])
		assert.match(kiln8, new RegExp(`^\\.It Cm ${cmd}$`, 'm'));
});
