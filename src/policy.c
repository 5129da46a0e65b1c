/*
 * policy.c: when to refresh a token, and how long to wait after failures.
 */

#include <sys/types.h>

#include <stdint.h>

#include <openssl/rand.h>

#include "kiln.h"

static double	clamp_rnd(double);

/*
 * Refresh min(buffer, L/2) before expiry, minus up to 10% of that lead
 * so that sources obtained together do not refresh together.
 */
int64_t
policy_refresh_at(int64_t obtained_ms, int64_t expires_ms, int64_t buffer_ms,
    double rnd)
{
	int64_t		lifetime, lead, jitter;

	if (expires_ms <= obtained_ms)
		return (obtained_ms);

	lifetime = expires_ms - obtained_ms;
	if (buffer_ms < 0)
		buffer_ms = 0;

	lead = buffer_ms;
	if (lead > lifetime / 2)
		lead = lifetime / 2;

	/* Truncated, so jitter never exceeds 10% of the lead. */
	jitter = (int64_t)(clamp_rnd(rnd) * 0.10 * (double)lead);

	return (expires_ms - lead - jitter);
}

/*
 * Exponential backoff with full jitter. While the token is still valid
 * the cap is a quarter of the time it has left, so several attempts fit
 * before it expires.
 */
int64_t
policy_backoff(u_int32_t failures, int64_t now_ms, int64_t expires_ms,
    double rnd)
{
	int64_t		cap, ceiling, delay;

	cap = POLICY_BACKOFF_MAX_MS;
	if (expires_ms != 0 && expires_ms > now_ms &&
	    (expires_ms - now_ms) / 4 < cap)
		cap = (expires_ms - now_ms) / 4;
	if (cap < POLICY_BACKOFF_MIN_MS)
		cap = POLICY_BACKOFF_MIN_MS;

	if (failures == 0)
		failures = 1;

	/* 2^30 seconds is far beyond any cap: stop shifting there. */
	if (failures > 31)
		ceiling = cap;
	else
		ceiling = (int64_t)POLICY_BACKOFF_BASE_MS << (failures - 1);
	if (ceiling > cap)
		ceiling = cap;

	delay = (int64_t)(clamp_rnd(rnd) * (double)ceiling);
	if (delay < POLICY_BACKOFF_MIN_MS)
		delay = POLICY_BACKOFF_MIN_MS;

	return (delay);
}

double
policy_random(void)
{
	u_int64_t	v;
	u_int8_t	b[8];
	int		i;

	/* Without randomness, no jitter is the safe answer. */
	if (RAND_bytes(b, sizeof(b)) != 1)
		return (0.0);

	v = 0;
	for (i = 0; i < 8; i++)
		v = (v << 8) | b[i];

	/* The top 53 bits fill a double's mantissa exactly. */
	return ((double)(v >> 11) / 9007199254740992.0);
}

static double
clamp_rnd(double rnd)
{
	if (!(rnd >= 0.0))
		return (0.0);
	if (rnd >= 1.0)
		return (0.999999999);

	return (rnd);
}

/*
 * The one-word state of a token for people: paused, refreshing (a lease
 * is held), failing (last attempts failed, token still valid), expired
 * (no valid token), pending (never obtained yet), or valid.
 */
const char *
policy_state(int paused, int leased, u_int32_t failures, int has_token,
    int64_t expires_ms, int64_t now_ms)
{
	int		valid;

	valid = has_token && expires_ms > now_ms;

	if (paused)
		return ("paused");
	if (leased)
		return ("refreshing");
	if (!valid)
		return (has_token ? "expired" : (failures ? "failing" :
		    "pending"));
	if (failures > 0)
		return ("failing");

	return ("valid");
}
