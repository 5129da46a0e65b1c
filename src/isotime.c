/*
 * isotime.c: ISO-8601 / RFC 3339 date-times and epoch seconds to and from
 * milliseconds since the epoch (UTC), without the locale or the TZ of the
 * process.
 */

#include <sys/types.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kiln.h"

#define DAY_MS			86400000LL
/* 9999-12-31T23:59:59.999Z */
#define ISOTIME_MAX_MS		253402300799999LL

static int	digits(const char **, int, int *);
static int	fraction(const char **, int64_t *);
static int	days_in_month(int, int);
static int64_t	days_from_civil(int, int, int);
static void	civil_from_days(int64_t, int *, int *, int *);

int
isotime_parse(const char *s, int64_t *ms)
{
	int64_t		t, frac;
	int		year, mon, mday, hour, min, sec;
	int		sign, oh, om;

	if (s == NULL)
		return (KORE_RESULT_ERROR);

	if (!digits(&s, 4, &year) || *s++ != '-' ||
	    !digits(&s, 2, &mon) || *s++ != '-' ||
	    !digits(&s, 2, &mday))
		return (KORE_RESULT_ERROR);

	if (*s != 'T' && *s != 't' && *s != ' ')
		return (KORE_RESULT_ERROR);
	s++;

	if (!digits(&s, 2, &hour) || *s++ != ':' ||
	    !digits(&s, 2, &min) || *s++ != ':' ||
	    !digits(&s, 2, &sec))
		return (KORE_RESULT_ERROR);

	if (year < 1970 || year > 9999 || mon < 1 || mon > 12 ||
	    mday < 1 || mday > days_in_month(year, mon) ||
	    hour > 23 || min > 59 || sec > 59)
		return (KORE_RESULT_ERROR);

	if (!fraction(&s, &frac))
		return (KORE_RESULT_ERROR);

	oh = 0;
	om = 0;
	sign = 1;
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = (*s == '-') ? -1 : 1;
		s++;
		if (!digits(&s, 2, &oh))
			return (KORE_RESULT_ERROR);
		if (*s == ':')
			s++;
		if (!digits(&s, 2, &om))
			return (KORE_RESULT_ERROR);
		if (oh > 23 || om > 59)
			return (KORE_RESULT_ERROR);
	}

	if (*s != '\0')
		return (KORE_RESULT_ERROR);

	t = days_from_civil(year, mon, mday) * DAY_MS;
	t += ((int64_t)hour * 3600 + min * 60 + sec) * 1000 + frac;
	t -= sign * ((int64_t)oh * 3600 + om * 60) * 1000;

	if (t < 0 || t > ISOTIME_MAX_MS)
		return (KORE_RESULT_ERROR);

	*ms = t;
	return (KORE_RESULT_OK);
}

/*
 * Decimal epoch seconds with an optional fraction. Values above 1e11 would
 * lie past the year 5138 as seconds: those are epoch milliseconds.
 */
int
isotime_epoch_parse(const char *s, int64_t *ms)
{
	int64_t		ip, frac;
	int		n, scale;

	if (s == NULL || *s < '0' || *s > '9')
		return (KORE_RESULT_ERROR);

	ip = 0;
	for (n = 0; *s >= '0' && *s <= '9'; n++, s++) {
		if (n >= 15)
			return (KORE_RESULT_ERROR);
		ip = ip * 10 + (*s - '0');
	}

	scale = (ip > ISOTIME_EPOCH_MS_ABOVE) ? 1 : 1000;

	if (!fraction(&s, &frac))
		return (KORE_RESULT_ERROR);

	if (*s != '\0')
		return (KORE_RESULT_ERROR);

	/* Fractions of a millisecond are dropped. */
	if (scale == 1)
		frac = 0;

	if (ip > ISOTIME_MAX_MS / scale)
		return (KORE_RESULT_ERROR);

	ip = ip * scale + frac;
	if (ip > ISOTIME_MAX_MS)
		return (KORE_RESULT_ERROR);

	*ms = ip;
	return (KORE_RESULT_OK);
}

void
isotime_format(int64_t ms, char *buf, size_t len)
{
	int64_t		days, rem;
	int		year, mon, mday;

	days = ms / DAY_MS;
	rem = ms % DAY_MS;
	if (rem < 0) {
		rem += DAY_MS;
		days--;
	}

	civil_from_days(days, &year, &mon, &mday);

	(void)snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    year, mon, mday, (int)(rem / 3600000), (int)(rem / 60000 % 60),
	    (int)(rem / 1000 % 60), (int)(rem % 1000));
}

static int
digits(const char **sp, int count, int *out)
{
	const char	*s;
	int		i, v;

	s = *sp;
	v = 0;

	for (i = 0; i < count; i++) {
		if (s[i] < '0' || s[i] > '9')
			return (KORE_RESULT_ERROR);
		v = v * 10 + (s[i] - '0');
	}

	*sp = s + count;
	*out = v;

	return (KORE_RESULT_OK);
}

/* An optional ".d{1,9}" as milliseconds: the rest is truncated. */
static int
fraction(const char **sp, int64_t *frac)
{
	const char	*s;
	int		n;

	s = *sp;
	*frac = 0;
	if (*s != '.')
		return (KORE_RESULT_OK);

	s++;
	for (n = 0; *s >= '0' && *s <= '9'; n++, s++) {
		if (n < 3)
			*frac = *frac * 10 + (*s - '0');
	}
	if (n == 0 || n > 9)
		return (KORE_RESULT_ERROR);
	for (; n < 3; n++)
		*frac *= 10;

	*sp = s;

	return (KORE_RESULT_OK);
}

static int
days_in_month(int year, int mon)
{
	static const int	mdays[12] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
	};

	if (mon == 2 && year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))
		return (29);

	return (mdays[mon - 1]);
}

/* Howard Hinnant's days_from_civil: proleptic Gregorian, year >= 0. */
static int64_t
days_from_civil(int year, int mon, int mday)
{
	int64_t		era, yoe, doy, doe;

	if (mon <= 2)
		year--;

	era = year / 400;
	yoe = year - era * 400;
	doy = (153 * (mon > 2 ? mon - 3 : mon + 9) + 2) / 5 + mday - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return (era * 146097 + doe - 719468);
}

static void
civil_from_days(int64_t days, int *year, int *mon, int *mday)
{
	int64_t		era, doe, yoe, doy, mp, y;

	days += 719468;
	era = (days >= 0 ? days : days - 146096) / 146097;
	doe = days - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;

	*mday = (int)(doy - (153 * mp + 2) / 5 + 1);
	*mon = (int)(mp < 10 ? mp + 3 : mp - 9);
	*year = (int)(y + (*mon <= 2));
}

/* The wall clock, in the unit of every time in kiln. */
int64_t
isotime_now(void)
{
	struct timespec	ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}
