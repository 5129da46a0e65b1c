/*
 * api_oauth.c: the authorization code flow of a connection (RFC 6749
 * 4.1 with PKCE, RFC 7636).
 *
 *	POST   /api/tokens/{name}/connections {"subject","return_to"}
 *	GET    /oauth/callback?code=&state=	(a browser, no credential)
 *	DELETE /api/tokens/{name}/connections/{subject}
 *
 * A start stores the flow (state digest, sealed verifier) in PostgreSQL
 * and answers the consent URL; the callback takes the flow once, on any
 * instance, exchanges the code and stores the subject's tokens as its
 * connection. What it says goes to the browser: a 303 to an allowed
 * return_to, or a small page; never a code or a token. A grant that is
 * replaced or deleted is revoked at revocation_url (RFC 7009).
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

#define OAUTH_CALLBACK		"/oauth/callback"
#define OAUTH_ARG_MAX		2048
#define OAUTH_ERROR_MAX		48
#define OAUTH_CSP		"default-src 'none'; style-src 'unsafe-inline'"
#define OAUTH_TRIGGER		"consent"

/*
 * An upstream call made for a request: p is that request's step (its
 * req NULL once the browser left), or NULL for a revocation nobody
 * waits for.
 */
struct oauth_call {
	struct attempt		at;	/* first: done gets &at */
	struct api_pending	*p;
};

static void	oauth_sourced(struct api_pending *,
		    const struct store_rows *, int);
static void	oauth_started(struct api_pending *,
		    const struct store_rows *, int);
static void	oauth_taken(struct api_pending *, const struct store_rows *,
		    int);
static void	oauth_exchange(struct api_pending *,
		    const struct store_rows *, int);
static void	oauth_exchanged(struct attempt *);
static void	oauth_stored(const struct store_rows *, void *, int);
static void	oauth_noted(const struct store_rows *, void *, int);
static void	oauth_fail(struct api_pending *, const char *, const char *);
static void	oauth_failed(const struct store_rows *, void *, int);
static void	oauth_page(struct api_pending *, int, const char *,
		    const char *);
static void	oauth_location(struct api_pending *, const char *,
		    const char *, const char *);
static void	oauth_wake(struct api_pending *);
static int	oauth_finish(struct http_request *, struct api_pending *);
static void	oauth_render(struct http_request *, int, const char *,
		    const char *);
static int	oauth_arg(struct http_request *, const char *, char *,
		    size_t);
static void	oauth_error_name(const char *, char *, size_t);
static void	oauth_field(const char *, const char *, char *, size_t);
static void	oauth_redirect_uri(char *, size_t);
static struct oauth_call	*oauth_call_new(const char *, const char *,
				    struct api_pending *);
static int	oauth_revoke(const struct source *, const char *,
		    const char *, struct api_pending *);
static void	oauth_revoked(struct attempt *);
static void	oauth_call_free(struct oauth_call *);
static void	oauth_del_sourced(struct api_pending *,
		    const struct store_rows *, int);
static void	oauth_del_refresh(struct api_pending *,
		    const struct store_rows *, int);
static void	oauth_del_revoked(struct attempt *);
static void	oauth_deleted(struct api_pending *,
		    const struct store_rows *, int);

/*
 * POST .../connections for an authorization_code source: root is the
 * body (ours to free). Answers 201 with the consent URL.
 */
int
api_oauth_start(struct http_request *req, struct api_state *st,
    yajl_val root)
{
	struct api_pending	*p;
	yajl_val		v;
	const char		*sp[] = { "subject", NULL };
	const char		*rp[] = { "return_to", NULL };
	const char		*tp[] = { "refresh_token", NULL };
	const char		*subject;

	if (yajl_tree_get(root, tp, yajl_t_any) != NULL) {
		yajl_tree_free(root);
		api_error(req, 409, "wrong_kind", "an authorization_code "
		    "source connects people by consent: no refresh_token");
		return (KORE_RESULT_OK);
	}
	v = yajl_tree_get(root, sp, yajl_t_string);
	subject = v != NULL ? YAJL_GET_STRING(v) : NULL;
	if (!YAJL_IS_OBJECT(root) || !conn_subject_valid(subject) ||
	    conn_is_default(subject)) {
		yajl_tree_free(root);
		api_error(req, 400, "invalid_field", "subject: expected "
		    "1-128 of A-Z a-z 0-9 . _ @ : - (not \"default\")");
		return (KORE_RESULT_OK);
	}

	/* No open redirect: return_to goes only to an allowed origin. */
	v = yajl_tree_get(root, rp, yajl_t_any);
	if (v != NULL && !YAJL_IS_NULL(v) && (!YAJL_IS_STRING(v) ||
	    !flow_origin_allowed(YAJL_GET_STRING(v),
	    kiln_config.return_to_allow))) {
		yajl_tree_free(root);
		api_error(req, 422, "invalid_field", "return_to: must be an "
		    "absolute URL of an origin in KILN_RETURN_TO_ALLOW");
		return (KORE_RESULT_OK);
	}
	if (kiln_config.public_url == NULL) {
		yajl_tree_free(root);
		api_error(req, 422, "invalid_config", "KILN_PUBLIC_URL: "
		    "required for authorization_code sources (the redirect "
		    "URI is {KILN_PUBLIC_URL}/oauth/callback)");
		return (KORE_RESULT_OK);
	}

	p = api_pending_start(req, st, oauth_sourced);
	p->body = root;
	(void)kore_strlcpy(st->subject, subject, sizeof(st->subject));
	store_source_full(st->name, api_pending_cb, p);
	return (KORE_RESULT_RETRY);
}

/* The source as stored: a verifier and a state, sealed and hashed. */
static void
oauth_sourced(struct api_pending *p, const struct store_rows *rows, int ok)
{
	struct api_state	*st;
	yajl_val		v;
	const char		*rp[] = { "return_to", NULL };
	char			verifier[FLOW_VERIFIER_LEN + 1];
	char			state[FLOW_STATE_LEN + 1];
	char			challenge[FLOW_CHALLENGE_LEN + 1];
	char			hash[65], field[32 + KILN_SUBJECT_MAX];
	char			redirect[600], *url, *sealed;

	if (!ok) {
		api_pending_fail(p, 503, "database_unavailable",
		    "the database did not answer; try again");
		return;
	}
	if (rows->source == NULL ||
	    rows->source->src.kind != KIND_AUTHORIZATION_CODE) {
		api_pending_fail(p, 404, "not_found", "unknown token source");
		return;
	}

	st = http_state_get(p->req);
	if (!flow_random(verifier, sizeof(verifier)) ||
	    !flow_random(state, sizeof(state)) ||
	    !flow_challenge(verifier, challenge, sizeof(challenge)) ||
	    !flow_state_hash(state, hash))
		fatal("flow: no randomness");

	oauth_redirect_uri(redirect, sizeof(redirect));
	url = flow_authorize_url(&rows->source->src, redirect, state,
	    challenge);
	OPENSSL_cleanse(state, sizeof(state));
	if (url == NULL) {
		OPENSSL_cleanse(verifier, sizeof(verifier));
		api_pending_fail(p, 422, "invalid_field",
		    "extra_authorize_params: not an object of strings");
		return;
	}
	p->secret = kore_strdup(url);		/* wiped with p */
	OPENSSL_cleanse(url, strlen(url));
	free(url);

	oauth_field("code_verifier", st->subject, field, sizeof(field));
	if (!seal_seal(p->name, field, verifier, strlen(verifier), &sealed))
		fatal("seal_seal failed");
	OPENSSL_cleanse(verifier, sizeof(verifier));

	v = yajl_tree_get(p->body, rp, yajl_t_string);
	p->version = isotime_now() + FLOW_TTL_MS;
	p->render = oauth_started;
	store_flow_start(p->name, hash, st->subject, sealed,
	    v != NULL ? YAJL_GET_STRING(v) : NULL, p->version, &p->who,
	    api_pending_cb, p);
	seal_wipe(sealed);
}

static void
oauth_started(struct api_pending *p, const struct store_rows *rows, int ok)
{
	struct api_state	*st;
	char			expires[ISOTIME_LEN];

	if (!ok) {
		api_pending_fail(p, 503, "database_unavailable",
		    "the database did not answer; try again");
		return;
	}
	if (rows->n == 0) {
		api_pending_fail(p, 404, "not_found", "unknown token source");
		return;
	}

	st = http_state_get(p->req);
	isotime_format(p->version, expires, sizeof(expires));
	p->g = api_json_begin();
	json_kv_bool(p->g, "success", 1);
	yajl_gen_string(p->g, (const unsigned char *)"data", 4);
	yajl_gen_map_open(p->g);
	json_kv_str(p->g, "subject", st->subject);
	json_kv_str(p->g, "state", "pending");
	json_kv_str(p->g, "authorization_url", p->secret);
	json_kv_str(p->g, "expires_at", expires);
	yajl_gen_map_close(p->g);
	p->status = 201;
	p->done = 1;
	log_kv(LOG_LVL_INFO, "connection consent started", "token", p->name,
	    "subject", st->subject, NULL);
}

/*
 * GET /oauth/callback: a browser back from the consent. The state is
 * taken first (once), whatever else the query says. While the steps
 * run, p->secret holds the code (then "verifier code") and p->html the
 * flow's return_to.
 */
int
api_oauth_callback(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;
	char			state[FLOW_STATE_LEN + 8], hash[65];
	char			code[OAUTH_ARG_MAX];

	if (!oauth_arg(req, "state", state, sizeof(state)) ||
	    strlen(state) != FLOW_STATE_LEN) {
		log_kv(LOG_LVL_WARN, "connection consent refused", "error",
		    "no state, or a malformed one", NULL);
		oauth_render(req, 400, "This sign-in cannot be completed",
		    "The link has no valid state: start connecting again.");
		return (KORE_RESULT_OK);
	}

	p = api_pending_start(req, st, oauth_taken);
	p->finish = oauth_finish;
	p->version = isotime_now();
	p->html = kore_buf_alloc(256);
	if (oauth_arg(req, "code", code, sizeof(code)) && code[0] != '\0')
		p->secret = kore_strdup(code);
	OPENSSL_cleanse(code, sizeof(code));

	if (!flow_state_hash(state, hash))
		fatal("flow_state_hash");
	store_flow_take(hash, api_pending_cb, p);
	return (KORE_RESULT_RETRY);
}

static void
oauth_taken(struct api_pending *p, const struct store_rows *rows, int ok)
{
	struct api_state	*st;
	const struct flow_row	*f;
	char			field[32 + KILN_SUBJECT_MAX];
	char			error[OAUTH_ERROR_MAX], *verifier, *both;
	size_t			len;

	if (!ok) {
		oauth_page(p, 503, "Please try again",
		    "The database did not answer.");
		return;
	}
	if (rows->n == 0) {
		log_kv(LOG_LVL_WARN, "connection consent refused", "error",
		    "unknown or already used state", NULL);
		oauth_page(p, 400, "This sign-in cannot be completed",
		    "The link is unknown, or was already used: start "
		    "connecting again.");
		return;
	}

	f = &rows->flows[0];
	st = http_state_get(p->req);
	(void)kore_strlcpy(p->name, f->name, sizeof(p->name));
	(void)kore_strlcpy(st->subject, f->subject, sizeof(st->subject));
	if (f->return_to != NULL)
		kore_buf_appendf(p->html, "%s", f->return_to);

	if (!f->live) {
		oauth_fail(p, "expired_state",
		    "the sign-in took longer than 10 minutes");
		return;
	}
	if (oauth_arg(p->req, "error", field, sizeof(field))) {
		oauth_error_name(field, error, sizeof(error));
		oauth_fail(p, error, "the consent was refused");
		return;
	}
	if (p->secret == NULL) {
		oauth_fail(p, "invalid_request", "the provider sent no code");
		return;
	}

	oauth_field("code_verifier", st->subject, field, sizeof(field));
	if (f->verifier_sealed == NULL || !seal_open(p->name, field,
	    f->verifier_sealed, &verifier, &len)) {
		oauth_fail(p, "server_error",
		    "the stored verifier cannot be opened");
		return;
	}
	len = strlen(verifier) + 1 + strlen(p->secret) + 1;
	both = kore_malloc(len);
	(void)snprintf(both, len, "%s %s", verifier, p->secret);
	seal_wipe(verifier);
	OPENSSL_cleanse(p->secret, strlen(p->secret));
	kore_free(p->secret);
	p->secret = both;

	p->render = oauth_exchange;
	store_source_full(p->name, api_pending_cb, p);
}

/* The code for tokens (RFC 6749 4.1.3), through the upstream layer. */
static void
oauth_exchange(struct api_pending *p, const struct store_rows *rows, int ok)
{
	struct api_state	*st;
	struct oauth_call	*c;
	char			redirect[600], err[KILN_ERR_MAX], *sp;

	if (!ok) {
		oauth_page(p, 503, "Please try again",
		    "The database did not answer.");
		return;
	}
	if (rows->source == NULL ||
	    rows->source->src.kind != KIND_AUTHORIZATION_CODE) {
		oauth_page(p, 404, "This sign-in cannot be completed",
		    "The token source is gone.");
		return;
	}
	if (!rows->source->opened) {
		oauth_fail(p, "server_error", rows->source->error);
		return;
	}

	st = http_state_get(p->req);
	c = oauth_call_new(p->name, st->subject, p);
	c->at.src = rows->source->src;
	memset(&rows->source->src, 0, sizeof(rows->source->src));

	oauth_redirect_uri(redirect, sizeof(redirect));
	sp = strchr(p->secret, ' ');
	if ((c->at.src.code_verifier = strndup(p->secret,
	    sp - p->secret)) == NULL || (c->at.src.code = strdup(sp + 1)) ==
	    NULL || (c->at.src.redirect_uri = strdup(redirect)) == NULL)
		fatal("strdup");

	if (!oauth_build(&c->at.src, &c->at.oreq, err, sizeof(err))) {
		oauth_call_free(c);
		oauth_fail(p, "server_error", err);
		return;
	}
	upstream_send(&c->at, oauth_exchanged);
}

static void
oauth_exchanged(struct attempt *at)
{
	struct oauth_call	*c = (struct oauth_call *)at;
	struct flow_commit	fc;
	const char		*token;
	char			field[32 + KILN_SUBJECT_MAX];
	char			origin[SOURCE_ORIGIN_MAX];
	int64_t			buffer;

	if (at->ok && at->ans.expires_ms <= at->sent_ms) {
		at->ok = 0;
		(void)snprintf(at->error, sizeof(at->error),
		    "upstream answer: token already expired");
	}
	if (!at->ok) {
		log_kv(LOG_LVL_WARN, "connection consent failed", "token",
		    at->name, "subject", at->subject, "error", at->error,
		    "#http_status", (int64_t)at->http_status, NULL);
		store_flow_failed(at->name, at->subject, at->started_ms,
		    at->duration_ms, at->http_status, at->error, oauth_noted,
		    NULL);
		if (c->p->req != NULL) {
			oauth_fail(c->p, "exchange_failed",
			    "the provider did not give a token for the code");
		}
		oauth_wake(c->p);
		c->p = NULL;
		oauth_call_free(c);
		return;
	}

	/* Sealed like the tokens of a refresh (refresh.c). */
	token = at->ans.token;
	seal_fingerprint(token, strlen(token), at->fpr);
	oauth_field("token", at->subject, field, sizeof(field));
	if (!seal_seal(at->name, field, token, strlen(token),
	    &at->sealed_token))
		fatal("seal_seal failed");
	source_origin(at->src.token_url, origin, sizeof(origin));
	oauth_field("refresh_token", at->subject, field, sizeof(field));
	if (at->ans.refresh_token != NULL && !seal_seal_for(at->name, field,
	    origin, at->ans.refresh_token, strlen(at->ans.refresh_token),
	    &at->sealed_refresh))
		fatal("seal_seal failed");

	buffer = at->src.refresh_buffer >= 0 ?
	    at->src.refresh_buffer * 1000 : kiln_config.refresh_buffer_ms;
	memset(&fc, 0, sizeof(fc));
	fc.name = at->name;
	fc.subject = at->subject;
	fc.sealed_token = at->sealed_token;
	fc.token_type = at->ans.token_type;
	fc.fingerprint = at->fpr;
	fc.obtained_ms = at->sent_ms;
	fc.expires_ms = at->ans.expires_ms;
	fc.refresh_ms = policy_refresh_at(at->sent_ms, at->ans.expires_ms,
	    buffer, policy_random());
	fc.sealed_refresh = at->sealed_refresh;
	fc.started_ms = at->started_ms;
	fc.duration_ms = at->duration_ms;
	fc.http_status = at->http_status;
	store_flow_done(&fc, oauth_stored, c);
}

static void
oauth_stored(const struct store_rows *rows, void *arg, int ok)
{
	struct oauth_call	*c = arg;
	struct api_pending	*p = c->p;
	char			text[256];

	if (!ok || rows->n == 0) {
		log_kv(LOG_LVL_ERROR, "connection consent not stored",
		    "token", c->at.name, "subject", c->at.subject, NULL);
		/* oauth_fail() answers once it stored the event. */
		if (p->req != NULL)
			oauth_fail(p, "server_error",
			    "the token could not be stored");
		else
			oauth_wake(p);
		c->p = NULL;
		oauth_call_free(c);
		return;
	}

	log_kv(LOG_LVL_INFO, "connection connected", "token", c->at.name,
	    "subject", c->at.subject, "fingerprint", c->at.fpr, NULL);
	webhook_kick(0);		/* token.refreshed, if asked for */
	/* The grant it replaces is revoked, off the request's path. */
	if (rows->flows[0].refresh_sealed != NULL &&
	    c->at.src.revocation_url != NULL)
		(void)oauth_revoke(&c->at.src, c->at.subject,
		    rows->flows[0].refresh_sealed, NULL);

	if (p->req != NULL && p->html->offset > 0) {
		oauth_location(p, "connected", "subject", c->at.subject);
	} else if (p->req != NULL) {
		(void)snprintf(text, sizeof(text), "%s is connected to %s.",
		    c->at.subject, c->at.name);
		oauth_page(p, 200, "Connected", text);
	}
	oauth_wake(p);
	c->p = NULL;
	oauth_call_free(c);
}

static void
oauth_noted(const struct store_rows *rows, void *arg, int ok)
{
	if (!ok)
		log_kv(LOG_LVL_WARN, "consent event not stored", NULL);
}

/*
 * A failed consent: an event on the subject, nothing stored; the
 * browser goes back to return_to with the error, or sees a page. The
 * answer waits for the event, and for the pending connection's removal
 * with it (a client that lists connections on its return sees them
 * settled): oauth_failed() wakes the request. A failed exchange
 * (exchange_failed) has its event stored by its caller, and is
 * answered by it.
 */
static void
oauth_fail(struct api_pending *p, const char *error, const char *why)
{
	struct api_state	*st;
	char			text[512];

	st = http_state_get(p->req);
	if (p->html->offset > 0) {
		oauth_location(p, "failed", "error", error);
	} else {
		(void)snprintf(text, sizeof(text), "%s could not be "
		    "connected to %s: %s (%s).", st->subject, p->name, why,
		    error);
		oauth_page(p, 400, "Not connected", text);
	}
	if (!strcmp(error, "exchange_failed"))
		return;

	log_kv(LOG_LVL_WARN, "connection consent failed", "token", p->name,
	    "subject", st->subject, "error", error, NULL);
	(void)snprintf(text, sizeof(text), "%s: %s", error, why);
	p->done = 0;
	store_flow_failed(p->name, st->subject, p->version,
	    isotime_now() - p->version, 0, text, oauth_failed, p);
}

/* The event of a failed consent is stored (or not): answer now. */
static void
oauth_failed(const struct store_rows *rows, void *arg, int ok)
{
	oauth_noted(rows, NULL, ok);
	oauth_wake(arg);
}

/* The page the browser sees (title and text escaped when rendered). */
static void
oauth_page(struct api_pending *p, int status, const char *title,
    const char *text)
{
	char		*t, *x;

	t = flow_html_escape(title);
	x = flow_html_escape(text);
	if (t == NULL || x == NULL)
		fatal("flow_html_escape");
	kore_buf_reset(p->html);
	kore_buf_appendf(p->html, "<!doctype html><html lang=\"en\"><head>"
	    "<meta charset=\"utf-8\"><title>%s</title></head><body "
	    "style=\"font-family:sans-serif;margin:3em\"><h1>%s</h1>"
	    "<p>%s</p></body></html>", t, t, x);
	free(t);
	free(x);
	p->status = status;
	p->upstream = 0;			/* a page, not a Location */
	p->done = 1;
}

/* Back to return_to (kept in p->html), with what happened. */
static void
oauth_location(struct api_pending *p, const char *what, const char *key,
    const char *value)
{
	char		*url, *to;

	to = kore_buf_stringify(p->html, NULL);
	if ((url = flow_return_url(to, what, key, value)) == NULL)
		fatal("flow_return_url");
	kore_buf_reset(p->html);
	kore_buf_appendf(p->html, "%s", url);
	free(url);
	p->status = 303;
	p->upstream = 1;			/* p->html is the Location */
	p->done = 1;
}

/* A step that ran outside api_pending_cb: answer, or free if gone. */
static void
oauth_wake(struct api_pending *p)
{
	if (p->req == NULL) {
		api_pending_free(p);
		return;
	}
	p->done = 1;
	http_request_wakeup(p->req);
}

static int
oauth_finish(struct http_request *req, struct api_pending *p)
{
	if (p->upstream) {
		http_response_header(req, "Location",
		    kore_buf_stringify(p->html, NULL));
		http_response_header(req, "Cache-Control", "no-store");
		http_response_header(req, "Referrer-Policy", "no-referrer");
		http_response(req, 303, NULL, 0);
		return (1);
	}

	http_response_header(req, "Content-Type", "text/html; charset=utf-8");
	http_response_header(req, "Cache-Control", "no-store");
	http_response_header(req, "Content-Security-Policy", OAUTH_CSP);
	http_response_header(req, "X-Content-Type-Options", "nosniff");
	http_response_header(req, "Referrer-Policy", "no-referrer");
	http_response(req, p->status, p->html->data, p->html->offset);
	return (1);
}

/* A page at once, for a callback refused before any step. */
static void
oauth_render(struct http_request *req, int status, const char *title,
    const char *text)
{
	struct api_pending	p;

	memset(&p, 0, sizeof(p));
	p.html = kore_buf_alloc(512);
	oauth_page(&p, status, title, text);
	(void)oauth_finish(req, &p);
	kore_buf_free(p.html);
}

/*
 * A query argument, percent-decoded, into out; 0 when absent, too long
 * or not text.
 */
static int
oauth_arg(struct http_request *req, const char *key, char *out, size_t len)
{
	return (qs_get(req->query_string, key, out, len) == 1);
}

/* An upstream's error name as kiln repeats it: [a-z0-9_], short. */
static void
oauth_error_name(const char *in, char *out, size_t len)
{
	size_t		i;

	for (i = 0; in[i] != '\0' && i + 1 < len; i++) {
		out[i] = (in[i] >= 'a' && in[i] <= 'z') || in[i] == '_' ||
		    (in[i] >= '0' && in[i] <= '9') ? in[i] : '_';
	}
	out[i] = '\0';
	if (i == 0)
		(void)kore_strlcpy(out, "error", len);
}

/* A connection's sealed values are bound to its subject (conn.c). */
static void
oauth_field(const char *field, const char *subject, char *out, size_t len)
{
	if (!conn_field(field, subject, out, len))
		fatal("conn_field");
}

static void
oauth_redirect_uri(char *out, size_t len)
{
	(void)snprintf(out, len, "%s%s", kiln_config.public_url,
	    OAUTH_CALLBACK);
}

static struct oauth_call *
oauth_call_new(const char *name, const char *subject, struct api_pending *p)
{
	struct oauth_call	*c;

	c = kore_calloc(1, sizeof(*c));
	c->p = p;
	(void)kore_strlcpy(c->at.name, name, sizeof(c->at.name));
	(void)kore_strlcpy(c->at.subject, subject, sizeof(c->at.subject));
	c->at.trigger = OAUTH_TRIGGER;
	c->at.started_ms = isotime_now();

	return (c);
}

/*
 * RFC 7009: revoke the refresh token sealed (for src's token origin)
 * of subject at src's revocation_url. With p, the answer goes on to
 * oauth_del_revoked; without, it is only logged. 0: nothing was sent.
 */
static int
oauth_revoke(const struct source *src, const char *subject,
    const char *sealed, struct api_pending *p)
{
	struct oauth_call	*c;
	char			origin[SOURCE_ORIGIN_MAX];
	char			field[32 + KILN_SUBJECT_MAX], *token;
	size_t			len;

	if (src->revocation_url == NULL || sealed == NULL)
		return (0);

	source_origin(src->token_url, origin, sizeof(origin));
	oauth_field("refresh_token", subject, field, sizeof(field));
	if (!seal_open_for(src->name, field, origin, sealed, &token, &len)) {
		log_kv(LOG_LVL_WARN, "connection not revoked", "token",
		    src->name, "subject", subject, "error",
		    "stored refresh token cannot be opened", NULL);
		return (0);
	}

	c = oauth_call_new(src->name, subject, p);
	c->at.trigger = "revoke";
	/* The call goes to revocation_url, with the source's TLS. */
	if ((c->at.src.token_url = strdup(src->revocation_url)) == NULL ||
	    (c->at.src.client_id = strdup(src->client_id)) == NULL ||
	    (src->client_secret != NULL && (c->at.src.client_secret =
	    strdup(src->client_secret)) == NULL))
		fatal("strdup");
	c->at.src.auth_method = src->auth_method;
	c->at.src.kind = src->kind;
	(void)kore_strlcpy(c->at.src.name, src->name,
	    sizeof(c->at.src.name));
	if (!flow_revoke_body(&c->at.src, token, &c->at.oreq))
		fatal("flow_revoke_body");
	seal_wipe(token);

	upstream_send(&c->at, p != NULL ? oauth_del_revoked : oauth_revoked);
	return (1);
}

static void
oauth_revoked(struct attempt *at)
{
	/* RFC 7009 2.2: 200 with no body, also for an unknown token. */
	log_kv(at->http_status == 200 ? LOG_LVL_INFO : LOG_LVL_WARN,
	    at->http_status == 200 ? "connection grant revoked" :
	    "connection grant not revoked", "token", at->name, "subject",
	    at->subject, "#http_status", (int64_t)at->http_status, NULL);
	oauth_call_free((struct oauth_call *)at);
}

static void
oauth_call_free(struct oauth_call *c)
{
	source_free(&c->at.src);
	oauth_request_free(&c->at.oreq);
	oauth_answer_free(&c->at.ans);
	seal_wipe(c->at.sealed_token);
	seal_wipe(c->at.sealed_refresh);
	kore_free(c);
}

/*
 * DELETE .../connections/{subject} of an authorization_code source:
 * the grant is revoked upstream first (when the source has a
 * revocation_url), then the connection deleted.
 */
int
api_oauth_delete(struct http_request *req, struct api_state *st)
{
	store_source_full(st->name, api_pending_cb,
	    api_pending_start(req, st, oauth_del_sourced));
	return (KORE_RESULT_RETRY);
}

static void
oauth_del_sourced(struct api_pending *p, const struct store_rows *rows,
    int ok)
{
	struct api_state	*st;

	if (!ok) {
		api_pending_fail(p, 503, "database_unavailable",
		    "the database did not answer; try again");
		return;
	}
	st = http_state_get(p->req);
	if (rows->source == NULL || rows->source->src.revocation_url == NULL ||
	    !rows->source->opened) {
		p->render = oauth_deleted;
		store_conn_delete(p->name, st->subject, &p->who,
		    api_pending_cb, p);
		return;
	}

	source_free(&p->src);
	p->src = rows->source->src;
	memset(&rows->source->src, 0, sizeof(rows->source->src));
	p->render = oauth_del_refresh;
	store_flow_refresh(p->name, st->subject, api_pending_cb, p);
}

static void
oauth_del_refresh(struct api_pending *p, const struct store_rows *rows,
    int ok)
{
	struct api_state	*st;

	if (!ok) {
		api_pending_fail(p, 503, "database_unavailable",
		    "the database did not answer; try again");
		return;
	}
	if (rows->n == 0) {
		api_pending_fail(p, 404, "not_found", "unknown connection");
		return;
	}

	st = http_state_get(p->req);
	if (oauth_revoke(&p->src, st->subject, rows->flows[0].refresh_sealed,
	    p))
		return;			/* oauth_del_revoked goes on */

	p->render = oauth_deleted;
	store_conn_delete(p->name, st->subject, &p->who, api_pending_cb, p);
}

static void
oauth_del_revoked(struct attempt *at)
{
	struct oauth_call	*c = (struct oauth_call *)at;
	struct api_pending	*p = c->p;
	struct api_state	*st;

	p->with_refresh = at->http_status == 200;	/* revoked */
	c->p = NULL;
	oauth_revoked(at);
	if (p->req == NULL) {
		api_pending_free(p);
		return;
	}

	st = http_state_get(p->req);
	p->render = oauth_deleted;
	store_conn_delete(p->name, st->subject, &p->who, api_pending_cb, p);
}

static void
oauth_deleted(struct api_pending *p, const struct store_rows *rows, int ok)
{
	struct api_state	*st;

	if (!ok) {
		api_pending_fail(p, 503, "database_unavailable",
		    "the database did not answer; try again");
		return;
	}
	if (rows->n == 0) {
		api_pending_fail(p, 404, "not_found", "unknown connection");
		return;
	}

	st = http_state_get(p->req);
	p->g = api_json_begin();
	json_kv_bool(p->g, "success", 1);
	yajl_gen_string(p->g, (const unsigned char *)"data", 4);
	yajl_gen_map_open(p->g);
	json_kv_str(p->g, "subject", st->subject);
	json_kv_bool(p->g, "deleted", 1);
	json_kv_bool(p->g, "revoked", p->with_refresh);
	yajl_gen_map_close(p->g);
	p->status = 200;
	p->done = 1;
}
