/*
 * dash_conn.c: the dashboard's page of a source's connections, usable
 * without JavaScript, live with it.
 *
 *	GET  /dashboard/tokens/{name}/connections[?state=&limit=&cursor=]
 *	POST /dashboard/tokens/{name}/connections		Connect
 *	POST /dashboard/tokens/{name}/connections/delete	Disconnect
 *
 * The POSTs are admin routes of the router: credentials, the operator
 * role, the rate limit and CSRF as for the admin API. Connect (and a
 * row's Reconnect) hands the form, read as JSON, to the code of
 * POST /api/tokens/{name}/connections (api_conn_create_form); Disconnect
 * asks the store as DELETE .../connections/{subject} does, audited the
 * same. The rows come from the database (store_conn_list), as the API's
 * list; HTML from conn_html.c.
 *
 * Live: the page's script opens the dashboard's WebSocket with
 * ?conn={name}&state=&cursor=; dashboard.c hands such sockets here
 * (struct dash_live). On news of the tokens each one's rows are read
 * again, at most once a second, and pushed only when they changed.
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <yajl/yajl_gen.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

#define DCONN_TICK_MS		200
#define DCONN_LOAD_MS		1000	/* at most a load a second */
#define DCONN_RESYNC_MS		5000	/* read again, news or not */
#define DCONN_TOKEN_MAX		4096
#define DCONN_REDIRECT		1	/* p->version: go to p->secret */

struct dconn_live {
	u_int64_t		id;
	char			session[AUTH_HASH_LEN + 1];
	char			name[KILN_NAME_MAX + 1];
	struct ch_view		view;
	u_int64_t		sent;		/* digest last pushed */
	int			dirty;
	int			loading;
	int64_t			loaded_ms;
	TAILQ_ENTRY(dconn_live)	list;
};

/* A form's fields; refresh_token wiped and freed by dconn_form_free. */
struct dconn_form {
	char		subject[KILN_SUBJECT_MAX + 2];
	char		confirm[8];
	char		*refresh_token;
};

static TAILQ_HEAD(, dconn_live)	dconn_lives =
				    TAILQ_HEAD_INITIALIZER(dconn_lives);

static void	*dconn_open(const char *, const char *, u_int64_t);
static void	dconn_close(void *);
static void	dconn_changed(void);
static void	dconn_tick(void *, u_int64_t);
static void	dconn_loaded(const struct store_rows *, void *, int);
static struct dconn_live	*dconn_find(u_int64_t);
static void	dconn_render(struct dbuf *, const char *,
		    const struct store_rows *, const struct ch_view *, int,
		    const char *);
static u_int32_t	dconn_reauth(const char *);
static const char	*dconn_kind(const char *);
static void	dconn_listed(struct api_pending *, const struct store_rows *,
		    int);
static void	dconn_deleted(struct api_pending *,
		    const struct store_rows *, int);
static int	dconn_connected(struct http_request *, struct api_pending *);
static int	dconn_finish(struct http_request *, struct api_pending *);
static void	dconn_html(struct api_pending *, int, struct dbuf *);
static void	dconn_refused(struct http_request *, struct api_state *,
		    int, const char *);
static int	dconn_form(struct http_request *, struct dconn_form *);
static void	dconn_form_free(struct dconn_form *);

static const struct dash_live	dconn_hooks = {
	dconn_open, dconn_close, dconn_changed
};

void
dconn_init(void)
{
	dash_live(&dconn_hooks);
	(void)kore_timer_add(dconn_tick, DCONN_TICK_MS, NULL, 0);
}

int
dconn_page(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;
	struct ch_view		v;
	int			ret;

	if (!dash_viewer(req, st, &ret))
		return (ret);
	if (cache_lookup(st->name) == NULL) {
		api_error(req, 404, "not_found", "unknown token source");
		return (KORE_RESULT_OK);
	}

	ch_view_parse(req->query_string, &v);
	p = api_pending_start(req, st, dconn_listed);
	p->finish = dconn_finish;
	/* The view rides in p->secret (as the token table's). */
	if (req->query_string != NULL)
		p->secret = kore_strdup(req->query_string);
	store_conn_list(st->name, v.cursor[0] ? v.cursor : NULL,
	    v.state[0] ? v.state : NULL, v.limit + 1, api_pending_cb, p);

	return (KORE_RESULT_RETRY);
}

static void
dconn_listed(struct api_pending *p, const struct store_rows *rows, int ok)
{
	struct ch_view		v;
	struct dbuf		table, d;
	int			act;

	ch_view_parse(p->secret, &v);
	if (!ok) {
		dbuf_init(&d);
		ch_message(&d, p->name, jwt_role_name(p->principal.role),
		    "The database did not answer; try again.", NULL);
		dconn_html(p, 503, &d);
		return;
	}

	act = p->principal.role >= ROLE_OPERATOR;
	dbuf_init(&table);
	dconn_render(&table, p->name, rows, &v, act, p->principal.csrf);
	dbuf_init(&d);
	ch_page(&d, p->name, dconn_kind(p->name),
	    jwt_role_name(p->principal.role), &v, table.data, act,
	    p->principal.csrf);
	dbuf_free(&table);
	dconn_html(p, 200, &d);
}

/* Connect, and a row's Reconnect: the API's import or flow start. */
int
dconn_connect(struct http_request *req, struct api_state *st)
{
	struct dconn_form	f;
	yajl_alloc_funcs	wipe;
	yajl_gen		g;
	yajl_val		root;
	const unsigned char	*json;
	size_t			len;
	const char		*kind;
	int			ret;

	if (!dconn_form(req, &f))
		return (KORE_RESULT_OK);
	kind = dconn_kind(st->name);
	if (cache_lookup(st->name) == NULL) {
		dconn_form_free(&f);
		api_error(req, 404, "not_found", "unknown token source");
		return (KORE_RESULT_OK);
	}
	if (!ch_kind_connects(kind)) {
		dconn_form_free(&f);
		dconn_refused(req, st, 409, "This kind of source has no "
		    "connections to start.");
		return (KORE_RESULT_OK);
	}
	if (!conn_subject_valid(f.subject) || conn_is_default(f.subject)) {
		dconn_form_free(&f);
		dconn_refused(req, st, 400, "subject: expected 1-128 of A-Z "
		    "a-z 0-9 . _ @ : - (not \"default\")");
		return (KORE_RESULT_OK);
	}

	/* The form as the API's body; every copy of the token wiped. */
	json_wipe_funcs(&wipe);
	if ((g = yajl_gen_alloc(&wipe)) == NULL)
		fatal("yajl_gen_alloc");
	yajl_gen_map_open(g);
	json_kv_str(g, "subject", f.subject);
	if (f.refresh_token != NULL && *f.refresh_token != '\0')
		json_kv_str(g, "refresh_token", f.refresh_token);
	yajl_gen_map_close(g);
	root = NULL;
	if (yajl_gen_get_buf(g, &json, &len) == yajl_gen_status_ok)
		root = json_parse((const char *)json, len);
	yajl_gen_free(g);
	dconn_form_free(&f);
	if (root == NULL) {
		dconn_refused(req, st, 400, "the form is not valid UTF-8");
		return (KORE_RESULT_OK);
	}

	ret = api_conn_create_form(req, st, root);
	if (st->pending != NULL)
		st->pending->finish = dconn_connected;

	return (ret);
}

/*
 * The API's answer as a page: an import goes back to the list; a flow
 * that waits for a person shows where they go (conn_html.c).
 */
static int
dconn_connected(struct http_request *req, struct api_pending *p)
{
	struct ch_started	s;
	struct dbuf		d;
	yajl_val		v;
	const unsigned char	*buf;
	size_t			len;
	char			where[160];
	const char		*role;

#define DCONN_STR(k)	(YAJL_IS_STRING(json_path_get(v, "data." k)) ? \
			    YAJL_GET_STRING(json_path_get(v, "data." k)) : NULL)

	role = jwt_role_name(p->principal.role);
	dbuf_init(&d);
	if (p->code[0] != '\0' || p->g == NULL) {
		ch_message(&d, p->name, role, p->code[0] != '\0' ?
		    p->message : "no answer", NULL);
		dconn_html(p, p->code[0] != '\0' ? p->status : 500, &d);
		return (dconn_finish(req, p));
	}

	yajl_gen_map_close(p->g);
	v = NULL;
	if (yajl_gen_get_buf(p->g, &buf, &len) == yajl_gen_status_ok)
		v = json_parse((const char *)buf, len);
	memset(&s, 0, sizeof(s));
	if (v != NULL) {
		s.subject = DCONN_STR("subject");
		s.state = DCONN_STR("state");
		s.authorization_url = DCONN_STR("authorization_url");
		s.user_code = DCONN_STR("user_code");
		s.verification_uri = DCONN_STR("verification_uri");
		s.verification_uri_complete =
		    DCONN_STR("verification_uri_complete");
		s.expires_at = DCONN_STR("expires_at");
	}
#undef DCONN_STR

	if (s.authorization_url == NULL && s.user_code == NULL &&
	    s.subject != NULL && conn_subject_valid(s.subject)) {
		(void)snprintf(where, sizeof(where), "/dashboard/tokens/%s/"
		    "connections?connected=%s", p->name, s.subject);
		yajl_tree_free(v);
		dbuf_free(&d);
		dash_redirect(req, where);
		return (1);
	}
	ch_message(&d, p->name, role, v == NULL ? "no answer" : NULL,
	    v == NULL ? NULL : &s);
	if (v != NULL)
		yajl_tree_free(v);
	dconn_html(p, v == NULL ? 500 : 201, &d);

	return (dconn_finish(req, p));
}

/* Disconnect: confirmed (a second page without JavaScript), deleted. */
int
dconn_disconnect(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;
	struct dconn_form	f;
	struct dbuf		d;

	if (!dconn_form(req, &f))
		return (KORE_RESULT_OK);
	if (!conn_subject_valid(f.subject) || conn_is_default(f.subject)) {
		dconn_form_free(&f);
		dconn_refused(req, st, 400, "subject: expected a connection "
		    "other than \"default\" (the source itself)");
		return (KORE_RESULT_OK);
	}
	if (strcmp(f.confirm, "yes")) {
		dbuf_init(&d);
		ch_confirm(&d, st->name, jwt_role_name(st->principal.role),
		    f.subject, st->principal.csrf);
		dash_html_headers(req);
		http_response(req, 200, d.data, d.len);
		dbuf_free(&d);
		dconn_form_free(&f);
		return (KORE_RESULT_OK);
	}

	p = api_pending_start(req, st, dconn_deleted);
	p->finish = dconn_finish;
	p->secret = kore_strdup(f.subject);
	store_conn_delete(st->name, f.subject, &p->who, api_pending_cb, p);
	dconn_form_free(&f);

	return (KORE_RESULT_RETRY);
}

static void
dconn_deleted(struct api_pending *p, const struct store_rows *rows, int ok)
{
	struct dbuf	d;
	char		where[160];

	if (!ok || rows->n == 0) {
		dbuf_init(&d);
		ch_message(&d, p->name, jwt_role_name(p->principal.role),
		    !ok ? "The database did not answer; try again." :
		    "No such connection.", NULL);
		dconn_html(p, !ok ? 503 : 404, &d);
		return;
	}

	/* p->secret: the subject, then where the browser goes. */
	(void)snprintf(where, sizeof(where), "/dashboard/tokens/%s/"
	    "connections?disconnected=%s", p->name, p->secret);
	kore_free(p->secret);
	p->secret = kore_strdup(where);
	p->version = DCONN_REDIRECT;
	p->done = 1;
}

static int
dconn_finish(struct http_request *req, struct api_pending *p)
{
	if (p->version == DCONN_REDIRECT && p->secret != NULL) {
		dash_redirect(req, p->secret);
		return (1);
	}
	if (p->html == NULL)
		return (0);

	dash_html_headers(req);
	http_response(req, p->status, p->html->data, p->html->offset);

	return (1);
}

/* d (freed here) as the step's answer. */
static void
dconn_html(struct api_pending *p, int status, struct dbuf *d)
{
	if (p->html == NULL)
		p->html = kore_buf_alloc(d->len + 1);
	kore_buf_reset(p->html);
	kore_buf_append(p->html, d->data, d->len);
	dbuf_free(d);
	p->status = status;
	p->code[0] = '\0';
	p->finish = dconn_finish;
	p->done = 1;
}

static void
dconn_refused(struct http_request *req, struct api_state *st, int status,
    const char *text)
{
	struct dbuf	d;

	dbuf_init(&d);
	ch_message(&d, st->name, jwt_role_name(st->principal.role), text,
	    NULL);
	dash_html_headers(req);
	http_response(req, status, d.data, d.len);
	dbuf_free(&d);
}

/* One page of rows (v->limit, one more: a next page exists). */
static void
dconn_render(struct dbuf *d, const char *name, const struct store_rows *rows,
    const struct ch_view *v, int act, const char *csrf)
{
	const struct conn_row	*c;
	struct ch_row		r[CH_PAGE_ROWS];
	size_t			i, n;

	n = rows->n > (size_t)v->limit ? (size_t)v->limit : rows->n;
	for (i = 0; i < n; i++) {
		c = &rows->conns[i];
		r[i].subject = c->subject;
		r[i].state = c->state;
#define DCONN_NUM(x)	((x) == STORE_NULL ? DR_NULL : (x))
		r[i].generation = DCONN_NUM(c->generation);
		r[i].expires_ms = DCONN_NUM(c->expires_ms);
		r[i].failures = DCONN_NUM(c->failures);
		r[i].updated_ms = DCONN_NUM(c->updated_ms);
#undef DCONN_NUM
		r[i].fingerprint = c->fingerprint;
		r[i].last_error = c->last_error;
	}
	ch_table(d, name, dconn_kind(name), r, n, rows->n > n ?
	    rows->conns[n - 1].subject : NULL, v, dconn_reauth(name), act,
	    csrf);
}

/* The source's connections in needs_reauth (this worker's cache). */
static u_int32_t
dconn_reauth(const char *name)
{
	struct cache_entry	*e;
	u_int32_t		n;

	n = 0;
	for (e = cache_any_first(); e != NULL; e = cache_any_next(e)) {
		if (e->conn != NULL && e->reauth && !strcmp(e->name, name))
			n++;
	}

	return (n);
}

static const char *
dconn_kind(const char *name)
{
	struct cache_entry	*e;

	if ((e = cache_lookup(name)) == NULL)
		return (NULL);

	return (source_kind_name(e->kind));
}

/*
 * The fields of a form: subject, confirm, refresh_token (the body and
 * every copy of the token wiped once read). 0 with the refusal answered.
 */
static int
dconn_form(struct http_request *req, struct dconn_form *f)
{
	struct kore_buf		buf;
	const char		*ctype;
	char			chunk[4096], *s, *pair, *eq;
	ssize_t			r;
	int			ok;

	memset(f, 0, sizeof(*f));
	if (!http_request_header(req, "content-type", &ctype) ||
	    strncasecmp(ctype, "application/x-www-form-urlencoded", 33)) {
		api_error(req, 415, "unsupported_media_type",
		    "expected an HTML form (x-www-form-urlencoded)");
		return (KORE_RESULT_ERROR);
	}
	kore_buf_init(&buf, 1024);
	ok = KORE_RESULT_OK;
	for (;;) {
		if ((r = http_body_read(req, chunk, sizeof(chunk))) == -1) {
			ok = KORE_RESULT_ERROR;
			break;
		}
		if (r == 0)
			break;
		if (buf.offset + r > API_BODY_MAX) {
			ok = KORE_RESULT_ERROR;
			break;
		}
		kore_buf_append(&buf, chunk, r);
	}
	OPENSSL_cleanse(chunk, sizeof(chunk));
	kore_buf_append(&buf, "", 1);

	for (s = (char *)buf.data; ok && (pair = strsep(&s, "&")) != NULL;) {
		if ((eq = strchr(pair, '=')) == NULL)
			continue;
		*eq++ = '\0';
		if (http_argument_urldecode(eq) != KORE_RESULT_OK) {
			ok = KORE_RESULT_ERROR;
		} else if (!strcmp(pair, "subject")) {
			(void)kore_strlcpy(f->subject, eq,
			    sizeof(f->subject));
		} else if (!strcmp(pair, "confirm")) {
			(void)kore_strlcpy(f->confirm, eq,
			    sizeof(f->confirm));
		} else if (!strcmp(pair, "refresh_token") &&
		    f->refresh_token == NULL) {
			if (strlen(eq) > DCONN_TOKEN_MAX)
				ok = KORE_RESULT_ERROR;
			else
				f->refresh_token = kore_strdup(eq);
		}
	}
	OPENSSL_cleanse(buf.data, buf.length);
	kore_buf_cleanup(&buf);

	if (!ok) {
		dconn_form_free(f);
		api_error(req, 400, "bad_request", "the form is not valid "
		    "(URL encoding, or a field too long)");
	}

	return (ok);
}

static void
dconn_form_free(struct dconn_form *f)
{
	if (f->refresh_token != NULL) {
		OPENSSL_cleanse(f->refresh_token, strlen(f->refresh_token));
		kore_free(f->refresh_token);
		f->refresh_token = NULL;
	}
}

/* A socket of a connections page: ?conn=NAME[&state=&cursor=]. */
static void *
dconn_open(const char *query, const char *session, u_int64_t id)
{
	struct dconn_live	*l;
	const char		*v;
	size_t			n;

	if (query == NULL || strncmp(query, "conn=", 5))
		return (NULL);
	v = query + 5;
	n = strcspn(v, "&");

	l = kore_calloc(1, sizeof(*l));
	l->id = id;
	(void)kore_strlcpy(l->session, session, sizeof(l->session));
	if (n <= KILN_NAME_MAX) {
		memcpy(l->name, v, n);
		l->name[n] = '\0';
	}
	if (!source_name_valid(l->name))
		l->name[0] = '\0';	/* nothing to show: no rows */
	ch_view_parse(query, &l->view);
	l->dirty = 1;
	TAILQ_INSERT_TAIL(&dconn_lives, l, list);

	return (l);
}

static void
dconn_close(void *arg)
{
	struct dconn_live	*l = arg;

	TAILQ_REMOVE(&dconn_lives, l, list);
	kore_free(l);
}

static void
dconn_changed(void)
{
	struct dconn_live	*l;

	TAILQ_FOREACH(l, &dconn_lives, list)
		l->dirty = 1;
}

static void
dconn_tick(void *unused, u_int64_t unused2)
{
	struct dconn_live	*l, *next;
	u_int64_t		*id;
	int64_t			now;

	/* A failed query answers at once: keep the next one first. */
	now = isotime_now();
	for (l = TAILQ_FIRST(&dconn_lives); l != NULL; l = next) {
		next = TAILQ_NEXT(l, list);
		if (l->loading || l->name[0] == '\0' ||
		    now - l->loaded_ms < DCONN_LOAD_MS)
			continue;
		if (!l->dirty && now - l->loaded_ms < DCONN_RESYNC_MS)
			continue;
		l->dirty = 0;
		l->loading = 1;
		l->loaded_ms = now;
		/* By id: the socket may be gone when the rows come. */
		id = kore_malloc(sizeof(*id));
		*id = l->id;
		store_conn_list(l->name, l->view.cursor[0] ?
		    l->view.cursor : NULL, l->view.state[0] ?
		    l->view.state : NULL, l->view.limit + 1, dconn_loaded, id);
	}
}

static void
dconn_loaded(const struct store_rows *rows, void *arg, int ok)
{
	struct dconn_live	*l;
	struct kore_buf		buf;
	struct dbuf		d;
	u_int64_t		digest;
	int			role;

	l = dconn_find(*(u_int64_t *)arg);
	kore_free(arg);
	if (l == NULL)
		return;
	l->loading = 0;
	if (!ok) {
		l->dirty = 1;		/* again in DCONN_LOAD_MS */
		return;
	}
	if ((role = session_role(l->session)) < ROLE_VIEWER)
		return;

	dbuf_init(&d);
	dconn_render(&d, l->name, rows, &l->view, role >= ROLE_OPERATOR,
	    session_csrf(l->session));
	digest = hash_fnv1a(HASH_FNV_BASIS, d.data, d.len);
	if (digest != l->sent) {
		l->sent = digest;
		kore_buf_init(&buf, d.len + 1);
		kore_buf_append(&buf, d.data, d.len);
		/* A send may close the socket, and free l. */
		(void)dash_live_send(l->id, "connections", &buf);
		kore_buf_cleanup(&buf);
	}
	dbuf_free(&d);
}

static struct dconn_live *
dconn_find(u_int64_t id)
{
	struct dconn_live	*l;

	TAILQ_FOREACH(l, &dconn_lives, list) {
		if (l->id == id)
			return (l);
	}

	return (NULL);
}
