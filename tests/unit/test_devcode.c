/*
 * test_devcode.c: kind device_code (RFC 8628): the source JSON, the
 * device authorization answer, what a poll's error means, and the three
 * request bodies (authorization, poll, refresh).
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

#include "kiln.h"

#define DC_HEAD	"{\"name\":\"tv\",\"kind\":\"device_code\"," \
	"\"token_url\":\"https://idp.example/token\",\"client_id\":\"tv\","
#define DC_URL	"\"device_authorization_url\":" \
	"\"https://IDP.example:443/device/auth\""

#define ANSWER(extra)							\
	"{\"device_code\":\"GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS\","\
	"\"user_code\":\"WDJB-MJHT\","					\
	"\"verification_uri\":\"https://idp.example/device\","		\
	"\"verification_uri_complete\":"				\
	"\"https://idp.example/device?user_code=WDJB-MJHT\","		\
	"\"expires_in\":1800" extra "}"

static int
parse(const char *json, struct source *src, char *err, size_t len)
{
	yajl_val	root;
	int		ok;

	root = yajl_tree_parse(json, NULL, 0);
	if (root == NULL)
		fail_msg("test JSON does not parse: %s", json);
	memset(src, 0, sizeof(*src));
	ok = source_from_json(root, 0, src, err, len);
	yajl_tree_free(root);

	return (ok);
}

static void
refused(const char *json, const char *want)
{
	struct source	src;
	char		err[KILN_ERR_MAX];

	if (parse(json, &src, err, sizeof(err)))
		fail_msg("accepted: %s", json);
	if (strncmp(err, want, strlen(want)))
		fail_msg("error \"%s\", wanted \"%s...\"", err, want);
	source_free(&src);
}

static void
devcode_source_json(void **state)
{
	struct source	src;
	char		err[KILN_ERR_MAX];

	(void)state;

	assert_true(parse(DC_HEAD DC_URL ",\"scope\":\"openid\"}", &src, err,
	    sizeof(err)));
	assert_int_equal(src.kind, KIND_DEVICE_CODE);
	assert_string_equal(source_kind_name(src.kind), "device_code");
	assert_int_equal(src.access, ACCESS_KEY);
	assert_string_equal(src.device_authorization_url,
	    "https://IDP.example:443/device/auth");
	source_free(&src);

	/* open only when asked for. */
	assert_true(parse(DC_HEAD DC_URL ",\"access\":\"open\"}", &src, err,
	    sizeof(err)));
	assert_int_equal(src.access, ACCESS_OPEN);
	source_free(&src);

	refused(DC_HEAD "\"scope\":\"x\"}", "device_authorization_url: "
	    "required for device_code");
	refused("{\"name\":\"tv\",\"kind\":\"device_code\"," DC_URL ","
	    "\"token_url\":\"https://idp.example/token\"}",
	    "client_id: required for device_code");
	refused(DC_HEAD "\"device_authorization_url\":"
	    "\"https://other.example/device\"}", "device_authorization_url: "
	    "must be on the origin of token_url");
	refused(DC_HEAD "\"device_authorization_url\":"
	    "\"http://idp.example/device\"}", "device_authorization_url: "
	    "must be on the origin of token_url");
	refused(DC_HEAD "\"device_authorization_url\":\"javascript:x\"}",
	    "device_authorization_url: ");
	refused(DC_HEAD DC_URL ",\"refresh_token\":\"r\"}",
	    "refresh_token: not with kind device_code");
	refused("{\"name\":\"cc\",\"kind\":\"client_credentials\","
	    "\"token_url\":\"https://idp.example/token\","
	    "\"client_id\":\"a\",\"client_secret\":\"b\"," DC_URL "}",
	    "device_authorization_url: only with kind device_code");
}

static void
devcode_answer_parsed(void **state)
{
	struct devcode_answer	ans;
	char			err[KILN_ERR_MAX];
	const char		*s;

	(void)state;

	s = ANSWER(",\"interval\":7");
	assert_true(devcode_parse(s, strlen(s), &ans, err, sizeof(err)));
	assert_string_equal(ans.device_code,
	    "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS");
	assert_string_equal(ans.user_code, "WDJB-MJHT");
	assert_string_equal(ans.verification_uri,
	    "https://idp.example/device");
	assert_string_equal(ans.verification_uri_complete,
	    "https://idp.example/device?user_code=WDJB-MJHT");
	assert_int_equal(ans.expires_in, 1800);
	assert_int_equal(ans.interval, 7);
	devcode_answer_free(&ans);
	assert_null(ans.device_code);

	/* RFC 8628 3.2: no interval means 5 s; 0 too. */
	s = ANSWER("");
	assert_true(devcode_parse(s, strlen(s), &ans, err, sizeof(err)));
	assert_int_equal(ans.interval, DEVCODE_INTERVAL_DEFAULT);
	devcode_answer_free(&ans);
	s = ANSWER(",\"interval\":0");
	assert_true(devcode_parse(s, strlen(s), &ans, err, sizeof(err)));
	assert_int_equal(ans.interval, DEVCODE_INTERVAL_DEFAULT);
	devcode_answer_free(&ans);

	/* A day at most: an expiry beyond is cut. */
	s = "{\"device_code\":\"d\",\"user_code\":\"u\",\"verification_uri\":"
	    "\"http://127.0.0.1:9/device\",\"expires_in\":999999}";
	assert_true(devcode_parse(s, strlen(s), &ans, err, sizeof(err)));
	assert_int_equal(ans.expires_in, DEVCODE_LIFETIME_MAX);
	assert_null(ans.verification_uri_complete);
	devcode_answer_free(&ans);
}

static void
devcode_answer_refused(void **state)
{
	static const struct {
		const char	*body;
		const char	*err;
	} bad[] = {
		{ "[]", "answer is not a JSON object" },
		{ "not json", "answer is not a JSON object" },
		{ "{\"error\":\"invalid_client\"}",
		    "upstream error: invalid_client" },
		{ "{\"user_code\":\"u\"}", "device_code: missing" },
		{ "{\"device_code\":\"a\\u0001b\",\"user_code\":\"u\"}",
		    "device_code: missing or not printable" },
		{ "{\"device_code\":\"d\",\"verification_uri\":\"https://x\","
		    "\"expires_in\":5}", "user_code: missing" },
		{ "{\"device_code\":\"d\",\"user_code\":\"u\","
		    "\"verification_uri\":\"javascript:alert(1)\","
		    "\"expires_in\":5}", "verification_uri: missing or not" },
		{ "{\"device_code\":\"d\",\"user_code\":\"u\","
		    "\"verification_uri\":\"https://x/\\\"><script>\","
		    "\"expires_in\":5}", "verification_uri: missing or not" },
		{ "{\"device_code\":\"d\",\"user_code\":\"u\","
		    "\"verification_uri\":\"https://x/d\","
		    "\"verification_uri_complete\":\"data:text/html,x\","
		    "\"expires_in\":5}", "verification_uri_complete: not" },
		{ "{\"device_code\":\"d\",\"user_code\":\"u\","
		    "\"verification_uri\":\"https://x/d\"}",
		    "expires_in: missing" },
		{ "{\"device_code\":\"d\",\"user_code\":\"u\","
		    "\"verification_uri\":\"https://x/d\",\"expires_in\":0}",
		    "expires_in: missing" },
		{ "{\"device_code\":\"d\",\"user_code\":\"u\","
		    "\"verification_uri\":\"https://x/d\","
		    "\"expires_in\":\"9\"}",
		    "expires_in: missing" },
		{ "{\"device_code\":\"d\",\"user_code\":\"u\","
		    "\"verification_uri\":\"https://x/d\",\"expires_in\":9,"
		    "\"interval\":-1}", "interval: not seconds" },
		{ "{\"device_code\":\"d\",\"user_code\":\"u\","
		    "\"verification_uri\":\"https://x/d\",\"expires_in\":9,"
		    "\"interval\":301}", "interval: more than 300 s" },
	};
	struct devcode_answer	ans;
	char			err[KILN_ERR_MAX];
	size_t			i;

	(void)state;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (devcode_parse(bad[i].body, strlen(bad[i].body), &ans, err,
		    sizeof(err)))
			fail_msg("accepted: %s", bad[i].body);
		if (strncmp(err, bad[i].err, strlen(bad[i].err)))
			fail_msg("%s: error \"%s\", wanted \"%s\"",
			    bad[i].body, err, bad[i].err);
		assert_null(ans.device_code);
		/* The error never carries the device code. */
		assert_null(strstr(err, "GmRhmh"));
	}
}

static void
devcode_poll_errors(void **state)
{
	static const struct {
		const char	*body;
		int		what;
		const char	*code;
	} cases[] = {
		{ "{\"error\":\"authorization_pending\"}", DEVCODE_PENDING,
		    "authorization_pending" },
		{ "{\"error\":\"slow_down\",\"error_description\":\"x\"}",
		    DEVCODE_SLOW, "slow_down" },
		{ "{\"error\":\"expired_token\"}", DEVCODE_EXPIRED,
		    "expired_token" },
		{ "{\"error\":\"access_denied\"}", DEVCODE_DENIED,
		    "access_denied" },
		{ "{\"error\":\"invalid_grant\"}", DEVCODE_FAILED,
		    "invalid_grant" },
		{ "{\"error\":\"invalid_client\"}", DEVCODE_FAILED,
		    "invalid_client" },
		{ "<html>502 Bad Gateway</html>", DEVCODE_TRANSIENT, "" },
		{ "{\"message\":\"busy\"}", DEVCODE_TRANSIENT, "" },
		{ "{\"error\":\"a b\"}", DEVCODE_TRANSIENT, "" },
		{ "{\"error\":7}", DEVCODE_TRANSIENT, "" },
		{ "", DEVCODE_TRANSIENT, "" },
	};
	char		code[DEVCODE_ERROR_MAX + 1];
	size_t		i;

	(void)state;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(devcode_poll_error(cases[i].body,
		    strlen(cases[i].body), code, sizeof(code)),
		    cases[i].what);
		assert_string_equal(code, cases[i].code);
	}
}

static void
devcode_request_bodies(void **state)
{
	struct source		src;
	struct oauth_request	req;
	char			err[KILN_ERR_MAX];

	(void)state;

	assert_true(parse(DC_HEAD DC_URL ",\"client_secret\":\"s3\","
	    "\"scope\":\"openid offline_access\"}", &src, err, sizeof(err)));

	/* 3.1: the device authorization request. */
	assert_true(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(req.body, "scope=openid%20offline_access"
	    "&client_id=tv&client_secret=s3");
	oauth_request_free(&req);

	/* 3.4: a poll with the device code. */
	src.device_code = strdup("dc/1");
	assert_true(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(req.body, "grant_type=urn%3Aietf%3Aparams%3A"
	    "oauth%3Agrant-type%3Adevice_code&device_code=dc%2F1"
	    "&client_id=tv&client_secret=s3");
	oauth_request_free(&req);
	free(src.device_code);
	src.device_code = NULL;

	/* A connection's refresh. */
	src.refresh_token = strdup("rt");
	assert_true(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(req.body, "grant_type=refresh_token"
	    "&refresh_token=rt&scope=openid%20offline_access"
	    "&client_id=tv&client_secret=s3");
	oauth_request_free(&req);
	source_free(&src);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(devcode_source_json),
		cmocka_unit_test(devcode_answer_parsed),
		cmocka_unit_test(devcode_answer_refused),
		cmocka_unit_test(devcode_poll_errors),
		cmocka_unit_test(devcode_request_bodies),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
