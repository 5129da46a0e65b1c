/*
 * test_hash.c: FNV-1a 64, the hash of table slots and rate buckets.
 */

#include <sys/types.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kiln.h"

/* The published FNV-1a 64 test vectors (draft-eastlake-fnv). */
static void
hash_fnv1a_matches_reference_vectors(void **state)
{
	(void)state;

	assert_true(hash_fnv1a_str("") == 0xcbf29ce484222325ULL);
	assert_true(hash_fnv1a_str("a") == 0xaf63dc4c8601ec8cULL);
	assert_true(hash_fnv1a_str("foobar") == 0x85944171f73967e8ULL);
}

/* Hashing in pieces is hashing the whole: rate keys chain calls. */
static void
hash_fnv1a_continues_over_pieces(void **state)
{
	u_int64_t	h;

	(void)state;

	h = hash_fnv1a(HASH_FNV_BASIS, "foo", 3);
	assert_true(hash_fnv1a(h, "bar", 3) == hash_fnv1a_str("foobar"));
	assert_true(hash_fnv1a(h, NULL, 0) == hash_fnv1a_str("foo"));
	assert_true(hash_fnv1a(HASH_FNV_BASIS, "\0", 1) !=
	    hash_fnv1a_str(""));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hash_fnv1a_matches_reference_vectors),
		cmocka_unit_test(hash_fnv1a_continues_over_pieces),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
