/*
 * test_audit.c: an audit row names the fields a change set (by digest:
 * a secret that changes is named, never copied), and the query of the
 * audit listing is read strictly (anything unknown or malformed is
 * refused with the parameter named).
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

static void
fill(struct source *s)
{
	memset(s, 0, sizeof(*s));
	(void)snprintf(s->name, sizeof(s->name), "alpha");
	s->kind = KIND_CLIENT_CREDENTIALS;
	s->token_url = strdup("https://idp.example/token");
	s->client_id = strdup("alpha");
	s->client_secret = strdup("s3cret-one");
	s->auth_method = AUTH_SECRET_POST;
	s->refresh_buffer = -1;
	s->fallback_lifetime = 900;
	s->access = ACCESS_OPEN;
	s->enabled = 1;
}

static void
changed_fields_are_named(void **state)
{
	struct audit_snap	snap;
	struct source		s;
	char			out[AUDIT_FIELDS_LEN];

	(void)state;
	fill(&s);
	audit_source_snap(&s, &snap);
	assert_int_equal(audit_source_changed(&snap, &s, out, sizeof(out)),
	    KORE_RESULT_OK);
	assert_string_equal(out, "");

	/* Same length, other value; NULL to ""; a number; a flag. */
	s.client_secret[9] = 'X';
	s.scope = strdup("");
	s.refresh_buffer = 60;
	s.enabled = 0;
	assert_int_equal(audit_source_changed(&snap, &s, out, sizeof(out)),
	    KORE_RESULT_OK);
	assert_string_equal(out, "client_secret,scope,refresh_buffer,enabled");
	assert_null(strstr(out, "s3cret"));

	/* Too small a buffer is an error, never an overflow. */
	assert_int_equal(audit_source_changed(&snap, &s, out, 20),
	    KORE_RESULT_ERROR);
	assert_true(strlen(out) < 20);
	source_free(&s);

	/* The mutual TLS and token exchange fields are named too. */
	fill(&s);
	audit_source_snap(&s, &snap);
	s.tls_client_key = strdup("-----BEGIN PRIVATE KEY-----");
	s.subject_source = strdup("other");
	s.requested_token_type = strdup("urn:x");
	s.key_id = strdup("k1");
	assert_int_equal(audit_source_changed(&snap, &s, out, sizeof(out)),
	    KORE_RESULT_OK);
	assert_string_equal(out, "tls_client_key,subject_source,"
	    "requested_token_type,key_id");
	assert_null(strstr(out, "PRIVATE"));
	source_free(&s);
}

static void
body_members_are_named(void **state)
{
	yajl_val	v;
	char		out[AUDIT_FIELDS_LEN];
	const char	*doc = "{\"name\":\"k\",\"role\":\"admin\"}";

	(void)state;
	v = json_parse(doc, strlen(doc));
	assert_non_null(v);
	assert_int_equal(audit_body_fields(v, out, sizeof(out)),
	    KORE_RESULT_OK);
	assert_string_equal(out, "name,role");
	yajl_tree_free(v);
	assert_int_equal(audit_body_fields(NULL, out, sizeof(out)),
	    KORE_RESULT_OK);
	assert_string_equal(out, "");
}

static void
query_is_read(void **state)
{
	struct audit_query	q;
	char			err[KILN_ERR_MAX];

	(void)state;
	assert_int_equal(audit_query_parse(NULL, &q, err, sizeof(err)),
	    KORE_RESULT_OK);
	assert_int_equal(q.limit, AUDIT_LIMIT_DEFAULT);
	assert_int_equal(q.before, 0);
	assert_true(q.since_ms == AUDIT_NONE && q.until_ms == AUDIT_NONE);

	assert_int_equal(audit_query_parse("limit=500&before=42&action="
	    "source.update&principal=jwt%3Aada+l&target=beta&since="
	    "2026-01-02T03:04:05Z&until=2026-01-02T03:04:06.5%2B00:00"
	    "&action=&&", &q, err, sizeof(err)), KORE_RESULT_OK);
	assert_int_equal(q.limit, 500);
	assert_int_equal(q.before, 42);
	assert_string_equal(q.action, "source.update");
	assert_string_equal(q.principal, "jwt:ada l");
	assert_string_equal(q.target, "beta");
	assert_true(q.since_ms == 1767323045000LL);
	assert_true(q.until_ms == 1767323046500LL);
}

static void
bad_query_is_refused(void **state)
{
	static const struct {
		const char	*qs;
		const char	*names;
	} bad[] = {
		{ "limit=0", "limit" }, { "limit=501", "limit" },
		{ "limit=1e2", "limit" }, { "before=-1", "before" },
		{ "before=99999999999999999999", "before" },
		{ "since=yesterday", "since" }, { "until=2026-13-01", "until" },
		{ "colour=red", "colour" }, { "noequals", "query" },
		{ "action=%01", "action" }, { "target=%00", "target" },
		{ "principal=%4", "principal" },
		{ "principal=%zz", "principal" },
		{ "averyveryverylongname=1", "query" },
	};
	struct audit_query	q;
	char			err[KILN_ERR_MAX], big[400];
	size_t			i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (audit_query_parse(bad[i].qs, &q, err, sizeof(err)) !=
		    KORE_RESULT_ERROR)
			fail_msg("accepted: %s", bad[i].qs);
		if (strncmp(err, bad[i].names, strlen(bad[i].names)))
			fail_msg("%s: error '%s'", bad[i].qs, err);
	}
	(void)snprintf(big, sizeof(big), "target=%0*d", AUDIT_VALUE_MAX + 1,
	    7);
	assert_int_equal(audit_query_parse(big, &q, err, sizeof(err)),
	    KORE_RESULT_ERROR);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(changed_fields_are_named),
		cmocka_unit_test(body_members_are_named),
		cmocka_unit_test(query_is_read),
		cmocka_unit_test(bad_query_is_refused),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
