/*
 * dash_chart.c (pure): line charts of the dashboard as SVG, drawn on the
 * server from plain series (the per-minute history of shared.c, summed
 * by dashboard.c), and the quantiles of a latency histogram.
 *
 * The SVG carries no script, no style attribute and no URL: colours come
 * from CSS classes (c0..c7), so that the page's CSP and dark mode hold.
 * Labels are escaped like every other string of the dashboard.
 */

#include <sys/types.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kiln.h"

#define DC_W		600
#define DC_H		150
#define DC_LEFT		44
#define DC_RIGHT	8
#define DC_TOP		10
#define DC_BOTTOM	22

static double	dc_nice(double);
static void	dc_num(char *, size_t, double);

/*
 * The upper bound of the bucket that holds quantile q of a histogram:
 * counts has nb finite buckets (upper bounds le[]) and one more for the
 * values above the last. -1 when the histogram is empty; the last finite
 * bound when the quantile lies beyond it.
 */
double
dc_quantile(const u_int64_t *counts, const double *le, size_t nb, double q)
{
	u_int64_t	total, seen;
	size_t		i;

	total = 0;
	for (i = 0; i <= nb; i++)
		total += counts[i];
	if (total == 0 || nb == 0)
		return (-1);

	seen = 0;
	for (i = 0; i < nb; i++) {
		seen += counts[i];
		if ((double)seen >= q * (double)total)
			return (le[i]);
	}

	return (le[nb - 1]);
}

/*
 * One chart: series of n points each, oldest first, one point a step of
 * step_s seconds, the last one the current (live, partial) step. A value
 * below zero is "no data": the line breaks there. The y axis starts at
 * zero and ends at a round number above the largest value.
 */
void
dc_chart(struct dbuf *b, const char *id, const char *title, const char *unit,
    const struct dc_series *s, size_t ns, size_t n, int step_s)
{
	double		max, ymax, x, y, v, last;
	size_t		i, j;
	int		open, pw, ph;
	char		num[32];

	pw = DC_W - DC_LEFT - DC_RIGHT;
	ph = DC_H - DC_TOP - DC_BOTTOM;
	max = 0;
	for (j = 0; j < ns; j++) {
		for (i = 0; i < n; i++) {
			if (s[j].v[i] > max)
				max = s[j].v[i];
		}
	}
	ymax = dc_nice(max);

	dbuf_appendf(b, "<figure class=\"chart\"><figcaption>");
	dr_escape(b, title);
	dbuf_appendf(b, " <small>(");
	dr_escape(b, unit);
	dbuf_appendf(b, ")</small></figcaption><svg class=\"chart\" "
	    "data-chart=\"");
	dr_escape(b, id);
	dbuf_appendf(b, "\" data-points=\"%zu\" viewBox=\"0 0 %d %d\" "
	    "role=\"img\" aria-label=\"", n, DC_W, DC_H);
	dr_escape(b, title);
	dbuf_appendf(b, "\">");

	/* The grid: zero, half and the top, labelled. */
	for (i = 0; i <= 2; i++) {
		y = DC_TOP + ph - ph * (double)i / 2.0;
		dc_num(num, sizeof(num), ymax * (double)i / 2.0);
		dbuf_appendf(b, "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" "
		    "x2=\"%d\" y2=\"%.1f\"/><text class=\"axis\" x=\"%d\" "
		    "y=\"%.1f\" text-anchor=\"end\">%s</text>", DC_LEFT, y,
		    DC_W - DC_RIGHT, y, DC_LEFT - 4, y + 4, num);
	}
	if (n > 1) {
		dbuf_appendf(b, "<text class=\"axis\" x=\"%d\" y=\"%d\">"
		    "−%zu min</text><text class=\"axis\" x=\"%d\" y=\"%d\" "
		    "text-anchor=\"end\">now</text>", DC_LEFT, DC_H - 6,
		    (n - 1) * (size_t)step_s / 60, DC_W - DC_RIGHT, DC_H - 6);
	}

	for (j = 0; j < ns; j++) {
		open = 0;
		for (i = 0; i < n; i++) {
			v = s[j].v[i];
			if (v < 0) {
				if (open)
					dbuf_appendf(b, "\"/>");
				open = 0;
				continue;
			}
			x = DC_LEFT + (n > 1 ? pw * (double)i / (n - 1) : 0);
			y = DC_TOP + ph - (ymax > 0 ? ph * v / ymax : 0);
			if (!open)
				dbuf_appendf(b, "<polyline class=\"c%zu\" "
				    "points=\"", j % 8);
			dbuf_appendf(b, "%.1f,%.1f ", x, y);
			open = 1;
		}
		if (open)
			dbuf_appendf(b, "\"/>");
	}
	dbuf_appendf(b, "</svg><ul class=\"legend\">");

	for (j = 0; j < ns; j++) {
		last = n > 0 ? s[j].v[n - 1] : -1;
		dbuf_appendf(b, "<li class=\"c%zu\" data-series=\"", j % 8);
		dr_escape(b, s[j].label);
		dbuf_appendf(b, "\">");
		dr_escape(b, s[j].label);
		if (last >= 0) {
			dc_num(num, sizeof(num), last);
			dbuf_appendf(b, " <b>%s</b>", num);
		} else {
			dbuf_appendf(b, " <b>—</b>");
		}
		dbuf_appendf(b, "</li>");
	}
	if (ns == 0)
		dbuf_appendf(b, "<li>No data yet.</li>");
	dbuf_appendf(b, "</ul></figure>");
}

/* A round number (1, 2 or 5 times a power of ten) at or above v. */
static double
dc_nice(double v)
{
	double		p, f;

	if (!(v > 0))
		return (1);
	p = pow(10, floor(log10(v)));
	f = v / p;
	if (f <= 1.0)
		return (p);
	if (f <= 2.0)
		return (2 * p);
	if (f <= 5.0)
		return (5 * p);

	return (10 * p);
}

static void
dc_num(char *buf, size_t len, double v)
{
	if (v != 0 && fabs(v) < 10 && v != floor(v))
		(void)snprintf(buf, len, "%.2f", v);
	else
		(void)snprintf(buf, len, "%.0f", v);
}
