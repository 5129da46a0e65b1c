/*
 * addr.c: client addresses as the allow-list and the rate limiter see
 * them (pure).
 *
 * On a `::` listener an IPv4 client arrives as ::ffff:a.b.c.d: it is
 * the IPv4 client a.b.c.d, for the allow-list and for its bucket. An
 * IPv6 client usually holds a whole /64 and may pick any address in
 * it, so its rate-limit bucket is that of its /64.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <string.h>

#include "kiln.h"

static const u_int8_t	v4mapped[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

/* ::ffff:a.b.c.d becomes AF_INET a.b.c.d; returns 1 when it did. */
int
addr_unmap(int *family, const u_int8_t **addr)
{
	if (*family != AF_INET6 || memcmp(*addr, v4mapped, sizeof(v4mapped)))
		return (0);

	*family = AF_INET;
	*addr += sizeof(v4mapped);

	return (1);
}

/* The rate-limit bucket of an address: IPv4 /32, IPv6 /64. */
u_int64_t
addr_rate_key(int family, const u_int8_t *addr)
{
	size_t		len;
	u_int8_t	fam;

	(void)addr_unmap(&family, &addr);
	if (family == AF_INET)
		len = 4;
	else if (family == AF_INET6)
		len = 8;
	else
		return (1);

	fam = (u_int8_t)family;

	return (hash_fnv1a(hash_fnv1a(HASH_FNV_BASIS, &fam, 1), addr, len));
}

/* Is addr (of family) inside the CIDR r? */
int
addr_cidr_match(const struct cidr *r, int family, const u_int8_t *addr)
{
	int		full, rest;

	if (r->family != family)
		return (0);

	full = r->bits / 8;
	rest = r->bits % 8;
	if (memcmp(r->addr, addr, full))
		return (0);
	if (rest == 0)
		return (1);

	return (((r->addr[full] ^ addr[full]) & (0xff << (8 - rest))) == 0);
}
