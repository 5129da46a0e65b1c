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
