/*
 * conn_html.c (pure): the dashboard's page of a source's connections,
 * from plain rows: the table (the part the WebSocket pushes), its state
 * filter and pager, the Connect form of the source's kind, the answer to
 * a Connect, and the confirmation of a Disconnect. Every string goes
 * through dr_escape; no token or refresh token is ever a value here (the
 * refresh token fields are write-only).
 */

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln.h"

/* Present in the query (a value that is not valid reads as ""). */
#define CH_QUERY(q, k, o, l)	(qs_get((q), (k), (o), (l)) != 0)

static const char	*ch_states[] = { "pending", "active", "failing",
			    "needs_reauth", "revoked", NULL };

static void	ch_time(struct dbuf *, int64_t);
static void	ch_head(struct dbuf *, const char *, const char *,
		    const char *);
static void	ch_link(struct dbuf *, const char *, const char *);
static int	ch_url_ok(const char *);
static void	ch_view_query(struct dbuf *, const struct ch_view *);
static void	ch_connect_fields(struct dbuf *, const char *, const char *,
		    const char *, const char *);

/* ?state=&cursor=&connected=&disconnected= of the page; bad values: "". */
void
ch_view_parse(const char *query, struct ch_view *v)
{
	char		sub[KILN_SUBJECT_MAX + 1];
	int		i;

	memset(v, 0, sizeof(*v));
	if (CH_QUERY(query, "state", v->state, sizeof(v->state))) {
		for (i = 0; ch_states[i] != NULL; i++) {
			if (!strcmp(v->state, ch_states[i]))
				break;
		}
		if (ch_states[i] == NULL)
			v->state[0] = '\0';
	}
	v->limit = CH_PAGE_ROWS;
	if (CH_QUERY(query, "limit", sub, sizeof(sub)) && strlen(sub) < 4 &&
	    strspn(sub, "0123456789") == strlen(sub) && atoi(sub) >= 1 &&
	    atoi(sub) <= CH_PAGE_ROWS)
		v->limit = atoi(sub);
	if (CH_QUERY(query, "cursor", v->cursor, sizeof(v->cursor)) &&
	    !conn_subject_valid(v->cursor))
		v->cursor[0] = '\0';
	if (CH_QUERY(query, "connected", sub, sizeof(sub)) &&
	    conn_subject_valid(sub)) {
		v->notice = CH_CONNECTED;
		(void)snprintf(v->subject, sizeof(v->subject), "%s", sub);
	} else if (CH_QUERY(query, "disconnected", sub, sizeof(sub)) &&
	    conn_subject_valid(sub)) {
		v->notice = CH_DISCONNECTED;
		(void)snprintf(v->subject, sizeof(v->subject), "%s", sub);
	}
}

/* The kinds whose connections an operator starts from the dashboard. */
int
ch_kind_connects(const char *kind)
{
	return (kind != NULL && (!strcmp(kind, "refresh_token") ||
	    !strcmp(kind, "authorization_code") ||
	    !strcmp(kind, "device_code")));
}

/*
 * The live part: an alert when connections of the source need a new
 * consent (reauth: how many, over all its connections), the rows of one
 * page, and the pager. next: the cursor of the next page, or NULL.
 * act: the viewer may act (operators, admins), with csrf.
 */
void
ch_table(struct dbuf *b, const char *source, const char *kind,
    const struct ch_row *rows, size_t n, const char *next,
    const struct ch_view *v, u_int32_t reauth, int act, const char *csrf)
{
	const struct ch_row	*r;
	size_t			i;
	int			mine;

	act = act && csrf != NULL;
	if (reauth > 0) {
		dbuf_appendf(b, "<p class=\"alert\" role=\"alert\" "
		    "id=\"reauth\">%u connection%s of this source need%s a "
		    "new consent (needs_reauth).%s</p>", reauth,
		    reauth == 1 ? "" : "s", reauth == 1 ? "s" : "",
		    act ? " Reconnect on its row brings it back." : "");
	}

	dbuf_appendf(b, "<table class=\"connections\"><thead><tr>"
	    "<th>Subject</th><th>State</th><th>Gen.</th><th>Expires</th>"
	    "<th>Fingerprint</th><th>Failures</th><th>Last error</th>"
	    "<th>Updated</th>%s</tr></thead><tbody>",
	    act ? "<th>Actions</th>" : "");
	for (i = 0; i < n; i++) {
		r = &rows[i];
		dbuf_appendf(b, "<tr data-subject=\"");
		dr_escape(b, r->subject != NULL ? r->subject : "");
		dbuf_appendf(b, "\"><td class=\"subject\">");
		dr_escape(b, r->subject != NULL ? r->subject : "");
		dbuf_appendf(b, "</td><td><span class=\"badge ");
		dr_escape(b, r->state != NULL ? r->state : "");
		dbuf_appendf(b, "\">");
		dr_escape(b, r->state != NULL ? r->state : "—");
		dbuf_appendf(b, "</span></td><td class=\"gen\">");
		if (r->generation != DR_NULL)
			dbuf_appendf(b, "%lld", (long long)r->generation);
		else
			dbuf_appendf(b, "—");
		dbuf_appendf(b, "</td><td class=\"expires\">");
		ch_time(b, r->expires_ms);
		dbuf_appendf(b, "</td><td><code class=\"fpr\">");
		dr_escape(b, r->fingerprint != NULL && *r->fingerprint ?
		    r->fingerprint : "—");
		dbuf_appendf(b, "</code></td><td class=\"failures\">%lld"
		    "</td><td class=\"error\">", (long long)(r->failures ==
		    DR_NULL ? 0 : r->failures));
		if (r->last_error != NULL)
			dr_escape(b, r->last_error);
		dbuf_appendf(b, "</td><td class=\"updated\">");
		ch_time(b, r->updated_ms);
		dbuf_appendf(b, "</td>");

		/* The default connection is the source's own token. */
		mine = r->subject != NULL && !conn_is_default(r->subject);
		if (act) {
			dbuf_appendf(b, "<td class=\"actions\">");
			if (mine && r->state != NULL &&
			    (!strcmp(r->state, "needs_reauth") ||
			    !strcmp(r->state, "revoked")) &&
			    ch_kind_connects(kind)) {
				dbuf_appendf(b, "<form method=\"post\" "
				    "class=\"reconnect\" action=\""
				    "/dashboard/tokens/");
				dr_escape(b, source);
				dbuf_appendf(b, "/connections\">");
				ch_connect_fields(b, kind, csrf, r->subject,
				    "Reconnect");
				dbuf_appendf(b, "</form>");
			}
			if (mine) {
				dbuf_appendf(b, "<form method=\"post\" "
				    "class=\"disconnect\" action=\""
				    "/dashboard/tokens/");
				dr_escape(b, source);
				dbuf_appendf(b, "/connections/delete\" "
				    "data-confirm=\"Disconnect ");
				dr_escape(b, r->subject);
				dbuf_appendf(b, "? Its token is no longer "
				    "served.\"><input type=\"hidden\" "
				    "name=\"csrf\" value=\"");
				dr_escape(b, csrf);
				dbuf_appendf(b, "\"><input type=\"hidden\" "
				    "name=\"subject\" value=\"");
				dr_escape(b, r->subject);
				dbuf_appendf(b, "\"><button class=\"danger\">"
				    "Disconnect</button></form>");
			}
			dbuf_appendf(b, "</td>");
		}
		dbuf_appendf(b, "</tr>");
	}
	if (n == 0) {
		dbuf_appendf(b, "<tr><td colspan=\"%d\">No connections%s."
		    "</td></tr>", act ? 9 : 8, v->state[0] != '\0' ?
		    " in this state" : "");
	}
	dbuf_appendf(b, "</tbody></table>");

	if (v->cursor[0] == '\0' && next == NULL)
		return;
	dbuf_appendf(b, "<nav class=\"pager\" aria-label=\"pages\">");
	if (v->cursor[0] != '\0') {
		dbuf_appendf(b, "<a href=\"/dashboard/tokens/");
		dr_escape(b, source);
		dbuf_appendf(b, "/connections?");
		ch_view_query(b, v);
		dbuf_appendf(b, "\">First page</a> ");
	}
	if (next != NULL) {
		dbuf_appendf(b, "<a rel=\"next\" href=\"/dashboard/tokens/");
		dr_escape(b, source);
		dbuf_appendf(b, "/connections?");
		ch_view_query(b, v);
		dbuf_appendf(b, "cursor=");
		dr_escape(b, next);
		dbuf_appendf(b, "\">Next page</a>");
	}
	dbuf_appendf(b, "</nav>");
}

/*
 * The whole page around table (ch_table's HTML). act: the Connect form
 * (operators and admins), for the kinds that connect.
 */
void
ch_page(struct dbuf *b, const char *source, const char *kind,
    const char *role, const struct ch_view *v, const char *table, int act,
    const char *csrf)
{
	int		i;

	ch_head(b, source, role, "Connections");
	if (v->notice != CH_NONE) {
		dbuf_appendf(b, "<p class=\"notice\" role=\"status\">%s ",
		    v->notice == CH_CONNECTED ? "Connected" : "Disconnected");
		dr_escape(b, v->subject);
		dbuf_appendf(b, ".</p>");
	}

	dbuf_appendf(b, "<section class=\"panel wide\" aria-labelledby="
	    "\"h-conns\"><h2 id=\"h-conns\">Connections <small>(");
	dr_escape(b, kind != NULL ? kind : "");
	dbuf_appendf(b, ")</small></h2><form method=\"get\" "
	    "class=\"conn-filter\" action=\"/dashboard/tokens/");
	dr_escape(b, source);
	dbuf_appendf(b, "/connections\"><label>State <select name=\"state\">"
	    "<option value=\"\">any</option>");
	for (i = 0; ch_states[i] != NULL; i++) {
		dbuf_appendf(b, "<option%s>%s</option>",
		    !strcmp(v->state, ch_states[i]) ? " selected" : "",
		    ch_states[i]);
	}
	dbuf_appendf(b, "</select></label> ");
	if (v->limit != CH_PAGE_ROWS) {
		dbuf_appendf(b, "<input type=\"hidden\" name=\"limit\" "
		    "value=\"%d\">", v->limit);
	}
	dbuf_appendf(b, "<button>Filter</button></form>"
	    "<div id=\"connections\" class=\"scroll\" data-source=\"");
	dr_escape(b, source);
	dbuf_appendf(b, "\">%s</div></section>", table);

	if (act && csrf != NULL && ch_kind_connects(kind)) {
		dbuf_appendf(b, "<section class=\"panel wide\" "
		    "aria-labelledby=\"h-connect\"><h2 id=\"h-connect\">"
		    "Connect</h2><form method=\"post\" class=\"connect\" "
		    "action=\"/dashboard/tokens/");
		dr_escape(b, source);
		dbuf_appendf(b, "/connections\">");
		ch_connect_fields(b, kind, csrf, NULL, "Connect");
		dbuf_appendf(b, "</form></section>");
	}
	dbuf_appendf(b, "</main></body></html>");
}

/*
 * The answer to a Connect that waits for a person: the upstream's consent
 * (opened in a new tab), or the device flow's code; else a refusal.
 */
void
ch_message(struct dbuf *b, const char *source, const char *role,
    const char *error, const struct ch_started *s)
{
	ch_head(b, source, role, error != NULL ? "Connect refused" :
	    "Connect");
	dbuf_appendf(b, "<section class=\"panel wide\" aria-labelledby="
	    "\"h-msg\">");
	if (error != NULL || s == NULL) {
		dbuf_appendf(b, "<h2 id=\"h-msg\">Refused</h2><p class=\""
		    "alert\" role=\"alert\" id=\"error\">");
		dr_escape(b, error != NULL ? error : "no answer");
		dbuf_appendf(b, "</p>");
	} else {
		dbuf_appendf(b, "<h2 id=\"h-msg\">Connecting ");
		dr_escape(b, s->subject != NULL ? s->subject : "");
		dbuf_appendf(b, "</h2><p>State: <span class=\"badge ");
		dr_escape(b, s->state != NULL ? s->state : "");
		dbuf_appendf(b, "\">");
		dr_escape(b, s->state != NULL ? s->state : "");
		dbuf_appendf(b, "</span>");
		if (s->expires_at != NULL) {
			dbuf_appendf(b, ", until <time>");
			dr_escape(b, s->expires_at);
			dbuf_appendf(b, "</time>");
		}
		dbuf_appendf(b, "</p>");
		if (ch_url_ok(s->authorization_url)) {
			dbuf_appendf(b, "<p>The person signs in and consents "
			    "at the upstream: ");
			ch_link(b, s->authorization_url,
			    "Open the consent page");
			dbuf_appendf(b, " (a new tab), or send them the link."
			    "</p>");
		}
		if (s->user_code != NULL) {
			dbuf_appendf(b, "<p>On their device, the person "
			    "opens ");
			if (ch_url_ok(s->verification_uri))
				ch_link(b, s->verification_uri,
				    s->verification_uri);
			dbuf_appendf(b, " and enters the code <code "
			    "id=\"user-code\">");
			dr_escape(b, s->user_code);
			dbuf_appendf(b, "</code>");
			if (ch_url_ok(s->verification_uri_complete)) {
				dbuf_appendf(b, ", or opens ");
				ch_link(b, s->verification_uri_complete,
				    "the page with the code filled in");
			}
			dbuf_appendf(b, ".</p>");
		}
	}
	dbuf_appendf(b, "<p><a href=\"/dashboard/tokens/");
	dr_escape(b, source);
	dbuf_appendf(b, "/connections\">Back to the connections</a></p>"
	    "</section></main></body></html>");
}

/* Disconnect without JavaScript: a second form says yes. */
void
ch_confirm(struct dbuf *b, const char *source, const char *role,
    const char *subject, const char *csrf)
{
	ch_head(b, source, role, "Disconnect");
	dbuf_appendf(b, "<section class=\"panel wide\" aria-labelledby="
	    "\"h-confirm\"><h2 id=\"h-confirm\">Disconnect ");
	dr_escape(b, subject);
	dbuf_appendf(b, "?</h2><p>Its token is no longer served and its "
	    "refresh token is deleted.</p><form method=\"post\" "
	    "class=\"disconnect-confirm\" action=\"/dashboard/tokens/");
	dr_escape(b, source);
	dbuf_appendf(b, "/connections/delete\"><input type=\"hidden\" "
	    "name=\"csrf\" value=\"");
	dr_escape(b, csrf);
	dbuf_appendf(b, "\"><input type=\"hidden\" name=\"subject\" "
	    "value=\"");
	dr_escape(b, subject);
	dbuf_appendf(b, "\"><input type=\"hidden\" name=\"confirm\" "
	    "value=\"yes\"><button class=\"danger\">Yes, disconnect</button> "
	    "<a href=\"/dashboard/tokens/");
	dr_escape(b, source);
	dbuf_appendf(b, "/connections\">Cancel</a></form></section>"
	    "</main></body></html>");
}

/* The fields of Connect (subject NULL) or of a row's Reconnect. */
static void
ch_connect_fields(struct dbuf *b, const char *kind, const char *csrf,
    const char *subject, const char *label)
{
	dbuf_appendf(b, "<input type=\"hidden\" name=\"csrf\" value=\"");
	dr_escape(b, csrf);
	dbuf_appendf(b, "\">");
	if (subject != NULL) {
		dbuf_appendf(b, "<input type=\"hidden\" name=\"subject\" "
		    "value=\"");
		dr_escape(b, subject);
		dbuf_appendf(b, "\">");
	} else {
		dbuf_appendf(b, "<label>Subject <input name=\"subject\" "
		    "required maxlength=\"128\" "
		    "pattern=\"[A-Za-z0-9._@:\\-]+\" "
		    "autocomplete=\"off\"></label> ");
	}
	if (kind != NULL && !strcmp(kind, "refresh_token") &&
	    subject == NULL) {
		/* Write-only: typed, sent, never shown again. */
		dbuf_appendf(b, "<label>Refresh token <input "
		    "type=\"password\" name=\"refresh_token\" required "
		    "maxlength=\"4096\" autocomplete=\"off\" "
		    "placeholder=\"write-only\"></label> ");
	} else if (kind != NULL && !strcmp(kind, "refresh_token")) {
		/* A row's: compact, named for the reader of the screen. */
		dbuf_appendf(b, "<input type=\"password\" "
		    "name=\"refresh_token\" required maxlength=\"4096\" "
		    "autocomplete=\"off\" placeholder=\"new refresh token\" "
		    "aria-label=\"New refresh token for ");
		dr_escape(b, subject);
		dbuf_appendf(b, "\"> ");
	}
	dbuf_appendf(b, "<button>%s</button>", label);
}

static void
ch_head(struct dbuf *b, const char *source, const char *role,
    const char *title)
{
	dbuf_appendf(b, "<!doctype html><html lang=\"en\"><head>"
	    "<meta charset=\"utf-8\"><meta name=\"viewport\" "
	    "content=\"width=device-width, initial-scale=1\">"
	    "<meta name=\"color-scheme\" content=\"light dark\">"
	    "<title>kiln — ");
	dr_escape(b, source);
	dbuf_appendf(b, " — %s</title><link rel=\"stylesheet\" "
	    "href=\"/dashboard/static/dashboard.css\"><script "
	    "src=\"/dashboard/static/conn.js\" defer></script></head><body "
	    "class=\"token-page conn-page\"><header><h1><a href=\"/dashboard\">"
	    "kiln</a> / <a class=\"name\" href=\"/dashboard/tokens/", title);
	dr_escape(b, source);
	dbuf_appendf(b, "\">");
	dr_escape(b, source);
	dbuf_appendf(b, "</a> / <a href=\"/dashboard/tokens/");
	dr_escape(b, source);
	dbuf_appendf(b, "/connections\">connections</a></h1><p class=\"sub\">"
	    "signed in as ");
	dr_escape(b, role);
	dbuf_appendf(b, " <span id=\"live\" class=\"live\" aria-live=\""
	    "polite\"></span></p></header><main>");
}

static void
ch_link(struct dbuf *b, const char *url, const char *text)
{
	dbuf_appendf(b, "<a href=\"");
	dr_escape(b, url);
	dbuf_appendf(b, "\" target=\"_blank\" rel=\"noopener noreferrer\">");
	dr_escape(b, text);
	dbuf_appendf(b, "</a>");
}

/* The view's state and limit as "k=v&amp;" pairs of a link. */
static void
ch_view_query(struct dbuf *b, const struct ch_view *v)
{
	if (v->state[0] != '\0')
		dbuf_appendf(b, "state=%s&amp;", v->state);
	if (v->limit != CH_PAGE_ROWS)
		dbuf_appendf(b, "limit=%d&amp;", v->limit);
}

/* Only http(s) addresses become links. */
static int
ch_url_ok(const char *url)
{
	return (url != NULL && (!strncmp(url, "https://", 8) ||
	    !strncmp(url, "http://", 7)));
}

static void
ch_time(struct dbuf *b, int64_t ms)
{
	char		ts[ISOTIME_LEN];

	if (ms == DR_NULL) {
		dbuf_appendf(b, "—");
		return;
	}
	isotime_format(ms, ts, sizeof(ts));
	dbuf_appendf(b, "<time datetime=\"%s\">%.10s %.8s</time>", ts, ts,
	    ts + 11);
}

