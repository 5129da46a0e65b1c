'use strict';

/*
 * Spawn tests/upstream/oauth.js or fault.js on a free loopback port and
 * wait for its ready line.
 *
 *   const idp = await startOAuth(['--client', 'a:s:client_credentials']);
 *   idp.url, idp.port, idp.tokenUrl, await idp.stats(), await idp.reset(),
 *   await idp.control({...}), await idp.stop()
 *
 *   const f = await startFault(['--lifetime', '30']);
 *   await f.mode({ mode: 'hang', hang_ms: 20000 });
 */

const path = require('node:path');

const procs = require('./procs');
const { request } = require('./http');

const DIR = path.join(procs.REPO, 'tests', 'upstream');

function startUpstream(script, args = [], { readyTimeout = 15000 } = {})
{
	return new Promise((resolve, reject) => {
		const child = procs.spawnTracked(process.execPath,
		    [path.join(DIR, script), '--port', '0', ...args],
		    { cwd: procs.REPO, stdio: ['ignore', 'pipe', 'pipe'] },
		    script);
		let out = '';
		let err = '';
		let done = false;

		const fail = (msg) => {
			if (done)
				return;
			done = true;
			clearTimeout(timer);
			procs.stopProcess(child, 1000);
			reject(new Error(`${script}: ${msg}\n${err}`));
		};
		const timer = setTimeout(() => fail('no ready line'),
		    readyTimeout);

		child.on('error', (e) => fail(e.message));
		child.on('exit', (code, sig) => fail(`exited (${code ?? sig}) ` +
		    'before it was ready'));
		child.stderr.on('data', (d) => {
			err += d;
			if (err.length > 65536)
				err = err.slice(-32768);
		});
		child.stdout.on('data', (d) => {
			if (done)
				return;
			out += d;
			const nl = out.indexOf('\n');
			if (nl < 0)
				return;
			let ready;
			try {
				ready = JSON.parse(out.slice(0, nl));
			} catch (e) {
				fail(`bad ready line ${out.slice(0, nl)}`);
				return;
			}
			if (!ready.ready || !Number.isInteger(ready.port)) {
				fail(`bad ready line ${out.slice(0, nl)}`);
				return;
			}
			done = true;
			clearTimeout(timer);
			child.removeAllListeners('exit');
			resolve(Object.assign(wrap(child, ready.port,
			    () => err), { ready }));
		});
	});
}

function wrap(child, port, stderr)
{
	const url = `http://127.0.0.1:${port}`;
	let stopped = null;

	async function call(method, p, body)
	{
		const r = await request(url + p, { method, body,
		    timeout: 10000 });
		if (r.status !== 200)
			throw new Error(`${method} ${p}: ${r.status} ${r.text}`);
		return r.json;
	}

	const up = {
		child,
		pid: child.pid,
		port,
		url,
		tokenUrl: `${url}/token`,
		loginUrl: `${url}/login`,
		stats: () => call('GET', '/_stats'),
		reset: (body = {}) => call('POST', '/_reset', body),
		control: (body) => call('POST', '/_control', body),
		mode: (body) => call('POST', '/_mode', typeof body === 'string' ?
		    { mode: body } : body),
		stderr,
		/* Is a token accepted by the upstream's resource endpoint? */
		async protectedStatus(token)
		{
			const r = await request(`${url}/protected`, {
				headers: { Authorization: `Bearer ${token}` },
			});
			return r;
		},
		async introspect(token)
		{
			const r = await request(`${url}/introspect`, {
				method: 'POST',
				headers: { 'Content-Type':
				    'application/x-www-form-urlencoded' },
				body: `token=${encodeURIComponent(token)}`,
			});
			return r.json;
		},
		stop()
		{
			if (stopped === null)
				stopped = procs.stopProcess(child, 3000);
			return stopped;
		},
	};
	procs.onCleanup(() => up.stop());
	return up;
}

/*
 * tests/upstream/oidc.js (oidc-provider) with its JSON config; stats()
 * lists its grants and errors; jwksStale(id) expires its cache of a
 * client's jwks_uri.
 */
async function startOidc(config, opts)
{
	const up = await startUpstream('oidc.js', ['--config',
	    JSON.stringify(config)], Object.assign({ readyTimeout: 30000 },
	    opts));
	up.jwksStale = async (id) => {
		const r = await request(`${up.url}/_jwks_stale`, {
			method: 'POST', body: { client_id: id },
			timeout: 10000 });
		if (r.status !== 200)
			throw new Error(`_jwks_stale: ${r.status} ${r.text}`);
	};
	return up;
}

module.exports = {
	startOAuth: (args, opts) => startUpstream('oauth.js', args, opts),
	startFault: (args, opts) => startUpstream('fault.js', args, opts),
	/* oidc-provider behind HTTPS asking for client certificates. */
	startOidcMtls: (args, opts) => startUpstream('oidc_mtls.js', args,
	    opts),
	startOidc,
};
