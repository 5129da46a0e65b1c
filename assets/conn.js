/*
 * kiln: the page of a source's connections. Without this script the
 * page is whole and its forms post to the server; with it, the table is
 * live (the dashboard's WebSocket, told which source, state filter and
 * page it shows, pushes those rows when they change) and Disconnect asks
 * for a confirmation here instead of on a second page.
 */
(function () {
	"use strict";
	var box = document.getElementById("connections");
	var live = document.getElementById("live");
	var delay = 1000, timer = null, held = null;

	if (!box) return;

	/*
	 * New rows wait while someone is in a row's form (typing a refresh
	 * token to Reconnect, on a button): replacing it would lose that.
	 */
	function busy() {
		var a = document.activeElement, ins, i;
		if (a && a !== box && box.contains(a)) return true;
		ins = box.querySelectorAll("input:not([type=hidden])");
		for (i = 0; i < ins.length; i++)
			if (ins[i].value !== "") return true;
		return false;
	}
	function rows(html) {
		if (busy()) {
			held = html;
			return;
		}
		held = null;
		box.innerHTML = html;
	}
	box.addEventListener("focusout", function () {
		setTimeout(function () {
			if (held !== null) rows(held);
		}, 0);
	});
	box.addEventListener("input", function () {
		if (held !== null && !busy()) rows(held);
	});

	function status(text, cls) {
		if (!live) return;
		live.textContent = text;
		live.className = "live " + cls;
	}

	function connect() {
		var proto = location.protocol === "https:" ? "wss://" : "ws://";
		var q = new URLSearchParams(location.search), v = new URLSearchParams();
		v.set("conn", box.getAttribute("data-source"));
		if (q.get("state")) v.set("state", q.get("state"));
		if (q.get("limit")) v.set("limit", q.get("limit"));
		if (q.get("cursor")) v.set("cursor", q.get("cursor"));
		var ws = new WebSocket(proto + location.host + "/dashboard/ws?" +
		    v.toString());
		ws.onopen = function () {
			delay = 1000;
			status("live", "on");
		};
		ws.onmessage = function (ev) {
			var m = JSON.parse(ev.data);
			if (m.type === "patch" && m.target === "connections") {
				rows(m.html);
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

	/* Disconnect: confirmed here, then the server's form as it is. */
	document.addEventListener("submit", function (ev) {
		var f = ev.target, yes;
		if (!f.classList.contains("disconnect")) return;
		ev.preventDefault();
		if (!window.confirm(f.getAttribute("data-confirm"))) return;
		yes = document.createElement("input");
		yes.type = "hidden";
		yes.name = "confirm";
		yes.value = "yes";
		f.appendChild(yes);
		f.submit();
	});

	status("connecting…", "");
	connect();
})();
