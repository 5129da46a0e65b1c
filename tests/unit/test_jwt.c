/*
 * test_jwt.c: admin bearer JWTs (HS256 pinned, signature, exp, nbf, iss,
 * aud, role) and the unverified exp of upstream tokens.
 */

#include <sys/types.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "kiln.h"

#define SECRET		"unit-jwt-secret-0123456789abcdefghijkl"
#define ISSUER		"https://kiln.example"
#define AUDIENCE	"kiln-admin"
#define NOW		1755624343LL		/* 2025-08-19T17:25:43Z */
#define LEEWAY_MS	30000LL
#define HS256		"{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define TOKEN_MAX	12000

/* Unpadded base64url of len bytes; returns the length written. */
static size_t
b64url(const void *in, size_t len, char *out)
{
	size_t		i, n;

	n = (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (i = 0; i < n; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}

	return (n);
}

/* header.claims.HMAC-SHA256(secret) in a static buffer. */
static const char *
token(const char *header, const char *claims, const char *secret)
{
	static char	buf[TOKEN_MAX];
	u_int8_t	mac[EVP_MAX_MD_SIZE];
	unsigned int	mlen;
	size_t		n;

	n = b64url(header, strlen(header), buf);
	buf[n++] = '.';
	n += b64url(claims, strlen(claims), buf + n);
	mlen = sizeof(mac);
	assert_non_null(HMAC(EVP_sha256(), secret, (int)strlen(secret),
	    (const unsigned char *)buf, n, mac, &mlen));
	buf[n++] = '.';
	(void)b64url(mac, mlen, buf + n);

	return (buf);
}

/* Claims that pass, with exp and nbf relative to NOW (seconds). */
static const char *
claims(const char *role, long long exp, const char *extra)
{
	static char	buf[1024];

	(void)snprintf(buf, sizeof(buf), "{\"iss\":\"" ISSUER "\","
	    "\"aud\":\"" AUDIENCE "\",\"sub\":\"ops@example\","
	    "\"role\":\"%s\",\"exp\":%lld%s}", role, NOW + exp, extra);

	return (buf);
}

static void
check_init(struct jwt_check *chk)
{
	memset(chk, 0, sizeof(*chk));
	chk->secret = (const u_int8_t *)SECRET;
	chk->secret_len = strlen(SECRET);
	chk->issuer = ISSUER;
	chk->audience = AUDIENCE;
	chk->now_ms = NOW * 1000;
	chk->leeway_ms = LEEWAY_MS;
}

/* Refused, for the reason given (err names the check that refused). */
static void
refused(const char *tok, const char *why)
{
	struct jwt_check	chk;
	struct jwt_claims	c;
	char			err[KILN_ERR_MAX];

	check_init(&chk);
	err[0] = '\0';
	if (jwt_verify(tok, &chk, &c, err, sizeof(err)))
		fail_msg("accepted %s (want: %s)", tok, why);
	if (strcmp(err, why))
		fail_msg("refused %s as \"%s\", want \"%s\"", tok, err, why);
	assert_int_equal(c.role, ROLE_NONE);
}

static void
accepted(const char *tok, struct jwt_claims *c)
{
	struct jwt_check	chk;
	char			err[KILN_ERR_MAX];

	check_init(&chk);
	err[0] = '\0';
	if (!jwt_verify(tok, &chk, c, err, sizeof(err)))
		fail_msg("refused %s: %s", tok, err);
}

static void
jwt_verify_accepts_good_hs256_token(void **state)
{
	struct jwt_claims	c;

	(void)state;

	accepted(token(HS256, claims("operator", 600, ""), SECRET), &c);
	assert_int_equal(c.role, ROLE_OPERATOR);
	assert_string_equal(c.subject, "ops@example");
	assert_int_equal(c.expires_ms, (NOW + 600) * 1000);

	/* typ may be absent or at+jwt; aud may be a list holding ours. */
	accepted(token("{\"alg\":\"HS256\"}", claims("admin", 60, ""),
	    SECRET), &c);
	assert_int_equal(c.role, ROLE_ADMIN);
	accepted(token("{\"typ\":\"at+jwt\",\"alg\":\"HS256\"}",
	    "{\"iss\":\"" ISSUER "\",\"aud\":[\"other\",\"" AUDIENCE "\"],"
	    "\"role\":\"viewer\",\"exp\":1755624943}", SECRET), &c);
	assert_int_equal(c.role, ROLE_VIEWER);
	assert_string_equal(c.subject, "");
}

/* The header must say HS256: none, RS256, HS512, hs256 are refused. */
static void
jwt_verify_refuses_other_algorithms(void **state)
{
	static const char	*headers[] = {
		"{\"alg\":\"none\",\"typ\":\"JWT\"}",
		"{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
		"{\"alg\":\"HS512\",\"typ\":\"JWT\"}",
		"{\"alg\":\"hs256\"}",
		"{\"alg\":\"HS256 \"}",
		"{\"typ\":\"JWT\"}",
		"{\"alg\":[\"HS256\"]}",
		"{\"alg\":\"HS256\",\"typ\":\"JWS\"}",
		"[\"HS256\"]",
	};
	const char		*cl;
	char			tok[TOKEN_MAX];
	size_t			i, n;

	(void)state;

	cl = claims("admin", 600, "");
	for (i = 0; i < sizeof(headers) / sizeof(headers[0]); i++)
		refused(token(headers[i], cl, SECRET), "alg is not HS256");

	/* alg none with the empty signature it asks for. */
	n = b64url("{\"alg\":\"none\"}", 14, tok);
	tok[n++] = '.';
	n += b64url(cl, strlen(cl), tok + n);
	tok[n++] = '.';
	tok[n] = '\0';
	refused(tok, "bad base64url");
}

static void
jwt_verify_refuses_bad_signature(void **state)
{
	const char	*cl;
	char		tok[TOKEN_MAX];
	size_t		n;

	(void)state;

	cl = claims("admin", 600, "");
	refused(token(HS256, cl, SECRET "x"), "bad signature");
	refused(token(HS256, cl, ""), "bad signature");

	/* One character of the signature changed. */
	(void)snprintf(tok, sizeof(tok), "%s", token(HS256, cl, SECRET));
	n = strlen(tok);
	tok[n - 2] = tok[n - 2] == 'A' ? 'B' : 'A';
	refused(tok, "bad signature");

	/* The signature cut short, still valid base64url. */
	(void)snprintf(tok, sizeof(tok), "%s", token(HS256, cl, SECRET));
	tok[strlen(tok) - 3] = '\0';
	refused(tok, "bad signature");

	/* Other claims under the signature made for these. */
	(void)snprintf(tok, sizeof(tok), "%s", token(HS256, cl, SECRET));
	n = strcspn(tok, ".") + 1;
	cl = claims("admin", 6000, "");
	n += b64url(cl, strlen(cl), tok + n);
	(void)snprintf(tok + n, sizeof(tok) - n, "%s",
	    strrchr(token(HS256, claims("admin", 600, ""), SECRET), '.'));
	refused(tok, "bad signature");
}

static void
jwt_verify_refuses_expired_or_not_yet_valid(void **state)
{
	struct jwt_claims	c;

	(void)state;

	refused(token(HS256, claims("admin", -3600, ""), SECRET),
	    "expired or no exp");
	/* exp + leeway must lie after now. */
	refused(token(HS256, claims("admin", -30, ""), SECRET),
	    "expired or no exp");
	accepted(token(HS256, claims("admin", -29, ""), SECRET), &c);

	refused(token(HS256, "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
	    "\",\"role\":\"admin\"}", SECRET), "expired or no exp");
	refused(token(HS256, "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
	    "\",\"role\":\"admin\",\"exp\":\"1755624943\"}", SECRET),
	    "expired or no exp");

	refused(token(HS256, claims("admin", 600,
	    ",\"nbf\":1755624400"), SECRET), "not yet valid");
	refused(token(HS256, claims("admin", 600, ",\"nbf\":\"now\""),
	    SECRET), "not yet valid");
	/* nbf within the leeway is fine. */
	accepted(token(HS256, claims("admin", 600, ",\"nbf\":1755624370"),
	    SECRET), &c);
}

static void
jwt_verify_refuses_wrong_issuer_or_audience(void **state)
{
	(void)state;

	refused(token(HS256, "{\"iss\":\"https://evil.example\",\"aud\":\""
	    AUDIENCE "\",\"role\":\"admin\",\"exp\":1755624943}", SECRET),
	    "wrong issuer");
	refused(token(HS256, "{\"aud\":\"" AUDIENCE "\",\"role\":\"admin\","
	    "\"exp\":1755624943}", SECRET), "wrong issuer");
	refused(token(HS256, "{\"iss\":[\"" ISSUER "\"],\"aud\":\"" AUDIENCE
	    "\",\"role\":\"admin\",\"exp\":1755624943}", SECRET),
	    "wrong issuer");

	refused(token(HS256, "{\"iss\":\"" ISSUER "\",\"aud\":\"other\","
	    "\"role\":\"admin\",\"exp\":1755624943}", SECRET),
	    "wrong audience");
	refused(token(HS256, "{\"iss\":\"" ISSUER "\",\"aud\":[\"a\",\"b\"],"
	    "\"role\":\"admin\",\"exp\":1755624943}", SECRET),
	    "wrong audience");
	refused(token(HS256, "{\"iss\":\"" ISSUER "\",\"role\":\"admin\","
	    "\"exp\":1755624943}", SECRET), "wrong audience");
}

static void
jwt_verify_refuses_missing_or_unknown_role(void **state)
{
	(void)state;

	refused(token(HS256, claims("root", 600, ""), SECRET),
	    "no valid role");
	refused(token(HS256, claims("", 600, ""), SECRET), "no valid role");
	refused(token(HS256, "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
	    "\",\"exp\":1755624943}", SECRET), "no valid role");

	assert_int_equal(jwt_role_parse("client"), ROLE_CLIENT);
	assert_int_equal(jwt_role_parse("Admin"), ROLE_NONE);
	assert_string_equal(jwt_role_name(ROLE_OPERATOR), "operator");
	assert_string_equal(jwt_role_name(ROLE_NONE), "anonymous");
}

static void
jwt_verify_refuses_malformed_segments(void **state)
{
	const char	*good;
	char		tok[TOKEN_MAX], *big;
	size_t		n;

	(void)state;

	good = token(HS256, claims("admin", 600, ""), SECRET);

	refused("", "token size");
	refused("abc", "not three parts");
	refused("a.b", "not three parts");
	refused("a.b.c.d", "not three parts");
	refused("..", "bad base64url");

	/* An empty part, a padded part, a character outside base64url. */
	(void)snprintf(tok, sizeof(tok), "%.*s.", (int)(strrchr(good, '.') -
	    good), good);
	refused(tok, "bad base64url");
	(void)snprintf(tok, sizeof(tok), "%s=", good);
	refused(tok, "bad base64url");
	(void)snprintf(tok, sizeof(tok), "%s", good);
	tok[3] = '+';
	refused(tok, "bad base64url");
	(void)snprintf(tok, sizeof(tok), "%s.", good);
	refused(tok, "not three parts");

	/* Parts that decode but are not JSON objects. */
	refused(token("not json", "{}", SECRET), "alg is not HS256");
	refused(token(HS256, "[1,2]", SECRET), "claims are not a JSON object");
	refused(token(HS256, "{\"a\":\"\\u0000\"}", SECRET),
	    "claims are not a JSON object");

	/* Bounded: 8192 characters, 4096 a part. */
	big = malloc(9000);
	assert_non_null(big);
	memset(big, 'A', 8999);
	big[8999] = '\0';
	big[100] = '.';
	big[200] = '.';
	refused(big, "token size");
	for (n = 4096; n <= 4100; n += 4) {
		(void)snprintf(big, 9000, "%.*s.%0*d%s", (int)strcspn(good,
		    "."), good, (int)n, 0, strrchr(good, '.'));
		memset(big + strcspn(good, ".") + 1, 'A', n);
		refused(big, n == 4096 ? "bad signature" : "bad base64url");
		/* The same as the signature. */
		(void)snprintf(big, 9000, "%.*s.%0*d", (int)(strrchr(good,
		    '.') - good), good, (int)n, 0);
		memset(strrchr(big, '.') + 1, 'A', n);
		refused(big, n == 4096 ? "bad signature" : "bad base64url");
	}
	free(big);
}

/* The exp of an upstream JWT; its signature is not checked. */
static void
jwt_exp_reads_exp_claim(void **state)
{
	static const char	*bad[] = {
		"", "abc", "a.b", "a.b.c.d", ".e30.", "eyJh..sig",
		"eyJh.e30=.sig", "eyJh.!!!!.sig", "eyJh.bm90IGpzb24.sig",
		"eyJh.e30.s+g",
	};
	static const char	*payloads[] = {
		"{}", "{\"exp\":\"1755631543\"}", "{\"exp\":-1}",
		"{\"exp\":0}", "{\"exp\":1e300}", "{\"exp\":null}", "[1]",
		"{\"exp\":99999999999999}",
	};
	size_t			i;
	int64_t			ms;

	(void)state;

	assert_true(jwt_exp_unverified(token(HS256,
	    "{\"iss\":\"x\",\"exp\":1755631543,\"n\":[1,{}]}", "k"), &ms));
	assert_int_equal(ms, 1755631543000LL);

	assert_true(jwt_exp_unverified(token(HS256, "{\"exp\":1755631543.9}",
	    "k"), &ms));
	assert_int_equal(ms, 1755631543000LL);

	/* Read, not verified: the payload need not be strict text. */
	assert_true(jwt_exp_unverified(token(HS256,
	    "{\"x\":\"\\ud800\",\"exp\":1755631543}", "k"), &ms));
	assert_int_equal(ms, 1755631543000LL);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms = 42;
		if (jwt_exp_unverified(bad[i], &ms))
			fail_msg("accepted JWT \"%s\"", bad[i]);
		assert_int_equal(ms, 42);
	}

	for (i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
		ms = 42;
		if (jwt_exp_unverified(token(HS256, payloads[i], "k"), &ms))
			fail_msg("accepted JWT payload %s", payloads[i]);
		assert_int_equal(ms, 42);
	}

	assert_false(jwt_exp_unverified(NULL, &ms));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(jwt_verify_accepts_good_hs256_token),
		cmocka_unit_test(jwt_verify_refuses_other_algorithms),
		cmocka_unit_test(jwt_verify_refuses_bad_signature),
		cmocka_unit_test(jwt_verify_refuses_expired_or_not_yet_valid),
		cmocka_unit_test(jwt_verify_refuses_wrong_issuer_or_audience),
		cmocka_unit_test(jwt_verify_refuses_missing_or_unknown_role),
		cmocka_unit_test(jwt_verify_refuses_malformed_segments),
		cmocka_unit_test(jwt_exp_reads_exp_claim),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
