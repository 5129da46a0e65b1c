/*
 * kiln dashboard: apply the server's HTML patches, reconnect with
 * backoff to whichever instance answers, show when the data is stale,
 * and send the action forms without leaving the page.
 */
(function () {
	"use strict";
	var live = document.getElementById("live");
	var csrf = document.querySelector('meta[name="csrf-token"]').content;
	var delay = 1000, timer = null, ws = null;

	function status(text, cls) {
		live.textContent = text;
		live.className = "live " + cls;
	}

	function connect() {
		var proto = location.protocol === "https:" ? "wss://" : "ws://";
		ws = new WebSocket(proto + location.host + "/dashboard/ws");
		ws.onopen = function () {
			delay = 1000;
			status("live", "on");
		};
		ws.onmessage = function (ev) {
			var m = JSON.parse(ev.data), el;
			if (m.type === "patch") {
				el = document.getElementById(m.target);
				if (el) el.innerHTML = m.html;
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

	document.addEventListener("submit", function (ev) {
		var f = ev.target;
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
