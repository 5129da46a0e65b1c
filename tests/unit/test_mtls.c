/*
 * test_mtls.c: the PEM material of mutual TLS client authentication,
 * checked at creation: good pairs pass, bad input is refused naming its
 * field, and the leaf's subject and notAfter are read.
 */

#include <sys/types.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "kiln.h"

struct pair {
	char		*cert;
	char		*key;
	time_t		not_after;
};

static char *
bio_text(BIO *bio)
{
	char		*p, *out;
	long		n;

	n = BIO_get_mem_data(bio, &p);
	out = calloc(1, (size_t)n + 1);
	memcpy(out, p, (size_t)n);
	BIO_free(bio);

	return (out);
}

/* A self-signed EC P-256 certificate for cn, valid for days. */
static void
make_pair(const char *cn, long days, struct pair *p)
{
	EVP_PKEY	*key;
	X509		*x;
	X509_NAME	*name;
	BIO		*bio;

	key = EVP_EC_gen("P-256");
	assert_non_null(key);
	x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), days * 86400);
	p->not_after = time(NULL) + days * 86400;
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	    (const unsigned char *)"kiln test", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509_set_pubkey(x, key);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);

	bio = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(bio, x);
	p->cert = bio_text(bio);
	bio = BIO_new(BIO_s_mem());
	PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
	p->key = bio_text(bio);

	X509_free(x);
	EVP_PKEY_free(key);
}

static void
pair_free(struct pair *p)
{
	free(p->cert);
	free(p->key);
}

static void
src_init(struct source *src, struct pair *p, const char *key)
{
	memset(src, 0, sizeof(*src));
	src->auth_method = AUTH_TLS_CLIENT;
	src->tls_client_cert = p->cert;
	src->tls_client_key = (char *)(uintptr_t)key;
}

static void
refused(struct source *src, const char *field)
{
	char		err[KILN_ERR_MAX];

	err[0] = '\0';
	assert_int_equal(mtls_check(src, err, sizeof(err)),
	    KORE_RESULT_ERROR);
	if (strncmp(err, field, strlen(field)) || err[strlen(field)] != ':')
		fail_msg("error \"%s\" does not name %s", err, field);
	/* An error never quotes the PEM. */
	assert_null(strstr(err, "BEGIN"));
	assert_null(strstr(err, "MII"));
}

static void
test_good_pair(void **state)
{
	struct source	src;
	struct pair	a;
	char		err[KILN_ERR_MAX];
	char		chain[8192];

	(void)state;
	make_pair("client-a", 30, &a);
	src_init(&src, &a, a.key);
	assert_int_equal(mtls_check(&src, err, sizeof(err)), KORE_RESULT_OK);

	/* A chain, leaf first, and a CA bundle. */
	(void)snprintf(chain, sizeof(chain), "%s%s", a.cert, a.cert);
	src.tls_client_cert = chain;
	src.tls_ca = a.cert;
	assert_int_equal(mtls_check(&src, err, sizeof(err)), KORE_RESULT_OK);
	assert_int_equal(mtls_count(chain), 2);

	/* Other methods need none of it. */
	src.auth_method = AUTH_SECRET_POST;
	src.tls_client_cert = NULL;
	assert_int_equal(mtls_check(&src, err, sizeof(err)), KORE_RESULT_OK);

	pair_free(&a);
}

static void
test_key_mismatch(void **state)
{
	struct source	src;
	struct pair	a, b;

	(void)state;
	make_pair("client-a", 30, &a);
	make_pair("client-b", 30, &b);
	src_init(&src, &a, b.key);
	refused(&src, "tls_client_key");
	pair_free(&a);
	pair_free(&b);
}

static void
test_bad_inputs(void **state)
{
	struct source	src;
	struct pair	a;
	char		broken[8192], *p;

	(void)state;
	make_pair("client-a", 30, &a);

	src_init(&src, &a, "not a key");
	refused(&src, "tls_client_key");

	/* The key pasted into the certificate field. */
	src_init(&src, &a, a.key);
	src.tls_client_cert = a.key;
	refused(&src, "tls_client_cert");

	src.tls_client_cert = (char *)(uintptr_t)"hello";
	refused(&src, "tls_client_cert");

	/* A certificate with its body damaged. */
	(void)snprintf(broken, sizeof(broken), "%s", a.cert);
	p = strstr(broken, "MII");
	assert_non_null(p);
	p[10] = '!';
	p[11] = '!';
	src.tls_client_cert = broken;
	refused(&src, "tls_client_cert");

	/* A good certificate followed by a broken one. */
	(void)snprintf(broken, sizeof(broken), "%s-----BEGIN CERTIFICATE-----"
	    "\nAAAA\n-----END CERTIFICATE-----\n", a.cert);
	src.tls_client_cert = broken;
	refused(&src, "tls_client_cert");

	src.tls_client_cert = a.cert;
	src.tls_ca = (char *)(uintptr_t)"-----BEGIN CERTIFICATE-----\n"
	    "-----END CERTIFICATE-----\n";
	refused(&src, "tls_ca");

	pair_free(&a);
}

static void
test_cert_info(void **state)
{
	struct pair	a;
	int64_t		not_after;
	char		subject[MTLS_SUBJECT_MAX];

	(void)state;
	make_pair("svc.example", 10, &a);
	assert_int_equal(mtls_cert_info(a.cert, subject, sizeof(subject),
	    &not_after), KORE_RESULT_OK);
	assert_string_equal(subject, "CN=svc.example,O=kiln test");
	assert_true(llabs(not_after / 1000 - (int64_t)a.not_after) <= 2);
	assert_int_equal(mtls_cert_info("junk", subject, sizeof(subject),
	    &not_after), KORE_RESULT_ERROR);
	pair_free(&a);
}

/* Through the source JSON: fields, requirements, the https rule. */
static void
test_source_json(void **state)
{
	struct source	src;
	struct pair	a;
	yajl_val	root;
	char		json[16384], err[KILN_ERR_MAX], *c, *k, *p;
	size_t		i, j;
	const char	*pem[2];
	char		*esc[2];

	(void)state;
	make_pair("client-a", 30, &a);
	pem[0] = a.cert;
	pem[1] = a.key;
	for (i = 0; i < 2; i++) {
		esc[i] = p = calloc(1, strlen(pem[i]) * 2 + 1);
		for (j = 0; pem[i][j] != '\0'; j++) {
			if (pem[i][j] == '\n') {
				*p++ = '\\';
				*p++ = 'n';
			} else {
				*p++ = pem[i][j];
			}
		}
	}
	c = esc[0];
	k = esc[1];

#define TRY(url, method, extra)						\
	(void)snprintf(json, sizeof(json), "{\"name\":\"m\","		\
	    "\"kind\":\"client_credentials\",\"client_id\":\"cid\","	\
	    "\"token_url\":\"%s\",\"auth_method\":\"%s\"%s}", url,	\
	    method, extra);						\
	root = yajl_tree_parse(json, NULL, 0);				\
	assert_non_null(root);						\
	err[0] = '\0';

	{
		char	extra[12000];

		(void)snprintf(extra, sizeof(extra), ",\"tls_client_cert\":"
		    "\"%s\",\"tls_client_key\":\"%s\"", c, k);
		TRY("https://idp.example/token", "tls_client_auth", extra);
		assert_int_equal(source_from_json(root, 0, &src, err,
		    sizeof(err)), KORE_RESULT_OK);
		assert_int_equal(src.auth_method, AUTH_TLS_CLIENT);
		assert_string_equal(src.tls_client_cert, a.cert);
		assert_null(src.client_secret);
		source_free(&src);
		yajl_tree_free(root);

		TRY("http://idp.example/token", "tls_client_auth", extra);
		assert_int_equal(source_from_json(root, 0, &src, err,
		    sizeof(err)), KORE_RESULT_ERROR);
		assert_string_equal(err, "token_url: must be https:// with "
		    "tls client authentication");
		source_free(&src);
		yajl_tree_free(root);

		(void)strcat(extra, ",\"client_secret\":\"s\"");
		TRY("https://idp.example/token", "client_secret_post", extra);
		assert_int_equal(source_from_json(root, 0, &src, err,
		    sizeof(err)), KORE_RESULT_ERROR);
		assert_int_equal(strncmp(err, "tls_client_cert:", 16), 0);
		source_free(&src);
		yajl_tree_free(root);

		(void)snprintf(extra, sizeof(extra), ",\"tls_client_cert\":"
		    "\"%s\"", c);
		TRY("https://idp.example/token", "self_signed_tls_client_auth",
		    extra);
		assert_int_equal(source_from_json(root, 0, &src, err,
		    sizeof(err)), KORE_RESULT_ERROR);
		assert_string_equal(err, "tls_client_key: required for "
		    "self_signed_tls_client_auth");
		source_free(&src);
		yajl_tree_free(root);
	}

	assert_string_equal(source_auth_name(AUTH_TLS_SELF_SIGNED),
	    "self_signed_tls_client_auth");
	assert_int_equal(source_auth_parse("tls_client_auth"),
	    AUTH_TLS_CLIENT);
	free(esc[0]);
	free(esc[1]);
	pair_free(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_pair),
		cmocka_unit_test(test_key_mismatch),
		cmocka_unit_test(test_bad_inputs),
		cmocka_unit_test(test_cert_info),
		cmocka_unit_test(test_source_json),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
