/*
 * kiln: the pages to manage sources and API keys. Without this script
 * the forms post to /dashboard/... and the server answers with a page;
 * with it, the same forms send JSON to the admin API (the session's
 * cookie and its CSRF token in X-CSRF-Token) and show its errors next
 * to their fields, as the server would (dash_forms.c, df_form_json).
 */
(function () {
	"use strict";
	var csrf = document.querySelector('meta[name="csrf-token"]').content;

	/* The JSON body of a form: the rules of df_form_json. */
	function body(form) {
		var mode = form.getAttribute("data-mode"), out = {}, shown;
		var els = form.querySelectorAll("[data-type]"), i, el, t, v;

		if (mode === "key") {
			out.name = form.elements.name.value;
			out.role = form.elements.role.value;
			v = form.elements.sources.value.split(/[ ,]+/)
			    .filter(function (s) { return s !== ""; });
			if (v.length > 0) out.sources = v;
			return out;
		}
		shown = form.elements.token_url_shown;
		for (i = 0; i < els.length; i++) {
			el = els[i];
			t = el.getAttribute("data-type");
			v = el.value;
			if (el.disabled || t === "generate") continue;
			if (mode === "edit" && el.name === "name") continue;
			if (mode === "edit" && el.name === "token_url" && shown &&
			    v === shown.value) continue;
			if (t === "bool") {
				out[el.name] = el.checked;
			} else if (v === "") {
				/* a secret or a PEM is never shown: kept */
				if (mode === "edit" && t !== "secret" &&
				    t !== "pem" && t !== "keep" &&
				    el.tagName !== "SELECT")
					out[el.name] = null;
			} else if (t === "json") {
				/* an object as it is, else text for the API
				 * to refuse, naming the field */
				out[el.name] = v;
				try {
					var o = JSON.parse(v);
					if (o !== null && typeof o === "object" &&
					    !Array.isArray(o)) out[el.name] = o;
				} catch (e) { /* text */ }
			} else if (t === "int" && /^-?[0-9]{1,18}$/.test(v)) {
				out[el.name] = parseInt(v, 10);
			} else {
				out[el.name] = v;
			}
		}
		/* a key to generate, when no PEM is given */
		v = form.elements.private_key_generate;
		if (v && v.value !== "" && !out.private_key)
			out.private_key = { generate: v.value };
		return out;
	}

	function clearErrors(form) {
		var old = form.querySelectorAll(".field-error, .form-error"), i;
		for (i = 0; i < old.length; i++) old[i].remove();
		old = form.querySelectorAll("[aria-invalid]");
		for (i = 0; i < old.length; i++) old[i].removeAttribute("aria-invalid");
	}

	/* The error next to its field, or atop the form. */
	function showError(form, err) {
		var where = err.field ?
		    form.querySelector('[data-field="' + err.field + '"]') : null;
		var p = document.createElement("p"), input;
		p.setAttribute("role", "alert");
		p.textContent = err.message;
		if (where) {
			p.className = "field-error";
			p.id = "err-" + err.field;
			where.appendChild(p);
			input = where.querySelector(
			    "input:not([type=hidden]), select, textarea");
			if (input) {
				input.setAttribute("aria-invalid", "true");
				input.focus();
			}
		} else {
			p.className = "alert form-error";
			(form.querySelector("fieldset") || form).prepend(p);
		}
	}

	function send(form, method, url, data) {
		var init = {
			method: method,
			credentials: "same-origin",
			headers: { "X-CSRF-Token": csrf }
		};
		if (data !== undefined) {
			init.headers["Content-Type"] = "application/json";
			init.body = JSON.stringify(data);
		}
		return fetch(url, init).then(function (r) {
			return r.json().catch(function () {
				return { success: false, error: { code: "http",
				    message: "HTTP " + r.status } };
			});
		});
	}

	/* The keys list again, from the server's page. */
	function reloadKeys() {
		return fetch("/dashboard/keys", { credentials: "same-origin" })
		    .then(function (r) { return r.text(); })
		    .then(function (html) {
			var doc = new DOMParser().parseFromString(html, "text/html");
			var fresh = doc.getElementById("keys-list");
			var here = document.getElementById("keys-list");
			if (fresh && here) here.innerHTML = fresh.innerHTML;
		});
	}

	function keyCreated(form, j) {
		var box = document.getElementById("key-created");
		document.getElementById("key-name").textContent = j.data.name;
		document.getElementById("new-key").textContent = j.data.key;
		box.hidden = false;
		form.reset();
		return reloadKeys();
	}

	document.addEventListener("submit", function (ev) {
		var form = ev.target, api = form.getAttribute("data-api");
		var method = form.getAttribute("data-method");
		var mode = form.getAttribute("data-mode"), data, button;
		if (!api) return;
		ev.preventDefault();
		if (form.getAttribute("data-confirm") &&
		    !window.confirm(form.getAttribute("data-confirm")))
			return;
		clearErrors(form);
		data = method === "DELETE" ? undefined : body(form);
		button = form.querySelector("button:not([type=button])");
		if (button) button.disabled = true;
		send(form, method, api, data).then(function (j) {
			if (button) button.disabled = false;
			if (!j.success) {
				/* as the server's page: a taken name at the name */
				if (mode === "create" && j.error.code === "conflict")
					j.error.field = "name";
				showError(form, j.error);
				return;
			}
			if (mode === "key")
				return keyCreated(form, j);
			location.assign(form.getAttribute("data-done") +
			    (mode === "create" ? encodeURIComponent(data.name) : ""));
		}).catch(function () {
			if (button) button.disabled = false;
			showError(form, { message: "request failed; try again" });
		});
	});

	/* Copy buttons: shown only where this script runs. */
	document.addEventListener("click", function (ev) {
		var b = ev.target.closest("button.copy"), el, range;
		if (!b) return;
		el = document.getElementById(b.getAttribute("data-copy"));
		function done() { b.textContent = "Copied"; }
		if (navigator.clipboard && window.isSecureContext) {
			navigator.clipboard.writeText(el.textContent).then(done);
			return;
		}
		range = document.createRange();
		range.selectNodeContents(el);
		window.getSelection().removeAllRanges();
		window.getSelection().addRange(range);
		if (document.execCommand("copy")) done();
	});
	Array.prototype.forEach.call(document.querySelectorAll("button.copy"),
	    function (b) { b.hidden = false; });
})();
