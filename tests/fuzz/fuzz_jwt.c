/*
 * fuzz_jwt.c: admin bearer tokens. The input is tried twice:
 *
 *  - as a raw token for jwt_verify (fixed secret, issuer, audience, now);
 *  - as one control byte and claims JSON (or, with bit 0 of the control
 *    byte, "header\nclaims"), signed with the right secret, so that
 *    verification gets past the signature to the claims. The outcome is
 *    compared with the rules of jwt.c applied by hand, and every
 *    accepted token must fail once its signature, secret or clock is off.
 */

#include <sys/types.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "kiln.h"
#include "fuzz.h"

#define SECRET		"fuzz-jwt-secret-0123456789abcdefghij"
#define OTHER_SECRET	"fuzz-jwt-secret-0123456789abcdefghik"
#define ISSUER		"https://kiln.example"
#define AUDIENCE	"kiln-admin"
#define NOW_MS		1755624343000LL
#define LEEWAY_MS	30000LL
#define JWT_MAX		8192
#define PART_MAX	4096

static const char	*headers[4] = {
	"{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
	"{\"alg\":\"HS256\"}",
	"{\"typ\":\"at+jwt\",\"alg\":\"HS256\"}",
	"{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}",
};

static void
check_init(struct jwt_check *chk, const char *secret)
{
	memset(chk, 0, sizeof(*chk));
	chk->secret = (const u_int8_t *)secret;
	chk->secret_len = strlen(secret);
	chk->issuer = ISSUER;
	chk->audience = AUDIENCE;
	chk->now_ms = NOW_MS;
	chk->leeway_ms = LEEWAY_MS;
}

/* Unpadded base64url of len bytes at out; returns the length written. */
static size_t
b64url(const unsigned char *in, size_t len, char *out)
{
	static const char	tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "abcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t			i, n;
	u_int32_t		v;

	n = 0;
	for (i = 0; i + 2 < len; i += 3) {
		v = (u_int32_t)in[i] << 16 | (u_int32_t)in[i + 1] << 8 |
		    in[i + 2];
		out[n++] = tab[v >> 18 & 63];
		out[n++] = tab[v >> 12 & 63];
		out[n++] = tab[v >> 6 & 63];
		out[n++] = tab[v & 63];
	}
	if (len - i == 1) {
		v = (u_int32_t)in[i] << 16;
		out[n++] = tab[v >> 18 & 63];
		out[n++] = tab[v >> 12 & 63];
	} else if (len - i == 2) {
		v = (u_int32_t)in[i] << 16 | (u_int32_t)in[i + 1] << 8;
		out[n++] = tab[v >> 18 & 63];
		out[n++] = tab[v >> 12 & 63];
		out[n++] = tab[v >> 6 & 63];
	}
	out[n] = '\0';

	return (n);
}

/* header.claims.signature, signed with secret. */
static char *
token_make(const char *hdr, size_t hlen, const char *claims, size_t clen,
    const char *secret)
{
	unsigned char	mac[EVP_MAX_MD_SIZE];
	unsigned int	mlen;
	size_t		n;
	char		*tok;

	if ((tok = malloc(4 * (hlen + clen) / 3 + 128)) == NULL)
		abort();

	n = b64url((const unsigned char *)hdr, hlen, tok);
	tok[n++] = '.';
	n += b64url((const unsigned char *)claims, clen, tok + n);

	mlen = sizeof(mac);
	if (HMAC(EVP_sha256(), secret, (int)strlen(secret),
	    (const unsigned char *)tok, n, mac, &mlen) == NULL)
		abort();

	tok[n++] = '.';
	(void)b64url(mac, mlen, tok + n);

	return (tok);
}

static int
str_is(yajl_val v, const char *s)
{
	return (YAJL_IS_STRING(v) && !strcmp(YAJL_GET_STRING(v), s));
}

/* A NumericDate the way jwt.c reads it: -1 absent, -2 unusable. */
static int64_t
numeric_date(yajl_val root, const char *name)
{
	const char	*path[] = { name, NULL };
	yajl_val	v;
	double		d;

	if ((v = yajl_tree_get(root, path, yajl_t_any)) == NULL)
		return (-1);
	if (!YAJL_IS_NUMBER(v))
		return (-2);
	d = YAJL_IS_INTEGER(v) ? (double)YAJL_GET_INTEGER(v) :
	    YAJL_GET_DOUBLE(v);
	if (!(d >= 0 && d < 253402300800.0))
		return (-2);

	return ((int64_t)(d * 1000.0));
}

/*
 * The claims rules by hand: exp required, nbf optional, iss, aud (a
 * string or an array holding it), a known role. Fills want when valid.
 */
static int
claims_valid(const char *claims, size_t len, struct jwt_claims *want)
{
	const char	*iss[] = { "iss", NULL }, *aud[] = { "aud", NULL };
	const char	*role[] = { "role", NULL }, *sub[] = { "sub", NULL };
	yajl_val	root, v;
	int64_t		exp, nbf;
	size_t		i;
	int		ok;

	memset(want, 0, sizeof(*want));
	if ((root = json_parse(claims, len)) == NULL)
		return (0);

	ok = 0;
	if (!YAJL_IS_OBJECT(root))
		goto done;

	exp = numeric_date(root, "exp");
	nbf = numeric_date(root, "nbf");
	if (exp < 0 || exp + LEEWAY_MS <= NOW_MS)
		goto done;
	if (nbf == -2 || nbf - LEEWAY_MS > NOW_MS)
		goto done;

	if (!str_is(yajl_tree_get(root, iss, yajl_t_any), ISSUER))
		goto done;

	v = yajl_tree_get(root, aud, yajl_t_any);
	if (YAJL_IS_ARRAY(v)) {
		for (i = 0; i < v->u.array.len; i++) {
			if (str_is(v->u.array.values[i], AUDIENCE))
				break;
		}
		if (i == v->u.array.len)
			goto done;
	} else if (!str_is(v, AUDIENCE)) {
		goto done;
	}

	v = yajl_tree_get(root, role, yajl_t_any);
	if (str_is(v, "admin"))
		want->role = ROLE_ADMIN;
	else if (str_is(v, "operator"))
		want->role = ROLE_OPERATOR;
	else if (str_is(v, "viewer"))
		want->role = ROLE_VIEWER;
	else if (str_is(v, "client"))
		want->role = ROLE_CLIENT;
	else
		goto done;

	v = yajl_tree_get(root, sub, yajl_t_any);
	(void)snprintf(want->subject, sizeof(want->subject), "%s",
	    YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : "");
	want->expires_ms = exp;
	ok = 1;

done:
	yajl_tree_free(root);
	return (ok);
}

static int
verify(const char *tok, const struct jwt_check *chk, struct jwt_claims *c)
{
	char		err[KILN_ERR_MAX];
	int		ok;

	memset(err, 'x', sizeof(err));
	ok = jwt_verify(tok, chk, c, err, sizeof(err));
	if (ok) {
		FUZZ_CHECK(c->role >= ROLE_CLIENT && c->role <= ROLE_ADMIN);
		FUZZ_CHECK(c->expires_ms + chk->leeway_ms > chk->now_ms);
		FUZZ_CHECK(memchr(c->subject, '\0', sizeof(c->subject)) !=
		    NULL);
	} else {
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		FUZZ_CHECK(err[0] != '\0' && fuzz_printable(err));
		FUZZ_CHECK(c->role == ROLE_NONE);
	}

	return (ok);
}

static void
signed_token(const unsigned char *data, size_t size)
{
	struct jwt_check	chk;
	struct jwt_claims	got, want;
	const char		*hdr, *claims, *nl;
	size_t			hlen, clen, len, dot2;
	int			ctl, ok, expect;
	char			*tok, *bad;

	ctl = data[0];
	claims = (const char *)data + 1;
	clen = size - 1;
	hdr = headers[(ctl >> 1) & 3];
	hlen = strlen(hdr);

	if ((ctl & 1) && (nl = memchr(claims, '\n', clen)) != NULL) {
		hdr = claims;
		hlen = (size_t)(nl - claims);
		claims = nl + 1;
		clen -= hlen + 1;
	}
	if (hlen == 0 || clen == 0)
		return;

	check_init(&chk, SECRET);
	tok = token_make(hdr, hlen, claims, clen, SECRET);
	len = strlen(tok);
	ok = verify(tok, &chk, &got);

	/* With a known good header, the claims alone decide. */
	if (hdr == headers[(ctl >> 1) & 3]) {
		expect = claims_valid(claims, clen, &want) &&
		    len <= JWT_MAX && (4 * clen + 2) / 3 <= PART_MAX;
		FUZZ_CHECK(ok == expect);
		if (ok) {
			FUZZ_CHECK(got.role == want.role);
			FUZZ_CHECK(got.expires_ms == want.expires_ms);
			FUZZ_CHECK(!strcmp(got.subject, want.subject));
		}
	}

	if (!ok) {
		free(tok);
		return;
	}

	/* Another secret. */
	bad = token_make(hdr, hlen, claims, clen, OTHER_SECRET);
	FUZZ_CHECK(!verify(bad, &chk, &got));
	free(bad);

	/* One signature character changed. */
	if ((bad = strdup(tok)) == NULL)
		abort();
	dot2 = strrchr(bad, '.') - bad;
	bad[dot2 + 1] = (bad[dot2 + 1] == 'A') ? 'B' : 'A';
	FUZZ_CHECK(!verify(bad, &chk, &got));
	/* No signature part at all. */
	bad[dot2] = '\0';
	FUZZ_CHECK(!verify(bad, &chk, &got));
	free(bad);

	/* The clock past exp and the leeway. */
	FUZZ_CHECK(verify(tok, &chk, &got));
	chk.now_ms = got.expires_ms + chk.leeway_ms;
	FUZZ_CHECK(!verify(tok, &chk, &got));

	free(tok);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;

	return (0);
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct jwt_check	chk;
	struct jwt_claims	got;
	char			*tok;

	tok = fuzz_cstr(data, size);
	check_init(&chk, SECRET);
	(void)verify(tok, &chk, &got);
	free(tok);

	if (size > 1 && size <= 3 * JWT_MAX)
		signed_token(data, size);

	return (0);
}
