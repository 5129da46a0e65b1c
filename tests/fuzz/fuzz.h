/*
 * fuzz.h: helpers shared by the libFuzzer harnesses of kiln's pure modules.
 */

#ifndef __H_FUZZ_H
#define __H_FUZZ_H

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>

/* The nesting bound oauth_json_parse promises (OAUTH_DEPTH_MAX). */
#define FUZZ_DEPTH_MAX		64

/* A broken invariant is a crash, with the reason on stderr. */
#define FUZZ_CHECK(cond)						\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "%s:%d: invariant failed: %s\n",	\
			    __FILE__, __LINE__, #cond);			\
			abort();					\
		}							\
	} while (0)

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const unsigned char *, size_t);

/* Data as a fresh C string (an inner NUL ends it early). */
static inline char *
fuzz_cstr(const unsigned char *data, size_t len)
{
	char	*s;

	if ((s = malloc(len + 1)) == NULL)
		abort();
	memcpy(s, data, len);
	s[len] = '\0';

	return (s);
}

/* Containers count one level each, as in oauth.c's json_depth_ok. */
static inline size_t
fuzz_tree_depth(yajl_val v)
{
	size_t		i, d, max;

	if (v == NULL)
		return (0);

	max = 0;
	if (YAJL_IS_OBJECT(v)) {
		for (i = 0; i < v->u.object.len; i++) {
			if ((d = fuzz_tree_depth(v->u.object.values[i])) > max)
				max = d;
		}
		return (max + 1);
	}
	if (YAJL_IS_ARRAY(v)) {
		for (i = 0; i < v->u.array.len; i++) {
			if ((d = fuzz_tree_depth(v->u.array.values[i])) > max)
				max = d;
		}
		return (max + 1);
	}

	return (0);
}

/* Errors go to logs and clients: printable ASCII only. */
static inline int
fuzz_printable(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return (0);
	}

	return (1);
}

/* RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF. */
static inline int
fuzz_utf8_strict(const unsigned char *s, size_t len)
{
	size_t		i, n, k;
	u_int32_t	cp, min;

	for (i = 0; i < len; i += n) {
		if (s[i] < 0x80) {
			n = 1;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			n = 2;
			min = 0x80;
		} else if ((s[i] & 0xf0) == 0xe0) {
			n = 3;
			min = 0x800;
		} else if ((s[i] & 0xf8) == 0xf0) {
			n = 4;
			min = 0x10000;
		} else {
			return (0);
		}
		if (n > len - i)
			return (0);
		cp = s[i] & (0xff >> (n + 1));
		for (k = 1; k < n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return (0);
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return (0);
	}

	return (1);
}

static inline int
fuzz_string_cb(void *ctx, const unsigned char *s, size_t len)
{
	if (memchr(s, '\0', len) != NULL || !fuzz_utf8_strict(s, len))
		*(int *)ctx = 0;

	return (1);
}

/*
 * What oauth_json_parse accepts holds no string C cannot (a NUL from
 * \u0000) and no bytes that are not strict UTF-8 (unpaired surrogate
 * escapes). yajl's callback parser sees each string with its length;
 * comments are allowed as yajl_tree_parse allows them.
 */
static inline int
fuzz_json_strings_ok(const char *data, size_t len)
{
	yajl_callbacks	cb;
	yajl_handle	h;
	int		ok;

	memset(&cb, 0, sizeof(cb));
	cb.yajl_string = fuzz_string_cb;
	cb.yajl_map_key = fuzz_string_cb;

	ok = 1;
	if ((h = yajl_alloc(&cb, NULL, &ok)) == NULL)
		abort();
	(void)yajl_config(h, yajl_allow_comments, 1);
	(void)yajl_parse(h, (const unsigned char *)data, len);
	(void)yajl_complete_parse(h);
	yajl_free(h);

	return (ok);
}

#endif /* !__H_FUZZ_H */
