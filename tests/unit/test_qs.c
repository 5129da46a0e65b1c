/*
 * test_qs.c: one argument of a query string (the OAuth callback's code,
 * state and error; the dashboard's connections page).
 */

#include <sys/types.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kiln.h"

static void
qs_finds_decodes_and_stops(void **state)
{
	char	out[32];

	(void)state;

	assert_int_equal(qs_get("code=a%2Fb+c&state=xy", "code", out,
	    sizeof(out)), 1);
	assert_string_equal(out, "a/b c");
	assert_int_equal(qs_get("code=a&state=xy", "state", out,
	    sizeof(out)), 1);
	assert_string_equal(out, "xy");
	/* a key is matched whole, not as a prefix or suffix */
	assert_int_equal(qs_get("xstate=1&stat=2", "state", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(qs_get("state&state=3", "state", out, sizeof(out)),
	    1);
	assert_string_equal(out, "3");
	/* the first wins; empty is there; '#' ends a value */
	assert_int_equal(qs_get("a=1&a=2", "a", out, sizeof(out)), 1);
	assert_string_equal(out, "1");
	assert_int_equal(qs_get("a=&b=2", "a", out, sizeof(out)), 1);
	assert_string_equal(out, "");
	assert_int_equal(qs_get("a=1#frag", "a", out, sizeof(out)), 1);
	assert_string_equal(out, "1");
	/* a bad escape is kept as it is */
	assert_int_equal(qs_get("a=%zz%4", "a", out, sizeof(out)), 1);
	assert_string_equal(out, "%zz%4");
	assert_int_equal(qs_get(NULL, "a", out, sizeof(out)), 0);
}

static void
qs_refuses_long_and_control(void **state)
{
	char	out[4];

	(void)state;

	assert_int_equal(qs_get("a=abc", "a", out, sizeof(out)), 1);
	assert_string_equal(out, "abc");
	assert_int_equal(qs_get("a=abcd", "a", out, sizeof(out)), -1);
	assert_string_equal(out, "");
	assert_int_equal(qs_get("a=%41%42%43%44", "a", out, sizeof(out)),
	    -1);
	assert_int_equal(qs_get("a=x%0Ay", "a", out, sizeof(out)), -1);
	assert_string_equal(out, "");
	assert_int_equal(qs_get("a=%7f", "a", out, sizeof(out)), -1);
	assert_int_equal(qs_get("a=%00", "a", out, sizeof(out)), -1);
	assert_int_equal(qs_get("a=1", "a", out, 0), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(qs_finds_decodes_and_stops),
		cmocka_unit_test(qs_refuses_long_and_control),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
