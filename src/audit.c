/*
 * audit.c: what an audit row says, worked out without Kore (pure).
 *
 * The names of the fields a change of a source set (a digest of each
 * field before, compared with the field after: a secret is compared,
 * never kept), the names of the members of a request body, and the
 * query of GET /api/audit and of the dashboard's audit page.
 */

#include <sys/types.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "kiln.h"

#define AUDIT_STR	0
#define AUDIT_NUM	1
#define AUDIT_INT	2

#define AS(k, f, t)	{ k, offsetof(struct source, f), t }

static const struct {
	const char	*name;
	size_t		off;
	int		type;
} audit_fields[AUDIT_SOURCE_FIELDS] = {
	AS("kind", kind, AUDIT_INT),
	AS("token_url", token_url, AUDIT_STR),
	AS("client_id", client_id, AUDIT_STR),
	AS("client_secret", client_secret, AUDIT_STR),
	AS("auth_method", auth_method, AUDIT_INT),
	AS("scope", scope, AUDIT_STR),
	AS("audience", audience, AUDIT_STR),
	AS("resource", resource, AUDIT_STR),
	AS("refresh_token", refresh_token, AUDIT_STR),
	AS("username", username, AUDIT_STR),
	AS("password", password, AUDIT_STR),
	AS("token_path", token_path, AUDIT_STR),
	AS("expires_at_path", expires_at_path, AUDIT_STR),
	AS("expires_in_path", expires_in_path, AUDIT_STR),
	AS("refresh_buffer", refresh_buffer, AUDIT_NUM),
	AS("fallback_lifetime", fallback_lifetime, AUDIT_NUM),
	AS("access", access, AUDIT_INT),
	AS("require_header", require_header, AUDIT_INT),
	AS("enabled", enabled, AUDIT_INT),
	AS("tls_client_cert", tls_client_cert, AUDIT_STR),
	AS("tls_client_key", tls_client_key, AUDIT_STR),
	AS("tls_ca", tls_ca, AUDIT_STR),
	AS("subject_source", subject_source, AUDIT_STR),
	AS("subject_token_type", subject_token_type, AUDIT_STR),
	AS("requested_token_type", requested_token_type, AUDIT_STR),
	AS("actor_source", actor_source, AUDIT_STR),
	AS("actor_token_type", actor_token_type, AUDIT_STR),
	AS("private_key", private_key, AUDIT_STR),
	AS("assertion_alg", key_alg, AUDIT_INT),
	AS("key_id", key_id, AUDIT_STR),
	AS("issuer", issuer, AUDIT_STR),
	AS("subject", subject, AUDIT_STR),
	AS("assertion_audience", assertion_audience, AUDIT_STR),
	AS("target_audience", target_audience, AUDIT_STR),
	AS("device_authorization_url", device_authorization_url,
	    AUDIT_STR),		/* device_code */
};

static void	audit_digest(const struct source *, int, u_int8_t *);
static int	audit_append(char *, size_t, const char *);
static int	audit_text(const char *, char *, size_t);
static int	audit_decode(const char *, size_t, char *, size_t);
static int	audit_hex(int);

/* A digest of each field of src, to tell later which ones changed. */
void
audit_source_snap(const struct source *src, struct audit_snap *snap)
{
	int		i;

	for (i = 0; i < AUDIT_SOURCE_FIELDS; i++)
		audit_digest(src, i, snap->d[i]);
}

/*
 * The names of the fields of src that differ from snap, as "a,b" in
 * out; KORE_RESULT_ERROR when they do not fit.
 */
int
audit_source_changed(const struct audit_snap *snap, const struct source *src,
    char *out, size_t len)
{
	u_int8_t	d[AUDIT_DIGEST_LEN];
	int		i, ret;

	ret = KORE_RESULT_OK;
	out[0] = '\0';
	for (i = 0; i < AUDIT_SOURCE_FIELDS; i++) {
		audit_digest(src, i, d);
		if (CRYPTO_memcmp(d, snap->d[i], sizeof(d)) != 0 &&
		    !audit_append(out, len, audit_fields[i].name))
			ret = KORE_RESULT_ERROR;
	}
	OPENSSL_cleanse(d, sizeof(d));

	return (ret);
}

/* The member names of a JSON object as "a,b" (they name fields). */
int
audit_body_fields(yajl_val obj, char *out, size_t len)
{
	size_t		i;

	out[0] = '\0';
	if (obj == NULL || !YAJL_IS_OBJECT(obj))
		return (KORE_RESULT_OK);
	for (i = 0; i < obj->u.object.len; i++) {
		if (!audit_append(out, len, obj->u.object.keys[i]))
			return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

/*
 * The query string of an audit listing: limit, before (an id), action,
 * principal, target, since and until (ISO-8601). An empty value is as
 * if absent (a form sends its empty fields). err names what is wrong.
 */
int
audit_query_parse(const char *qs, struct audit_query *q, char *err,
    size_t errlen)
{
	const char	*p, *eq, *end;
	char		key[16], val[AUDIT_VALUE_MAX + 1];
	char		*out;
	int64_t		n;

	memset(q, 0, sizeof(*q));
	q->limit = AUDIT_LIMIT_DEFAULT;
	q->since_ms = q->until_ms = AUDIT_NONE;
	for (p = qs; p != NULL && *p != '\0'; p = *end ? end + 1 : end) {
		end = p + strcspn(p, "&");
		if (end == p)
			continue;
		eq = memchr(p, '=', end - p);
		if (eq == NULL || (size_t)(eq - p) >= sizeof(key)) {
			json_seterr(err, errlen, "query: expected name=value");
			return (KORE_RESULT_ERROR);
		}
		memcpy(key, p, eq - p);
		key[eq - p] = '\0';
		if (!audit_decode(eq + 1, end - eq - 1, val, sizeof(val))) {
			json_seterr(err, errlen, "%s: too long or not text",
			    key);
			return (KORE_RESULT_ERROR);
		}
		if (val[0] == '\0')
			continue;

		out = NULL;
		if (!strcmp(key, "action"))
			out = q->action;
		else if (!strcmp(key, "principal"))
			out = q->principal;
		else if (!strcmp(key, "target"))
			out = q->target;
		if (out != NULL) {
			if (!audit_text(val, out, AUDIT_VALUE_MAX + 1)) {
				json_seterr(err, errlen, "%s: expected 1 to %d "
				    "printable characters", key,
				    AUDIT_VALUE_MAX);
				return (KORE_RESULT_ERROR);
			}
		} else if (!strcmp(key, "limit") || !strcmp(key, "before")) {
			out = NULL;
			n = strtoll(val, &out, 10);
			if (*out != '\0' || strlen(val) > 18 || n < 1 ||
			    (key[0] == 'l' && n > AUDIT_LIMIT_MAX)) {
				json_seterr(err, errlen, key[0] == 'l' ?
				    "limit: expected an integer from 1 to %d" :
				    "before: expected a positive event id",
				    AUDIT_LIMIT_MAX);
				return (KORE_RESULT_ERROR);
			}
			if (key[0] == 'l')
				q->limit = n;
			else
				q->before = n;
		} else if (!strcmp(key, "since") || !strcmp(key, "until")) {
			if (!isotime_parse(val, key[0] == 's' ? &q->since_ms :
			    &q->until_ms)) {
				json_seterr(err, errlen, "%s: expected an "
				    "ISO-8601 time", key);
				return (KORE_RESULT_ERROR);
			}
		} else {
			json_seterr(err, errlen, "%s: unknown parameter", key);
			return (KORE_RESULT_ERROR);
		}
	}

	return (KORE_RESULT_OK);
}

/* SHA-256 of field i of src (its type and value: NULL differs from ""). */
static void
audit_digest(const struct source *src, int i, u_int8_t *out)
{
	const u_int8_t	*at;
	const char	*s;
	char		num[32];
	size_t		len;

	at = (const u_int8_t *)src + audit_fields[i].off;
	switch (audit_fields[i].type) {
	case AUDIT_STR:
		s = *(const char *const *)at;
		len = s == NULL ? 0 : strlen(s) + 1;
		break;
	case AUDIT_NUM:
		len = snprintf(num, sizeof(num), "%lld",
		    (long long)*(const int64_t *)at) + 1;
		s = num;
		break;
	default:
		len = snprintf(num, sizeof(num), "%d", *(const int *)at) + 1;
		s = num;
		break;
	}
	if (EVP_Digest(s == NULL ? "" : s, len, out, NULL, EVP_sha256(),
	    NULL) != 1)
		abort();
}

static int
audit_append(char *out, size_t len, const char *name)
{
	size_t		off;
	int		n;

	off = strlen(out);
	n = snprintf(out + off, len - off, "%s%s", off ? "," : "", name);
	if (n < 0 || (size_t)n >= len - off) {
		out[off] = '\0';
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

/* A filter value: printable, no control characters. */
static int
audit_text(const char *v, char *out, size_t len)
{
	size_t		i;

	for (i = 0; v[i] != '\0'; i++) {
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return (0);
	}
	if (i == 0 || i >= len)
		return (0);
	memcpy(out, v, i + 1);

	return (1);
}

/* Percent-decode (and '+' as space) n bytes of s into out. */
static int
audit_decode(const char *s, size_t n, char *out, size_t len)
{
	size_t		i, o;
	int		hi, lo;

	for (i = 0, o = 0; i < n; i++, o++) {
		if (o + 1 >= len)
			return (0);
		if (s[i] == '+') {
			out[o] = ' ';
		} else if (s[i] == '%') {
			if (i + 2 >= n)
				return (0);
			if ((hi = audit_hex(s[i + 1])) < 0 ||
			    (lo = audit_hex(s[i + 2])) < 0 ||
			    (hi == 0 && lo == 0))
				return (0);
			out[o] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o] = s[i];
		}
	}
	out[o] = '\0';

	return (1);
}

static int
audit_hex(int c)
{
	if (c >= '0' && c <= '9')
		return (c - '0');
	if (c >= 'a' && c <= 'f')
		return (c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (c - 'A' + 10);

	return (-1);
}
