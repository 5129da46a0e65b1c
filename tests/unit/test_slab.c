/*
 * test_slab.c: the token table's memory (slab.c): pieces zeroed, 64-byte
 * aligned, apart from each other, reused by their class only.
 */

#include <sys/types.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kiln.h"

static int
all_zero(const u_int8_t *p, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++) {
		if (p[i] != 0)
			return (0);
	}

	return (1);
}

/* A map is 2 MB-aligned (huge pages need it), zeroed and writable. */
static void
slab_map_is_aligned_and_zeroed(void **state)
{
	u_int8_t	*p;

	(void)state;

	p = slab_map(1024 * 1024);
	assert_non_null(p);
	assert_int_equal((uintptr_t)p % (2 * 1024 * 1024), 0);
	assert_true(all_zero(p, 1024 * 1024));
	p[1024 * 1024 - 1] = 1;
	assert_null(slab_map(0));
}

/* Pieces of every class: aligned, zeroed, not overlapping. */
static void
slab_pieces_are_aligned_zeroed_and_apart(void **state)
{
	u_int8_t	*p[200];
	size_t		i, j, len[200];

	(void)state;

	for (i = 0; i < 200; i++) {
		len[i] = 1 + (i * 97) % SLAB_MAX;
		p[i] = slab_alloc(len[i]);
		assert_non_null(p[i]);
		assert_int_equal((uintptr_t)p[i] % SLAB_ALIGN, 0);
		assert_true(all_zero(p[i], len[i]));
		memset(p[i], (int)(i + 1), len[i]);
	}
	for (i = 0; i < 200; i++) {
		for (j = 0; j < len[i]; j++)
			assert_int_equal(p[i][j], (u_int8_t)(i + 1));
	}
	for (i = 0; i < 200; i++)
		slab_free(p[i], len[i]);
}

/* A freed piece comes back zeroed, to a length of its class only. */
static void
slab_free_piece_is_reused_by_its_class(void **state)
{
	u_int8_t	*a, *b, *c;

	(void)state;

	a = slab_alloc(300);			/* class 320 */
	memset(a, 0xaa, 300);
	slab_free(a, 300);

	b = slab_alloc(1000);			/* class 1024: not a */
	assert_ptr_not_equal(a, b);
	c = slab_alloc(257);			/* class 320: a again */
	assert_ptr_equal(a, c);
	assert_true(all_zero(c, 320));

	slab_free(b, 1000);
	slab_free(c, 257);
	slab_free(NULL, 10);
}

/* Larger than SLAB_MAX: the system's, zeroed, and given back. */
static void
slab_large_pieces_are_the_systems(void **state)
{
	u_int8_t	*p;
	size_t		mapped;

	(void)state;

	mapped = slab_mapped();
	p = slab_alloc(SLAB_MAX + 1);
	assert_non_null(p);
	assert_true(all_zero(p, SLAB_MAX + 1));
	assert_int_equal(slab_mapped(), mapped);
	slab_free(p, SLAB_MAX + 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(slab_map_is_aligned_and_zeroed),
		cmocka_unit_test(slab_pieces_are_aligned_zeroed_and_apart),
		cmocka_unit_test(slab_free_piece_is_reused_by_its_class),
		cmocka_unit_test(slab_large_pieces_are_the_systems),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
