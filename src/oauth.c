/*
 * oauth.c: what each upstream kind sends, and what we read from the answer.
 * Errors never carry a token, a secret or upstream bytes, except the short
 * OAuth error code, sanitized.
 */

#include <sys/types.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <yajl/yajl_gen.h>

#include "kiln.h"

#define OAUTH_BODY_MAX		(1024 * 1024)
#define OAUTH_TOKEN_MAX		16384
#define OAUTH_LIFETIME_MAX	31536000
#define OAUTH_ERROR_MAX		64
#define OAUTH_EPOCH_MAX		253402300799LL	/* 9999-12-31T23:59:59Z */
#define OAUTH_FORM		"application/x-www-form-urlencoded"
#define OAUTH_JSON		"application/json"
#define OAUTH_TX_GRANT	"urn:ietf:params:oauth:grant-type:token-exchange"
#define OAUTH_JWT_BEARER	"urn:ietf:params:oauth:grant-type:jwt-bearer"
#define OAUTH_ASSERTION_TYPE	\
	"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define OAUTH_CLIENT_JWT_LIFE	60	/* RFC 7523 3: short-lived */
#define OAUTH_GRANT_JWT_LIFE	3600	/* Google's maximum */

struct obuf {
	char		*data;
	size_t		len;
	size_t		cap;
};

static int	build_form(const struct source *, struct oauth_request *,
		    char *, size_t);
static int	build_json(const struct source *, struct oauth_request *,
		    char *, size_t);
static int	build_basic(const char *, const char *, char **);
static int	build_exchange(const struct source *, struct obuf *);
static int	build_device(const struct source *, struct obuf *);
static int	build_jwt(const struct source *, struct obuf *, int, char *,
		    size_t);
static int	answer_token(const struct source *, yajl_val,
		    struct oauth_answer *, char *, size_t);
static void	answer_token_type(yajl_val, struct oauth_answer *);
static int	answer_refresh(const struct source *, yajl_val,
		    struct oauth_answer *, char *, size_t);
static void	answer_expiry(const struct source *, yajl_val, int64_t,
		    struct oauth_answer *);
static int	expires_in_value(yajl_val, int64_t *);
static int	expires_at_value(yajl_val, int64_t *);
static void	answer_wipe(const struct source *, yajl_val);
static int	form_add(struct obuf *, const char *, const char *);
static int	obuf_add(struct obuf *, const void *, size_t);
static int	obuf_pct(struct obuf *, const char *);
static void	obuf_wipe(struct obuf *);

int
oauth_build(const struct source *src, struct oauth_request *req, char *err,
    size_t errlen)
{
	memset(req, 0, sizeof(*req));

	if (err != NULL && errlen > 0)
		err[0] = '\0';

	switch (src->kind) {
	case KIND_CLIENT_CREDENTIALS:
	case KIND_REFRESH_TOKEN:
	case KIND_PASSWORD:
	case KIND_TOKEN_EXCHANGE:
	case KIND_JWT_BEARER:
	case KIND_AUTHORIZATION_CODE:
	case KIND_DEVICE_CODE:
		return (build_form(src, req, err, errlen));
	case KIND_JSON_LOGIN:
		return (build_json(src, req, err, errlen));
	}

	json_seterr(err, errlen, "kind: unknown");

	return (KORE_RESULT_ERROR);
}

void
oauth_request_free(struct oauth_request *req)
{
	if (req == NULL)
		return;

	if (req->body != NULL) {
		OPENSSL_cleanse(req->body, req->len);
		free(req->body);
	}

	seal_wipe(req->authorization);
	memset(req, 0, sizeof(*req));
}

int
oauth_parse(const struct source *src, const char *body, size_t len,
    int64_t sent_ms, struct oauth_answer *ans, char *err, size_t errlen)
{
	yajl_val	root;
	int		ret;

	memset(ans, 0, sizeof(*ans));
	ret = KORE_RESULT_ERROR;
	root = NULL;

	if (err != NULL && errlen > 0)
		err[0] = '\0';

	if (len > OAUTH_BODY_MAX) {
		json_seterr(err, errlen, "answer is too large");
		return (KORE_RESULT_ERROR);
	}

	if (body == NULL || len == 0) {
		json_seterr(err, errlen, "answer is not JSON");
		return (KORE_RESULT_ERROR);
	}

	if (!json_depth_ok(body, len)) {
		json_seterr(err, errlen, "answer is nested too deeply");
		return (KORE_RESULT_ERROR);
	}

	if ((root = json_parse(body, len)) == NULL || !YAJL_IS_OBJECT(root)) {
		json_seterr(err, errlen, "answer is not JSON");
		goto cleanup;
	}

	if (!answer_token(src, root, ans, err, errlen))
		goto cleanup;
	if (!answer_refresh(src, root, ans, err, errlen))
		goto cleanup;

	answer_token_type(root, ans);
	answer_expiry(src, root, sent_ms, ans);

	ret = KORE_RESULT_OK;

cleanup:
	if (root != NULL) {
		answer_wipe(src, root);
		yajl_tree_free(root);
	}

	if (ret != KORE_RESULT_OK)
		oauth_answer_free(ans);

	return (ret);
}

void
oauth_answer_free(struct oauth_answer *ans)
{
	if (ans == NULL)
		return;

	seal_wipe(ans->token);
	seal_wipe(ans->refresh_token);
	memset(ans, 0, sizeof(*ans));
}

static int
build_form(const struct source *src, struct oauth_request *req, char *err,
    size_t errlen)
{
	struct obuf	b;
	const char	*missing;
	int		ok;

	memset(&b, 0, sizeof(b));
	missing = NULL;

	switch (src->kind) {
	case KIND_CLIENT_CREDENTIALS:
		if (src->client_id == NULL)
			missing = "client_id";
		else if (src->client_secret == NULL &&
		    !mtls_method(src->auth_method) &&
		    src->auth_method != AUTH_PRIVATE_KEY_JWT)
			missing = "client_secret";
		break;
	case KIND_JWT_BEARER:
		if (src->private_key == NULL)
			missing = "private_key";
		break;
	case KIND_REFRESH_TOKEN:
		if (src->refresh_token == NULL)
			missing = "refresh_token";
		break;
	case KIND_AUTHORIZATION_CODE:
		/* The code once (with its verifier), then refreshes. */
		if (src->code != NULL && src->code_verifier == NULL)
			missing = "code_verifier";
		else if (src->code != NULL && src->redirect_uri == NULL)
			missing = "redirect_uri";
		else if (src->code == NULL && src->refresh_token == NULL)
			missing = "refresh_token";
		break;
	case KIND_TOKEN_EXCHANGE:
		if (src->subject_token == NULL)
			missing = "subject_token";
		else if (src->actor_source != NULL &&
		    src->actor_token == NULL)
			missing = "actor_token";
		break;
	case KIND_PASSWORD:
		if (src->username == NULL)
			missing = "username";
		else if (src->password == NULL)
			missing = "password";
		break;
	case KIND_DEVICE_CODE:
		if (src->client_id == NULL)
			missing = "client_id";
		break;
	}

	if (missing == NULL && src->auth_method == AUTH_PRIVATE_KEY_JWT &&
	    src->private_key == NULL)
		missing = "private_key";

	if (missing != NULL) {
		json_seterr(err, errlen, "%s: missing", missing);
		return (KORE_RESULT_ERROR);
	}

	switch (src->kind) {
	case KIND_CLIENT_CREDENTIALS:
		ok = form_add(&b, "grant_type", "client_credentials") &&
		    form_add(&b, "scope", src->scope) &&
		    form_add(&b, "audience", src->audience) &&
		    form_add(&b, "resource", src->resource);
		break;
	case KIND_REFRESH_TOKEN:
		ok = form_add(&b, "grant_type", "refresh_token") &&
		    form_add(&b, "refresh_token", src->refresh_token) &&
		    form_add(&b, "scope", src->scope);
		break;
	case KIND_AUTHORIZATION_CODE:
		if (src->code != NULL) {
			ok = form_add(&b, "grant_type", "authorization_code") &&
			    form_add(&b, "code", src->code) &&
			    form_add(&b, "redirect_uri", src->redirect_uri) &&
			    form_add(&b, "code_verifier", src->code_verifier);
		} else {
			ok = form_add(&b, "grant_type", "refresh_token") &&
			    form_add(&b, "refresh_token", src->refresh_token);
		}
		ok = ok && form_add(&b, "resource", src->resource);
		break;
	case KIND_TOKEN_EXCHANGE:
		ok = build_exchange(src, &b);
		break;
	case KIND_DEVICE_CODE:
		ok = build_device(src, &b);
		break;
	case KIND_JWT_BEARER:
		if (!form_add(&b, "grant_type", OAUTH_JWT_BEARER) ||
		    !build_jwt(src, &b, 1, err, errlen))
			goto fail;
		ok = 1;
		break;
	default:
		ok = form_add(&b, "grant_type", "password") &&
		    form_add(&b, "username", src->username) &&
		    form_add(&b, "password", src->password) &&
		    form_add(&b, "scope", src->scope);
		break;
	}

	if (ok && src->client_id != NULL) {
		if (src->auth_method == AUTH_PRIVATE_KEY_JWT) {
			if (!form_add(&b, "client_id", src->client_id) ||
			    !form_add(&b, "client_assertion_type",
			    OAUTH_ASSERTION_TYPE) ||
			    !build_jwt(src, &b, 0, err, errlen))
				goto fail;
		} else if (src->auth_method == AUTH_SECRET_BASIC) {
			ok = build_basic(src->client_id, src->client_secret,
			    &req->authorization);
		} else if (mtls_method(src->auth_method)) {
			/* RFC 8705 §2: the certificate proves, the id names. */
			ok = form_add(&b, "client_id", src->client_id);
		} else {
			ok = form_add(&b, "client_id", src->client_id) &&
			    form_add(&b, "client_secret", src->client_secret);
		}
	}

	if (!ok) {
		obuf_wipe(&b);
		oauth_request_free(req);
		json_seterr(err, errlen, "request: out of memory");
		return (KORE_RESULT_ERROR);
	}

	req->body = b.data;
	req->len = b.len;
	req->content_type = OAUTH_FORM;

	return (KORE_RESULT_OK);

fail:
	obuf_wipe(&b);
	oauth_request_free(req);
	if (err != NULL && err[0] == '\0')
		json_seterr(err, errlen, "request: out of memory");
	return (KORE_RESULT_ERROR);
}

/*
 * A signed JWT into the form: the authorization grant "assertion" of
 * jwt_bearer (RFC 7523 2.1), or the "client_assertion" of
 * private_key_jwt (2.2), whose iss and sub are the client id.
 */
static int
build_jwt(const struct source *src, struct obuf *b, int grant, char *err,
    size_t errlen)
{
	struct jws_claims	c;
	struct jws_key		key;
	char			*jwt;
	int			ok;

	if (!jws_key_load(src->private_key, src->key_alg, &key, err, errlen))
		return (KORE_RESULT_ERROR);

	memset(&c, 0, sizeof(c));
	c.aud = src->assertion_audience != NULL ?
	    src->assertion_audience : src->token_url;
	c.iat = isotime_now() / 1000;
	if (grant) {
		c.iss = src->issuer != NULL ? src->issuer : src->client_id;
		c.sub = src->subject != NULL ? src->subject : c.iss;
		c.scope = src->scope;
		c.target_audience = src->target_audience;
		c.exp = c.iat + OAUTH_GRANT_JWT_LIFE;
	} else {
		c.iss = src->client_id;
		c.sub = src->client_id;
		c.exp = c.iat + OAUTH_CLIENT_JWT_LIFE;
	}

	ok = jws_assertion(&key, src->key_id, &c, &jwt, err, errlen);
	jws_key_free(&key);
	if (!ok)
		return (KORE_RESULT_ERROR);

	ok = form_add(b, grant ? "assertion" : "client_assertion", jwt);
	seal_wipe(jwt);

	return (ok);
}

/* RFC 8693 §2.1: the subject (and actor) token of other sources. */
static int
build_exchange(const struct source *src, struct obuf *b)
{
	const char	*stt, *att;

	stt = src->subject_token_type != NULL ? src->subject_token_type :
	    TX_ACCESS_TOKEN;
	att = src->actor_token_type != NULL ? src->actor_token_type :
	    TX_ACCESS_TOKEN;

	return (form_add(b, "grant_type", OAUTH_TX_GRANT) &&
	    form_add(b, "subject_token", src->subject_token) &&
	    form_add(b, "subject_token_type", stt) &&
	    form_add(b, "requested_token_type", src->requested_token_type) &&
	    form_add(b, "audience", src->audience) &&
	    form_add(b, "resource", src->resource) &&
	    form_add(b, "scope", src->scope) &&
	    form_add(b, "actor_token", src->actor_token) &&
	    form_add(b, "actor_token_type", src->actor_token != NULL ?
	    att : NULL));
}

/*
 * device_code (RFC 8628): with the device code of a flow, its poll
 * (3.4); with the connection's refresh token, a refresh; with neither,
 * the device authorization request (3.1).
 */
static int
build_device(const struct source *src, struct obuf *b)
{
	if (src->device_code != NULL)
		return (form_add(b, "grant_type", DEVCODE_GRANT) &&
		    form_add(b, "device_code", src->device_code));
	if (src->refresh_token != NULL)
		return (form_add(b, "grant_type", "refresh_token") &&
		    form_add(b, "refresh_token", src->refresh_token) &&
		    form_add(b, "scope", src->scope));

	return (form_add(b, "scope", src->scope) &&
	    form_add(b, "audience", src->audience) &&
	    form_add(b, "resource", src->resource));
}

/* yajl_gen escapes; its buffers are wiped since they hold the password. */
static int
build_json(const struct source *src, struct oauth_request *req, char *err,
    size_t errlen)
{
	yajl_alloc_funcs	funcs;
	const unsigned char	*out;
	size_t			len;
	yajl_gen		gen;
	int			ret;

	if (src->username == NULL || src->password == NULL) {
		json_seterr(err, errlen, "%s: missing",
		    src->username == NULL ? "username" : "password");
		return (KORE_RESULT_ERROR);
	}

	json_wipe_funcs(&funcs);

	if ((gen = yajl_gen_alloc(&funcs)) == NULL) {
		json_seterr(err, errlen, "request: out of memory");
		return (KORE_RESULT_ERROR);
	}

	ret = KORE_RESULT_ERROR;
	(void)yajl_gen_config(gen, yajl_gen_validate_utf8, 1);

	if (yajl_gen_map_open(gen) != yajl_gen_status_ok ||
	    yajl_gen_string(gen, (const unsigned char *)"username", 8) !=
	    yajl_gen_status_ok)
		goto nomem;
	if (yajl_gen_string(gen, (const unsigned char *)src->username,
	    strlen(src->username)) != yajl_gen_status_ok) {
		json_seterr(err, errlen, "username: not valid UTF-8");
		goto cleanup;
	}
	if (yajl_gen_string(gen, (const unsigned char *)"password", 8) !=
	    yajl_gen_status_ok)
		goto nomem;
	if (yajl_gen_string(gen, (const unsigned char *)src->password,
	    strlen(src->password)) != yajl_gen_status_ok) {
		json_seterr(err, errlen, "password: not valid UTF-8");
		goto cleanup;
	}
	if (yajl_gen_map_close(gen) != yajl_gen_status_ok ||
	    yajl_gen_get_buf(gen, &out, &len) != yajl_gen_status_ok)
		goto nomem;

	if ((req->body = malloc(len + 1)) == NULL)
		goto nomem;

	memcpy(req->body, out, len);
	req->body[len] = '\0';
	req->len = len;
	req->content_type = OAUTH_JSON;

	ret = KORE_RESULT_OK;
	goto cleanup;

nomem:
	json_seterr(err, errlen, "request: out of memory");

cleanup:
	yajl_gen_free(gen);

	return (ret);
}

/* RFC 6749 2.3.1: id and secret are form-encoded before base64. */
static int
build_basic(const char *id, const char *secret, char **out)
{
	struct obuf	b;
	size_t		len;
	int		ret;
	char		*hdr;

	memset(&b, 0, sizeof(b));
	ret = KORE_RESULT_ERROR;
	hdr = NULL;

	if (!obuf_pct(&b, id) || !obuf_add(&b, ":", 1) ||
	    (secret != NULL && !obuf_pct(&b, secret)))
		goto cleanup;

	len = 4 * ((b.len + 2) / 3);
	if ((hdr = malloc(6 + len + 1)) == NULL)
		goto cleanup;

	memcpy(hdr, "Basic ", 6);
	(void)EVP_EncodeBlock((unsigned char *)hdr + 6,
	    (const unsigned char *)b.data, (int)b.len);

	*out = hdr;
	ret = KORE_RESULT_OK;

cleanup:
	obuf_wipe(&b);

	return (ret);
}

static int
answer_token(const struct source *src, yajl_val root,
    struct oauth_answer *ans, char *err, size_t errlen)
{
	const char	*path, *s;
	size_t		i, len;
	yajl_val	v, e;
	char		code[OAUTH_ERROR_MAX + 1];

	path = (src->token_path != NULL) ? src->token_path : "access_token";
	v = json_path_get(root, path);

	if (!YAJL_IS_STRING(v) || YAJL_GET_STRING(v)[0] == '\0') {
		e = json_path_get(root, "error");
		if (YAJL_IS_STRING(e) && YAJL_GET_STRING(e)[0] != '\0') {
			s = YAJL_GET_STRING(e);
			for (i = 0; s[i] != '\0' && i < OAUTH_ERROR_MAX; i++)
				code[i] = (s[i] >= 0x20 && s[i] < 0x7f) ?
				    s[i] : '?';
			code[i] = '\0';
			json_seterr(err, errlen, "upstream error: %s", code);
		} else if (v == NULL || YAJL_IS_NULL(v)) {
			json_seterr(err, errlen, "answer has no token at %s",
			    path);
		} else if (!YAJL_IS_STRING(v)) {
			json_seterr(err, errlen, "token at %s is not a string",
			    path);
		} else {
			json_seterr(err, errlen, "token at %s is empty", path);
		}
		return (KORE_RESULT_ERROR);
	}

	s = YAJL_GET_STRING(v);
	len = strlen(s);

	if (len > OAUTH_TOKEN_MAX) {
		json_seterr(err, errlen, "token at %s is too long", path);
		return (KORE_RESULT_ERROR);
	}

	/* It goes into Authorization headers: no spaces, no controls. */
	for (i = 0; i < len; i++) {
		if (s[i] <= 0x20 || s[i] >= 0x7f) {
			json_seterr(err, errlen,
			    "token at %s has invalid characters", path);
			return (KORE_RESULT_ERROR);
		}
	}

	if ((ans->token = strdup(s)) == NULL) {
		json_seterr(err, errlen, "answer: out of memory");
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

static void
answer_token_type(yajl_val root, struct oauth_answer *ans)
{
	const char	*s;
	size_t		i;
	yajl_val	v;

	(void)snprintf(ans->token_type, sizeof(ans->token_type), "Bearer");

	v = json_path_get(root, "token_type");
	if (!YAJL_IS_STRING(v))
		return;

	s = YAJL_GET_STRING(v);
	if (s[0] == '\0' || strlen(s) >= sizeof(ans->token_type) ||
	    !strcasecmp(s, "bearer"))
		return;

	for (i = 0; s[i] != '\0'; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '-' || s[i] == '_' || s[i] == '.'))
			return;
	}

	(void)snprintf(ans->token_type, sizeof(ans->token_type), "%s", s);
}

/*
 * A rotated refresh token. For the refresh_token kind a bad one is an
 * error: keeping the old one would fail the next refresh anyway.
 */
static int
answer_refresh(const struct source *src, yajl_val root,
    struct oauth_answer *ans, char *err, size_t errlen)
{
	const char	*s;
	size_t		len;
	yajl_val	v;

	v = json_path_get(root, "refresh_token");
	if (v == NULL || YAJL_IS_NULL(v))
		return (KORE_RESULT_OK);

	s = YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
	len = (s != NULL) ? strlen(s) : 0;

	if (s == NULL || len > OAUTH_TOKEN_MAX) {
		if (src->kind != KIND_REFRESH_TOKEN &&
		    src->kind != KIND_AUTHORIZATION_CODE)
			return (KORE_RESULT_OK);
		json_seterr(err, errlen, "refresh_token in answer is %s",
		    s == NULL ? "not a string" : "too long");
		return (KORE_RESULT_ERROR);
	}

	if (len == 0)
		return (KORE_RESULT_OK);

	if ((ans->refresh_token = strdup(s)) == NULL) {
		json_seterr(err, errlen, "answer: out of memory");
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

/* An expiry at or before the request was sent is unusable: fall through. */
static void
answer_expiry(const struct source *src, yajl_val root, int64_t sent_ms,
    struct oauth_answer *ans)
{
	const char	*path;
	int64_t		v, lifetime;

	path = (src->expires_in_path != NULL) ?
	    src->expires_in_path : "expires_in";
	if (expires_in_value(json_path_get(root, path), &v)) {
		ans->expires_ms = sent_ms + v * 1000;
		ans->expiry_from = "expires_in";
		return;
	}

	if (src->expires_at_path != NULL &&
	    expires_at_value(json_path_get(root, src->expires_at_path),
	    &v) && v > sent_ms) {
		ans->expires_ms = v;
		ans->expiry_from = "expires_at";
		return;
	}

	if (jwt_exp_unverified(ans->token, &v) && v > sent_ms) {
		ans->expires_ms = v;
		ans->expiry_from = "jwt";
		return;
	}

	lifetime = src->fallback_lifetime;
	if (lifetime <= 0 || lifetime > OAUTH_LIFETIME_MAX)
		lifetime = 900;

	ans->expires_ms = sent_ms + lifetime * 1000;
	ans->expiry_from = "fallback";
}

/* Seconds, as an integer, a whole double, or a string of digits. */
static int
expires_in_value(yajl_val v, int64_t *secs)
{
	const char	*s;
	int64_t		n;
	double		d;

	if (YAJL_IS_INTEGER(v)) {
		n = YAJL_GET_INTEGER(v);
	} else if (YAJL_IS_DOUBLE(v)) {
		d = YAJL_GET_DOUBLE(v);
		if (!isfinite(d) || d < 1.0 || d > OAUTH_LIFETIME_MAX)
			return (KORE_RESULT_ERROR);
		n = (int64_t)d;
	} else if (YAJL_IS_STRING(v)) {
		s = YAJL_GET_STRING(v);
		n = 0;
		if (*s == '\0' || strlen(s) > 10)
			return (KORE_RESULT_ERROR);
		for (; *s != '\0'; s++) {
			if (*s < '0' || *s > '9')
				return (KORE_RESULT_ERROR);
			n = n * 10 + (*s - '0');
		}
	} else {
		return (KORE_RESULT_ERROR);
	}

	if (n < 1 || n > OAUTH_LIFETIME_MAX)
		return (KORE_RESULT_ERROR);

	*secs = n;

	return (KORE_RESULT_OK);
}

/* ISO-8601 text, or epoch seconds (above 1e11: milliseconds). */
static int
expires_at_value(yajl_val v, int64_t *ms)
{
	const char	*s;
	double		d;

	if (YAJL_IS_STRING(v)) {
		s = YAJL_GET_STRING(v);
		if (isotime_parse(s, ms))
			return (KORE_RESULT_OK);
		return (isotime_epoch_parse(s, ms));
	}

	if (!YAJL_IS_NUMBER(v))
		return (KORE_RESULT_ERROR);

	if (YAJL_IS_INTEGER(v)) {
		d = (double)YAJL_GET_INTEGER(v);
	} else if (YAJL_IS_DOUBLE(v)) {
		d = YAJL_GET_DOUBLE(v);
	} else {
		return (KORE_RESULT_ERROR);
	}

	if (!isfinite(d) || d < 0.0)
		return (KORE_RESULT_ERROR);
	if (d <= (double)ISOTIME_EPOCH_MS_ABOVE)
		d *= 1000.0;
	if (d > (double)OAUTH_EPOCH_MAX * 1000.0 + 999.0)
		return (KORE_RESULT_ERROR);

	*ms = (int64_t)d;

	return (KORE_RESULT_OK);
}

/* The tree's copies of the token and refresh token are wiped too. */
static void
answer_wipe(const struct source *src, yajl_val root)
{
	yajl_val	v;

	v = json_path_get(root, (src->token_path != NULL) ?
	    src->token_path : "access_token");
	if (YAJL_IS_STRING(v))
		OPENSSL_cleanse(v->u.string, strlen(v->u.string));

	v = json_path_get(root, "refresh_token");
	if (YAJL_IS_STRING(v))
		OPENSSL_cleanse(v->u.string, strlen(v->u.string));
}

static int
form_add(struct obuf *b, const char *key, const char *value)
{
	if (value == NULL)
		return (KORE_RESULT_OK);

	if (b->len > 0 && !obuf_add(b, "&", 1))
		return (KORE_RESULT_ERROR);

	if (!obuf_add(b, key, strlen(key)) || !obuf_add(b, "=", 1) ||
	    !obuf_pct(b, value))
		return (KORE_RESULT_ERROR);

	return (KORE_RESULT_OK);
}

/* Grows by copying, so no stale copy of a secret is left behind. */
static int
obuf_add(struct obuf *b, const void *data, size_t len)
{
	size_t		cap;
	char		*p;

	if (b->len + len + 1 > b->cap) {
		cap = (b->cap == 0) ? 256 : b->cap;
		while (cap < b->len + len + 1)
			cap *= 2;
		if ((p = malloc(cap)) == NULL)
			return (KORE_RESULT_ERROR);
		if (b->data != NULL) {
			memcpy(p, b->data, b->len);
			OPENSSL_cleanse(b->data, b->cap);
			free(b->data);
		}
		b->data = p;
		b->cap = cap;
	}

	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';

	return (KORE_RESULT_OK);
}

/* RFC 3986 percent-encoding: only unreserved characters stay as they are. */
static int
obuf_pct(struct obuf *b, const char *s)
{
	static const char	hexd[] = "0123456789ABCDEF";
	unsigned char		c;
	char			enc[3];

	for (; *s != '\0'; s++) {
		c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~') {
			if (!obuf_add(b, s, 1))
				return (KORE_RESULT_ERROR);
			continue;
		}
		enc[0] = '%';
		enc[1] = hexd[c >> 4];
		enc[2] = hexd[c & 0x0f];
		if (!obuf_add(b, enc, sizeof(enc)))
			return (KORE_RESULT_ERROR);
	}

	/* An empty value still needs a buffer to point at. */
	return (obuf_add(b, "", 0));
}

static void
obuf_wipe(struct obuf *b)
{
	if (b->data != NULL) {
		OPENSSL_cleanse(b->data, b->cap);
		free(b->data);
	}

	memset(b, 0, sizeof(*b));
}
