/*
 * test_addr.c: client addresses for the allow-list and the rate buckets
 * (issue 10 §5): IPv4-mapped IPv6 is IPv4, an IPv6 client's bucket is
 * its /64.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <arpa/inet.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kiln.h"

static u_int64_t
key_of(const char *text)
{
	u_int8_t	a[16];
	int		family;

	family = strchr(text, ':') != NULL ? AF_INET6 : AF_INET;
	assert_int_equal(inet_pton(family, text, a), 1);

	return (addr_rate_key(family, a));
}

static void
ipv6_same_64_shares_a_bucket(void **state)
{
	(void)state;

	assert_true(key_of("2001:db8:1:2::1") == key_of("2001:db8:1:2::2"));
	assert_true(key_of("2001:db8:1:2::1") ==
	    key_of("2001:db8:1:2:ffff:ffff:ffff:ffff"));
	assert_true(key_of("fd00::2") == key_of("fd00::3"));
}

static void
ipv6_other_64_other_bucket(void **state)
{
	(void)state;

	assert_true(key_of("2001:db8:1:2::1") != key_of("2001:db8:1:3::1"));
	assert_true(key_of("2001:db8:1:2::1") != key_of("2001:db9:1:2::1"));
	assert_true(key_of("::1") != key_of("fd00::1"));
}

static void
ipv4_per_address(void **state)
{
	(void)state;

	assert_true(key_of("192.0.2.1") != key_of("192.0.2.2"));
	assert_true(key_of("192.0.2.1") == key_of("192.0.2.1"));
}

static void
ipv4_mapped_is_ipv4(void **state)
{
	(void)state;

	/* the same client on a `::` listener and on a 0.0.0.0 one */
	assert_true(key_of("::ffff:192.0.2.1") == key_of("192.0.2.1"));
	/* and mapped clients are not lumped into one /64 */
	assert_true(key_of("::ffff:192.0.2.1") != key_of("::ffff:192.0.2.2"));
	/* an IPv6 /64 never shares the bucket of an IPv4 address */
	assert_true(key_of("c000:201::") != key_of("192.0.2.1"));
}

static void
unmap_only_mapped(void **state)
{
	u_int8_t	a[16];
	const u_int8_t	*p;
	int		family;

	(void)state;

	assert_int_equal(inet_pton(AF_INET6, "::ffff:127.0.0.1", a), 1);
	family = AF_INET6;
	p = a;
	assert_int_equal(addr_unmap(&family, &p), 1);
	assert_int_equal(family, AF_INET);
	assert_int_equal(p[0], 127);
	assert_int_equal(p[3], 1);

	assert_int_equal(inet_pton(AF_INET6, "::1", a), 1);
	family = AF_INET6;
	p = a;
	assert_int_equal(addr_unmap(&family, &p), 0);
	assert_int_equal(family, AF_INET6);
	assert_ptr_equal(p, a);

	assert_int_equal(inet_pton(AF_INET6, "::127.0.0.1", a), 1);
	family = AF_INET6;
	p = a;
	assert_int_equal(addr_unmap(&family, &p), 0);

	family = AF_INET;
	p = a;
	assert_int_equal(addr_unmap(&family, &p), 0);
}

/* One CIDR test for the public allow-list and the upstream rule. */
static void
cidr_match_by_prefix(void **state)
{
	struct cidr	r;
	u_int8_t	in[16], out[16], v6[16];

	(void)state;
	memset(&r, 0, sizeof(r));
	r.family = AF_INET;
	r.bits = 20;
	assert_int_equal(inet_pton(AF_INET, "169.254.0.0", r.addr), 1);
	assert_int_equal(inet_pton(AF_INET, "169.254.15.7", in), 1);
	assert_int_equal(inet_pton(AF_INET, "169.254.16.1", out), 1);
	assert_int_equal(inet_pton(AF_INET6, "fe80::1", v6), 1);
	assert_true(addr_cidr_match(&r, AF_INET, in));
	assert_false(addr_cidr_match(&r, AF_INET, out));
	assert_false(addr_cidr_match(&r, AF_INET6, v6));
	r.bits = 0;
	assert_true(addr_cidr_match(&r, AF_INET, out));
	r.bits = 32;
	assert_false(addr_cidr_match(&r, AF_INET, in));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ipv6_same_64_shares_a_bucket),
		cmocka_unit_test(ipv6_other_64_other_bucket),
		cmocka_unit_test(ipv4_per_address),
		cmocka_unit_test(ipv4_mapped_is_ipv4),
		cmocka_unit_test(unmap_only_mapped),
		cmocka_unit_test(cidr_match_by_prefix),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
