/*
 * jwt.c (pure): admin bearer JWTs, HS256 only.
 *
 * The algorithm is pinned: the header must say exactly "HS256", so
 * "none", HS512, RS256 and every confusion between them are refused
 * before any signature is looked at. The signature is compared with
 * CRYPTO_memcmp. exp is required; nbf, iss, aud are checked with a small
 * leeway; the role claim decides what the caller may do.
 *
 * The exp of an upstream token is read here too, unverified: what a JWT
 * looks like is known in this one file.
 */

#include <sys/types.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <yajl/yajl_tree.h>

#include "kiln.h"

#define JWT_MAX			8192
#define JWT_PART_MAX		4096
/* An upstream token's payload; 9999-12-31T23:59:59Z as the last exp. */
#define JWT_PEEK_MAX		16384
#define JWT_EPOCH_MAX		253402300799LL

static int	jwt_header_ok(const u_int8_t *, size_t);
static int	jwt_claims(const u_int8_t *, size_t, const struct jwt_check *,
		    struct jwt_claims *, char *, size_t);
static int	jwt_aud_ok(yajl_val, const char *);
static int	jwt_time(yajl_val, const char *, int, int64_t *);
static int	jwt_str_is(yajl_val, const char *);

/*
 * Verify token against the check; on success fill claims. err gets a
 * short reason (for logs, never for the client: they only get 401).
 */
int
jwt_verify(const char *token, const struct jwt_check *chk,
    struct jwt_claims *claims, char *err, size_t errlen)
{
	const char	*dot1, *dot2;
	u_int8_t	*hdr, *body, *sig, mac[EVP_MAX_MD_SIZE];
	size_t		len, hlen, blen, slen;
	unsigned int	mlen;
	int		ret;

	memset(claims, 0, sizeof(*claims));
	hdr = body = sig = NULL;
	ret = KORE_RESULT_ERROR;

	len = strnlen(token, JWT_MAX + 1);
	if (len == 0 || len > JWT_MAX) {
		(void)snprintf(err, errlen, "token size");
		return (KORE_RESULT_ERROR);
	}
	if ((dot1 = memchr(token, '.', len)) == NULL ||
	    (dot2 = memchr(dot1 + 1, '.', len - (dot1 + 1 - token))) == NULL ||
	    memchr(dot2 + 1, '.', len - (dot2 + 1 - token)) != NULL) {
		(void)snprintf(err, errlen, "not three parts");
		return (KORE_RESULT_ERROR);
	}

	if (dot1 - token > JWT_PART_MAX || dot2 - dot1 - 1 > JWT_PART_MAX ||
	    len - (dot2 + 1 - token) > JWT_PART_MAX ||
	    !json_b64_decode(token, dot1 - token, JSON_B64_URL, &hdr, &hlen) ||
	    !json_b64_decode(dot1 + 1, dot2 - dot1 - 1, JSON_B64_URL, &body,
	    &blen) ||
	    !json_b64_decode(dot2 + 1, len - (dot2 + 1 - token), JSON_B64_URL,
	    &sig, &slen)) {
		(void)snprintf(err, errlen, "bad base64url");
		goto cleanup;
	}

	if (!jwt_header_ok(hdr, hlen)) {
		(void)snprintf(err, errlen, "alg is not HS256");
		goto cleanup;
	}

	mlen = sizeof(mac);
	if (HMAC(EVP_sha256(), chk->secret, (int)chk->secret_len,
	    (const unsigned char *)token, dot2 - token, mac, &mlen) == NULL ||
	    slen != mlen || CRYPTO_memcmp(mac, sig, mlen) != 0) {
		(void)snprintf(err, errlen, "bad signature");
		goto cleanup;
	}

	ret = jwt_claims(body, blen, chk, claims, err, errlen);

cleanup:
	free(hdr);
	free(body);
	free(sig);

	return (ret);
}

int
jwt_role_parse(const char *role)
{
	if (!strcmp(role, "admin"))
		return (ROLE_ADMIN);
	if (!strcmp(role, "operator"))
		return (ROLE_OPERATOR);
	if (!strcmp(role, "viewer"))
		return (ROLE_VIEWER);
	if (!strcmp(role, "client"))
		return (ROLE_CLIENT);

	return (ROLE_NONE);
}

const char *
jwt_role_name(int role)
{
	switch (role) {
	case ROLE_ADMIN:
		return ("admin");
	case ROLE_OPERATOR:
		return ("operator");
	case ROLE_VIEWER:
		return ("viewer");
	case ROLE_CLIENT:
		return ("client");
	}

	return ("anonymous");
}

/*
 * The exp claim of an upstream token, in ms, when it is a JWT: read, not
 * verified (kiln holds no key for it), only to know when to refresh.
 */
int
jwt_exp_unverified(const char *token, int64_t *ms)
{
	const char	*payload, *sig, *p;
	size_t		len;
	yajl_val	root, exp;
	int64_t		secs;
	int		ret;
	u_int8_t	*raw;

	if (token == NULL || (payload = strchr(token, '.')) == NULL ||
	    payload == token)
		return (KORE_RESULT_ERROR);
	payload++;
	if ((sig = strchr(payload, '.')) == NULL || sig == payload)
		return (KORE_RESULT_ERROR);
	sig++;

	for (p = token; *p != '\0'; p++) {
		if (*p != '.' && json_b64_value((unsigned char)*p,
		    JSON_B64_URL) == -1)
			return (KORE_RESULT_ERROR);
	}
	if (strchr(sig, '.') != NULL)
		return (KORE_RESULT_ERROR);

	len = (size_t)(sig - payload - 1);
	if (len > JWT_PEEK_MAX ||
	    !json_b64_decode(payload, len, JSON_B64_URL, &raw, &len))
		return (KORE_RESULT_ERROR);

	ret = KORE_RESULT_ERROR;

	/* Not json_parse: any payload yajl takes, strict text or not. */
	if ((root = json_tree((const char *)raw, len)) == NULL)
		goto cleanup;

	exp = json_path_get(root, "exp");
	if (YAJL_IS_INTEGER(exp))
		secs = YAJL_GET_INTEGER(exp);
	else if (YAJL_IS_DOUBLE(exp) && YAJL_GET_DOUBLE(exp) > 0.0 &&
	    YAJL_GET_DOUBLE(exp) < 1e15)
		secs = (int64_t)YAJL_GET_DOUBLE(exp);
	else
		goto cleanup;

	if (secs <= 0 || secs > JWT_EPOCH_MAX)
		goto cleanup;

	*ms = secs * 1000;
	ret = KORE_RESULT_OK;

cleanup:
	yajl_tree_free(root);
	free(raw);

	return (ret);
}

static int
jwt_header_ok(const u_int8_t *data, size_t len)
{
	yajl_val	root, alg, typ;
	const char	*alg_path[] = { "alg", NULL };
	const char	*typ_path[] = { "typ", NULL };
	int		ok;

	if ((root = json_parse((const char *)data, len)) == NULL)
		return (0);

	alg = yajl_tree_get(root, alg_path, yajl_t_string);
	typ = yajl_tree_get(root, typ_path, yajl_t_any);

	ok = YAJL_IS_OBJECT(root) && jwt_str_is(alg, "HS256") &&
	    (typ == NULL || jwt_str_is(typ, "JWT") ||
	    jwt_str_is(typ, "at+jwt"));

	yajl_tree_free(root);

	return (ok);
}

static int
jwt_claims(const u_int8_t *data, size_t len, const struct jwt_check *chk,
    struct jwt_claims *claims, char *err, size_t errlen)
{
	yajl_val	root, v;
	const char	*iss[] = { "iss", NULL }, *aud[] = { "aud", NULL };
	const char	*role[] = { "role", NULL }, *sub[] = { "sub", NULL };
	const char	*jti[] = { "jti", NULL };
	int64_t		exp, nbf, leeway;
	int		ret;

	if ((root = json_parse((const char *)data, len)) == NULL ||
	    !YAJL_IS_OBJECT(root)) {
		(void)snprintf(err, errlen, "claims are not a JSON object");
		if (root != NULL)
			yajl_tree_free(root);
		return (KORE_RESULT_ERROR);
	}

	ret = KORE_RESULT_ERROR;
	leeway = chk->leeway_ms;

	if (!jwt_time(root, "exp", 1, &exp) || exp + leeway <= chk->now_ms) {
		(void)snprintf(err, errlen, "expired or no exp");
		goto cleanup;
	}
	if (!jwt_time(root, "nbf", 0, &nbf) || nbf - leeway > chk->now_ms) {
		(void)snprintf(err, errlen, "not yet valid");
		goto cleanup;
	}

	if (!jwt_str_is(yajl_tree_get(root, iss, yajl_t_string),
	    chk->issuer)) {
		(void)snprintf(err, errlen, "wrong issuer");
		goto cleanup;
	}
	if (!jwt_aud_ok(yajl_tree_get(root, aud, yajl_t_any), chk->audience)) {
		(void)snprintf(err, errlen, "wrong audience");
		goto cleanup;
	}

	v = yajl_tree_get(root, role, yajl_t_string);
	if (v == NULL || !YAJL_IS_STRING(v) ||
	    (claims->role = jwt_role_parse(v->u.string)) == ROLE_NONE) {
		(void)snprintf(err, errlen, "no valid role");
		goto cleanup;
	}

	v = yajl_tree_get(root, sub, yajl_t_string);
	(void)snprintf(claims->subject, sizeof(claims->subject), "%s",
	    v != NULL && YAJL_IS_STRING(v) ? v->u.string : "");
	v = yajl_tree_get(root, jti, yajl_t_string);
	(void)snprintf(claims->id, sizeof(claims->id), "%s",
	    v != NULL && YAJL_IS_STRING(v) ? v->u.string : "");
	claims->expires_ms = exp;
	ret = KORE_RESULT_OK;

cleanup:
	yajl_tree_free(root);
	return (ret);
}

static int
jwt_aud_ok(yajl_val v, const char *audience)
{
	size_t		i;
	yajl_val	item;

	if (v == NULL)
		return (0);
	if (YAJL_IS_STRING(v))
		return (jwt_str_is(v, audience));
	if (!YAJL_IS_ARRAY(v))
		return (0);

	for (i = 0; i < v->u.array.len; i++) {
		item = v->u.array.values[i];
		if (jwt_str_is(item, audience))
			return (1);
	}

	return (0);
}

static int
jwt_str_is(yajl_val v, const char *s)
{
	return (v != NULL && YAJL_IS_STRING(v) && v->u.string != NULL &&
	    !strcmp(v->u.string, s));
}

/* A NumericDate claim in ms; absent is fine unless required. */
static int
jwt_time(yajl_val root, const char *name, int required, int64_t *ms)
{
	const char	*path[] = { name, NULL };
	yajl_val	v;
	double		d;

	*ms = 0;
	if ((v = yajl_tree_get(root, path, yajl_t_any)) == NULL)
		return (!required);
	if (!YAJL_IS_NUMBER(v))
		return (0);

	d = YAJL_IS_INTEGER(v) ? (double)YAJL_GET_INTEGER(v) :
	    YAJL_GET_DOUBLE(v);
	if (!(d >= 0 && d < 253402300800.0))
		return (0);
	*ms = (int64_t)(d * 1000.0);

	return (1);
}
