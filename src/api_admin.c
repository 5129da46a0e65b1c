/*
 * api_admin.c: the admin REST API.
 *
 *	GET|POST /api/tokens, GET|PATCH|DELETE /api/tokens/{name}
 *	POST /api/tokens/{name}/refresh, GET /api/tokens/{name}/events
 *	GET /api/prewarming/status, POST /api/prewarming/{refresh,start,stop}
 *	GET|POST /api/keys, DELETE /api/keys/{id}
 *
 * Authentication, roles and rate limits are checked by the dispatcher
 * (api.c) before any handler here runs. Reads of configuration and
 * history go to PostgreSQL; the live state comes from the worker cache.
 * Secrets are write-only: a view says "client_secret_set": true, never
 * the value. Every change is one statement that also NOTIFYs, so every
 * worker and instance follows at once.
 */

#include <sys/types.h>

#include <stddef.h>
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

#define EVENTS_DEFAULT		50
#define EVENTS_MAX		500
#define KEY_SOURCES_MAX		256	/* sources a client key is scoped to */

enum view_type {
	VIEW_STR, VIEW_URL, VIEW_LIST, VIEW_NUM, VIEW_TIME, VIEW_BOOL,
	VIEW_JSON
};

/* One JSON member of an answer: its key, where in the row, what type. */
struct view_field {
	const char	*key;
	size_t		off;
	int		type;
};

#define SV(k, f, t)	{ k, offsetof(struct source_view, f), t }
#define EV(k, f, t)	{ k, offsetof(struct event_row, f), t }
#define KV(k, f, t)	{ k, offsetof(struct key_row, f), t }

static const struct view_field source_fields[] = {
	SV("name", name, VIEW_STR),
	SV("kind", kind, VIEW_STR),
	SV("token_url", token_url, VIEW_URL),
	SV("client_id", client_id, VIEW_STR),
	SV("client_secret_set", client_secret_set, VIEW_BOOL),
	SV("auth_method", auth_method, VIEW_STR),
	SV("scope", scope, VIEW_STR),
	SV("audience", audience, VIEW_STR),
	SV("resource", resource, VIEW_STR),
	SV("refresh_token_set", refresh_token_set, VIEW_BOOL),
	SV("username", username, VIEW_STR),
	SV("password_set", password_set, VIEW_BOOL),
	SV("token_path", token_path, VIEW_STR),
	SV("expires_at_path", expires_at_path, VIEW_STR),
	SV("expires_in_path", expires_in_path, VIEW_STR),
	SV("refresh_buffer", refresh_buffer, VIEW_NUM),
	SV("fallback_lifetime", fallback_lifetime, VIEW_NUM),
	SV("access", access, VIEW_STR),
	SV("require_header", require_header, VIEW_BOOL),
	SV("enabled", enabled, VIEW_BOOL),
	SV("paused", paused, VIEW_BOOL),
	SV("created_at", created_ms, VIEW_TIME),
	SV("updated_at", updated_ms, VIEW_TIME),
	SV("tls_client_cert_subject", tls_cert_subject, VIEW_STR),
	SV("tls_client_cert_not_after", tls_cert_not_after_ms, VIEW_TIME),
	SV("tls_client_key_set", tls_client_key_set, VIEW_BOOL),
	SV("tls_ca_set", tls_ca_set, VIEW_BOOL),
	SV("subject_source", subject_source, VIEW_STR),
	SV("subject_token_type", subject_token_type, VIEW_STR),
	SV("requested_token_type", requested_token_type, VIEW_STR),
	SV("actor_source", actor_source, VIEW_STR),
	SV("actor_token_type", actor_token_type, VIEW_STR),
	SV("issuer", issuer, VIEW_STR),
	SV("subject", subject, VIEW_STR),
	SV("assertion_audience", assertion_audience, VIEW_STR),
	SV("target_audience", target_audience, VIEW_STR),
	SV("key_generate", key_generate, VIEW_STR),
	SV("key_ids", key_ids, VIEW_LIST),
	SV("signing_key_id", signing_key_id, VIEW_STR),
	/* authorization_code (c-authcode) */
	SV("authorize_url", authorize_url, VIEW_URL),
	SV("revocation_url", revocation_url, VIEW_URL),
	SV("extra_authorize_params", extra_authorize_params, VIEW_JSON),
	SV("device_authorization_url", device_authorization_url, VIEW_URL),
	{ NULL, 0, 0 }
};

/* The "state" object, after status, has_token and valid. */
static const struct view_field state_fields[] = {
	SV("fingerprint", fingerprint, VIEW_STR),
	SV("generation", generation, VIEW_NUM),
	SV("obtained_at", obtained_ms, VIEW_TIME),
	SV("expires_at", expires_ms, VIEW_TIME),
	SV("refresh_at", refresh_ms, VIEW_TIME),
	SV("next_attempt_at", next_ms, VIEW_TIME),
	SV("failures", failures, VIEW_NUM),
	SV("last_error", last_error, VIEW_STR),
	SV("last_duration_ms", last_duration_ms, VIEW_NUM),
	{ NULL, 0, 0 }
};

static const struct view_field event_fields[] = {
	EV("id", id, VIEW_NUM),
	EV("trigger", trigger, VIEW_STR),
	EV("started_at", started_ms, VIEW_TIME),
	EV("finished_at", finished_ms, VIEW_TIME),
	EV("outcome", outcome, VIEW_STR),
	EV("duration_ms", duration_ms, VIEW_NUM),
	EV("http_status", http_status, VIEW_NUM),
	EV("error", error, VIEW_STR),
	EV("generation", generation, VIEW_NUM),
	EV("fingerprint", fingerprint, VIEW_STR),
	{ NULL, 0, 0 }
};

static const struct view_field key_fields[] = {
	KV("id", id, VIEW_NUM),
	KV("name", name, VIEW_STR),
	KV("role", role, VIEW_STR),
	KV("created_at", created_ms, VIEW_TIME),
	KV("revoked_at", revoked_ms, VIEW_TIME),
	KV("sources", sources, VIEW_LIST),
	{ NULL, 0, 0 }
};

static const struct view_field key_created_fields[] = {
	KV("id", id, VIEW_NUM),
	KV("name", name, VIEW_STR),
	KV("role", role, VIEW_STR),
	KV("created_at", created_ms, VIEW_TIME),
	KV("sources", sources, VIEW_LIST),
	{ NULL, 0, 0 }
};

static void	render_list(struct api_pending *, const struct store_rows *,
		    int);
static void	render_one(struct api_pending *, const struct store_rows *,
		    int);
static void	source_created(struct api_pending *,
		    const struct store_rows *, int);
static void	patch_loaded(struct api_pending *, const struct store_rows *,
		    int);
static int	patch_load(struct api_pending *, struct source_row *);
static int	patch_merge(struct api_pending *, const char **, char *,
		    size_t);
static void	patch_decide(struct api_pending *, const char *);
static void	patch_written(struct api_pending *,
		    const struct store_rows *, int);
static void	exchange_checked(struct api_pending *,
		    const struct store_rows *, int);
static int	exchange_reaches(const struct store_rows *, const char *,
		    const char *, u_int8_t *);
static void	render_deleted(struct api_pending *,
		    const struct store_rows *, int);
static void	render_events(struct api_pending *, const struct store_rows *,
		    int);
static void	render_paused(struct api_pending *, const struct store_rows *,
		    int);
static void	render_key_created(struct api_pending *,
		    const struct store_rows *, int);
static void	render_keys(struct api_pending *, const struct store_rows *,
		    int);
static void	render_key_revoked(struct api_pending *,
		    const struct store_rows *, int);
static void	render_refresh(struct api_pending *,
		    const struct store_rows *, int);
static void	render_prewarming_refresh(struct api_pending *,
		    const struct store_rows *, int);
static int	refresh_audited(struct api_pending *, int);
static int	pending_db_error(struct api_pending *, int);
static char	*key_scope(yajl_val);
static int	patch_secrets_held(const struct source *);
static int	patch_origin_check(struct api_pending *, const char *, int,
		    char *, size_t);
static void	view_source(void *, const struct source_view *, int64_t, int);
static void	view_map(void *, const void *, const struct view_field *, int);
static void	view_fields(void *, const void *, const struct view_field *,
		    int);
static void	view_json(void *, const char *, const char *);
static void	view_url(void *, const char *, const char *, int);
static void	view_list(void *, const char *, const char *);
static void	view_time(void *, const char *, int64_t);
static void	view_str(void *, const char *, const char *);
static void	view_num(void *, const char *, int64_t);
static int	prewarming_pause(struct http_request *, struct api_state *,
		    int);
static void	prewarming_entry(void *, struct cache_entry *, int64_t);
static int	query_arg(struct http_request *, const char *, char *,
		    size_t);
static void	*pending_gen(struct api_pending *, int);

int
admin_tokens_list(struct http_request *req, struct api_state *st)
{
	store_sources_view(NULL, api_pending_cb,
	    api_pending_start(req, st, render_list));
	return (KORE_RESULT_RETRY);
}

int
admin_token_get(struct http_request *req, struct api_state *st)
{
	store_sources_view(st->name, api_pending_cb,
	    api_pending_start(req, st, render_one));
	return (KORE_RESULT_RETRY);
}

int
admin_tokens_create(struct http_request *req, struct api_state *st)
{
	yajl_val		body;

	if (!api_body_json(req, &body))
		return (KORE_RESULT_OK);

	(void)admin_source_create(req, st, body);
	return (KORE_RESULT_RETRY);
}

/*
 * The core of POST /api/tokens, shared with the dashboard's form: takes
 * body (kept in the step, for a form to be shown again) and gives the
 * pending step, already done when body is refused.
 */
struct api_pending *
admin_source_create(struct http_request *req, struct api_state *st,
    yajl_val body)
{
	struct api_pending	*p;
	char			err[KILN_ERR_MAX];

	p = api_pending_start(req, st, source_created);
	p->body = body;
	if (!source_from_json(body, 0, &p->src, err, sizeof(err))) {
		api_pending_fail(p, 422, "invalid_field", err);
		return (p);
	}
	if (p->src.kind == KIND_AUTHORIZATION_CODE &&
	    kiln_config.public_url == NULL) {
		api_pending_fail(p, 422, "invalid_config", "KILN_PUBLIC_URL: "
		    "required for authorization_code sources");
		return (p);
	}
	/* The names of the fields given: known ones, checked above. */
	(void)audit_body_fields(body, p->fields, sizeof(p->fields));

	(void)kore_strlcpy(st->name, p->src.name, sizeof(st->name));
	(void)kore_strlcpy(p->name, p->src.name, sizeof(p->name));
	if (p->src.kind == KIND_TOKEN_EXCHANGE) {
		/* Cycles are looked for among all sources first. */
		p->render = exchange_checked;
		store_exchange_edges(api_pending_cb, p);
		return (p);
	}
	store_source_create(&p->src, &p->who, p->fields, api_pending_cb, p);
	source_free(&p->src);

	return (p);
}

/*
 * PATCH: load the stored source (secrets opened), apply the body to it,
 * validate the result, and write it back only if nobody changed it in
 * between (config_version).
 */
int
admin_token_patch(struct http_request *req, struct api_state *st)
{
	yajl_val		body;

	if (!api_body_json(req, &body))
		return (KORE_RESULT_OK);

	(void)admin_source_patch(req, st, body);
	return (KORE_RESULT_RETRY);
}

/* The core of PATCH /api/tokens/{name}, as admin_source_create. */
struct api_pending *
admin_source_patch(struct http_request *req, struct api_state *st,
    yajl_val body)
{
	struct api_pending	*p;

	p = api_pending_start(req, st, patch_loaded);
	p->body = body;
	if (!YAJL_IS_OBJECT(body)) {
		api_pending_fail(p, 422, "invalid_field",
		    "source: must be a JSON object");
		return (p);
	}
	store_source_full(st->name, api_pending_cb, p);

	return (p);
}

int
admin_token_delete(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;

	p = api_pending_start(req, st, render_deleted);
	store_source_delete(st->name, &p->who, api_pending_cb, p);
	return (KORE_RESULT_RETRY);
}

/* The forced refresh starts once its audit row is written. */
int
admin_token_refresh(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;

	if (cache_lookup(st->name) == NULL) {
		api_error(req, 404, "not_found", "unknown token source");
		return (KORE_RESULT_OK);
	}

	p = api_pending_start(req, st, render_refresh);
	store_audit_write(&p->who, "source.refresh", st->name, NULL, "ok",
	    api_pending_cb, p);

	return (KORE_RESULT_RETRY);
}

int
admin_token_events(struct http_request *req, struct api_state *st)
{
	int64_t		limit, before;
	int		err;
	char		buf[24];

	limit = EVENTS_DEFAULT;
	before = 0;
	if (query_arg(req, "limit", buf, sizeof(buf)) != 0) {
		limit = kore_strtonum(buf, 10, 1, EVENTS_MAX, &err);
		if (err != KORE_RESULT_OK) {
			api_error(req, 422, "invalid_field",
			    "limit: expected an integer from 1 to 500");
			return (KORE_RESULT_OK);
		}
	}
	if (query_arg(req, "before", buf, sizeof(buf)) != 0) {
		before = kore_strtonum(buf, 10, 1, INT64_MAX, &err);
		if (err != KORE_RESULT_OK) {
			api_error(req, 422, "invalid_field",
			    "before: expected a positive event id");
			return (KORE_RESULT_OK);
		}
	}
	if (cache_lookup(st->name) == NULL) {
		api_error(req, 404, "not_found", "unknown token source");
		return (KORE_RESULT_OK);
	}

	store_events(st->name, limit, before, api_pending_cb,
	    api_pending_start(req, st, render_events));
	return (KORE_RESULT_RETRY);
}

/* The pre-warming guide's shape, with every source in "tokens". */
int
admin_prewarming_status(struct http_request *req, struct api_state *st)
{
	struct cache_entry	*e, *soonest;
	void			*g;
	int64_t			now;

	now = isotime_now();
	soonest = NULL;

	g = api_json_begin();
	json_kv_bool(g, "success", 1);
	yajl_gen_string(g, (const unsigned char *)"data", 4);
	yajl_gen_map_open(g);
	json_kv_bool(g, "prewarming_active",
	    kiln_config.prewarming_enabled && !cache_paused());
	json_kv_decimal(g, "refresh_buffer_minutes",
	    kiln_config.refresh_buffer_ms / 60000.0);

	yajl_gen_string(g, (const unsigned char *)"tokens", 6);
	yajl_gen_array_open(g);
	for (e = cache_first(); e != NULL; e = cache_next(e)) {
		yajl_gen_map_open(g);
		json_kv_str(g, "name", e->name);
		json_kv_bool(g, "paused", e->paused);
		prewarming_entry(g, e, now);
		yajl_gen_map_close(g);
		if (!e->paused && e->enabled &&
		    (soonest == NULL || e->next_ms < soonest->next_ms))
			soonest = e;
	}
	yajl_gen_array_close(g);

	/* The single-token fields of the guide: the next one due. */
	if (soonest != NULL)
		prewarming_entry(g, soonest, now);

	yajl_gen_map_close(g);
	api_json_send(req, 200, g);

	return (KORE_RESULT_OK);
}

int
admin_prewarming_refresh(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;
	char			name[KILN_NAME_MAX + 2];

	st->name[0] = '\0';
	if (query_arg(req, "token", name, sizeof(name)) != 0) {
		if (!source_name_valid(name) || cache_lookup(name) == NULL) {
			api_error(req, 404, "not_found",
			    "unknown token source");
			return (KORE_RESULT_OK);
		}
		(void)kore_strlcpy(st->name, name, sizeof(st->name));
	}

	p = api_pending_start(req, st, render_prewarming_refresh);
	store_audit_write(&p->who, st->name[0] ? "source.refresh" :
	    "prewarming.refresh", st->name[0] ? st->name : NULL, NULL, "ok",
	    api_pending_cb, p);

	return (KORE_RESULT_RETRY);
}

int
admin_prewarming_start(struct http_request *req, struct api_state *st)
{
	return (prewarming_pause(req, st, 0));
}

int
admin_prewarming_stop(struct http_request *req, struct api_state *st)
{
	return (prewarming_pause(req, st, 1));
}

int
admin_keys_list(struct http_request *req, struct api_state *st)
{
	store_keys_list(api_pending_cb,
	    api_pending_start(req, st, render_keys));
	return (KORE_RESULT_RETRY);
}

int
admin_keys_create(struct http_request *req, struct api_state *st)
{
	yajl_val		body;

	if (!api_body_json(req, &body))
		return (KORE_RESULT_OK);

	(void)admin_key_create(req, st, body);
	return (KORE_RESULT_RETRY);
}

/* The core of POST /api/keys, as admin_source_create. */
struct api_pending *
admin_key_create(struct http_request *req, struct api_state *st,
    yajl_val body)
{
	struct api_pending	*p;
	yajl_val		name, role, srcs;
	const char		*np[] = { "name", NULL }, *rp[] = { "role", NULL };
	const char		*sp[] = { "sources", NULL };
	const char		*n, *r;
	char			*scope;
	size_t			i;
	char			hash[AUTH_HASH_LEN + 1];
	char			fields[AUDIT_FIELDS_LEN];

	p = api_pending_start(req, st, render_key_created);
	p->body = body;

	name = yajl_tree_get(body, np, yajl_t_string);
	role = yajl_tree_get(body, rp, yajl_t_string);
	srcs = yajl_tree_get(body, sp, yajl_t_any);
	n = name != NULL ? YAJL_GET_STRING(name) : NULL;
	r = role != NULL ? YAJL_GET_STRING(role) : NULL;

	for (i = 0; n != NULL && n[i] != '\0'; i++) {
		if ((unsigned char)n[i] < 0x20 || n[i] == 0x7f)
			n = NULL;
	}
	if (!YAJL_IS_OBJECT(body) ||
	    body->u.object.len != 2 + (srcs != NULL) || n == NULL ||
	    *n == '\0' || strlen(n) > 64) {
		api_pending_fail(p, 422, "invalid_field",
		    "name: expected 1 to 64 printable characters (and only "
		    "name, role and sources)");
		return (p);
	}
	if (r == NULL || jwt_role_parse(r) == ROLE_NONE) {
		api_pending_fail(p, 422, "invalid_field",
		    "role: expected admin, operator, viewer or client");
		return (p);
	}
	scope = NULL;
	if (srcs != NULL && !YAJL_IS_NULL(srcs) &&
	    (jwt_role_parse(r) != ROLE_CLIENT ||
	    (scope = key_scope(srcs)) == NULL)) {
		api_pending_fail(p, 422, "invalid_field",
		    "sources: expected 1 to 256 token source names, and only "
		    "for a client key");
		return (p);
	}

	/* The key is only in this request's answer; the table has a hash. */
	p->secret = auth_key_generate();
	auth_key_hash(p->secret, hash);
	(void)audit_body_fields(body, fields, sizeof(fields));
	store_key_create(n, r, hash, scope, &p->who, fields, api_pending_cb,
	    p);
	kore_free(scope);

	return (p);
}

int
admin_key_revoke(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;

	p = api_pending_start(req, st, render_key_revoked);
	store_key_revoke(st->name, &p->who, api_pending_cb, p);
	return (KORE_RESULT_RETRY);
}

static void
render_list(struct api_pending *p, const struct store_rows *rows, int ok)
{
	void		*g;
	size_t		i;
	int64_t		now;

	if (pending_db_error(p, ok))
		return;

	now = isotime_now();
	g = pending_gen(p, 200);
	yajl_gen_string(g, (const unsigned char *)"data", 4);
	yajl_gen_array_open(g);
	for (i = 0; i < rows->n; i++)
		view_source(g, &rows->views[i], now, p->principal.role);
	yajl_gen_array_close(g);
	p->done = 1;
}

static void
render_one(struct api_pending *p, const struct store_rows *rows, int ok)
{
	void		*g;

	if (pending_db_error(p, ok))
		return;
	if (rows->n == 0) {
		api_pending_fail(p, 404, "not_found", "unknown token source");
		return;
	}

	g = pending_gen(p, p->status);
	yajl_gen_string(g, (const unsigned char *)"data", 4);
	view_source(g, &rows->views[0], isotime_now(), p->principal.role);
	p->done = 1;
}

/* POST, step 1: the source was written; read it back to answer. */
static void
source_created(struct api_pending *p, const struct store_rows *rows, int ok)
{
	if (pending_db_error(p, ok))
		return;
	if (rows->n == 0) {
		api_pending_fail(p, 409, "conflict",
		    "a token source with this name exists");
		return;
	}

	log_kv(LOG_LVL_INFO, "source created", "token", p->name, NULL);
	cache_reload(p->name);
	p->status = 201;
	p->render = render_one;
	store_sources_view(p->name, api_pending_cb, p);
}

/*
 * PATCH, step 1: the stored source is loaded; merge the body into it,
 * decide whether a refresh is due, and write it back (step 2).
 */
static void
patch_loaded(struct api_pending *p, const struct store_rows *rows, int ok)
{
	struct audit_snap	snap;
	const char		*code;
	char			*before, err[KILN_ERR_MAX];
	char			fields[AUDIT_FIELDS_LEN];

	if (pending_db_error(p, ok))
		return;
	if (rows->source == NULL) {
		api_pending_fail(p, 404, "not_found", "unknown token source");
		return;
	}
	if (!patch_load(p, rows->source)) {
		api_pending_fail(p, 500, "internal", rows->source->error);
		return;
	}

	/* The audit row names the fields that change, never values. */
	audit_source_snap(&p->src, &snap);
	before = store_upstream_digest(&p->src);
	if (!patch_merge(p, &code, err, sizeof(err))) {
		kore_free(before);
		OPENSSL_cleanse(&snap, sizeof(snap));
		api_pending_fail(p, 422, code, err);
		return;
	}
	patch_decide(p, before);
	kore_free(before);
	(void)audit_source_changed(&snap, &p->src, fields, sizeof(fields));
	OPENSSL_cleanse(&snap, sizeof(snap));

	if (p->src.kind == KIND_TOKEN_EXCHANGE) {
		(void)kore_strlcpy(p->fields, fields, sizeof(p->fields));
		p->render = exchange_checked;
		store_exchange_edges(api_pending_cb, p);
		return;
	}

	p->render = patch_written;
	store_source_patch(&p->src, p->version, p->with_refresh, p->upstream,
	    &p->who, fields, api_pending_cb, p);
}

/*
 * A token exchange takes its subject (and actor) token from other
 * sources: one that would end up taking, through others, from itself
 * is refused. Then the create (p->version 0) or patch goes on.
 */
static void
exchange_checked(struct api_pending *p, const struct store_rows *rows,
    int ok)
{
	u_int8_t	*seen;
	int		cycle;
	const char	*field;

	if (pending_db_error(p, ok))
		return;

	seen = kore_calloc(rows->n + 1, 1);
	field = "subject_source";
	cycle = exchange_reaches(rows, p->src.name, p->src.subject_source,
	    seen);
	if (!cycle && p->src.actor_source != NULL) {
		memset(seen, 0, rows->n + 1);
		field = "actor_source";
		cycle = exchange_reaches(rows, p->src.name,
		    p->src.actor_source, seen);
	}
	kore_free(seen);

	if (cycle) {
		(void)snprintf(p->message, sizeof(p->message), "%s: would "
		    "make a cycle: %s would take its token, through others, "
		    "from itself", field, p->src.name);
		api_pending_fail(p, 422, "invalid_field", p->message);
		return;
	}

	if (p->version == 0) {
		p->render = source_created;
		store_source_create(&p->src, &p->who, p->fields,
		    api_pending_cb, p);
		return;
	}
	p->render = patch_written;
	store_source_patch(&p->src, p->version, p->with_refresh, p->upstream,
	    &p->who, p->fields, api_pending_cb, p);
}

/*
 * Does the source at take its token, directly or through others, from
 * name? The stored edges of name itself are its old ones: skipped.
 */
static int
exchange_reaches(const struct store_rows *rows, const char *name,
    const char *at, u_int8_t *seen)
{
	const struct edge_row	*e;
	size_t			i;

	if (!strcmp(at, name))
		return (1);

	for (i = 0; i < rows->n; i++) {
		e = &rows->edges[i];
		if (seen[i] || strcmp(e->name, at) || !strcmp(e->name, name))
			continue;
		seen[i] = 1;
		if (e->subject != NULL &&
		    exchange_reaches(rows, name, e->subject, seen))
			return (1);
		if (e->actor != NULL &&
		    exchange_reaches(rows, name, e->actor, seen))
			return (1);
	}

	return (0);
}

/* Take the stored source (secrets opened) and its version. */
static int
patch_load(struct api_pending *p, struct source_row *row)
{
	p->src = row->src;
	memset(&row->src, 0, sizeof(row->src));
	p->version = row->version;

	return (row->opened);
}

/* Apply the body to the stored source; code and err say why not. */
static int
patch_merge(struct api_pending *p, const char **code, char *err,
    size_t errlen)
{
	int		held;
	char		origin[SOURCE_ORIGIN_MAX];

	source_origin(p->src.token_url, origin, sizeof(origin));
	held = patch_secrets_held(&p->src);
	if (!source_from_json(p->body, SOURCE_PATCH, &p->src, err, errlen)) {
		*code = "invalid_field";
		return (KORE_RESULT_ERROR);
	}
	if (!patch_origin_check(p, origin, held, err, errlen)) {
		*code = "secret_required";
		return (KORE_RESULT_ERROR);
	}
	if (!api_jwks_patch_origin(&p->src, origin, err, errlen)) {
		*code = "secret_required";
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

/*
 * A change of how the token is obtained (before: its digest as stored)
 * or a new refresh token asks for a token at once.
 */
static void
patch_decide(struct api_pending *p, const char *before)
{
	const char	*rt[] = { "refresh_token", NULL };
	char		*after;

	after = store_upstream_digest(&p->src);
	p->with_refresh = yajl_tree_get(p->body, rt, yajl_t_any) != NULL;
	p->upstream = p->with_refresh ||
	    CRYPTO_memcmp(before, after, SEAL_MAC_LEN) != 0;
	kore_free(after);
}

static const char *patch_secrets[] = {
	"client_secret", "refresh_token", "password", "tls_client_key"
};

/* Which secrets src holds, one bit per patch_secrets entry. */
static int
patch_secrets_held(const struct source *src)
{
	return ((src->client_secret != NULL) |
	    (src->refresh_token != NULL) << 1 | (src->password != NULL) << 2 |
	    (src->tls_client_key != NULL) << 3);
}

/*
 * A secret goes only to the origin it was given for: a change that
 * moves the source to another origin must give every stored secret
 * anew (held: as read before the change), or nothing is changed.
 */
static int
patch_origin_check(struct api_pending *p, const char *was, int held,
    char *err, size_t errlen)
{
	const char	*path[2];
	size_t		i, off;
	char		now[SOURCE_ORIGIN_MAX];

	source_origin(p->src.token_url, now, sizeof(now));
	if (!strcmp(was, now))
		return (KORE_RESULT_OK);

	off = 0;
	err[0] = '\0';
	for (i = 0; i < sizeof(patch_secrets) / sizeof(patch_secrets[0]);
	    i++) {
		path[0] = patch_secrets[i];
		path[1] = NULL;
		if (!(held & (1 << i)) ||
		    yajl_tree_get(p->body, path, yajl_t_string) != NULL)
			continue;
		(void)snprintf(err + off, errlen - off, "%s%s",
		    off ? ", " : "", patch_secrets[i]);
		off = strlen(err);
	}
	if (off == 0)
		return (KORE_RESULT_OK);

	(void)snprintf(err + off, errlen - off, ": required anew, token_url "
	    "moves to another origin (%s); a secret goes only to the origin "
	    "it was given for", now);

	return (KORE_RESULT_ERROR);
}

/* PATCH, step 2: written unless changed meanwhile; read it back. */
static void
patch_written(struct api_pending *p, const struct store_rows *rows, int ok)
{
	if (pending_db_error(p, ok))
		return;
	if (rows->n == 0) {
		api_pending_fail(p, 409, "conflict",
		    "the source changed meanwhile; read it and try again");
		return;
	}

	log_kv(LOG_LVL_INFO, "source changed", "token", p->name,
	    "#refresh_now", (int64_t)p->upstream, NULL);
	cache_reload(p->name);
	p->render = render_one;
	store_sources_view(p->name, api_pending_cb, p);
}

static void
render_deleted(struct api_pending *p, const struct store_rows *rows, int ok)
{
	void		*g;

	if (pending_db_error(p, ok))
		return;
	if (rows->n == 0) {
		api_pending_fail(p, 404, "not_found", "unknown token source");
		return;
	}

	log_kv(LOG_LVL_INFO, "source deleted", "token", p->name, NULL);
	cache_reload(p->name);
	g = pending_gen(p, 200);
	json_kv_str(g, "message", "Token source deleted");
	p->done = 1;
}

static void
render_events(struct api_pending *p, const struct store_rows *rows, int ok)
{
	void		*g;
	size_t		i;

	if (pending_db_error(p, ok))
		return;

	g = pending_gen(p, 200);
	yajl_gen_string(g, (const unsigned char *)"data", 4);
	yajl_gen_map_open(g);
	yajl_gen_string(g, (const unsigned char *)"events", 6);
	yajl_gen_array_open(g);
	for (i = 0; i < rows->n; i++)
		view_map(g, &rows->events[i], event_fields, 0);
	yajl_gen_array_close(g);
	if (rows->n > 0)
		view_num(g, "next_before", rows->events[rows->n - 1].id);
	else
		json_kv_null(g, "next_before");
	yajl_gen_map_close(g);
	p->done = 1;
}

/* POST /api/tokens/{name}/refresh, step 1: audited; start it. */
static void
render_refresh(struct api_pending *p, const struct store_rows *rows, int ok)
{
	void		*g;

	if (!refresh_audited(p, ok))
		return;
	g = pending_gen(p, 202);
	json_kv_str(g, "message", "Token refresh initiated");
	p->done = 1;
}

static void
render_prewarming_refresh(struct api_pending *p, const struct store_rows *rows,
    int ok)
{
	void		*g;

	if (!refresh_audited(p, ok))
		return;
	g = pending_gen(p, 200);
	json_kv_str(g, "message", "Token refresh initiated");
	p->done = 1;
}

/* The refresh of p->name (or of every enabled source), its row written. */
static int
refresh_audited(struct api_pending *p, int ok)
{
	struct api_state	*st;
	struct cache_entry	*e;

	if (pending_db_error(p, ok))
		return (0);
	st = http_state_get(p->req);
	if (p->name[0] != '\0') {
		if ((e = cache_lookup(p->name)) == NULL) {
			api_pending_fail(p, 404, "not_found",
			    "unknown token source");
			return (0);
		}
		refresh_request(e, TRIGGER_ADMIN, 0, st->request_id,
		    st->traceparent);
		return (1);
	}
	for (e = cache_first(); e != NULL; e = cache_next(e)) {
		if (e->enabled)
			refresh_request(e, TRIGGER_ADMIN, 0, st->request_id,
			    st->traceparent);
	}

	return (1);
}

static int
prewarming_pause(struct http_request *req, struct api_state *st, int paused)
{
	struct api_pending	*p;
	char			name[KILN_NAME_MAX + 2];

	if (query_arg(req, "token", name, sizeof(name)) != 0) {
		if (!source_name_valid(name)) {
			api_error(req, 404, "not_found",
			    "unknown token source");
			return (KORE_RESULT_OK);
		}
		(void)kore_strlcpy(st->name, name, sizeof(st->name));
		p = api_pending_start(req, st, render_paused);
		p->upstream = paused;
		store_source_pause(name, paused, &p->who, api_pending_cb, p);
	} else {
		st->name[0] = '\0';
		p = api_pending_start(req, st, render_paused);
		p->upstream = paused;
		store_prewarming_pause(paused, &p->who, api_pending_cb, p);
	}

	return (KORE_RESULT_RETRY);
}

static void
render_paused(struct api_pending *p, const struct store_rows *rows, int ok)
{
	void		*g;
	int		paused = p->upstream;

	if (pending_db_error(p, ok))
		return;
	if (p->name[0] != '\0' && rows->n == 0) {
		api_pending_fail(p, 404, "not_found", "unknown token source");
		return;
	}

	log_kv(LOG_LVL_INFO, paused ? "pre-warming stopped" :
	    "pre-warming started", "token", p->name[0] ? p->name : NULL,
	    NULL);
	g = pending_gen(p, 200);
	json_kv_str(g, "message", paused ? "Token pre-warming stopped" :
	    "Token pre-warming started successfully");
	p->done = 1;
}

static void
render_key_created(struct api_pending *p, const struct store_rows *rows,
    int ok)
{
	void		*g;

	if (pending_db_error(p, ok))
		return;

	auth_keys_reload();
	g = pending_gen(p, 201);
	yajl_gen_string(g, (const unsigned char *)"data", 4);
	yajl_gen_map_open(g);
	if (rows->n > 0)
		view_fields(g, &rows->keys[0], key_created_fields, 0);
	json_kv_str(g, "key", p->secret);
	yajl_gen_map_close(g);
	json_kv_str(g, "message", "Store this key now: it is not shown again");
	p->done = 1;
}

static void
render_keys(struct api_pending *p, const struct store_rows *rows, int ok)
{
	void		*g;
	size_t		i;

	if (pending_db_error(p, ok))
		return;

	g = pending_gen(p, 200);
	yajl_gen_string(g, (const unsigned char *)"data", 4);
	yajl_gen_array_open(g);
	for (i = 0; i < rows->n; i++)
		view_map(g, &rows->keys[i], key_fields, 0);
	yajl_gen_array_close(g);
	p->done = 1;
}

static void
render_key_revoked(struct api_pending *p, const struct store_rows *rows,
    int ok)
{
	void		*g;
	char		sessions[24];

	if (pending_db_error(p, ok))
		return;
	if (rows->n == 0) {
		api_pending_fail(p, 404, "not_found", "no such active key");
		return;
	}

	/* Refused by every worker here before the answer leaves. */
	auth_key_revoked(strtoll(p->name, NULL, 10));
	auth_keys_reload();
	(void)snprintf(sessions, sizeof(sessions), "%lld",
	    (long long)(rows->num[2] == STORE_NULL ? 0 : rows->num[2]));
	log_kv(LOG_LVL_INFO, "API key revoked", "key_id", p->name,
	    "sessions", sessions, NULL);
	g = pending_gen(p, 200);
	json_kv_str(g, "message", "API key revoked");
	p->done = 1;
}

/*
 * The sources a client key is scoped to, as "a,b" for the store, or
 * NULL when v is not an array of 1 to KEY_SOURCES_MAX source names.
 */
static char *
key_scope(yajl_val v)
{
	struct kore_buf		buf;
	const char		*s;
	size_t			i, len;
	char			*out;

	if (!YAJL_IS_ARRAY(v) || v->u.array.len == 0 ||
	    v->u.array.len > KEY_SOURCES_MAX)
		return (NULL);

	kore_buf_init(&buf, 256);
	for (i = 0; i < v->u.array.len; i++) {
		s = YAJL_GET_STRING(v->u.array.values[i]);
		if (s == NULL || !source_name_valid(s)) {
			kore_buf_cleanup(&buf);
			return (NULL);
		}
		kore_buf_appendf(&buf, "%s%s", i ? "," : "", s);
	}
	out = kore_buf_stringify(&buf, &len);
	out = kore_strdup(out);
	kore_buf_cleanup(&buf);

	return (out);
}

static int
pending_db_error(struct api_pending *p, int ok)
{
	if (ok)
		return (0);

	api_pending_fail(p, 503, "database_unavailable",
	    "the database did not answer; try again");
	return (1);
}

/* The answer document of p, with "success": true already in it. */
static void *
pending_gen(struct api_pending *p, int status)
{
	if (p->g == NULL) {
		p->g = api_json_begin();
		json_kv_bool(p->g, "success", 1);
	}
	p->status = status;

	return (p->g);
}

/* The admin view of a source: its settings, then its token's state. */
static void
view_source(void *g, const struct source_view *v, int64_t now, int role)
{
	int64_t		expires;
	int		paused, has_token;

	yajl_gen_map_open(g);
	view_fields(g, v, source_fields, role < ROLE_ADMIN);

	paused = v->paused || cache_paused();
	has_token = v->fingerprint != NULL && *v->fingerprint != '\0';
	expires = v->expires_ms == STORE_NULL ? 0 : v->expires_ms;

	yajl_gen_string(g, (const unsigned char *)"state", 5);
	yajl_gen_map_open(g);
	json_kv_str(g, "status", v->waiting && !v->leased && !paused &&
	    !(has_token && expires > now) ? "waiting" :
	    policy_state(paused, v->leased,
	    (u_int32_t)(v->failures == STORE_NULL ? 0 : v->failures),
	    has_token, expires, now));
	json_kv_bool(g, "has_token", has_token);
	json_kv_bool(g, "valid", has_token &&
	    expires > now + CACHE_VALID_MARGIN_MS);
	view_fields(g, v, state_fields, 0);
	yajl_gen_map_close(g);

	yajl_gen_map_close(g);
}

/* The fields of row as one JSON object. */
static void
view_map(void *g, const void *row, const struct view_field *f, int redact)
{
	yajl_gen_map_open(g);
	view_fields(g, row, f, redact);
	yajl_gen_map_close(g);
}

/* The fields of row, as f says, up to its NULL key. */
static void
view_fields(void *g, const void *row, const struct view_field *f,
    int redact)
{
	const u_int8_t	*at;

	for (; f->key != NULL; f++) {
		at = (const u_int8_t *)row + f->off;
		switch (f->type) {
		case VIEW_STR:
			view_str(g, f->key, *(const char *const *)at);
			break;
		case VIEW_URL:
			view_url(g, f->key, *(const char *const *)at, redact);
			break;
		case VIEW_LIST:
			view_list(g, f->key, *(const char *const *)at);
			break;
		case VIEW_NUM:
			view_num(g, f->key, *(const int64_t *)at);
			break;
		case VIEW_TIME:
			view_time(g, f->key, *(const int64_t *)at);
			break;
		case VIEW_BOOL:
			json_kv_bool(g, f->key, *(const int *)at);
			break;
		case VIEW_JSON:
			view_json(g, f->key, *(const char *const *)at);
			break;
		}
	}
}

/*
 * Stored JSON as it is: extra_authorize_params, which source.c wrote
 * with yajl (an object of strings), so it is inserted verbatim.
 */
static void
view_json(void *g, const char *key, const char *v)
{
	if (v == NULL) {
		json_kv_null(g, key);
		return;
	}
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	yajl_gen_number(g, v, strlen(v));
}

/*
 * A URL without its userinfo, which is a credential; its query values
 * too for those who may not change it (only admins write token_url).
 */
static void
view_url(void *g, const char *key, const char *v, int redact_query)
{
	char		*url;

	if (v == NULL || *v == '\0' ||
	    (url = source_url_redact(v, redact_query)) == NULL) {
		json_kv_null(g, key);
		return;
	}
	json_kv_str(g, key, url);
	free(url);
}

/* A comma-separated column as a JSON array; SQL NULL as null. */
static void
view_list(void *g, const char *key, const char *v)
{
	char		*copy, *p, *item;

	if (v == NULL) {
		json_kv_null(g, key);
		return;
	}

	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	yajl_gen_array_open(g);
	copy = kore_strdup(v);
	for (p = copy; (item = strsep(&p, ",")) != NULL;) {
		if (*item != '\0')
			yajl_gen_string(g, (const unsigned char *)item,
			    strlen(item));
	}
	kore_free(copy);
	yajl_gen_array_close(g);
}

static void
view_time(void *g, const char *key, int64_t v)
{
	char		buf[ISOTIME_LEN];

	if (v == STORE_NULL) {
		json_kv_null(g, key);
		return;
	}
	isotime_format(v, buf, sizeof(buf));
	json_kv_str(g, key, buf);
}

static void
view_str(void *g, const char *key, const char *v)
{
	if (v == NULL)
		json_kv_null(g, key);
	else
		json_kv_str(g, key, v);
}

static void
view_num(void *g, const char *key, int64_t v)
{
	if (v == STORE_NULL)
		json_kv_null(g, key);
	else
		json_kv_int(g, key, v);
}

static void
prewarming_entry(void *g, struct cache_entry *e, int64_t now)
{
	char		expires[ISOTIME_LEN], refresh[ISOTIME_LEN];

	isotime_format(e->expires_ms, expires, sizeof(expires));
	isotime_format(e->next_ms, refresh, sizeof(refresh));

	yajl_gen_string(g, (const unsigned char *)"token", 5);
	yajl_gen_map_open(g);
	json_kv_bool(g, "has_token", e->token != NULL);
	json_kv_bool(g, "is_expired", e->token == NULL ||
	    e->expires_ms <= now);
	if (e->token != NULL)
		json_kv_str(g, "expires_at", expires);
	else
		json_kv_null(g, "expires_at");
	yajl_gen_map_close(g);

	yajl_gen_string(g, (const unsigned char *)"schedule", 8);
	yajl_gen_map_open(g);
	if (e->token != NULL)
		json_kv_str(g, "expires_at", expires);
	else
		json_kv_null(g, "expires_at");
	json_kv_str(g, "refresh_at", refresh);
	json_kv_decimal(g, "next_refresh_in_minutes",
	    e->next_ms > now ? (e->next_ms - now) / 60000.0 : 0.0);
	yajl_gen_map_close(g);
}

/*
 * A query-string argument, decoded: nonzero when given (out "" when it
 * is too long or not text, which the caller then refuses), 0 when absent
 * or empty.
 */
static int
query_arg(struct http_request *req, const char *key, char *out, size_t len)
{
	switch (qs_get(req->query_string, key, out, len)) {
	case 1:
		return (out[0] != '\0');
	case -1:
		return (1);
	}

	return (0);
}
