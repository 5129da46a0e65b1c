'use strict';

/*
 * Mutual TLS client authentication to upstreams (RFC 8705), against
 * oidc-provider 8.8.1 behind HTTPS asking for a client certificate
 * (tests/upstream/oidc_mtls.js). The openssl CLI makes a CA, the
 * server's certificate and the clients' in a directory of the test.
 *
 * tls_client_auth (a certificate of the CA, matched by subject DN) and
 * self_signed_tls_client_auth (matched by the thumbprint registered in
 * the client's jwks) obtain tokens, the provider saying so server-side;
 * tls_ca makes kiln trust the private CA of that upstream only; without
 * a certificate, or with one of another CA, the provider refuses and
 * that is an ordinary failure with its event. Bad PEMs are refused at
 * creation (422 naming the field). The client key is never returned,
 * logged, stored in clear (pg_dump) or written to a temporary file.
 */

const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { test } = require('node:test');

const h = require('../lib');
const a = require('../lib/admin');
const procs = require('../lib/procs');
const { startOidcMtls } = require('../lib/upstream');
const dash = require('../../browser/lib/dash');

const pg = h.filePg();

function openssl(dir, args)
{
	execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/* A CA, a server certificate for 127.0.0.1, and client certificates. */
function makePki()
{
	const dir = procs.mkTmp('mtls-pki');
	const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
	    '-nodes'];
	const ca = (name, cn) => openssl(dir, ['req', '-x509', ...ec,
	    '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2',
	    '-subj', `/CN=${cn}`]);
	const leaf = (name, cn, signer, days, ext) => {
		openssl(dir, ['req', ...ec, '-keyout', `${name}.key`, '-out',
		    `${name}.csr`, '-subj', `/CN=${cn}`]);
		if (ext)
			fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
		openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA',
		    `${signer}.pem`, '-CAkey', `${signer}.key`,
		    '-CAcreateserial', '-out', `${name}.pem`, '-days',
		    String(days), ...(ext ? ['-extfile', `${name}.ext`] : [])]);
	};
	ca('ca', 'kiln test CA');
	ca('rogue', 'rogue CA');
	leaf('server', '127.0.0.1', 'ca', 2,
	    'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
	leaf('client', 'kiln-mtls-client', 'ca', 10,
	    'extendedKeyUsage=clientAuth\n');
	leaf('roguec', 'kiln-mtls-client', 'rogue', 10,
	    'extendedKeyUsage=clientAuth\n');
	openssl(dir, ['req', '-x509', ...ec, '-keyout', 'self.key', '-out',
	    'self.pem', '-days', '30', '-subj', '/CN=kiln-self-signed']);
	const read = (f) => fs.readFileSync(path.join(dir, f), 'utf8');
	return { dir, read };
}

/* The base64 lines of a PEM: what a leak would carry in any shape. */
function pemBody(pem)
{
	return pem.split('\n').filter((l) => l && !l.startsWith('-----'));
}

/* Every regular file under dir (depth-limited), skipping skip. */
function filesUnder(dir, skip, depth = 4, out = [])
{
	let ents;
	try {
		ents = fs.readdirSync(dir, { withFileTypes: true });
	} catch (e) {
		return out;
	}
	for (const e of ents) {
		const p = path.join(dir, e.name);
		if (skip.some((s) => p === s || p.startsWith(s + path.sep)))
			continue;
		if (e.isDirectory() && depth > 0)
			filesUnder(p, skip, depth - 1, out);
		else if (e.isFile())
			out.push(p);
	}
	return out;
}

function api(k, method, p, body)
{
	return a.call(k, method, p, { auth: a.ADMIN_KEY, body });
}

async function events(k, name, pred, what)
{
	return h.waitFor(async () => {
		const r = await api(k, 'GET', `/api/tokens/${name}/events`);
		const e = (r.json.data.events || []).find(pred);
		return e || false;
	}, { timeout: 15000, interval: 100, what });
}

test('mtls_client_auth_against_oidc_provider', { timeout: 90000 },
    async () => {
	const started = Date.now();
	const pki = makePki();
	const secret = h.secret('plain');
	const idp = await startOidcMtls(['--dir', pki.dir, '--lifetime', '60',
	    '--client', 'pki:tls_client_auth:CN=kiln-mtls-client',
	    '--client', `self:self_signed_tls_client_auth:${path.join(pki.dir,
	    'self.pem')}`,
	    '--client', `plain:client_secret_post:${secret}`]);
	const tokenUrl = `https://127.0.0.1:${idp.ready.https_port}/token`;
	const stats = async () => (await h.request(`${idp.url}/_stats`))
	    .json.decisions;

	const kilnTmp = procs.mkTmp('mtls-kiln-tmpdir');
	const db = await h.freshDb(pg, 'mtls');
	const k = await h.startKiln({ name: 'mtls', databaseUrl: db.url,
	    sources: [], env: { KILN_ADMIN_KEY: a.ADMIN_KEY,
	    KILN_JWT_SECRET: a.JWT_SECRET, TMPDIR: kilnTmp } });

	const ca = pki.read('ca.pem');
	const clientKey = pki.read('client.key');
	const selfKey = pki.read('self.key');
	const base = { kind: 'client_credentials', token_url: tokenUrl,
	    refresh_buffer: 0, fallback_lifetime: 60 };

	/* tls_client_auth: a certificate of the CA, the CA trusted. */
	let r = await api(k, 'POST', '/api/tokens', Object.assign({
		name: 'pki', client_id: 'pki', auth_method: 'tls_client_auth',
		tls_client_cert: pki.read('client.pem'),
		tls_client_key: clientKey, tls_ca: ca,
	}, base));
	assert.equal(r.status, 201, r.text);
	r = await api(k, 'POST', '/api/tokens', Object.assign({
		name: 'self', client_id: 'self',
		auth_method: 'self_signed_tls_client_auth',
		tls_client_cert: pki.read('self.pem'), tls_client_key: selfKey,
		tls_ca: ca,
	}, base));
	assert.equal(r.status, 201, r.text);

	const pkiTok = await h.waitToken(k, 'pki');
	const selfTok = await h.waitToken(k, 'self');
	assert.notEqual(pkiTok.json.token, selfTok.json.token);

	/* The provider authenticated each client by its method. */
	const thumb = (pem) => crypto.createHash('sha256').update(
	    new crypto.X509Certificate(pem).raw).digest('base64url');
	let d = await stats();
	const ok = (c) => d.find((x) => x.client === c &&
	    x.outcome === 'success');
	assert.ok(ok('pki'), JSON.stringify(d));
	assert.equal(ok('pki').method, 'tls_client_auth');
	assert.equal(ok('pki').thumbprint, thumb(pki.read('client.pem')));
	assert.equal(ok('self').method, 'self_signed_tls_client_auth');
	assert.equal(ok('self').thumbprint, thumb(pki.read('self.pem')));

	/* The view: method, subject, notAfter, never the key. */
	r = await api(k, 'GET', '/api/tokens/pki');
	assert.equal(r.status, 200, r.text);
	const v = r.json.data;
	assert.equal(v.auth_method, 'tls_client_auth');
	assert.equal(v.tls_client_cert_subject, 'CN=kiln-mtls-client');
	const notAfter = new crypto.X509Certificate(pki.read('client.pem'))
	    .validTo;
	assert.equal(Date.parse(v.tls_client_cert_not_after),
	    Date.parse(notAfter));
	assert.equal(v.tls_client_key_set, true);
	assert.equal(v.tls_ca_set, true);
	assert.ok(!('tls_client_key' in v), 'no key in the view');

	/* 10 days left: the alert on /health/detailed and in metrics. */
	r = await k.get('/health/detailed');
	const certs = r.json.checks.client_certificates;
	assert.equal(certs.status, 'warning', JSON.stringify(certs));
	assert.deepEqual(certs.expiring.map((x) => x.source).sort(),
	    ['pki']);
	/* The dashboard: method, subject and end; the alert. */
	const s = await dash.httpLogin(k, a.ADMIN_KEY);
	const page = (await k.get('/dashboard', { headers:
	    { Cookie: s.cookie } })).text;
	const day = new Date(Date.parse(notAfter)).toISOString().slice(0, 10);
	assert.ok(page.includes('<small class="auth">tls_client_auth ' +
	    `CN=kiln-mtls-client until ${day}</small>`), page);
	assert.match(page, new RegExp('<b>pki</b>: its TLS client ' +
	    'certificate expires in (9|10) days'));
	assert.ok(!page.includes('<b>self</b>: its TLS'), 'self: 30 days');
	assert.ok(!page.includes(pemBody(clientKey)[1]));
	r = await k.get('/metrics');
	assert.match(r.text, new RegExp('kiln_tls_client_cert_not_after_' +
	    `seconds\\{source="pki"\\} ${Date.parse(notAfter) / 1000}\\n`));

	/* Forced refresh: a new token, again by certificate. */
	const before = d.length;
	r = await api(k, 'POST', '/api/tokens/pki/refresh');
	assert.ok([200, 202].includes(r.status), r.text);
	await h.waitFor(async () => {
		const t = await k.currentToken('pki');
		return t.status === 200 && t.json.token !== pkiTok.json.token;
	}, { timeout: 10000, what: 'a new pki token' });
	d = await stats();
	assert.ok(d.slice(before).some((x) => x.client === 'pki' &&
	    x.outcome === 'success' && x.method === 'tls_client_auth'));

	/* Without tls_ca the provider's certificate is not trusted. */
	r = await api(k, 'POST', '/api/tokens', Object.assign({
		name: 'noca', client_id: 'pki', auth_method: 'tls_client_auth',
		tls_client_cert: pki.read('client.pem'),
		tls_client_key: clientKey,
	}, base));
	assert.equal(r.status, 201, r.text);
	let e = await events(k, 'noca', (x) => x.outcome === 'failure',
	    'a failure of noca');
	assert.match(String(e.error), /certificate|SSL/i);

	/* Without a certificate the provider refuses: invalid_client. */
	r = await api(k, 'POST', '/api/tokens', Object.assign({
		name: 'nocert', client_id: 'pki', client_secret: 'guess',
		tls_ca: ca,
	}, base));
	assert.equal(r.status, 201, r.text);
	e = await events(k, 'nocert', (x) => x.outcome === 'failure',
	    'a failure of nocert');
	assert.ok([400, 401].includes(e.http_status), JSON.stringify(e));
	assert.match(String(e.error), /invalid_client/);

	/* A certificate of another CA with the same subject: refused. */
	r = await api(k, 'POST', '/api/tokens', Object.assign({
		name: 'rogue', client_id: 'pki', auth_method: 'tls_client_auth',
		tls_client_cert: pki.read('roguec.pem'),
		tls_client_key: pki.read('roguec.key'), tls_ca: ca,
	}, base));
	assert.equal(r.status, 201, r.text);
	e = await events(k, 'rogue', (x) => x.outcome === 'failure',
	    'a failure of rogue');
	assert.match(String(e.error), /invalid_client/);
	d = await stats();
	assert.ok(d.some((x) => x.client === 'pki' && x.outcome === 'error' &&
	    /not verified/.test(x.error) &&
	    x.thumbprint === thumb(pki.read('roguec.pem'))), JSON.stringify(d));
	assert.equal((await k.currentToken('rogue')).status, 503);

	/* Bad input: 422 naming the field. */
	const bad = async (body, field) => {
		const x = await api(k, 'POST', '/api/tokens', Object.assign({
			name: 'bad', client_id: 'pki',
			auth_method: 'tls_client_auth',
			tls_client_cert: pki.read('client.pem'),
			tls_client_key: clientKey,
		}, base, body));
		a.assertError(x, 422, JSON.stringify(Object.keys(body)),
		    { field });
		assert.ok(!x.text.includes(pemBody(clientKey)[0]));
	};
	await bad({ tls_client_key: selfKey }, 'tls_client_key');
	await bad({ tls_client_key: 'nope' }, 'tls_client_key');
	await bad({ tls_client_cert: clientKey }, 'tls_client_cert');
	await bad({ tls_client_cert: 'garbage' }, 'tls_client_cert');
	await bad({ tls_ca: 'garbage' }, 'tls_ca');
	await bad({ tls_client_key: undefined }, 'tls_client_key');
	await bad({ token_url: tokenUrl.replace('https', 'http') },
	    'token_url');

	/* PATCH keeps the sealed key; the token still comes. */
	r = await api(k, 'PATCH', '/api/tokens/pki', { scope: null });
	assert.equal(r.status, 200, r.text);
	assert.equal(r.json.data.tls_client_key_set, true);

	/* The key is nowhere: answers, logs, the database, temp files. */
	const needles = [...pemBody(clientKey), ...pemBody(selfKey)];
	const texts = [
		['GET /api/tokens', (await api(k, 'GET', '/api/tokens')).text],
		['events', (await api(k, 'GET', '/api/tokens/pki/events')).text],
		['logs', k.logs()],
		['pg_dump', await a.dataDump(db)],
	];
	for (const f of filesUnder(os.tmpdir(), [pki.dir]).concat(
	    filesUnder(kilnTmp, []), filesUnder(k.dir, []))) {
		let st;
		try {
			st = fs.statSync(f);
		} catch (x) {
			continue;
		}
		if (st.mtimeMs < started - 1000 || st.size > (8 << 20))
			continue;
		try {
			texts.push([f, fs.readFileSync(f, 'latin1')]);
		} catch (x) {
			/* not ours to read */
		}
	}
	assert.ok(texts.length > 4);
	for (const [where, text] of texts) {
		for (const n of needles) {
			assert.ok(!text.includes(n), `client key material in ` +
			    `${where}`);
		}
	}
	assert.match(texts[3][1], /BEGIN CERTIFICATE/, 'the dump has the sources');
});

function keyId(b64)
{
	return crypto.createHash('sha256').update(Buffer.concat([
	    Buffer.from('kiln-key-id:'), Buffer.from(b64, 'base64')]))
	    .digest('hex').slice(0, 8);
}

/* A master key rotation re-seals the client key; the old key can go. */
test('tls_client_key_follows_a_master_key_rotation', { timeout: 90000 },
    async () => {
	const pki = makePki();
	const idp = await startOidcMtls(['--dir', pki.dir, '--lifetime', '600',
	    '--client', 'pki:tls_client_auth:CN=kiln-mtls-client']);
	const tokenUrl = `https://127.0.0.1:${idp.ready.https_port}/token`;
	const keyA = crypto.randomBytes(32).toString('base64');
	const keyB = crypto.randomBytes(32).toString('base64');
	const db = await h.freshDb(pg, 'mtls_keys');
	const env = { KILN_ADMIN_KEY: a.ADMIN_KEY };
	const k = await h.startKiln({ name: 'mtls_keys', databaseUrl: db.url,
	    masterKey: keyA, sources: [], env });
	let r = await api(k, 'POST', '/api/tokens', {
		name: 'pki', kind: 'client_credentials', token_url: tokenUrl,
		client_id: 'pki', auth_method: 'tls_client_auth',
		tls_client_cert: pki.read('client.pem'),
		tls_client_key: pki.read('client.key'), tls_ca: pki.read('ca.pem'),
	});
	assert.equal(r.status, 201, r.text);
	await h.waitToken(k, 'pki');
	const sealed = async () => (await db.pg.queryJson('SELECT ' +
	    'tls_client_key_sealed AS b FROM token_sources', { db: db.name }))
	    [0].b;
	assert.ok((await sealed()).includes(`.${keyId(keyA)}.`));
	await k.stop();

	env.KILN_MASTER_KEY = keyB;
	env.KILN_MASTER_KEY_OLD = keyA;
	await k.start();
	await h.waitFor(async () => {
		const x = await k.get('/health/detailed');
		const sec = x.json && x.json.checks && x.json.checks.secrets;
		return sec && sec.pass === 'done' &&
		    sec.rows_under_retired_keys === 0;
	}, { timeout: 20000, what: 'the re-seal pass to finish' });
	assert.ok((await sealed()).includes(`.${keyId(keyB)}.`),
	    'the client key is sealed under key B');
	await k.stop();

	/* Key A gone: the certificate's key still opens, tokens come. */
	delete env.KILN_MASTER_KEY_OLD;
	await k.start();
	const cur = await h.waitToken(k, 'pki');
	r = await api(k, 'POST', '/api/tokens/pki/refresh');
	assert.equal(r.status, 202, r.text);
	await h.waitFor(async () => {
		const t = await k.currentToken('pki');
		return t.status === 200 && t.json.token !== cur.json.token;
	}, { timeout: 15000, what: 'pki refreshed under key B' });
});

/* Configuration as code: the PEMs come from the environment. */
test('mtls_source_from_the_sources_file', { timeout: 60000 }, async () => {
	const pki = makePki();
	const idp = await startOidcMtls(['--dir', pki.dir, '--lifetime', '600',
	    '--client', 'self:self_signed_tls_client_auth:' +
	    path.join(pki.dir, 'self.pem')]);
	const db = await h.freshDb(pg, 'mtls_file');
	const k = await h.startKiln({ name: 'mtls_file', databaseUrl: db.url,
	    sources: [{ name: 'self', kind: 'client_credentials',
	    token_url: `https://127.0.0.1:${idp.ready.https_port}/token`,
	    client_id: 'self', auth_method: 'self_signed_tls_client_auth',
	    tls_client_cert: { env: 'T_CERT' }, tls_client_key: { env: 'T_KEY' },
	    tls_ca: { env: 'T_CA' } }],
	    env: { KILN_ADMIN_KEY: a.ADMIN_KEY, T_CERT: pki.read('self.pem'),
	    T_KEY: pki.read('self.key'), T_CA: pki.read('ca.pem') } });
	await h.waitToken(k, 'self');
	const d = (await h.request(`${idp.url}/_stats`)).json.decisions;
	assert.ok(d.some((x) => x.client === 'self' &&
	    x.outcome === 'success' &&
	    x.method === 'self_signed_tls_client_auth'), JSON.stringify(d));
	const r = await api(k, 'GET', '/api/tokens/self');
	assert.equal(r.json.data.tls_client_cert_subject, 'CN=kiln-self-signed');
	/* 30 days left: no alert. */
	const x = await k.get('/health/detailed');
	assert.equal(x.json.checks.client_certificates.status, 'healthy');
	assert.deepEqual(x.json.checks.client_certificates.expiring, []);
	/* The file names variables only: no PEM in it. */
	const file = fs.readFileSync(path.join(k.dir, 'sources.json'), 'utf8');
	assert.ok(!file.includes('BEGIN'));
});
