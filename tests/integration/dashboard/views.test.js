'use strict';

/*
 * Issue 15 §2 (a page per token; the token table searched, filtered and
 * paged) and §3 (charts with history), against one kiln with 10 000
 * sources: 100 enabled against a real OAuth upstream, 50 enabled against
 * a closed port (failing), the rest disabled (pending).
 *
 * token_page_shows_history_timeline_and_errors: /dashboard/tokens/{name}
 *   shows the state, a 24 h SVG timeline with a bar per token held and a
 *   tick per attempt, the history paged by ?before= (25 a page, every
 *   row once), recent errors escaped; fingerprints only, never a token.
 * unknown_token_page_is_404: an unknown or malformed name, and no
 *   session at all (sent to the login).
 * table_filters_and_pages_without_js: the query string filters by name,
 *   kind, state and host and pages 50 at a time, on the server.
 * socket_pushes_only_the_rows_shown: the socket's URL carries the view;
 *   every tokens frame holds only rows of that page (never more than 50
 *   of the 10 000); a view sent over the socket changes what it gets.
 * charts_of_the_last_hour: the page and the socket carry the four SVG
 *   charts; requests made now show in the current minute.
 * browser_filters_pages_and_screenshots: Chromium filters by name and by
 *   state and pages; screenshots of the token page and of the filtered
 *   table at 1280x720 and 390x844 (in tests/browser/artifacts; with
 *   KILN_SCREENSHOTS=docs, the committed ones under docs/screenshots/).
 */

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test, before } = require('node:test');

const WebSocket = require('ws');

const h = require('../lib');
const a = require('../lib/admin');
const d = require('../../browser/lib/dash');

const pg = h.filePg();
const N = 10000;
const VALID = 100;
const FAILING = 50;
const SHOTS = process.env.KILN_SCREENSHOTS === 'docs' ?
    path.join(h.procs.REPO, 'docs', 'screenshots') : d.ARTIFACTS;

const S = {};

function name(i)
{
	return `s${String(i).padStart(5, '0')}`;
}

/* The rows ("<tr data-token=") of an HTML fragment, by name. */
function rowNames(html)
{
	return [...html.matchAll(/<tr data-token="([^"]*)">/g)].map((m) =>
	    m[1]);
}

function pagerOf(html)
{
	const m = /data-matched="(\d+)" data-total="(\d+)" data-page="(\d+)"/
	    .exec(html);
	assert.ok(m, `a pager in ${html.slice(0, 300)}`);
	return { matched: Number(m[1]), total: Number(m[2]),
	    page: Number(m[3]) };
}

/* A dashboard socket at /dashboard/ws?query, recording its frames. */
function socket(query)
{
	return new Promise((resolve, reject) => {
		const ws = new WebSocket(`ws://127.0.0.1:${S.k.port}` +
		    `/dashboard/ws${query}`, { headers: { Origin: S.k.url,
		    Cookie: S.s.cookie }, perMessageDeflate: false });
		const c = { ws, frames: [], bytes: 0 };
		ws.on('message', (data) => {
			const text = data.toString();
			c.bytes += text.length;
			c.frames.push(JSON.parse(text));
		});
		ws.on('open', () => resolve(c));
		ws.on('error', reject);
		h.procs.onCleanup(() => ws.terminate());
	});
}

function tokenFrames(c)
{
	return c.frames.filter((f) => f.type === 'patch' &&
	    f.target === 'tokens');
}

before(async () => {
	const secret = h.secret('shared');
	const idp = await h.startOAuth(['--lifetime', '3600', '--client',
	    `shared:${secret}:client_credentials`]);
	const db = await h.freshDb(pg, 'dash_views');
	/* The enabled ones through the sources file (sealed secrets)... */
	const sources = [];
	for (let i = 0; i < VALID + FAILING; i++) {
		sources.push({
			name: name(i),
			kind: 'client_credentials',
			token_url: i < VALID ? idp.tokenUrl :
			    'http://127.0.0.1:9/token',
			client_id: 'shared',
			client_secret: secret,
		});
	}
	const k = await h.startKiln({ name: 'dash_views', databaseUrl: db.url,
	    sources, workers: 2, env: { KILN_ADMIN_KEY: a.ADMIN_KEY } });
	S.k = k;
	S.db = db;
	S.secret = secret;

	/* ...the other 9 850, disabled, in one statement, then told. */
	await db.pg.query(`WITH s AS (INSERT INTO token_sources (name, kind,
	    token_url, client_id, enabled) SELECT
	    's' || lpad(g::text, 5, '0'),
	    CASE WHEN g % 2 = 0 THEN 'password' ELSE 'client_credentials' END,
	    '${idp.tokenUrl}', 'shared', false
	    FROM generate_series(${VALID + FAILING}, ${N - 1}) g RETURNING id)
	    INSERT INTO tokens (source_id) SELECT id FROM s;
	    NOTIFY kiln_tokens, '*'`, { db: db.name });

	await h.waitFor(async () => {
		const r = await k.get('/api/tokens/' + name(VALID - 1) +
		    '/current-token');
		return r.status === 200;
	}, { timeout: 30000, what: 'the valid sources have tokens' });
	S.s = await d.httpLogin(k, a.ADMIN_KEY);
	/* Every worker has the 10 000 (a page per worker, to be sure). */
	await h.waitFor(async () => {
		for (let i = 0; i < 4; i++) {
			const r = await k.get('/dashboard', { headers:
			    { Cookie: S.s.cookie } });
			if (!r.text.includes(`data-total="${N}"`))
				return false;
		}
		return true;
	}, { timeout: 15000, what: 'the workers see 10 000 sources' });
});

test('token_page_shows_history_timeline_and_errors', async () => {
	const k = S.k;
	const src = name(3);
	const tok = (await h.waitToken(k, src)).json.token;

	/* 60 attempts over the day, bulk: every fourth a failure whose
	 * error would be markup if it were not escaped. */
	await S.db.pg.query(`INSERT INTO refresh_events (source_id, trigger,
	    started_at, finished_at, outcome, duration_ms, http_status, error,
	    generation, fingerprint) SELECT s.id, 'schedule',
	    now() - (g * interval '20 minutes') - interval '1 second',
	    now() - (g * interval '20 minutes'),
	    CASE WHEN g % 4 = 0 THEN 'failure' ELSE 'success' END, 40 + g,
	    CASE WHEN g % 4 = 0 THEN 502 ELSE 200 END,
	    CASE WHEN g % 4 = 0 THEN '<img src=x onerror=alert(' || g || ')>'
	    END, NULL, NULL
	    FROM token_sources s, generate_series(1, 60) g
	    WHERE s.name = '${src}'`, { db: S.db.name });
	/* Before the day: a failure (not drawn) and the success that got
	 * the token held when the day began (drawn from its start). */
	await S.db.pg.query(`INSERT INTO refresh_events (source_id, trigger,
	    started_at, finished_at, outcome, duration_ms, http_status, error)
	    SELECT s.id, 'schedule', now() - interval '25 hours',
	    now() - interval '25 hours', 'failure', 10, 502, 'old failure'
	    FROM token_sources s WHERE s.name = '${src}';
	    INSERT INTO refresh_events (source_id, trigger, started_at,
	    finished_at, outcome, duration_ms, http_status)
	    SELECT s.id, 'schedule', now() - interval '1450 minutes',
	    now() - interval '1450 minutes', 'success', 10, 200
	    FROM token_sources s WHERE s.name = '${src}'`, { db: S.db.name });
	const total = Number((await S.db.pg.queryJson(`SELECT count(*) AS n
	    FROM refresh_events e JOIN token_sources s ON s.id = e.source_id
	    WHERE s.name = '${src}'`, { db: S.db.name }))[0].n);
	const inDay = total - 2;

	const hd = { headers: { Cookie: S.s.cookie } };
	const r = await k.get(`/dashboard/tokens/${src}`, hd);
	assert.equal(r.status, 200, r.text.slice(0, 300));
	assert.match(String(r.headers['content-security-policy']),
	    /script-src 'self'/);
	assert.match(r.text, /<span class="badge valid">valid<\/span>/);
	assert.ok(r.text.includes(`<code>${h.fingerprint(tok)}</code>`),
	    'the fingerprint of the current token');
	assert.ok(!r.text.includes(tok), 'never the token');
	assert.ok(!r.text.includes(S.secret), 'never the secret');
	assert.ok(!/<img/.test(r.text), 'errors escaped');
	assert.match(r.text, /&lt;img src=x onerror=alert\(\d+\)&gt;/);

	/* The timeline: the current token's bar and a tick per attempt. */
	const svg = /<svg class="timeline"[\s\S]*?<\/svg>/.exec(r.text);
	assert.ok(svg, 'an SVG timeline');
	assert.match(svg[0], /<rect class="life current"/);
	const ticks = (svg[0].match(/class="tick /g) || []).length;
	/* g = 1..60 at 20 min: 20 h, all within the day, and kiln's own;
	 * not the two before the day. */
	assert.equal(ticks, inDay, `a tick per attempt of the day ` +
	    `(${ticks}/${inDay})`);
	assert.equal((svg[0].match(/class="tick fail"/g) || []).length, 15);
	/* The token held when the day began: a bar from the left edge. */
	assert.match(svg[0], /<rect class="life" data-generation="[^"]*" x="4\.0"/);

	/* Recent errors: failures only, at most 10. */
	const errs = /<div id="errors">([\s\S]*?)<\/div>/.exec(r.text)[1];
	assert.equal((errs.match(/<li>/g) || []).length, 10);
	assert.ok(!errs.includes('old failure'), 'only the day\'s errors');

	/* The history, 25 a page, older by ?before=, every row once. */
	const seen = [];
	let url = `/dashboard/tokens/${src}`;
	for (let pages = 0; url !== null; pages++) {
		assert.ok(pages < 10, 'pages end');
		const p = await k.get(url, hd);
		assert.equal(p.status, 200);
		const hist = /<div id="history"[^>]*>([\s\S]*?)<\/div>/
		    .exec(p.text)[1];
		const ids = [...hist.matchAll(/<tr data-event="(\d+)">/g)]
		    .map((m) => Number(m[1]));
		assert.ok(ids.length <= 25, `at most 25 rows (${ids.length})`);
		seen.push(...ids);
		const older = /href="(\/dashboard\/tokens\/[^"?]*\?before=\d+)"/
		    .exec(hist);
		url = older ? older[1] : null;
	}
	assert.equal(seen.length, total, 'every attempt on some page');
	assert.equal(new Set(seen).size, total, 'none twice');
	assert.deepEqual(seen, [...seen].sort((x, y) => y - x),
	    'newest first');
});

test('unknown_token_page_is_404', async () => {
	const hd = { headers: { Cookie: S.s.cookie } };
	let r = await S.k.get('/dashboard/tokens/nosuch', hd);
	assert.equal(r.status, 404);
	assert.equal(r.json.success, false);
	r = await S.k.get('/dashboard/tokens/BAD%3Cname%3E', hd);
	assert.equal(r.status, 404);
	r = await S.k.get(`/dashboard/tokens/${name(1)}`);
	assert.equal(r.status, 303);
	assert.equal(r.headers.location, '/dashboard/login');
});

test('table_filters_and_pages_without_js', async () => {
	const hd = { headers: { Cookie: S.s.cookie } };
	const get = async (q) => {
		const r = await S.k.get(`/dashboard${q}`, hd);
		assert.equal(r.status, 200);
		const t = /<div id="tokens"[^>]*>([\s\S]*?)<\/table>/
		    .exec(r.text)[1];
		return { html: r.text, rows: rowNames(t), pager: pagerOf(t) };
	};

	/* No filter: page 1 of 10 000, 50 rows, sorted by name. */
	let v = await get('');
	assert.equal(v.pager.total, N);
	assert.equal(v.pager.matched, N);
	assert.deepEqual(v.rows, Array.from({ length: 50 }, (_, i) =>
	    name(i)));

	/* Name substring. */
	v = await get('?q=s0004');
	assert.equal(v.pager.matched, 10);
	assert.deepEqual(v.rows, Array.from({ length: 10 }, (_, i) =>
	    name(40 + i)));
	assert.match(v.html, /name="q" maxlength="64" value="s0004"/);

	/* State: the valid ones, two pages of them. */
	v = await get('?state=valid');
	assert.equal(v.pager.matched, VALID);
	assert.equal(v.rows.length, 50);
	const p2 = await get('?state=valid&page=2');
	assert.equal(p2.rows.length, 50);
	assert.deepEqual([...v.rows, ...p2.rows], Array.from({ length: VALID },
	    (_, i) => name(i)));
	assert.match(v.html, /rel="next" href="\/dashboard\?q=&amp;kind=&amp;state=valid&amp;host=&amp;page=2"/);
	assert.equal((await get('?state=valid&page=3')).rows.length, 0);

	/* By host: the 50 against the closed port. Those that failed are
	 * failing (the host's circuit holds back the others: pending). */
	v = await get('?host=127.0.0.1%3A9');
	assert.equal(v.pager.matched, FAILING);
	assert.deepEqual(v.rows, Array.from({ length: FAILING }, (_, i) =>
	    name(VALID + i)));
	await h.waitFor(async () => (await get('?state=failing')).pager
	    .matched > 0, { timeout: 15000, what: 'failing ones' });
	v = await get('?state=failing');
	assert.ok(v.rows.every((n) => Number(n.slice(1)) >= VALID &&
	    Number(n.slice(1)) < VALID + FAILING), 'only those failing');
	assert.equal((v.html.split('id="tokens"')[1].split('</table>')[0]
	    .match(/<span class="badge failing">/g) || []).length,
	    v.rows.length, 'each row shown is failing');

	/* Kind and state together; pending are the disabled ones. */
	v = await get('?kind=password&state=pending');
	assert.equal(v.pager.matched, (N - VALID - FAILING) / 2);
	assert.ok(v.rows.every((n) => Number(n.slice(1)) % 2 === 0));
	assert.equal(v.rows[0], name(VALID + FAILING));

	/* Hostile input comes back escaped, matches nothing. */
	v = await get('?q=%22%3E%3Cscript%3Ex');
	assert.equal(v.pager.matched, 0);
	assert.ok(!v.html.includes('"><script>x'));
});

test('socket_pushes_only_the_rows_shown', async () => {
	const c = await socket('?q=s000&page=2');
	await h.waitFor(() => tokenFrames(c).length >= 1, { timeout: 5000,
	    what: 'a tokens frame' });
	let f = tokenFrames(c)[0];
	assert.deepEqual(rowNames(f.html), Array.from({ length: 50 }, (_, i) =>
	    name(50 + i)), 'page 2 of q=s000');
	assert.deepEqual(pagerOf(f.html), { matched: 100, total: N, page: 2 });

	/* A new view over the socket: the rows of that view at once. */
	c.ws.send(JSON.stringify({ type: 'view',
	    query: 'host=127.0.0.1%3A9' }));
	await h.waitFor(() => tokenFrames(c).some((x) =>
	    pagerOf(x.html).matched === FAILING), { timeout: 5000,
	    what: 'the view of one host' });

	/* Refreshes meanwhile (of tokens not shown) push nothing more than
	 * the page; over 4 s, every frame is the view's. */
	const from = c.frames.length;
	for (let i = 0; i < 5; i++)
		await a.call(S.k, 'POST', `/api/tokens/${name(i)}/refresh`,
		    { auth: a.ADMIN_KEY });
	await h.sleep(4000);
	const mine = tokenFrames(c);
	for (const x of mine.slice(mine.findIndex((y) =>
	    pagerOf(y.html).matched === FAILING))) {
		const rows = rowNames(x.html);
		assert.ok(rows.length <= 50, `${rows.length} rows in a frame`);
		assert.ok(rows.every((n) => Number(n.slice(1)) >= VALID &&
		    Number(n.slice(1)) < VALID + FAILING), 'only that host');
	}
	/* Whatever pushed, never the 10 000. */
	const most = Math.max(...c.frames.map((x) => x.type === 'patch' ?
	    rowNames(x.html).length : 0));
	assert.ok(most <= 50, `at most 50 rows in any frame (${most})`);
	assert.ok(c.frames.length > from, 'the socket is live');
	c.ws.close();
});

test('charts_of_the_last_hour', async () => {
	for (let i = 0; i < 30; i++)
		await S.k.get(`/api/tokens/${name(1)}/current-token`);
	const r = await S.k.get('/dashboard', { headers: { Cookie:
	    S.s.cookie } });
	for (const id of ['requests', 'latency', 'failures', 'upstream'])
		assert.match(r.text, new RegExp(`<svg class="chart" ` +
		    `data-chart="${id}" data-points="60"`), `chart ${id}`);
	/* The current minute counts the requests just made (30 at least,
	 * over the seconds of the minute gone by: above zero). */
	const leg = /data-series="requests\/s">requests\/s <b>([\d.]+)<\/b>/
	    .exec(r.text);
	assert.ok(leg && Number(leg[1]) > 0, `requests/s now: ${leg && leg[1]}`);
	/* The failing sources' host shows in upstream errors. */
	assert.match(r.text, /data-series="127\.0\.0\.1:9"/);
	/* The socket pushes the charts too. */
	const c = await socket('');
	await h.waitFor(() => c.frames.some((x) => x.target === 'charts'),
	    { timeout: 8000, what: 'a charts frame' });
	c.ws.close();
});

test('browser_filters_pages_and_screenshots', async () => {
	const b = await d.launch();
	fs.mkdirSync(SHOTS, { recursive: true });
	for (const [w, hgt] of [[1280, 720], [390, 844]]) {
		const context = await b.newContext({ viewport: { width: w,
		    height: hgt } });
		await context.addCookies([{ name: 'kiln_session',
		    value: S.s.token, url: S.k.url }]);
		const page = await context.newPage();

		await page.goto(`${S.k.url}/dashboard`);
		await page.waitForSelector('#live.on', { timeout: 10000 });
		/* By name, through the form (no reload: the socket's view). */
		await page.fill('form.filter input[name="q"]', 's0012');
		await page.click('form.filter button');
		await page.waitForFunction(() => document.querySelectorAll(
		    '#tokens tr[data-token]').length === 10, null,
		    { timeout: 5000 });
		assert.match(page.url(), /q=s0012/);
		/* By state, then the next page. */
		await page.fill('form.filter input[name="q"]', '');
		await page.selectOption('form.filter select[name="state"]',
		    'valid');
		await page.click('form.filter button');
		await page.waitForFunction(() => {
			const n = document.querySelector('nav.pager');
			return n && n.dataset.matched === '100';
		}, null, { timeout: 5000 });
		await page.click('nav.pager a[rel="next"]');
		await page.waitForFunction(() => document.querySelector(
		    '#tokens tr[data-token]').dataset.token === 's00050',
		    null, { timeout: 5000 });
		assert.match(page.url(), /page=2/);
		await page.screenshot({ path: path.join(SHOTS,
		    `table-filtered-${w}x${hgt}.png`), fullPage: false });

		/* Into one token's page from its row. */
		await page.click('#tokens tr[data-token="s00050"] td.name a');
		await page.waitForSelector('svg.timeline', { timeout: 5000 });
		assert.ok(await page.$$eval('#history tr[data-event]',
		    (x) => x.length) >= 1, 'history rows');
		assert.ok(await page.$('svg.timeline rect.life.current'));
		await page.goto(`${S.k.url}/dashboard/tokens/${name(3)}`);
		await page.screenshot({ path: path.join(SHOTS,
		    `token-page-${w}x${hgt}.png`), fullPage: false });
		await context.close();
	}
	await b.close();
});
