/*
 * mtls.c: the PEM material of mutual TLS client authentication (RFC
 * 8705), checked with OpenSSL when a source is written: a certificate
 * chain whose leaf matches the private key, and optionally a CA bundle
 * to trust for that upstream. Everything is parsed from memory, nothing
 * touches the disk, and errors never quote the PEM text.
 */

#include <sys/types.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "kiln.h"

#define MTLS_CHAIN_MAX		16

static X509	*mtls_chain_read(const char *, size_t *);
static int	mtls_not_after(const X509 *, int64_t *);

/*
 * Check the PEMs of src: the CA bundle whatever the auth method, the
 * certificate and key with mutual TLS. Returns KORE_RESULT_ERROR with
 * err naming the field on bad input.
 */
int
mtls_check(const struct source *src, char *err, size_t errlen)
{
	X509		*leaf;
	EVP_PKEY	*key;
	BIO		*bio;
	size_t		n;
	int		ret;

	leaf = NULL;
	key = NULL;
	bio = NULL;
	ret = KORE_RESULT_ERROR;

	if (src->tls_ca != NULL) {
		if ((leaf = mtls_chain_read(src->tls_ca, &n)) == NULL) {
			json_seterr(err, errlen, "tls_ca: must be one or more "
			    "PEM certificates (at most %d)", MTLS_CHAIN_MAX);
			goto cleanup;
		}
		X509_free(leaf);
		leaf = NULL;
	}

	if (!mtls_method(src->auth_method)) {
		ret = KORE_RESULT_OK;
		goto cleanup;
	}

	if ((leaf = mtls_chain_read(src->tls_client_cert, &n)) == NULL) {
		json_seterr(err, errlen, "tls_client_cert: must be a PEM "
		    "certificate chain, leaf first (at most %d)",
		    MTLS_CHAIN_MAX);
		goto cleanup;
	}

	if ((bio = BIO_new_mem_buf(src->tls_client_key, -1)) == NULL)
		goto nomem;
	key = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
	if (key == NULL) {
		json_seterr(err, errlen, "tls_client_key: must be an "
		    "unencrypted PEM private key");
		goto cleanup;
	}

	if (X509_check_private_key(leaf, key) != 1) {
		json_seterr(err, errlen, "tls_client_key: does not match the "
		    "certificate of tls_client_cert");
		goto cleanup;
	}

	ret = KORE_RESULT_OK;
	goto cleanup;

nomem:
	json_seterr(err, errlen, "tls_client_cert: out of memory");

cleanup:
	ERR_clear_error();
	BIO_free(bio);
	EVP_PKEY_free(key);
	X509_free(leaf);

	return (ret);
}

int
mtls_method(int auth_method)
{
	return (auth_method == AUTH_TLS_CLIENT ||
	    auth_method == AUTH_TLS_SELF_SIGNED);
}

/*
 * The subject (RFC 2253 text) and notAfter of the leaf of a PEM chain,
 * for views and the expiry alert.
 */
int
mtls_cert_info(const char *pem, char *subject, size_t len,
    int64_t *not_after)
{
	X509		*leaf;
	BIO		*bio;
	size_t		n;
	int		ret, w;

	ret = KORE_RESULT_ERROR;
	bio = NULL;

	if (pem == NULL || (leaf = mtls_chain_read(pem, &n)) == NULL)
		return (KORE_RESULT_ERROR);

	if (!mtls_not_after(leaf, not_after))
		goto cleanup;

	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		goto cleanup;
	if (X509_NAME_print_ex(bio, X509_get_subject_name(leaf), 0,
	    XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0)
		goto cleanup;
	if ((w = BIO_read(bio, subject, (int)len - 1)) < 0)
		w = 0;
	subject[w] = '\0';

	ret = KORE_RESULT_OK;

cleanup:
	ERR_clear_error();
	BIO_free(bio);
	X509_free(leaf);

	return (ret);
}

/*
 * Read every certificate of a PEM text; answer the first (the leaf)
 * with the count in *n, or NULL when there is none, one is broken,
 * there are too many, or anything but certificates is in the text.
 */
static X509 *
mtls_chain_read(const char *pem, size_t *n)
{
	X509		*first, *x;
	BIO		*bio;
	const char	*p;

	*n = 0;
	first = NULL;

	if (pem == NULL || strstr(pem, "-----BEGIN CERTIFICATE-----") == NULL)
		return (NULL);

	/* Only certificate blocks: no key pasted into the chain field. */
	for (p = pem; (p = strstr(p, "-----BEGIN ")) != NULL; p += 11) {
		if (strncmp(p, "-----BEGIN CERTIFICATE-----", 27))
			return (NULL);
	}

	if ((bio = BIO_new_mem_buf(pem, -1)) == NULL)
		return (NULL);

	for (;;) {
		x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		if (x == NULL)
			break;
		if (++(*n) > MTLS_CHAIN_MAX) {
			X509_free(x);
			break;
		}
		if (first == NULL)
			first = x;
		else
			X509_free(x);
	}

	/* The loop ends at the end of the text, or at a broken block. */
	if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE ||
	    *n > MTLS_CHAIN_MAX || *n != mtls_count(pem)) {
		X509_free(first);
		first = NULL;
	}

	ERR_clear_error();
	BIO_free(bio);

	return (first);
}

/* The number of certificate blocks in a PEM text. */
size_t
mtls_count(const char *pem)
{
	const char	*p;
	size_t		n;

	n = 0;
	for (p = pem; (p = strstr(p, "-----BEGIN CERTIFICATE-----")) != NULL;
	    p += 27)
		n++;

	return (n);
}

static int
mtls_not_after(const X509 *x, int64_t *ms)
{
	const ASN1_TIME		*t;
	struct tm		tm;

	if ((t = X509_get0_notAfter(x)) == NULL)
		return (KORE_RESULT_ERROR);

	memset(&tm, 0, sizeof(tm));
	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return (KORE_RESULT_ERROR);

	*ms = (int64_t)timegm(&tm) * 1000;

	return (KORE_RESULT_OK);
}
