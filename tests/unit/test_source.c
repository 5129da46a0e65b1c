/*
 * test_source.c: the token source JSON of DESIGN.md.
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

#define CC_REST	\
	"\"name\":\"svc\",\"kind\":\"client_credentials\"," \
	"\"client_id\":\"id\",\"client_secret\":\"csecret\""
#define CC_BASE	\
	CC_REST ",\"token_url\":\"https://idp.example/token\""
#define CC_HEAD	\
	"{\"name\":\"a\",\"kind\":\"client_credentials\","

struct outcome {
	struct source	src;
	char		err[KILN_ERR_MAX];
	int		ok;
};

static void
parse(const char *json, int flags, struct outcome *o)
{
	yajl_val	root;
	char		ebuf[128];

	root = yajl_tree_parse(json, ebuf, sizeof(ebuf));
	if (root == NULL)
		fail_msg("test JSON does not parse: %s: %s", ebuf, json);

	if (!(flags & SOURCE_PATCH))
		memset(o, 0xff, sizeof(*o));
	o->err[0] = '\0';
	o->ok = source_from_json(root, flags, &o->src, o->err,
	    sizeof(o->err));

	yajl_tree_free(root);
}

static void
parse_ok(const char *json, int flags, struct outcome *o)
{
	parse(json, flags, o);
	if (!o->ok)
		fail_msg("refused: %s: %s", o->err, json);
}

/* Refused, with an error that starts with the field's name. */
static void
parse_fails(const char *json, int flags, const char *field)
{
	struct outcome	o;
	size_t		n;

	parse(json, flags, &o);
	if (o.ok)
		fail_msg("accepted: %s", json);

	n = strlen(field);
	if (strncmp(o.err, field, n) || o.err[n] != ':')
		fail_msg("error \"%s\" does not name %s", o.err, field);

	source_free(&o.src);
}

static void
source_parses_client_credentials_with_defaults(void **state)
{
	struct outcome	o;

	(void)state;

	parse_ok("{" CC_BASE "}", 0, &o);

	assert_string_equal(o.src.name, "svc");
	assert_int_equal(o.src.kind, KIND_CLIENT_CREDENTIALS);
	assert_string_equal(o.src.token_url, "https://idp.example/token");
	assert_string_equal(o.src.client_id, "id");
	assert_string_equal(o.src.client_secret, "csecret");
	assert_int_equal(o.src.auth_method, AUTH_SECRET_POST);
	assert_int_equal(o.src.access, ACCESS_OPEN);
	assert_int_equal(o.src.refresh_buffer, -1);
	assert_int_equal(o.src.fallback_lifetime, 900);
	assert_int_equal(o.src.require_header, 0);
	assert_int_equal(o.src.enabled, 1);
	assert_string_equal(o.src.token_path, "access_token");
	assert_string_equal(o.src.expires_in_path, "expires_in");
	assert_null(o.src.expires_at_path);
	assert_null(o.src.scope);
	assert_null(o.src.audience);
	assert_null(o.src.resource);
	assert_null(o.src.refresh_token);
	assert_null(o.src.username);
	assert_null(o.src.password);

	source_free(&o.src);
}

static void
source_parses_every_field(void **state)
{
	struct outcome	o;

	(void)state;

	parse_ok("{\"name\":\"nsp\",\"kind\":\"json_login\","
	    "\"token_url\":\"http://nsp.example:1900/api/PublicApi/GetToken\","
	    "\"client_id\":\"cid\",\"client_secret\":\"cs\","
	    "\"auth_method\":\"client_secret_basic\","
	    "\"scope\":\"a b\",\"audience\":\"aud\",\"resource\":\"res\","
	    "\"refresh_token\":\"rt\",\"username\":\"nspuser\","
	    "\"password\":\"pw\",\"token_path\":\"Data.access_token\","
	    "\"expires_at_path\":\"Data.expires\","
	    "\"expires_in_path\":\"Data.expires_in\","
	    "\"refresh_buffer\":300,\"fallback_lifetime\":600,"
	    "\"access\":\"key\",\"require_header\":true,\"enabled\":false}",
	    0, &o);

	assert_string_equal(o.src.name, "nsp");
	assert_int_equal(o.src.kind, KIND_JSON_LOGIN);
	assert_int_equal(o.src.auth_method, AUTH_SECRET_BASIC);
	assert_string_equal(o.src.scope, "a b");
	assert_string_equal(o.src.audience, "aud");
	assert_string_equal(o.src.resource, "res");
	assert_string_equal(o.src.refresh_token, "rt");
	assert_string_equal(o.src.username, "nspuser");
	assert_string_equal(o.src.password, "pw");
	assert_string_equal(o.src.token_path, "Data.access_token");
	assert_string_equal(o.src.expires_at_path, "Data.expires");
	assert_string_equal(o.src.expires_in_path, "Data.expires_in");
	assert_int_equal(o.src.refresh_buffer, 300);
	assert_int_equal(o.src.fallback_lifetime, 600);
	assert_int_equal(o.src.access, ACCESS_KEY);
	assert_int_equal(o.src.require_header, 1);
	assert_int_equal(o.src.enabled, 0);

	source_free(&o.src);
}

static void
source_requires_fields_per_kind(void **state)
{
	(void)state;

	parse_fails("{}", 0, "name");
	parse_fails("{\"name\":\"a\"}", 0, "kind");
	parse_fails("{\"name\":\"a\",\"kind\":\"client_credentials\"}", 0,
	    "token_url");

	parse_fails("{\"name\":\"a\",\"kind\":\"client_credentials\","
	    "\"token_url\":\"https://x/t\",\"client_secret\":\"s\"}", 0,
	    "client_id");
	parse_fails("{\"name\":\"a\",\"kind\":\"client_credentials\","
	    "\"token_url\":\"https://x/t\",\"client_id\":\"i\"}", 0,
	    "client_secret");

	parse_fails("{\"name\":\"a\",\"kind\":\"refresh_token\","
	    "\"token_url\":\"https://x/t\"}", 0, "refresh_token");
	parse_fails("{\"name\":\"a\",\"kind\":\"refresh_token\","
	    "\"token_url\":\"https://x/t\",\"refresh_token\":\"r\","
	    "\"client_secret\":\"s\"}", 0, "client_id");

	parse_fails("{\"name\":\"a\",\"kind\":\"password\","
	    "\"token_url\":\"https://x/t\",\"password\":\"p\"}", 0,
	    "username");
	parse_fails("{\"name\":\"a\",\"kind\":\"password\","
	    "\"token_url\":\"https://x/t\",\"username\":\"u\"}", 0,
	    "password");

	parse_fails("{\"name\":\"a\",\"kind\":\"json_login\","
	    "\"token_url\":\"https://x/t\",\"username\":\"u\","
	    "\"token_path\":\"t\"}", 0, "password");
	parse_fails("{\"name\":\"a\",\"kind\":\"json_login\","
	    "\"token_url\":\"https://x/t\",\"username\":\"u\","
	    "\"password\":\"p\"}", 0, "token_path");
}

static void
source_accepts_minimal_source_of_each_kind(void **state)
{
	struct outcome	o;

	(void)state;

	parse_ok("{\"name\":\"a\",\"kind\":\"refresh_token\","
	    "\"token_url\":\"https://x/t\",\"refresh_token\":\"r\"}", 0, &o);
	assert_int_equal(o.src.kind, KIND_REFRESH_TOKEN);
	source_free(&o.src);

	parse_ok("{\"name\":\"a\",\"kind\":\"password\","
	    "\"token_url\":\"https://x/t\",\"username\":\"u\","
	    "\"password\":\"p\"}", 0, &o);
	assert_int_equal(o.src.kind, KIND_PASSWORD);
	source_free(&o.src);

	parse_ok("{\"name\":\"a\",\"kind\":\"json_login\","
	    "\"token_url\":\"https://x/t\",\"username\":\"u\","
	    "\"password\":\"p\",\"token_path\":\"Data.token\"}", 0, &o);
	assert_int_equal(o.src.kind, KIND_JSON_LOGIN);
	assert_string_equal(o.src.token_path, "Data.token");
	source_free(&o.src);
}

static void
source_rejects_wrong_types(void **state)
{
	(void)state;

	parse_fails("[]", 0, "source");
	parse_fails("\"x\"", 0, "source");
	parse_fails("{\"name\":5}", 0, "name");
	parse_fails(CC_HEAD "\"token_url\":5}", 0, "token_url");
	parse_fails("{" CC_BASE ",\"scope\":[\"a\"]}", 0, "scope");
	parse_fails(CC_HEAD "\"client_id\":true}", 0, "client_id");
	parse_fails("{" CC_BASE ",\"refresh_buffer\":\"300\"}", 0,
	    "refresh_buffer");
	parse_fails("{" CC_BASE ",\"refresh_buffer\":300.5}", 0,
	    "refresh_buffer");
	parse_fails("{" CC_BASE ",\"fallback_lifetime\":true}", 0,
	    "fallback_lifetime");
	parse_fails("{" CC_BASE ",\"enabled\":\"yes\"}", 0, "enabled");
	parse_fails("{" CC_BASE ",\"require_header\":1}", 0,
	    "require_header");
	parse_fails("{" CC_BASE ",\"access\":\"closed\"}", 0, "access");
	parse_fails("{" CC_BASE ",\"auth_method\":\"client_secret_jwt\"}", 0,
	    "auth_method");
	parse_fails("{\"name\":\"a\",\"kind\":\"saml\"}", 0, "kind");
	parse_fails("{\"name\":\"a\",\"kind\":1}", 0, "kind");
	parse_fails("{" CC_BASE ",\"token_path\":\"\"}", 0, "token_path");
	parse_fails("{" CC_BASE ",\"token_path\":\"a..b\"}", 0,
	    "token_path");
	parse_fails("{" CC_BASE ",\"expires_at_path\":\".a\"}", 0,
	    "expires_at_path");
	parse_fails(CC_HEAD "\"client_id\":\"\"}", 0, "client_id");
	parse_fails("{" CC_BASE ",\"username\":\"a\\nb\"}", 0, "username");
}

static void
source_rejects_out_of_range_numbers(void **state)
{
	struct outcome	o;

	(void)state;

	parse_fails("{" CC_BASE ",\"refresh_buffer\":-1}", 0,
	    "refresh_buffer");
	parse_fails("{" CC_BASE ",\"refresh_buffer\":86401}", 0,
	    "refresh_buffer");
	parse_fails("{" CC_BASE ",\"refresh_buffer\":1e30}", 0,
	    "refresh_buffer");
	parse_fails("{" CC_BASE ",\"refresh_buffer\":"
	    "99999999999999999999999}", 0, "refresh_buffer");
	parse_fails("{" CC_BASE ",\"fallback_lifetime\":0}", 0,
	    "fallback_lifetime");
	parse_fails("{" CC_BASE ",\"fallback_lifetime\":31536001}", 0,
	    "fallback_lifetime");

	parse(("{" CC_BASE ",\"refresh_buffer\":86401}"), 0, &o);
	assert_string_equal(o.err,
	    "refresh_buffer: must be an integer between 0 and 86400");
	source_free(&o.src);

	parse_ok("{" CC_BASE ",\"refresh_buffer\":0,"
	    "\"fallback_lifetime\":31536000}", 0, &o);
	assert_int_equal(o.src.refresh_buffer, 0);
	assert_int_equal(o.src.fallback_lifetime, 31536000);
	source_free(&o.src);
}

static void
source_rejects_huge_strings(void **state)
{
	struct outcome	o;
	char		*json, *big;

	(void)state;

	big = malloc(100 * 1024 + 1);
	json = malloc(100 * 1024 + 256);
	assert_non_null(big);
	assert_non_null(json);
	memset(big, 'A', 100 * 1024);
	big[100 * 1024] = '\0';

	(void)snprintf(json, 100 * 1024 + 256, "{" CC_BASE
	    ",\"scope\":\"%s\"}", big);
	parse_fails(json, 0, "scope");

	(void)snprintf(json, 100 * 1024 + 256, "{\"name\":\"a\","
	    "\"kind\":\"password\",\"token_url\":\"https://x/t\","
	    "\"username\":\"u\",\"password\":\"%s\"}", big);
	parse_fails(json, 0, "password");

	/* The limits: 2048 for plain strings, 8192 for secrets. */
	(void)snprintf(json, 100 * 1024 + 256, "{" CC_BASE
	    ",\"scope\":\"%.2048s\"}", big);
	parse_ok(json, 0, &o);
	assert_int_equal(strlen(o.src.scope), 2048);
	source_free(&o.src);

	(void)snprintf(json, 100 * 1024 + 256, "{" CC_BASE
	    ",\"scope\":\"%.2049s\"}", big);
	parse_fails(json, 0, "scope");

	(void)snprintf(json, 100 * 1024 + 256, "{" CC_REST
	    ",\"token_url\":\"https://x/%.2048s\"}", big);
	parse_fails(json, 0, "token_url");

	(void)snprintf(json, 100 * 1024 + 256, "{\"name\":\"a\","
	    "\"kind\":\"password\",\"token_url\":\"https://x/t\","
	    "\"username\":\"u\",\"password\":\"%.8192s\"}", big);
	parse_ok(json, 0, &o);
	assert_int_equal(strlen(o.src.password), 8192);
	source_free(&o.src);

	free(json);
	free(big);
}

static void
source_rejects_unknown_keys(void **state)
{
	struct outcome	o;

	(void)state;

	parse_fails("{" CC_BASE ",\"clientsecret\":\"x\"}", 0,
	    "clientsecret");
	parse_fails("{" CC_BASE ",\"Name\":\"x\"}", 0, "Name");

	parse("{" CC_BASE ",\"bad\\nkey\":1}", 0, &o);
	assert_false(o.ok);
	assert_string_equal(o.err, "bad?key: unknown field");
	source_free(&o.src);
}

static void
source_rejects_duplicate_keys(void **state)
{
	struct outcome	o;

	(void)state;

	parse("{" CC_BASE ",\"client_id\":\"again\"}", 0, &o);
	assert_false(o.ok);
	assert_string_equal(o.err, "client_id: given twice");
	source_free(&o.src);
}

static void
source_checks_name_pattern(void **state)
{
	char		name[80];

	(void)state;

	assert_true(source_name_valid("a"));
	assert_true(source_name_valid("0"));
	assert_true(source_name_valid("nsp-prod_2"));
	assert_false(source_name_valid(""));
	assert_false(source_name_valid("-a"));
	assert_false(source_name_valid("_a"));
	assert_false(source_name_valid("Abc"));
	assert_false(source_name_valid("a.b"));
	assert_false(source_name_valid("a b"));
	assert_false(source_name_valid("a/b"));
	assert_false(source_name_valid(NULL));

	memset(name, 'a', sizeof(name));
	name[64] = '\0';
	assert_true(source_name_valid(name));
	name[64] = 'a';
	name[65] = '\0';
	assert_false(source_name_valid(name));

	parse_fails("{\"name\":\"Bad Name\",\"kind\":\"refresh_token\"}", 0,
	    "name");
}

static void
source_requires_http_token_url(void **state)
{
	struct outcome	o;

	(void)state;

	parse_fails("{" CC_REST ",\"token_url\":\"ftp://x/t\"}", 0,
	    "token_url");
	parse_fails("{" CC_REST ",\"token_url\":\"idp.example/token\"}", 0,
	    "token_url");
	parse_fails("{" CC_REST ",\"token_url\":\"https://\"}", 0,
	    "token_url");
	parse_fails("{" CC_REST ",\"token_url\":\"http://a b/\"}", 0,
	    "token_url");
	parse_fails("{" CC_REST ",\"token_url\":\"file:///etc/passwd\"}",
	    0, "token_url");

	parse_ok("{\"name\":\"svc\",\"kind\":\"client_credentials\","
	    "\"token_url\":\"http://127.0.0.1:9000/oauth/token?x=1\","
	    "\"client_id\":\"i\",\"client_secret\":\"s\"}", 0, &o);
	source_free(&o.src);
}

static void
source_resolves_env_secrets(void **state)
{
	struct outcome	o;

	(void)state;

	assert_int_equal(setenv("KILN_TEST_PW", "from-env", 1), 0);

	parse_ok("{\"name\":\"a\",\"kind\":\"password\","
	    "\"token_url\":\"https://x/t\",\"username\":\"u\","
	    "\"password\":{\"env\":\"KILN_TEST_PW\"}}", SOURCE_ALLOW_ENV, &o);
	assert_string_equal(o.src.password, "from-env");
	source_free(&o.src);

	assert_int_equal(unsetenv("KILN_TEST_PW"), 0);
}

static void
source_refuses_env_without_allow_flag(void **state)
{
	struct outcome	o;

	(void)state;

	assert_int_equal(setenv("KILN_TEST_PW", "from-env", 1), 0);

	parse("{\"name\":\"a\",\"kind\":\"password\","
	    "\"token_url\":\"https://x/t\",\"username\":\"u\","
	    "\"password\":{\"env\":\"KILN_TEST_PW\"}}", 0, &o);
	assert_false(o.ok);
	assert_memory_equal(o.err, "password: ", 10);
	assert_null(strstr(o.err, "from-env"));
	source_free(&o.src);

	/* Plain strings only for non-secrets, even with the flag. */
	parse_fails("{" CC_BASE ",\"username\":{\"env\":\"KILN_TEST_PW\"}}",
	    SOURCE_ALLOW_ENV, "username");

	assert_int_equal(unsetenv("KILN_TEST_PW"), 0);
}

static void
source_env_secret_missing_names_field(void **state)
{
	struct outcome	o;

	(void)state;

	assert_int_equal(unsetenv("KILN_TEST_NOPE"), 0);

	parse("{\"name\":\"a\",\"kind\":\"client_credentials\","
	    "\"token_url\":\"https://x/t\",\"client_id\":\"i\","
	    "\"client_secret\":{\"env\":\"KILN_TEST_NOPE\"}}",
	    SOURCE_ALLOW_ENV, &o);
	assert_false(o.ok);
	assert_string_equal(o.err, "client_secret: environment variable "
	    "KILN_TEST_NOPE is not set");
	source_free(&o.src);

	parse_fails("{\"name\":\"a\",\"kind\":\"refresh_token\","
	    "\"token_url\":\"https://x/t\","
	    "\"refresh_token\":{\"env\":\"BAD-NAME\"}}", SOURCE_ALLOW_ENV,
	    "refresh_token");
	parse_fails("{\"name\":\"a\",\"kind\":\"refresh_token\","
	    "\"token_url\":\"https://x/t\","
	    "\"refresh_token\":{\"env\":\"X\",\"y\":1}}", SOURCE_ALLOW_ENV,
	    "refresh_token");
}

static void
source_errors_never_echo_secrets(void **state)
{
	struct outcome	o;
	char		json[10000];
	char		big[8200];

	(void)state;

	memset(big, 'S', 8193);
	big[8193] = '\0';
	(void)snprintf(json, sizeof(json), "{" CC_BASE
	    ",\"password\":\"%s\"}", big);
	parse(json, 0, &o);
	assert_false(o.ok);
	assert_null(strstr(o.err, "SSSS"));
	source_free(&o.src);

	parse("{\"name\":\"a\",\"kind\":\"client_credentials\","
	    "\"token_url\":\"https://x/t\",\"client_id\":\"i\","
	    "\"client_secret\":\"TOPSECRET\",\"oops\":1}", 0, &o);
	assert_false(o.ok);
	assert_null(strstr(o.err, "TOPSECRET"));
	source_free(&o.src);
}

static void
source_patch_changes_only_given_fields(void **state)
{
	struct outcome	o;

	(void)state;

	parse_ok("{" CC_BASE ",\"scope\":\"s1\",\"refresh_buffer\":120}", 0,
	    &o);

	parse_ok("{\"client_secret\":\"rotated\",\"enabled\":false,"
	    "\"name\":\"svc\",\"kind\":\"client_credentials\"}",
	    SOURCE_PATCH, &o);

	assert_string_equal(o.src.client_secret, "rotated");
	assert_int_equal(o.src.enabled, 0);
	assert_string_equal(o.src.scope, "s1");
	assert_string_equal(o.src.client_id, "id");
	assert_int_equal(o.src.refresh_buffer, 120);
	assert_string_equal(o.src.token_url, "https://idp.example/token");

	/* null clears an optional string and restores defaults. */
	parse_ok("{\"scope\":null,\"refresh_buffer\":null,"
	    "\"token_path\":null,\"enabled\":null}", SOURCE_PATCH, &o);
	assert_null(o.src.scope);
	assert_int_equal(o.src.refresh_buffer, -1);
	assert_string_equal(o.src.token_path, "access_token");
	assert_int_equal(o.src.enabled, 1);

	parse_ok("{}", SOURCE_PATCH, &o);
	assert_string_equal(o.src.name, "svc");

	source_free(&o.src);
}

static void
source_patch_refuses_name_and_kind_change(void **state)
{
	struct outcome	o;

	(void)state;

	parse_ok("{" CC_BASE "}", 0, &o);
	parse(("{\"name\":\"other\"}"), SOURCE_PATCH, &o);
	assert_false(o.ok);
	assert_string_equal(o.err, "name: cannot be changed");
	source_free(&o.src);

	parse_ok("{" CC_BASE "}", 0, &o);
	parse(("{\"kind\":\"password\"}"), SOURCE_PATCH, &o);
	assert_false(o.ok);
	assert_string_equal(o.err, "kind: cannot be changed");
	source_free(&o.src);
}

static void
source_patch_keeps_required_fields(void **state)
{
	struct outcome	o;

	(void)state;

	parse_ok("{" CC_BASE "}", 0, &o);
	parse(("{\"client_secret\":null}"), SOURCE_PATCH, &o);
	assert_false(o.ok);
	assert_memory_equal(o.err, "client_secret: ", 15);
	source_free(&o.src);

	parse_ok("{" CC_BASE "}", 0, &o);
	parse(("{\"refresh_buffer\":100000}"), SOURCE_PATCH, &o);
	assert_false(o.ok);
	assert_memory_equal(o.err, "refresh_buffer: ", 16);
	source_free(&o.src);
}

static void
source_free_wipes_everything(void **state)
{
	struct outcome	o;
	size_t		i;
	u_int8_t	*p;

	(void)state;

	parse_ok("{" CC_BASE ",\"scope\":\"x\"}", 0, &o);
	source_free(&o.src);

	p = (u_int8_t *)&o.src;
	for (i = 0; i < sizeof(o.src); i++)
		assert_int_equal(p[i], 0);

	/* Freeing twice, or a zeroed source, is harmless. */
	source_free(&o.src);
	source_free(NULL);
}

static void
source_kind_names_round_trip(void **state)
{
	(void)state;

	assert_int_equal(source_kind_parse("client_credentials"),
	    KIND_CLIENT_CREDENTIALS);
	assert_int_equal(source_kind_parse("refresh_token"),
	    KIND_REFRESH_TOKEN);
	assert_int_equal(source_kind_parse("password"), KIND_PASSWORD);
	assert_int_equal(source_kind_parse("json_login"), KIND_JSON_LOGIN);
	assert_int_equal(source_kind_parse("Password"), 0);
	assert_int_equal(source_kind_parse(""), 0);
	assert_int_equal(source_kind_parse(NULL), 0);

	assert_string_equal(source_kind_name(KIND_JSON_LOGIN), "json_login");
	assert_string_equal(source_kind_name(KIND_CLIENT_CREDENTIALS),
	    "client_credentials");
	assert_string_equal(source_kind_name(0), "unknown");
	assert_string_equal(source_kind_name(99), "unknown");
}

/* Shown token URLs: userinfo never, query values only to whom asked. */
static void
source_url_redact_hides_credentials(void **state)
{
	static const char	*cases[][3] = {
		{ "http://user:pass@h:8/p?client_secret=x&a=1#f",
		    "http://h:8/p?client_secret=x&a=1#f",
		    "http://h:8/p?client_secret=***&a=***#***" },
		{ "https://a@b@h/p@q", "https://h/p@q", "https://h/p@q" },
		{ "http://h/p?bare&e=&&z", "http://h/p?bare&e=&&z",
		    "http://h/p?***&e=***&&***" },
		{ "http://h", "http://h", "http://h" },
	};
	char			*s;
	size_t			i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		s = source_url_redact(cases[i][0], 0);
		assert_string_equal(s, cases[i][1]);
		free(s);
		s = source_url_redact(cases[i][0], 1);
		assert_string_equal(s, cases[i][2]);
		free(s);
	}
}

static void
source_origin_normalizes(void **state)
{
	static const struct {
		const char	*url;
		const char	*origin;
	} cases[] = {
		{ "https://IdP.Example/token", "https://idp.example:443" },
		{ "HTTPS://idp.example:443/a?b#c", "https://idp.example:443" },
		{ "http://idp.example/token", "http://idp.example:80" },
		{ "http://idp.example:8080", "http://idp.example:8080" },
		{ "http://127.0.0.1:0080/x", "http://127.0.0.1:80" },
		{ "http://idp.example?x=1", "http://idp.example:80" },
		{ "http://[::1]:9000/t", "http://[::1]:9000" },
		{ "https://[FE80::1]/t", "https://[fe80::1]:443" },
	};
	size_t		i;
	char		out[SOURCE_ORIGIN_MAX];

	(void)state;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		source_origin(cases[i].url, out, sizeof(out));
		assert_string_equal(out, cases[i].origin);
	}
}

static void
source_origin_of_odd_urls_is_the_url_itself(void **state)
{
	static const char	*odd[] = {
		"http://good.example@evil.example/",
		"http://good.example\\@evil.example/",
		"http://good.example:/",
		"http://good.example:99999/",
		"http://good.example:8x/",
		"http://%67ood.example/",
		"ftp://good.example/",
		"http:///token",
	};
	size_t		i;
	char		a[SOURCE_ORIGIN_MAX], b[SOURCE_ORIGIN_MAX];

	(void)state;

	for (i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		source_origin(odd[i], a, sizeof(a));
		assert_memory_equal(a, "url:", 4);
		assert_int_equal(strlen(a), 4 + 64);
		/* Any change of such a URL is a change of origin. */
		source_origin("http://good.example/", b, sizeof(b));
		assert_string_not_equal(a, b);
	}
	source_origin(odd[0], a, sizeof(a));
	source_origin(odd[0], b, sizeof(b));
	assert_string_equal(a, b);
}

/* pem with its newlines as JSON escapes, into out. */
static void
pem_json(const char *pem, char *out, size_t len)
{
	size_t		n;

	for (n = 0; *pem != '\0' && n + 3 < len; pem++) {
		if (*pem == '\n') {
			out[n++] = '\\';
			out[n++] = 'n';
		} else {
			out[n++] = *pem;
		}
	}
	out[n] = '\0';
}

/* A Google key file fills private_key, issuer, key_id and token_url. */
static void
source_service_account_fills_unset_fields(void **state)
{
	struct jws_key	key;
	struct outcome	o;
	char		*pem, esc[4096], sa[6000], err[KILN_ERR_MAX];

	(void)state;
	assert_true(jws_key_generate(JWS_ES256, &key, err, sizeof(err)));
	assert_true(jws_key_pem(&key, &pem));
	pem_json(pem, esc, sizeof(esc));
	(void)snprintf(sa, sizeof(sa), "{\"type\":\"service_account\","
	    "\"private_key_id\":\"abc123\",\"private_key\":\"%s\","
	    "\"client_email\":\"sa@p.iam.gserviceaccount.com\","
	    "\"token_uri\":\"https://oauth2.example/token\"}", esc);
	assert_int_equal(setenv("KILN_TEST_GSA", sa, 1), 0);

	parse_ok("{\"name\":\"g\",\"kind\":\"jwt_bearer\","
	    "\"service_account\":{\"env\":\"KILN_TEST_GSA\"}}",
	    SOURCE_ALLOW_ENV, &o);
	assert_int_equal(o.src.kind, KIND_JWT_BEARER);
	assert_string_equal(o.src.private_key, pem);
	assert_string_equal(o.src.issuer, "sa@p.iam.gserviceaccount.com");
	assert_string_equal(o.src.key_id, "abc123");
	assert_string_equal(o.src.token_url, "https://oauth2.example/token");
	assert_true(o.src.key_new);
	source_free(&o.src);

	/* Set fields win, before or after it. */
	parse_ok("{\"name\":\"g\",\"kind\":\"jwt_bearer\","
	    "\"token_url\":\"https://a.example/t\",\"service_account\":"
	    "{\"env\":\"KILN_TEST_GSA\"},\"issuer\":\"other@x\"}",
	    SOURCE_ALLOW_ENV, &o);
	assert_string_equal(o.src.token_url, "https://a.example/t");
	assert_string_equal(o.src.issuer, "other@x");
	source_free(&o.src);

	/* Through the API, {"env"} is refused. */
	parse_fails("{\"name\":\"g\",\"kind\":\"jwt_bearer\","
	    "\"service_account\":{\"env\":\"KILN_TEST_GSA\"}}", 0,
	    "service_account");

	(void)snprintf(sa, sizeof(sa), "{\"type\":\"authorized_user\"}");
	assert_int_equal(setenv("KILN_TEST_GSA", sa, 1), 0);
	parse_fails("{\"name\":\"g\",\"kind\":\"jwt_bearer\","
	    "\"service_account\":{\"env\":\"KILN_TEST_GSA\"}}",
	    SOURCE_ALLOW_ENV, "service_account");
	(void)snprintf(sa, sizeof(sa), "{\"private_key\":\"x\","
	    "\"client_email\":\"a@b\",\"token_uri\":\"https://t.example\"}");
	assert_int_equal(setenv("KILN_TEST_GSA", sa, 1), 0);
	parse_fails("{\"name\":\"g\",\"kind\":\"jwt_bearer\","
	    "\"service_account\":{\"env\":\"KILN_TEST_GSA\"}}",
	    SOURCE_ALLOW_ENV, "private_key");
	(void)unsetenv("KILN_TEST_GSA");

	free(pem);
	jws_key_free(&key);
}

static void
source_private_key_jwt_needs_a_key(void **state)
{
	struct outcome	o;

	(void)state;
	parse_ok("{\"name\":\"e\",\"kind\":\"client_credentials\","
	    "\"token_url\":\"https://idp.example/token\","
	    "\"client_id\":\"c\",\"auth_method\":\"private_key_jwt\","
	    "\"private_key\":{\"generate\":\"ES256\"}}", 0, &o);
	assert_int_equal(o.src.auth_method, AUTH_PRIVATE_KEY_JWT);
	assert_int_equal(o.src.key_generate, JWS_ES256);
	assert_null(o.src.private_key);
	assert_null(o.src.client_secret);
	source_free(&o.src);

	parse_fails("{\"name\":\"e\",\"kind\":\"client_credentials\","
	    "\"token_url\":\"https://idp.example/token\","
	    "\"client_id\":\"c\",\"auth_method\":\"private_key_jwt\"}",
	    0, "private_key");
	parse_fails("{\"name\":\"e\",\"kind\":\"client_credentials\","
	    "\"token_url\":\"https://idp.example/token\","
	    "\"client_id\":\"c\",\"auth_method\":\"private_key_jwt\","
	    "\"private_key\":{\"generate\":\"HS256\"}}", 0, "private_key");
	parse_fails("{\"name\":\"e\",\"kind\":\"client_credentials\","
	    "\"token_url\":\"https://idp.example/token\","
	    "\"client_id\":\"c\",\"client_secret\":\"s\","
	    "\"private_key\":{\"generate\":\"ES256\"}}", 0, "private_key");
	parse_fails("{\"name\":\"e\",\"kind\":\"client_credentials\","
	    "\"token_url\":\"https://idp.example/token\","
	    "\"client_id\":\"c\",\"auth_method\":\"private_key_jwt\","
	    "\"private_key\":{\"generate\":\"ES256\"},"
	    "\"assertion_alg\":\"RS256\"}", 0, "assertion_alg");
	parse_fails("{\"name\":\"e\",\"kind\":\"jwt_bearer\","
	    "\"token_url\":\"https://idp.example/token\","
	    "\"private_key\":{\"generate\":\"ES256\"}}", 0, "issuer");
}

/* authorization_code: a person's token is for keys unless said open. */
static void
source_authorization_code_kind(void **state)
{
	struct outcome	o;

	(void)state;

#define AC_HEAD	"{\"name\":\"fhir\",\"kind\":\"authorization_code\"," \
	"\"token_url\":\"https://idp.example/token\",\"client_id\":\"app\""
	parse_ok(AC_HEAD ",\"authorize_url\":\"https://idp.example/auth\","
	    "\"revocation_url\":\"https://idp.example/revoke\","
	    "\"extra_authorize_params\":{\"prompt\":\"consent\"}}", 0, &o);
	assert_int_equal(o.src.kind, KIND_AUTHORIZATION_CODE);
	assert_int_equal(o.src.access, ACCESS_KEY);
	assert_null(o.src.client_secret);
	assert_string_equal(o.src.extra_authorize_params,
	    "{\"prompt\":\"consent\"}");
	assert_string_equal(source_kind_name(o.src.kind), "authorization_code");
	source_free(&o.src);

	parse_ok(AC_HEAD ",\"authorize_url\":\"https://idp.example/auth\","
	    "\"access\":\"open\"}", 0, &o);
	assert_int_equal(o.src.access, ACCESS_OPEN);
	source_free(&o.src);

	parse_fails(AC_HEAD "}", 0, "authorize_url");
	parse_fails(AC_HEAD ",\"authorize_url\":\"idp\"}", 0,
	    "authorize_url");
	parse_fails(AC_HEAD ",\"authorize_url\":\"https://i/a\","
	    "\"extra_authorize_params\":{\"code_challenge\":\"x\"}}", 0,
	    "extra_authorize_params");
	parse_fails(AC_HEAD ",\"authorize_url\":\"https://i/a\","
	    "\"extra_authorize_params\":[\"x\"]}", 0,
	    "extra_authorize_params");
	parse_fails("{" CC_BASE ",\"authorize_url\":\"https://i/a\"}", 0,
	    "authorize_url");
#undef AC_HEAD
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    source_parses_client_credentials_with_defaults),
		cmocka_unit_test(source_parses_every_field),
		cmocka_unit_test(source_authorization_code_kind),
		cmocka_unit_test(source_requires_fields_per_kind),
		cmocka_unit_test(source_accepts_minimal_source_of_each_kind),
		cmocka_unit_test(source_rejects_wrong_types),
		cmocka_unit_test(source_rejects_out_of_range_numbers),
		cmocka_unit_test(source_rejects_huge_strings),
		cmocka_unit_test(source_rejects_unknown_keys),
		cmocka_unit_test(source_rejects_duplicate_keys),
		cmocka_unit_test(source_checks_name_pattern),
		cmocka_unit_test(source_requires_http_token_url),
		cmocka_unit_test(source_resolves_env_secrets),
		cmocka_unit_test(source_refuses_env_without_allow_flag),
		cmocka_unit_test(source_env_secret_missing_names_field),
		cmocka_unit_test(source_errors_never_echo_secrets),
		cmocka_unit_test(source_patch_changes_only_given_fields),
		cmocka_unit_test(source_patch_refuses_name_and_kind_change),
		cmocka_unit_test(source_patch_keeps_required_fields),
		cmocka_unit_test(source_free_wipes_everything),
		cmocka_unit_test(source_kind_names_round_trip),
		cmocka_unit_test(source_url_redact_hides_credentials),
		cmocka_unit_test(source_origin_normalizes),
		cmocka_unit_test(source_service_account_fills_unset_fields),
		cmocka_unit_test(source_private_key_jwt_needs_a_key),
		cmocka_unit_test(source_origin_of_odd_urls_is_the_url_itself),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
