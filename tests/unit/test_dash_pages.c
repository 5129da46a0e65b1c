/*
 * test_dash_pages.c: the token table's view (search, filters, paging)
 * and the page of one token (state, 24 h timeline, history, errors).
 * Every string from a row or a request comes back escaped; links carry
 * the view URL-encoded; never more than what the rows hold.
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

#define NOW		1767225600000LL		/* 2026-01-01T00:00:00Z */
#define HOUR		3600000LL

static void
view_from_query_string(void **state)
{
	struct dp_view	v;

	(void)state;
	dp_view_parse("q=crm%2Dp+x&kind=password&state=failing&"
	    "host=idp.example%3A443&page=3&other=1", &v);
	assert_string_equal(v.q, "crm-p x");
	assert_string_equal(v.kind, "password");
	assert_string_equal(v.state, "failing");
	assert_string_equal(v.host, "idp.example:443");
	assert_int_equal(v.page, 3);

	dp_view_parse(NULL, &v);
	assert_string_equal(v.q, "");
	assert_int_equal(v.page, 1);

	/* Bad pages are page 1; a NUL and a cut %-escape do no harm. */
	dp_view_parse("page=-4&q=a%00b%4", &v);
	assert_int_equal(v.page, 1);
	assert_string_equal(v.q, "ab%4");
	dp_view_parse("page=x", &v);
	assert_int_equal(v.page, 1);

	/* Too long: cut to the field. */
	dp_view_parse("q=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &v);
	assert_int_equal(strlen(v.q), KILN_NAME_MAX);

	assert_int_equal(dp_query_int("a=1&before=1234", "before"), 1234);
	assert_int_equal(dp_query_int("xbefore=5", "before"), 0);
	assert_int_equal(dp_query_int("before=-5", "before"), 0);
	assert_int_equal(dp_query_int(NULL, "before"), 0);
}

static void
view_matches(void **state)
{
	struct dp_view	v;

	(void)state;
	dp_view_parse("q=RM", &v);
	assert_true(dp_view_match(&v, "crm-1", "password", "valid", NULL));
	assert_false(dp_view_match(&v, "erp", "password", "valid", NULL));

	dp_view_parse("kind=password&state=failing&host=IDP.example", &v);
	assert_true(dp_view_match(&v, "a", "password", "failing",
	    "idp.example"));
	assert_false(dp_view_match(&v, "a", "json_login", "failing",
	    "idp.example"));
	assert_false(dp_view_match(&v, "a", "password", "valid",
	    "idp.example"));
	assert_false(dp_view_match(&v, "a", "password", "failing",
	    "other.example"));
	assert_false(dp_view_match(&v, "a", "password", "failing", NULL));

	dp_view_parse("", &v);
	assert_true(dp_view_match(&v, "anything", "password", "valid", NULL));
}

static void
pager_links_keep_the_view(void **state)
{
	struct dp_view	v;
	struct dbuf	b;

	(void)state;
	dp_view_parse("q=%22%3E%3Cx&state=valid&page=2", &v);
	dbuf_init(&b);
	dp_pager(&b, &v, 120, 10000);
	has(&b, "data-matched=\"120\" data-total=\"10000\" data-page=\"2\"");
	has(&b, "51–100 of 120 matching (10000 sources)");
	/* The view in the links: URL-encoded, then escaped (&amp;). */
	has(&b, "href=\"/dashboard?q=%22%3E%3Cx&amp;kind=&amp;state=valid"
	    "&amp;host=&amp;page=1\">← previous</a>");
	has(&b, "page=3\">next →</a>");
	has(&b, "page 2 of 3");
	hasnt(&b, "\"><x");
	dbuf_free(&b);

	/* Last page: no next; nothing matched: no link at all. */
	v.page = 3;
	dbuf_init(&b);
	dp_pager(&b, &v, 120, 120);
	has(&b, "101–120 of 120</span>");
	hasnt(&b, "rel=\"next\"");
	dbuf_free(&b);

	v.page = 1;
	dbuf_init(&b);
	dp_pager(&b, &v, 0, 5);
	has(&b, "0–0 of 0 matching (5 sources)");
	hasnt(&b, "<a ");
	dbuf_free(&b);
}

static void
filter_form_escapes_and_selects(void **state)
{
	const char	*hosts[] = { "idp.example:443", "<evil>" };
	struct dp_view	v;
	struct dbuf	b;

	(void)state;
	dp_view_parse("q=%22%3E%3Cscript%3E&kind=password&state=expired", &v);
	dbuf_init(&b);
	dp_filter(&b, &v, hosts, 2);
	has(&b, "method=\"get\" action=\"/dashboard\"");
	has(&b, "name=\"q\" maxlength=\"64\" value=\"&quot;&gt;&lt;script"
	    "&gt;\"");
	has(&b, "<option selected>password</option>");
	has(&b, "<option selected>expired</option>");
	has(&b, "<option>valid</option>");
	has(&b, "<option value=\"&lt;evil&gt;\">");
	hasnt(&b, "<script>");
	hasnt(&b, "<evil>");
	dbuf_free(&b);
}

static struct dp_event
ev(int64_t id, int64_t at, const char *outcome, int64_t gen,
    const char *error)
{
	struct dp_event	e;

	memset(&e, 0, sizeof(e));
	e.id = id;
	e.finished_ms = at;
	e.duration_ms = 12;
	e.http_status = !strcmp(outcome, "success") ? 200 : 502;
	e.generation = gen;
	e.trigger = "schedule";
	e.outcome = outcome;
	e.error = error;
	e.fpr = !strcmp(outcome, "success") ? "abcdef012345" : NULL;

	return (e);
}

static struct dp_token
token(void)
{
	struct dp_token	t;

	memset(&t, 0, sizeof(t));
	t.name = "crm";
	t.kind = "client_credentials";
	t.state = "valid";
	t.host = "idp.example:443";
	t.fpr = "abcdef012345";
	t.generation = 3;
	t.expires_ms = NOW + 2 * HOUR;
	t.next_ms = NOW + HOUR;
	t.lifetime_ms = 4 * HOUR;
	t.enabled = 1;

	return (t);
}

static void
timeline_bars_and_ticks(void **state)
{
	struct dp_event	e[5];
	struct dp_token	t;
	struct dbuf	b;

	(void)state;
	t = token();
	/* Newest first, as the store answers; gen 1 began before the day. */
	e[0] = ev(5, NOW - 1 * HOUR, "success", 3, NULL);
	e[1] = ev(4, NOW - 2 * HOUR, "failure", DR_NULL, "HTTP <502>");
	e[2] = ev(3, NOW - 6 * HOUR, "success", 2, NULL);
	e[3] = ev(2, NOW - 30 * HOUR, "success", 1, NULL);
	e[4] = ev(1, NOW - 50 * HOUR, "failure", DR_NULL, "old");

	dbuf_init(&b);
	dp_timeline(&b, e, 5, &t, NOW);
	/* Three tokens held in the day (gen 1 until its lifetime ran out
	 * 26 h ago is outside it: gens 2 and 3 only), three ticks. */
	has(&b, "data-bars=\"2\" data-ticks=\"3\"");
	assert_int_equal(count_of(&b, "<rect class=\"life"), 2);
	assert_int_equal(count_of(&b, "<rect class=\"life current\""), 1);
	has(&b, "data-generation=\"3\"");
	assert_int_equal(count_of(&b, "class=\"tick fail\""), 1);
	assert_int_equal(count_of(&b, "class=\"tick ok\""), 2);
	/* Gen 2: from -6 h for its 4 h lifetime (it was replaced at -1 h
	 * only): 4/24 of 712 wide, at 4 + 18/24 of it. */
	has(&b, "data-generation=\"2\" x=\"538.0\" y=\"14\" "
	    "width=\"118.7\"");
	has(&b, "token generation 2 from 2025-12-31T18:00:00 "
	    "(abcdef012345)");
	dbuf_free(&b);

	/* With a longer lifetime gen 1 lasts into the day, from its left
	 * edge; a generation not recorded is not made up. */
	t.lifetime_ms = 25 * HOUR;
	e[3].generation = DR_NULL;
	dbuf_init(&b);
	dp_timeline(&b, e, 5, &t, NOW);
	has(&b, "data-bars=\"3\"");
	has(&b, "<rect class=\"life\" data-generation=\"\" x=\"4.0\"");
	has(&b, "<title>token from 2025-12-30T18:00:00");
	hasnt(&b, "-9223");
	dbuf_free(&b);

	dbuf_init(&b);
	dp_timeline(&b, NULL, 0, &t, NOW);
	has(&b, "data-bars=\"0\" data-ticks=\"0\">0 tokens held, 0 attempts");
	dbuf_free(&b);
}

static void
history_pages_and_escapes(void **state)
{
	struct dp_event	e[2];
	struct dbuf	b;

	(void)state;
	e[0] = ev(42, NOW - HOUR, "failure", DR_NULL, "<img src=x>");
	e[1] = ev(41, NOW - 2 * HOUR, "success", 7, NULL);

	dbuf_init(&b);
	dp_history(&b, "crm", e, 2, 1, 0);
	assert_int_equal(count_of(&b, "<tr data-event="), 2);
	has(&b, "<tr data-event=\"42\"><td><time>2025-12-31T23:00:00</time>");
	has(&b, "&lt;img src=x&gt;");
	hasnt(&b, "<img");
	has(&b, "<td>7</td><td><code>abcdef012345</code>");
	/* Older: before the last id shown; no "newest" on the first. */
	has(&b, "href=\"/dashboard/tokens/crm?before=41\">older →</a>");
	hasnt(&b, ">newest<");
	dbuf_free(&b);

	dbuf_init(&b);
	dp_history(&b, "crm", e, 2, 0, 43);
	has(&b, ">newest</a>");
	hasnt(&b, "older");
	dbuf_free(&b);

	dbuf_init(&b);
	dp_history(&b, "crm", NULL, 0, 0, 10);
	has(&b, "No refresh before these.");
	dbuf_free(&b);
}

static void
errors_and_page(void **state)
{
	struct dp_event	e[3];
	struct dp_token	t;
	struct dbuf	b;

	(void)state;
	e[0] = ev(3, NOW - HOUR, "failure", DR_NULL, "upstream <said> no");
	e[1] = ev(2, NOW - 2 * HOUR, "success", 2, NULL);
	e[2] = ev(1, NOW - 3 * HOUR, "failure", DR_NULL, NULL);
	dbuf_init(&b);
	dp_errors(&b, e, 3);
	assert_int_equal(count_of(&b, "<li>"), 2);
	has(&b, "HTTP 502 <span class=\"error\">upstream &lt;said&gt; no");
	has(&b, "<span class=\"error\">failure</span>");
	dbuf_free(&b);

	dbuf_init(&b);
	dp_errors(&b, e + 1, 1);
	has(&b, "No failure in the last 24 h.");
	dbuf_free(&b);

	t = token();
	t.name = "a<b";
	t.failures = 2;
	t.last_error = "bad \"thing\"";
	dbuf_init(&b);
	dp_token_page(&b, &t, "<svg>T</svg>", "<ul>E</ul>", "<table>H",
	    "<table>W</table>", "admin", NOW);
	has(&b, "<title>kiln — a&lt;b</title>");
	has(&b, "<span class=\"name\">a&lt;b</span>");
	has(&b, "href=\"/dashboard?q=a%3Cb\"");
	has(&b, "<span class=\"badge valid\">valid</span>");
	has(&b, "<dd>idp.example:443</dd>");
	has(&b, "<time>2026-01-01T02:00:00</time> (2h 00m)");
	has(&b, "Last error: bad &quot;thing&quot;");
	has(&b, "<div id=\"timeline\"><svg>T</svg></div>");
	has(&b, "<div id=\"errors\"><ul>E</ul></div>");
	has(&b, "class=\"scroll\"><table>H</div>");
	has(&b, "<div id=\"webhooks\" class=\"scroll\"><table>W</table>");
	hasnt(&b, "<script");
	dbuf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(view_from_query_string),
		cmocka_unit_test(view_matches),
		cmocka_unit_test(pager_links_keep_the_view),
		cmocka_unit_test(filter_form_escapes_and_selects),
		cmocka_unit_test(timeline_bars_and_ticks),
		cmocka_unit_test(history_pages_and_escapes),
		cmocka_unit_test(errors_and_page),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
