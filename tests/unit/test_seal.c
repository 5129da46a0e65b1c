/*
 * test_seal.c: AES-256-GCM sealing, key rotation, fingerprints, base64.
 */

#include <sys/types.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>

#include "kiln.h"

static u_int8_t		key_a[SEAL_KEY_LEN];
static u_int8_t		key_b[SEAL_KEY_LEN];

static int
setup(void **state)
{
	(void)state;

	memset(key_a, 0xa1, sizeof(key_a));
	memset(key_b, 0xb2, sizeof(key_b));
	seal_keys_clear();

	return (0);
}

static int
teardown(void **state)
{
	(void)state;

	seal_keys_clear();

	return (0);
}

static char *
seal_ok(const char *name, const char *field, const char *plain)
{
	char		*out;

	out = NULL;
	assert_true(seal_seal(name, field, plain, strlen(plain), &out));
	assert_non_null(out);

	return (out);
}

static void
assert_open_fails(const char *name, const char *field, const char *sealed)
{
	size_t		len;
	char		*plain;

	plain = (char *)0x1;
	len = 4242;
	assert_false(seal_open(name, field, sealed, &plain, &len));
	assert_ptr_equal(plain, (char *)0x1);
	assert_int_equal(len, 4242);
}

static void
seal_round_trips(void **state)
{
	size_t		len;
	char		*sealed, *plain;

	(void)state;

	assert_true(seal_key_add(key_a, sizeof(key_a)));
	sealed = seal_ok("nsp", "token", "s3cr3t-value");

	assert_true(seal_open("nsp", "token", sealed, &plain, &len));
	assert_int_equal(len, 12);
	assert_string_equal(plain, "s3cr3t-value");

	seal_wipe(plain);
	free(sealed);
}

static void
seal_output_has_versioned_text_format(void **state)
{
	u_int8_t	*raw;
	size_t		rawlen, i;
	char		*sealed;

	(void)state;

	assert_true(seal_key_add(key_a, sizeof(key_a)));
	sealed = seal_ok("nsp", "token", "abc");

	assert_memory_equal(sealed, "v1.", 3);
	for (i = 3; i < 11; i++)
		assert_non_null(strchr("0123456789abcdef", sealed[i]));
	assert_int_equal(sealed[11], '.');
	assert_null(strchr(sealed, '\n'));

	/* nonce (12) + ciphertext (3) + tag (16), in standard base64 */
	assert_true(seal_b64_decode(sealed + 12, &raw, &rawlen));
	assert_int_equal(rawlen, 12 + 3 + 16);
	assert_memory_not_equal(raw + 12, "abc", 3);

	free(raw);
	free(sealed);
}

static void
seal_uses_fresh_nonce_each_time(void **state)
{
	char		*one, *two;

	(void)state;

	assert_true(seal_key_add(key_a, sizeof(key_a)));
	one = seal_ok("nsp", "token", "same");
	two = seal_ok("nsp", "token", "same");

	assert_string_not_equal(one, two);

	free(one);
	free(two);
}

static void
seal_refuses_tampered_ciphertext(void **state)
{
	u_int8_t	*raw;
	size_t		rawlen, i, len;
	char		*sealed, *copy, *plain;

	(void)state;

	assert_true(seal_key_add(key_a, sizeof(key_a)));
	sealed = seal_ok("nsp", "token", "eyJhbGciOi.payload.sig");
	assert_true(seal_b64_decode(sealed + 12, &raw, &rawlen));

	/* Flip one bit in every byte in turn: nonce, ciphertext, tag. */
	copy = malloc(12 + 4 * ((rawlen + 2) / 3) + 1);
	assert_non_null(copy);
	for (i = 0; i < rawlen; i++) {
		raw[i] ^= 0x01;
		memcpy(copy, sealed, 12);
		EVP_EncodeBlock((unsigned char *)copy + 12, raw, (int)rawlen);
		assert_open_fails("nsp", "token", copy);
		raw[i] ^= 0x01;
	}

	/* Unchanged, it still opens. */
	EVP_EncodeBlock((unsigned char *)copy + 12, raw, (int)rawlen);
	assert_true(seal_open("nsp", "token", copy, &plain, &len));
	seal_wipe(plain);

	/* Truncated, or with a byte cut from the tag. */
	copy[strlen(copy) - 4] = '\0';
	assert_open_fails("nsp", "token", copy);
	assert_open_fails("nsp", "token", "v1.");
	assert_open_fails("nsp", "token", "");

	free(copy);
	free(raw);
	free(sealed);
}

static void
seal_refuses_wrong_name_as_aad(void **state)
{
	char		*sealed;

	(void)state;

	assert_true(seal_key_add(key_a, sizeof(key_a)));
	sealed = seal_ok("nsp", "token", "value");

	assert_open_fails("nsp2", "token", sealed);
	assert_open_fails("ns", "token", sealed);
	assert_open_fails("nsp", "password", sealed);
	assert_open_fails("nsp", "refresh_token", sealed);
	assert_open_fails("nsp:token", "", sealed);

	free(sealed);
}

static void
seal_refuses_wrong_key(void **state)
{
	char		*sealed, *forged;

	(void)state;

	assert_true(seal_key_add(key_a, sizeof(key_a)));
	sealed = seal_ok("nsp", "token", "value");

	/* A ring without key A cannot open it. */
	seal_keys_clear();
	assert_true(seal_key_add(key_b, sizeof(key_b)));
	assert_open_fails("nsp", "token", sealed);

	/* Nor when the blob claims key B's id. */
	forged = seal_ok("nsp", "token", "other");
	memcpy(sealed + 3, forged + 3, 8);
	assert_open_fails("nsp", "token", sealed);

	/* With no key at all, nothing seals. */
	seal_keys_clear();
	free(forged);
	forged = NULL;
	assert_false(seal_seal("nsp", "token", "x", 1, &forged));
	assert_null(forged);

	free(sealed);
}

static void
seal_opens_with_rotated_old_key(void **state)
{
	size_t		len;
	char		*old, *new, *plain;

	(void)state;

	assert_true(seal_key_add(key_a, sizeof(key_a)));
	old = seal_ok("nsp", "client_secret", "sealed-under-a");

	/* Rotate: B is the sealing key now, A only opens. */
	seal_keys_clear();
	assert_true(seal_key_add(key_b, sizeof(key_b)));
	assert_true(seal_key_add(key_a, sizeof(key_a)));
	new = seal_ok("nsp", "client_secret", "sealed-under-b");

	assert_memory_not_equal(old + 3, new + 3, 8);

	assert_true(seal_open("nsp", "client_secret", old, &plain, &len));
	assert_string_equal(plain, "sealed-under-a");
	seal_wipe(plain);

	assert_true(seal_open("nsp", "client_secret", new, &plain, &len));
	assert_string_equal(plain, "sealed-under-b");
	seal_wipe(plain);

	/* Once A is retired, its blobs no longer open. */
	seal_keys_clear();
	assert_true(seal_key_add(key_b, sizeof(key_b)));
	assert_open_fails("nsp", "client_secret", old);

	free(old);
	free(new);
}

static void
seal_key_ring_checks_keys(void **state)
{
	int		i;
	u_int8_t	k[SEAL_KEY_LEN];

	(void)state;

	assert_false(seal_key_add(key_a, SEAL_KEY_LEN - 1));
	assert_false(seal_key_add(key_a, SEAL_KEY_LEN + 1));
	assert_false(seal_key_add(NULL, SEAL_KEY_LEN));

	/* Adding the same key twice is harmless. */
	assert_true(seal_key_add(key_a, sizeof(key_a)));
	assert_true(seal_key_add(key_a, sizeof(key_a)));

	for (i = 1; i < SEAL_KEYS_MAX; i++) {
		memset(k, i, sizeof(k));
		assert_true(seal_key_add(k, sizeof(k)));
	}
	memset(k, 0x77, sizeof(k));
	assert_false(seal_key_add(k, sizeof(k)));
}

static void
seal_handles_empty_and_large_values(void **state)
{
	size_t		len;
	char		*sealed, *plain, *big;

	(void)state;

	assert_true(seal_key_add(key_a, sizeof(key_a)));

	assert_true(seal_seal("nsp", "token", "", 0, &sealed));
	assert_true(seal_open("nsp", "token", sealed, &plain, &len));
	assert_int_equal(len, 0);
	assert_string_equal(plain, "");
	seal_wipe(plain);
	free(sealed);

	big = malloc(100001);
	assert_non_null(big);
	memset(big, 'x', 100000);
	big[100000] = '\0';
	sealed = seal_ok("nsp", "token", big);
	assert_true(seal_open("nsp", "token", sealed, &plain, &len));
	assert_int_equal(len, 100000);
	assert_string_equal(plain, big);
	seal_wipe(plain);
	free(sealed);
	free(big);
}

static void
seal_fingerprint_is_first_12_hex_of_sha256(void **state)
{
	char		out[KILN_FPR_LEN + 1];

	(void)state;

	/* sha256("abc") = ba7816bf8f01cfea414140de5dae2223... */
	seal_fingerprint("abc", 3, out);
	assert_string_equal(out, "ba7816bf8f01");

	/* sha256("") = e3b0c44298fc1c14... */
	seal_fingerprint("", 0, out);
	assert_string_equal(out, "e3b0c44298fc");
}

/* The whole digest as lowercase hex: API key hashes, URL origins. */
static void
seal_sha256_hex_is_the_whole_digest(void **state)
{
	char	out[SEAL_SHA256_HEX_LEN + 1];

	(void)state;

	assert_true(seal_sha256_hex("abc", 3, out));
	assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad");
	assert_true(seal_sha256_hex("", 0, out));
	assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb924"
	    "27ae41e4649b934ca495991b7852b855");
}

static void
seal_b64_decode_accepts_padding_rejects_garbage(void **state)
{
	static const char	*bad[] = {
		"", "   ", "Zm9v!", "Zm9vY", "Zm9vYg=", "Zm9vYg===",
		"Zm9=vYg", "Zm 9v", "Zm9vYh==", "=", "Zm9vYmFy\n\nZm9v",
	};
	u_int8_t		*out;
	size_t			len, i;

	(void)state;

	assert_true(seal_b64_decode("Zm9vYmFy", &out, &len));
	assert_int_equal(len, 6);
	assert_memory_equal(out, "foobar", 6);
	free(out);

	assert_true(seal_b64_decode("Zm9vYg==", &out, &len));
	assert_int_equal(len, 4);
	assert_memory_equal(out, "foob", 4);
	free(out);

	assert_true(seal_b64_decode("Zm9vYmE=\n", &out, &len));
	assert_int_equal(len, 5);
	assert_memory_equal(out, "fooba", 5);
	free(out);

	/* A 32-byte key, as `openssl rand -base64 32` prints it. */
	assert_true(seal_b64_decode(
	    "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=", &out, &len));
	assert_int_equal(len, 32);
	assert_int_equal(out[0], 0xab);
	assert_int_equal(out[31], 0x90);
	free(out);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = NULL;
		if (seal_b64_decode(bad[i], &out, &len))
			fail_msg("accepted \"%s\"", bad[i]);
		assert_null(out);
	}
}

static void
seal_bound_opens_only_for_its_origin(void **state)
{
	size_t		len;
	char		*sealed, *plain;

	(void)state;

	assert_true(seal_key_add(key_a, sizeof(key_a)));
	assert_true(seal_seal_for("nsp", "client_secret",
	    "https://idp.example:443", "s3cr3t", 6, &sealed));
	assert_memory_equal(sealed, "v2.", 3);
	assert_int_equal(sealed[11], '.');

	assert_true(seal_open_for("nsp", "client_secret",
	    "https://idp.example:443", sealed, &plain, &len));
	assert_string_equal(plain, "s3cr3t");
	seal_wipe(plain);

	plain = NULL;
	assert_false(seal_open_for("nsp", "client_secret",
	    "https://evil.example:443", sealed, &plain, &len));
	assert_false(seal_open_for("nsp", "client_secret",
	    "http://idp.example:443", sealed, &plain, &len));
	assert_false(seal_open_for("nsp", "password",
	    "https://idp.example:443", sealed, &plain, &len));
	assert_false(seal_open_for("other", "client_secret",
	    "https://idp.example:443", sealed, &plain, &len));
	assert_null(plain);

	/* A bound blob is not a v1 blob, whatever its additional data. */
	assert_open_fails("nsp", "client_secret", sealed);

	free(sealed);
}

static void
seal_open_for_still_opens_v1_blobs(void **state)
{
	size_t		len;
	char		*sealed, *plain;

	(void)state;

	assert_true(seal_key_add(key_a, sizeof(key_a)));
	sealed = seal_ok("nsp", "refresh_token", "made-by-main");

	assert_true(seal_open_for("nsp", "refresh_token",
	    "https://idp.example:443", sealed, &plain, &len));
	assert_string_equal(plain, "made-by-main");
	seal_wipe(plain);

	plain = NULL;
	assert_false(seal_open_for("nsp", "password",
	    "https://idp.example:443", sealed, &plain, &len));
	assert_false(seal_open_for("nsp", "refresh_token",
	    "https://idp.example:443", "v3.00000000.AAAA", &plain, &len));
	assert_null(plain);

	free(sealed);
}

static void
seal_current_tells_key_and_format(void **state)
{
	char		*a1, *a2, *b2;

	(void)state;

	assert_false(seal_current("v2.00000000.AAAA", 1));
	assert_null(seal_key_id());

	assert_true(seal_key_add(key_a, sizeof(key_a)));
	a1 = seal_ok("nsp", "token", "x");
	assert_true(seal_seal_for("nsp", "password", "http://h:80", "x", 1,
	    &a2));
	assert_int_equal(strlen(seal_key_id()), 8);

	assert_true(seal_current(a1, 0));
	assert_false(seal_current(a1, 1));
	assert_true(seal_current(a2, 1));
	assert_false(seal_current(a2, 0));
	assert_false(seal_current(NULL, 1));

	/* Key b seals from now on; a's blobs are due for re-sealing. */
	seal_keys_clear();
	assert_true(seal_key_add(key_b, sizeof(key_b)));
	assert_true(seal_key_add(key_a, sizeof(key_a)));
	assert_false(seal_current(a1, 0));
	assert_false(seal_current(a2, 1));
	assert_true(seal_seal_for("nsp", "password", "http://h:80", "x", 1,
	    &b2));
	assert_true(seal_current(b2, 1));
	assert_memory_equal(b2 + 3, seal_key_id(), 8);

	free(a1);
	free(a2);
	free(b2);
}

static void
seal_wipe_is_null_safe(void **state)
{
	(void)state;

	seal_wipe(NULL);
	seal_wipe(strdup("secret"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(seal_round_trips,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    seal_output_has_versioned_text_format, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    seal_uses_fresh_nonce_each_time, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    seal_refuses_tampered_ciphertext, setup, teardown),
		cmocka_unit_test_setup_teardown(seal_refuses_wrong_name_as_aad,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(seal_refuses_wrong_key,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    seal_opens_with_rotated_old_key, setup, teardown),
		cmocka_unit_test_setup_teardown(seal_key_ring_checks_keys,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    seal_handles_empty_and_large_values, setup, teardown),
		cmocka_unit_test(seal_fingerprint_is_first_12_hex_of_sha256),
		cmocka_unit_test(seal_sha256_hex_is_the_whole_digest),
		cmocka_unit_test(
		    seal_b64_decode_accepts_padding_rejects_garbage),
		cmocka_unit_test(seal_wipe_is_null_safe),
		cmocka_unit_test_setup_teardown(
		    seal_bound_opens_only_for_its_origin, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    seal_open_for_still_opens_v1_blobs, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    seal_current_tells_key_and_format, setup, teardown),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
