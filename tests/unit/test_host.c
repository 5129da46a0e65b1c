/*
 * test_host.c: the Host header values kiln answers (DNS rebinding):
 * loopback names and addresses on a loopback listener, or the names of
 * KILN_ALLOWED_HOSTS, with or without a port, case-insensitive.
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
loopback_names_and_addresses(void **state)
{
	(void)state;

	assert_true(host_loopback("localhost"));
	assert_true(host_loopback("localhost:8888"));
	assert_true(host_loopback("LOCALHOST"));
	assert_true(host_loopback("127.0.0.1"));
	assert_true(host_loopback("127.0.0.1:65535"));
	assert_true(host_loopback("127.255.1.2"));
	assert_true(host_loopback("[::1]"));
	assert_true(host_loopback("[::1]:8888"));
	assert_true(host_loopback("[0:0:0:0:0:0:0:1]"));
}

static void
other_hosts_are_not_loopback(void **state)
{
	(void)state;

	assert_false(host_loopback("evil.example"));
	assert_false(host_loopback("evil.example:8888"));
	assert_false(host_loopback("localhost.evil.example"));
	assert_false(host_loopback("127.0.0.1.nip.io"));
	assert_false(host_loopback("127.0.0.1."));
	assert_false(host_loopback("128.0.0.1"));
	assert_false(host_loopback("10.0.0.1"));
	assert_false(host_loopback("[::2]"));
	assert_false(host_loopback("[::ffff:127.0.0.1]x"));
	assert_false(host_loopback("::1"));
	assert_false(host_loopback(""));
	assert_false(host_loopback(":8888"));
	assert_false(host_loopback("localhost:"));
	assert_false(host_loopback("localhost:123456"));
	assert_false(host_loopback("localhost:80x"));
	assert_false(host_loopback("localhost:80:80"));
	assert_false(host_loopback("local host"));
	assert_false(host_loopback("[::1"));
	assert_false(host_loopback("[::1\"x]"));
	assert_false(host_loopback("[evil.example]"));
}

static void
listed_names_any_case_any_port(void **state)
{
	char		list[128], err[96];

	(void)state;

	assert_int_equal(host_list_parse(" kiln.example, Other.Example,,",
	    list, sizeof(list), err, sizeof(err)), KORE_RESULT_OK);
	assert_string_equal(list, "kiln.example,other.example");

	assert_true(host_listed("kiln.example", list));
	assert_true(host_listed("KILN.example:443", list));
	assert_true(host_listed("other.example", list));
	assert_false(host_listed("localhost", list));
	assert_false(host_listed("127.0.0.1", list));
	assert_false(host_listed("kiln.example.evil", list));
	assert_false(host_listed("xkiln.example", list));
	assert_false(host_listed("kiln", list));
	assert_false(host_listed("kiln.example:x", list));
	assert_false(host_listed("", list));
}

static void
bad_lists_are_refused(void **state)
{
	char		list[128], err[96];

	(void)state;

	assert_int_equal(host_list_parse("kiln.example,evil/path", list,
	    sizeof(list), err, sizeof(err)), KORE_RESULT_ERROR);
	assert_non_null(strstr(err, "evil/path"));
	assert_int_equal(host_list_parse("kiln.example:443", list,
	    sizeof(list), err, sizeof(err)), KORE_RESULT_ERROR);
	assert_int_equal(host_list_parse(" , ", list, sizeof(list), err,
	    sizeof(err)), KORE_RESULT_ERROR);
	assert_int_equal(host_list_parse("a.example", list, 4, err,
	    sizeof(err)), KORE_RESULT_ERROR);
	assert_int_equal(host_list_parse("a.example", list, 10, err,
	    sizeof(err)), KORE_RESULT_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(loopback_names_and_addresses),
		cmocka_unit_test(other_hosts_are_not_loopback),
		cmocka_unit_test(listed_names_any_case_any_port),
		cmocka_unit_test(bad_lists_are_refused),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
