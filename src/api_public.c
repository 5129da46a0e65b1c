/*
 * api_public.c: what backend clients call, answered from the worker's
 * cache without touching PostgreSQL:
 *
 *	GET  /api/tokens/{name}/current-token[?min_ttl=S]
 *	GET  /api/tokens/{name}/current-token?wait_for_change=true&...
 *	GET  /api/tokens/{name}/stream
 *	POST /api/tokens/{name}/current-token/rejected {"fingerprint":...}
 *
 * A request that needs a new token asks for a single-flight refresh and
 * sleeps on its cache entry until the entry changes or KILN_WAIT_MS pass.
 * Long-polls and event streams are push.c's, after the checks here.
 */

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

#define MIN_TTL_MAX		86400
#define RETRY_AFTER_MAX		300

static struct cache_entry	*public_entry(struct http_request *,
				    struct api_state *, int *);
static int	public_min_ttl(struct http_request *, int64_t *);
static int	public_fingerprint(struct http_request *, char *, size_t);
static void	public_token(struct http_request *, struct cache_entry *,
		    int64_t);
static void	public_invalid(struct http_request *, struct cache_entry *,
		    int64_t, const char *);
static void	public_wait(struct http_request *, struct api_state *,
		    struct cache_entry *);
static void	public_refused(struct http_request *, struct cache_entry *,
		    int64_t, const char *);

int
api_current_token(struct http_request *req, struct api_state *st)
{
	struct cache_entry	*e;
	int64_t			now;
	int			ret;

	if ((e = public_entry(req, st, &ret)) == NULL)
		return (ret);

	now = isotime_now();
	if (st->stage == 0) {
		st->stage = 1;
		st->min_ttl = -1;
		if (!public_min_ttl(req, &st->min_ttl)) {
			api_error(req, 400, "bad_request", "min_ttl: expected "
			    "an integer number of seconds (0-86400)");
			return (KORE_RESULT_OK);
		}
		if (!push_wait_parse(req, st))
			return (KORE_RESULT_OK);
		if (st->poll_until != 0 && st->min_ttl >= 0) {
			api_error(req, 400, "bad_request", "min_ttl and "
			    "wait_for_change cannot be combined");
			return (KORE_RESULT_OK);
		}
	}

	if (st->poll_until != 0) {
		switch (push_wait(req, st, e, now)) {
		case KORE_RESULT_RETRY:
			return (KORE_RESULT_RETRY);
		case KORE_RESULT_ERROR:
			return (KORE_RESULT_OK);
		}
	}

	if (cache_valid(e, now) &&
	    e->expires_ms - now >= st->min_ttl * 1000) {
		if (push_not_modified(req, e))
			return (KORE_RESULT_OK);
		if (st->poll_until == 0 || !push_answer(req, e, now))
			public_token(req, e, now);
		return (KORE_RESULT_OK);
	}

	if (st->min_ttl < 0) {
		public_invalid(req, e, now, "no valid token at the moment");
		return (KORE_RESULT_OK);
	}

	/* Longer than the upstream's tokens live: no refresh can help. */
	if (e->lifetime_ms > 0 &&
	    st->min_ttl > (e->lifetime_ms + 500) / 1000) {
		public_refused(req, e, now, "min_ttl exceeds the lifetime of "
		    "this source's tokens");
		return (KORE_RESULT_OK);
	}

	/* min_ttl not met: refresh once, then wait for the entry to move. */
	if (st->stage == 1) {
		st->stage = 2;
		st->deadline = now + kiln_config.wait_ms;
		if (!refresh_request(e, TRIGGER_MIN_TTL, st->min_ttl,
		    st->request_id, st->traceparent)) {
			public_refused(req, e, now, e->refused);
			return (KORE_RESULT_OK);
		}
		public_wait(req, st, e);
		return (KORE_RESULT_RETRY);
	}

	if (now < st->deadline && e->epoch == st->epoch) {
		public_wait(req, st, e);
		return (KORE_RESULT_RETRY);
	}

	if (e->refused != NULL)
		public_refused(req, e, now, e->refused);
	else
		public_invalid(req, e, now, "no token with the requested "
		    "min_ttl");
	return (KORE_RESULT_OK);
}

/* The event stream of a source: the access rules of current-token. */
int
api_stream(struct http_request *req, struct api_state *st)
{
	struct cache_entry	*e;
	int			ret;

	if ((e = public_entry(req, st, &ret)) == NULL)
		return (ret);

	return (push_stream_entry(req, st, e));
}

int
api_rejected(struct http_request *req, struct api_state *st)
{
	struct cache_entry	*e;
	int64_t			now;
	int			ret;
	char			fpr[KILN_FPR_LEN + 1];

	if ((e = public_entry(req, st, &ret)) == NULL)
		return (ret);

	now = isotime_now();
	if (st->stage == 0) {
		st->stage = 1;
		if (public_fingerprint(req, fpr, sizeof(fpr)) != 0)
			return (KORE_RESULT_OK);

		/* Only a report about the current token does anything. */
		if (e->token != NULL &&
		    CRYPTO_memcmp(fpr, e->fpr, KILN_FPR_LEN) == 0) {
			st->stage = 2;
			st->generation = e->generation;
			st->deadline = now + kiln_config.wait_ms;
			log_kv(LOG_LVL_INFO, "current token reported rejected",
			    "token", e->name, "fingerprint", e->fpr, NULL);
			if (!refresh_request(e, TRIGGER_REJECTED,
			    e->generation, st->request_id, st->traceparent)) {
				public_refused(req, e, now, e->refused);
				return (KORE_RESULT_OK);
			}
			public_wait(req, st, e);
			return (KORE_RESULT_RETRY);
		}
	}

	if (st->stage == 2 && e->generation == st->generation) {
		if (now < st->deadline && e->epoch == st->epoch) {
			public_wait(req, st, e);
			return (KORE_RESULT_RETRY);
		}
		if (e->refused != NULL)
			public_refused(req, e, now, e->refused);
		else
			public_invalid(req, e, now, "refresh after rejection "
			    "did not complete yet");
		return (KORE_RESULT_OK);
	}

	if (cache_valid(e, now))
		public_token(req, e, now);
	else
		public_invalid(req, e, now, "no valid token at the moment");

	return (KORE_RESULT_OK);
}

/*
 * The entry a public request is about, or NULL with the answer given
 * (or the request put to sleep until the cache is loaded) and *ret set.
 */
static struct cache_entry *
public_entry(struct http_request *req, struct api_state *st, int *ret)
{
	struct cache_entry	*e;
	const char		*v, *code, *msg;
	int			status;

	*ret = KORE_RESULT_OK;

	if (!cache_loaded()) {
		if (st->deadline == 0) {
			st->deadline = isotime_now() + kiln_config.wait_ms;
			cache_wait(&st->waiter, req, NULL, st->deadline);
			*ret = KORE_RESULT_RETRY;
			return (NULL);
		}
		http_response_header(req, "Retry-After", "1");
		api_error(req, 503, "starting", "token cache not loaded yet");
		return (NULL);
	}

	if ((e = cache_lookup(st->name)) == NULL || !e->enabled) {
		api_error(req, 404, "not_found", "unknown token source");
		return (NULL);
	}

	if (e->require_header && (!http_request_header(req, "x-kiln-request",
	    &v) || strcmp(v, "true"))) {
		api_error(req, 403, "header_required",
		    "this source requires the header X-Kiln-Request: true");
		return (NULL);
	}

	/* Woken after a wait: the credential may have gone meanwhile. */
	if (st->stage != 0 && !auth_principal_live(&st->principal,
	    isotime_now()))
		auth_principal_drop(&st->principal);

	if ((status = auth_source_refused(&st->principal, e->access, e->name,
	    &code, &msg)) != 0) {
		if (status == 401)
			http_response_header(req, "WWW-Authenticate",
			    "Bearer");
		api_error(req, status, code, msg);
		return (NULL);
	}

	/* A connection: its source's entry said who may read it. */
	if (st->subject[0] != '\0' &&
	    (e = cache_lookup_conn(st->name, st->subject)) == NULL) {
		api_error(req, 404, "not_found", "unknown connection");
		return (NULL);
	}

	return (e);
}

static int
public_min_ttl(struct http_request *req, int64_t *out)
{
	const char	*q, *v;
	char		buf[16];
	size_t		n;
	int		err;

	if ((q = req->query_string) == NULL)
		return (KORE_RESULT_OK);

	for (v = q; v != NULL; v = strchr(v, '&') ? strchr(v, '&') + 1 : NULL) {
		if (strncmp(v, "min_ttl=", 8))
			continue;
		v += 8;
		n = strcspn(v, "&");
		if (n == 0 || n >= sizeof(buf))
			return (KORE_RESULT_ERROR);
		memcpy(buf, v, n);
		buf[n] = '\0';
		*out = kore_strtonum(buf, 10, 0, MIN_TTL_MAX, &err);
		return (err);
	}

	return (KORE_RESULT_OK);
}

/* Parse {"fingerprint":"<12 hex>"}; answers the error itself (!= 0). */
static int
public_fingerprint(struct http_request *req, char *out, size_t len)
{
	yajl_val	root, v;
	const char	*path[] = { "fingerprint", NULL }, *s;
	size_t		i;

	if (!api_body_json(req, &root))
		return (400);

	v = yajl_tree_get(root, path, yajl_t_string);
	s = v != NULL ? YAJL_GET_STRING(v) : NULL;
	if (!YAJL_IS_OBJECT(root) || s == NULL || strlen(s) != KILN_FPR_LEN) {
		yajl_tree_free(root);
		api_error(req, 422, "invalid_field",
		    "fingerprint: expected the 12 hex characters of a token");
		return (422);
	}

	(void)kore_strlcpy(out, s, len);
	yajl_tree_free(root);

	for (i = 0; out[i] != '\0'; i++) {
		if (!((out[i] >= '0' && out[i] <= '9') ||
		    (out[i] >= 'a' && out[i] <= 'f'))) {
			api_error(req, 422, "invalid_field", "fingerprint: "
			    "expected the 12 hex characters of a token");
			return (422);
		}
	}

	return (0);
}

/* The hot path: the answer was rendered with the token; add expires_in. */
static void
public_token(struct http_request *req, struct cache_entry *e, int64_t now)
{
	u_int8_t		buf[4096], *out;
	size_t			len, split;
	int			n;
	char			num[24], etag[KILN_FPR_LEN + 3];

	if (e->answer == NULL)
		cache_answer(e);
	split = e->answer_split;

	n = snprintf(num, sizeof(num), "%lld",
	    (long long)((e->expires_ms - now) / 1000));
	len = e->answer_len + n;
	out = len <= sizeof(buf) ? buf : kore_malloc(len);

	memcpy(out, e->answer, split);
	memcpy(out + split, num, n);
	memcpy(out + split + n, e->answer + split, e->answer_len - split);

	http_response_header(req, "Content-Type",
	    "application/json; charset=utf-8");
	http_response_header(req, "Cache-Control", "no-store");
	if (e->fpr[0] != '\0') {
		(void)snprintf(etag, sizeof(etag), "\"%s\"", e->fpr);
		http_response_header(req, "ETag", etag);
	}
	http_response(req, 200, out, len);

	OPENSSL_cleanse(out, split);
	if (out != buf)
		kore_free(out);
}

static void
public_invalid(struct http_request *req, struct cache_entry *e,
    int64_t now, const char *message)
{
	void		*g;
	int64_t		wait;
	char		expires[ISOTIME_LEN], retry[16];

	wait = (e->next_ms - now + 999) / 1000;
	if (e->refused != NULL && e->refused_until > now)
		wait = (e->refused_until - now + 999) / 1000;
	if (wait < 1)
		wait = 1;
	if (wait > RETRY_AFTER_MAX)
		wait = RETRY_AFTER_MAX;
	(void)snprintf(retry, sizeof(retry), "%lld", (long long)wait);
	http_response_header(req, "Retry-After", retry);

	g = api_json_begin();
	json_kv_str(g, "agent_name", e->name);
	if (e->conn != NULL)
		json_kv_str(g, "subject", e->conn);
	json_kv_null(g, "token");
	json_kv_str(g, "token_type", e->token_type);
	if (e->token != NULL) {
		isotime_format(e->expires_ms, expires, sizeof(expires));
		json_kv_str(g, "expires_at", expires);
	} else {
		json_kv_null(g, "expires_at");
	}
	json_kv_int(g, "expires_in", 0);
	json_kv_bool(g, "valid", 0);
	json_kv_str(g, "message", message);
	api_json_send(req, 503, g);
}

static void
public_wait(struct http_request *req, struct api_state *st,
    struct cache_entry *e)
{
	st->epoch = e->epoch;
	cache_wait(&st->waiter, req, e, st->deadline);
}

/* No refresh on demand now: the 503 of public_invalid, saying why. */
static void
public_refused(struct http_request *req, struct cache_entry *e,
    int64_t now, const char *why)
{
	char		msg[KILN_ERR_MAX];

	if (why == NULL)
		why = "refused";
	if (e->lifetime_ms > 0 && !strncmp(why, "min_ttl", 7)) {
		(void)snprintf(msg, sizeof(msg), "%s (%lld s)", why,
		    (long long)((e->lifetime_ms + 500) / 1000));
	} else {
		(void)snprintf(msg, sizeof(msg), "no refresh on demand now: "
		    "%s", why);
	}
	public_invalid(req, e, now, msg);
}
