'use strict';

/*
 * Issue 5 §1: TLS in kiln itself (Kore built from the patched copy).
 *
 * Three TLS listeners, each a kiln with its own kore.conf variant
 * (tls yes, tls_dhparam, certfile/certkey; KILN_MIGRATIONS_DIR set):
 *   rsa    RSA 2048 certificate, tls_version both, HSTS off (0)
 *   ecdsa  ECDSA P-256 certificate, tls_version both, HSTS 31536000
 *   ec12   ECDSA P-256, tls_version 1.2 (the pin is honoured)
 * plus one plain-HTTP kiln (HSTS 31536000) for the contrasts.
 * Each certificate comes from conf/gen-cert.sh with its own local CA and
 * is verified with curl --cacert (never -k) and by Debian's Chromium
 * trusting that CA through an NSS database (certutil).
 */

const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { before, describe, it } = require('node:test');

const h = require('../lib');
const p = require('../lib/prod');
const a = require('../lib/admin');

const pg = h.filePg();
const S = {};

const CHROMIUM = process.env.KILN_CHROMIUM || '/usr/bin/chromium';

before(async () => {
	const dir = h.procs.mkTmp('prod_tls');
	S.dir = dir;
	S.certs = {
		rsa: p.genCert(path.join(dir, 'rsa'), 'rsa'),
		ecdsa: p.genCert(path.join(dir, 'ecdsa'), 'ecdsa'),
	};
	const secret = h.secret('tls');
	S.idp = await h.startOAuth(['--lifetime', '600', '--client',
	    `tls:${secret}:client_credentials`]);
	S.db = await h.freshDb(pg, 'prod_tls');
	S.sources = [{ name: 'tls-src', kind: 'client_credentials',
	    token_url: S.idp.tokenUrl, client_id: 'tls', client_secret:
	    secret }];
	const env = { KILN_ADMIN_KEY: a.ADMIN_KEY };
	const variants = {
		rsa: { certDir: S.certs.rsa, version: 'both', hsts: 0 },
		ecdsa: { certDir: S.certs.ecdsa, version: 'both',
		    hsts: 31536000 },
		ec12: { certDir: S.certs.ecdsa, version: '1.2', hsts: 0 },
	};
	S.k = {};
	const masterKey = require('node:crypto').randomBytes(32)
	    .toString('base64');
	for (const [name, v] of Object.entries(variants)) {
		const conf = p.koreConf(path.join(dir, `conf-${name}`), {
			tls: { certDir: v.certDir, version: v.version },
			hsts: v.hsts,
		});
		S.k[name] = await h.startKiln({ name: `prod_tls_${name}`,
		    conf, databaseUrl: S.db.url, masterKey, workers: 1,
		    sources: S.sources, env,
		    ca: path.join(v.certDir, 'ca.pem') });
	}
	const plainConf = p.koreConf(path.join(dir, 'conf-plain'),
	    { hsts: 31536000 });
	S.k.plain = await h.startKiln({ name: 'prod_tls_plain',
	    conf: plainConf, databaseUrl: S.db.url, masterKey, workers: 1,
	    sources: S.sources, env });
});

/* curl -v against https://localhost:port (resolved to 127.0.0.1). */
function curlTls(k, certDir, extra, pathname = '/health')
{
	const args = ['-sS', '-v', '--max-time', '10',
	    '--resolve', `localhost:${k.port}:127.0.0.1`,
	    '-o', '/dev/null', '-w', '%{http_code} %{ssl_verify_result}'];
	if (certDir !== null)
		args.push('--cacert', path.join(certDir, 'ca.pem'));
	return p.curl([...args, ...extra,
	    `https://localhost:${k.port}${pathname}`]);
}

const VERSIONS = {
	'1.2': ['--tlsv1.2', '--tls-max', '1.2'],
	'1.3': ['--tlsv1.3'],
};

describe('TLS listener', () => {
	for (const type of ['rsa', 'ecdsa']) {
		for (const ver of ['1.2', '1.3']) {
			it(`tls_${type}_${ver.replace('.', '')}_curl_cacert`,
			    async () => {
				const k = S.k[type];
				const r = await curlTls(k, S.certs[type],
				    VERSIONS[ver]);
				assert.equal(r.code, 0, `curl failed: ${r.stderr}`);
				assert.equal(r.stdout, '200 0',
				    `status/verify: ${r.stdout}\n${r.stderr}`);
				assert.match(r.stderr, new RegExp(
				    `SSL connection using TLSv${ver.replace('.',
				    '\\.')}`), r.stderr);
				assert.match(r.stderr, /SSL certificate verify ok/);
				/* the certificate has the key type asked for */
				const x = execFileSync('openssl', ['x509', '-noout',
				    '-text', '-in', path.join(S.certs[type],
				    'server.pem')]).toString();
				assert.match(x, type === 'rsa' ? /rsaEncryption/ :
				    /id-ecPublicKey[\s\S]*P-256|prime256v1/);
				if (ver === '1.2')
					assert.match(r.stderr, type === 'rsa' ?
					    /ECDHE-RSA|DHE-RSA/ : /ECDHE-ECDSA/,
					    'TLS 1.2 cipher suite matches the key');
			});
		}
	}

	it('tls_token_api_over_https_ip_san', async () => {
		/* The API itself, by IP (SAN IP:127.0.0.1), TLS 1.3 */
		const k = S.k.ecdsa;
		const r = await p.curl(['-sS', '--max-time', '10', '--tlsv1.3',
		    '--cacert', path.join(S.certs.ecdsa, 'ca.pem'),
		    `https://127.0.0.1:${k.port}/api/tokens/tls-src/current-token`]);
		assert.equal(r.code, 0, r.stderr);
		const b = JSON.parse(r.stdout);
		assert.equal(b.valid, true, r.stdout);
		assert.equal(b.agent_name, 'tls-src');
		/* and via node's TLS stack with the CA */
		const q = await k.currentToken('tls-src');
		assert.equal(q.status, 200);
		assert.equal(q.json.token, b.token);
	});

	it('tls_untrusted_and_wrong_ca_are_refused', async () => {
		/* no --cacert: the system store does not know the local CA */
		const r = await curlTls(S.k.rsa, null, []);
		assert.equal(r.code, 60, `curl without the CA: ${r.code} ` +
		    `${r.stdout} ${r.stderr.slice(-300)}`);
		/* the other CA does not vouch for this certificate */
		const w = await curlTls(S.k.rsa, S.certs.ecdsa, []);
		assert.equal(w.code, 60, `wrong CA: ${w.code}`);
	});

	it('tls_version_pin_1_2_refuses_1_3', async () => {
		const ok = await curlTls(S.k.ec12, S.certs.ecdsa,
		    VERSIONS['1.2']);
		assert.equal(ok.stdout, '200 0', ok.stderr);
		const no = await curlTls(S.k.ec12, S.certs.ecdsa,
		    VERSIONS['1.3']);
		assert.notEqual(no.code, 0, 'a TLS 1.3-only client must fail ' +
		    'against tls_version 1.2');
		/* and the server survives the failed handshake */
		const again = await curlTls(S.k.ec12, S.certs.ecdsa, []);
		assert.equal(again.stdout, '200 0', again.stderr);
		assert.match(again.stderr, /TLSv1\.2/);
	});

	it('tls_many_handshakes_keep_the_server_up', async () => {
		/* 40 handshakes per key type, mixed versions, 8 at a time:
		 * the key manager (the patched path) answers them all */
		for (const type of ['rsa', 'ecdsa']) {
			const k = S.k[type];
			const jobs = [];
			for (let i = 0; i < 40; i++)
				jobs.push(() => k.get('/health'));
			const res = [];
			while (jobs.length > 0) {
				res.push(...await Promise.all(jobs.splice(0, 8)
				    .map((f) => f())));
			}
			assert.ok(res.every((r) => r.status === 200), type);
			assert.equal(k.exited, null, `${type} still running`);
		}
	});
});

describe('TLS in Chromium', () => {
	it('tls_chromium_trusts_rsa_and_ecdsa', { timeout: 90000 }, async () => {
		const { chromium } = require('playwright-core');
		/* A HOME with an NSS database that trusts both local CAs:
		 * Chromium on Linux verifies against it (no error bypass). */
		const home = path.join(S.dir, 'chromium-home');
		const nss = path.join(home, '.pki', 'nssdb');
		fs.mkdirSync(nss, { recursive: true });
		let viaNss = true;
		try {
			execFileSync('certutil', ['-N', '-d', `sql:${nss}`,
			    '--empty-password']);
			for (const type of ['rsa', 'ecdsa'])
				execFileSync('certutil', ['-A', '-d', `sql:${nss}`,
				    '-n', `kiln-${type}`, '-t', 'C,,', '-i',
				    path.join(S.certs[type], 'ca.pem')]);
		} catch (e) {
			viaNss = false;
		}
		const args = ['--no-sandbox', '--disable-gpu',
		    '--disable-background-networking',
		    '--disable-component-update', '--disable-sync',
		    '--host-resolver-rules=MAP localhost 127.0.0.1'];
		if (!viaNss) {
			/* fallback: pin the two servers' keys */
			args.push('--ignore-certificate-errors-spki-list=' +
			    ['rsa', 'ecdsa'].map((t) => p.spkiHash(path.join(
			    S.certs[t], 'server.pem'))).join(','));
		}
		const browser = await chromium.launch({ executablePath: CHROMIUM,
		    args, env: Object.assign({}, process.env, { HOME: home }),
		    timeout: 60000 });
		h.procs.onCleanup(() => browser.close());
		try {
			for (const [name, type, proto] of [
			    ['rsa', 'rsa', 'TLS 1.3'],
			    ['ecdsa', 'ecdsa', 'TLS 1.3'],
			    ['ec12', 'ecdsa', 'TLS 1.2']]) {
				const ctx = await browser.newContext();
				const page = await ctx.newPage();
				const resp = await page.goto(`https://localhost:` +
				    `${S.k[name].port}/dashboard/login`,
				    { timeout: 20000 });
				assert.ok(resp, `${name}: a response`);
				assert.equal(resp.status(), 200, name);
				const sd = await resp.securityDetails();
				assert.ok(sd, `${name}: security details`);
				assert.equal(sd.protocol, proto, `${name} protocol`);
				assert.match(sd.issuer,
				    /kiln local development CA/, name);
				assert.match(await page.content(),
				    /name="credential"/, `${name}: login form`);

				/* sign in through the form: the session cookie
				 * the browser keeps is Secure */
				await page.fill('#credential', a.ADMIN_KEY);
				const [post] = await Promise.all([
					page.waitForResponse((x) =>
					    x.url().endsWith('/dashboard/login') &&
					    x.request().method() === 'POST',
					    { timeout: 20000 }),
					page.click('button:has-text("Sign in")'),
				]);
				assert.equal(post.status(), 303, `${name}: login`);
				const cookies = await ctx.cookies();
				const sess = cookies.find((c) =>
				    c.name === 'kiln_session');
				assert.ok(sess, `${name}: session cookie ` +
				    JSON.stringify(cookies));
				assert.equal(sess.secure, true, `${name}: Secure`);
				assert.equal(sess.httpOnly, true);
				assert.equal(sess.sameSite, 'Strict');
				await ctx.close();
			}
		} finally {
			await browser.close();
		}
		assert.ok(viaNss, 'certutil (libnss3-tools) was available, so ' +
		    'the CA was trusted rather than the keys pinned');
	});
});

/* The login flow of tests/browser/lib/dash.js over any scheme. */
async function login(k)
{
	const f = await k.get('/dashboard/login');
	assert.equal(f.status, 200);
	const lc = [].concat(f.headers['set-cookie'] || [])
	    .find((c) => c.startsWith('kiln_login='));
	assert.ok(lc, 'kiln_login cookie');
	const v = /^kiln_login=([^;]*)/.exec(lc)[1];
	const r = await k.post('/dashboard/login', `csrf=${v}&credential=` +
	    encodeURIComponent(a.ADMIN_KEY), { headers: {
		'Content-Type': 'application/x-www-form-urlencoded',
		Cookie: `kiln_login=${v}`,
	    } });
	assert.equal(r.status, 303, `login: ${r.status} ${r.text}`);
	const sc = [].concat(r.headers['set-cookie'] || [])
	    .find((c) => c.startsWith('kiln_session='));
	assert.ok(sc, 'kiln_session cookie');
	return { loginCookie: lc, sessionCookie: sc };
}

describe('cookies and HSTS', () => {
	it('tls_session_cookie_is_secure', async () => {
		for (const name of ['rsa', 'ecdsa']) {
			const c = await login(S.k[name]);
			const attrs = c.sessionCookie.split(';')
			    .map((x) => x.trim().toLowerCase());
			assert.ok(attrs.includes('secure'),
			    `${name}: ${c.sessionCookie}`);
			assert.ok(attrs.includes('httponly'));
			assert.ok(attrs.includes('samesite=strict'));
			assert.ok(c.loginCookie.split(';').map((x) => x.trim()
			    .toLowerCase()).includes('secure'),
			    `${name}: login cookie ${c.loginCookie}`);
		}
		/* over plain HTTP the cookie cannot be Secure (the browser
		 * would never send it back) */
		const plain = await login(S.k.plain);
		assert.ok(!/;\s*secure/i.test(plain.sessionCookie),
		    plain.sessionCookie);
	});

	it('tls_hsts_configurable', async () => {
		const on = await S.k.ecdsa.get('/health');
		assert.equal(on.headers['strict-transport-security'],
		    'max-age=31536000; includeSubDomains');
		const tok = await S.k.ecdsa.currentToken('tls-src');
		assert.match(String(tok.headers['strict-transport-security']),
		    /^max-age=31536000\b/);
		const off = await S.k.rsa.get('/health');
		assert.equal(off.headers['strict-transport-security'],
		    undefined, 'http_hsts_enable 0: no header');
	});

	it('hsts_not_sent_over_plain_http', async () => {
		/* RFC 6797 §7.2: an HSTS host MUST NOT include the header in
		 * responses conveyed over non-secure transport. */
		const r = await S.k.plain.get('/health');
		assert.equal(r.status, 200);
		assert.equal(r.headers['strict-transport-security'], undefined,
		    'Strict-Transport-Security sent over plain HTTP: ' +
		    r.headers['strict-transport-security']);
	});
});
