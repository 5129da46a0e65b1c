'use strict';

/*
 * A wall screen keeps the page open all day: its socket must not be cut
 * while the server pushes every second. Kore closes a WebSocket after
 * websocket_timeout (120 s by default) without *incoming* traffic, and
 * neither the page nor a node `ws` client sends anything.
 *
 * Takes 130 s, so it runs only with KILN_BROWSER_LONG=1.
 */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const h = require('../integration/lib');
const a = require('../integration/lib/admin');
const d = require('./lib/dash');

const pg = h.filePg();
const LONG = process.env.KILN_BROWSER_LONG === '1';
const HOLD_S = Number(process.env.KILN_LONG_SECONDS || 130);

test(`a page and a socket stay connected for ${HOLD_S} s`,
    { skip: LONG ? false : 'set KILN_BROWSER_LONG=1 (takes 130 s)',
    timeout: (HOLD_S + 60) * 1000 }, async () => {
	const env = await a.adminKiln(pg, 'dash_long', { lifetime: 600,
	    sources: [{ name: 'alpha' }] });
	const k = env.k;
	await h.waitToken(k, 'alpha');
	const rec = new d.Recorder();
	const s = await d.httpLogin(k, env.adminKey, { rec });
	const c = await d.wsClient(k, { cookie: s.cookie, rec });
	assert.ok(!c.refused);

	const browser = await d.launch();
	const context = await browser.newContext();
	await context.addCookies([{ name: 'kiln_session', value: s.token,
	    url: k.url }]);
	const page = await context.newPage();
	const w = d.watchPage(page, rec, k.url);
	await page.goto(`${k.url}/dashboard`);
	await page.waitForSelector('#live.on', { timeout: 10000 });
	const t0 = Date.now();
	/* Note every time the page says it is stale. */
	await page.evaluate(() => {
		window.kilnStale = [];
		new MutationObserver(() => {
			const l = document.getElementById('live');
			if (l.classList.contains('stale'))
				window.kilnStale.push(Date.now());
		}).observe(document.getElementById('live'),
		    { attributes: true, childList: true });
	});

	await h.sleep(HOLD_S * 1000);
	const stale = await page.evaluate(() => window.kilnStale);
	const closes = w.sockets.filter((x) => x.closed !== null)
	    .map((x) => x.closed - t0);
	const problems = [];
	if (c.closed !== null)
		problems.push(`node socket closed after ` +
		    `${c.closed.at - c.openedAt} ms (code ${c.closed.code}), ` +
		    `${c.frames} frames received`);
	if (closes.length > 0)
		problems.push(`the page's socket closed ${closes} ms after ` +
		    'load');
	if (stale.length > 0)
		problems.push(`the page went stale ${stale.map((x) => x - t0)} ` +
		    'ms after load');
	assert.deepEqual(problems, []);
});
