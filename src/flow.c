/*
 * flow.c: the values of the authorization code flow (RFC 6749 4.1) with
 * PKCE (RFC 7636): the verifier and its S256 challenge, the state and
 * the digest it is stored under, the URL of the consent, where the
 * browser goes back to (only to an allowed origin), the revocation
 * request (RFC 7009), and the escaping of what a page shows.
 */

#include <sys/types.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "kiln.h"

#define FLOW_FORM		"application/x-www-form-urlencoded"
#define FLOW_ORIGIN_MAX		300

struct fbuf {
	char		*data;
	size_t		len;
	size_t		cap;
	int		failed;
};

static void	b64url(const u_int8_t *, size_t, char *, size_t);
static void	fb_add(struct fbuf *, const char *, size_t);
static void	fb_str(struct fbuf *, const char *);
static void	fb_pct(struct fbuf *, const char *);
static void	fb_param(struct fbuf *, const char *, const char *);
static char	*fb_done(struct fbuf *);
static int	origin_of(const char *, char *, size_t, const char **);

/*
 * len - 1 characters of base64url from fresh random bytes, NUL ended:
 * 43 of them carry 256 bits.
 */
int
flow_random(char *out, size_t len)
{
	u_int8_t	raw[96];
	char		text[129];
	size_t		n;

	if (len < 2 || len - 1 > 128)
		return (KORE_RESULT_ERROR);
	n = ((len - 1) * 3 + 3) / 4;
	if (RAND_bytes(raw, (int)n) != 1)
		return (KORE_RESULT_ERROR);
	b64url(raw, n, text, sizeof(text));
	memcpy(out, text, len - 1);
	out[len - 1] = '\0';
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(text, sizeof(text));

	return (KORE_RESULT_OK);
}

/* RFC 7636 4.2: BASE64URL(SHA256(verifier)), 43 characters. */
int
flow_challenge(const char *verifier, char *out, size_t len)
{
	u_int8_t	md[SHA256_DIGEST_LENGTH];
	size_t		n;

	n = strlen(verifier);
	if (n < 43 || n > 128 || len < FLOW_CHALLENGE_LEN + 1)
		return (KORE_RESULT_ERROR);
	if (EVP_Digest(verifier, n, md, NULL, EVP_sha256(), NULL) != 1)
		return (KORE_RESULT_ERROR);
	b64url(md, sizeof(md), out, len);

	return (KORE_RESULT_OK);
}

/* The state is stored only as its SHA-256 (hex, 64 + NUL). */
int
flow_state_hash(const char *state, char *out)
{
	static const char	hexd[] = "0123456789abcdef";
	u_int8_t		md[SHA256_DIGEST_LENGTH];
	size_t			i;

	if (EVP_Digest(state, strlen(state), md, NULL, EVP_sha256(),
	    NULL) != 1)
		return (KORE_RESULT_ERROR);
	for (i = 0; i < sizeof(md); i++) {
		out[i * 2] = hexd[md[i] >> 4];
		out[i * 2 + 1] = hexd[md[i] & 0x0f];
	}
	out[i * 2] = '\0';

	return (KORE_RESULT_OK);
}

/*
 * The consent URL: the source's authorize_url with the request of RFC
 * 6749 4.1.1 and RFC 7636 4.3, then the source's extra parameters.
 * malloc'd, or NULL (extra_authorize_params not an object of strings).
 */
char *
flow_authorize_url(const struct source *src, const char *redirect_uri,
    const char *state, const char *challenge)
{
	struct fbuf	b;
	yajl_val	root, v;
	size_t		i;

	memset(&b, 0, sizeof(b));
	root = NULL;
	if (src->extra_authorize_params != NULL &&
	    ((root = yajl_tree_parse(src->extra_authorize_params, NULL,
	    0)) == NULL || !YAJL_IS_OBJECT(root))) {
		yajl_tree_free(root);
		return (NULL);
	}

	fb_str(&b, src->authorize_url);
	fb_str(&b, strchr(src->authorize_url, '?') != NULL ? "&" : "?");
	fb_str(&b, "response_type=code");
	fb_param(&b, "client_id", src->client_id);
	fb_param(&b, "redirect_uri", redirect_uri);
	fb_param(&b, "scope", src->scope);
	fb_param(&b, "audience", src->audience);
	fb_param(&b, "resource", src->resource);
	fb_param(&b, "state", state);
	fb_param(&b, "code_challenge", challenge);
	fb_param(&b, "code_challenge_method", "S256");
	for (i = 0; root != NULL && i < root->u.object.len; i++) {
		v = root->u.object.values[i];
		if (!YAJL_IS_STRING(v)) {
			b.failed = 1;
			break;
		}
		fb_add(&b, "&", 1);
		fb_pct(&b, root->u.object.keys[i]);
		fb_add(&b, "=", 1);
		fb_pct(&b, YAJL_GET_STRING(v));
	}
	yajl_tree_free(root);

	return (fb_done(&b));
}

/*
 * Whether url's origin is one of list's (comma-separated origins, as
 * KILN_RETURN_TO_ALLOW). Only plain absolute http(s) URLs qualify: no
 * userinfo, no backslash, no control character or space.
 */
int
flow_origin_allowed(const char *url, const char *list)
{
	char		want[FLOW_ORIGIN_MAX], have[FLOW_ORIGIN_MAX];
	char		item[FLOW_ORIGIN_MAX];
	const char	*p, *end, *rest;
	size_t		n;

	if (url == NULL || list == NULL || strlen(url) > FLOW_RETURN_MAX ||
	    !origin_of(url, want, sizeof(want), &rest))
		return (0);

	for (p = list; *p != '\0'; p = *end ? end + 1 : end) {
		while (*p == ' ')
			p++;
		end = p + strcspn(p, ",");
		n = (size_t)(end - p);
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '/'))
			n--;
		if (n == 0 || n >= sizeof(item))
			continue;
		memcpy(item, p, n);
		item[n] = '\0';
		if (origin_of(item, have, sizeof(have), &rest) &&
		    *rest == '\0' && !strcmp(want, have))
			return (1);
	}

	return (0);
}

/* KILN_PUBLIC_URL: http(s)://host[:port][/path], no query or fragment. */
int
flow_public_url_valid(const char *url)
{
	char		origin[FLOW_ORIGIN_MAX];
	const char	*rest;

	if (url == NULL || strlen(url) > 512 ||
	    !origin_of(url, origin, sizeof(origin), &rest))
		return (0);

	return (strpbrk(rest, "?#") == NULL);
}

/*
 * return_to with "connection=<what>" and "subject=" or "error=" added to
 * its query (before any fragment). malloc'd, or NULL.
 */
char *
flow_return_url(const char *return_to, const char *what, const char *key,
    const char *value)
{
	struct fbuf	b;
	size_t		n;

	memset(&b, 0, sizeof(b));
	n = strcspn(return_to, "#");
	fb_add(&b, return_to, n);
	fb_add(&b, memchr(return_to, '?', n) != NULL ? "&" : "?", 1);
	fb_str(&b, "connection=");
	fb_pct(&b, what);
	fb_param(&b, key, value);
	fb_str(&b, return_to + n);

	return (fb_done(&b));
}

/*
 * RFC 7009 2.1: revoke a refresh token, the client authenticated as it
 * is at the token endpoint (a public client names itself).
 */
int
flow_revoke_body(const struct source *src, const char *token,
    struct oauth_request *req)
{
	struct fbuf	b, a;
	u_int8_t	*raw;
	char		*pair;
	size_t		n;

	memset(req, 0, sizeof(*req));
	memset(&b, 0, sizeof(b));
	fb_str(&b, "token=");
	fb_pct(&b, token);
	fb_param(&b, "token_type_hint", "refresh_token");

	if (src->client_secret != NULL &&
	    src->auth_method == AUTH_SECRET_BASIC) {
		/* RFC 6749 2.3.1: each part form-encoded, then base64. */
		memset(&a, 0, sizeof(a));
		fb_pct(&a, src->client_id);
		fb_add(&a, ":", 1);
		fb_pct(&a, src->client_secret);
		if ((pair = fb_done(&a)) == NULL) {
			free(fb_done(&b));
			return (KORE_RESULT_ERROR);
		}
		n = strlen(pair);
		if ((raw = malloc(6 + 4 * ((n + 2) / 3) + 1)) == NULL) {
			OPENSSL_cleanse(pair, n);
			free(pair);
			free(fb_done(&b));
			return (KORE_RESULT_ERROR);
		}
		memcpy(raw, "Basic ", 6);
		(void)EVP_EncodeBlock(raw + 6, (u_int8_t *)pair, (int)n);
		OPENSSL_cleanse(pair, n);
		free(pair);
		req->authorization = (char *)raw;
	} else {
		fb_param(&b, "client_id", src->client_id);
		fb_param(&b, "client_secret", src->client_secret);
	}

	if ((req->body = fb_done(&b)) == NULL) {
		if (req->authorization != NULL) {
			OPENSSL_cleanse(req->authorization,
			    strlen(req->authorization));
			free(req->authorization);
			req->authorization = NULL;
		}
		return (KORE_RESULT_ERROR);
	}
	req->len = strlen(req->body);
	req->content_type = FLOW_FORM;

	return (KORE_RESULT_OK);
}

/* Text for HTML (element content or a quoted attribute). malloc'd. */
char *
flow_html_escape(const char *s)
{
	struct fbuf	b;

	memset(&b, 0, sizeof(b));
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '&':
			fb_str(&b, "&amp;");
			break;
		case '<':
			fb_str(&b, "&lt;");
			break;
		case '>':
			fb_str(&b, "&gt;");
			break;
		case '"':
			fb_str(&b, "&quot;");
			break;
		case '\'':
			fb_str(&b, "&#39;");
			break;
		default:
			fb_add(&b, s, 1);
			break;
		}
	}
	fb_add(&b, "", 0);

	return (fb_done(&b));
}

static void
b64url(const u_int8_t *in, size_t len, char *out, size_t outlen)
{
	static const char	tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "abcdefghijklmnopqrstuvwxyz0123456789-_";
	u_int32_t		v;
	size_t			i, o;

	o = 0;
	for (i = 0; i < len && o + (len - i >= 3 ? 4 : len - i + 1) < outlen;
	    i += 3) {
		v = (u_int32_t)in[i] << 16;
		if (i + 1 < len)
			v |= (u_int32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		out[o++] = tab[(v >> 18) & 0x3f];
		out[o++] = tab[(v >> 12) & 0x3f];
		if (i + 1 < len)
			out[o++] = tab[(v >> 6) & 0x3f];
		if (i + 2 < len)
			out[o++] = tab[v & 0x3f];
	}
	out[o] = '\0';
}

/*
 * The origin of an absolute http(s) URL, lower case, the port always
 * written ("https://app.example:443"); *rest points after it.
 */
static int
origin_of(const char *url, char *out, size_t len, const char **rest)
{
	const char	*p, *host, *end, *port;
	size_t		hlen, i;
	long		num;
	char		*ep;
	int		https;

	for (p = url; *p != '\0'; p++) {
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '\\')
			return (0);
	}
	if (!strncasecmp(url, "https://", 8)) {
		https = 1;
		host = url + 8;
	} else if (!strncasecmp(url, "http://", 7)) {
		https = 0;
		host = url + 7;
	} else {
		return (0);
	}

	end = host + strcspn(host, "/?#");
	if (memchr(host, '@', end - host) != NULL)
		return (0);
	port = NULL;
	if (*host == '[') {
		if ((p = memchr(host, ']', end - host)) == NULL)
			return (0);
		if (p + 1 < end && p[1] != ':')
			return (0);
		port = p + 1 < end ? p + 1 : NULL;
		hlen = (size_t)(p + 1 - host);
	} else {
		port = memchr(host, ':', end - host);
		hlen = (size_t)((port != NULL ? port : end) - host);
	}
	if (hlen == 0 || hlen > 253)
		return (0);

	num = https ? 443 : 80;
	if (port != NULL) {
		if (port + 1 == end || end - port > 6)
			return (0);
		num = strtol(port + 1, &ep, 10);
		if (ep != end || num < 1 || num > 65535)
			return (0);
	}
	for (i = 0; i < hlen; i++) {
		if (strchr("abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-[]:", host[i]) ==
		    NULL)
			return (0);
	}

	if ((size_t)snprintf(out, len, "%s://%.*s:%ld", https ? "https" :
	    "http", (int)hlen, host, num) >= len)
		return (0);
	for (i = 0; out[i] != '\0'; i++) {
		if (out[i] >= 'A' && out[i] <= 'Z')
			out[i] = out[i] - 'A' + 'a';
	}
	*rest = end;

	return (1);
}

static void
fb_add(struct fbuf *b, const char *s, size_t n)
{
	char		*p;
	size_t		cap;

	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		cap = b->cap == 0 ? 256 : b->cap;
		while (cap < b->len + n + 1)
			cap *= 2;
		/* A copy, so that no stale copy of a secret stays behind. */
		if ((p = malloc(cap)) == NULL) {
			b->failed = 1;
			return;
		}
		if (b->data != NULL) {
			memcpy(p, b->data, b->len);
			OPENSSL_cleanse(b->data, b->cap);
			free(b->data);
		}
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
fb_str(struct fbuf *b, const char *s)
{
	fb_add(b, s, strlen(s));
}

/* RFC 3986 percent-encoding: only unreserved characters stay. */
static void
fb_pct(struct fbuf *b, const char *s)
{
	static const char	hexd[] = "0123456789ABCDEF";
	unsigned char		c;
	char			enc[3];

	for (; *s != '\0'; s++) {
		c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~') {
			fb_add(b, s, 1);
			continue;
		}
		enc[0] = '%';
		enc[1] = hexd[c >> 4];
		enc[2] = hexd[c & 0x0f];
		fb_add(b, enc, sizeof(enc));
	}
}

/* "&key=value", nothing when value is NULL. */
static void
fb_param(struct fbuf *b, const char *key, const char *value)
{
	if (value == NULL)
		return;
	fb_add(b, "&", 1);
	fb_str(b, key);
	fb_add(b, "=", 1);
	fb_pct(b, value);
}

static char *
fb_done(struct fbuf *b)
{
	char		*out;

	if (b->failed || b->data == NULL) {
		if (b->data != NULL) {
			OPENSSL_cleanse(b->data, b->cap);
			free(b->data);
		}
		memset(b, 0, sizeof(*b));
		return (NULL);
	}
	out = b->data;
	memset(b, 0, sizeof(*b));

	return (out);
}
