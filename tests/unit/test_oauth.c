/*
 * test_oauth.c: upstream request bodies and answer parsing, per kind.
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

#include "kiln.h"

#define SENT		1755624343000LL		/* 2025-08-19T17:25:43Z */
#define JWT_HEAD	"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

/* For literal bodies: their length without the terminating NUL. */
#define PARSE_FAILS(src, lit, want)	\
	parse_fails((src), (lit), sizeof(lit) - 1, (want))

static void
source_init(struct source *src, int kind)
{
	memset(src, 0, sizeof(*src));
	(void)snprintf(src->name, sizeof(src->name), "nsp");
	src->kind = kind;
	src->auth_method = AUTH_SECRET_POST;
	src->fallback_lifetime = 900;
	src->refresh_buffer = -1;
	src->token_url = "https://idp.example/token";
	src->token_path = "access_token";
	src->expires_in_path = "expires_in";
}

/* A JWT whose payload is the given JSON; the signature is not checked. */
static char *
jwt_make(const char *payload)
{
	size_t		i, len;
	char		*out, *p;

	len = strlen(payload);
	out = calloc(1, sizeof(JWT_HEAD) + 4 * ((len + 2) / 3) + 16);
	assert_non_null(out);

	memcpy(out, JWT_HEAD ".", sizeof(JWT_HEAD));
	p = out + sizeof(JWT_HEAD);
	EVP_EncodeBlock((unsigned char *)p, (const unsigned char *)payload,
	    (int)len);

	for (i = 0; p[i] != '\0'; i++) {
		if (p[i] == '+')
			p[i] = '-';
		else if (p[i] == '/')
			p[i] = '_';
		else if (p[i] == '=')
			p[i] = '\0';
	}
	strcat(p, ".c2lnbmF0dXJl");

	return (out);
}

static void
parse_ok(const struct source *src, const char *body,
    struct oauth_answer *ans)
{
	char		err[KILN_ERR_MAX];

	if (!oauth_parse(src, body, strlen(body), SENT, ans, err,
	    sizeof(err)))
		fail_msg("refused answer: %s: %s", err, body);
}

static void
parse_fails(const struct source *src, const char *body, size_t len,
    const char *want)
{
	struct oauth_answer	ans;
	char			err[KILN_ERR_MAX];

	memset(&ans, 0x5a, sizeof(ans));
	if (oauth_parse(src, body, len, SENT, &ans, err, sizeof(err)))
		fail_msg("accepted answer: %.200s", body);

	if (strcmp(err, want))
		fail_msg("error \"%s\", wanted \"%s\"", err, want);

	assert_null(ans.token);
	assert_null(ans.refresh_token);
}

static int64_t
expiry_of(const struct source *src, const char *body, const char *from)
{
	struct oauth_answer	ans;
	int64_t			ms;

	parse_ok(src, body, &ans);
	if (strcmp(ans.expiry_from, from))
		fail_msg("expiry from %s, wanted %s: %s", ans.expiry_from,
		    from, body);

	ms = ans.expires_ms;
	oauth_answer_free(&ans);

	return (ms);
}

static void
oauth_builds_client_credentials_post_form(void **state)
{
	struct oauth_request	req;
	struct source		src;
	char			err[KILN_ERR_MAX];

	(void)state;

	source_init(&src, KIND_CLIENT_CREDENTIALS);
	src.client_id = "my-client";
	src.client_secret = "s&=+ %/~";
	src.scope = "read write";
	src.audience = "https://api.example/";
	src.resource = "urn:x";

	assert_true(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(req.body, "grant_type=client_credentials"
	    "&scope=read%20write&audience=https%3A%2F%2Fapi.example%2F"
	    "&resource=urn%3Ax&client_id=my-client"
	    "&client_secret=s%26%3D%2B%20%25%2F~");
	assert_int_equal(req.len, strlen(req.body));
	assert_string_equal(req.content_type,
	    "application/x-www-form-urlencoded");
	assert_null(req.authorization);
	oauth_request_free(&req);
	assert_null(req.body);

	src.scope = NULL;
	src.audience = NULL;
	src.resource = NULL;
	src.client_secret = "s";
	assert_true(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(req.body, "grant_type=client_credentials"
	    "&client_id=my-client&client_secret=s");
	oauth_request_free(&req);
}

/* The claims of the JWT that follows key= in a form body, parsed. */
static yajl_val
form_jwt(const char *body, const char *key, yajl_val *header)
{
	const char	*p, *dot, *end;
	u_int8_t	*raw;
	yajl_val	v;
	size_t		n;

	p = strstr(body, key);
	assert_non_null(p);
	p += strlen(key);
	dot = strchr(p, '.');
	assert_non_null(dot);
	assert_true(json_b64_decode(p, dot - p, JSON_B64_URL, &raw, &n));
	*header = json_parse((const char *)raw, n);
	free(raw);
	end = strchr(dot + 1, '.');
	assert_non_null(end);
	assert_true(json_b64_decode(dot + 1, end - dot - 1, JSON_B64_URL,
	    &raw, &n));
	v = json_parse((const char *)raw, n);
	free(raw);
	assert_non_null(v);
	assert_non_null(*header);

	return (v);
}

static const char *
jstr(yajl_val v, const char *path)
{
	return (YAJL_GET_STRING(json_path_get(v, path)));
}

static int64_t
jint(yajl_val v, const char *path)
{
	return (YAJL_GET_INTEGER(json_path_get(v, path)));
}

#define PKJWT_FORM	"grant_type=client_credentials&scope=read" \
	"&client_id=my-client&client_assertion_type=urn%3Aietf%3Aparams" \
	"%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=ey"
#define GRANT_FORM	"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-" \
	"type%3Ajwt-bearer&assertion=ey"

/* RFC 7523 2.2: a client assertion instead of the secret. */
static void
oauth_builds_private_key_jwt_form(void **state)
{
	struct oauth_request	req;
	struct jws_key		key;
	struct source		src;
	yajl_val		c, h;
	char			*pem, err[KILN_ERR_MAX];

	(void)state;
	assert_true(jws_key_generate(JWS_ES256, &key, err, sizeof(err)));
	assert_true(jws_key_pem(&key, &pem));

	source_init(&src, KIND_CLIENT_CREDENTIALS);
	src.auth_method = AUTH_PRIVATE_KEY_JWT;
	src.client_id = "my-client";
	src.scope = "read";

	assert_false(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(err, "private_key: missing");

	src.private_key = pem;
	assert_true(oauth_build(&src, &req, err, sizeof(err)));
	assert_int_equal(strncmp(req.body, PKJWT_FORM, strlen(PKJWT_FORM)),
	    0);
	assert_null(strstr(req.body, "client_secret"));
	assert_null(req.authorization);

	c = form_jwt(req.body, "client_assertion=", &h);
	assert_string_equal(jstr(h, "alg"), "ES256");
	assert_string_equal(jstr(h, "kid"), key.thumbprint);
	assert_string_equal(jstr(c, "iss"), "my-client");
	assert_string_equal(jstr(c, "sub"), "my-client");
	assert_string_equal(jstr(c, "aud"), "https://idp.example/token");
	assert_int_equal(jint(c, "exp") - jint(c, "iat"), 60);
	assert_null(json_path_get(c, "scope"));
	yajl_tree_free(c);
	yajl_tree_free(h);
	oauth_request_free(&req);

	src.key_id = "k-2";
	src.assertion_audience = "https://idp.example";
	assert_true(oauth_build(&src, &req, err, sizeof(err)));
	c = form_jwt(req.body, "client_assertion=", &h);
	assert_string_equal(jstr(h, "kid"), "k-2");
	assert_string_equal(jstr(c, "aud"), "https://idp.example");
	yajl_tree_free(c);
	yajl_tree_free(h);
	oauth_request_free(&req);

	/* A key that does not fit the algorithm is an error, no body. */
	src.key_alg = JWS_RS256;
	assert_false(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(err, "private_key: RS256 needs an RSA key, this "
	    "one is EC");
	assert_null(req.body);

	free(pem);
	jws_key_free(&key);
}

/* RFC 7523 2.1: the assertion is the grant. */
static void
oauth_builds_jwt_bearer_grant(void **state)
{
	struct oauth_request	req;
	struct jws_key		key;
	struct source		src;
	yajl_val		c, h;
	char			*pem, err[KILN_ERR_MAX];

	(void)state;
	assert_true(jws_key_generate(JWS_RS256, &key, err, sizeof(err)));
	assert_true(jws_key_pem(&key, &pem));

	source_init(&src, KIND_JWT_BEARER);
	src.private_key = pem;
	src.issuer = "sa@proj.iam.gserviceaccount.com";
	src.key_id = "0123abcd";
	src.scope = "https://www.googleapis.com/auth/cloud-platform";

	assert_true(oauth_build(&src, &req, err, sizeof(err)));
	assert_int_equal(strncmp(req.body, GRANT_FORM, strlen(GRANT_FORM)),
	    0);
	assert_null(strstr(req.body, "client_id"));
	assert_null(strstr(req.body, "scope="));
	c = form_jwt(req.body, "assertion=", &h);
	assert_string_equal(jstr(h, "alg"), "RS256");
	assert_string_equal(jstr(h, "kid"), "0123abcd");
	assert_string_equal(jstr(c, "iss"), src.issuer);
	assert_string_equal(jstr(c, "sub"), src.issuer);
	assert_string_equal(jstr(c, "aud"), "https://idp.example/token");
	assert_string_equal(jstr(c, "scope"), src.scope);
	assert_int_equal(jint(c, "exp") - jint(c, "iat"), 3600);
	yajl_tree_free(c);
	yajl_tree_free(h);
	oauth_request_free(&req);

	/* A client of its own, a subject and a target audience. */
	src.client_id = "gsa";
	src.subject = "user@example.com";
	src.scope = NULL;
	src.target_audience = "https://svc.example";
	assert_true(oauth_build(&src, &req, err, sizeof(err)));
	assert_non_null(strstr(req.body, "&client_id=gsa"));
	c = form_jwt(req.body, "assertion=", &h);
	assert_string_equal(jstr(c, "sub"), "user@example.com");
	assert_string_equal(jstr(c, "target_audience"), "https://svc.example");
	assert_null(json_path_get(c, "scope"));
	yajl_tree_free(c);
	yajl_tree_free(h);
	oauth_request_free(&req);

	free(pem);
	jws_key_free(&key);
}

static void
oauth_builds_basic_auth_rfc6749(void **state)
{
	struct oauth_request	req;
	struct source		src;
	char			err[KILN_ERR_MAX];

	(void)state;

	source_init(&src, KIND_CLIENT_CREDENTIALS);
	src.auth_method = AUTH_SECRET_BASIC;
	src.client_id = "my client";
	src.client_secret = "p@ss:w/rd";

	/* base64("my%20client:p%40ss%3Aw%2Frd") */
	assert_true(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(req.authorization,
	    "Basic bXklMjBjbGllbnQ6cCU0MHNzJTNBdyUyRnJk");
	assert_string_equal(req.body, "grant_type=client_credentials");
	assert_null(strstr(req.body, "client_id"));
	oauth_request_free(&req);
	assert_null(req.authorization);

	/* A public client: id only. */
	source_init(&src, KIND_REFRESH_TOKEN);
	src.auth_method = AUTH_SECRET_BASIC;
	src.refresh_token = "rt";
	src.client_id = "id";
	assert_true(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(req.authorization, "Basic aWQ6");
	assert_string_equal(req.body,
	    "grant_type=refresh_token&refresh_token=rt");
	oauth_request_free(&req);
}

static void
oauth_builds_refresh_token_form(void **state)
{
	struct oauth_request	req;
	struct source		src;
	char			err[KILN_ERR_MAX];

	(void)state;

	source_init(&src, KIND_REFRESH_TOKEN);
	src.refresh_token = "rt/1+2";
	src.scope = "offline_access";
	src.audience = "not-sent";

	assert_true(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(req.body, "grant_type=refresh_token"
	    "&refresh_token=rt%2F1%2B2&scope=offline_access");
	assert_null(req.authorization);
	oauth_request_free(&req);

	src.client_id = "cid";
	src.client_secret = "cs";
	assert_true(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(req.body, "grant_type=refresh_token"
	    "&refresh_token=rt%2F1%2B2&scope=offline_access"
	    "&client_id=cid&client_secret=cs");
	oauth_request_free(&req);
}

static void
oauth_builds_password_form(void **state)
{
	struct oauth_request	req;
	struct source		src;
	char			err[KILN_ERR_MAX];

	(void)state;

	source_init(&src, KIND_PASSWORD);
	src.username = "alice@example.com";
	src.password = "pä ss";

	assert_true(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(req.body, "grant_type=password"
	    "&username=alice%40example.com&password=p%C3%A4%20ss");
	oauth_request_free(&req);

	src.client_id = "cid";
	src.auth_method = AUTH_SECRET_BASIC;
	src.client_secret = "cs";
	src.scope = "openid";
	assert_true(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(req.body, "grant_type=password"
	    "&username=alice%40example.com&password=p%C3%A4%20ss"
	    "&scope=openid");
	assert_string_equal(req.authorization, "Basic Y2lkOmNz");
	oauth_request_free(&req);
}

static void
oauth_builds_json_login_with_yajl(void **state)
{
	struct oauth_request	req;
	struct source		src;
	char			err[KILN_ERR_MAX];

	(void)state;

	source_init(&src, KIND_JSON_LOGIN);
	src.username = "nsp\"user";
	src.password = "p\\w\n\x01</script>";
	src.client_id = "ignored";

	assert_true(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(req.content_type, "application/json");
	assert_string_equal(req.body, "{\"username\":\"nsp\\\"user\","
	    "\"password\":\"p\\\\w\\n\\u0001</script>\"}");
	assert_int_equal(req.len, strlen(req.body));
	assert_null(req.authorization);
	oauth_request_free(&req);

	src.password = "bad\xff\xfe";
	assert_false(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(err, "password: not valid UTF-8");
	assert_null(req.body);
}

static void
oauth_build_refuses_missing_fields(void **state)
{
	struct oauth_request	req;
	struct source		src;
	char			err[KILN_ERR_MAX];

	(void)state;

	source_init(&src, KIND_CLIENT_CREDENTIALS);
	src.client_id = "id";
	assert_false(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(err, "client_secret: missing");

	source_init(&src, KIND_REFRESH_TOKEN);
	assert_false(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(err, "refresh_token: missing");

	source_init(&src, KIND_PASSWORD);
	src.username = "u";
	assert_false(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(err, "password: missing");

	source_init(&src, KIND_JSON_LOGIN);
	src.password = "p";
	assert_false(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(err, "username: missing");

	source_init(&src, 0);
	assert_false(oauth_build(&src, &req, err, sizeof(err)));
	assert_null(req.body);
}

static void
oauth_parses_client_credentials_answer(void **state)
{
	struct oauth_answer	ans;
	struct source		src;

	(void)state;

	source_init(&src, KIND_CLIENT_CREDENTIALS);
	parse_ok(&src, "{\"access_token\":\"abc.def\",\"token_type\":"
	    "\"bearer\",\"expires_in\":3600,\"scope\":\"x\"}", &ans);

	assert_string_equal(ans.token, "abc.def");
	assert_string_equal(ans.token_type, "Bearer");
	assert_null(ans.refresh_token);
	assert_int_equal(ans.expires_ms, SENT + 3600 * 1000LL);
	assert_string_equal(ans.expiry_from, "expires_in");

	oauth_answer_free(&ans);
	assert_null(ans.token);
}

static void
oauth_parses_rotated_refresh_token(void **state)
{
	struct oauth_answer	ans;
	struct source		src;

	(void)state;

	source_init(&src, KIND_REFRESH_TOKEN);
	parse_ok(&src, "{\"access_token\":\"a\",\"refresh_token\":\"r2\","
	    "\"expires_in\":\"120\"}", &ans);
	assert_string_equal(ans.refresh_token, "r2");
	assert_int_equal(ans.expires_ms, SENT + 120 * 1000LL);
	oauth_answer_free(&ans);

	/* Absent or null: nothing rotated. */
	parse_ok(&src, "{\"access_token\":\"a\",\"refresh_token\":null}",
	    &ans);
	assert_null(ans.refresh_token);
	oauth_answer_free(&ans);

	PARSE_FAILS(&src, "{\"access_token\":\"a\",\"refresh_token\":5}",
	    "refresh_token in answer is not a string");

	/* Other kinds ignore a malformed one. */
	source_init(&src, KIND_PASSWORD);
	parse_ok(&src, "{\"access_token\":\"a\",\"refresh_token\":5}", &ans);
	assert_null(ans.refresh_token);
	oauth_answer_free(&ans);

	parse_ok(&src, "{\"access_token\":\"a\",\"refresh_token\":\"r\"}",
	    &ans);
	assert_string_equal(ans.refresh_token, "r");
	oauth_answer_free(&ans);
}

static void
oauth_parses_json_login_dotted_paths(void **state)
{
	struct oauth_answer	ans;
	struct source		src;
	int64_t			t;

	(void)state;

	source_init(&src, KIND_JSON_LOGIN);
	src.token_path = "Data.access_token";
	src.expires_at_path = "Data.expires";

	parse_ok(&src, "{\"Success\":true,\"Data\":{\"access_token\":"
	    "\"nsp-token\",\"expires\":\"2025-08-19T18:25:43.555542Z\"}}",
	    &ans);
	assert_string_equal(ans.token, "nsp-token");
	assert_string_equal(ans.expiry_from, "expires_at");
	assert_true(isotime_parse("2025-08-19T18:25:43.555Z", &t));
	assert_int_equal(ans.expires_ms, t);
	oauth_answer_free(&ans);

	/* Offsets and epoch seconds work as expiry fields too. */
	assert_int_equal(expiry_of(&src, "{\"Data\":{\"access_token\":\"t\","
	    "\"expires\":\"2025-08-19T23:55:43+05:30\"}}", "expires_at"),
	    SENT + 3600 * 1000LL);
	assert_int_equal(expiry_of(&src, "{\"Data\":{\"access_token\":\"t\","
	    "\"expires\":1755627943}}", "expires_at"), SENT + 3600000LL);
	assert_int_equal(expiry_of(&src, "{\"Data\":{\"access_token\":\"t\","
	    "\"expires\":1755627943.5}}", "expires_at"), SENT + 3600500LL);
	assert_int_equal(expiry_of(&src, "{\"Data\":{\"access_token\":\"t\","
	    "\"expires\":\"1755627943\"}}", "expires_at"), SENT + 3600000LL);
	assert_int_equal(expiry_of(&src, "{\"Data\":{\"access_token\":\"t\","
	    "\"expires\":1755627943250}}", "expires_at"), SENT + 3600250LL);

	PARSE_FAILS(&src, "{\"access_token\":\"top-level\"}",
	    "answer has no token at Data.access_token");
}

static void
oauth_expiry_prefers_expires_in(void **state)
{
	struct source	src;
	char		*jwt, body[512];

	(void)state;

	source_init(&src, KIND_JSON_LOGIN);
	src.expires_at_path = "expires_at";
	jwt = jwt_make("{\"sub\":\"x\",\"exp\":1755631543}");

	(void)snprintf(body, sizeof(body), "{\"access_token\":\"%s\","
	    "\"expires_in\":60,\"expires_at\":1755627943}", jwt);
	assert_int_equal(expiry_of(&src, body, "expires_in"),
	    SENT + 60000);

	(void)snprintf(body, sizeof(body), "{\"access_token\":\"%s\","
	    "\"expires_at\":1755627943}", jwt);
	assert_int_equal(expiry_of(&src, body, "expires_at"),
	    SENT + 3600000);

	(void)snprintf(body, sizeof(body), "{\"access_token\":\"%s\"}", jwt);
	assert_int_equal(expiry_of(&src, body, "jwt"), SENT + 7200000);

	assert_int_equal(expiry_of(&src, "{\"access_token\":\"opaque\"}",
	    "fallback"), SENT + 900000);

	src.fallback_lifetime = 600;
	assert_int_equal(expiry_of(&src, "{\"access_token\":\"opaque\"}",
	    "fallback"), SENT + 600000);

	free(jwt);
}

static void
oauth_expiry_ignores_unusable_values(void **state)
{
	static const char	*bodies[] = {
		"{\"access_token\":\"t\",\"expires_in\":0}",
		"{\"access_token\":\"t\",\"expires_in\":-5}",
		"{\"access_token\":\"t\",\"expires_in\":1e30}",
		"{\"access_token\":\"t\",\"expires_in\":31536001}",
		"{\"access_token\":\"t\",\"expires_in\":"
		    "99999999999999999999999999}",
		"{\"access_token\":\"t\",\"expires_in\":\"soon\"}",
		"{\"access_token\":\"t\",\"expires_in\":\"-60\"}",
		"{\"access_token\":\"t\",\"expires_in\":\"99999999999\"}",
		"{\"access_token\":\"t\",\"expires_in\":true}",
		"{\"access_token\":\"t\",\"expires_in\":{\"v\":60}}",
		"{\"access_token\":\"t\",\"expires_at\":\"tomorrow\"}",
		"{\"access_token\":\"t\","
		    "\"expires_at\":\"2025-02-30T00:00:00Z\"}",
		"{\"access_token\":\"t\","
		    "\"expires_at\":\"2020-01-01T00:00:00Z\"}",
		"{\"access_token\":\"t\",\"expires_at\":1000}",
		"{\"access_token\":\"t\",\"expires_at\":-1755627943}",
		"{\"access_token\":\"t\",\"expires_at\":1e300}",
		"{\"access_token\":\"t\",\"expires_at\":[1]}",
	};
	struct source		src;
	size_t			i;

	(void)state;

	source_init(&src, KIND_CLIENT_CREDENTIALS);
	src.expires_at_path = "expires_at";

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		assert_int_equal(expiry_of(&src, bodies[i], "fallback"),
		    SENT + 900000);
	}
}

static void
oauth_refuses_missing_or_wrong_token(void **state)
{
	struct source	src;

	(void)state;

	source_init(&src, KIND_CLIENT_CREDENTIALS);

	PARSE_FAILS(&src, "{\"token_type\":\"bearer\"}",
	    "answer has no token at access_token");
	PARSE_FAILS(&src, "{\"access_token\":null}",
	    "answer has no token at access_token");
	PARSE_FAILS(&src, "{\"access_token\":12345}",
	    "token at access_token is not a string");
	PARSE_FAILS(&src, "{\"access_token\":[\"a\"]}",
	    "token at access_token is not a string");
	PARSE_FAILS(&src, "{\"access_token\":{\"v\":\"a\"}}",
	    "token at access_token is not a string");
	PARSE_FAILS(&src, "{\"access_token\":\"\"}",
	    "token at access_token is empty");
	PARSE_FAILS(&src, "{\"access_token\":\"a b\"}",
	    "token at access_token has invalid characters");
	PARSE_FAILS(&src, "{\"access_token\":\"a\\r\\nX-Evil: 1\"}",
	    "token at access_token has invalid characters");
}

static void
oauth_reports_sanitized_upstream_error(void **state)
{
	struct oauth_answer	ans;
	struct source		src;
	char			body[512], want[128];

	(void)state;

	source_init(&src, KIND_PASSWORD);

	PARSE_FAILS(&src, "{\"error\":\"invalid_grant\","
	    "\"error_description\":\"bad password hunter2\"}",
	    "upstream error: invalid_grant");
	PARSE_FAILS(&src, "{\"access_token\":\"\",\"error\":\"denied\"}",
	    "upstream error: denied");

	/* Printable only, at most 64 characters. */
	(void)snprintf(body, sizeof(body), "{\"error\":\"x\\u0007y\\n%s\"}",
	    "0123456789012345678901234567890123456789"
	    "0123456789012345678901234567890123456789");
	(void)snprintf(want, sizeof(want), "upstream error: x?y?%s",
	    "0123456789012345678901234567890123456789"
	    "01234567890123456789");
	parse_fails(&src, body, strlen(body), want);

	/* A token wins over an error field. */
	parse_ok(&src, "{\"access_token\":\"t\",\"error\":\"x\"}", &ans);
	assert_string_equal(ans.token, "t");
	oauth_answer_free(&ans);
}

static void
oauth_refuses_non_json_answers(void **state)
{
	static const char	*bodies[] = {
		"<html>502 Bad Gateway</html>",
		"[\"access_token\"]",
		"\"access_token\"",
		"42",
		"null",
		"{\"access_token\":\"t\"",
		"{\"access_token\":\"t\"} trailing",
		"access_token=t&expires_in=3600",
	};
	struct source		src;
	size_t			i;

	(void)state;

	source_init(&src, KIND_CLIENT_CREDENTIALS);

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		parse_fails(&src, bodies[i], strlen(bodies[i]),
		    "answer is not JSON");
	}

	parse_fails(&src, "", 0, "answer is not JSON");
	parse_fails(&src, NULL, 0, "answer is not JSON");
	PARSE_FAILS(&src, "{\"access_token\":\"t\"}\0{}",
	    "answer is not JSON");
}

static void
oauth_reads_body_without_nul(void **state)
{
	struct oauth_answer	ans;
	struct source		src;
	const char		*body;
	char			*exact;
	char			err[KILN_ERR_MAX];

	(void)state;

	source_init(&src, KIND_CLIENT_CREDENTIALS);

	/* Only len bytes count: the rest of the buffer is not read. */
	body = "{\"access_token\":\"tok\"}GARBAGE";
	assert_true(oauth_parse(&src, body, 22, SENT, &ans, err,
	    sizeof(err)));
	assert_string_equal(ans.token, "tok");
	oauth_answer_free(&ans);

	exact = malloc(22);
	assert_non_null(exact);
	memcpy(exact, body, 22);
	assert_true(oauth_parse(&src, exact, 22, SENT, &ans, err,
	    sizeof(err)));
	assert_string_equal(ans.token, "tok");
	oauth_answer_free(&ans);
	free(exact);
}

static void
oauth_refuses_huge_values(void **state)
{
	struct oauth_answer	ans;
	struct source		src;
	size_t			len;
	char			*body;
	char			err[KILN_ERR_MAX];

	(void)state;

	source_init(&src, KIND_CLIENT_CREDENTIALS);

	/* A 100 KB token. */
	len = 100 * 1024;
	body = malloc(len + 64);
	assert_non_null(body);
	memcpy(body, "{\"access_token\":\"", 17);
	memset(body + 17, 'T', len);
	memcpy(body + 17 + len, "\"}", 3);
	parse_fails(&src, body, strlen(body),
	    "token at access_token is too long");
	free(body);

	/* A 16 KB token is fine. */
	len = 16384;
	body = malloc(len + 64);
	assert_non_null(body);
	memcpy(body, "{\"access_token\":\"", 17);
	memset(body + 17, 'T', len);
	memcpy(body + 17 + len, "\"}", 3);
	assert_true(oauth_parse(&src, body, strlen(body), SENT, &ans, err,
	    sizeof(err)));
	assert_int_equal(strlen(ans.token), 16384);
	oauth_answer_free(&ans);
	free(body);

	/* Answers above 1 MiB are refused before parsing. */
	len = 1024 * 1024 + 1;
	body = malloc(len);
	assert_non_null(body);
	memset(body, ' ', len);
	body[0] = '{';
	body[len - 1] = '}';
	parse_fails(&src, body, len, "answer is too large");
	free(body);
}

/* {"access_token":"t","x":[[...]]} with depth nested arrays. */
static char *
nested_make(size_t depth)
{
	size_t		i, off;
	char		*body;

	body = malloc(2 * depth + 64);
	assert_non_null(body);

	off = (size_t)sprintf(body, "{\"access_token\":\"t\",\"x\":");
	for (i = 0; i < depth; i++)
		body[off++] = '[';
	for (i = 0; i < depth; i++)
		body[off++] = ']';
	body[off++] = '}';
	body[off] = '\0';

	return (body);
}

static void
oauth_refuses_deeply_nested_json(void **state)
{
	struct oauth_answer	ans;
	struct source		src;
	size_t			i, depth;
	char			*body;

	(void)state;

	source_init(&src, KIND_CLIENT_CREDENTIALS);

	/* Half a million brackets would exhaust yajl's recursive free. */
	depth = 500000;
	body = malloc(2 * depth + 1);
	assert_non_null(body);
	for (i = 0; i < depth; i++) {
		body[i] = '[';
		body[depth + i] = ']';
	}
	body[2 * depth] = '\0';
	parse_fails(&src, body, 2 * depth, "answer is nested too deeply");
	free(body);

	/* Depth 64 in all (the object plus 63 arrays) is fine, 65 is not. */
	body = nested_make(63);
	parse_ok(&src, body, &ans);
	oauth_answer_free(&ans);
	free(body);

	body = nested_make(64);
	parse_fails(&src, body, strlen(body), "answer is nested too deeply");
	free(body);

	/* Brackets inside strings do not count. */
	body = nested_make(100);
	body[24] = '"';
	body[24 + 199] = '"';
	parse_ok(&src, body, &ans);
	assert_string_equal(ans.token, "t");
	oauth_answer_free(&ans);
	free(body);

	parse_ok(&src, "{\"access_token\":\"t\",\"x\":\"[[[[\\\"[[\"}",
	    &ans);
	oauth_answer_free(&ans);
}

/*
 * yajl_tree_parse allows comments: brackets or a quote inside one must
 * not fool the depth count (a 1 MiB answer could then nest 500000 deep).
 */
static void
oauth_refuses_nesting_hidden_by_comments(void **state)
{
	static const char	*hide[] = { "/*", "*/", "/*\"*/", "//\"\n" };
	struct oauth_answer	ans;
	struct source		src;
	size_t			i, depth, off;
	char			*body;
	yajl_val		root;

	(void)state;

	source_init(&src, KIND_CLIENT_CREDENTIALS);

	/* A comment of 100 closing brackets, then 100 opening ones. */
	depth = 100;
	body = malloc(4 * depth + 64);
	assert_non_null(body);
	off = (size_t)sprintf(body, "%s", hide[0]);
	for (i = 0; i < depth; i++)
		body[off++] = ']';
	off += (size_t)sprintf(body + off, "%s", hide[1]);
	for (i = 0; i < depth; i++)
		body[off++] = '[';
	for (i = 0; i < depth; i++)
		body[off++] = ']';
	body[off] = '\0';
	parse_fails(&src, body, off, "answer is nested too deeply");
	assert_null(json_parse(body, off));
	free(body);

	/* A quote in a comment, then half a million brackets. */
	for (i = 2; i < 4; i++) {
		depth = 500000;
		body = malloc(2 * depth + 64);
		assert_non_null(body);
		off = (size_t)sprintf(body, "%s{\"access_token\":\"t\","
		    "\"x\":", hide[i]);
		memset(body + off, '[', depth);
		memset(body + off + depth, ']', depth);
		off += 2 * depth;
		body[off++] = '}';
		body[off] = '\0';
		parse_fails(&src, body, off, "answer is nested too deeply");
		assert_null(json_parse(body, off));
		free(body);
	}

	/* Comments themselves are still fine, brackets in them too. */
	parse_ok(&src, "/* [[ \" */{\"access_token\":\"t\"} // ]\"\n",
	    &ans);
	assert_string_equal(ans.token, "t");
	oauth_answer_free(&ans);

	root = json_parse("[1/*]*/,2]//", 12);
	assert_non_null(root);
	assert_int_equal(root->u.array.len, 2);
	yajl_tree_free(root);
}

static void
oauth_errors_never_contain_token_or_body(void **state)
{
	struct oauth_answer	ans;
	struct source		src;
	const char		*bodies[4];
	size_t			i;
	char			err[KILN_ERR_MAX];

	(void)state;

	source_init(&src, KIND_REFRESH_TOKEN);
	bodies[0] = "{\"access_token\":\"SECRET TOKEN\"}";
	bodies[1] = "{\"access_token\":5,\"SECRET\":\"SECRET\"}";
	bodies[2] = "<SECRET>";
	bodies[3] = "{\"access_token\":\"t\",\"refresh_token\":[\"SECRET\"]}";

	for (i = 0; i < 4; i++) {
		err[0] = '\0';
		assert_false(oauth_parse(&src, bodies[i], strlen(bodies[i]),
		    SENT, &ans, err, sizeof(err)));
		assert_true(err[0] != '\0');
		assert_null(strstr(err, "SECRET"));
	}
}

static void
oauth_normalises_token_type(void **state)
{
	struct oauth_answer	ans;
	struct source		src;

	(void)state;

	source_init(&src, KIND_CLIENT_CREDENTIALS);

	parse_ok(&src, "{\"access_token\":\"t\",\"token_type\":\"DPoP\"}",
	    &ans);
	assert_string_equal(ans.token_type, "DPoP");
	oauth_answer_free(&ans);

	parse_ok(&src, "{\"access_token\":\"t\",\"token_type\":\"BEARER\"}",
	    &ans);
	assert_string_equal(ans.token_type, "Bearer");
	oauth_answer_free(&ans);

	parse_ok(&src, "{\"access_token\":\"t\",\"token_type\":5}", &ans);
	assert_string_equal(ans.token_type, "Bearer");
	oauth_answer_free(&ans);

	parse_ok(&src, "{\"access_token\":\"t\",\"token_type\":"
	    "\"abcdefghijklmnopqrstuvwxyz0123456789\"}", &ans);
	assert_string_equal(ans.token_type, "Bearer");
	oauth_answer_free(&ans);

	parse_ok(&src, "{\"access_token\":\"t\",\"token_type\":\"a b\"}",
	    &ans);
	assert_string_equal(ans.token_type, "Bearer");
	oauth_answer_free(&ans);
}

/* RFC 6749 4.1.3 with RFC 7636 4.5; then the refresh of the grant. */
static void
oauth_builds_authorization_code_grant(void **state)
{
	struct oauth_request	req;
	struct source		src;
	char			err[KILN_ERR_MAX];

	(void)state;

	source_init(&src, KIND_AUTHORIZATION_CODE);
	src.client_id = "app";
	src.code = "c/1";
	src.code_verifier = "v";
	src.redirect_uri = "https://kiln.example/oauth/callback";
	assert_true(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(req.body, "grant_type=authorization_code&code=c%2F1"
	    "&redirect_uri=https%3A%2F%2Fkiln.example%2Foauth%2Fcallback"
	    "&code_verifier=v&client_id=app");
	oauth_request_free(&req);

	src.code_verifier = NULL;
	assert_false(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(err, "code_verifier: missing");

	src.code = NULL;
	src.refresh_token = "rt";
	src.client_secret = "s";
	assert_true(oauth_build(&src, &req, err, sizeof(err)));
	assert_string_equal(req.body, "grant_type=refresh_token"
	    "&refresh_token=rt&client_id=app&client_secret=s");
	oauth_request_free(&req);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(oauth_builds_client_credentials_post_form),
		cmocka_unit_test(oauth_builds_basic_auth_rfc6749),
		cmocka_unit_test(oauth_builds_authorization_code_grant),
		cmocka_unit_test(oauth_builds_private_key_jwt_form),
		cmocka_unit_test(oauth_builds_jwt_bearer_grant),
		cmocka_unit_test(oauth_builds_refresh_token_form),
		cmocka_unit_test(oauth_builds_password_form),
		cmocka_unit_test(oauth_builds_json_login_with_yajl),
		cmocka_unit_test(oauth_build_refuses_missing_fields),
		cmocka_unit_test(oauth_parses_client_credentials_answer),
		cmocka_unit_test(oauth_parses_rotated_refresh_token),
		cmocka_unit_test(oauth_parses_json_login_dotted_paths),
		cmocka_unit_test(oauth_expiry_prefers_expires_in),
		cmocka_unit_test(oauth_expiry_ignores_unusable_values),
		cmocka_unit_test(oauth_refuses_missing_or_wrong_token),
		cmocka_unit_test(oauth_reports_sanitized_upstream_error),
		cmocka_unit_test(oauth_refuses_non_json_answers),
		cmocka_unit_test(oauth_reads_body_without_nul),
		cmocka_unit_test(oauth_refuses_huge_values),
		cmocka_unit_test(oauth_refuses_deeply_nested_json),
		cmocka_unit_test(oauth_refuses_nesting_hidden_by_comments),
		cmocka_unit_test(oauth_errors_never_contain_token_or_body),
		cmocka_unit_test(oauth_normalises_token_type),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
