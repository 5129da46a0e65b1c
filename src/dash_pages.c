/*
 * dash_pages.c (pure): the page of one token (its state, a timeline of
 * the last 24 h, its refresh history and recent errors) and the view of
 * the token table (search, filters, paging) from plain rows.
 *
 * dashboard.c gathers the rows from the worker's cache and the store;
 * what is here needs no Kore so that the unit tests can check it. Only
 * fingerprints reach these rows, never a token or a secret, and every
 * string from a row or a request goes through dr_escape (and, in a
 * link, through dp_urlencode first).
 */

#include <sys/types.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln.h"

#define DP_TL_W		720
#define DP_TL_H		64
#define DP_TL_LEFT	4
#define DP_TL_RIGHT	4
#define DP_ERRORS_MAX	10

static void	dp_arg(char *, size_t, const char *, size_t);
static int	dp_contains(const char *, const char *);
static void	dp_urlencode(struct dbuf *, const char *);
static void	dp_urlencode_escaped(struct dbuf *, const char *);
static void	dp_option(struct dbuf *, const char *, const char *);
static double	dp_x(int64_t, int64_t, int64_t);
static void	dp_when(struct dbuf *, int64_t);

static const char	*dp_kinds[] = { "client_credentials", "refresh_token",
			    "password", "json_login", "token_exchange",
			    "jwt_bearer", "authorization_code", "device_code",
			    NULL };
static const char	*dp_states[] = { "valid", "refreshing", "failing",
			    "expired", "pending", "paused", NULL };

/*
 * The view of a query string: q (a substring of the name), kind, state,
 * host and page. Unknown keys are ignored; a value too long for its
 * field is cut; a page that is not a positive number is page 1.
 */
void
dp_view_parse(const char *query, struct dp_view *v)
{
	const char	*p, *eq, *end;
	char		page[16];
	size_t		klen;
	long		n;

	memset(v, 0, sizeof(*v));
	v->page = 1;
	if (query == NULL)
		return;

	for (p = query; *p != '\0'; p = *end ? end + 1 : end) {
		end = p + strcspn(p, "&;");
		if ((eq = memchr(p, '=', end - p)) == NULL)
			continue;
		klen = eq - p;
		eq++;
		if (klen == 1 && *p == 'q')
			dp_arg(v->q, sizeof(v->q), eq, end - eq);
		else if (klen == 4 && !strncmp(p, "kind", 4))
			dp_arg(v->kind, sizeof(v->kind), eq, end - eq);
		else if (klen == 5 && !strncmp(p, "state", 5))
			dp_arg(v->state, sizeof(v->state), eq, end - eq);
		else if (klen == 4 && !strncmp(p, "host", 4))
			dp_arg(v->host, sizeof(v->host), eq, end - eq);
		else if (klen == 4 && !strncmp(p, "page", 4)) {
			dp_arg(page, sizeof(page), eq, end - eq);
			n = strtol(page, NULL, 10);
			v->page = n > 0 && n < 1000000 ? (int)n : 1;
		}
	}
}

/* The number of key in a query string; 0 when absent or not one. */
int64_t
dp_query_int(const char *query, const char *key)
{
	const char	*p, *end;
	char		num[24];
	size_t		klen;
	long long	n;

	if (query == NULL)
		return (0);
	klen = strlen(key);
	for (p = query; *p != '\0'; p = *end ? end + 1 : end) {
		end = p + strcspn(p, "&;");
		if ((size_t)(end - p) <= klen || strncmp(p, key, klen) ||
		    p[klen] != '=')
			continue;
		dp_arg(num, sizeof(num), p + klen + 1, end - p - klen - 1);
		n = strtoll(num, NULL, 10);
		return (n > 0 ? n : 0);
	}

	return (0);
}

/* Does a row match the view? Name by substring, the rest exactly. */
int
dp_view_match(const struct dp_view *v, const char *name, const char *kind,
    const char *state, const char *host)
{
	if (v->q[0] != '\0' && !dp_contains(name, v->q))
		return (0);
	if (v->kind[0] != '\0' && strcmp(v->kind, kind))
		return (0);
	if (v->state[0] != '\0' && strcmp(v->state, state))
		return (0);
	if (v->host[0] != '\0' && (host == NULL || strcasecmp(v->host, host)))
		return (0);

	return (1);
}

/* The view as a query string for page, HTML-escaped for an href. */
void
dp_view_query(struct dbuf *b, const struct dp_view *v, int page)
{
	struct dbuf	q;

	dbuf_init(&q);
	dbuf_appendf(&q, "?q=");
	dp_urlencode(&q, v->q);
	dbuf_appendf(&q, "&kind=");
	dp_urlencode(&q, v->kind);
	dbuf_appendf(&q, "&state=");
	dp_urlencode(&q, v->state);
	dbuf_appendf(&q, "&host=");
	dp_urlencode(&q, v->host);
	dbuf_appendf(&q, "&page=%d", page);
	dr_escape(b, q.data);
	dbuf_free(&q);
}

/*
 * The filter form of the token table: a GET form, so that it works
 * without JavaScript. hosts are offered as suggestions.
 */
void
dp_filter(struct dbuf *b, const struct dp_view *v, const char *const *hosts,
    size_t nh)
{
	size_t		i;

	dbuf_appendf(b, "<form class=\"filter\" method=\"get\" "
	    "action=\"/dashboard\" role=\"search\"><label>Name <input "
	    "type=\"search\" name=\"q\" maxlength=\"64\" value=\"");
	dr_escape(b, v->q);
	dbuf_appendf(b, "\"></label><label>Kind <select name=\"kind\">"
	    "<option value=\"\">any</option>");
	for (i = 0; dp_kinds[i] != NULL; i++)
		dp_option(b, dp_kinds[i], v->kind);
	dbuf_appendf(b, "</select></label><label>State <select "
	    "name=\"state\"><option value=\"\">any</option>");
	for (i = 0; dp_states[i] != NULL; i++)
		dp_option(b, dp_states[i], v->state);
	dbuf_appendf(b, "</select></label><label>Host <input name=\"host\" "
	    "list=\"hosts\" maxlength=\"127\" value=\"");
	dr_escape(b, v->host);
	dbuf_appendf(b, "\"></label><datalist id=\"hosts\">");
	for (i = 0; i < nh; i++) {
		dbuf_appendf(b, "<option value=\"");
		dr_escape(b, hosts[i]);
		dbuf_appendf(b, "\">");
	}
	dbuf_appendf(b, "</datalist><button>Filter</button> "
	    "<a href=\"/dashboard\">clear</a></form>");
}

/*
 * What the table shows of how many, and links to the pages around:
 * matched rows match the view, of total in the cache.
 */
void
dp_pager(struct dbuf *b, const struct dp_view *v, size_t matched,
    size_t total)
{
	size_t		pages, first, last;

	pages = matched == 0 ? 1 : (matched + DP_PAGE_SIZE - 1) / DP_PAGE_SIZE;
	first = matched == 0 ? 0 :
	    (size_t)(v->page - 1) * DP_PAGE_SIZE + 1;
	last = first == 0 ? 0 : first + DP_PAGE_SIZE - 1;
	if (last > matched)
		last = matched;
	if (first > matched)
		first = last = 0;

	dbuf_appendf(b, "<nav class=\"pager\" aria-label=\"token pages\" "
	    "data-matched=\"%zu\" data-total=\"%zu\" data-page=\"%d\">"
	    "<span>%zu–%zu of %zu", matched, total, v->page, first, last,
	    matched);
	if (matched != total)
		dbuf_appendf(b, " matching (%zu sources)", total);
	dbuf_appendf(b, "</span>");
	if (v->page > 1) {
		dbuf_appendf(b, " <a rel=\"prev\" href=\"/dashboard");
		dp_view_query(b, v, (size_t)v->page > pages + 1 ?
		    (int)pages : v->page - 1);
		dbuf_appendf(b, "\">← previous</a>");
	}
	if ((size_t)v->page < pages) {
		dbuf_appendf(b, " <a rel=\"next\" href=\"/dashboard");
		dp_view_query(b, v, v->page + 1);
		dbuf_appendf(b, "\">next →</a>");
	}
	dbuf_appendf(b, " <span class=\"pages\">page %d of %zu</span></nav>",
	    v->page, pages);
}

/*
 * The last 24 h of one token as SVG: a bar per token it held (from the
 * success that obtained it to the one that replaced it, or to its expiry
 * when the lifetime says it ended sooner), and a tick per attempt,
 * failures in their own class. ev in any order.
 */
void
dp_timeline(struct dbuf *b, const struct dp_event *ev, size_t n,
    const struct dp_token *t, int64_t now)
{
	const struct dp_event	*e, *next;
	int64_t			from, start, end;
	size_t			i, j, bars, ticks;
	double			x0, x1;
	char			ts[ISOTIME_LEN], gen[24];

	from = now - DP_DAY_MS;
	bars = ticks = 0;
	dbuf_appendf(b, "<svg class=\"timeline\" viewBox=\"0 0 %d %d\" "
	    "role=\"img\" aria-label=\"token lifetimes and refreshes, last "
	    "24 hours\"><line class=\"grid\" x1=\"%d\" y1=\"%d\" x2=\"%d\" "
	    "y2=\"%d\"/>", DP_TL_W, DP_TL_H, DP_TL_LEFT, DP_TL_H - 18,
	    DP_TL_W - DP_TL_RIGHT, DP_TL_H - 18);
	for (i = 0; i <= 4; i++) {
		x0 = DP_TL_LEFT + (DP_TL_W - DP_TL_LEFT - DP_TL_RIGHT) *
		    (double)i / 4.0;
		dbuf_appendf(b, "<text class=\"axis\" x=\"%.1f\" y=\"%d\" "
		    "text-anchor=\"%s\">%s</text>", x0, DP_TL_H - 4,
		    i == 0 ? "start" : (i == 4 ? "end" : "middle"),
		    i == 4 ? "now" : (i == 0 ? "−24 h" : (i == 1 ? "−18 h" :
		    (i == 2 ? "−12 h" : "−6 h"))));
	}

	for (i = 0; i < n; i++) {
		e = &ev[i];
		if (e->outcome == NULL || strcmp(e->outcome, "success") ||
		    e->finished_ms == DR_NULL)
			continue;
		/* The success after this one replaced its token. */
		next = NULL;
		for (j = 0; j < n; j++) {
			if (ev[j].outcome == NULL ||
			    strcmp(ev[j].outcome, "success") ||
			    ev[j].finished_ms == DR_NULL ||
			    ev[j].finished_ms <= e->finished_ms)
				continue;
			if (next == NULL || ev[j].finished_ms <
			    next->finished_ms)
				next = &ev[j];
		}
		start = e->finished_ms;
		if (next != NULL)
			end = next->finished_ms;
		else if (t->expires_ms > 0 && e->generation == t->generation)
			end = t->expires_ms;
		else
			end = now;
		if (t->lifetime_ms > 0 && start + t->lifetime_ms < end &&
		    e->generation != t->generation)
			end = start + t->lifetime_ms;
		if (end < from || start > now)
			continue;
		x0 = dp_x(start, from, now);
		x1 = dp_x(end, from, now);
		isotime_format(start, ts, sizeof(ts));
		if (e->generation != DR_NULL)
			(void)snprintf(gen, sizeof(gen), "%lld",
			    (long long)e->generation);
		else
			gen[0] = '\0';
		dbuf_appendf(b, "<rect class=\"life%s\" data-generation="
		    "\"%s\" x=\"%.1f\" y=\"14\" width=\"%.1f\" height=\"24\">"
		    "<title>token%s%s from %.19s", e->generation ==
		    t->generation ? " current" : "", gen, x0,
		    x1 - x0 < 1 ? 1 : x1 - x0, gen[0] ? " generation " : "",
		    gen, ts);
		if (e->fpr != NULL) {
			dbuf_appendf(b, " (");
			dr_escape(b, e->fpr);
			dbuf_appendf(b, ")");
		}
		dbuf_appendf(b, "</title></rect>");
		bars++;
	}

	for (i = 0; i < n; i++) {
		e = &ev[i];
		if (e->finished_ms == DR_NULL || e->finished_ms < from ||
		    e->finished_ms > now)
			continue;
		x0 = dp_x(e->finished_ms, from, now);
		isotime_format(e->finished_ms, ts, sizeof(ts));
		dbuf_appendf(b, "<line class=\"tick %s\" x1=\"%.1f\" y1=\"6\" "
		    "x2=\"%.1f\" y2=\"%d\"><title>%.19s ", e->outcome != NULL &&
		    !strcmp(e->outcome, "success") ? "ok" : "fail", x0, x0,
		    DP_TL_H - 18, ts);
		dr_escape(b, e->trigger != NULL ? e->trigger : "");
		dbuf_appendf(b, " ");
		dr_escape(b, e->outcome != NULL ? e->outcome : "");
		dbuf_appendf(b, "</title></line>");
		ticks++;
	}
	dbuf_appendf(b, "</svg><p class=\"legend\" data-bars=\"%zu\" "
	    "data-ticks=\"%zu\">%zu token%s held, %zu attempt%s in the last "
	    "24 h</p>", bars, ticks, bars, bars == 1 ? "" : "s", ticks,
	    ticks == 1 ? "" : "s");
}

/*
 * The refresh history of one token, newest first; more says there are
 * older rows: the link asks for those before the last id shown.
 */
void
dp_history(struct dbuf *b, const char *name, const struct dp_event *ev,
    size_t n, int more, int64_t before)
{
	const struct dp_event	*e;
	size_t			i;

	dbuf_appendf(b, "<table class=\"history\"><thead><tr><th>When</th>"
	    "<th>Trigger</th><th>Outcome</th><th>Duration</th><th>HTTP</th>"
	    "<th>Gen.</th><th>Fingerprint</th><th>Error</th></tr></thead>"
	    "<tbody>");
	for (i = 0; i < n; i++) {
		e = &ev[i];
		dbuf_appendf(b, "<tr data-event=\"%lld\"><td>",
		    (long long)e->id);
		dp_when(b, e->finished_ms);
		dbuf_appendf(b, "</td><td>");
		dr_escape(b, e->trigger != NULL ? e->trigger : "");
		dbuf_appendf(b, "</td><td><span class=\"badge %s\">",
		    e->outcome != NULL && !strcmp(e->outcome, "success") ?
		    "valid" : "failing");
		dr_escape(b, e->outcome != NULL ? e->outcome : "");
		dbuf_appendf(b, "</span></td><td>");
		if (e->duration_ms != DR_NULL)
			dbuf_appendf(b, "%lld ms", (long long)e->duration_ms);
		dbuf_appendf(b, "</td><td>");
		if (e->http_status != DR_NULL)
			dbuf_appendf(b, "%lld", (long long)e->http_status);
		dbuf_appendf(b, "</td><td>");
		if (e->generation != DR_NULL)
			dbuf_appendf(b, "%lld", (long long)e->generation);
		dbuf_appendf(b, "</td><td><code>");
		dr_escape(b, e->fpr != NULL ? e->fpr : "");
		dbuf_appendf(b, "</code></td><td class=\"error\">");
		dr_escape(b, e->error != NULL ? e->error : "");
		dbuf_appendf(b, "</td></tr>");
	}
	if (n == 0)
		dbuf_appendf(b, "<tr><td colspan=\"8\">No refresh %s."
		    "</td></tr>", before > 0 ? "before these" : "yet");
	dbuf_appendf(b, "</tbody></table><nav class=\"pager\">");
	if (before > 0) {
		dbuf_appendf(b, "<a href=\"/dashboard/tokens/");
		dr_escape(b, name);
		dbuf_appendf(b, "\">newest</a> ");
	}
	if (more && n > 0) {
		dbuf_appendf(b, "<a rel=\"next\" href=\"/dashboard/tokens/");
		dr_escape(b, name);
		dbuf_appendf(b, "?before=%lld\">older →</a>",
		    (long long)ev[n - 1].id);
	}
	dbuf_appendf(b, "</nav>");
}

/* The failures among ev (newest first), at most DP_ERRORS_MAX. */
void
dp_errors(struct dbuf *b, const struct dp_event *ev, size_t n)
{
	size_t		i, shown;

	dbuf_appendf(b, "<ul class=\"errors\">");
	for (i = 0, shown = 0; i < n && shown < DP_ERRORS_MAX; i++) {
		if (ev[i].outcome == NULL || !strcmp(ev[i].outcome, "success"))
			continue;
		dbuf_appendf(b, "<li>");
		dp_when(b, ev[i].finished_ms);
		if (ev[i].http_status != DR_NULL)
			dbuf_appendf(b, " HTTP %lld",
			    (long long)ev[i].http_status);
		dbuf_appendf(b, " <span class=\"error\">");
		dr_escape(b, ev[i].error != NULL ? ev[i].error : "failure");
		dbuf_appendf(b, "</span></li>");
		shown++;
	}
	if (shown == 0)
		dbuf_appendf(b, "<li class=\"ok\">No failure in the last 24 h."
		    "</li>");
	dbuf_appendf(b, "</ul>");
}

/* The state of one token as a definition list. */
void
dp_state(struct dbuf *b, const struct dp_token *t, int64_t now)
{
	char		ts[ISOTIME_LEN];

	dbuf_appendf(b, "<dl class=\"figures state\"><div><dt>State</dt><dd>"
	    "<span class=\"badge %s\">%s</span></dd></div><div><dt>Kind</dt>"
	    "<dd>", t->state, t->state);
	dr_escape(b, t->kind != NULL ? t->kind : "");
	dbuf_appendf(b, "</dd></div><div><dt>Host</dt><dd>");
	dr_escape(b, t->host != NULL ? t->host : "—");
	dbuf_appendf(b, "</dd></div><div><dt>Fingerprint</dt><dd><code>");
	dr_escape(b, t->fpr != NULL ? t->fpr : "—");
	dbuf_appendf(b, "</code></dd></div><div><dt>Generation</dt><dd>%lld"
	    "</dd></div><div><dt>Expires</dt><dd>", (long long)(t->generation
	    < 0 ? 0 : t->generation));
	if (t->fpr != NULL && t->expires_ms > 0) {
		isotime_format(t->expires_ms, ts, sizeof(ts));
		dbuf_appendf(b, "<time>%.19s</time> (", ts);
		dr_duration(b, t->expires_ms - now);
		dbuf_appendf(b, ")");
	} else {
		dbuf_appendf(b, "—");
	}
	dbuf_appendf(b, "</dd></div><div><dt>Next refresh</dt><dd>");
	dr_duration(b, t->next_ms - now);
	dbuf_appendf(b, "</dd></div><div><dt>Failures</dt><dd>%u</dd></div>"
	    "<div><dt>Enabled</dt><dd>%s</dd></div></dl>", t->failures,
	    t->enabled ? (t->paused ? "yes, paused" : "yes") : "no");
	if (t->last_error != NULL && t->failures > 0) {
		dbuf_appendf(b, "<p class=\"error\">Last error: ");
		dr_escape(b, t->last_error);
		dbuf_appendf(b, "</p>");
	}
}

/*
 * The whole page of one token around its parts, rendered by dp_timeline,
 * dp_errors and dp_history (they may come from separate queries).
 */
void
dp_token_page(struct dbuf *b, const struct dp_token *t, const char *timeline,
    const char *errors, const char *history, const char *webhooks,
    const char *role, int64_t now)
{
	dbuf_appendf(b, "<!doctype html><html lang=\"en\"><head>"
	    "<meta charset=\"utf-8\"><meta name=\"viewport\" "
	    "content=\"width=device-width, initial-scale=1\">"
	    "<meta name=\"color-scheme\" content=\"light dark\">"
	    "<title>kiln — ");
	dr_escape(b, t->name);
	dbuf_appendf(b, "</title><link rel=\"stylesheet\" "
	    "href=\"/dashboard/static/dashboard.css\"></head><body "
	    "class=\"token-page\"><header><h1><a href=\"/dashboard\">kiln"
	    "</a> / <span class=\"name\">");
	dr_escape(b, t->name);
	dbuf_appendf(b, "</span></h1><p class=\"sub\">signed in as ");
	dr_escape(b, role);
	dbuf_appendf(b, " · <a href=\"/dashboard?q=");
	dp_urlencode_escaped(b, t->name);
	dbuf_appendf(b, "\">in the table</a> · <a class=\"conns\" "
	    "href=\"/dashboard/tokens/");
	dr_escape(b, t->name);
	dbuf_appendf(b, "/connections\">connections</a></p></header><main>"
	    "<section class=\"panel wide\" aria-labelledby=\"h-state\">"
	    "<h2 id=\"h-state\">State</h2>");
	dp_state(b, t, now);
	dbuf_appendf(b, "</section><section class=\"panel wide\" "
	    "aria-labelledby=\"h-timeline\"><h2 id=\"h-timeline\">Tokens "
	    "and refreshes, last 24 h</h2><div id=\"timeline\">%s</div>"
	    "</section><section class=\"panel wide\" "
	    "aria-labelledby=\"h-errors\"><h2 id=\"h-errors\">Recent "
	    "errors</h2><div id=\"errors\">%s</div></section>"
	    "<section class=\"panel wide\" aria-labelledby=\"h-history\">"
	    "<h2 id=\"h-history\">Refresh history</h2><div id=\"history\" "
	    "class=\"scroll\">%s</div></section>", timeline, errors, history);
	/* Its events' webhook deliveries: for admins, who manage them. */
	if (webhooks != NULL && *webhooks != '\0') {
		dbuf_appendf(b, "<section class=\"panel wide\" "
		    "aria-labelledby=\"h-webhooks\"><h2 id=\"h-webhooks\">"
		    "Webhook deliveries</h2><div id=\"webhooks\" "
		    "class=\"scroll\">%s</div></section>", webhooks);
	}
	dbuf_appendf(b, "</main></body></html>");
}

/* A substring match, case-insensitive (names are lower case anyway). */
static int
dp_contains(const char *s, const char *sub)
{
	size_t		i, n;

	n = strlen(sub);
	for (; *s != '\0'; s++) {
		for (i = 0; i < n && s[i] != '\0' &&
		    tolower((unsigned char)s[i]) ==
		    tolower((unsigned char)sub[i]); i++)
			;
		if (i == n)
			return (1);
	}

	return (n == 0);
}

/* A form-urlencoded value, decoded into out (cut to its size). */
static void
dp_arg(char *out, size_t len, const char *s, size_t n)
{
	size_t		i, o;
	int		hi, lo;

	for (i = 0, o = 0; i < n && o + 1 < len; i++) {
		if (s[i] == '+') {
			out[o++] = ' ';
		} else if (s[i] == '%' && i + 2 < n &&
		    isxdigit((unsigned char)s[i + 1]) &&
		    isxdigit((unsigned char)s[i + 2])) {
			hi = isdigit((unsigned char)s[i + 1]) ? s[i + 1] - '0' :
			    tolower((unsigned char)s[i + 1]) - 'a' + 10;
			lo = isdigit((unsigned char)s[i + 2]) ? s[i + 2] - '0' :
			    tolower((unsigned char)s[i + 2]) - 'a' + 10;
			/* A NUL would cut the value: drop it. */
			if (hi * 16 + lo != 0)
				out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
}

static void
dp_urlencode(struct dbuf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (isalnum((unsigned char)*s) || strchr("-_.~", *s) != NULL)
			dbuf_append(b, s, 1);
		else
			dbuf_appendf(b, "%%%02X", (unsigned char)*s);
	}
}

static void
dp_urlencode_escaped(struct dbuf *b, const char *s)
{
	struct dbuf	q;

	dbuf_init(&q);
	dp_urlencode(&q, s);
	if (q.data != NULL)
		dr_escape(b, q.data);
	dbuf_free(&q);
}

static void
dp_option(struct dbuf *b, const char *value, const char *selected)
{
	dbuf_appendf(b, "<option%s>%s</option>", strcmp(value, selected) ?
	    "" : " selected", value);
}

static double
dp_x(int64_t t, int64_t from, int64_t to)
{
	double		w;

	if (t < from)
		t = from;
	if (t > to)
		t = to;
	w = DP_TL_W - DP_TL_LEFT - DP_TL_RIGHT;

	return (DP_TL_LEFT + w * (double)(t - from) / (double)(to - from));
}

static void
dp_when(struct dbuf *b, int64_t ms)
{
	char		ts[ISOTIME_LEN];

	isotime_format(ms == DR_NULL ? 0 : ms, ts, sizeof(ts));
	dbuf_appendf(b, "<time>%.19s</time>", ts);
}
