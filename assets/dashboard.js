/*
 * kiln dashboard: apply the server's HTML patches, reconnect with
 * backoff to whichever instance answers, show when the data is stale,
 * and send the action forms without leaving the page. The socket's URL
 * carries the table's view (search, filters, page) so that the server
 * pushes only the rows shown; a new view is sent over the socket. The
 * countdowns run here between pushes (the server sends the table only
 * when its rows change). A patch the same as the last one of its target
 * (the server's periodic resync) leaves the page alone: a click that
 * lands while a part is replaced would be lost.
 */
(function () {
	"use strict";
	var live = document.getElementById("live");
	var csrf = document.querySelector('meta[name="csrf-token"]').content;
	var delay = 1000, timer = null, ws = null, shown = {};

	function status(text, cls) {
		live.textContent = text;
		live.className = "live " + cls;
	}

	function connect() {
		var proto = location.protocol === "https:" ? "wss://" : "ws://";
		ws = new WebSocket(proto + location.host + "/dashboard/ws" +
		    location.search);
		ws.onopen = function () {
			delay = 1000;
			status("live", "on");
		};
		ws.onmessage = function (ev) {
			var m = JSON.parse(ev.data), el;
			if (m.type === "patch") {
				if (shown[m.target] === m.html) return;
				shown[m.target] = m.html;
				el = document.getElementById(m.target);
				if (el) el.innerHTML = m.html;
				if (m.target === "tokens") countdowns();
			} else if (m.type === "shutdown_pending") {
				status(m.message + " (data may be stale)", "stale");
				ws.onclose = null;
				ws.close();
				retry((m.reconnect_after || 1) * 1000);
			}
		};
		ws.onclose = function () {
			status("disconnected — data is stale, reconnecting…", "stale");
			retry(delay);
			delay = Math.min(delay * 2, 15000);
		};
	}

	function retry(ms) {
		if (timer) return;
		timer = setTimeout(function () {
			timer = null;
			connect();
		}, ms * (0.75 + Math.random() / 2));
	}

	function toast(text) {
		var t = document.createElement("div");
		t.className = "toast";
		t.setAttribute("role", "status");
		t.textContent = text;
		document.body.appendChild(t);
		setTimeout(function () { t.remove(); }, 2500);
	}

	/* "now", "42s", "9m 59s", "2h 05m" and back. */
	function parse(t) {
		var m;
		if (t === "now") return 0;
		if ((m = /^(\d+)s$/.exec(t))) return +m[1];
		if ((m = /^(\d+)m (\d\d)s$/.exec(t))) return m[1] * 60 + +m[2];
		if ((m = /^(\d+)h (\d\d)m$/.exec(t)))
			return m[1] * 3600 + m[2] * 60 + 59;
		return null;
	}
	function format(s) {
		function two(n) { return (n < 10 ? "0" : "") + n; }
		if (s <= 0) return "now";
		if (s >= 3600)
			return Math.floor(s / 3600) + "h " +
			    two(Math.floor(s % 3600 / 60)) + "m";
		if (s >= 60) return Math.floor(s / 60) + "m " + two(s % 60) + "s";
		return s + "s";
	}
	var cells = [], base = 0;
	function countdowns() {
		base = Date.now();
		cells = [];
		var tds = document.querySelectorAll(
		    "#tokens td.expires, #tokens td.next");
		for (var i = 0; i < tds.length; i++) {
			var s = parse(tds[i].textContent);
			if (s !== null) cells.push([tds[i], s]);
		}
	}
	setInterval(function () {
		var gone = Math.floor((Date.now() - base) / 1000);
		for (var i = 0; i < cells.length; i++)
			cells[i][0].textContent = format(
			    Math.max(0, cells[i][1] - gone));
	}, 1000);
	countdowns();

	/* A new view of the table: the URL, and the socket's rows. */
	function view(search) {
		history.replaceState(null, "", "/dashboard" + search);
		if (ws && ws.readyState === 1)
			ws.send(JSON.stringify({ type: "view",
			    query: search.replace(/^\?/, "") }));
		else
			location.search = search;
	}
	document.addEventListener("click", function (ev) {
		var a = ev.target.closest ? ev.target.closest("nav.pager a") :
		    null;
		var href = a && a.getAttribute("href");
		if (!href || href.indexOf("/dashboard?") !== 0) return;
		ev.preventDefault();
		view(href.slice("/dashboard".length));
	});

	document.addEventListener("submit", function (ev) {
		var f = ev.target;
		if (f.classList.contains("filter")) {
			ev.preventDefault();
			view("?" + new URLSearchParams(new FormData(f))
			    .toString() + "&page=1");
			return;
		}
		if (f.getAttribute("action").indexOf("/api/") !== 0) return;
		ev.preventDefault();
		fetch(f.getAttribute("action"), {
			method: "POST",
			headers: { "X-CSRF-Token": csrf },
			credentials: "same-origin"
		}).then(function (r) { return r.json(); }).then(function (j) {
			toast(j.success ? (j.message || "done") : j.error.message);
		}).catch(function () { toast("request failed"); });
	});

	status("connecting…", "");
	connect();
})();
