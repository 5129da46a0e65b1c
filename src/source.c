/*
 * source.c: the token source JSON of DESIGN.md, shared by the sources file
 * and the admin API. Every error names its field first and never carries
 * a secret.
 */

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <yajl/yajl_gen.h>

#include "kiln.h"

#define SOURCE_STRING_MAX	2048
#define SOURCE_SECRET_MAX	8192
#define SOURCE_ENV_MAX		128
#define SOURCE_PEM_MAX		32768

#define F_NAME			1
#define F_KIND			2
#define F_URL			3
#define F_STRING		4
#define F_SECRET		5
#define F_PATH			6
#define F_INT			7
#define F_BOOL			8
#define F_AUTH			9
#define F_ACCESS		10
#define F_PEM			11	/* public PEM text, or env */
#define F_SOURCE		12	/* another source: name[/default] */
#define F_KEY			13
#define F_ALG			14
#define F_ACCOUNT		15
#define F_PARAMS		16	/* object of strings, kept as JSON */

/*
 * One row per JSON key. JSON null puts a field back to its default
 * (def or defstr), or clears it when it has none.
 */
struct source_field {
	const char	*name;
	int		type;
	size_t		offset;
	int64_t		min;
	int64_t		max;
	int64_t		def;
	const char	*defstr;
};

#define OFF(x)		offsetof(struct source, x)

static const struct source_field fields[] = {
	{ "name", F_NAME, 0, 0, 0, 0, NULL },
	{ "kind", F_KIND, OFF(kind), 0, 0, 0, NULL },
	{ "token_url", F_URL, OFF(token_url), 0, 0, 0, NULL },
	{ "client_id", F_STRING, OFF(client_id), 0, 0, 0, NULL },
	{ "client_secret", F_SECRET, OFF(client_secret), 0, 0, 0, NULL },
	{ "auth_method", F_AUTH, OFF(auth_method), 0, 0,
	    AUTH_SECRET_POST, NULL },
	{ "scope", F_STRING, OFF(scope), 0, 0, 0, NULL },
	{ "audience", F_STRING, OFF(audience), 0, 0, 0, NULL },
	{ "resource", F_STRING, OFF(resource), 0, 0, 0, NULL },
	{ "refresh_token", F_SECRET, OFF(refresh_token), 0, 0, 0, NULL },
	{ "username", F_STRING, OFF(username), 0, 0, 0, NULL },
	{ "password", F_SECRET, OFF(password), 0, 0, 0, NULL },
	{ "token_path", F_PATH, OFF(token_path), 0, 0, 0, "access_token" },
	{ "expires_at_path", F_PATH, OFF(expires_at_path), 0, 0, 0, NULL },
	{ "expires_in_path", F_PATH, OFF(expires_in_path), 0, 0, 0,
	    "expires_in" },
	{ "refresh_buffer", F_INT, OFF(refresh_buffer), 0, 86400, -1, NULL },
	{ "fallback_lifetime", F_INT, OFF(fallback_lifetime), 1, 31536000,
	    900, NULL },
	{ "access", F_ACCESS, OFF(access), 0, 0, ACCESS_OPEN, NULL },
	{ "require_header", F_BOOL, OFF(require_header), 0, 0, 0, NULL },
	{ "enabled", F_BOOL, OFF(enabled), 0, 0, 1, NULL },
	{ "tls_client_cert", F_PEM, OFF(tls_client_cert), 0, 0, 0, NULL },
	{ "tls_client_key", F_SECRET, OFF(tls_client_key), 0, 0, 0, NULL },
	{ "tls_ca", F_PEM, OFF(tls_ca), 0, 0, 0, NULL },
	{ "subject_source", F_SOURCE, OFF(subject_source), 0, 0, 0, NULL },
	{ "subject_token_type", F_STRING, OFF(subject_token_type), 0, 0, 0,
	    NULL },
	{ "requested_token_type", F_STRING, OFF(requested_token_type), 0, 0,
	    0, NULL },
	{ "actor_source", F_SOURCE, OFF(actor_source), 0, 0, 0, NULL },
	{ "actor_token_type", F_STRING, OFF(actor_token_type), 0, 0, 0,
	    NULL },
	{ "private_key", F_KEY, OFF(private_key), 0, 0, 0, NULL },
	{ "assertion_alg", F_ALG, OFF(key_alg), 0, 0, 0, NULL },
	{ "key_id", F_STRING, OFF(key_id), 0, 0, 0, NULL },
	{ "issuer", F_STRING, OFF(issuer), 0, 0, 0, NULL },
	{ "subject", F_STRING, OFF(subject), 0, 0, 0, NULL },
	{ "assertion_audience", F_STRING, OFF(assertion_audience), 0, 0, 0,
	    NULL },
	{ "target_audience", F_STRING, OFF(target_audience), 0, 0, 0, NULL },
	{ "service_account", F_ACCOUNT, 0, 0, 0, 0, NULL },
	/* authorization_code (c-authcode) */
	{ "authorize_url", F_URL, OFF(authorize_url), 0, 0, 0, NULL },
	{ "revocation_url", F_URL, OFF(revocation_url), 0, 0, 0, NULL },
	{ "extra_authorize_params", F_PARAMS, OFF(extra_authorize_params),
	    0, 0, 0, NULL },
	/* device_code (RFC 8628) */
	{ "device_authorization_url", F_URL, OFF(device_authorization_url),
	    0, 0, 0, NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL }
};

static const char *kinds[] = {
	NULL,
	"client_credentials",
	"refresh_token",
	"password",
	"json_login",
	"jwt_bearer",
};

static int	source_defaults(struct source *, char *, size_t);
static int	source_apply(const struct source_field *, yajl_val, int,
		    struct source *, char *, size_t);
static int	source_apply_string(const struct source_field *, yajl_val,
		    int, struct source *, char *, size_t);
static int	source_apply_number(const struct source_field *, yajl_val,
		    struct source *, char *, size_t);
static int	source_apply_jws(const struct source_field *, yajl_val,
		    int, struct source *, char *, size_t);
static int	source_account(yajl_val, int, struct source *, char *,
		    size_t);
static int	source_apply_params(const struct source_field *, yajl_val,
		    struct source *, char *, size_t);
static int	source_check_code(const struct source *, char *, size_t);
static int	source_check(const struct source *, int, u_int64_t,
		    char *, size_t);
static int	source_check_jws(const struct source *, char *, size_t);
static int	source_secret(const struct source_field *, yajl_val, int,
		    const char **, char *, size_t);
static int	source_check_tls(const struct source *, char *, size_t);
static int	source_check_exchange(const struct source *, char *,
		    size_t);
static int	source_check_device(const struct source *, char *, size_t);
static int	source_set(char **, const char *, int);
static int	field_index(const char *);
static int	text_clean(const char *);
static void	key_printable(const char *, char *, size_t);
static int	path_valid(const char *);
static int	url_valid(const char *);
static int	origin_parse(const char *, char *, size_t);

int
source_from_json(yajl_val obj, int flags, struct source *src, char *err,
    size_t errlen)
{
	size_t		i;
	u_int64_t	seen;
	int		idx;
	char		key[65];

	if (err != NULL && errlen > 0)
		err[0] = '\0';

	if (!(flags & SOURCE_PATCH) && !source_defaults(src, err, errlen))
		return (KORE_RESULT_ERROR);

	if (obj == NULL || !YAJL_IS_OBJECT(obj)) {
		json_seterr(err, errlen, "source: must be a JSON object");
		return (KORE_RESULT_ERROR);
	}

	seen = 0;
	for (i = 0; i < obj->u.object.len; i++) {
		if ((idx = field_index(obj->u.object.keys[i])) == -1) {
			key_printable(obj->u.object.keys[i], key, sizeof(key));
			json_seterr(err, errlen, "%s: unknown field", key);
			return (KORE_RESULT_ERROR);
		}
		if (seen & (1ULL << idx)) {
			json_seterr(err, errlen, "%s: given twice",
			    fields[idx].name);
			return (KORE_RESULT_ERROR);
		}
		seen |= 1ULL << idx;

		if (!source_apply(&fields[idx], obj->u.object.values[i],
		    flags, src, err, errlen))
			return (KORE_RESULT_ERROR);
	}

	/* A person's token is not for anyone who asks: open when said. */
	if (!(flags & SOURCE_PATCH) && (src->kind == KIND_AUTHORIZATION_CODE ||
	    src->kind == KIND_DEVICE_CODE) &&
	    !(seen & (1ULL << field_index("access"))))
		src->access = ACCESS_KEY;

	return (source_check(src, flags, seen, err, errlen));
}

int
source_name_valid(const char *name)
{
	size_t		i;

	if (name == NULL || name[0] == '\0')
		return (0);

	for (i = 0; name[i] != '\0'; i++) {
		if (i == KILN_NAME_MAX)
			return (0);
		if ((name[i] >= 'a' && name[i] <= 'z') ||
		    (name[i] >= '0' && name[i] <= '9'))
			continue;
		if (i > 0 && (name[i] == '_' || name[i] == '-'))
			continue;
		return (0);
	}

	return (1);
}

int
source_kind_parse(const char *name)
{
	int		i;

	if (name == NULL)
		return (0);
	if (!strcmp(name, "token_exchange"))
		return (KIND_TOKEN_EXCHANGE);
	if (!strcmp(name, "authorization_code"))
		return (KIND_AUTHORIZATION_CODE);
	if (!strcmp(name, "device_code"))
		return (KIND_DEVICE_CODE);

	for (i = KIND_CLIENT_CREDENTIALS; i <= KIND_JWT_BEARER; i++) {
		if (!strcmp(kinds[i], name))
			return (i);
	}

	return (0);
}

const char *
source_kind_name(int kind)
{
	if (kind == KIND_TOKEN_EXCHANGE)
		return ("token_exchange");
	if (kind == KIND_AUTHORIZATION_CODE)
		return ("authorization_code");
	if (kind == KIND_DEVICE_CODE)
		return ("device_code");
	if (kind < KIND_CLIENT_CREDENTIALS || kind > KIND_JWT_BEARER)
		return ("unknown");

	return (kinds[kind]);
}

/* The stored and shown name of an auth method, and back. */
const char *
source_auth_name(int method)
{
	switch (method) {
	case AUTH_SECRET_BASIC:
		return ("client_secret_basic");
	case AUTH_PRIVATE_KEY_JWT:
		return ("private_key_jwt");
	case AUTH_TLS_CLIENT:
		return ("tls_client_auth");
	case AUTH_TLS_SELF_SIGNED:
		return ("self_signed_tls_client_auth");
	}

	return ("client_secret_post");
}

int
source_auth_parse(const char *name)
{
	if (!strcmp(name, "client_secret_basic"))
		return (AUTH_SECRET_BASIC);
	if (!strcmp(name, "private_key_jwt"))
		return (AUTH_PRIVATE_KEY_JWT);
	if (!strcmp(name, "tls_client_auth"))
		return (AUTH_TLS_CLIENT);
	if (!strcmp(name, "self_signed_tls_client_auth"))
		return (AUTH_TLS_SELF_SIGNED);

	return (AUTH_SECRET_POST);
}

void
source_free(struct source *src)
{
	const struct source_field	*f;
	char				**sp;

	if (src == NULL)
		return;

	for (f = fields; f->name != NULL; f++) {
		if (f->type != F_URL && f->type != F_STRING &&
		    f->type != F_SECRET && f->type != F_PATH &&
		    f->type != F_PEM && f->type != F_SOURCE &&
		    f->type != F_KEY && f->type != F_PARAMS)
			continue;
		sp = (char **)((u_int8_t *)src + f->offset);
		(void)source_set(sp, NULL, f->type == F_SECRET ||
		    f->type == F_KEY);
	}
	(void)source_set(&src->subject_token, NULL, 1);
	(void)source_set(&src->actor_token, NULL, 1);
	(void)source_set(&src->code, NULL, 1);
	(void)source_set(&src->code_verifier, NULL, 1);
	(void)source_set(&src->redirect_uri, NULL, 0);
	(void)source_set(&src->device_code, NULL, 1);

	OPENSSL_cleanse(src, sizeof(*src));
}

/*
 * The origin a URL's requests go to, normalized: lowercase scheme and
 * host, the port always written ("https://idp.example:443"). A URL that
 * does not take apart plainly (userinfo, escapes, odd characters) is its
 * own origin, by digest: any change of it is then a change of origin.
 */
void
source_origin(const char *url, char *out, size_t len)
{
	char		digest[SEAL_SHA256_HEX_LEN + 1];

	if (url != NULL && origin_parse(url, out, len))
		return;

	if (url == NULL || !seal_sha256_hex(url, strlen(url), digest)) {
		memset(digest, '0', SEAL_SHA256_HEX_LEN);
		digest[SEAL_SHA256_HEX_LEN] = '\0';
	}
	(void)snprintf(out, len, "url:%s", digest);
}

static int
source_defaults(struct source *src, char *err, size_t errlen)
{
	memset(src, 0, sizeof(*src));

	src->auth_method = AUTH_SECRET_POST;
	src->refresh_buffer = -1;
	src->fallback_lifetime = 900;
	src->access = ACCESS_OPEN;
	src->require_header = 0;
	src->enabled = 1;

	if (!source_set(&src->token_path, "access_token", 0) ||
	    !source_set(&src->expires_in_path, "expires_in", 0)) {
		json_seterr(err, errlen, "source: out of memory");
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

static int
source_apply(const struct source_field *f, yajl_val v, int flags,
    struct source *src, char *err, size_t errlen)
{
	const char	*s;
	int		kind, *ip;

	switch (f->type) {
	case F_NAME:
		if (!YAJL_IS_STRING(v)) {
			json_seterr(err, errlen, "name: must be a string");
			return (KORE_RESULT_ERROR);
		}
		s = YAJL_GET_STRING(v);
		if (flags & SOURCE_PATCH) {
			if (strcmp(s, src->name)) {
				json_seterr(err, errlen,
				    "name: cannot be changed");
				return (KORE_RESULT_ERROR);
			}
			return (KORE_RESULT_OK);
		}
		if (!source_name_valid(s)) {
			json_seterr(err, errlen,
			    "name: must match ^[a-z0-9][a-z0-9_-]{0,63}$");
			return (KORE_RESULT_ERROR);
		}
		(void)snprintf(src->name, sizeof(src->name), "%s", s);
		return (KORE_RESULT_OK);
	case F_KIND:
		kind = YAJL_IS_STRING(v) ?
		    source_kind_parse(YAJL_GET_STRING(v)) : 0;
		if (kind == 0) {
			json_seterr(err, errlen, "kind: must be one of "
			    "client_credentials, refresh_token, password, "
			    "json_login, jwt_bearer, token_exchange, "
			    "authorization_code, device_code");
			return (KORE_RESULT_ERROR);
		}
		if ((flags & SOURCE_PATCH) && kind != src->kind) {
			json_seterr(err, errlen, "kind: cannot be changed");
			return (KORE_RESULT_ERROR);
		}
		src->kind = kind;
		return (KORE_RESULT_OK);
	case F_URL:
	case F_STRING:
	case F_SECRET:
	case F_PATH:
	case F_PEM:
	case F_SOURCE:
		return (source_apply_string(f, v, flags, src, err, errlen));
	case F_INT:
	case F_BOOL:
		return (source_apply_number(f, v, src, err, errlen));
	case F_KEY:
	case F_ALG:
	case F_ACCOUNT:
		return (source_apply_jws(f, v, flags, src, err, errlen));
	case F_PARAMS:
		return (source_apply_params(f, v, src, err, errlen));
	}

	/* F_AUTH and F_ACCESS: two-valued enums. */
	ip = (int *)((u_int8_t *)src + f->offset);
	s = YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : "";

	if (YAJL_IS_NULL(v)) {
		*ip = (int)f->def;
	} else if (f->type == F_AUTH && !strcmp(s, "client_secret_post")) {
		*ip = AUTH_SECRET_POST;
	} else if (f->type == F_AUTH && !strcmp(s, "client_secret_basic")) {
		*ip = AUTH_SECRET_BASIC;
	} else if (f->type == F_AUTH && !strcmp(s, "tls_client_auth")) {
		*ip = AUTH_TLS_CLIENT;
	} else if (f->type == F_AUTH &&
	    !strcmp(s, "self_signed_tls_client_auth")) {
		*ip = AUTH_TLS_SELF_SIGNED;
	} else if (f->type == F_AUTH && !strcmp(s, "private_key_jwt")) {
		*ip = AUTH_PRIVATE_KEY_JWT;
	} else if (f->type == F_ACCESS && !strcmp(s, "open")) {
		*ip = ACCESS_OPEN;
	} else if (f->type == F_ACCESS && !strcmp(s, "key")) {
		*ip = ACCESS_KEY;
	} else if (f->type == F_AUTH) {
		json_seterr(err, errlen, "auth_method: must be "
		    "client_secret_post, client_secret_basic, "
		    "private_key_jwt, tls_client_auth or "
		    "self_signed_tls_client_auth");
		return (KORE_RESULT_ERROR);
	} else {
		json_seterr(err, errlen, "access: must be open or key");
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

static int
source_apply_string(const struct source_field *f, yajl_val v, int flags,
    struct source *src, char *err, size_t errlen)
{
	const char	*s;
	size_t		len, max;
	char		**sp, name[KILN_NAME_MAX + 1];

	sp = (char **)((u_int8_t *)src + f->offset);
	max = (f->type == F_SECRET) ? SOURCE_SECRET_MAX : SOURCE_STRING_MAX;
	if (f->type == F_PEM)
		max = SOURCE_PEM_MAX;

	if (YAJL_IS_NULL(v)) {
		if (!source_set(sp, f->defstr, f->type == F_SECRET))
			goto nomem;
		return (KORE_RESULT_OK);
	}

	if (f->type == F_SECRET || f->type == F_PEM) {
		if (!source_secret(f, v, flags, &s, err, errlen))
			return (KORE_RESULT_ERROR);
	} else if (YAJL_IS_STRING(v)) {
		s = YAJL_GET_STRING(v);
	} else {
		json_seterr(err, errlen, "%s: must be a string", f->name);
		return (KORE_RESULT_ERROR);
	}

	len = strlen(s);
	if (len == 0 || len > max) {
		json_seterr(err, errlen, "%s: must be 1 to %zu bytes long",
		    f->name, max);
		return (KORE_RESULT_ERROR);
	}

	if (f->type != F_SECRET && f->type != F_PEM && !text_clean(s)) {
		json_seterr(err, errlen,
		    "%s: must not contain control characters", f->name);
		return (KORE_RESULT_ERROR);
	}

	if (f->type == F_URL && !url_valid(s)) {
		json_seterr(err, errlen,
		    "%s: must be an http:// or https:// URL", f->name);
		return (KORE_RESULT_ERROR);
	}

	/* Connections do not exist yet: only the default one. */
	if (f->type == F_SOURCE) {
		len = strcspn(s, "/");
		if (len > KILN_NAME_MAX || (s[len] != '\0' &&
		    strcmp(s + len, "/default"))) {
			json_seterr(err, errlen, "%s: must be a source name, "
			    "or name/default", f->name);
			return (KORE_RESULT_ERROR);
		}
		(void)snprintf(name, sizeof(name), "%.*s", (int)len, s);
		if (!source_name_valid(name)) {
			json_seterr(err, errlen, "%s: must be a source name, "
			    "or name/default", f->name);
			return (KORE_RESULT_ERROR);
		}
		s = name;
	}

	if (f->type == F_PATH && !path_valid(s)) {
		json_seterr(err, errlen,
		    "%s: must be a dotted path like Data.access_token",
		    f->name);
		return (KORE_RESULT_ERROR);
	}

	if (!source_set(sp, s, f->type == F_SECRET))
		goto nomem;

	return (KORE_RESULT_OK);

nomem:
	json_seterr(err, errlen, "%s: out of memory", f->name);
	return (KORE_RESULT_ERROR);
}

static int
source_apply_number(const struct source_field *f, yajl_val v,
    struct source *src, char *err, size_t errlen)
{
	int64_t		*lp;
	int		*ip;

	if (f->type == F_BOOL) {
		ip = (int *)((u_int8_t *)src + f->offset);
		if (YAJL_IS_NULL(v)) {
			*ip = (int)f->def;
		} else if (YAJL_IS_TRUE(v)) {
			*ip = 1;
		} else if (YAJL_IS_FALSE(v)) {
			*ip = 0;
		} else {
			json_seterr(err, errlen, "%s: must be true or false",
			    f->name);
			return (KORE_RESULT_ERROR);
		}
		return (KORE_RESULT_OK);
	}

	lp = (int64_t *)((u_int8_t *)src + f->offset);

	if (YAJL_IS_NULL(v)) {
		*lp = f->def;
		return (KORE_RESULT_OK);
	}

	if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < f->min ||
	    YAJL_GET_INTEGER(v) > f->max) {
		json_seterr(err, errlen, "%s: must be an integer between %lld "
		    "and %lld", f->name, (long long)f->min, (long long)f->max);
		return (KORE_RESULT_ERROR);
	}

	*lp = YAJL_GET_INTEGER(v);

	return (KORE_RESULT_OK);
}

/* A secret is a string, or {"env":"VAR"} in the sources file. */
static int
source_secret(const struct source_field *f, yajl_val v, int flags,
    const char **out, char *err, size_t errlen)
{
	const char	*var, *value;
	size_t		i;

	if (YAJL_IS_STRING(v)) {
		*out = YAJL_GET_STRING(v);
		return (KORE_RESULT_OK);
	}

	if (!YAJL_IS_OBJECT(v) || v->u.object.len != 1 ||
	    strcmp(v->u.object.keys[0], "env") ||
	    !YAJL_IS_STRING(v->u.object.values[0])) {
		json_seterr(err, errlen, "%s: must be a string", f->name);
		return (KORE_RESULT_ERROR);
	}

	if (!(flags & SOURCE_ALLOW_ENV)) {
		json_seterr(err, errlen, "%s: {\"env\":...} is only allowed in "
		    "the sources file", f->name);
		return (KORE_RESULT_ERROR);
	}

	var = YAJL_GET_STRING(v->u.object.values[0]);
	for (i = 0; var[i] != '\0'; i++) {
		if ((var[i] >= 'A' && var[i] <= 'Z') ||
		    (var[i] >= 'a' && var[i] <= 'z') || var[i] == '_' ||
		    (i > 0 && var[i] >= '0' && var[i] <= '9'))
			continue;
		break;
	}
	if (i == 0 || var[i] != '\0' || i > SOURCE_ENV_MAX) {
		json_seterr(err, errlen, "%s: env must name a variable",
		    f->name);
		return (KORE_RESULT_ERROR);
	}

	if ((value = getenv(var)) == NULL) {
		json_seterr(err, errlen,
		    "%s: environment variable %s is not set", f->name, var);
		return (KORE_RESULT_ERROR);
	}

	*out = value;

	return (KORE_RESULT_OK);
}

static int
source_check(const struct source *src, int flags, u_int64_t seen,
    char *err, size_t errlen)
{
	const char	*kind, *missing;

	if (src->name[0] == '\0') {
		json_seterr(err, errlen, "name: required");
		return (KORE_RESULT_ERROR);
	}
	if (src->kind == 0) {
		json_seterr(err, errlen, "kind: required");
		return (KORE_RESULT_ERROR);
	}

	kind = source_kind_name(src->kind);
	missing = NULL;

	if (src->token_url == NULL)
		missing = "token_url";

	switch (src->kind) {
	case KIND_CLIENT_CREDENTIALS:
		if (missing == NULL && src->client_id == NULL)
			missing = "client_id";
		if (missing == NULL && src->client_secret == NULL &&
		    !mtls_method(src->auth_method) &&
		    src->auth_method != AUTH_PRIVATE_KEY_JWT)
			missing = "client_secret";
		break;
	case KIND_JWT_BEARER:
		if (missing == NULL && src->issuer == NULL &&
		    src->client_id == NULL)
			missing = "issuer";
		break;
	case KIND_REFRESH_TOKEN:
		if (missing == NULL && src->refresh_token == NULL)
			missing = "refresh_token";
		break;
	case KIND_TOKEN_EXCHANGE:
		if (missing == NULL && src->subject_source == NULL)
			missing = "subject_source";
		break;
	case KIND_AUTHORIZATION_CODE:
		if (missing == NULL && src->authorize_url == NULL)
			missing = "authorize_url";
		if (missing == NULL && src->client_id == NULL)
			missing = "client_id";
		break;
	case KIND_DEVICE_CODE:
		if (missing == NULL && src->device_authorization_url == NULL)
			missing = "device_authorization_url";
		if (missing == NULL && src->client_id == NULL)
			missing = "client_id";
		break;
	case KIND_PASSWORD:
	case KIND_JSON_LOGIN:
		if (missing == NULL && src->username == NULL)
			missing = "username";
		if (missing == NULL && src->password == NULL)
			missing = "password";
		break;
	}

	/* The default token_path rarely fits a login API: ask for it. */
	if (missing == NULL && src->kind == KIND_JSON_LOGIN &&
	    (src->token_path == NULL || (!(flags & SOURCE_PATCH) &&
	    !(seen & (1ULL << field_index("token_path"))))))
		missing = "token_path";

	if (missing != NULL) {
		json_seterr(err, errlen, "%s: required for %s", missing, kind);
		return (KORE_RESULT_ERROR);
	}

	if (!source_check_tls(src, err, errlen) ||
	    !source_check_exchange(src, err, errlen) ||
	    !source_check_code(src, err, errlen) ||
	    !source_check_device(src, err, errlen))
		return (KORE_RESULT_ERROR);

	if (missing == NULL && src->auth_method == AUTH_PRIVATE_KEY_JWT &&
	    src->client_id == NULL)
		missing = "client_id";

	/* A client secret is only sent along with its client id. */
	if ((src->kind == KIND_REFRESH_TOKEN || src->kind == KIND_PASSWORD ||
	    src->kind == KIND_TOKEN_EXCHANGE) &&
	    src->client_secret != NULL && src->client_id == NULL) {
		json_seterr(err, errlen,
		    "client_id: required with client_secret");
		return (KORE_RESULT_ERROR);
	}

	return (source_check_jws(src, err, errlen));
}

/*
 * Mutual TLS (RFC 8705): the client is named by client_id in the body
 * and proven by its certificate; the PEMs are checked with OpenSSL.
 */
static int
source_check_tls(const struct source *src, char *err, size_t errlen)
{
	const char	*missing;

	if (!mtls_method(src->auth_method)) {
		missing = src->tls_client_cert != NULL ? "tls_client_cert" :
		    src->tls_client_key != NULL ? "tls_client_key" : NULL;
		if (missing == NULL)
			return (mtls_check(src, err, errlen));
		json_seterr(err, errlen, "%s: only with auth_method "
		    "tls_client_auth or self_signed_tls_client_auth", missing);
		return (KORE_RESULT_ERROR);
	}

	if (src->kind == KIND_JSON_LOGIN) {
		json_seterr(err, errlen, "auth_method: json_login takes "
		    "client_secret_post only");
		return (KORE_RESULT_ERROR);
	}

	missing = src->client_id == NULL ? "client_id" :
	    src->tls_client_cert == NULL ? "tls_client_cert" :
	    src->tls_client_key == NULL ? "tls_client_key" : NULL;
	if (missing != NULL) {
		json_seterr(err, errlen, "%s: required for %s", missing,
		    src->auth_method == AUTH_TLS_CLIENT ? "tls_client_auth" :
		    "self_signed_tls_client_auth");
		return (KORE_RESULT_ERROR);
	}

	if (strncasecmp(src->token_url, "https://", 8)) {
		json_seterr(err, errlen, "token_url: must be https:// with "
		    "tls client authentication");
		return (KORE_RESULT_ERROR);
	}

	return (mtls_check(src, err, errlen));
}

/*
 * Token exchange (RFC 8693): the subject (and actor) token is another
 * source's; a source is not its own subject. Cycles through other
 * sources are refused by the admin API, which sees them all.
 */
static int
source_check_exchange(const struct source *src, char *err, size_t errlen)
{
	const char	*field;

	if (src->kind != KIND_TOKEN_EXCHANGE) {
		field = src->subject_source != NULL ? "subject_source" :
		    src->subject_token_type != NULL ? "subject_token_type" :
		    src->requested_token_type != NULL ?
		    "requested_token_type" : src->actor_source != NULL ?
		    "actor_source" : src->actor_token_type != NULL ?
		    "actor_token_type" : NULL;
		if (field == NULL)
			return (KORE_RESULT_OK);
		json_seterr(err, errlen, "%s: only with kind token_exchange",
		    field);
		return (KORE_RESULT_ERROR);
	}

	if (!strcmp(src->subject_source, src->name) ||
	    (src->actor_source != NULL &&
	    !strcmp(src->actor_source, src->name))) {
		json_seterr(err, errlen, "%s: a source cannot exchange its "
		    "own token (cycle)", strcmp(src->subject_source,
		    src->name) ? "actor_source" : "subject_source");
		return (KORE_RESULT_ERROR);
	}

	if (src->actor_token_type != NULL && src->actor_source == NULL) {
		json_seterr(err, errlen, "actor_token_type: only with "
		    "actor_source");
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

/* Replace *sp by a copy of s (NULL clears), wiping a secret first. */
static int
source_set(char **sp, const char *s, int secret)
{
	char		*copy;

	copy = NULL;
	if (s != NULL && (copy = strdup(s)) == NULL)
		return (KORE_RESULT_ERROR);

	if (*sp != NULL) {
		if (secret)
			OPENSSL_cleanse(*sp, strlen(*sp));
		free(*sp);
	}

	*sp = copy;

	return (KORE_RESULT_OK);
}

static int
field_index(const char *key)
{
	int		i;

	for (i = 0; fields[i].name != NULL; i++) {
		if (!strcmp(fields[i].name, key))
			return (i);
	}

	return (-1);
}

static int
text_clean(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return (0);
	}

	return (1);
}

/* Unknown keys are echoed short and printable, never as sent. */
static void
key_printable(const char *key, char *out, size_t len)
{
	size_t		i;

	for (i = 0; key[i] != '\0' && i < len - 1; i++) {
		if (key[i] >= 0x20 && key[i] < 0x7f)
			out[i] = key[i];
		else
			out[i] = '?';
	}

	out[i] = '\0';
}

static int
path_valid(const char *path)
{
	const char	*p;

	if (*path == '.')
		return (0);

	for (p = path; *p != '\0'; p++) {
		if (*p == '.' && (p[1] == '.' || p[1] == '\0'))
			return (0);
	}

	return (1);
}

static int
url_valid(const char *url)
{
	const char	*p;

	if (!strncasecmp(url, "http://", 7))
		p = url + 7;
	else if (!strncasecmp(url, "https://", 8))
		p = url + 8;
	else
		return (0);

	if (*p == '\0' || *p == '/')
		return (0);

	for (; *p != '\0'; p++) {
		if (*p == ' ')
			return (0);
	}

	return (1);
}

/*
 * url as it may be shown: never with its userinfo (a credential); with
 * redact_query, every query value and the fragment as "***". Returns a
 * malloc'd string, or NULL when out of memory.
 */
char *
source_url_redact(const char *url, int redact_query)
{
	const char	*p, *auth, *at, *eq, *end;
	char		*out, *o;
	size_t		n;

	if ((out = malloc(strlen(url) * 4 + 8)) == NULL)
		return (NULL);
	o = out;

	if ((p = strstr(url, "://")) != NULL) {
		auth = p + 3;
		memcpy(o, url, auth - url);
		o += auth - url;
		n = strcspn(auth, "/?#");
		for (at = NULL, p = auth; p < auth + n; p++) {
			if (*p == '@')
				at = p;
		}
		url = at != NULL ? at + 1 : auth;
	}

	n = redact_query ? strcspn(url, "?#") : strlen(url);
	memcpy(o, url, n);
	o += n;
	for (p = url + n; *p != '\0'; p = end) {
		*o++ = *p++;
		if (p[-1] == '#') {
			memcpy(o, "***", 3);
			o += 3;
			break;
		}
		end = p + strcspn(p, "&#");
		if ((eq = memchr(p, '=', end - p)) != NULL) {
			memcpy(o, p, eq + 1 - p);
			o += eq + 1 - p;
		}
		if (end > p) {
			memcpy(o, "***", 3);
			o += 3;
		}
	}
	*o = '\0';

	return (out);
}

/* scheme://host[:port] of url into out, strictly; else 0. */
static int
origin_parse(const char *url, char *out, size_t len)
{
	const char	*p, *host, *end, *port;
	size_t		hlen, i;
	long		num;
	int		https, n;
	char		h[256];

	if (!strncasecmp(url, "http://", 7)) {
		https = 0;
		p = url + 7;
	} else if (!strncasecmp(url, "https://", 8)) {
		https = 1;
		p = url + 8;
	} else {
		return (0);
	}

	end = p + strcspn(p, "/?#");
	host = p;
	if (*host == '[') {
		if ((port = memchr(host, ']', end - host)) == NULL)
			return (0);
		port++;
		for (i = 1; host + i < port - 1; i++) {
			if (strchr("0123456789abcdefABCDEF:.", host[i]) == NULL)
				return (0);
		}
	} else {
		port = memchr(host, ':', end - host);
		if (port == NULL)
			port = end;
		for (i = 0; host + i < port; i++) {
			if (strchr("abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_",
			    host[i]) == NULL || host[i] == '\0')
				return (0);
		}
	}

	hlen = port - host;
	if (hlen == 0 || hlen >= sizeof(h))
		return (0);
	for (i = 0; i < hlen; i++) {
		h[i] = host[i];
		if (h[i] >= 'A' && h[i] <= 'Z')
			h[i] += 'a' - 'A';
	}
	h[hlen] = '\0';

	num = https ? 443 : 80;
	if (port < end) {
		if (*port != ':' || end - port < 2 || end - port > 6)
			return (0);
		for (num = 0, port++; port < end; port++) {
			if (*port < '0' || *port > '9')
				return (0);
			num = num * 10 + (*port - '0');
		}
		if (num < 1 || num > 65535)
			return (0);
	}

	n = snprintf(out, len, "%s://%s:%ld", https ? "https" : "http", h,
	    num);

	return (n > 0 && (size_t)n < len);
}

/*
 * private_key: a PEM (string, or {"env":"VAR"} in the sources file) or
 * {"generate":"ES256"}; assertion_alg; service_account: a Google key
 * file, as text or {"env":"VAR"}.
 */
static int
source_apply_jws(const struct source_field *f, yajl_val v, int flags,
    struct source *src, char *err, size_t errlen)
{
	const char	*s;

	if (f->type == F_ACCOUNT)
		return (source_account(v, flags, src, err, errlen));

	if (f->type == F_ALG) {
		src->key_alg = 0;
		if (YAJL_IS_NULL(v))
			return (KORE_RESULT_OK);
		if (!YAJL_IS_STRING(v) ||
		    (src->key_alg = jws_alg_parse(YAJL_GET_STRING(v))) == 0) {
			json_seterr(err, errlen, "assertion_alg: must be "
			    "RS256, PS256 or ES256");
			return (KORE_RESULT_ERROR);
		}
		return (KORE_RESULT_OK);
	}

	(void)source_set(&src->private_key, NULL, 1);
	src->key_generate = 0;
	src->key_new = 0;

	if (YAJL_IS_NULL(v))
		return (KORE_RESULT_OK);

	if (YAJL_IS_OBJECT(v) && v->u.object.len == 1 &&
	    !strcmp(v->u.object.keys[0], "generate")) {
		s = YAJL_IS_STRING(v->u.object.values[0]) ?
		    YAJL_GET_STRING(v->u.object.values[0]) : NULL;
		if ((src->key_generate = jws_alg_parse(s)) == 0) {
			json_seterr(err, errlen, "private_key: generate must "
			    "be one of RS256, PS256, ES256");
			return (KORE_RESULT_ERROR);
		}
		src->key_new = 1;
		return (KORE_RESULT_OK);
	}

	if (!source_secret(f, v, flags, &s, err, errlen))
		return (KORE_RESULT_ERROR);
	if (strlen(s) == 0 || strlen(s) > SOURCE_SECRET_MAX) {
		json_seterr(err, errlen, "private_key: must be 1 to %d bytes "
		    "long", SOURCE_SECRET_MAX);
		return (KORE_RESULT_ERROR);
	}
	if (!source_set(&src->private_key, s, 1)) {
		json_seterr(err, errlen, "private_key: out of memory");
		return (KORE_RESULT_ERROR);
	}
	src->key_new = 1;

	return (KORE_RESULT_OK);
}

/*
 * A Google service-account key file: private_key, client_email (the
 * issuer), private_key_id (the kid) and token_uri fill what is not set.
 * The key in the parsed tree is wiped before the tree is freed.
 */
static int
source_account(yajl_val v, int flags, struct source *src, char *err,
    size_t errlen)
{
	static const struct source_field	sa = { "service_account",
						    F_SECRET, 0, 0, 0, 0,
						    NULL };
	const char	*text, *key, *email, *kid, *uri, *type;
	yajl_val	root, k;
	int		ret;

	if (!source_secret(&sa, v, flags, &text, err, errlen))
		return (KORE_RESULT_ERROR);

	ret = KORE_RESULT_ERROR;
	if ((root = json_parse(text, strlen(text))) == NULL ||
	    !YAJL_IS_OBJECT(root)) {
		json_seterr(err, errlen, "service_account: must be the JSON "
		    "of a service account key file");
		goto cleanup;
	}

	k = json_path_get(root, "private_key");
	key = k != NULL && YAJL_IS_STRING(k) ? YAJL_GET_STRING(k) : NULL;
	email = YAJL_GET_STRING(json_path_get(root, "client_email"));
	kid = YAJL_GET_STRING(json_path_get(root, "private_key_id"));
	uri = YAJL_GET_STRING(json_path_get(root, "token_uri"));
	type = YAJL_GET_STRING(json_path_get(root, "type"));

	if (type != NULL && strcmp(type, "service_account")) {
		json_seterr(err, errlen, "service_account: type must be "
		    "service_account");
		goto cleanup;
	}
	if (key == NULL || email == NULL || !text_clean(email) ||
	    (kid != NULL && !text_clean(kid))) {
		json_seterr(err, errlen, "service_account: private_key and "
		    "client_email are required");
		goto cleanup;
	}
	if (uri != NULL && (!text_clean(uri) || !url_valid(uri))) {
		json_seterr(err, errlen, "service_account: token_uri must be "
		    "an http:// or https:// URL");
		goto cleanup;
	}

	if (!source_set(&src->private_key, key, 1) ||
	    (src->issuer == NULL && !source_set(&src->issuer, email, 0)) ||
	    (kid != NULL && src->key_id == NULL &&
	    !source_set(&src->key_id, kid, 0)) ||
	    (uri != NULL && src->token_url == NULL &&
	    !source_set(&src->token_url, uri, 0))) {
		json_seterr(err, errlen, "service_account: out of memory");
		goto cleanup;
	}
	src->key_generate = 0;
	src->key_new = 1;

	ret = KORE_RESULT_OK;

cleanup:
	if (root != NULL) {
		k = json_path_get(root, "private_key");
		if (k != NULL && YAJL_IS_STRING(k))
			OPENSSL_cleanse(k->u.string, strlen(k->u.string));
		yajl_tree_free(root);
	}

	return (ret);
}

/* A signed JWT needs a key that reads and fits its algorithm. */
static int
source_check_jws(const struct source *src, char *err, size_t errlen)
{
	struct jws_key	key;
	int		needed, ok;

	needed = src->auth_method == AUTH_PRIVATE_KEY_JWT ||
	    src->kind == KIND_JWT_BEARER;

	if (needed && src->private_key == NULL && src->key_generate == 0 &&
	    !src->key_stored) {
		json_seterr(err, errlen, "private_key: required for %s",
		    src->kind == KIND_JWT_BEARER ? "jwt_bearer" :
		    "private_key_jwt");
		return (KORE_RESULT_ERROR);
	}
	if (!needed && src->key_new) {
		json_seterr(err, errlen, "private_key: only for "
		    "auth_method private_key_jwt or kind jwt_bearer");
		return (KORE_RESULT_ERROR);
	}
	if (src->key_id != NULL && (strlen(src->key_id) > 128 ||
	    strspn(src->key_id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"
	    "opqrstuvwxyz0123456789._-") != strlen(src->key_id))) {
		json_seterr(err, errlen, "key_id: must be 1 to 128 of "
		    "A-Z a-z 0-9 . _ -");
		return (KORE_RESULT_ERROR);
	}
	if (src->key_generate != 0 && src->key_alg != 0 &&
	    src->key_alg != src->key_generate) {
		json_seterr(err, errlen, "assertion_alg: differs from the "
		    "algorithm of private_key.generate");
		return (KORE_RESULT_ERROR);
	}

	if (src->private_key != NULL && src->key_new) {
		if (!jws_key_load(src->private_key, src->key_alg, &key, err,
		    errlen))
			return (KORE_RESULT_ERROR);
		ok = jws_key_check(&key, err, errlen);
		jws_key_free(&key);
		if (!ok)
			return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

/*
 * authorization_code (c-authcode): its own fields only with it; a public
 * client (no secret) cannot authenticate with client_secret_basic.
 */
static int
source_check_code(const struct source *src, char *err, size_t errlen)
{
	const char	*field;

	if (src->kind != KIND_AUTHORIZATION_CODE) {
		field = src->authorize_url != NULL ? "authorize_url" :
		    src->revocation_url != NULL ? "revocation_url" :
		    src->extra_authorize_params != NULL ?
		    "extra_authorize_params" : NULL;
		if (field == NULL)
			return (KORE_RESULT_OK);
		json_seterr(err, errlen, "%s: only with kind "
		    "authorization_code", field);
		return (KORE_RESULT_ERROR);
	}

	if (src->refresh_token != NULL) {
		json_seterr(err, errlen, "refresh_token: not with "
		    "authorization_code (a person connects)");
		return (KORE_RESULT_ERROR);
	}
	if (src->client_secret == NULL &&
	    src->auth_method == AUTH_SECRET_BASIC) {
		json_seterr(err, errlen,
		    "client_secret: required with client_secret_basic");
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

/*
 * device_code (RFC 8628): the device authorization endpoint gets the
 * client's credentials too, and a secret goes only to the origin it was
 * given for: both endpoints are on the origin of token_url.
 */
static int
source_check_device(const struct source *src, char *err, size_t errlen)
{
	char		a[SOURCE_ORIGIN_MAX], b[SOURCE_ORIGIN_MAX];

	if (src->kind != KIND_DEVICE_CODE) {
		if (src->device_authorization_url == NULL)
			return (KORE_RESULT_OK);
		json_seterr(err, errlen, "device_authorization_url: only "
		    "with kind device_code");
		return (KORE_RESULT_ERROR);
	}

	if (src->refresh_token != NULL || src->username != NULL ||
	    src->password != NULL) {
		json_seterr(err, errlen, "%s: not with kind device_code (the "
		    "person's consent gives the refresh token)",
		    src->refresh_token != NULL ? "refresh_token" :
		    src->username != NULL ? "username" : "password");
		return (KORE_RESULT_ERROR);
	}

	source_origin(src->device_authorization_url, a, sizeof(a));
	source_origin(src->token_url, b, sizeof(b));
	if (strcmp(a, b)) {
		json_seterr(err, errlen, "device_authorization_url: must be "
		    "on the origin of token_url (%s)", b);
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

/*
 * extra_authorize_params: an object of strings, kept as its JSON. The
 * names kiln sets itself (PKCE, state, client, redirect) are refused.
 */
static int
source_apply_params(const struct source_field *f, yajl_val v,
    struct source *src, char *err, size_t errlen)
{
	static const char	*own[] = { "response_type", "client_id",
				    "redirect_uri", "state", "code_challenge",
				    "code_challenge_method", "scope",
				    "audience", "resource", NULL };
	yajl_gen		g;
	const unsigned char	*buf;
	const char		*k, *val;
	size_t			i, j, len;
	int			ok;

	if (YAJL_IS_NULL(v))
		return (source_set(&src->extra_authorize_params, NULL, 0) ?
		    KORE_RESULT_OK : KORE_RESULT_ERROR);
	if (!YAJL_IS_OBJECT(v) || v->u.object.len > 32) {
		json_seterr(err, errlen, "%s: must be an object of at most "
		    "32 strings", f->name);
		return (KORE_RESULT_ERROR);
	}

	for (i = 0; i < v->u.object.len; i++) {
		k = v->u.object.keys[i];
		val = YAJL_IS_STRING(v->u.object.values[i]) ?
		    YAJL_GET_STRING(v->u.object.values[i]) : NULL;
		len = strlen(k);
		for (j = 0; own[j] != NULL && strcmp(own[j], k); j++)
			;
		if (val == NULL || len == 0 || len > 64 || !text_clean(k) ||
		    strlen(val) > 1024 || !text_clean(val)) {
			json_seterr(err, errlen, "%s: must be an object of "
			    "strings (names of 1-64, values of at most 1024 "
			    "printable bytes)", f->name);
			return (KORE_RESULT_ERROR);
		}
		if (own[j] != NULL) {
			json_seterr(err, errlen, "%s: %s is kiln's own "
			    "parameter", f->name, own[j]);
			return (KORE_RESULT_ERROR);
		}
	}

	if ((g = yajl_gen_alloc(NULL)) == NULL) {
		json_seterr(err, errlen, "source: out of memory");
		return (KORE_RESULT_ERROR);
	}
	yajl_gen_map_open(g);
	for (i = 0; i < v->u.object.len; i++) {
		k = v->u.object.keys[i];
		val = YAJL_GET_STRING(v->u.object.values[i]);
		yajl_gen_string(g, (const unsigned char *)k, strlen(k));
		yajl_gen_string(g, (const unsigned char *)val, strlen(val));
	}
	yajl_gen_map_close(g);
	ok = yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok &&
	    source_set(&src->extra_authorize_params, (const char *)buf, 0);
	yajl_gen_free(g);
	if (!ok)
		json_seterr(err, errlen, "source: out of memory");

	return (ok ? KORE_RESULT_OK : KORE_RESULT_ERROR);
}
