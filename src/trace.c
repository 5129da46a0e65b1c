/*
 * trace.c: the W3C Trace Context traceparent header, checked before any
 * of it is logged or sent on to an upstream.
 *
 *	version "-" trace-id "-" parent-id "-" trace-flags
 *	00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
 *
 * Lowercase hex only; version ff is invalid; an all-zero trace-id or
 * parent-id is invalid. Version 00 is exactly 55 characters; a later
 * version may carry more fields after a '-' at 55, which are ignored.
 */

#include <sys/types.h>

#include <string.h>

#include "kiln.h"

static int	lowhex(const char *, size_t);
static int	all_zero(const char *, size_t);

int
trace_parent_parse(const char *v, struct trace_parent *tp)
{
	size_t		len;
	u_int8_t	flags;
	int		i;

	len = strlen(v);
	if (len < TRACE_PARENT_LEN || !lowhex(v, 2) ||
	    v[2] != '-' || v[35] != '-' || v[52] != '-')
		return (KORE_RESULT_ERROR);
	if (!strncmp(v, "ff", 2))
		return (KORE_RESULT_ERROR);
	if (!strncmp(v, "00", 2) && len != TRACE_PARENT_LEN)
		return (KORE_RESULT_ERROR);
	if (len > TRACE_PARENT_LEN && v[TRACE_PARENT_LEN] != '-')
		return (KORE_RESULT_ERROR);

	if (!lowhex(v + 3, 32) || all_zero(v + 3, 32) ||
	    !lowhex(v + 36, 16) || all_zero(v + 36, 16) ||
	    !lowhex(v + 53, 2))
		return (KORE_RESULT_ERROR);

	memcpy(tp->trace_id, v + 3, 32);
	tp->trace_id[32] = '\0';
	memcpy(tp->parent_id, v + 36, 16);
	tp->parent_id[16] = '\0';

	flags = 0;
	for (i = 53; i < 55; i++) {
		flags <<= 4;
		flags |= v[i] <= '9' ? v[i] - '0' : v[i] - 'a' + 10;
	}
	tp->flags = flags;

	return (KORE_RESULT_OK);
}

static int
lowhex(const char *s, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return (0);
	}

	return (1);
}

static int
all_zero(const char *s, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++) {
		if (s[i] != '0')
			return (0);
	}

	return (1);
}
