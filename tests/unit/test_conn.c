/*
 * test_conn.c: the names of connections (subjects, keys, sealed fields).
 */

#include <sys/types.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kiln.h"

static void
conn_subject_checked(void **state)
{
	char		s[KILN_SUBJECT_MAX + 2];

	(void)state;

	assert_true(conn_subject_valid("bob@example.com"));
	assert_true(conn_subject_valid("urn:a.b_c-d"));
	assert_false(conn_subject_valid(""));
	assert_false(conn_subject_valid(NULL));
	assert_false(conn_subject_valid("bad subject"));
	assert_false(conn_subject_valid("a/b"));
	assert_false(conn_subject_valid("a,b"));
	memset(s, 'x', KILN_SUBJECT_MAX);
	s[KILN_SUBJECT_MAX] = '\0';
	assert_true(conn_subject_valid(s));
	s[KILN_SUBJECT_MAX] = 'x';
	s[KILN_SUBJECT_MAX + 1] = '\0';
	assert_false(conn_subject_valid(s));
}

/* "name" is the default token, "name/subject" a connection. */
static void
conn_key_round_trip(void **state)
{
	char		key[CONN_KEY_MAX], n[KILN_NAME_MAX + 1];
	char		s[KILN_SUBJECT_MAX + 1];

	(void)state;

	conn_key("fhir", "bob", key, sizeof(key));
	assert_string_equal(key, "fhir/bob");
	assert_true(conn_key_split(key, n, sizeof(n), s, sizeof(s)));
	assert_string_equal(n, "fhir");
	assert_string_equal(s, "bob");

	conn_key("fhir", CONN_DEFAULT, key, sizeof(key));
	assert_string_equal(key, "fhir");
	conn_key("fhir", NULL, key, sizeof(key));
	assert_string_equal(key, "fhir");
	assert_true(conn_key_split(key, n, sizeof(n), s, sizeof(s)));
	assert_string_equal(s, "");

	/* The default one has one name only; nothing unchecked passes. */
	assert_false(conn_key_split("fhir/default", n, sizeof(n), s,
	    sizeof(s)));
	assert_false(conn_key_split("fhir/", n, sizeof(n), s, sizeof(s)));
	assert_false(conn_key_split("fhir/a b", n, sizeof(n), s, sizeof(s)));
	assert_false(conn_key_split("Bad/bob", n, sizeof(n), s, sizeof(s)));
	assert_false(conn_key_split("a/b/c", n, sizeof(n), s, sizeof(s)));
}

/* A connection's sealed values are bound to its subject. */
static void
conn_field_binds_subject(void **state)
{
	char		f[64];

	(void)state;

	assert_true(conn_field("token", NULL, f, sizeof(f)));
	assert_string_equal(f, "token");
	assert_true(conn_field("token", "default", f, sizeof(f)));
	assert_string_equal(f, "token");
	assert_true(conn_field("refresh_token", "bob", f, sizeof(f)));
	assert_string_equal(f, "refresh_token/bob");
	assert_false(conn_field("refresh_token", "bob", f, 8));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(conn_subject_checked),
		cmocka_unit_test(conn_key_round_trip),
		cmocka_unit_test(conn_field_binds_subject),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
