/*
 * Checks of a rendered dbuf, shared by the rendering tests (include after
 * cmocka.h and kiln.h).
 */

#ifndef __H_DBUF_CHECK_H
#define __H_DBUF_CHECK_H

/* b holds exactly want. */
static inline void
expect(struct dbuf *b, const char *want)
{
	assert_non_null(b->data);
	assert_string_equal(b->data, want);
	assert_int_equal(b->len, strlen(want));
}

static inline void
has(const struct dbuf *b, const char *needle)
{
	if (b->data == NULL || strstr(b->data, needle) == NULL)
		fail_msg("missing %s in %s", needle, b->data);
}

static inline void
hasnt(const struct dbuf *b, const char *needle)
{
	if (b->data != NULL && strstr(b->data, needle) != NULL)
		fail_msg("unexpected %s in %s", needle, b->data);
}

/* How many times needle stands in b (overlapping ones too). */
static inline size_t
count_of(const struct dbuf *b, const char *needle)
{
	const char	*p;
	size_t		n;

	n = 0;
	for (p = b->data; p != NULL && (p = strstr(p, needle)) != NULL; p++)
		n++;

	return (n);
}

#endif /* __H_DBUF_CHECK_H */
