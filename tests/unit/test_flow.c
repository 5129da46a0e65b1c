/*
 * test_flow.c: the authorization code flow's values: PKCE (RFC 7636),
 * the state, the consent URL, return_to's origin, the revocation body.
 */

#include <sys/types.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kiln.h"

static int
b64url_only(const char *s)
{
	for (; *s != '\0'; s++) {
		if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "abcdefghijklmnopqrstuvwxyz0123456789-_", *s) == NULL)
			return (0);
	}
	return (1);
}

/* RFC 7636 appendix B: the example verifier and its challenge. */
static void
flow_challenge_rfc7636_b(void **state)
{
	char		c[FLOW_CHALLENGE_LEN + 1];

	(void)state;

	assert_true(flow_challenge(
	    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", c, sizeof(c)));
	assert_string_equal(c, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
	/* Too short a verifier is refused (43-128 characters). */
	assert_false(flow_challenge("short", c, sizeof(c)));
}

static void
flow_random_is_fresh_base64url(void **state)
{
	char		a[FLOW_VERIFIER_LEN + 1], b[FLOW_VERIFIER_LEN + 1];
	char		s[FLOW_STATE_LEN + 1];

	(void)state;

	assert_true(flow_random(a, sizeof(a)));
	assert_true(flow_random(b, sizeof(b)));
	assert_int_equal(strlen(a), FLOW_VERIFIER_LEN);
	assert_true(b64url_only(a));
	assert_string_not_equal(a, b);
	assert_true(flow_random(s, sizeof(s)));
	assert_int_equal(strlen(s), FLOW_STATE_LEN);
	assert_true(b64url_only(s));
}

static void
flow_state_stored_hashed(void **state)
{
	char		h[65];

	(void)state;

	assert_true(flow_state_hash("abc", h));
	assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad");
}

static void
flow_authorize_url_carries_pkce(void **state)
{
	struct source	src;
	char		*u;

	(void)state;

	memset(&src, 0, sizeof(src));
	src.authorize_url = "https://idp.example/auth";
	src.client_id = "kiln app";
	src.scope = "openid offline_access";
	src.extra_authorize_params = "{\"prompt\":\"consent\",\"x\":\"a&b\"}";
	u = flow_authorize_url(&src, "https://kiln.example/oauth/callback",
	    "STATE", "CHALLENGE");
	assert_non_null(u);
	assert_string_equal(u, "https://idp.example/auth?response_type=code"
	    "&client_id=kiln%20app"
	    "&redirect_uri=https%3A%2F%2Fkiln.example%2Foauth%2Fcallback"
	    "&scope=openid%20offline_access&state=STATE"
	    "&code_challenge=CHALLENGE&code_challenge_method=S256"
	    "&prompt=consent&x=a%26b");
	free(u);

	/* An authorize_url with a query keeps it. */
	src.authorize_url = "https://idp.example/auth?tenant=7";
	src.extra_authorize_params = NULL;
	u = flow_authorize_url(&src, "r", "s", "c");
	assert_non_null(u);
	assert_non_null(strstr(u, "auth?tenant=7&response_type=code&"));
	free(u);

	src.extra_authorize_params = "[1]";
	assert_null(flow_authorize_url(&src, "r", "s", "c"));
}

static void
flow_return_to_only_allowed_origins(void **state)
{
	const char	*allow;

	(void)state;

	allow = "https://app.example, http://127.0.0.1:8080/";

	assert_true(flow_origin_allowed("https://app.example/settings?a=1",
	    allow));
	assert_true(flow_origin_allowed("https://APP.example:443/x", allow));
	assert_true(flow_origin_allowed("http://127.0.0.1:8080/done", allow));
	assert_false(flow_origin_allowed("http://127.0.0.1:8081/done", allow));
	assert_false(flow_origin_allowed("https://app.example.evil/x", allow));
	assert_false(flow_origin_allowed("https://app.example@evil.example/",
	    allow));
	assert_false(flow_origin_allowed("https://evil.example\\@app.example/",
	    allow));
	assert_false(flow_origin_allowed("//evil.example/", allow));
	assert_false(flow_origin_allowed("javascript:alert(1)", allow));
	assert_false(flow_origin_allowed("http://app.example/", allow));
	assert_false(flow_origin_allowed("https://app.example/", NULL));
	assert_false(flow_origin_allowed("https://app.example/", ""));

	assert_true(flow_public_url_valid("https://kiln.example"));
	assert_true(flow_public_url_valid("http://127.0.0.1:9000/kiln"));
	assert_false(flow_public_url_valid("kiln.example"));
	assert_false(flow_public_url_valid("https://kiln.example/?a"));
	assert_false(flow_public_url_valid("https://u@kiln.example"));
}

static void
flow_return_url_adds_outcome(void **state)
{
	char		*u;

	(void)state;

	u = flow_return_url("https://app.example/s", "connected", "subject",
	    "alice@x");
	assert_string_equal(u,
	    "https://app.example/s?connection=connected&subject=alice%40x");
	free(u);
	u = flow_return_url("https://app.example/s?tab=2#top", "failed",
	    "error", "access_denied");
	assert_string_equal(u, "https://app.example/s?tab=2"
	    "&connection=failed&error=access_denied#top");
	free(u);
}

static void
flow_revoke_body_rfc7009(void **state)
{
	struct source		src;
	struct oauth_request	r;

	(void)state;

	memset(&src, 0, sizeof(src));
	src.client_id = "app";
	assert_true(flow_revoke_body(&src, "r+t", &r));
	assert_string_equal(r.body, "token=r%2Bt&token_type_hint="
	    "refresh_token&client_id=app");
	assert_null(r.authorization);
	free(r.body);

	src.client_secret = "s:1";
	src.auth_method = AUTH_SECRET_BASIC;
	assert_true(flow_revoke_body(&src, "rt", &r));
	assert_string_equal(r.body, "token=rt&token_type_hint=refresh_token");
	/* base64("app:s%3A1") */
	assert_string_equal(r.authorization, "Basic YXBwOnMlM0Ex");
	free(r.body);
	free(r.authorization);
}

static void
flow_html_escaped(void **state)
{
	char		*s;

	(void)state;

	s = flow_html_escape("<b a=\"1\">'&'</b>");
	assert_string_equal(s,
	    "&lt;b a=&quot;1&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;");
	free(s);
	s = flow_html_escape("");
	assert_string_equal(s, "");
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(flow_challenge_rfc7636_b),
		cmocka_unit_test(flow_random_is_fresh_base64url),
		cmocka_unit_test(flow_state_stored_hashed),
		cmocka_unit_test(flow_authorize_url_carries_pkce),
		cmocka_unit_test(flow_return_to_only_allowed_origins),
		cmocka_unit_test(flow_return_url_adds_outcome),
		cmocka_unit_test(flow_revoke_body_rfc7009),
		cmocka_unit_test(flow_html_escaped),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
