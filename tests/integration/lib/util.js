'use strict';

/* Small helpers shared by the harness and the tests (HTTP: http.js). */

const crypto = require('node:crypto');
const net = require('node:net');

const ISO_Z = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/;

function sleep(ms)
{
	return new Promise((r) => setTimeout(r, ms));
}

/* A port nobody listens on right now (bind 0 on loopback, close). */
function freePort()
{
	return new Promise((resolve, reject) => {
		const s = net.createServer();
		s.unref();
		s.on('error', reject);
		s.listen(0, '127.0.0.1', () => {
			const { port } = s.address();
			s.close(() => resolve(port));
		});
	});
}

/* Poll fn until it returns a truthy value; throw with the last error or
 * result when timeoutMs passes. */
async function waitFor(fn, { timeout = 10000, interval = 100,
    what = 'condition' } = {})
{
	const deadline = Date.now() + timeout;
	let last;

	for (;;) {
		try {
			const v = await fn();
			if (v)
				return v;
			last = v;
		} catch (e) {
			last = e;
		}
		if (Date.now() >= deadline) {
			const detail = last instanceof Error ? last.message :
			    JSON.stringify(last);
			throw new Error(`timed out after ${timeout} ms waiting ` +
			    `for ${what} (last: ${detail})`);
		}
		await sleep(interval);
	}
}

/* kiln's fingerprint: first 12 hex of SHA-256. */
function fingerprint(s)
{
	return crypto.createHash('sha256').update(s).digest('hex').slice(0, 12);
}

/* A distinctive secret that is easy to find if it leaks. */
function secret(prefix)
{
	return `${prefix}-${crypto.randomBytes(18).toString('hex')}`;
}

function parseIso(s)
{
	if (typeof s !== 'string' || !ISO_Z.test(s))
		return NaN;
	return Date.parse(s);
}

module.exports = {
	ISO_Z,
	sleep,
	freePort,
	waitFor,
	fingerprint,
	secret,
	parseIso,
};
