/*
 * test_dash_render.c: the dashboard's HTML from plain rows. Every string
 * that comes from a row or a request is escaped (<>&"' ); the login page
 * reflects its csrf field and error escaped; the tables say what the
 * rows hold and nothing else.
 */

#include <sys/types.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kiln.h"
#include "dbuf_check.h"

#define LOGIN_TPL	"<p>{{error}}</p><input name=\"csrf\" " \
			"value=\"{{csrf}}\">{{other}}{{"

static void
escape_the_five(void **state)
{
	struct dbuf	b;

	(void)state;
	dbuf_init(&b);
	dr_escape(&b, "a<b>c&d\"e'f — ok");
	expect(&b, "a&lt;b&gt;c&amp;d&quot;e&#39;f — ok");
	dbuf_free(&b);

	dbuf_init(&b);
	dr_escape(&b, "");
	dbuf_append(&b, "", 0);
	expect(&b, "");
	dbuf_free(&b);
}

static void
buffer_grows(void **state)
{
	struct dbuf	b;
	size_t		i;

	(void)state;
	dbuf_init(&b);
	for (i = 0; i < 100000; i++)
		dbuf_appendf(&b, "%c", 'a' + (int)(i % 26));
	assert_int_equal(b.len, 100000);
	assert_int_equal(strlen(b.data), 100000);
	assert_true(b.cap > b.len);
	assert_int_equal(b.data[26], 'a');
	assert_int_equal(b.data[99999], 'a' + 99999 % 26);
	dbuf_free(&b);
	assert_null(b.data);
}

static void
durations(void **state)
{
	struct dbuf	b;

	(void)state;
	dbuf_init(&b);
	dr_duration(&b, 0);
	dbuf_append(&b, "|", 1);
	dr_duration(&b, -5);
	dbuf_append(&b, "|", 1);
	dr_duration(&b, 59999);
	dbuf_append(&b, "|", 1);
	dr_duration(&b, 60000);
	dbuf_append(&b, "|", 1);
	dr_duration(&b, 3599000);
	dbuf_append(&b, "|", 1);
	dr_duration(&b, 3600000 + 5 * 60000);
	expect(&b, "now|now|59s|1m 00s|59m 59s|1h 05m");
	dbuf_free(&b);
}

/* Regression: the reflected csrf field and error cannot open a tag. */
static void
login_escapes_reflected_fields(void **state)
{
	struct dbuf	b;

	(void)state;
	dbuf_init(&b);
	dr_login(&b, (const u_int8_t *)LOGIN_TPL, strlen(LOGIN_TPL),
	    "\"><script>alert(1)</script>", "bad 'key' <b>");
	expect(&b, "<p><p class=\"alert\">bad &#39;key&#39; &lt;b&gt;</p>"
	    "</p><input name=\"csrf\" value=\"&quot;&gt;&lt;script&gt;"
	    "alert(1)&lt;/script&gt;\">{{other}}{{");
	hasnt(&b, "<script>");
	dbuf_free(&b);
}

static void
login_without_error(void **state)
{
	struct dbuf	b;

	(void)state;
	dbuf_init(&b);
	dr_login(&b, (const u_int8_t *)LOGIN_TPL, strlen(LOGIN_TPL),
	    "0123abcd", NULL);
	expect(&b, "<p></p><input name=\"csrf\" value=\"0123abcd\">"
	    "{{other}}{{");
	dbuf_free(&b);
}

static void
tokens_viewer_and_operator(void **state)
{
	struct dr_token	t[2];
	struct dbuf	b;

	(void)state;
	memset(t, 0, sizeof(t));
	t[0].name = "crm<x>";
	t[0].kind = "client_credentials";
	t[0].state = "valid";
	t[0].fpr = "abcdef012345";
	t[0].generation = 7;
	t[0].expires_in_ms = 3600000 + 120000;
	t[0].next_in_ms = 90000;
	t[0].last_duration_ms = 42;
	t[1].name = "erp";
	t[1].kind = "password";
	t[1].state = "failing";
	t[1].fpr = NULL;
	t[1].last_error = "upstream said \"no\"";
	t[1].generation = -1;
	t[1].next_in_ms = -1;
	t[1].last_duration_ms = -1;
	t[1].failures = 3;
	t[1].paused = 1;

	dbuf_init(&b);
	dr_tokens(&b, t, 2, ROLE_VIEWER, NULL);
	has(&b, "<tr data-token=\"crm&lt;x&gt;\"><td class=\"name\">"
	    "<a href=\"/dashboard/tokens/crm&lt;x&gt;\">"
	    "crm&lt;x&gt;</a> <a class=\"conns\" href=\"/dashboard/tokens/"
	    "crm&lt;x&gt;/connections\">connections</a></td>"
	    "<td>client_credentials</td><td><span "
	    "class=\"badge valid\">valid</span></td><td><code>abcdef012345"
	    "</code></td><td class=\"gen\">7</td><td class=\"expires\">"
	    "1h 02m</td><td class=\"next\">1m 30s</td><td>42 ms</td><td>0</td></tr>");
	has(&b, "<td><code>—</code></td><td class=\"gen\">0</td>"
	    "<td class=\"expires\">—</td><td class=\"next\">now</td><td>—</td><td>3 "
	    "<small class=\"error\">upstream said &quot;no&quot;</small>"
	    "</td></tr>");
	hasnt(&b, "Actions");
	hasnt(&b, "<form");
	hasnt(&b, "crm<x>");
	hasnt(&b, "class=\"auth\"");
	dbuf_free(&b);

	/* Mutual TLS: method, certificate subject and end, escaped. */
	t[0].auth = "tls_client_auth";
	t[0].cert_subject = "CN=svc,O=A&B";
	t[0].cert_not_after_ms = 1796601600000LL;	/* 2026-12-07 */
	dbuf_init(&b);
	dr_tokens(&b, t, 1, ROLE_VIEWER, NULL);
	has(&b, "<td>client_credentials<br><small class=\"auth\">"
	    "tls_client_auth CN=svc,O=A&amp;B until 2026-12-07</small></td>");
	dbuf_free(&b);
	t[0].auth = NULL;

	dbuf_init(&b);
	dr_tokens(&b, t, 2, ROLE_OPERATOR, "c5rf");
	has(&b, "<th>Failures</th><th>Actions</th></tr>");
	has(&b, "action=\"/api/tokens/crm&lt;x&gt;/refresh\"><input "
	    "type=\"hidden\" name=\"csrf\" value=\"c5rf\">");
	has(&b, "action=\"/api/prewarming/stop?token=crm&lt;x&gt;\">");
	has(&b, "action=\"/api/prewarming/start?token=erp\"><input "
	    "type=\"hidden\" name=\"csrf\" value=\"c5rf\"><button>Resume"
	    "</button>");
	dbuf_free(&b);
}

/* A signing source shows its method and key id under its kind. */
static void
tokens_show_signing_method_and_key_id(void **state)
{
	struct dr_token	t[2];
	struct dbuf	b;

	(void)state;
	memset(t, 0, sizeof(t));
	t[0].name = "erp";
	t[0].kind = "client_credentials";
	t[0].state = "valid";
	t[0].auth_method = "private_key_jwt";
	t[0].key_id = "NzbLsXh8<b>";
	t[1].name = "gcp";
	t[1].kind = "jwt_bearer";
	t[1].state = "valid";
	t[1].key_id = "0a1b2c";

	dbuf_init(&b);
	dr_tokens(&b, t, 2, ROLE_VIEWER, NULL);
	has(&b, "<td>client_credentials<br><small class=\"signing\">"
	    "private_key_jwt kid <code>NzbLsXh8&lt;b&gt;</code></small></td>");
	has(&b, "<td>jwt_bearer<br><small class=\"signing\">kid <code>"
	    "0a1b2c</code></small></td>");
	hasnt(&b, "<b>");
	dbuf_free(&b);
}

static void
tokens_empty(void **state)
{
	struct dbuf	b;

	(void)state;
	dbuf_init(&b);
	dr_tokens(&b, NULL, 0, ROLE_VIEWER, NULL);
	expect(&b, "<table class=\"tokens\"><thead><tr><th>Source</th>"
	    "<th>Kind</th><th>State</th><th>Fingerprint</th><th>Gen.</th>"
	    "<th>Expires in</th><th>Next refresh</th><th>Last refresh</th>"
	    "<th>Failures</th></tr></thead><tbody><tr><td colspan=\"9\">"
	    "No token sources yet.</td></tr></tbody></table>");
	dbuf_free(&b);
}

static void
history_rows(void **state)
{
	struct dr_event	ev[2];
	struct dbuf	b;

	(void)state;
	memset(ev, 0, sizeof(ev));
	ev[0].source = "crm";
	ev[0].trigger = "schedule";
	ev[0].outcome = "success";
	ev[0].finished_ms = 1700000000123LL;
	ev[0].duration_ms = 12;
	ev[0].http_status = 200;
	ev[0].generation = 4;
	ev[1].source = "erp&co";
	ev[1].trigger = NULL;
	ev[1].outcome = "failure";
	ev[1].error = "<img src=x onerror=alert(1)>";
	ev[1].finished_ms = DR_NULL;
	ev[1].duration_ms = DR_NULL;
	ev[1].http_status = DR_NULL;
	ev[1].generation = DR_NULL;

	dbuf_init(&b);
	dr_history(&b, ev, 2);
	has(&b, "<tr><td><time>2023-11-14T22:13:20</time></td><td>crm</td>"
	    "<td>schedule</td><td><span class=\"badge valid\">success"
	    "</span></td><td>12 ms</td><td>200</td><td>4</td>"
	    "<td class=\"error\"></td></tr>");
	has(&b, "<tr><td><time>1970-01-01T00:00:00</time></td><td>erp&amp;co"
	    "</td><td></td><td><span class=\"badge failing\">failure</span>"
	    "</td><td> ms</td><td></td><td></td><td class=\"error\">"
	    "&lt;img src=x onerror=alert(1)&gt;</td></tr>");
	hasnt(&b, "<img");
	hasnt(&b, "No refresh yet.");
	dbuf_free(&b);

	dbuf_init(&b);
	dr_history(&b, NULL, 0);
	has(&b, "<tr><td colspan=\"8\">No refresh yet.</td></tr>"
	    "</tbody></table>");
	dbuf_free(&b);
}

static void
webhooks_escaped_with_their_deliveries(void **state)
{
	struct dr_webhook	w[2];
	struct dbuf		b;

	(void)state;
	memset(w, 0, sizeof(w));
	w[0].id = 3;
	w[0].url = "https://hooks.example/in?a=1&b=<2>";
	w[0].type = "token.failing";
	w[0].source = "crm";
	w[0].status = "delivered";
	w[0].attempts = 4;
	w[0].last_status = 200;
	w[0].created_ms = 1700000000123LL;
	w[1].id = 5;
	w[1].url = "http://x.example/\"><script>";
	w[1].attempts = DR_NULL;
	w[1].last_status = DR_NULL;

	dbuf_init(&b);
	dr_webhooks(&b, w, 2);
	has(&b, "<tr><td>3 https://hooks.example/in?a=1&amp;b=&lt;2&gt;</td>"
	    "<td>token.failing</td><td>crm</td><td><span class=\"badge "
	    "valid\">delivered</span></td><td>4</td><td>200</td>"
	    "<td><time>2023-11-14T22:13:20</time></td>"
	    "<td class=\"error\"></td></tr>");
	has(&b, "<td colspan=\"7\">No delivery yet.</td>");
	hasnt(&b, "<script>");
	hasnt(&b, "No webhook.");
	dbuf_free(&b);

	dbuf_init(&b);
	dr_webhooks(&b, NULL, 0);
	has(&b, "<tr><td colspan=\"8\">No webhook.</td></tr>");
	dbuf_free(&b);
}

static void
alerts_and_hosts(void **state)
{
	struct dr_alert	a[4], *many;
	struct dr_host	h[2];
	struct dbuf	b;
	size_t		i;

	(void)state;
	memset(a, 0, sizeof(a));
	a[0] = (struct dr_alert){ "off", 0, 0, 1, 9, 0, 0, 0 };
	a[1] = (struct dr_alert){ "gone<", 1, 0, 0, 0, 0, 0, 0 };
	a[2] = (struct dr_alert){ "late", 1, 1, 1, 2, 0, 0, 0 };
	a[3] = (struct dr_alert){ "early", 1, 1, 0, 2, 0, 0, 0 };
	h[0] = (struct dr_host){ "idp.example", "closed", 1 };
	h[1] = (struct dr_host){ "bad\"host", "open", 5 };

	dbuf_init(&b);
	dr_alerts(&b, 0, a, 4, h, 2);
	expect(&b, "<ul class=\"alerts\"><li class=\"alert\">PostgreSQL is "
	    "not answering: tokens are served from memory.</li>"
	    "<li class=\"alert\"><b>gone&lt;</b> has no valid token.</li>"
	    "<li class=\"alert\"><b>late</b> is within its refresh buffer "
	    "and failing (2 failures).</li>"
	    "<li class=\"alert\">Upstream bad&quot;host circuit is open."
	    "</li></ul>");
	dbuf_free(&b);

	dbuf_init(&b);
	dr_alerts(&b, 1, a + 3, 1, h, 1);
	expect(&b, "<ul class=\"alerts\"><li class=\"ok\">All clear.</li>"
	    "</ul>");
	dbuf_free(&b);

	/* Connections whose grant is gone: one alert per source. */
	a[3].reauth = 2;
	dbuf_init(&b);
	dr_alerts(&b, 1, a + 3, 1, h, 1);
	expect(&b, "<ul class=\"alerts\"><li class=\"alert\"><b>early</b>: "
	    "2 connections need re-authorization (<a href=\"/dashboard/tokens/"
	    "early/connections?state=needs_reauth\">reconnect</a>)."
	    "</li></ul>");
	dbuf_free(&b);
	a[3].reauth = 1;
	dbuf_init(&b);
	dr_alerts(&b, 1, a + 3, 1, h, 1);
	expect(&b, "<ul class=\"alerts\"><li class=\"alert\"><b>early</b>: "
	    "1 connection needs re-authorization (<a href=\"/dashboard/tokens/"
	    "early/connections?state=needs_reauth\">reconnect</a>)."
	    "</li></ul>");
	dbuf_free(&b);
	/* Thousands of failing tokens: the first DR_ALERTS_MAX, a count. */
	many = calloc(1000, sizeof(*many));
	for (i = 0; i < 1000; i++)
		many[i] = (struct dr_alert){ "t", 1, 0, 0, 1, 0, 0, 0 };
	dbuf_init(&b);
	dr_alerts(&b, 1, many, 1000, h, 0);
	assert_int_equal(count_of(&b, "has no valid token"), DR_ALERTS_MAX);
	has(&b, "… and 980 more tokens");
	dbuf_free(&b);
	free(many);

	dbuf_init(&b);
	dr_upstream(&b, h, 2);
	expect(&b, "<ul class=\"hosts\"><li><span class=\"badge valid\">"
	    "closed</span> idp.example <small>1 consecutive failures"
	    "</small></li><li><span class=\"badge failing\">open</span> "
	    "bad&quot;host <small>5 consecutive failures</small></li>"
	    "</ul>");
	dbuf_free(&b);

	/* A TLS client certificate within 14 days of its end, or past it. */
	a[0] = (struct dr_alert){ "mtls", 1, 1, 0, 0, 1,
	    3 * 86400000LL + 3600000, 0 };
	a[1] = (struct dr_alert){ "fresh", 1, 1, 0, 0, 1, DR_CERT_WARN_MS, 0 };
	a[2] = (struct dr_alert){ "old", 1, 1, 0, 0, 1, -5, 0 };
	dbuf_init(&b);
	dr_alerts(&b, 1, a, 3, h, 1);
	expect(&b, "<ul class=\"alerts\"><li class=\"alert\"><b>mtls</b>: "
	    "its TLS client certificate expires in 3 days (73h 00m).</li>"
	    "<li class=\"alert\"><b>old</b>: its TLS client certificate has "
	    "expired.</li></ul>");
	dbuf_free(&b);

	dbuf_init(&b);
	dr_upstream(&b, NULL, 0);
	expect(&b, "<ul class=\"hosts\"><li>No upstream called yet.</li>"
	    "</ul>");
	dbuf_free(&b);
}

static void
traffic_and_clients(void **state)
{
	u_int64_t	reqs[4] = { 2, 4, 0, 1 }, errs[4] = { 0, 1, 0, 0 };
	struct dbuf	b;

	(void)state;
	dbuf_init(&b);
	/* Slot 1 is the newest: the line starts at slot 2. */
	dr_traffic(&b, reqs, errs, 4, 1, 1500, 250000);
	expect(&b, "<svg class=\"spark\" viewBox=\"0 0 3 40\" "
	    "preserveAspectRatio=\"none\" role=\"img\" aria-label=\"requests "
	    "per second, last minute\"><polyline points=\"0,40.0 1,30.5 "
	    "2,21.0 3,2.0 \"/></svg><dl class=\"figures\"><div><dt>Now</dt>"
	    "<dd>4 req/s</dd></div><div><dt>Last minute</dt><dd>0.1 req/s"
	    "</dd></div><div><dt>p50</dt><dd>≤ 1.50 ms</dd></div>"
	    "<div><dt>p99</dt><dd>≤ 250.00 ms</dd></div><div><dt>Errors"
	    "</dt><dd>14.29 %</dd></div></dl>");
	dbuf_free(&b);

	dbuf_init(&b);
	dr_clients(&b, 3, 2, 17);
	expect(&b, "<dl class=\"figures\"><div><dt>Dashboard sockets</dt>"
	    "<dd>3</dd></div><div><dt>On this worker</dt><dd>2</dd></div>"
	    "<div><dt>Connections (this worker)</dt><dd>17</dd></div></dl>");
	dbuf_free(&b);
}

static void
page_fragment(struct dbuf *b, const char *key, const void *arg)
{
	dbuf_appendf(b, "[%s:%s]", (const char *)arg, key);
}

static void
page_template(void **state)
{
	const char	*tpl = "<a>{{tokens}}<b>{{}}{{"
			    "0123456789012345678901234567890123456789}}"
			    "<c>{{open";
	struct dbuf	b;

	(void)state;
	dbuf_init(&b);
	dr_page(&b, (const u_int8_t *)tpl, strlen(tpl), page_fragment, "p");
	/* Long names are cut to 31 bytes; an unclosed {{ ends the page. */
	expect(&b, "<a>[p:tokens]<b>[p:][p:0123456789012345678901234567890]"
	    "<c>");
	dbuf_free(&b);

	dbuf_init(&b);
	dr_page(&b, (const u_int8_t *)"plain", 5, page_fragment, "p");
	expect(&b, "plain");
	dbuf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(escape_the_five),
		cmocka_unit_test(buffer_grows),
		cmocka_unit_test(durations),
		cmocka_unit_test(login_escapes_reflected_fields),
		cmocka_unit_test(login_without_error),
		cmocka_unit_test(tokens_viewer_and_operator),
		cmocka_unit_test(tokens_empty),
		cmocka_unit_test(history_rows),
		cmocka_unit_test(webhooks_escaped_with_their_deliveries),
		cmocka_unit_test(tokens_show_signing_method_and_key_id),
		cmocka_unit_test(alerts_and_hosts),
		cmocka_unit_test(traffic_and_clients),
		cmocka_unit_test(page_template),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
