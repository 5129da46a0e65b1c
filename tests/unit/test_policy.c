/*
 * test_policy.c: refresh time and backoff of DESIGN.md "Refresh policy".
 */

#include <sys/types.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "kiln.h"

#define SEC		1000LL
#define MIN		(60 * SEC)
#define HOUR		(60 * MIN)
#define NOW		1755624343000LL

static void
refresh_at_leads_by_buffer_without_jitter(void **state)
{
	(void)state;

	/* One hour token, 5 min buffer, rnd 0: exactly 5 min early. */
	assert_int_equal(policy_refresh_at(NOW, NOW + HOUR, 5 * MIN, 0.0),
	    NOW + HOUR - 5 * MIN);
}

static void
refresh_at_clamps_lead_to_half_lifetime(void **state)
{
	(void)state;

	/* A 4 min token with a 5 min buffer refreshes at half-life. */
	assert_int_equal(policy_refresh_at(NOW, NOW + 4 * MIN, 5 * MIN, 0.0),
	    NOW + 2 * MIN);

	/* A 60 s token with a 300 s buffer: after 30 s. */
	assert_int_equal(policy_refresh_at(NOW, NOW + 60 * SEC, 300 * SEC,
	    0.0), NOW + 30 * SEC);

	/* Even with full jitter, never before 45% of the lifetime. */
	assert_true(policy_refresh_at(NOW, NOW + 60 * SEC, 300 * SEC,
	    0.999999) >= NOW + 27 * SEC);
}

static void
refresh_at_jitter_within_10_percent(void **state)
{
	int64_t		at, lead, lo, hi;
	double		rnd;
	int		i;

	(void)state;

	lead = 5 * MIN;
	lo = NOW + HOUR - lead - lead / 10;
	hi = NOW + HOUR - lead;

	for (i = 0; i < 10000; i++) {
		rnd = (i < 2) ? (double)i * 0.9999999 : policy_random();
		at = policy_refresh_at(NOW, NOW + HOUR, lead, rnd);
		assert_in_range(at, lo, hi);
	}

	/* The extremes are reachable: rnd 0 and rnd near 1. */
	assert_int_equal(policy_refresh_at(NOW, NOW + HOUR, lead, 0.0), hi);
	assert_int_equal(policy_refresh_at(NOW, NOW + HOUR, lead, 0.5),
	    hi - lead / 20);
	assert_in_range(policy_refresh_at(NOW, NOW + HOUR, lead, 0.9999999),
	    lo, lo + 1);
}

static void
refresh_at_never_later_than_buffer_asks(void **state)
{
	int64_t		buffer, life;

	(void)state;

	for (life = 1; life < 2 * HOUR; life = life * 3 + 7) {
		for (buffer = 0; buffer < HOUR; buffer = buffer * 5 + 1) {
			assert_true(policy_refresh_at(NOW, NOW + life,
			    buffer, 0.3) <= NOW + life -
			    (buffer < life / 2 ? buffer : life / 2));
			assert_true(policy_refresh_at(NOW, NOW + life,
			    buffer, 0.3) >= NOW);
		}
	}
}

static void
refresh_at_expired_token_is_due_now(void **state)
{
	(void)state;

	assert_int_equal(policy_refresh_at(NOW, NOW, 5 * MIN, 0.5), NOW);
	assert_int_equal(policy_refresh_at(NOW, NOW - HOUR, 5 * MIN, 0.5),
	    NOW);
}

static void
refresh_at_out_of_range_rnd_is_clamped(void **state)
{
	int64_t		lead;

	(void)state;

	lead = 5 * MIN;
	assert_int_equal(policy_refresh_at(NOW, NOW + HOUR, lead, -3.0),
	    NOW + HOUR - lead);
	assert_in_range(policy_refresh_at(NOW, NOW + HOUR, lead, 7.0),
	    NOW + HOUR - lead - lead / 10, NOW + HOUR - lead);
}

static void
backoff_starts_at_1s_and_doubles(void **state)
{
	(void)state;

	/* rnd near 1 shows the ceiling: 1 s, 2 s, 4 s, ... */
	assert_in_range(policy_backoff(1, NOW, 0, 0.9999), 999, 1000);
	assert_in_range(policy_backoff(2, NOW, 0, 0.9999), 1998, 2000);
	assert_in_range(policy_backoff(3, NOW, 0, 0.9999), 3996, 4000);
	assert_in_range(policy_backoff(8, NOW, 0, 0.9999), 127980, 128000);
	assert_int_equal(policy_backoff(4, NOW, 0, 0.5), 4000);
}

static void
backoff_full_jitter_has_floor(void **state)
{
	(void)state;

	assert_int_equal(policy_backoff(1, NOW, 0, 0.0),
	    POLICY_BACKOFF_MIN_MS);
	assert_int_equal(policy_backoff(10, NOW, 0, 0.0),
	    POLICY_BACKOFF_MIN_MS);
	assert_int_equal(policy_backoff(0, NOW, 0, 0.9999), 999);
}

static void
backoff_capped_at_quarter_of_time_left(void **state)
{
	int64_t		d;
	u_int32_t	n;

	(void)state;

	/* 10 minutes left: no wait above 150 s, however many failures. */
	for (n = 1; n < 100; n++) {
		d = policy_backoff(n, NOW, NOW + 10 * MIN, 0.9999999);
		assert_in_range(d, POLICY_BACKOFF_MIN_MS, 150 * SEC);
	}
	assert_in_range(policy_backoff(20, NOW, NOW + 10 * MIN, 0.9999999),
	    150 * SEC - 1, 150 * SEC);

	/* 2 s left: 500 ms; 800 ms left: the 250 ms floor. */
	assert_in_range(policy_backoff(5, NOW, NOW + 2 * SEC, 0.9999999),
	    499, 500);
	assert_int_equal(policy_backoff(5, NOW, NOW + 800, 0.9999999),
	    POLICY_BACKOFF_MIN_MS);

	/* An hour left: the 300 s cap wins over 15 min. */
	assert_in_range(policy_backoff(30, NOW, NOW + HOUR, 0.9999999),
	    300 * SEC - 1, 300 * SEC);
}

static void
backoff_capped_at_300s_when_expired(void **state)
{
	(void)state;

	assert_in_range(policy_backoff(20, NOW, NOW - MIN, 0.9999999),
	    300 * SEC - 1, 300 * SEC);
	assert_in_range(policy_backoff(20, NOW, NOW, 0.9999999),
	    300 * SEC - 1, 300 * SEC);
	assert_in_range(policy_backoff(20, NOW, 0, 0.9999999),
	    300 * SEC - 1, 300 * SEC);
}

static void
backoff_survives_huge_failure_counts(void **state)
{
	u_int32_t	n;

	(void)state;

	for (n = 28; n < 70; n++) {
		assert_in_range(policy_backoff(n, NOW, 0, 0.9999999),
		    300 * SEC - 1, 300 * SEC);
	}
	assert_in_range(policy_backoff(UINT32_MAX, NOW, 0, 0.9999999),
	    300 * SEC - 1, 300 * SEC);
	assert_in_range(policy_backoff(UINT32_MAX, NOW, NOW + HOUR, 0.5),
	    150 * SEC - 1, 150 * SEC);
}

static void
random_is_uniform_in_unit_interval(void **state)
{
	double		r, sum;
	int		i, low;

	(void)state;

	sum = 0.0;
	low = 0;
	for (i = 0; i < 20000; i++) {
		r = policy_random();
		assert_true(r >= 0.0 && r < 1.0);
		sum += r;
		if (r < 0.1)
			low++;
	}

	/* Loose bounds: a broken generator fails, a fair one never does. */
	assert_true(sum / 20000 > 0.47 && sum / 20000 < 0.53);
	assert_in_range(low, 1600, 2400);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(refresh_at_leads_by_buffer_without_jitter),
		cmocka_unit_test(refresh_at_clamps_lead_to_half_lifetime),
		cmocka_unit_test(refresh_at_jitter_within_10_percent),
		cmocka_unit_test(refresh_at_never_later_than_buffer_asks),
		cmocka_unit_test(refresh_at_expired_token_is_due_now),
		cmocka_unit_test(refresh_at_out_of_range_rnd_is_clamped),
		cmocka_unit_test(backoff_starts_at_1s_and_doubles),
		cmocka_unit_test(backoff_full_jitter_has_floor),
		cmocka_unit_test(backoff_capped_at_quarter_of_time_left),
		cmocka_unit_test(backoff_capped_at_300s_when_expired),
		cmocka_unit_test(backoff_survives_huge_failure_counts),
		cmocka_unit_test(random_is_uniform_in_unit_interval),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
