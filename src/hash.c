/*
 * hash.c (pure): FNV-1a, 64 bits. Spreads names and addresses over table
 * slots and rate buckets; not for secrets (it is not keyed).
 */

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kiln.h"

#define HASH_FNV_PRIME		1099511628211ULL

/* Continues h over data: start from HASH_FNV_BASIS. */
u_int64_t
hash_fnv1a(u_int64_t h, const void *data, size_t len)
{
	const u_int8_t	*p = data;
	size_t		i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= HASH_FNV_PRIME;
	}

	return (h);
}

u_int64_t
hash_fnv1a_str(const char *s)
{
	return (hash_fnv1a(HASH_FNV_BASIS, s, strlen(s)));
}

/* splitmix64's finalizer: ids spread from a seed and a counter. */
u_int64_t
hash_mix64(u_int64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return (x ^ (x >> 31));
}

/* Sixteen lowercase hex digits of v at out (no terminator). */
void
hash_hex64(u_int64_t v, char *out)
{
	static const char	hex[] = "0123456789abcdef";
	int			i;

	for (i = 15; i >= 0; i--) {
		out[i] = hex[v & 0x0f];
		v >>= 4;
	}
}
