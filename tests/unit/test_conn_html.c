/*
 * test_conn_html.c: the dashboard's page of a source's connections. The
 * view comes from the query checked (a bad state or cursor is ignored);
 * every string of a row comes back escaped; actions only for those who
 * may act, Reconnect only where a new consent is needed, never on the
 * default connection; the refresh token field is write-only; a Connect's
 * answer opens its consent in a new tab and links only http(s).
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

#define CSRF	"0123456789abcdef0123456789abcdef"

static void
view_from_query(void **state)
{
	struct ch_view	v;

	(void)state;
	ch_view_parse("state=needs_reauth&cursor=bob%40example.com&x=1", &v);
	assert_string_equal(v.state, "needs_reauth");
	assert_string_equal(v.cursor, "bob@example.com");
	assert_int_equal(v.notice, CH_NONE);

	assert_int_equal(v.limit, CH_PAGE_ROWS);
	ch_view_parse("limit=2", &v);
	assert_int_equal(v.limit, 2);
	ch_view_parse("limit=51", &v);
	assert_int_equal(v.limit, CH_PAGE_ROWS);
	ch_view_parse("limit=-1", &v);
	assert_int_equal(v.limit, CH_PAGE_ROWS);

	ch_view_parse("state=nope&cursor=a%20b", &v);
	assert_string_equal(v.state, "");
	assert_string_equal(v.cursor, "");

	ch_view_parse(NULL, &v);
	assert_string_equal(v.state, "");

	ch_view_parse("connected=alice", &v);
	assert_int_equal(v.notice, CH_CONNECTED);
	assert_string_equal(v.subject, "alice");
	ch_view_parse("disconnected=%3Cx%3E", &v);
	assert_int_equal(v.notice, CH_NONE);
	ch_view_parse("disconnected=bob", &v);
	assert_int_equal(v.notice, CH_DISCONNECTED);

	assert_true(ch_kind_connects("refresh_token"));
	assert_true(ch_kind_connects("authorization_code"));
	assert_true(ch_kind_connects("device_code"));
	assert_false(ch_kind_connects("client_credentials"));
	assert_false(ch_kind_connects(NULL));
}

static void
rows_escaped_and_actions_by_role(void **state)
{
	struct ch_row	r[3];
	struct ch_view	v;
	struct dbuf	b;

	(void)state;
	memset(r, 0, sizeof(r));
	r[0].subject = "alice";
	r[0].state = "active";
	r[0].generation = 3;
	r[0].expires_ms = 1767225600000LL;
	r[0].fingerprint = "abcdef012345";
	r[0].failures = 0;
	r[0].last_error = NULL;
	r[0].updated_ms = 1767225600000LL;
	r[1].subject = "carol";
	r[1].state = "needs_reauth";
	r[1].generation = DR_NULL;
	r[1].expires_ms = DR_NULL;
	r[1].failures = 1;
	r[1].last_error = "upstream <b>invalid_grant</b>";
	r[1].updated_ms = DR_NULL;
	r[2].subject = "default";
	r[2].state = "needs_reauth";
	r[2].generation = 1;
	r[2].expires_ms = DR_NULL;
	r[2].failures = DR_NULL;
	r[2].updated_ms = DR_NULL;
	ch_view_parse("state=", &v);

	/* A viewer: the rows, no form. */
	dbuf_init(&b);
	ch_table(&b, "fhir", "refresh_token", r, 3, NULL, &v, 1, 0, CSRF);
	has(&b, "<tr data-subject=\"alice\">");
	has(&b, "<td class=\"gen\">3</td>");
	has(&b, "<time datetime=\"2026-01-01T00:00:00");
	has(&b, "<code class=\"fpr\">abcdef012345</code>");
	has(&b, "upstream &lt;b&gt;invalid_grant&lt;/b&gt;");
	hasnt(&b, "<b>invalid_grant");
	has(&b, "<span class=\"badge needs_reauth\">needs_reauth</span>");
	has(&b, "id=\"reauth\">1 connection of this source needs");
	hasnt(&b, "<form");
	hasnt(&b, CSRF);
	hasnt(&b, "<th>Actions</th>");
	hasnt(&b, "pager");
	dbuf_free(&b);

	/* An operator: Disconnect on both, Reconnect where needed. */
	dbuf_init(&b);
	ch_table(&b, "fhir", "refresh_token", r, 3, "carol", &v, 2, 1, CSRF);
	assert_int_equal(count_of(&b, "class=\"disconnect\""), 2);
	assert_int_equal(count_of(&b, "class=\"reconnect\""), 1);
	has(&b, "action=\"/dashboard/tokens/fhir/connections/delete\"");
	has(&b, "<input type=\"hidden\" name=\"subject\" value=\"carol\">"
	    "<input type=\"password\" name=\"refresh_token\"");
	has(&b, "aria-label=\"New refresh token for carol\"");
	hasnt(&b, "value=\"default\"");
	has(&b, "id=\"reauth\">2 connections of this source need a");
	has(&b, "<a rel=\"next\" href=\"/dashboard/tokens/fhir/connections?"
	    "cursor=carol\">Next page</a>");
	dbuf_free(&b);
	ch_view_parse("limit=2&state=needs_reauth", &v);
	dbuf_init(&b);
	ch_table(&b, "fhir", "refresh_token", r, 2, "carol", &v, 0, 0, NULL);
	has(&b, "<a rel=\"next\" href=\"/dashboard/tokens/fhir/connections?"
	    "state=needs_reauth&amp;limit=2&amp;cursor=carol\">Next page</a>");
	ch_view_parse("state=", &v);
	hasnt(&b, "First page");
	dbuf_free(&b);

	/* A flow kind reconnects without a token field; no csrf: no act. */
	ch_view_parse("state=active&cursor=alice", &v);
	dbuf_init(&b);
	ch_table(&b, "gh", "authorization_code", r, 2, NULL, &v, 0, 1, CSRF);
	assert_int_equal(count_of(&b, "class=\"reconnect\""), 1);
	hasnt(&b, "refresh_token");
	has(&b, "<a href=\"/dashboard/tokens/gh/connections?state=active"
	    "&amp;\">First page</a>");
	hasnt(&b, "id=\"reauth\"");
	dbuf_free(&b);
	dbuf_init(&b);
	ch_table(&b, "gh", "authorization_code", r, 2, NULL, &v, 0, 1, NULL);
	hasnt(&b, "<form");
	dbuf_free(&b);

	dbuf_init(&b);
	ch_table(&b, "gh", "client_credentials", NULL, 0, NULL, &v, 0, 1,
	    CSRF);
	has(&b, "No connections in this state.");
	dbuf_free(&b);
}

static void
page_forms_write_only(void **state)
{
	struct ch_view	v;
	struct dbuf	b;

	(void)state;
	ch_view_parse("state=failing&connected=al%3Cice", &v);
	dbuf_init(&b);
	ch_page(&b, "fhir", "refresh_token", "operator", &v, "<table>",
	    1, CSRF);
	has(&b, "<script src=\"/dashboard/static/conn.js\" defer></script>");
	has(&b, "<div id=\"connections\" class=\"scroll\" data-source=\"fhir\">"
	    "<table></div>");
	has(&b, "<option selected>failing</option>");
	has(&b, "class=\"connect\" action=\"/dashboard/tokens/fhir/"
	    "connections\">");
	has(&b, "<input type=\"password\" name=\"refresh_token\"");
	hasnt(&b, "notice");	/* the subject was not valid */
	dbuf_free(&b);

	/* A viewer, or a kind without connections: no Connect. */
	ch_view_parse("disconnected=bob", &v);
	dbuf_init(&b);
	ch_page(&b, "fhir", "refresh_token", "viewer", &v, "", 0, CSRF);
	hasnt(&b, "<form method=\"post\"");
	has(&b, "Disconnected bob.");
	dbuf_free(&b);
	dbuf_init(&b);
	ch_page(&b, "cc", "client_credentials", "admin", &v, "", 1, CSRF);
	hasnt(&b, "class=\"connect\"");
	dbuf_free(&b);
	dbuf_init(&b);
	ch_page(&b, "gh", "device_code", "admin", &v, "", 1, CSRF);
	has(&b, "class=\"connect\"");
	hasnt(&b, "refresh_token");
	dbuf_free(&b);
}

static void
started_links_and_confirm(void **state)
{
	struct ch_started	s;
	struct dbuf		b;

	(void)state;
	memset(&s, 0, sizeof(s));
	s.subject = "alice";
	s.state = "pending";
	s.authorization_url = "https://idp.example/auth?a=1&b=\"x\"";
	s.expires_at = "2026-01-01T00:10:00Z";
	dbuf_init(&b);
	ch_message(&b, "gh", "admin", NULL, &s);
	has(&b, "<a href=\"https://idp.example/auth?a=1&amp;b=&quot;x&quot;\" "
	    "target=\"_blank\" rel=\"noopener noreferrer\">Open the consent "
	    "page</a>");
	hasnt(&b, "user-code");
	dbuf_free(&b);

	memset(&s, 0, sizeof(s));
	s.subject = "bob";
	s.state = "pending";
	s.user_code = "WDJB-MJHT";
	s.verification_uri = "https://idp.example/device";
	s.verification_uri_complete = "javascript:alert(1)";
	dbuf_init(&b);
	ch_message(&b, "dev", "operator", NULL, &s);
	has(&b, "<code id=\"user-code\">WDJB-MJHT</code>");
	has(&b, "<a href=\"https://idp.example/device\" target=\"_blank\"");
	hasnt(&b, "javascript:");
	dbuf_free(&b);

	dbuf_init(&b);
	ch_message(&b, "dev", "operator", "subject: <bad>", NULL);
	has(&b, "id=\"error\">subject: &lt;bad&gt;</p>");
	dbuf_free(&b);

	dbuf_init(&b);
	ch_confirm(&b, "fhir", "admin", "bob@example.com", CSRF);
	has(&b, "<input type=\"hidden\" name=\"confirm\" value=\"yes\">");
	has(&b, "name=\"subject\" value=\"bob@example.com\">");
	has(&b, "name=\"csrf\" value=\"" CSRF "\">");
	dbuf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(view_from_query),
		cmocka_unit_test(rows_escaped_and_actions_by_role),
		cmocka_unit_test(page_forms_write_only),
		cmocka_unit_test(started_links_and_confirm),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
