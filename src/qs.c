/*
 * qs.c (pure): one argument of a query string, as a browser or a
 * provider's redirect writes it: key=value pairs split by '&', the
 * value percent-decoded and '+' a space, a '#' ending it.
 */

#include <sys/types.h>

#include <stddef.h>
#include <string.h>

#include "kiln.h"

static int	qs_hex(char);

/*
 * The value of key in q into out: 1 when there and it fits with no
 * control character, 0 when absent (q may be NULL), -1 when too long or
 * holding a control character (out is then empty).
 */
int
qs_get(const char *q, const char *key, char *out, size_t len)
{
	const char	*v;
	size_t		klen, i, o;
	int		hi, lo;

	if (len == 0)
		return (-1);
	out[0] = '\0';
	if (q == NULL)
		return (0);

	klen = strlen(key);
	for (v = q; v != NULL; v = strchr(v, '&') != NULL ?
	    strchr(v, '&') + 1 : NULL) {
		if (strncmp(v, key, klen) || v[klen] != '=')
			continue;
		v += klen + 1;
		for (i = 0, o = 0; v[i] != '\0' && v[i] != '&' &&
		    v[i] != '#'; i++) {
			if (o + 1 >= len)
				break;
			if (v[i] == '%' && (hi = qs_hex(v[i + 1])) >= 0 &&
			    (lo = qs_hex(v[i + 2])) >= 0) {
				out[o++] = (char)(hi << 4 | lo);
				i += 2;
			} else {
				out[o++] = v[i] == '+' ? ' ' : v[i];
			}
			if ((unsigned char)out[o - 1] < 0x20 ||
			    out[o - 1] == 0x7f)
				break;
		}
		if (v[i] != '\0' && v[i] != '&' && v[i] != '#') {
			out[0] = '\0';
			return (-1);
		}
		out[o] = '\0';
		return (1);
	}

	return (0);
}

static int
qs_hex(char c)
{
	if (c >= '0' && c <= '9')
		return (c - '0');
	if (c >= 'a' && c <= 'f')
		return (c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (c - 'A' + 10);

	return (-1);
}
