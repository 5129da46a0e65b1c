'use strict';

/*
 * An event stream read with node's fetch, as a client without an SSE
 * library would (the push tests, issue 14):
 *
 *   const { openStream } = require('../lib/sse');
 *   const s = await openStream(k, 'name', { Authorization: ... });
 *   s.res.status; s.events; s.comments; s.ended
 *   const ev = await s.next((e) => e.event === 'token');
 *   s.close();
 */

/* An open stream: its events and comments as they come. */
async function openStream(k, name, headers = {})
{
	const ac = new AbortController();
	const res = await fetch(`${k.url}/api/tokens/${name}/stream`,
	    { headers, signal: ac.signal });
	const s = { res, events: [], comments: [], raw: '', ended: false };
	let wake = () => {};
	const changed = () => {
		const w = wake;
		wake = () => {};
		w();
	};
	const take = (block) => {
		const ev = { event: 'message', data: '', at: Date.now() };
		for (const line of block.split('\n')) {
			if (line.startsWith(':')) {
				s.comments.push({ text: line.slice(1).trim(),
				    at: Date.now() });
				continue;
			}
			const i = line.indexOf(':');
			const f = i < 0 ? line : line.slice(0, i);
			const v = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
			if (f === 'data')
				ev.data += (ev.data ? '\n' : '') + v;
			else
				ev[f] = v;
		}
		if (ev.data !== '' || ev.id !== undefined) {
			ev.json = JSON.parse(ev.data);
			s.events.push(ev);
		}
	};
	(async () => {
		const dec = new TextDecoder();
		let buf = '';
		try {
			for await (const chunk of res.body) {
				const t = dec.decode(chunk, { stream: true });
				s.raw += t;
				buf += t;
				let i;
				while ((i = buf.indexOf('\n\n')) >= 0) {
					take(buf.slice(0, i));
					buf = buf.slice(i + 2);
				}
				changed();
			}
		} catch (e) {
			/* aborted */
		}
		s.ended = true;
		s.endedAt = Date.now();
		changed();
	})();
	/* The first event from index from on that pred accepts. */
	s.next = async (pred, from = 0, timeout = 10000) => {
		const deadline = Date.now() + timeout;
		for (;;) {
			const i = s.events.findIndex((e, j) => j >= from &&
			    pred(e));
			if (i >= 0)
				return Object.assign({ index: i }, s.events[i]);
			if (s.ended || Date.now() > deadline) {
				throw new Error(`no such event (ended ` +
				    `${s.ended}); got ${JSON.stringify(
				    s.events.map((e) => [e.event, e.id]))}`);
			}
			await new Promise((r) => {
				wake = r;
				setTimeout(r, 100);
			});
		}
	};
	s.close = () => ac.abort();
	return s;
}

module.exports = { openStream };
