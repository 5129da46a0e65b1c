/*
 * dash_audit.c: the dashboard's audit log page and the audit row of a
 * refused dashboard login.
 *
 *	GET /dashboard/audit	the newest rows, filtered, a page at a time
 *
 * dashboard.c checks the session and the role (admin), then starts the
 * step here; its dash_finish answers the HTML built here. Rows come from
 * the store as structs; every string goes through dr_escape, and a row
 * holds no secret to begin with (names of fields, never values).
 */

#include <sys/types.h>

#include <stdio.h>
#include <string.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "assets.h"
#include "kiln.h"

static void	audit_page_loaded(struct api_pending *,
		    const struct store_rows *, int);
static void	audit_refused_written(struct api_pending *,
		    const struct store_rows *, int);
static void	audit_page(struct dbuf *, const struct audit_query *,
		    const struct store_rows *, int);
static void	audit_filter(struct dbuf *, const struct audit_query *);
static void	audit_input(struct dbuf *, const char *, const char *,
		    const char *);
static void	audit_row(struct dbuf *, const struct audit_row *);
static void	audit_query_append(struct dbuf *, const struct audit_query *);
static void	audit_urlencode(struct dbuf *, const char *);
static void	audit_cell(struct dbuf *, const char *);

/*
 * The audit page of the request's query: starts the listing and returns
 * its pending step, or NULL with a 400 answered for a bad query.
 */
struct api_pending *
dash_audit_start(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;
	struct audit_query	q;
	char			err[KILN_ERR_MAX];

	if (!audit_query_parse(req->query_string, &q, err, sizeof(err))) {
		api_error(req, 400, "bad_request", err);
		return (NULL);
	}

	p = api_pending_start(req, st, audit_page_loaded);
	store_audit_list(&q, api_pending_cb, p);

	return (p);
}

/*
 * A refused login leaves a row (outcome "refused") naming the principal
 * when the credential was valid but may not sign in (a client key, an
 * expired JWT), else anonymous: never what was typed. The login form is
 * answered again (401) once the row is written.
 */
struct api_pending *
dash_audit_refused(struct http_request *req, struct api_state *st,
    const struct principal *pr, const char *csrf)
{
	struct api_pending	*p;

	p = api_pending_start(req, st, audit_refused_written);
	api_audit_who(req, pr, st->request_id, &p->who);
	(void)kore_strlcpy(p->principal.csrf, csrf, sizeof(p->principal.csrf));
	store_audit_write(&p->who, "login", NULL, NULL, "refused",
	    api_pending_cb, p);

	return (p);
}

static void
audit_refused_written(struct api_pending *p, const struct store_rows *rows,
    int ok)
{
	struct dbuf	d;

	dbuf_init(&d);
	dr_login(&d, asset_login_html, asset_len_login_html,
	    p->principal.csrf, ok ? "That key or token is not valid for the "
	    "dashboard." : "The database did not answer; try again.");
	p->html = kore_buf_alloc(d.len + 1);
	kore_buf_append(p->html, d.data, d.len);
	dbuf_free(&d);
	p->status = ok ? 401 : 503;
	p->done = 1;
}

/* The rows came: the page, with the query (checked before) read again. */
static void
audit_page_loaded(struct api_pending *p, const struct store_rows *rows,
    int ok)
{
	struct audit_query	q;
	struct dbuf		d;
	char			err[KILN_ERR_MAX];

	(void)audit_query_parse(p->req->query_string, &q, err, sizeof(err));
	dbuf_init(&d);
	audit_page(&d, &q, rows, ok);
	p->html = kore_buf_alloc(d.len + 1);
	kore_buf_append(p->html, d.data, d.len);
	dbuf_free(&d);
	p->status = ok ? 200 : 503;
	p->done = 1;
}

static void
audit_page(struct dbuf *d, const struct audit_query *q,
    const struct store_rows *rows, int ok)
{
	size_t		i;

	dbuf_appendf(d, "<!doctype html>\n<html lang=\"en\">\n<head>\n"
	    "<meta charset=\"utf-8\">\n<meta name=\"viewport\" "
	    "content=\"width=device-width, initial-scale=1\">\n"
	    "<meta name=\"color-scheme\" content=\"light dark\">\n"
	    "<title>kiln — audit log</title>\n<link rel=\"stylesheet\" "
	    "href=\"/dashboard/static/dashboard.css\">\n</head>\n<body>\n"
	    "<header>\n  <h1>kiln</h1>\n  <p class=\"sub\">audit log · "
	    "<a href=\"/dashboard\">tokens</a></p>\n</header>\n<main>\n"
	    "<section class=\"panel wide\" aria-labelledby=\"h-audit\">\n"
	    "<h2 id=\"h-audit\">Admin actions</h2>\n");
	audit_filter(d, q);

	if (!ok) {
		dbuf_appendf(d, "<p class=\"alert\">The database did not "
		    "answer; reload to try again.</p>\n");
	} else if (rows->n == 0) {
		dbuf_appendf(d, "<p class=\"empty\">No audit rows.</p>\n");
	} else {
		dbuf_appendf(d, "<table id=\"audit\">\n<thead><tr><th>#</th>"
		    "<th>When</th><th>Who</th><th>Action</th><th>Target</th>"
		    "<th>Fields</th><th>Address</th><th>Request</th>"
		    "<th>Outcome</th></tr></thead>\n<tbody>\n");
		for (i = 0; i < rows->n; i++)
			audit_row(d, &rows->audit[i]);
		dbuf_appendf(d, "</tbody>\n</table>\n");
	}

	dbuf_appendf(d, "<nav class=\"pager\">");
	if (q->before > 0) {
		dbuf_appendf(d, "<a href=\"/dashboard/audit?limit=%lld",
		    (long long)q->limit);
		audit_query_append(d, q);
		dbuf_appendf(d, "\">Newest</a> ");
	}
	if (ok && rows->n > 0 && (int64_t)rows->n == q->limit) {
		dbuf_appendf(d, "<a rel=\"next\" href=\"/dashboard/audit?"
		    "limit=%lld&amp;before=%lld", (long long)q->limit,
		    (long long)rows->audit[rows->n - 1].id);
		audit_query_append(d, q);
		dbuf_appendf(d, "\">Older</a>");
	}
	dbuf_appendf(d, "</nav>\n</section>\n</main>\n</body>\n</html>\n");
}

static void
audit_filter(struct dbuf *d, const struct audit_query *q)
{
	char		since[ISOTIME_LEN], until[ISOTIME_LEN];

	since[0] = until[0] = '\0';
	if (q->since_ms != AUDIT_NONE)
		isotime_format(q->since_ms, since, sizeof(since));
	if (q->until_ms != AUDIT_NONE)
		isotime_format(q->until_ms, until, sizeof(until));

	dbuf_appendf(d, "<form method=\"get\" action=\"/dashboard/audit\" "
	    "class=\"filter\">\n");
	audit_input(d, "action", "Action", q->action);
	audit_input(d, "principal", "Principal", q->principal);
	audit_input(d, "target", "Target", q->target);
	audit_input(d, "since", "Since", since);
	audit_input(d, "until", "Until", until);
	dbuf_appendf(d, "<button>Filter</button>\n</form>\n");
}

static void
audit_input(struct dbuf *d, const char *name, const char *label,
    const char *value)
{
	dbuf_appendf(d, "<label>%s <input name=\"%s\" value=\"", label, name);
	dr_escape(d, value);
	dbuf_appendf(d, "\"></label>\n");
}

static void
audit_row(struct dbuf *d, const struct audit_row *a)
{
	char		at[ISOTIME_LEN];

	isotime_format(a->at_ms, at, sizeof(at));
	dbuf_appendf(d, "<tr><td>%lld</td>", (long long)a->id);
	audit_cell(d, at);
	dbuf_appendf(d, "<td>");
	dr_escape(d, a->principal_kind);
	if (a->principal != NULL) {
		dbuf_appendf(d, " ");
		dr_escape(d, a->principal);
	}
	dbuf_appendf(d, "</td>");
	audit_cell(d, a->action);
	audit_cell(d, a->target);
	audit_cell(d, a->fields);
	audit_cell(d, a->address);
	audit_cell(d, a->request_id);
	audit_cell(d, a->outcome);
	dbuf_appendf(d, "</tr>\n");
}

static void
audit_cell(struct dbuf *d, const char *v)
{
	dbuf_appendf(d, "<td>");
	if (v != NULL)
		dr_escape(d, v);
	dbuf_appendf(d, "</td>");
}

/* The filters of q as "&amp;name=value" for a link of the page. */
static void
audit_query_append(struct dbuf *d, const struct audit_query *q)
{
	const struct {
		const char	*name;
		const char	*value;
	} f[] = {
		{ "action", q->action },
		{ "principal", q->principal },
		{ "target", q->target },
	};
	char		t[ISOTIME_LEN];
	size_t		i;

	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		if (f[i].value[0] == '\0')
			continue;
		dbuf_appendf(d, "&amp;%s=", f[i].name);
		audit_urlencode(d, f[i].value);
	}
	if (q->since_ms != AUDIT_NONE) {
		isotime_format(q->since_ms, t, sizeof(t));
		dbuf_appendf(d, "&amp;since=");
		audit_urlencode(d, t);
	}
	if (q->until_ms != AUDIT_NONE) {
		isotime_format(q->until_ms, t, sizeof(t));
		dbuf_appendf(d, "&amp;until=");
		audit_urlencode(d, t);
	}
}

/* Everything but unreserved characters as %XX: safe in an attribute. */
static void
audit_urlencode(struct dbuf *d, const char *s)
{
	unsigned char	c;

	for (; *s != '\0'; s++) {
		c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '.' || c == '~')
			dbuf_append(d, s, 1);
		else
			dbuf_appendf(d, "%%%02X", c);
	}
}
