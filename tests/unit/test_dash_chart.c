/*
 * test_dash_chart.c: the dashboard's charts as SVG. A series becomes a
 * polyline of its points scaled to a round top, a missing point breaks
 * the line, labels are escaped, quantiles come from the histogram.
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
#include "dbuf_check.h"

static void
chart_scales_to_a_round_top(void **state)
{
	double			v[3] = { 0, 35, 70 };
	struct dc_series	s = { "requests/s", v };
	struct dbuf		b;

	(void)state;
	dbuf_init(&b);
	dc_chart(&b, "requests", "Requests per second", "all routes", &s, 1,
	    3, 60);
	/* 70 rounds up to 100: the grid says 0, 50, 100. */
	has(&b, "data-chart=\"requests\" data-points=\"3\"");
	has(&b, ">100</text>");
	has(&b, ">50</text>");
	/* x from 44 to 592, y from 128 (zero) up 118 at the top. */
	has(&b, "<polyline class=\"c0\" points=\"44.0,128.0 318.0,86.7 "
	    "592.0,45.4 \"/>");
	has(&b, "requests/s <b>70</b>");
	has(&b, "−2 min");
	dbuf_free(&b);
}

static void
missing_points_break_the_line(void **state)
{
	double			v[5] = { 1, -1, 2, 3, -1 };
	struct dc_series	s = { "p99", v };
	struct dbuf		b;

	(void)state;
	dbuf_init(&b);
	dc_chart(&b, "latency", "Refresh latency", "ms", &s, 1, 5, 60);
	assert_int_equal(count_of(&b, "<polyline"), 2);
	/* The last point has no data: the legend says so. */
	has(&b, "p99 <b>—</b>");
	dbuf_free(&b);
}

static void
labels_are_escaped(void **state)
{
	double			v[2] = { 1, 2 };
	struct dc_series	s[2] = { { "<b>evil</b>", v },
				    { "host\"x", v } };
	struct dbuf		b;

	(void)state;
	dbuf_init(&b);
	dc_chart(&b, "up<x>", "Upstream <errors>", "a&b", s, 2, 2, 60);
	hasnt(&b, "<b>evil");
	hasnt(&b, "<errors>");
	hasnt(&b, "host\"x");
	has(&b, "data-chart=\"up&lt;x&gt;\"");
	has(&b, "&lt;b&gt;evil&lt;/b&gt;");
	has(&b, "data-series=\"host&quot;x\"");
	has(&b, "(a&amp;b)");
	assert_int_equal(count_of(&b, "<polyline"), 2);
	dbuf_free(&b);
}

static void
no_series_no_line(void **state)
{
	double			v[4] = { 0, 0, 0, 0 };
	struct dc_series	s = { "failures", v };
	struct dbuf		b;

	(void)state;
	dbuf_init(&b);
	dc_chart(&b, "upstream", "Upstream errors", "per minute", NULL, 0, 60,
	    60);
	hasnt(&b, "<polyline");
	has(&b, "No data yet.");
	has(&b, "−59 min");
	dbuf_free(&b);

	/* All zero: a flat line at the bottom, a top of 1. */
	dbuf_init(&b);
	dc_chart(&b, "failures", "Refresh failures", "per minute", &s, 1, 4,
	    60);
	has(&b, ">1</text>");
	has(&b, "44.0,128.0 ");
	has(&b, "592.0,128.0 ");
	dbuf_free(&b);
}

static void
quantiles_of_a_histogram(void **state)
{
	const double	le[3] = { 1, 10, 100 };
	u_int64_t	c[4] = { 50, 40, 9, 1 };
	u_int64_t	none[4] = { 0, 0, 0, 0 };
	u_int64_t	over[4] = { 0, 0, 0, 5 };

	(void)state;
	assert_true(dc_quantile(c, le, 3, 0.5) == 1);
	assert_true(dc_quantile(c, le, 3, 0.9) == 10);
	assert_true(dc_quantile(c, le, 3, 0.99) == 100);
	assert_true(dc_quantile(none, le, 3, 0.5) < 0);
	/* Beyond the last bound: the last bound. */
	assert_true(dc_quantile(over, le, 3, 0.5) == 100);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(chart_scales_to_a_round_top),
		cmocka_unit_test(missing_points_break_the_line),
		cmocka_unit_test(labels_are_escaped),
		cmocka_unit_test(no_series_no_line),
		cmocka_unit_test(quantiles_of_a_histogram),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
