/*
 * test_exchange.c: kind token_exchange (RFC 8693): the source JSON and
 * the request body.
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

#define TX_HEAD	"{\"name\":\"x\",\"kind\":\"token_exchange\"," \
	"\"token_url\":\"https://idp.example/token\","

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
	if (strcmp(err, want))
		fail_msg("error \"%s\", wanted \"%s\"", err, want);
	source_free(&src);
}

static void
exchange_source_json(void **state)
{
	struct source	src;
	char		err[KILN_ERR_MAX];

	(void)state;
	assert_true(parse(TX_HEAD "\"subject_source\":\"crm/default\","
	    "\"audience\":\"https://api.example\"}", &src, err,
	    sizeof(err)));
	assert_int_equal(src.kind, KIND_TOKEN_EXCHANGE);
	assert_string_equal(source_kind_name(src.kind), "token_exchange");
	assert_string_equal(src.subject_source, "crm");
	assert_null(src.client_secret);
	source_free(&src);

	refused(TX_HEAD "\"audience\":\"a\"}",
	    "subject_source: required for token_exchange");
	refused(TX_HEAD "\"subject_source\":\"crm/alice\"}",
	    "subject_source: must be a source name, or name/default");
	refused(TX_HEAD "\"subject_source\":\"Crm\"}",
	    "subject_source: must be a source name, or name/default");
	refused(TX_HEAD "\"subject_source\":\"x\"}",
	    "subject_source: a source cannot exchange its own token (cycle)");
	refused(TX_HEAD "\"subject_source\":\"crm\",\"actor_source\":\"x/"
	    "default\"}",
	    "actor_source: a source cannot exchange its own token (cycle)");
	refused(TX_HEAD "\"subject_source\":\"crm\",\"actor_token_type\":"
	    "\"urn:x\"}", "actor_token_type: only with actor_source");
	refused(TX_HEAD "\"subject_source\":\"crm\",\"client_secret\":"
	    "\"s\"}", "client_id: required with client_secret");
	refused("{\"name\":\"y\",\"kind\":\"client_credentials\","
	    "\"token_url\":\"https://idp.example/token\",\"client_id\":\"i\","
	    "\"client_secret\":\"s\",\"requested_token_type\":\"urn:x\"}",
	    "requested_token_type: only with kind token_exchange");
}

static void
exchange_request_body(void **state)
{
	struct oauth_request	req;
	struct source		src;
	char			err[KILN_ERR_MAX];

	(void)state;
	assert_true(parse(TX_HEAD "\"subject_source\":\"crm\","
	    "\"actor_source\":\"bot\",\"audience\":\"https://api.example\","
	    "\"requested_token_type\":\"urn:ietf:params:oauth:token-type:"
	    "jwt\",\"scope\":\"a b\",\"client_id\":\"kiln\","
	    "\"client_secret\":\"s3\"}", &src, err, sizeof(err)));

	/* No subject token (the engine fills it in): refused. */
	assert_false(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(err, "subject_token: missing");

	src.subject_token = strdup("SUBJ.tok");
	assert_false(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(err, "actor_token: missing");

	src.actor_token = strdup("ACT");
	assert_true(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(req.content_type,
	    "application/x-www-form-urlencoded");
	assert_null(req.authorization);
	assert_string_equal(req.body, "grant_type=urn%3Aietf%3Aparams%3A"
	    "oauth%3Agrant-type%3Atoken-exchange&subject_token=SUBJ.tok&"
	    "subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3A"
	    "access_token&requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3A"
	    "token-type%3Ajwt&audience=https%3A%2F%2Fapi.example&scope=a%20b&"
	    "actor_token=ACT&actor_token_type=urn%3Aietf%3Aparams%3Aoauth%3A"
	    "token-type%3Aaccess_token&client_id=kiln&client_secret=s3");
	oauth_request_free(&req);

	/* Basic auth: the secret leaves the body. */
	src.auth_method = AUTH_SECRET_BASIC;
	free(src.actor_token);
	src.actor_token = NULL;
	free(src.actor_source);
	src.actor_source = NULL;
	assert_true(oauth_build(&src, &req, err, sizeof(err)));
	assert_non_null(req.authorization);
	assert_null(strstr(req.body, "s3"));
	assert_null(strstr(req.body, "actor_token"));
	oauth_request_free(&req);
	source_free(&src);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(exchange_source_json),
		cmocka_unit_test(exchange_request_body),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
