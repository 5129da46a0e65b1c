/*
 * test_isotime.c: ISO-8601 parsing and formatting.
 */

#include <sys/types.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kiln.h"

/* 2025-08-19T17:25:43Z */
#define T0		1755624343000LL

static int64_t
parse_ok(const char *s)
{
	int64_t		ms;

	ms = -1;
	if (!isotime_parse(s, &ms))
		fail_msg("isotime_parse refused \"%s\"", s);

	return (ms);
}

static void
isotime_parses_utc_with_z(void **state)
{
	(void)state;

	assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
	assert_int_equal(parse_ok("2025-08-19T17:25:43Z"), T0);
	assert_int_equal(parse_ok("2025-08-19t17:25:43z"), T0);
	assert_int_equal(parse_ok("2000-02-29T12:00:00Z"), 951825600000LL);
	assert_int_equal(parse_ok("9999-12-31T23:59:59.999Z"),
	    253402300799999LL);
}

static void
isotime_accepts_fraction_digits_0_to_9(void **state)
{
	(void)state;

	assert_int_equal(parse_ok("2025-08-19T17:25:43Z"), T0);
	assert_int_equal(parse_ok("2025-08-19T17:25:43.5Z"), T0 + 500);
	assert_int_equal(parse_ok("2025-08-19T17:25:43.55Z"), T0 + 550);
	assert_int_equal(parse_ok("2025-08-19T17:25:43.555Z"), T0 + 555);
	assert_int_equal(parse_ok("2025-08-19T17:25:43.5555Z"), T0 + 555);
	assert_int_equal(parse_ok("2025-08-19T17:25:43.55555Z"), T0 + 555);
	assert_int_equal(parse_ok("2025-08-19T17:25:43.555542Z"), T0 + 555);
	assert_int_equal(parse_ok("2025-08-19T17:25:43.5555555Z"), T0 + 555);
	assert_int_equal(parse_ok("2025-08-19T17:25:43.55555555Z"), T0 + 555);
	assert_int_equal(parse_ok("2025-08-19T17:25:43.123456789Z"),
	    T0 + 123);
	assert_int_equal(parse_ok("2025-08-19T17:25:43.999999999Z"),
	    T0 + 999);
}

static void
isotime_applies_offsets(void **state)
{
	(void)state;

	assert_int_equal(parse_ok("2025-08-19T22:55:43+05:30"), T0);
	assert_int_equal(parse_ok("2025-08-19T22:55:43+0530"), T0);
	assert_int_equal(parse_ok("2025-08-19T12:25:43-05:00"), T0);
	assert_int_equal(parse_ok("2025-08-19T17:25:43+00:00"), T0);
	assert_int_equal(parse_ok("2025-08-19T17:25:43-00:00"), T0);
	assert_int_equal(parse_ok("2025-08-20T17:24:43+23:59"), T0);
	assert_int_equal(parse_ok("2025-08-18T17:26:43-23:59"), T0);
	assert_int_equal(parse_ok("2025-08-19T22:55:43.250+05:30"),
	    T0 + 250);
}

static void
isotime_treats_no_zone_as_utc(void **state)
{
	(void)state;

	assert_int_equal(parse_ok("2025-08-19T17:25:43"), T0);
	assert_int_equal(parse_ok("2025-08-19T17:25:43.555542"), T0 + 555);
	assert_int_equal(parse_ok("2025-08-19 17:25:43"), T0);
	assert_int_equal(parse_ok("2025-08-19 17:25:43.1+01:00"),
	    T0 - 3600000 + 100);
}

static void
isotime_rejects_bad_inputs(void **state)
{
	static const char	*bad[] = {
		"",
		"2025",
		"2025-08-19",
		"2025-08-19T",
		"2025-08-19T17:25",
		"2025-08-19T17:25:43Zjunk",
		"2025-08-19T17:25:43 ",
		" 2025-08-19T17:25:43",
		"2025-08-19T17:25:43.",
		"2025-08-19T17:25:43.Z",
		"2025-08-19T17:25:43.1234567890Z",
		"2025-02-30T00:00:00Z",
		"2025-02-29T00:00:00Z",
		"1900-02-29T00:00:00Z",
		"2025-13-01T00:00:00Z",
		"2025-00-01T00:00:00Z",
		"2025-01-00T00:00:00Z",
		"2025-04-31T00:00:00Z",
		"2025-08-19T24:00:00Z",
		"2025-08-19T23:60:00Z",
		"2025-08-19T23:59:60Z",
		"2025-08-19T17:25:43+24:00",
		"2025-08-19T17:25:43+05:60",
		"2025-08-19T17:25:43+5:30",
		"2025-08-19T17:25:43+05",
		"2025-08-19T17:25:43+05:3",
		"2025-08-19T17:25:43UTC",
		"2025-08-19X17:25:43Z",
		"2025/08/19T17:25:43Z",
		"25-08-19T17:25:43Z",
		"1969-12-31T23:59:59Z",
		"1970-01-01T00:00:00+01:00",
		"10000-01-01T00:00:00Z",
		"0000-01-01T00:00:00Z",
		"2025-08-19T17:25:43\n",
		"+2025-08-19T17:25:43Z",
		"２０２５-08-19T17:25:43Z",
		"2025-08-19T17:25:43.5.5Z",
		"2025-08-19T17:25:-3Z",
	};
	size_t			i;
	int64_t			ms;

	(void)state;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms = 42;
		if (isotime_parse(bad[i], &ms))
			fail_msg("accepted bad input \"%s\"", bad[i]);
		assert_int_equal(ms, 42);
	}

	assert_false(isotime_parse(NULL, &ms));
}

static void
isotime_formats_with_three_digits_and_z(void **state)
{
	char		buf[ISOTIME_LEN];

	(void)state;

	isotime_format(T0 + 555, buf, sizeof(buf));
	assert_string_equal(buf, "2025-08-19T17:25:43.555Z");

	isotime_format(0, buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01T00:00:00.000Z");

	isotime_format(951825600007LL, buf, sizeof(buf));
	assert_string_equal(buf, "2000-02-29T12:00:00.007Z");

	isotime_format(253402300799999LL, buf, sizeof(buf));
	assert_string_equal(buf, "9999-12-31T23:59:59.999Z");
}

static void
isotime_format_and_parse_round_trip(void **state)
{
	int64_t		ms, t;
	char		buf[ISOTIME_LEN];

	(void)state;

	/* Every ~15 days plus odd milliseconds, 1970 to 9999. */
	for (t = 0; t < 253402300799999LL; t += 1333333337LL) {
		isotime_format(t, buf, sizeof(buf));
		ms = -1;
		assert_true(isotime_parse(buf, &ms));
		assert_int_equal(ms, t);
	}
}

static void
isotime_epoch_parses_seconds_and_milliseconds(void **state)
{
	static const char	*bad[] = {
		"", "-1", "1e9", "12a", "1755624343.", "+1755624343",
		"1755624343.1234567890", " 1755624343", "9999999999999999",
	};
	size_t			i;
	int64_t			ms;

	(void)state;

	assert_true(isotime_epoch_parse("1755624343", &ms));
	assert_int_equal(ms, T0);
	assert_true(isotime_epoch_parse("1755624343.555542", &ms));
	assert_int_equal(ms, T0 + 555);
	assert_true(isotime_epoch_parse("1755624343555", &ms));
	assert_int_equal(ms, T0 + 555);
	assert_true(isotime_epoch_parse("0", &ms));
	assert_int_equal(ms, 0);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms = 42;
		if (isotime_epoch_parse(bad[i], &ms))
			fail_msg("accepted bad epoch \"%s\"", bad[i]);
		assert_int_equal(ms, 42);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(isotime_parses_utc_with_z),
		cmocka_unit_test(isotime_accepts_fraction_digits_0_to_9),
		cmocka_unit_test(isotime_applies_offsets),
		cmocka_unit_test(isotime_treats_no_zone_as_utc),
		cmocka_unit_test(isotime_rejects_bad_inputs),
		cmocka_unit_test(isotime_formats_with_three_digits_and_z),
		cmocka_unit_test(isotime_format_and_parse_round_trip),
		cmocka_unit_test(isotime_epoch_parses_seconds_and_milliseconds),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
