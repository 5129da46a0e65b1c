/*
 * api_conn.c: connections, one token per (source, subject).
 *
 *	POST   /api/tokens/{name}/connections {"subject","refresh_token"}
 *	GET    /api/tokens/{name}/connections[?state=&limit=&cursor=]
 *	GET    /api/tokens/{name}/connections/{subject}
 *	DELETE /api/tokens/{name}/connections/{subject}
 *	GET    /api/tokens/{name}/connections/{subject}/current-token
 *	POST   /api/tokens/{name}/connections/{subject}/current-token/rejected
 *
 * The token endpoints are those of a source (api_public.c), on the
 * connection's own cache entry; the source's entry says who may call.
 */

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <yajl/yajl_gen.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

#define CONN_LIMIT_DEFAULT	50
#define CONN_LIMIT_MAX		500
#define CONN_EVENTS		20
#define CONN_PREFIX		"/api/tokens/"
#define CONN_MIDDLE		"/connections/"

static int	conn_path(struct http_request *, struct api_state *);
static int	conn_may_import(struct http_request *, struct api_state *);
static int	conn_query(struct http_request *, const char *, char *,
		    size_t);
static void	*conn_gen(struct api_pending *, int);
static int	conn_db_error(struct api_pending *, int);
static void	conn_view(void *, const struct conn_row *, int);
static void	conn_time(void *, const char *, int64_t);
static void	conn_num(void *, const char *, int64_t);
static void	conn_str(void *, const char *, const char *);
static void	conn_sourced(struct api_pending *, const struct store_rows *,
		    int);
static void	conn_imported(struct api_pending *, const struct store_rows *,
		    int);
static void	conn_listed(struct api_pending *, const struct store_rows *,
		    int);
static void	conn_got(struct api_pending *, const struct store_rows *,
		    int);
static void	conn_events(struct api_pending *, const struct store_rows *,
		    int);
static void	conn_deleted(struct api_pending *, const struct store_rows *,
		    int);
static int	conn_body(struct http_request *, yajl_val *);

/* The dashboard's form, read as the JSON body (api_conn_create_form). */
static yajl_val		conn_form;

int
api_conn_create(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;
	struct cache_entry	*e;
	yajl_val		root, v;
	const char		*sp[] = { "subject", NULL };
	const char		*rp[] = { "refresh_token", NULL };
	const char		*subject, *token;
	int			ret;

	if (!conn_may_import(req, st))
		return (KORE_RESULT_OK);
	if ((e = cache_lookup(st->name)) == NULL) {
		api_error(req, 404, "not_found", "unknown token source");
		return (KORE_RESULT_OK);
	}
	if (e->kind == KIND_AUTHORIZATION_CODE) {
		/* A person consents in a browser (api_oauth.c). */
		if (!conn_body(req, &root))
			return (KORE_RESULT_OK);
		return (api_oauth_start(req, st, root));
	}
	if (e->kind != KIND_REFRESH_TOKEN && e->kind != KIND_DEVICE_CODE) {
		api_error(req, 409, "wrong_kind", "connections are imported "
		    "only into refresh_token sources");
		return (KORE_RESULT_OK);
	}
	if (!conn_body(req, &root))
		return (KORE_RESULT_OK);

	v = yajl_tree_get(root, sp, yajl_t_string);
	subject = v != NULL ? YAJL_GET_STRING(v) : NULL;
	v = yajl_tree_get(root, rp, yajl_t_string);
	token = v != NULL ? YAJL_GET_STRING(v) : NULL;
	if (!YAJL_IS_OBJECT(root) || !conn_subject_valid(subject) ||
	    conn_is_default(subject)) {
		yajl_tree_free(root);
		api_error(req, 400, "invalid_field", "subject: expected "
		    "1-128 of A-Z a-z 0-9 . _ @ : - (not \"default\")");
		return (KORE_RESULT_OK);
	}
	/* device_code: the person's consent, not an import (api_device.c). */
	if (e->kind == KIND_DEVICE_CODE) {
		ret = token != NULL ? KORE_RESULT_OK :
		    api_device_create(req, st, subject);
		yajl_tree_free(root);
		if (ret == KORE_RESULT_OK)
			api_error(req, 400, "invalid_field", "refresh_token: "
			    "not for a device_code source (the person's "
			    "consent gives it)");
		return (ret);
	}
	if (token == NULL || *token == '\0' || strlen(token) > 4096) {
		yajl_tree_free(root);
		api_error(req, 400, "invalid_field",
		    "refresh_token: expected a non-empty string");
		return (KORE_RESULT_OK);
	}

	p = api_pending_start(req, st, conn_sourced);
	p->body = root;
	p->secret = kore_strdup(token);
	(void)kore_strlcpy(st->subject, subject, sizeof(st->subject));

	/* The source's origin binds the sealed refresh token. */
	store_source_full(st->name, api_pending_cb, p);
	return (KORE_RESULT_RETRY);
}

static void
conn_sourced(struct api_pending *p, const struct store_rows *rows, int ok)
{
	struct api_state	*st;
	char			origin[SOURCE_ORIGIN_MAX];
	char			field[32 + KILN_SUBJECT_MAX];
	char			*sealed;

	if (conn_db_error(p, ok))
		return;
	if (rows->source == NULL) {
		api_pending_fail(p, 404, "not_found", "unknown token source");
		return;
	}
	if (rows->source->src.kind != KIND_REFRESH_TOKEN) {
		api_pending_fail(p, 409, "wrong_kind", "connections are "
		    "imported only into refresh_token sources");
		return;
	}

	st = http_state_get(p->req);
	source_origin(rows->source->src.token_url, origin, sizeof(origin));
	if (!conn_field("refresh_token", st->subject, field, sizeof(field)) ||
	    !seal_seal_for(p->name, field, origin, p->secret,
	    strlen(p->secret), &sealed))
		fatal("seal_seal_for failed");

	p->render = conn_imported;
	store_conn_import(p->name, st->subject, sealed, &p->who,
	    api_pending_cb, p);
	seal_wipe(sealed);
}

static void
conn_imported(struct api_pending *p, const struct store_rows *rows, int ok)
{
	void		*g;

	if (conn_db_error(p, ok))
		return;
	if (rows->n == 0) {
		api_pending_fail(p, 404, "not_found", "unknown token source");
		return;
	}

	g = conn_gen(p, 201);
	yajl_gen_string(g, (const unsigned char *)"data", 4);
	conn_view(g, &rows->conns[0], 1);
	p->done = 1;
}

int
api_conn_list(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;
	char			state[16], cursor[KILN_SUBJECT_MAX + 1];
	char			buf[16];
	int64_t			limit;
	int			err;

	limit = CONN_LIMIT_DEFAULT;
	if (conn_query(req, "limit", buf, sizeof(buf))) {
		limit = kore_strtonum(buf, 10, 1, CONN_LIMIT_MAX, &err);
		if (err != KORE_RESULT_OK) {
			api_error(req, 400, "invalid_field",
			    "limit: expected an integer from 1 to 500");
			return (KORE_RESULT_OK);
		}
	}
	if (conn_query(req, "state", state, sizeof(state)) &&
	    strcmp(state, "pending") && strcmp(state, "active") &&
	    strcmp(state, "failing") && strcmp(state, "needs_reauth") &&
	    strcmp(state, "revoked")) {
		api_error(req, 400, "invalid_field", "state: expected pending, "
		    "active, failing, needs_reauth or revoked");
		return (KORE_RESULT_OK);
	}
	if (conn_query(req, "cursor", cursor, sizeof(cursor)) &&
	    !conn_subject_valid(cursor)) {
		api_error(req, 400, "invalid_field",
		    "cursor: expected the next_cursor of a page");
		return (KORE_RESULT_OK);
	}
	if (cache_lookup(st->name) == NULL) {
		api_error(req, 404, "not_found", "unknown token source");
		return (KORE_RESULT_OK);
	}

	/* One more than asked: whether a next page exists. */
	p = api_pending_start(req, st, conn_listed);
	p->version = limit;
	store_conn_list(st->name, cursor[0] ? cursor : NULL,
	    state[0] ? state : NULL, limit + 1, api_pending_cb, p);
	return (KORE_RESULT_RETRY);
}

static void
conn_listed(struct api_pending *p, const struct store_rows *rows, int ok)
{
	void		*g;
	size_t		i, n;

	if (conn_db_error(p, ok))
		return;

	n = rows->n > (size_t)p->version ? (size_t)p->version : rows->n;
	g = conn_gen(p, 200);
	yajl_gen_string(g, (const unsigned char *)"data", 4);
	yajl_gen_map_open(g);
	yajl_gen_string(g, (const unsigned char *)"connections", 11);
	yajl_gen_array_open(g);
	for (i = 0; i < n; i++)
		conn_view(g, &rows->conns[i], 1);
	yajl_gen_array_close(g);
	if (rows->n > n)
		json_kv_str(g, "next_cursor", rows->conns[n - 1].subject);
	else
		json_kv_null(g, "next_cursor");
	yajl_gen_map_close(g);
	p->done = 1;
}

int
api_conn_get(struct http_request *req, struct api_state *st)
{
	if (!conn_path(req, st))
		return (KORE_RESULT_OK);

	store_conn_get(st->name, st->subject, api_pending_cb,
	    api_pending_start(req, st, conn_got));
	return (KORE_RESULT_RETRY);
}

static void
conn_got(struct api_pending *p, const struct store_rows *rows, int ok)
{
	struct api_state	*st;
	void			*g;

	if (conn_db_error(p, ok))
		return;
	if (rows->n == 0) {
		api_pending_fail(p, 404, "not_found", "unknown connection");
		return;
	}

	/* The connection, its recent events added by the next step. */
	g = conn_gen(p, 200);
	yajl_gen_string(g, (const unsigned char *)"data", 4);
	conn_view(g, &rows->conns[0], 0);
	st = http_state_get(p->req);
	p->render = conn_events;
	store_conn_events(p->name, st->subject, CONN_EVENTS, api_pending_cb,
	    p);
}

static void
conn_events(struct api_pending *p, const struct store_rows *rows, int ok)
{
	const struct event_row	*e;
	void			*g;
	size_t			i;

	if (!ok) {
		yajl_gen_free(p->g);
		p->g = NULL;
		(void)conn_db_error(p, ok);
		return;
	}

	/* The connection's map is still open (conn_got). */
	g = p->g;
	yajl_gen_string(g, (const unsigned char *)"events", 6);
	yajl_gen_array_open(g);
	for (i = 0; i < rows->n; i++) {
		e = &rows->events[i];
		yajl_gen_map_open(g);
		conn_num(g, "id", e->id);
		conn_str(g, "trigger", e->trigger);
		conn_time(g, "started_at", e->started_ms);
		conn_time(g, "finished_at", e->finished_ms);
		conn_str(g, "outcome", e->outcome);
		conn_num(g, "duration_ms", e->duration_ms);
		conn_num(g, "http_status", e->http_status);
		conn_str(g, "error", e->error);
		conn_num(g, "generation", e->generation);
		conn_str(g, "fingerprint", e->fingerprint);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
	p->done = 1;
}

int
api_conn_delete(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;
	struct cache_entry	*e;

	if (!conn_path(req, st))
		return (KORE_RESULT_OK);
	if (conn_is_default(st->subject)) {
		api_error(req, 400, "invalid_field", "the default connection "
		    "is the source itself: DELETE /api/tokens/{name}");
		return (KORE_RESULT_OK);
	}

	/* Its grant is revoked upstream first (api_oauth.c). */
	if ((e = cache_lookup(st->name)) != NULL &&
	    e->kind == KIND_AUTHORIZATION_CODE)
		return (api_oauth_delete(req, st));

	p = api_pending_start(req, st, conn_deleted);
	store_conn_delete(st->name, st->subject, &p->who, api_pending_cb, p);
	return (KORE_RESULT_RETRY);
}

static void
conn_deleted(struct api_pending *p, const struct store_rows *rows, int ok)
{
	struct api_state	*st;
	void			*g;

	if (conn_db_error(p, ok))
		return;
	if (rows->n == 0) {
		api_pending_fail(p, 404, "not_found", "unknown connection");
		return;
	}

	g = conn_gen(p, 200);
	yajl_gen_string(g, (const unsigned char *)"data", 4);
	yajl_gen_map_open(g);
	st = http_state_get(p->req);
	json_kv_str(g, "subject", st->subject);
	json_kv_bool(g, "deleted", 1);
	yajl_gen_map_close(g);
	p->done = 1;
}

int
api_conn_current_token(struct http_request *req, struct api_state *st)
{
	if (st->stage == 0 && !conn_path(req, st))
		return (KORE_RESULT_OK);

	return (api_current_token(req, st));
}

int
api_conn_rejected(struct http_request *req, struct api_state *st)
{
	if (st->stage == 0 && !conn_path(req, st))
		return (KORE_RESULT_OK);

	return (api_rejected(req, st));
}

/*
 * /api/tokens/{name}/connections/{subject}[/...] into st (the router
 * keeps only one segment); answers 404 or 400 itself.
 */
static int
conn_path(struct http_request *req, struct api_state *st)
{
	const char	*p, *q;
	size_t		n;

	p = req->path + strlen(CONN_PREFIX);
	n = strcspn(p, "/");
	if (n > KILN_NAME_MAX || strncmp(p + n, CONN_MIDDLE,
	    strlen(CONN_MIDDLE))) {
		api_error(req, 404, "not_found", "unknown token source");
		return (KORE_RESULT_ERROR);
	}
	memcpy(st->name, p, n);
	st->name[n] = '\0';
	if (!source_name_valid(st->name)) {
		api_error(req, 404, "not_found", "unknown token source");
		return (KORE_RESULT_ERROR);
	}

	q = p + n + strlen(CONN_MIDDLE);
	n = strcspn(q, "/");
	if (n == 0 || n > KILN_SUBJECT_MAX) {
		api_error(req, 400, "invalid_field", "subject: expected "
		    "1-128 of A-Z a-z 0-9 . _ @ : -");
		return (KORE_RESULT_ERROR);
	}
	memcpy(st->subject, q, n);
	st->subject[n] = '\0';
	if (!conn_subject_valid(st->subject)) {
		st->subject[0] = '\0';
		api_error(req, 400, "invalid_field", "subject: expected "
		    "1-128 of A-Z a-z 0-9 . _ @ : -");
		return (KORE_RESULT_ERROR);
	}
	if (conn_is_default(st->subject))
		st->subject[0] = '\0';		/* the source's own token */

	/* The admin routes: a client key only for its sources. */
	if (!auth_key_scope_allows(&st->principal, st->name) &&
	    st->principal.role == ROLE_CLIENT) {
		api_error(req, 403, "forbidden",
		    "this key is not scoped to this token source");
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

/* Operators, and a client key allowed this source, import. */
static int
conn_may_import(struct http_request *req, struct api_state *st)
{
	if (st->principal.role == ROLE_CLIENT &&
	    auth_key_scope_allows(&st->principal, st->name))
		return (KORE_RESULT_OK);
	if (st->principal.role >= ROLE_OPERATOR)
		return (KORE_RESULT_OK);

	api_error(req, 403, "forbidden", st->principal.role == ROLE_CLIENT ?
	    "this key is not scoped to this token source" :
	    "this role may not do that");
	return (KORE_RESULT_ERROR);
}

/* A query-string argument into out ("" when absent); 1 when present. */
static int
conn_query(struct http_request *req, const char *key, char *out, size_t len)
{
	const char	*v;
	size_t		klen, n;

	out[0] = '\0';
	if (req->query_string == NULL)
		return (0);

	klen = strlen(key);
	for (v = req->query_string; v != NULL;
	    v = strchr(v, '&') ? strchr(v, '&') + 1 : NULL) {
		if (strncmp(v, key, klen) || v[klen] != '=')
			continue;
		v += klen + 1;
		n = strcspn(v, "&");
		if (n >= len) {
			/* Too long to be valid: an empty value fails. */
			return (1);
		}
		memcpy(out, v, n);
		out[n] = '\0';
		return (1);
	}

	return (0);
}

static void *
conn_gen(struct api_pending *p, int status)
{
	if (p->g == NULL) {
		p->g = api_json_begin();
		json_kv_bool(p->g, "success", 1);
	}
	p->status = status;

	return (p->g);
}

static int
conn_db_error(struct api_pending *p, int ok)
{
	if (ok)
		return (0);

	api_pending_fail(p, 503, "database_unavailable",
	    "the database did not answer; try again");
	return (1);
}

/* A connection's map, left open when it is a detail (see conn_got). */
static void
conn_view(void *g, const struct conn_row *c, int close)
{
	yajl_gen_map_open(g);
	conn_str(g, "subject", c->subject);
	conn_str(g, "state", c->state);
	conn_num(g, "generation", c->generation);
	conn_time(g, "expires_at", c->expires_ms);
	conn_str(g, "fingerprint", c->fingerprint);
	conn_num(g, "failures", c->failures);
	conn_str(g, "last_error", c->last_error);
	conn_time(g, "created_at", c->created_ms);
	conn_time(g, "updated_at", c->updated_ms);
	if (close)
		yajl_gen_map_close(g);
}

static void
conn_time(void *g, const char *key, int64_t ms)
{
	char		buf[ISOTIME_LEN];

	if (ms == STORE_NULL) {
		json_kv_null(g, key);
		return;
	}
	isotime_format(ms, buf, sizeof(buf));
	json_kv_str(g, key, buf);
}

static void
conn_num(void *g, const char *key, int64_t v)
{
	if (v == STORE_NULL)
		json_kv_null(g, key);
	else
		json_kv_int(g, key, v);
}

static void
conn_str(void *g, const char *key, const char *v)
{
	if (v == NULL)
		json_kv_null(g, key);
	else
		json_kv_str(g, key, v);
}

/*
 * POST .../connections from the dashboard's form (dash_conn.c): root is
 * the form as the JSON the API takes, and this is the API's own code,
 * its checks included. root is ours: freed when not taken.
 */
int
api_conn_create_form(struct http_request *req, struct api_state *st,
    yajl_val root)
{
	int		ret;

	conn_form = root;
	ret = api_conn_create(req, st);
	if (conn_form != NULL)
		yajl_tree_free(conn_form);
	conn_form = NULL;

	return (ret);
}

/* The request's JSON body, or the form handed over (taken once). */
static int
conn_body(struct http_request *req, yajl_val *root)
{
	if (conn_form != NULL) {
		*root = conn_form;
		conn_form = NULL;
		return (KORE_RESULT_OK);
	}

	return (api_body_json(req, root));
}
