/*
 * dash_render.c (pure): the HTML of the dashboard from plain rows.
 *
 * dashboard.c gathers the rows (from the cache, the shared counters and
 * the store) and copies the result into its kore_buf; what is here needs
 * no Kore so that the unit tests can check the HTML. Only fingerprints
 * reach these rows, never a token or a secret; every string from a row
 * or a request goes through dr_escape.
 */

#if !defined(_GNU_SOURCE)
#define _GNU_SOURCE		/* memmem */
#endif
#include <sys/types.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln.h"

static const char	*dr_num(int64_t, char *, size_t);
static void	dr_token_auth(struct dbuf *, const struct dr_token *);
static void	dr_signing(struct dbuf *, const struct dr_token *);

void
dbuf_init(struct dbuf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void
dbuf_free(struct dbuf *b)
{
	free(b->data);
	dbuf_init(b);
}

/*
 * Room for n more bytes and a NUL, doubling so that many small appends
 * cost their size, not its square. Out of memory ends the program, as
 * kore_malloc does.
 */
static void
dbuf_reserve(struct dbuf *b, size_t n)
{
	size_t		cap;
	char		*p;

	if (b->cap - b->len > n)
		return;
	cap = b->cap < 256 ? 256 : b->cap * 2;
	if (cap <= b->len + n)
		cap = b->len + n + 1;
	if ((p = realloc(b->data, cap)) == NULL)
		abort();
	b->data = p;
	b->cap = cap;
}

void
dbuf_append(struct dbuf *b, const void *d, size_t len)
{
	dbuf_reserve(b, len);
	memcpy(b->data + b->len, d, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void
dbuf_appendf(struct dbuf *b, const char *fmt, ...)
{
	va_list		ap;
	int		n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	dbuf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	(void)vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void
dr_escape(struct dbuf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '&':
			dbuf_appendf(b, "&amp;");
			break;
		case '<':
			dbuf_appendf(b, "&lt;");
			break;
		case '>':
			dbuf_appendf(b, "&gt;");
			break;
		case '"':
			dbuf_appendf(b, "&quot;");
			break;
		case '\'':
			dbuf_appendf(b, "&#39;");
			break;
		default:
			dbuf_append(b, s, 1);
			break;
		}
	}
}

void
dr_duration(struct dbuf *b, int64_t ms)
{
	int64_t		s;

	if (ms <= 0) {
		dbuf_appendf(b, "now");
		return;
	}
	s = ms / 1000;
	if (s >= 3600)
		dbuf_appendf(b, "%lldh %02lldm", (long long)(s / 3600),
		    (long long)(s % 3600 / 60));
	else if (s >= 60)
		dbuf_appendf(b, "%lldm %02llds", (long long)(s / 60),
		    (long long)(s % 60));
	else
		dbuf_appendf(b, "%llds", (long long)s);
}

/* The login template: {{csrf}} and {{error}} filled in, escaped. */
void
dr_login(struct dbuf *b, const u_int8_t *tpl, size_t len, const char *csrf,
    const char *error)
{
	const char	*s, *end, *mark;

	s = (const char *)tpl;
	end = s + len;
	while (s < end && (mark = memmem(s, end - s, "{{", 2)) != NULL) {
		dbuf_append(b, s, mark - s);
		if (!strncmp(mark, "{{csrf}}", 8)) {
			dr_escape(b, csrf);
			s = mark + 8;
		} else if (!strncmp(mark, "{{error}}", 9)) {
			if (error != NULL) {
				dbuf_appendf(b, "<p class=\"alert\">");
				dr_escape(b, error);
				dbuf_appendf(b, "</p>");
			}
			s = mark + 9;
		} else {
			dbuf_append(b, "{{", 2);
			s = mark + 2;
		}
	}
	if (s < end)
		dbuf_append(b, s, end - s);
}

void
dr_tokens(struct dbuf *b, const struct dr_token *t, size_t n, int role,
    const char *csrf)
{
	const struct dr_token	*e;
	size_t			i;

	dbuf_appendf(b, "<table class=\"tokens\"><thead><tr>"
	    "<th>Source</th><th>Kind</th><th>State</th><th>Fingerprint</th>"
	    "<th>Gen.</th><th>Expires in</th><th>Next refresh</th>"
	    "<th>Last refresh</th><th>Failures</th>%s</tr></thead><tbody>",
	    role >= ROLE_OPERATOR ? "<th>Actions</th>" : "");

	for (i = 0; i < n; i++) {
		e = &t[i];
		dbuf_appendf(b, "<tr data-token=\"");
		dr_escape(b, e->name);
		dbuf_appendf(b, "\"><td class=\"name\"><a href=\""
		    "/dashboard/tokens/");
		dr_escape(b, e->name);
		dbuf_appendf(b, "\">");
		dr_escape(b, e->name);
		/* Its connections: the default one, and per subject. */
		dbuf_appendf(b, "</a> <a class=\"conns\" href=\""
		    "/dashboard/tokens/");
		dr_escape(b, e->name);
		dbuf_appendf(b, "/connections\">connections</a>"
		    "</td><td>%s", e->kind);
		dr_token_auth(b, e);
		dr_signing(b, e);
		dbuf_appendf(b, "</td><td><span class=\"badge "
		    "%s\">%s</span></td><td><code>", e->state, e->state);
		dr_escape(b, e->fpr != NULL ? e->fpr : "—");
		dbuf_appendf(b, "</code></td><td class=\"gen\">%lld</td>"
		    "<td class=\"expires\">",
		    (long long)(e->generation < 0 ? 0 : e->generation));
		if (e->fpr != NULL)
			dr_duration(b, e->expires_in_ms);
		else
			dbuf_appendf(b, "—");
		dbuf_appendf(b, "</td><td class=\"next\">");
		dr_duration(b, e->next_in_ms);
		dbuf_appendf(b, "</td><td>");
		if (e->last_duration_ms >= 0)
			dbuf_appendf(b, "%lld ms",
			    (long long)e->last_duration_ms);
		else
			dbuf_appendf(b, "—");
		dbuf_appendf(b, "</td><td>%u", e->failures);
		if (e->last_error != NULL && e->failures > 0) {
			dbuf_appendf(b, " <small class=\"error\">");
			dr_escape(b, e->last_error);
			dbuf_appendf(b, "</small>");
		}
		dbuf_appendf(b, "</td>");

		if (role >= ROLE_OPERATOR && csrf != NULL) {
			dbuf_appendf(b, "<td class=\"actions\">"
			    "<form method=\"post\" action=\"/api/tokens/");
			dr_escape(b, e->name);
			dbuf_appendf(b, "/refresh\"><input type=\"hidden\" "
			    "name=\"csrf\" value=\"%s\"><button>Refresh now"
			    "</button></form><form method=\"post\" "
			    "action=\"/api/prewarming/%s?token=", csrf,
			    e->paused ? "start" : "stop");
			dr_escape(b, e->name);
			dbuf_appendf(b, "\"><input type=\"hidden\" "
			    "name=\"csrf\" value=\"%s\"><button>%s</button>"
			    "</form></td>", csrf, e->paused ? "Resume" :
			    "Pause");
		}
		dbuf_appendf(b, "</tr>");
	}
	if (n == 0)
		dbuf_appendf(b, "<tr><td colspan=\"9\">No token sources "
		    "yet.</td></tr>");
	dbuf_appendf(b, "</tbody></table>");
}

void
dr_history(struct dbuf *b, const struct dr_event *ev, size_t n)
{
	const struct dr_event	*e;
	size_t			i;
	char			ts[ISOTIME_LEN], n1[24], n2[24], n3[24];

	dbuf_appendf(b, "<table class=\"history\"><thead><tr><th>When"
	    "</th><th>Source</th><th>Trigger</th><th>Outcome</th>"
	    "<th>Duration</th><th>HTTP</th><th>Gen.</th><th>Error</th>"
	    "</tr></thead><tbody>");
	for (i = 0; i < n; i++) {
		e = &ev[i];
		isotime_format(e->finished_ms == DR_NULL ? 0 :
		    e->finished_ms, ts, sizeof(ts));
		dbuf_appendf(b, "<tr><td><time>%.19s</time></td><td>", ts);
		dr_escape(b, e->source ? e->source : "");
		dbuf_appendf(b, "</td><td>");
		dr_escape(b, e->trigger ? e->trigger : "");
		dbuf_appendf(b, "</td><td><span class=\"badge %s\">",
		    e->outcome && !strcmp(e->outcome, "success") ?
		    "valid" : "failing");
		dr_escape(b, e->outcome ? e->outcome : "");
		dbuf_appendf(b, "</span></td><td>%s ms</td><td>",
		    dr_num(e->duration_ms, n1, sizeof(n1)));
		dr_escape(b, dr_num(e->http_status, n2, sizeof(n2)));
		dbuf_appendf(b, "</td><td>");
		dr_escape(b, dr_num(e->generation, n3, sizeof(n3)));
		dbuf_appendf(b, "</td><td class=\"error\">");
		dr_escape(b, e->error ? e->error : "");
		dbuf_appendf(b, "</td></tr>");
	}
	if (n == 0)
		dbuf_appendf(b, "<tr><td colspan=\"8\">No refresh yet."
		    "</td></tr>");
	dbuf_appendf(b, "</tbody></table>");
}

/* A number of a row as text, "" when NULL. */
static const char *
dr_num(int64_t v, char *buf, size_t len)
{
	if (v == DR_NULL)
		buf[0] = '\0';
	else
		(void)snprintf(buf, len, "%lld", (long long)v);

	return (buf);
}

void
dr_alerts(struct dbuf *b, int db_ok, const struct dr_alert *a, size_t n,
    const struct dr_host *h, size_t nh)
{
	size_t		i, more;
	int		count;

	count = 0;
	more = 0;
	dbuf_appendf(b, "<ul class=\"alerts\">");
	if (!db_ok) {
		dbuf_appendf(b, "<li class=\"alert\">PostgreSQL is not "
		    "answering: tokens are served from memory.</li>");
		count++;
	}
	for (i = 0; i < n; i++) {
		if (!a[i].enabled)
			continue;
		/* Thousands of sources: the first few, then a count. */
		if (count >= DR_ALERTS_MAX && (!a[i].valid ||
		    (a[i].failures > 0 && a[i].in_buffer))) {
			more++;
			continue;
		}
		if (!a[i].valid) {
			dbuf_appendf(b, "<li class=\"alert\"><b>");
			dr_escape(b, a[i].name);
			dbuf_appendf(b, "</b> has no valid token.</li>");
			count++;
		} else if (a[i].failures > 0 && a[i].in_buffer) {
			dbuf_appendf(b, "<li class=\"alert\"><b>");
			dr_escape(b, a[i].name);
			dbuf_appendf(b, "</b> is within its refresh buffer "
			    "and failing (%u failures).</li>", a[i].failures);
			count++;
		}
		if (a[i].reauth > 0) {
			dbuf_appendf(b, "<li class=\"alert\"><b>");
			dr_escape(b, a[i].name);
			dbuf_appendf(b, "</b>: %u connection%s need%s "
			    "re-authorization (<a href=\"/dashboard/tokens/",
			    a[i].reauth, a[i].reauth == 1 ? "" : "s",
			    a[i].reauth == 1 ? "s" : "");
			dr_escape(b, a[i].name);
			dbuf_appendf(b, "/connections?state=needs_reauth\">"
			    "reconnect</a>).</li>");
			count++;
		}
		if (a[i].has_cert && a[i].cert_left_ms < DR_CERT_WARN_MS) {
			dbuf_appendf(b, "<li class=\"alert\"><b>");
			dr_escape(b, a[i].name);
			if (a[i].cert_left_ms <= 0) {
				dbuf_appendf(b, "</b>: its TLS client "
				    "certificate has expired.</li>");
			} else {
				dbuf_appendf(b, "</b>: its TLS client "
				    "certificate expires in %lld days "
				    "(", (long long)(a[i].cert_left_ms /
				    86400000));
				dr_duration(b, a[i].cert_left_ms);
				dbuf_appendf(b, ").</li>");
			}
			count++;
		}
	}
	if (more > 0)
		dbuf_appendf(b, "<li class=\"alert\">… and %zu more tokens "
		    "(filter the table by state).</li>", more);
	for (i = 0; i < nh; i++) {
		if (strcmp(h[i].state, "open"))
			continue;
		dbuf_appendf(b, "<li class=\"alert\">Upstream ");
		dr_escape(b, h[i].host);
		dbuf_appendf(b, " circuit is open.</li>");
		count++;
	}
	if (count == 0)
		dbuf_appendf(b, "<li class=\"ok\">All clear.</li>");
	dbuf_appendf(b, "</ul>");
}

void
dr_upstream(struct dbuf *b, const struct dr_host *h, size_t n)
{
	size_t		i;

	dbuf_appendf(b, "<ul class=\"hosts\">");
	for (i = 0; i < n; i++) {
		dbuf_appendf(b, "<li><span class=\"badge %s\">%s</span> ",
		    strcmp(h[i].state, "closed") ? "failing" : "valid",
		    h[i].state);
		dr_escape(b, h[i].host);
		dbuf_appendf(b, " <small>%u consecutive failures</small>"
		    "</li>", h[i].failures);
	}
	if (n == 0)
		dbuf_appendf(b, "<li>No upstream called yet.</li>");
	dbuf_appendf(b, "</ul>");
}

/*
 * Requests per second of the last window seconds as an SVG sparkline,
 * oldest first (slot is the newest); p50 and p99 in microseconds.
 */
void
dr_traffic(struct dbuf *b, const u_int64_t *reqs, const u_int64_t *errs,
    int window, int slot, u_int64_t p50, u_int64_t p99)
{
	u_int64_t	max, total, nerr;
	int		i, s;

	max = 1;
	total = nerr = 0;
	for (i = 0; i < window; i++) {
		if (reqs[i] > max)
			max = reqs[i];
		total += reqs[i];
		nerr += errs[i];
	}

	dbuf_appendf(b, "<svg class=\"spark\" viewBox=\"0 0 %d 40\" "
	    "preserveAspectRatio=\"none\" role=\"img\" aria-label=\"requests "
	    "per second, last minute\"><polyline points=\"", window - 1);
	for (i = 0; i < window; i++) {
		s = (slot + 1 + i) % window;
		dbuf_appendf(b, "%d,%.1f ", i, 40.0 - 38.0 * reqs[s] / max);
	}
	dbuf_appendf(b, "\"/></svg><dl class=\"figures\">"
	    "<div><dt>Now</dt><dd>%llu req/s</dd></div>"
	    "<div><dt>Last minute</dt><dd>%.1f req/s</dd></div>"
	    "<div><dt>p50</dt><dd>≤ %.2f ms</dd></div>"
	    "<div><dt>p99</dt><dd>≤ %.2f ms</dd></div>"
	    "<div><dt>Errors</dt><dd>%.2f %%</dd></div></dl>",
	    (unsigned long long)reqs[slot], total / 60.0,
	    p50 / 1000.0, p99 / 1000.0,
	    total ? 100.0 * nerr / total : 0.0);
}

void
dr_clients(struct dbuf *b, int64_t sockets, u_int32_t here, u_int32_t conns)
{
	dbuf_appendf(b, "<dl class=\"figures\"><div><dt>Dashboard "
	    "sockets</dt><dd>%lld</dd></div><div><dt>On this worker</dt>"
	    "<dd>%u</dd></div><div><dt>Connections (this worker)</dt>"
	    "<dd>%u</dd></div></dl>", (long long)sockets, here, conns);
}

/* {{name}} in a template is replaced by the fragment of that name. */
void
dr_page(struct dbuf *b, const u_int8_t *tpl, size_t len,
    void (*fragment)(struct dbuf *, const char *, const void *),
    const void *arg)
{
	const char	*s, *end, *open, *close;
	char		key[32];
	size_t		klen;

	s = (const char *)tpl;
	end = s + len;
	while (s < end) {
		open = memmem(s, end - s, "{{", 2);
		if (open == NULL) {
			dbuf_append(b, s, end - s);
			break;
		}
		dbuf_append(b, s, open - s);
		if ((close = memmem(open, end - open, "}}", 2)) == NULL)
			break;
		klen = close - open - 2;
		if (klen >= sizeof(key))
			klen = sizeof(key) - 1;
		memcpy(key, open + 2, klen);
		key[klen] = '\0';
		s = close + 2;
		fragment(b, key, arg);
	}
}

/*
 * The webhooks with their last deliveries: one row per delivery, a
 * webhook without any in a row of its own (type NULL).
 */
void
dr_webhooks(struct dbuf *b, const struct dr_webhook *w, size_t n)
{
	size_t		i;
	char		ts[ISOTIME_LEN], n1[24], n2[24], n3[24];

	dbuf_appendf(b, "<table class=\"webhooks\"><thead><tr><th>Webhook"
	    "</th><th>Event</th><th>Source</th><th>Status</th>"
	    "<th>Attempts</th><th>HTTP</th><th>When</th><th>Error</th>"
	    "</tr></thead><tbody>");
	for (i = 0; i < n; i++, w++) {
		dbuf_appendf(b, "<tr><td>%s ", dr_num(w->id, n1, sizeof(n1)));
		dr_escape(b, w->url ? w->url : "");
		dbuf_appendf(b, "</td>");
		if (w->type == NULL) {
			dbuf_appendf(b, "<td colspan=\"7\">No delivery yet."
			    "</td></tr>");
			continue;
		}
		dbuf_appendf(b, "<td>");
		dr_escape(b, w->type);
		dbuf_appendf(b, "</td><td>");
		dr_escape(b, w->source ? w->source : "");
		dbuf_appendf(b, "</td><td><span class=\"badge %s\">",
		    w->status && !strcmp(w->status, "delivered") ? "valid" :
		    w->status && !strcmp(w->status, "failed") ? "expired" :
		    "failing");
		dr_escape(b, w->status ? w->status : "");
		isotime_format(w->created_ms == DR_NULL ? 0 : w->created_ms,
		    ts, sizeof(ts));
		dbuf_appendf(b, "</span></td><td>%s</td><td>%s</td>"
		    "<td><time>%.19s</time></td><td class=\"error\">",
		    dr_num(w->attempts, n2, sizeof(n2)),
		    dr_num(w->last_status, n3, sizeof(n3)), ts);
		dr_escape(b, w->last_error ? w->last_error : "");
		dbuf_appendf(b, "</td></tr>");
	}
	if (n == 0)
		dbuf_appendf(b, "<tr><td colspan=\"8\">No webhook.</td></tr>");
	dbuf_appendf(b, "</tbody></table>");
}

/* Mutual TLS: the method, and the client certificate's subject and end. */
static void
dr_token_auth(struct dbuf *b, const struct dr_token *e)
{
	char		day[ISOTIME_LEN];

	if (e->auth == NULL)
		return;

	dbuf_appendf(b, "<br><small class=\"auth\">");
	dr_escape(b, e->auth);
	if (e->cert_subject != NULL && *e->cert_subject != '\0') {
		dbuf_appendf(b, " ");
		dr_escape(b, e->cert_subject);
	}
	if (e->cert_not_after_ms != 0) {
		isotime_format(e->cert_not_after_ms, day, sizeof(day));
		day[10] = '\0';
		dbuf_appendf(b, " until %s", day);
	}
	dbuf_appendf(b, "</small>");
}

/* A signing source's method and key id, under its kind; never a key. */
static void
dr_signing(struct dbuf *b, const struct dr_token *e)
{
	if (e->auth_method == NULL && e->key_id == NULL)
		return;

	dbuf_appendf(b, "<br><small class=\"signing\">");
	if (e->auth_method != NULL)
		dr_escape(b, e->auth_method);
	if (e->auth_method != NULL && e->key_id != NULL)
		dbuf_appendf(b, " ");
	if (e->key_id != NULL) {
		dbuf_appendf(b, "kid <code>");
		dr_escape(b, e->key_id);
		dbuf_appendf(b, "</code>");
	}
	dbuf_appendf(b, "</small>");
}
