/*
 * json.c (pure): untrusted JSON text and the encodings around it.
 *
 * The strict text check (what yajl lets through and C strings cannot
 * hold), a bounded tree parse that wipes its copy, dotted path lookup,
 * the one base64 decoder (standard and url alphabets), a yajl allocator
 * that wipes what it frees, and the error text of the pure parsers.
 */

#include <sys/types.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <yajl/yajl_gen.h>

#include "kiln.h"

#define JSON_DEPTH_MAX		64

/* Header in front of every wiping allocation: its size, for wiping. */
#define WIPE_HDR		16

static int	utf8_len(const unsigned char *, size_t);
static int	hex4(const char *, size_t, u_int32_t *);
static void	*wipe_malloc(void *, size_t);
static void	*wipe_realloc(void *, void *, size_t);
static void	wipe_free(void *, void *);

/*
 * Parse untrusted JSON: strict text, no NUL inside, nesting bounded (yajl
 * frees its tree recursively), the copy wiped. Used for request bodies
 * and upstream answers.
 */
yajl_val
json_parse(const char *data, size_t len)
{
	if (json_check(data, len, NULL, 0) != JSON_OK)
		return (NULL);

	return (json_tree(data, len));
}

/*
 * yajl_tree_parse wants a C string: copy, parse, wipe the copy. No NUL
 * inside and bounded nesting, but no strict text check (json_parse).
 */
yajl_val
json_tree(const char *data, size_t len)
{
	yajl_val	root;
	char		*copy;

	if (len == 0 || memchr(data, '\0', len) != NULL ||
	    !json_depth_ok(data, len))
		return (NULL);

	if ((copy = malloc(len + 1)) == NULL)
		return (NULL);

	memcpy(copy, data, len);
	copy[len] = '\0';

	root = yajl_tree_parse(copy, NULL, 0);

	OPENSSL_cleanse(copy, len);
	free(copy);

	return (root);
}

/* "a.b.c": members of nested objects; no arrays, no empty segment. */
yajl_val
json_path_get(yajl_val root, const char *path)
{
	const char	*seg, *dot;
	size_t		i, seglen;
	yajl_val	v, next;

	if (root == NULL || path == NULL || *path == '\0')
		return (NULL);

	v = root;
	seg = path;

	for (;;) {
		if (!YAJL_IS_OBJECT(v))
			return (NULL);

		dot = strchr(seg, '.');
		seglen = (dot != NULL) ? (size_t)(dot - seg) : strlen(seg);
		if (seglen == 0)
			return (NULL);

		next = NULL;
		for (i = 0; i < v->u.object.len; i++) {
			if (!strncmp(v->u.object.keys[i], seg, seglen) &&
			    v->u.object.keys[i][seglen] == '\0') {
				next = v->u.object.values[i];
				break;
			}
		}

		if (next == NULL || dot == NULL)
			return (next);

		v = next;
		seg = dot + 1;
	}
}

/*
 * Refuse what yajl would let through and C strings cannot hold: bytes
 * that are not strict UTF-8 (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF): JSON_BAD_UTF8; a \\u0000 escape (it would cut
 * the string short) or surrogate escapes that do not pair:
 * JSON_BAD_ESCAPE, with the key of the member it sits in copied to key.
 */
int
json_check(const char *data, size_t len, char *key, size_t keylen)
{
	const unsigned char	*p = (const unsigned char *)data;
	u_int32_t		cp, lo;
	size_t			i, start, k;
	int			n, instr, comment;

	instr = 0;
	comment = 0;
	start = 0;
	if (keylen > 0)
		key[0] = '\0';

	for (i = 0; i < len; i += n) {
		if ((n = utf8_len(p + i, len - i)) == 0)
			return (JSON_BAD_UTF8);
		if (n > 1)
			continue;
		/* yajl_tree_parse allows comments: quotes in them are not. */
		if (comment == '*') {
			if (p[i] == '*' && i + 1 < len && p[i + 1] == '/') {
				comment = 0;
				n = 2;
			}
			continue;
		}
		if (comment == '/') {
			if (p[i] == '\n')
				comment = 0;
			continue;
		}
		if (!instr && p[i] == '/' && i + 1 < len &&
		    (p[i + 1] == '*' || p[i + 1] == '/')) {
			comment = p[i + 1];
			n = 2;
			continue;
		}
		if (!instr) {
			if (p[i] == '"') {
				instr = 1;
				start = i + 1;
			} else if (p[i] == ':' && keylen > 0) {
				/* The string before it was a key. */
				for (k = 0; k + 1 < keylen && start + k < len &&
				    p[start + k] != '"'; k++)
					key[k] = p[start + k] < 0x20 ? '?' :
					    p[start + k];
				key[k] = '\0';
			}
			continue;
		}
		if (p[i] == '"') {
			instr = 0;
			continue;
		}
		if (p[i] != '\\')
			continue;
		if (i + 1 >= len)
			return (JSON_BAD_UTF8);
		if (p[i + 1] != 'u') {
			n = 2;
			continue;
		}
		if (!hex4(data + i + 2, len - i - 2, &cp) || cp == 0)
			return (JSON_BAD_ESCAPE);
		n = 6;
		if (cp >= 0xdc00 && cp <= 0xdfff)
			return (JSON_BAD_ESCAPE);
		if (cp >= 0xd800 && cp <= 0xdbff) {
			if (i + 12 > len || p[i + 6] != '\\' ||
			    p[i + 7] != 'u' ||
			    !hex4(data + i + 8, len - i - 8, &lo) ||
			    lo < 0xdc00 || lo > 0xdfff)
				return (JSON_BAD_ESCAPE);
			n = 12;
		}
	}

	return (JSON_OK);
}

/*
 * yajl has no depth limit and frees trees recursively: a 1 MiB answer of
 * brackets would exhaust the stack. Count depth outside strings first.
 */
int
json_depth_ok(const char *data, size_t len)
{
	size_t		i;
	int		depth, instr;

	depth = 0;
	instr = 0;

	for (i = 0; i < len; i++) {
		if (instr) {
			if (data[i] == '\\')
				i++;
			else if (data[i] == '"')
				instr = 0;
			continue;
		}

		switch (data[i]) {
		case '"':
			instr = 1;
			break;
		/* yajl_tree_parse allows comments: skip them as it does. */
		case '/':
			if (i + 1 < len && data[i + 1] == '*') {
				for (i += 2; i + 1 < len && !(data[i] == '*' &&
				    data[i + 1] == '/'); i++)
					;
				i++;
			} else if (i + 1 < len && data[i + 1] == '/') {
				while (i < len && data[i] != '\n')
					i++;
			}
			break;
		case '{':
		case '[':
			if (++depth > JSON_DEPTH_MAX)
				return (0);
			break;
		case '}':
		case ']':
			depth--;
			break;
		}
	}

	return (1);
}

/*
 * Strict base64 of either alphabet into a malloc'd buffer. JSON_B64_URL:
 * no padding (JWT parts); JSON_B64_STD: canonical '=' padding optional.
 * Leftover bits must be zero: one spelling per value, so a JWT is not
 * malleable and a sealed blob has one text.
 */
int
json_b64_decode(const char *in, size_t len, int alphabet, u_int8_t **out,
    size_t *outlen)
{
	size_t		i, n, pad;
	u_int32_t	acc;
	int		v, bits;
	u_int8_t	*buf;

	if (len == 0)
		return (KORE_RESULT_ERROR);

	pad = 0;
	while (alphabet == JSON_B64_STD && pad < 2 && len > 0 &&
	    in[len - 1] == '=') {
		len--;
		pad++;
	}
	if (len % 4 == 1 || (pad > 0 && (len + pad) % 4 != 0))
		return (KORE_RESULT_ERROR);

	if ((buf = malloc(len / 4 * 3 + 3)) == NULL)
		return (KORE_RESULT_ERROR);

	n = 0;
	acc = 0;
	bits = 0;
	for (i = 0; i < len; i++) {
		if ((v = json_b64_value((unsigned char)in[i], alphabet)) == -1)
			goto fail;
		acc = (acc << 6) | (u_int32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[n++] = (u_int8_t)(acc >> bits);
			acc &= (1U << bits) - 1;
		}
	}

	if (acc != 0)
		goto fail;

	*out = buf;
	*outlen = n;

	return (KORE_RESULT_OK);

fail:
	OPENSSL_cleanse(buf, len / 4 * 3 + 3);
	free(buf);

	return (KORE_RESULT_ERROR);
}

/* The value of one base64 character, -1 if it is not of the alphabet. */
int
json_b64_value(int c, int alphabet)
{
	if (c >= 'A' && c <= 'Z')
		return (c - 'A');
	if (c >= 'a' && c <= 'z')
		return (c - 'a' + 26);
	if (c >= '0' && c <= '9')
		return (c - '0' + 52);
	if (c == (alphabet == JSON_B64_URL ? '-' : '+'))
		return (62);
	if (c == (alphabet == JSON_B64_URL ? '_' : '/'))
		return (63);

	return (-1);
}

/* For yajl_gen_alloc: every buffer is wiped when freed or grown. */
void
json_wipe_funcs(yajl_alloc_funcs *funcs)
{
	funcs->malloc = wipe_malloc;
	funcs->realloc = wipe_realloc;
	funcs->free = wipe_free;
	funcs->ctx = NULL;
}

/* The error text of a pure parser; err may be NULL. */
void
json_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list		args;

	if (err == NULL || errlen == 0)
		return;

	va_start(args, fmt);
	(void)vsnprintf(err, errlen, fmt, args);
	va_end(args);
}

/* Length of the UTF-8 sequence at p, 0 if it is not strict UTF-8. */
static int
utf8_len(const unsigned char *p, size_t len)
{
	u_int32_t	cp;
	int		n, i;

	if (p[0] < 0x80)
		return (1);
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return (0);
	if ((size_t)n > len)
		return (0);

	cp = p[0] & (0x7f >> n);
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return (0);
		cp = (cp << 6) | (p[i] & 0x3f);
	}

	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return (0);

	return (n);
}

static int
hex4(const char *s, size_t len, u_int32_t *out)
{
	int		i, c;

	if (len < 4)
		return (0);
	*out = 0;
	for (i = 0; i < 4; i++) {
		c = (unsigned char)s[i];
		if (c >= '0' && c <= '9')
			c -= '0';
		else if (c >= 'a' && c <= 'f')
			c -= 'a' - 10;
		else if (c >= 'A' && c <= 'F')
			c -= 'A' - 10;
		else
			return (0);
		*out = (*out << 4) | (u_int32_t)c;
	}

	return (1);
}

static void *
wipe_malloc(void *ctx, size_t len)
{
	u_int8_t	*p;

	(void)ctx;

	if (len > SIZE_MAX - WIPE_HDR)
		return (NULL);
	if ((p = malloc(WIPE_HDR + len)) == NULL)
		return (NULL);

	memcpy(p, &len, sizeof(len));

	return (p + WIPE_HDR);
}

static void *
wipe_realloc(void *ctx, void *ptr, size_t len)
{
	size_t		old;
	u_int8_t	*p;

	if ((p = wipe_malloc(ctx, len)) == NULL)
		return (NULL);

	if (ptr != NULL) {
		memcpy(&old, (u_int8_t *)ptr - WIPE_HDR, sizeof(old));
		memcpy(p, ptr, old < len ? old : len);
		wipe_free(ctx, ptr);
	}

	return (p);
}

static void
wipe_free(void *ctx, void *ptr)
{
	size_t		len;
	u_int8_t	*p;

	(void)ctx;

	if (ptr == NULL)
		return;

	p = (u_int8_t *)ptr - WIPE_HDR;
	memcpy(&len, p, sizeof(len));
	OPENSSL_cleanse(p, WIPE_HDR + len);
	free(p);
}

/* Members of an object being written (g: a yajl_gen). */
void
json_kv_str(void *g, const char *key, const char *value)
{
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	if (value == NULL)
		yajl_gen_null(g);
	else
		yajl_gen_string(g, (const unsigned char *)value,
		    strlen(value));
}

void
json_kv_int(void *g, const char *key, int64_t value)
{
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	yajl_gen_integer(g, value);
}

void
json_kv_bool(void *g, const char *key, int value)
{
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	yajl_gen_bool(g, value);
}

/* A number with one decimal, as the pre-warming guide shows them. */
void
json_kv_decimal(void *g, const char *key, double value)
{
	char		buf[32];
	int		len;

	len = snprintf(buf, sizeof(buf), "%.1f", value);
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	yajl_gen_number(g, buf, len);
}

void
json_kv_null(void *g, const char *key)
{
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	yajl_gen_null(g);
}

/*
 * The field an error message names first ("client_id: required ..."):
 * the leading [a-z_] word when a ':' or ',' follows it. 0 when none.
 */
int
json_err_field(const char *msg, char *out, size_t len)
{
	size_t		n;

	for (n = 0; (msg[n] >= 'a' && msg[n] <= 'z') || msg[n] == '_'; n++)
		;
	if (n == 0 || n >= len || (msg[n] != ':' && msg[n] != ','))
		return (0);
	memcpy(out, msg, n);
	out[n] = '\0';

	return (1);
}
