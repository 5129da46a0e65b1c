#!/usr/bin/env node
'use strict';

/*
 * bench/phase_ent.js: enterprise upstreams, measured against a baseline
 * of the same run (oidc-provider behind HTTPS, tests/upstream/oidc_mtls.js,
 * a private CA made with the openssl CLI, one kiln with 2 workers):
 *
 *  1. refresh latency (admin refresh -> new token served) of a
 *     tls_client_auth source vs a client_secret_post source over the
 *     same HTTPS upstream (baseline): the cost of the client certificate;
 *  2. token exchange follow latency (subject's new token served ->
 *     exchanged token served) vs the subject's own refresh latency
 *     (baseline): what the exchange adds on top of a refresh.
 *
 *	node bench/phase_ent.js [rounds]	(default 15)
 *
 * Prints medians (ms) and ratios. Uses the integration harness
 * (tests/integration/lib) to start PostgreSQL, the upstream and kiln.
 */

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const h = require('../tests/integration/lib');
const a = require('../tests/integration/lib/admin');
const procs = require('../tests/integration/lib/procs');
const { startOidcMtls } = require('../tests/integration/lib/upstream');

const ROUNDS = Number(process.argv[2] || 15);

function pki()
{
	const dir = procs.mkTmp('bench-pki');
	const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
	    '-nodes'];
	const run = (args) => execFileSync('openssl', args, { cwd: dir,
	    stdio: 'pipe' });
	run(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem',
	    '-days', '2', '-subj', '/CN=bench CA']);
	for (const [n, cn, ext] of [['server', '127.0.0.1',
	    'subjectAltName=IP:127.0.0.1\n'], ['client', 'bench-client',
	    'extendedKeyUsage=clientAuth\n']]) {
		run(['req', ...ec, '-keyout', `${n}.key`, '-out', `${n}.csr`,
		    '-subj', `/CN=${cn}`]);
		fs.writeFileSync(path.join(dir, `${n}.ext`), ext);
		run(['x509', '-req', '-in', `${n}.csr`, '-CA', 'ca.pem',
		    '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${n}.pem`,
		    '-days', '2', '-extfile', `${n}.ext`]);
	}
	return { dir, read: (f) => fs.readFileSync(path.join(dir, f), 'utf8') };
}

function median(xs)
{
	const s = [...xs].sort((x, y) => x - y);
	return s.length % 2 ? s[(s.length - 1) / 2] :
	    (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function changed(k, name, old)
{
	const t = await h.waitFor(async () => {
		const r = await k.currentToken(name);
		return r.status === 200 && r.json.token !== old ? r : false;
	}, { timeout: 15000, interval: 2, what: `a new ${name} token` });
	return t.json.token;
}

async function main()
{
	const p = pki();
	const secret = h.secret('bench');
	const idp = await startOidcMtls(['--dir', p.dir, '--lifetime', '600',
	    '--exchange',
	    '--client', 'mtls:tls_client_auth:CN=bench-client',
	    '--client', `plain:client_secret_post:${secret}`]);
	const url = `https://127.0.0.1:${idp.ready.https_port}/token`;
	const db = await h.freshDb(h.filePg(), 'bench_ent');
	const k = await h.startKiln({ name: 'bench_ent', databaseUrl: db.url,
	    sources: [], workers: 2, quiet: true,
	    env: { KILN_ADMIN_KEY: a.ADMIN_KEY } });
	const ca = p.read('ca.pem');
	const post = (body) => a.call(k, 'POST', '/api/tokens',
	    { auth: a.ADMIN_KEY, body: Object.assign({ token_url: url,
	    tls_ca: ca }, body) });
	await post({ name: 'plain', kind: 'client_credentials',
	    client_id: 'plain', client_secret: secret });
	await post({ name: 'mtls', kind: 'client_credentials',
	    client_id: 'mtls', auth_method: 'tls_client_auth',
	    tls_client_cert: p.read('client.pem'),
	    tls_client_key: p.read('client.key') });
	await post({ name: 'xch', kind: 'token_exchange',
	    subject_source: 'plain', client_id: 'plain',
	    client_secret: secret, audience: 'https://bench.example' });

	const cur = {};
	for (const n of ['plain', 'mtls', 'xch'])
		cur[n] = (await h.waitToken(k, n)).json.token;

	const lat = { plain: [], mtls: [], xch: [] };
	for (let i = 0; i < ROUNDS; i++) {
		for (const n of ['plain', 'mtls']) {
			const t0 = process.hrtime.bigint();
			await a.call(k, 'POST', `/api/tokens/${n}/refresh`,
			    { auth: a.ADMIN_KEY });
			cur[n] = await changed(k, n, cur[n]);
			const t1 = process.hrtime.bigint();
			lat[n].push(Number(t1 - t0) / 1e6);
			if (n === 'plain') {
				cur.xch = await changed(k, 'xch', cur.xch);
				lat.xch.push(Number(process.hrtime.bigint() -
				    t1) / 1e6);
			}
		}
	}

	const m = Object.fromEntries(Object.entries(lat).map(([n, v]) =>
	    [n, median(v)]));
	const f = (x) => x.toFixed(1);
	console.log(`phase_ent: ${ROUNDS} rounds, 2 workers, HTTPS upstream`);
	console.log(`refresh client_secret_post (baseline)  median ` +
	    `${f(m.plain)} ms`);
	console.log(`refresh tls_client_auth                median ` +
	    `${f(m.mtls)} ms  ratio ${(m.mtls / m.plain).toFixed(2)}`);
	console.log(`exchange follows subject (after it)    median ` +
	    `${f(m.xch)} ms  ratio to the subject's refresh ` +
	    `${(m.xch / m.plain).toFixed(2)}`);
	const st = (await h.request(`${idp.url}/_stats`)).json;
	console.log(`exchange calls ${st.exchanges.length} for ` +
	    `${ROUNDS + 1} subject generations`);
	await procs.cleanupAll();
	process.exit(0);
}

main().catch(async (e) => {
	console.error(e);
	await procs.cleanupAll();
	process.exit(1);
});
