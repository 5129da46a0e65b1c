/*
 * fuzz_source.c: the admin API's request body parser. The body goes
 * through json_parse, then source_from_json as a new source (with
 * and without SOURCE_ALLOW_ENV) and as a PATCH of a valid, complete
 * source of each kind. An accepted source must hold every rule of
 * source.c and be something oauth_build can send.
 */

#include <sys/types.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kiln.h"
#include "fuzz.h"

#define ENV_NAME	"KILN_FUZZ_SECRET"
#define ENV_VALUE	"fuzz-env-secret-value"

static const char	*bases[] = {
	NULL,
	"{\"name\":\"base-cc\",\"kind\":\"client_credentials\","
	    "\"token_url\":\"https://idp.example/token\","
	    "\"client_id\":\"id\",\"client_secret\":\"cs\","
	    "\"scope\":\"read write\",\"audience\":\"api\"}",
	"{\"name\":\"base-rt\",\"kind\":\"refresh_token\","
	    "\"token_url\":\"https://idp.example/token\","
	    "\"refresh_token\":\"rt\",\"client_id\":\"id\","
	    "\"client_secret\":\"cs\",\"auth_method\":\"client_secret_basic\"}",
	"{\"name\":\"base-pw\",\"kind\":\"password\","
	    "\"token_url\":\"http://idp.example:8080/token\","
	    "\"username\":\"u\",\"password\":\"p\",\"access\":\"key\","
	    "\"require_header\":true}",
	"{\"name\":\"base-jl\",\"kind\":\"json_login\","
	    "\"token_url\":\"https://idp.example/login\","
	    "\"username\":\"u\",\"password\":\"p\","
	    "\"token_path\":\"data.token\",\"expires_at_path\":\"data.exp\","
	    "\"refresh_buffer\":30,\"fallback_lifetime\":600}",
};

static yajl_val		base_trees[KIND_JSON_LOGIN + 1];
/* Whether the input itself holds the variable's value. */
static int		env_in_input;

static int
path_ok(const char *p)
{
	if (p[0] == '\0' || p[0] == '.' || p[strlen(p) - 1] == '.')
		return (0);

	return (strstr(p, "..") == NULL);
}

static void
check_string(const char *s, int secret, int path)
{
	size_t		i, len;

	if (s == NULL)
		return;

	len = strlen(s);
	FUZZ_CHECK(len > 0 && len <= (secret ? 8192U : 2048U));
	if (secret)
		return;
	for (i = 0; i < len; i++)
		FUZZ_CHECK((unsigned char)s[i] >= 0x20 && s[i] != 0x7f);
	if (path)
		FUZZ_CHECK(path_ok(s));
}

static void
check_source(const struct source *src, int buildable)
{
	struct oauth_request	req;
	char			err[KILN_ERR_MAX];

	FUZZ_CHECK(source_name_valid(src->name));
	FUZZ_CHECK(src->kind >= KIND_CLIENT_CREDENTIALS &&
	    src->kind <= KIND_JSON_LOGIN);

	FUZZ_CHECK(src->token_url != NULL);
	FUZZ_CHECK(!strncasecmp(src->token_url, "http://", 7) ||
	    !strncasecmp(src->token_url, "https://", 8));
	FUZZ_CHECK(strchr(src->token_url, ' ') == NULL);

	check_string(src->token_url, 0, 0);
	check_string(src->client_id, 0, 0);
	check_string(src->client_secret, 1, 0);
	check_string(src->scope, 0, 0);
	check_string(src->audience, 0, 0);
	check_string(src->resource, 0, 0);
	check_string(src->refresh_token, 1, 0);
	check_string(src->username, 0, 0);
	check_string(src->password, 1, 0);
	check_string(src->token_path, 0, 1);
	check_string(src->expires_at_path, 0, 1);
	check_string(src->expires_in_path, 0, 1);

	FUZZ_CHECK(src->auth_method == AUTH_SECRET_POST ||
	    src->auth_method == AUTH_SECRET_BASIC);
	FUZZ_CHECK(src->access == ACCESS_OPEN || src->access == ACCESS_KEY);
	FUZZ_CHECK(src->refresh_buffer >= -1 && src->refresh_buffer <= 86400);
	FUZZ_CHECK(src->fallback_lifetime >= 1 &&
	    src->fallback_lifetime <= 31536000);
	FUZZ_CHECK(src->require_header == 0 || src->require_header == 1);
	FUZZ_CHECK(src->enabled == 0 || src->enabled == 1);

	switch (src->kind) {
	case KIND_CLIENT_CREDENTIALS:
		FUZZ_CHECK(src->client_id != NULL &&
		    src->client_secret != NULL);
		break;
	case KIND_REFRESH_TOKEN:
		FUZZ_CHECK(src->refresh_token != NULL);
		break;
	case KIND_JSON_LOGIN:
		FUZZ_CHECK(src->token_path != NULL);
		/* FALLTHROUGH */
	case KIND_PASSWORD:
		FUZZ_CHECK(src->username != NULL && src->password != NULL);
		break;
	}
	if (src->client_secret != NULL && src->kind != KIND_JSON_LOGIN)
		FUZZ_CHECK(src->client_id != NULL);

	/* What the API accepts, the refresher can send. */
	if (buildable) {
		FUZZ_CHECK(oauth_build(src, &req, err, sizeof(err)));
		FUZZ_CHECK(req.body != NULL && req.content_type != NULL);
		oauth_request_free(&req);
	}
}

static void
check_error(const char *err)
{
	FUZZ_CHECK(err[0] != '\0');
	FUZZ_CHECK(fuzz_printable(err));
	/* Every error names its field first. */
	FUZZ_CHECK(strstr(err, ": ") != NULL);
	if (!env_in_input)
		FUZZ_CHECK(strstr(err, ENV_VALUE) == NULL);
}

static void
one(yajl_val root, int flags)
{
	struct source	src;
	char		err[KILN_ERR_MAX];

	memset(&src, 0xa5, sizeof(src));
	memset(err, 'x', sizeof(err));
	if (source_from_json(root, flags, &src, err, sizeof(err))) {
		FUZZ_CHECK(err[0] == '\0');
		check_source(&src, !(flags & SOURCE_ALLOW_ENV));
	} else {
		check_error(err);
	}
	source_free(&src);
}

static void
patch(yajl_val root, int kind)
{
	struct source	src;
	char		err[KILN_ERR_MAX], name[KILN_NAME_MAX + 1];

	if (!source_from_json(base_trees[kind], 0, &src, err, sizeof(err)))
		abort();
	(void)snprintf(name, sizeof(name), "%s", src.name);

	memset(err, 'x', sizeof(err));
	if (source_from_json(root, SOURCE_PATCH, &src, err, sizeof(err))) {
		FUZZ_CHECK(err[0] == '\0');
		FUZZ_CHECK(!strcmp(src.name, name));
		FUZZ_CHECK(src.kind == kind);
		check_source(&src, 1);
	} else {
		check_error(err);
	}
	source_free(&src);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct source	src;
	int		kind;
	char		err[KILN_ERR_MAX];

	(void)argc;
	(void)argv;

	if (setenv(ENV_NAME, ENV_VALUE, 1) == -1)
		abort();

	for (kind = KIND_CLIENT_CREDENTIALS; kind <= KIND_JSON_LOGIN;
	    kind++) {
		base_trees[kind] = json_parse(bases[kind],
		    strlen(bases[kind]));
		if (base_trees[kind] == NULL ||
		    !source_from_json(base_trees[kind], 0, &src, err,
		    sizeof(err))) {
			fprintf(stderr, "base %d: %s\n", kind, err);
			abort();
		}
		check_source(&src, 1);
		source_free(&src);
	}

	return (0);
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	yajl_val	root;
	int		kind;

	if ((root = json_parse((const char *)data, size)) == NULL)
		return (0);

	FUZZ_CHECK(fuzz_tree_depth(root) <= FUZZ_DEPTH_MAX);
	FUZZ_CHECK(fuzz_json_strings_ok((const char *)data, size));

	env_in_input = memmem(data, size, ENV_VALUE,
	    sizeof(ENV_VALUE) - 1) != NULL;
	one(root, 0);
	one(root, SOURCE_ALLOW_ENV);
	for (kind = KIND_CLIENT_CREDENTIALS; kind <= KIND_JSON_LOGIN;
	    kind++)
		patch(root, kind);

	yajl_tree_free(root);

	return (0);
}
