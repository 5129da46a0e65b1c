/*
 * fuzz.h: helpers shared by the libFuzzer harnesses of kiln's pure modules.
 */

#ifndef __H_FUZZ_H
#define __H_FUZZ_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#endif /* !__H_FUZZ_H */
