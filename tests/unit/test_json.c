/*
 * test_json.c: the strict JSON text check, the bounded tree parse, dotted
 * paths, the one base64 decoder, the wiping yajl allocator.
 */

#include <sys/types.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <yajl/yajl_gen.h>

#include "kiln.h"

/* n nested arrays: "[[[...]]]", malloc'd. */
static char *
nested(size_t n)
{
	char		*s;

	s = malloc(2 * n + 1);
	assert_non_null(s);
	memset(s, '[', n);
	memset(s + n, ']', n);
	s[2 * n] = '\0';

	return (s);
}

static void
json_path_get_walks_objects(void **state)
{
	yajl_val	root, v;

	(void)state;

	root = yajl_tree_parse("{\"a\":{\"b\":{\"c\":\"deep\"},\"ab\":1},"
	    "\"arr\":[{\"x\":1}],\"a.b\":2}", NULL, 0);
	assert_non_null(root);

	v = json_path_get(root, "a.b.c");
	assert_true(YAJL_IS_STRING(v));
	assert_string_equal(YAJL_GET_STRING(v), "deep");

	assert_true(YAJL_IS_OBJECT(json_path_get(root, "a.b")));
	assert_true(YAJL_IS_INTEGER(json_path_get(root, "a.ab")));
	assert_null(json_path_get(root, "a.a"));
	assert_null(json_path_get(root, "a.b.c.d"));
	assert_null(json_path_get(root, "arr.x"));
	assert_null(json_path_get(root, "a..b"));
	assert_null(json_path_get(root, ".a"));
	assert_null(json_path_get(root, "a."));
	assert_null(json_path_get(root, ""));
	assert_null(json_path_get(root, NULL));
	assert_null(json_path_get(NULL, "a"));

	yajl_tree_free(root);
}

/* Strings C cannot hold, and bytes that are not strict UTF-8. */
static void
json_parse_refuses_nul_escapes_and_bad_utf8(void **state)
{
	static const char	*bad[] = {
		"{\"a\":\"x\\u0000y\"}",		/* NUL escape */
		"{\"a\":\"\\ud800\"}",		/* lone high surrogate */
		"{\"a\":\"\\udc00x\"}",		/* lone low surrogate */
		"{\"a\":\"\\ud800\\u0041\"}",	/* unpaired */
		"{\"a\":\"\xc0\xaf\"}",		/* overlong '/' */
		"{\"a\":\"\xed\xa0\x80\"}",	/* encoded surrogate */
		"{\"a\":\"\xf4\x90\x80\x80\"}",	/* above U+10FFFF */
		"{\"a\":\"\xe2\x82\"}",		/* truncated */
		"{\"a\":\"\x80\"}",			/* lone continuation */
	};
	static const char	*good[] = {
		"{\"a\":\"\\ud83d\\ude00 caf\xc3\xa9 \xe2\x82\xac\"}",
		"{\"a\":\"back\\\\u0000slash\"}",	/* escaped backslash */
		"{\"a\":\"\xf0\x9f\x98\x80\"}",
	};
	yajl_val		v;
	size_t			i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_null(json_parse(bad[i], strlen(bad[i])));
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = json_parse(good[i], strlen(good[i]));
		assert_non_null(v);
		yajl_tree_free(v);
	}
}

/* A quote inside a comment must not hide an escape from the check. */
static void
json_parse_refuses_escapes_hidden_by_comments(void **state)
{
	static const char	*bad[] = {
		"{\"a\":/*\"*/\"x\\u0000y\"}",
		"{\"a\":/*\"*/\"\\ud800\"}",
		"{\"a\"://\"\n\"\\udc00x\"}",
		"/*\"*/{\"a\":\"\\u0000\"}",
	};
	static const char	*good[] = {
		"/* \"\\u0000 */{\"a\":\"x\"} // \\ud800\"",
		"{\"a\"/**/:/***/\"x\"}",
		"{\"a\":\"/*\",\"b\":\"*/\"}",
	};
	yajl_val		v;
	size_t			i;
	char			key[65];

	(void)state;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if ((v = json_parse(bad[i], strlen(bad[i]))) != NULL) {
			yajl_tree_free(v);
			fail_msg("accepted %s", bad[i]);
		}
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = json_parse(good[i], strlen(good[i]));
		if (v == NULL)
			fail_msg("refused %s", good[i]);
		yajl_tree_free(v);
	}

	/* The member is still named for the 422. */
	assert_int_equal(json_check(bad[0], strlen(bad[0]), key,
	    sizeof(key)), JSON_BAD_ESCAPE);
	assert_string_equal(key, "a");
}

/* The check tells bad bytes from bad escapes, and names the member. */
static void
json_check_reports_kind_and_member(void **state)
{
	static const char	utf8[] = "{\"k\":\"\xc0\xaf\"}";
	static const char	esc[] = "{\"ok\":1,\"name\\n\":\"\\u0000\"}";
	static const char	fine[] = "{\"a\":\"\\u00e9\"}";
	char			key[8];

	(void)state;

	assert_int_equal(json_check(utf8, sizeof(utf8) - 1, NULL, 0),
	    JSON_BAD_UTF8);
	assert_int_equal(json_check(esc, sizeof(esc) - 1, key, sizeof(key)),
	    JSON_BAD_ESCAPE);
	assert_string_equal(key, "name\\n");
	assert_int_equal(json_check(fine, sizeof(fine) - 1, key,
	    sizeof(key)), JSON_OK);

	/* A long key is cut to the buffer, still terminated. */
	assert_int_equal(json_check("{\"abcdefghijkl\":\"\\u0000\"}", 25,
	    key, sizeof(key)), JSON_BAD_ESCAPE);
	assert_string_equal(key, "abcdefg");

	/* A backslash at the very end is not read past. */
	assert_int_equal(json_check("\"\\", 2, NULL, 0), JSON_BAD_UTF8);
}

/* yajl frees trees recursively: nesting is bounded at 64. */
static void
json_parse_bounds_nesting(void **state)
{
	yajl_val	v;
	char		*s;

	(void)state;

	s = nested(64);
	assert_true(json_depth_ok(s, strlen(s)));
	v = json_parse(s, strlen(s));
	assert_non_null(v);
	yajl_tree_free(v);
	free(s);

	s = nested(65);
	assert_false(json_depth_ok(s, strlen(s)));
	assert_null(json_parse(s, strlen(s)));
	assert_null(json_tree(s, strlen(s)));
	free(s);

	/* Brackets inside strings and comments do not count. */
	s = malloc(2 * 100 + 7);
	assert_non_null(s);
	memcpy(s, "/*", 2);
	memset(s + 2, '[', 100);
	memcpy(s + 102, "*/\"", 3);
	memset(s + 105, '[', 100);
	memcpy(s + 205, "\"", 2);
	assert_true(json_depth_ok(s, strlen(s)));
	v = json_parse(s, strlen(s));
	assert_non_null(v);
	assert_true(YAJL_IS_STRING(v));
	yajl_tree_free(v);
	free(s);
}

/*
 * json_tree is the parse without the strict text check (what an upstream
 * JWT payload gets); both refuse a NUL inside, empty text and bad JSON.
 */
static void
json_tree_skips_only_the_text_check(void **state)
{
	static const char	loose[] = "{\"a\":\"\\ud800\"}";
	yajl_val		v;

	(void)state;

	assert_null(json_parse(loose, sizeof(loose) - 1));
	v = json_tree(loose, sizeof(loose) - 1);
	assert_non_null(v);
	assert_true(YAJL_IS_OBJECT(v));
	yajl_tree_free(v);

	assert_null(json_tree("{\"a\":1}\0", 8));
	assert_null(json_parse("{\"a\":1}\0", 8));
	assert_null(json_tree("", 0));
	assert_null(json_parse("", 0));
	assert_null(json_tree("{\"a\":", 5));

	/* Only len bytes are read: the rest may be anything. */
	v = json_parse("[1]garbage", 3);
	assert_non_null(v);
	assert_int_equal(v->u.array.len, 1);
	yajl_tree_free(v);
}

/* One spelling per value: leftover bits must be zero. */
static void
json_b64url_refuses_non_canonical_encodings(void **state)
{
	u_int8_t	*out;
	size_t		len;

	(void)state;
	assert_int_equal(json_b64_decode("QQ", 2, JSON_B64_URL, &out, &len),
	    1);
	assert_int_equal(len, 1);
	assert_int_equal(out[0], 'A');
	free(out);
	assert_int_equal(json_b64_decode("QR", 2, JSON_B64_URL, &out, &len),
	    0);
	assert_int_equal(json_b64_decode("QUI", 3, JSON_B64_URL, &out,
	    &len), 1);
	free(out);
	assert_int_equal(json_b64_decode("QUJ", 3, JSON_B64_URL, &out,
	    &len), 0);
}

/* Each alphabet its own two characters; padding only for standard. */
static void
json_b64_keeps_the_alphabets_apart(void **state)
{
	static const struct {
		const char	*text;
		int		alphabet;
		size_t		len;		/* 0: refused */
		const char	*bytes;
	} cases[] = {
		{ "-_8", JSON_B64_URL, 2, "\xfb\xff" },
		{ "+/8", JSON_B64_STD, 2, "\xfb\xff" },
		{ "+/8", JSON_B64_URL, 0, NULL },
		{ "-_8", JSON_B64_STD, 0, NULL },
		{ "+/8=", JSON_B64_STD, 2, "\xfb\xff" },
		{ "Zm9vYg==", JSON_B64_STD, 4, "foob" },
		{ "Zm9vYg", JSON_B64_STD, 4, "foob" },
		{ "Zm9vYg==", JSON_B64_URL, 0, NULL },
		{ "Zm9vYg=", JSON_B64_STD, 0, NULL },
		{ "Zm9vYg===", JSON_B64_STD, 0, NULL },
		{ "Zm9vYmFy", JSON_B64_URL, 6, "foobar" },
		{ "Zm9vY", JSON_B64_URL, 0, NULL },
		{ "Zm9vY", JSON_B64_STD, 0, NULL },
		{ "==", JSON_B64_STD, 0, NULL },
		{ "Zm 9v", JSON_B64_STD, 0, NULL },
	};
	u_int8_t	*out;
	size_t		i, len;

	(void)state;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		out = NULL;
		len = 0;
		if (!json_b64_decode(cases[i].text, strlen(cases[i].text),
		    cases[i].alphabet, &out, &len)) {
			if (cases[i].len != 0)
				fail_msg("refused %s", cases[i].text);
			assert_null(out);
			continue;
		}
		if (cases[i].len == 0)
			fail_msg("accepted %s", cases[i].text);
		assert_int_equal(len, cases[i].len);
		assert_memory_equal(out, cases[i].bytes, len);
		free(out);
	}

	assert_int_equal(json_b64_decode("", 0, JSON_B64_STD, &out, &len), 0);
	assert_int_equal(json_b64_value('-', JSON_B64_URL), 62);
	assert_int_equal(json_b64_value('/', JSON_B64_STD), 63);
	assert_int_equal(json_b64_value('=', JSON_B64_STD), -1);
	assert_int_equal(json_b64_value('_', JSON_B64_STD), -1);
}

/* yajl_gen through the wiping allocator: growth keeps every byte. */
static void
json_wipe_funcs_serve_yajl_gen(void **state)
{
	yajl_alloc_funcs	funcs;
	const unsigned char	*buf;
	yajl_gen		g;
	size_t			len, i;
	char			*big, *want;

	(void)state;

	big = malloc(20001);
	want = malloc(20005);
	assert_non_null(big);
	assert_non_null(want);
	for (i = 0; i < 20000; i++)
		big[i] = 'a' + (char)(i % 26);
	big[20000] = '\0';
	(void)snprintf(want, 20005, "[\"%s\"]", big);

	json_wipe_funcs(&funcs);
	assert_non_null(g = yajl_gen_alloc(&funcs));
	assert_int_equal(yajl_gen_array_open(g), yajl_gen_status_ok);
	assert_int_equal(yajl_gen_string(g, (const unsigned char *)big,
	    20000), yajl_gen_status_ok);
	assert_int_equal(yajl_gen_array_close(g), yajl_gen_status_ok);
	assert_int_equal(yajl_gen_get_buf(g, &buf, &len), yajl_gen_status_ok);
	assert_int_equal(len, 20004);
	assert_memory_equal(buf, want, len);
	yajl_gen_free(g);

	free(big);
	free(want);
}

static void
json_seterr_formats_and_tolerates_no_buffer(void **state)
{
	char		err[8];

	(void)state;

	json_seterr(NULL, 0, "%s", "nowhere");
	json_seterr(err, 0, "%s", "nowhere");
	json_seterr(err, sizeof(err), "%s: %d", "ab", 12);
	assert_string_equal(err, "ab: 12");
	json_seterr(err, sizeof(err), "%s", "truncated text");
	assert_string_equal(err, "truncat");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(json_path_get_walks_objects),
		cmocka_unit_test(json_parse_refuses_nul_escapes_and_bad_utf8),
		cmocka_unit_test(json_parse_refuses_escapes_hidden_by_comments),
		cmocka_unit_test(json_check_reports_kind_and_member),
		cmocka_unit_test(json_parse_bounds_nesting),
		cmocka_unit_test(json_tree_skips_only_the_text_check),
		cmocka_unit_test(json_b64url_refuses_non_canonical_encodings),
		cmocka_unit_test(json_b64_keeps_the_alphabets_apart),
		cmocka_unit_test(json_wipe_funcs_serve_yajl_gen),
		cmocka_unit_test(json_seterr_formats_and_tolerates_no_buffer),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
