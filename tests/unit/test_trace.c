/*
 * test_trace.c: a traceparent is continued only when it is valid W3C
 * Trace Context (lowercase hex, version not ff, ids not all zero, exact
 * lengths); everything else is refused.
 */

#include <sys/types.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kiln.h"

#define TRACE		"4bf92f3577b34da6a3ce929d0e0e4736"
#define PARENT		"00f067aa0ba902b7"
#define GOOD		"00-" TRACE "-" PARENT "-01"

static void
refused(const char *v)
{
	struct trace_parent	tp;

	if (trace_parent_parse(v, &tp) != KORE_RESULT_ERROR)
		fail_msg("accepted: '%s'", v);
}

static void
valid_traceparent_is_continued(void **state)
{
	struct trace_parent	tp;

	(void)state;

	assert_int_equal(trace_parent_parse(GOOD, &tp), KORE_RESULT_OK);
	assert_string_equal(tp.trace_id, TRACE);
	assert_string_equal(tp.parent_id, PARENT);
	assert_int_equal(tp.flags, 0x01);

	assert_int_equal(trace_parent_parse("00-" TRACE "-" PARENT "-00",
	    &tp), KORE_RESULT_OK);
	assert_int_equal(tp.flags, 0x00);
	assert_int_equal(trace_parent_parse("00-" TRACE "-" PARENT "-ff",
	    &tp), KORE_RESULT_OK);
	assert_int_equal(tp.flags, 0xff);
}

static void
uppercase_hex_is_refused(void **state)
{
	(void)state;

	refused("00-4BF92F3577B34DA6A3CE929D0E0E4736-" PARENT "-01");
	refused("00-4bf92f3577b34da6a3ce929d0e0e473A-" PARENT "-01");
	refused("00-" TRACE "-00F067AA0BA902B7-01");
	refused("00-" TRACE "-" PARENT "-0A");
	refused("0A-" TRACE "-" PARENT "-01");
}

static void
version_ff_is_refused(void **state)
{
	(void)state;

	refused("ff-" TRACE "-" PARENT "-01");
}

static void
all_zero_ids_are_refused(void **state)
{
	(void)state;

	refused("00-00000000000000000000000000000000-" PARENT "-01");
	refused("00-" TRACE "-0000000000000000-01");
}

static void
wrong_lengths_are_refused(void **state)
{
	(void)state;

	refused("");
	refused("00");
	refused(GOOD "0");
	refused("00-" TRACE "-" PARENT "-1");
	refused("00-" TRACE "0-" PARENT "-01");
	refused("00-" TRACE "-" PARENT "0-01");
	/* 55 characters with the dashes one off */
	refused("00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01");
	refused("000-" TRACE "-" PARENT "-1");
	/* version 00 has exactly four fields */
	refused(GOOD "-extra");
}

static void
non_hex_and_separators_are_refused(void **state)
{
	(void)state;

	refused("00-4bf92f3577b34da6a3ce929d0e0e47zz-" PARENT "-01");
	refused("00-" TRACE "-00f067aa0ba902g7-01");
	refused("00-" TRACE "-" PARENT "-0g");
	refused("00_" TRACE "-" PARENT "-01");
	refused("00-" TRACE "_" PARENT "-01");
	refused("00-" TRACE "-" PARENT "_01");
	refused("00-4bf92f3577b34da6a3ce929d0e0e473 -" PARENT "-01");
	refused("00-" TRACE "-" PARENT "-0\n");
}

static void
later_version_may_carry_more_fields(void **state)
{
	struct trace_parent	tp;

	(void)state;

	assert_int_equal(trace_parent_parse("01-" TRACE "-" PARENT "-01",
	    &tp), KORE_RESULT_OK);
	assert_int_equal(trace_parent_parse("cc-" TRACE "-" PARENT
	    "-01-what-comes", &tp), KORE_RESULT_OK);
	assert_string_equal(tp.trace_id, TRACE);
	refused("cc-" TRACE "-" PARENT "-01what");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_traceparent_is_continued),
		cmocka_unit_test(uppercase_hex_is_refused),
		cmocka_unit_test(version_ff_is_refused),
		cmocka_unit_test(all_zero_ids_are_refused),
		cmocka_unit_test(wrong_lengths_are_refused),
		cmocka_unit_test(non_hex_and_separators_are_refused),
		cmocka_unit_test(later_version_may_carry_more_fields),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
