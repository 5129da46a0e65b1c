/*
 * api_jwks.c: the signing keys of a source (private_key_jwt, jwt_bearer).
 * GET /api/tokens/{name}/jwks.json publishes their public halves, so an
 * authorization server can be given kiln's URL as the client's jwks_uri;
 * POST /api/tokens/{name}/keys/rotate adds a new key that is published at
 * once and signs after KILN_KEY_ROLLOVER seconds (the servers' caches of
 * jwks.json have caught up by then). Private keys never leave store.c
 * but sealed.
 */

#include <sys/types.h>

#include <stdio.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

static void	jwks_render(struct api_pending *, const struct store_rows *,
		    int);
static int	jwks_finish(struct http_request *, struct api_pending *);
static void	jwks_key(void *, const char *);
static void	rotate_loaded(struct api_pending *, const struct store_rows *,
		    int);
static void	rotate_done(struct api_pending *, const struct store_rows *,
		    int);

int
api_jwks(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;

	p = api_pending_start(req, st, jwks_render);
	p->finish = jwks_finish;
	store_signing_keys(st->name, api_pending_cb, p);

	return (KORE_RESULT_RETRY);
}

int
admin_key_rotate(struct http_request *req, struct api_state *st)
{
	store_signing_keys(st->name, api_pending_cb,
	    api_pending_start(req, st, rotate_loaded));

	return (KORE_RESULT_RETRY);
}

/*
 * A PATCH that moves a source to another origin: its stored keys were
 * sealed for the old one, so a new private_key must come with it.
 */
int
api_jwks_patch_origin(const struct source *src, const char *was, char *err,
    size_t errlen)
{
	char		now[SOURCE_ORIGIN_MAX];

	source_origin(src->token_url, now, sizeof(now));
	if (!src->key_stored || !strcmp(was, now) ||
	    (src->key_new && src->private_key != NULL))
		return (KORE_RESULT_OK);

	(void)snprintf(err, errlen, "private_key: required anew, token_url "
	    "moves to another origin (%s)", now);

	return (KORE_RESULT_ERROR);
}

/* RFC 7517 5: {"keys":[...]}, the public members only. */
static void
jwks_render(struct api_pending *p, const struct store_rows *rows, int ok)
{
	size_t		i;

	p->done = 1;
	if (!ok) {
		api_pending_fail(p, 503, "database_unavailable",
		    "the database did not answer; try again");
		return;
	}
	if (rows->n == 0) {
		api_pending_fail(p, 404, "not_found", "unknown token source");
		return;
	}

	p->g = api_json_begin();
	yajl_gen_string(p->g, (const unsigned char *)"keys", 4);
	yajl_gen_array_open(p->g);
	for (i = 0; i < rows->n; i++) {
		if (rows->signing_keys[i].kid != NULL)
			jwks_key(p->g, rows->signing_keys[i].public_jwk);
	}
	yajl_gen_array_close(p->g);
}

/* A short public cache: a rotation publishes well before it signs. */
static int
jwks_finish(struct http_request *req, struct api_pending *p)
{
	const unsigned char	*buf;
	size_t			len;
	char			cc[48];

	if (p->code[0] != '\0' || p->g == NULL)
		return (0);

	yajl_gen_map_close(p->g);
	if (yajl_gen_get_buf(p->g, &buf, &len) != yajl_gen_status_ok)
		fatal("yajl_gen_get_buf");

	(void)snprintf(cc, sizeof(cc), "public, max-age=%d", JWKS_MAX_AGE);
	http_response_header(req, "Content-Type",
	    "application/jwk-set+json");
	http_response_header(req, "Cache-Control", cc);
	http_response(req, 200, buf, len);

	return (1);
}

/* A stored JWK (an object of strings) written again through yajl. */
static void
jwks_key(void *g, const char *text)
{
	yajl_val	v;
	size_t		i;

	if (text == NULL || (v = json_parse(text, strlen(text))) == NULL)
		return;

	if (YAJL_IS_OBJECT(v)) {
		yajl_gen_map_open(g);
		for (i = 0; i < v->u.object.len; i++) {
			if (YAJL_IS_STRING(v->u.object.values[i]) &&
			    strcmp(v->u.object.keys[i], "d"))
				json_kv_str(g, v->u.object.keys[i],
				    YAJL_GET_STRING(v->u.object.values[i]));
		}
		yajl_gen_map_close(g);
	}
	yajl_tree_free(v);
}

/*
 * A rotation needs a key kiln generated (a given key is changed by
 * giving another) and no rotation under way.
 */
static void
rotate_loaded(struct api_pending *p, const struct store_rows *rows, int ok)
{
	const struct signing_key_row	*k;
	int64_t				now;
	size_t				i;
	int				alg;

	if (!ok) {
		api_pending_fail(p, 503, "database_unavailable",
		    "the database did not answer; try again");
		return;
	}
	if (rows->n == 0) {
		api_pending_fail(p, 404, "not_found", "unknown token source");
		return;
	}

	k = &rows->signing_keys[0];
	if ((alg = jws_alg_parse(k->generate)) == 0) {
		api_pending_fail(p, 409, "conflict", "the source has no key "
		    "kiln generates (private_key {\"generate\":...}); give a "
		    "new private_key to change a given one");
		return;
	}

	now = isotime_now();
	for (i = 0; i < rows->n; i++) {
		if (rows->signing_keys[i].kid != NULL &&
		    rows->signing_keys[i].activate_ms > now) {
			api_pending_fail(p, 409, "conflict", "a rotation is "
			    "under way: its key signs from activate_at on");
			return;
		}
	}

	p->render = rotate_done;
	if (!store_signing_key_rotate(p->name, alg, k->token_url, k->version,
	    kiln_config.key_rollover, api_pending_cb, p))
		api_pending_fail(p, 500, "internal", "key generation failed");
}

static void
rotate_done(struct api_pending *p, const struct store_rows *rows, int ok)
{
	char		at[ISOTIME_LEN];

	p->done = 1;
	if (!ok) {
		api_pending_fail(p, 503, "database_unavailable",
		    "the database did not answer; try again");
		return;
	}
	if (rows->n == 0) {
		api_pending_fail(p, 409, "conflict", "the source changed "
		    "meanwhile; try again");
		return;
	}

	isotime_format(rows->num[0], at, sizeof(at));
	log_kv(LOG_LVL_INFO, "signing key added", "token", p->name,
	    "activate_at", at, NULL);

	p->g = api_json_begin();
	json_kv_bool(p->g, "success", 1);
	json_kv_str(p->g, "activate_at", at);
	json_kv_int(p->g, "rollover_seconds", kiln_config.key_rollover);
}
