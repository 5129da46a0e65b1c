'use strict';

/*
 * tests/upstream/pgproxy.js between kiln and a test cluster: a TCP proxy
 * the test switches to black-hole or reset mode and back.
 *
 *   const px = await startPgProxy(db);      // db from h.freshDb()
 *   px.url        a database URL for kiln, through the proxy
 *   await px.mode('blackhole' | 'reset' | 'pass'); await px.stats()
 */

const path = require('node:path');

const procs = require('./procs');
const { request } = require('./http');

const SCRIPT = path.join(procs.REPO, 'tests', 'upstream', 'pgproxy.js');

function startPgProxy(db, { readyTimeout = 15000 } = {})
{
	return new Promise((resolve, reject) => {
		const child = procs.spawnTracked(process.execPath, [SCRIPT,
		    '--port', '0', '--target', `127.0.0.1:${db.pg.port}`],
		    { cwd: procs.REPO, stdio: ['ignore', 'pipe', 'pipe'] },
		    'pgproxy.js');
		let out = '';
		let err = '';
		const timer = setTimeout(() => {
			procs.stopProcess(child, 1000);
			reject(new Error(`pgproxy: no ready line\n${err}`));
		}, readyTimeout);
		child.stderr.on('data', (d) => {
			err += d;
		});
		child.stdout.on('data', (d) => {
			out += d;
			const nl = out.indexOf('\n');
			if (nl < 0)
				return;
			clearTimeout(timer);
			const r = JSON.parse(out.slice(0, nl));
			const ctl = `http://127.0.0.1:${r.port}`;
			const call = async (method, p, body) => {
				const x = await request(ctl + p, { method, body,
				    timeout: 5000 });
				if (x.status !== 200)
					throw new Error(`pgproxy ${p}: ${x.text}`);
				return x.json;
			};
			const px = {
				child,
				port: r.proxy_port,
				url: `postgresql://postgres@127.0.0.1:` +
				    `${r.proxy_port}/${db.name}`,
				mode: (m) => call('POST', '/_mode', { mode: m }),
				stats: () => call('GET', '/_stats'),
				stop: () => procs.stopProcess(child, 2000),
			};
			procs.onCleanup(() => px.stop());
			resolve(px);
		});
	});
}

module.exports = { startPgProxy };
