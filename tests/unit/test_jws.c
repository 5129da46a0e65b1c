/*
 * test_jws.c: the JWTs kiln signs for upstreams. Keys are made here with
 * OpenSSL; every signature is checked with OpenSSL's EVP_DigestVerify on
 * the test's own copy of the public key, claims and header read back with
 * yajl; bad PEMs are refused by name, without a crash.
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

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "kiln.h"

#define NOW		1755624343LL

/* PEM of pkey: PKCS#8, or the traditional "RSA/EC PRIVATE KEY". */
static char *
pem_of(EVP_PKEY *pkey, int traditional)
{
	BUF_MEM		*mem;
	BIO		*bio;
	char		*out;

	bio = BIO_new(BIO_s_mem());
	if (traditional)
		assert_true(PEM_write_bio_PrivateKey_traditional(bio, pkey,
		    NULL, NULL, 0, NULL, NULL));
	else
		assert_true(PEM_write_bio_PKCS8PrivateKey(bio, pkey, NULL,
		    NULL, 0, NULL, NULL));
	BIO_get_mem_ptr(bio, &mem);
	out = calloc(1, mem->length + 1);
	memcpy(out, mem->data, mem->length);
	BIO_free(bio);

	return (out);
}

static size_t
b64url_decode(const char *in, size_t len, u_int8_t **out)
{
	size_t		n;

	assert_true(json_b64_decode(in, len, JSON_B64_URL, out, &n));

	return (n);
}

/* Part i (0 header, 1 claims) of a JWT, parsed. */
static yajl_val
jwt_part(const char *jwt, int i)
{
	const char	*p, *dot;
	u_int8_t	*raw;
	yajl_val	v;
	size_t		n;

	p = jwt;
	for (; i > 0; i--)
		p = strchr(p, '.') + 1;
	dot = strchr(p, '.');
	assert_non_null(dot);
	n = b64url_decode(p, dot - p, &raw);
	v = json_parse((const char *)raw, n);
	assert_non_null(v);
	free(raw);

	return (v);
}

static const char *
str_at(yajl_val v, const char *key)
{
	yajl_val	x;

	x = json_path_get(v, key);
	if (x == NULL || !YAJL_IS_STRING(x))
		return (NULL);

	return (YAJL_GET_STRING(x));
}

static int64_t
int_at(yajl_val v, const char *key)
{
	yajl_val	x;

	x = json_path_get(v, key);
	assert_non_null(x);
	assert_true(YAJL_IS_INTEGER(x));

	return (YAJL_GET_INTEGER(x));
}

/* The JWT's signature checked with pkey, as a verifier would. */
static int
verified(EVP_PKEY *pkey, int alg, const char *jwt)
{
	EVP_PKEY_CTX	*pctx;
	EVP_MD_CTX	*md;
	ECDSA_SIG	*es;
	const char	*sig;
	u_int8_t	*raw, *der;
	size_t		n;
	int		ok, dlen;

	sig = strrchr(jwt, '.') + 1;
	n = b64url_decode(sig, strlen(sig), &raw);
	der = NULL;

	if (alg == JWS_ES256) {
		if (n != 64) {
			free(raw);
			return (0);
		}
		es = ECDSA_SIG_new();
		ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL),
		    BN_bin2bn(raw + 32, 32, NULL));
		dlen = i2d_ECDSA_SIG(es, &der);
		ECDSA_SIG_free(es);
		free(raw);
		raw = der;
		n = dlen;
	}

	md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL,
	    pkey), 1);
	if (alg == JWS_PS256) {
		EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
		EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
	}
	ok = EVP_DigestVerify(md, raw, n, (const u_int8_t *)jwt,
	    (sig - 1) - jwt) == 1;
	EVP_MD_CTX_free(md);
	if (alg == JWS_ES256)
		OPENSSL_free(raw);
	else
		free(raw);
	ERR_clear_error();

	return (ok);
}

static char *
assertion(const struct jws_key *key, const char *kid)
{
	struct jws_claims	c;
	char			*jwt, err[KILN_ERR_MAX];

	memset(&c, 0, sizeof(c));
	c.iss = "client-1";
	c.sub = "client-1";
	c.aud = "https://idp.example/token";
	c.iat = NOW;
	c.exp = NOW + 60;
	if (!jws_assertion(key, kid, &c, &jwt, err, sizeof(err)))
		fail_msg("assertion refused: %s", err);

	return (jwt);
}

/* One key of each kind and form: load, sign, verify, read back. */
static void
signs_and_verifies(EVP_PKEY *pkey, int traditional, int alg)
{
	struct jws_key	key;
	yajl_val	h, c;
	char		*pem, *jwt, err[KILN_ERR_MAX];

	pem = pem_of(pkey, traditional);
	if (!jws_key_load(pem, alg == JWS_PS256 ? JWS_PS256 : 0, &key, err,
	    sizeof(err)))
		fail_msg("key refused: %s", err);
	assert_int_equal(key.alg, alg);

	jwt = assertion(&key, NULL);
	assert_true(verified(pkey, alg, jwt));

	h = jwt_part(jwt, 0);
	assert_string_equal(str_at(h, "alg"), jws_alg_name(alg));
	assert_string_equal(str_at(h, "typ"), "JWT");
	assert_string_equal(str_at(h, "kid"), key.thumbprint);
	assert_int_equal(h->u.object.len, 3);

	c = jwt_part(jwt, 1);
	assert_string_equal(str_at(c, "iss"), "client-1");
	assert_string_equal(str_at(c, "sub"), "client-1");
	assert_string_equal(str_at(c, "aud"), "https://idp.example/token");
	assert_int_equal(int_at(c, "iat"), NOW);
	assert_int_equal(int_at(c, "exp"), NOW + 60);
	assert_int_equal(strlen(str_at(c, "jti")), 22);
	assert_null(json_path_get(c, "scope"));

	/* A changed byte of the claims breaks the signature. */
	jwt[strchr(jwt, '.') - jwt + 3] ^= 1;
	assert_false(verified(pkey, alg, jwt));

	yajl_tree_free(h);
	yajl_tree_free(c);
	free(jwt);
	free(pem);
	jws_key_free(&key);
}

static void
es256_assertion_verifies_with_raw_signature(void **state)
{
	EVP_PKEY	*pkey;

	(void)state;
	pkey = EVP_EC_gen("P-256");
	signs_and_verifies(pkey, 0, JWS_ES256);
	signs_and_verifies(pkey, 1, JWS_ES256);
	EVP_PKEY_free(pkey);
}

static void
rs256_and_ps256_assertions_verify(void **state)
{
	EVP_PKEY	*pkey;

	(void)state;
	pkey = EVP_RSA_gen(2048);
	signs_and_verifies(pkey, 0, JWS_RS256);
	signs_and_verifies(pkey, 1, JWS_RS256);
	signs_and_verifies(pkey, 0, JWS_PS256);
	EVP_PKEY_free(pkey);
}

static void
assertion_has_given_kid_random_jti_and_optional_claims(void **state)
{
	struct jws_claims	c;
	struct jws_key		key;
	yajl_val		a, b, h;
	char			*j1, *j2, err[KILN_ERR_MAX];

	(void)state;
	assert_true(jws_key_generate(JWS_ES256, &key, err, sizeof(err)));

	j1 = assertion(&key, "sa-key-7");
	j2 = assertion(&key, "sa-key-7");
	h = jwt_part(j1, 0);
	assert_string_equal(str_at(h, "kid"), "sa-key-7");
	a = jwt_part(j1, 1);
	b = jwt_part(j2, 1);
	assert_string_not_equal(str_at(a, "jti"), str_at(b, "jti"));

	memset(&c, 0, sizeof(c));
	c.iss = "sa@proj.iam.gserviceaccount.com";
	c.sub = "user@example.com";
	c.aud = "https://oauth2.example/token";
	c.scope = "a b";
	c.target_audience = "https://svc.example";
	c.iat = NOW;
	c.exp = NOW + 3600;
	yajl_tree_free(a);
	free(j1);
	assert_true(jws_assertion(&key, NULL, &c, &j1, err, sizeof(err)));
	a = jwt_part(j1, 1);
	assert_string_equal(str_at(a, "sub"), "user@example.com");
	assert_string_equal(str_at(a, "scope"), "a b");
	assert_string_equal(str_at(a, "target_audience"),
	    "https://svc.example");
	assert_int_equal(int_at(a, "exp"), NOW + 3600);

	yajl_tree_free(a);
	yajl_tree_free(b);
	yajl_tree_free(h);
	free(j1);
	free(j2);
	jws_key_free(&key);
}

/* The JWK carries the key's public numbers; kid is its RFC 7638 hash. */
static void
jwk_exports_public_key_and_thumbprint_kid(void **state)
{
	struct jws_key	key;
	EVP_PKEY	*pkey;
	BIGNUM		*x;
	yajl_val	v;
	u_int8_t	*raw, want[32], md[32];
	char		*pem, *jwk, text[512], thumb[64], err[KILN_ERR_MAX];
	size_t		n;

	(void)state;
	pkey = EVP_EC_gen("P-256");
	pem = pem_of(pkey, 0);
	assert_true(jws_key_load(pem, 0, &key, err, sizeof(err)));
	assert_true(jws_jwk(&key, NULL, &jwk));
	v = json_parse(jwk, strlen(jwk));
	assert_non_null(v);

	assert_string_equal(str_at(v, "kty"), "EC");
	assert_string_equal(str_at(v, "crv"), "P-256");
	assert_string_equal(str_at(v, "alg"), "ES256");
	assert_string_equal(str_at(v, "use"), "sig");
	assert_null(json_path_get(v, "d"));
	assert_null(strstr(jwk, "\"d\""));

	x = NULL;
	assert_true(EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &x));
	BN_bn2binpad(x, want, 32);
	n = b64url_decode(str_at(v, "x"), strlen(str_at(v, "x")), &raw);
	assert_int_equal(n, 32);
	assert_memory_equal(raw, want, 32);
	free(raw);
	BN_free(x);

	(void)snprintf(text, sizeof(text),
	    "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
	    str_at(v, "x"), str_at(v, "y"));
	EVP_Digest(text, strlen(text), md, NULL, EVP_sha256(), NULL);
	jws_b64url(md, sizeof(md), thumb);
	assert_string_equal(str_at(v, "kid"), thumb);
	assert_string_equal(key.thumbprint, thumb);

	yajl_tree_free(v);
	free(jwk);
	free(pem);
	jws_key_free(&key);
	EVP_PKEY_free(pkey);
}

static void
jwk_of_rsa_key_has_n_and_e(void **state)
{
	struct jws_key	key;
	yajl_val	v;
	char		*jwk, err[KILN_ERR_MAX];

	(void)state;
	assert_true(jws_key_generate(JWS_PS256, &key, err, sizeof(err)));
	assert_true(jws_jwk(&key, "k1", &jwk));
	v = json_parse(jwk, strlen(jwk));
	assert_string_equal(str_at(v, "kty"), "RSA");
	assert_string_equal(str_at(v, "e"), "AQAB");
	assert_int_equal(strlen(str_at(v, "n")), 342);	/* 256 bytes */
	assert_string_equal(str_at(v, "kid"), "k1");
	assert_string_equal(str_at(v, "alg"), "PS256");
	assert_null(json_path_get(v, "d"));
	assert_null(json_path_get(v, "p"));
	yajl_tree_free(v);
	free(jwk);
	jws_key_free(&key);
}

/* A generated key survives its PEM (sealed and read back). */
static void
generated_key_round_trips_through_pem(void **state)
{
	struct jws_key	key, again;
	char		*pem, err[KILN_ERR_MAX];
	int		algs[] = { JWS_ES256, JWS_RS256 };
	size_t		i;

	(void)state;
	for (i = 0; i < 2; i++) {
		assert_true(jws_key_generate(algs[i], &key, err,
		    sizeof(err)));
		assert_true(jws_key_pem(&key, &pem));
		assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
		assert_true(jws_key_load(pem, 0, &again, err, sizeof(err)));
		assert_string_equal(key.thumbprint, again.thumbprint);
		assert_int_equal(again.alg, algs[i]);
		free(pem);
		jws_key_free(&key);
		jws_key_free(&again);
	}
	assert_false(jws_key_generate(0, &key, err, sizeof(err)));
	assert_string_equal(err, "private_key: generate must be one of "
	    "RS256, PS256, ES256");
}

static void
refused(const char *pem, int alg, const char *want)
{
	struct jws_key	key;
	char		err[KILN_ERR_MAX];

	memset(&key, 0x5a, sizeof(key));
	if (jws_key_load(pem, alg, &key, err, sizeof(err)))
		fail_msg("accepted: %.60s", pem == NULL ? "(null)" : pem);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\", wanted \"%s\"", err, want);
	assert_int_equal(strncmp(err, "private_key: ", 13), 0);
	assert_null(key.pkey);
	if (pem != NULL && strlen(pem) > 80)
		assert_null(strstr(err, pem + 40));
}

static void
bad_pems_and_mismatched_keys_refused(void **state)
{
	EVP_PKEY	*rsa, *small, *p384, *ec;
	BIO		*bio;
	BUF_MEM		*mem;
	char		*pem, *cut, *pub, *enc;

	(void)state;
	refused(NULL, 0, "must be a PEM private key");
	refused("", 0, "must be a PEM private key");
	refused("hello", 0, "must be a PEM private key");
	refused("-----BEGIN PRIVATE KEY-----\nAAAA\n"
	    "-----END PRIVATE KEY-----\n", 0, "not a readable PEM");
	refused("-----BEGIN PRIVATE KEY-----\n", 0, "not a readable PEM");

	rsa = EVP_RSA_gen(2048);
	pem = pem_of(rsa, 0);

	/* Truncated at every tenth byte: never accepted, never a crash. */
	cut = strdup(pem);
	for (size_t n = 0; n < strlen(pem) - 30; n += 10) {
		memcpy(cut, pem, n);
		cut[n] = '\0';
		refused(cut, 0, "private_key: ");
	}
	/* A body cut short inside valid armour. */
	(void)snprintf(cut, strlen(pem), "-----BEGIN PRIVATE KEY-----\n%.300s"
	    "\n-----END PRIVATE KEY-----\n", pem + 28);
	refused(cut, 0, "not a readable PEM");

	refused(pem, JWS_ES256, "ES256 needs an EC P-256 key");

	/* A public key alone. */
	bio = BIO_new(BIO_s_mem());
	PEM_write_bio_PUBKEY(bio, rsa);
	BIO_get_mem_ptr(bio, &mem);
	pub = strndup(mem->data, mem->length);
	BIO_free(bio);
	refused(pub, 0, "not a readable PEM");

	/* Encrypted: there is nobody to ask for the passphrase. */
	bio = BIO_new(BIO_s_mem());
	PEM_write_bio_PKCS8PrivateKey(bio, rsa, EVP_aes_128_cbc(), "pw", 2,
	    NULL, NULL);
	BIO_get_mem_ptr(bio, &mem);
	enc = strndup(mem->data, mem->length);
	BIO_free(bio);
	refused(enc, 0, "encrypted keys are not supported");

	small = EVP_RSA_gen(1024);
	free(pem);
	pem = pem_of(small, 0);
	refused(pem, 0, "must have 2048 to 8192 bits");

	p384 = EVP_EC_gen("P-384");
	free(pem);
	pem = pem_of(p384, 1);
	refused(pem, 0, "must be on the curve P-256");

	free(pem);
	ec = EVP_EC_gen("P-256");
	pem = pem_of(ec, 0);
	refused(pem, JWS_PS256, "PS256 needs an RSA key");
	refused(pem, JWS_RS256, "RS256 needs an RSA key");

	free(pem);
	free(cut);
	free(pub);
	free(enc);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(small);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(ec);
}

/* An EC key whose public point is another key's. */
static EVP_PKEY *
ec_mismatched(void)
{
	OSSL_PARAM_BLD	*bld;
	EVP_PKEY_CTX	*ctx;
	OSSL_PARAM	*params;
	EVP_PKEY	*a, *b, *m;
	BIGNUM		*priv;
	u_int8_t	pub[65];
	size_t		publen;

	a = EVP_EC_gen("P-256");
	b = EVP_EC_gen("P-256");
	priv = NULL;
	m = NULL;
	assert_true(EVP_PKEY_get_bn_param(a, OSSL_PKEY_PARAM_PRIV_KEY, &priv));
	assert_true(EVP_PKEY_get_octet_string_param(b, OSSL_PKEY_PARAM_PUB_KEY,
	    pub, sizeof(pub), &publen));
	bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
	    "prime256v1", 0);
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv);
	OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub,
	    publen);
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
	assert_int_equal(EVP_PKEY_fromdata(ctx, &m, EVP_PKEY_KEYPAIR, params),
	    1);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(priv);
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);

	return (m);
}

static void
key_check_refuses_mismatched_halves(void **state)
{
	struct jws_key	key;
	EVP_PKEY	*m, *ok;
	char		*pem, err[KILN_ERR_MAX];

	(void)state;
	m = ec_mismatched();
	pem = pem_of(m, 1);
	assert_true(jws_key_load(pem, 0, &key, err, sizeof(err)));
	assert_false(jws_key_check(&key, err, sizeof(err)));
	assert_string_equal(err, "private_key: the key's public and private "
	    "parts do not match");
	jws_key_free(&key);
	free(pem);
	EVP_PKEY_free(m);

	ok = EVP_RSA_gen(2048);
	pem = pem_of(ok, 0);
	assert_true(jws_key_load(pem, 0, &key, err, sizeof(err)));
	assert_true(jws_key_check(&key, err, sizeof(err)));
	jws_key_free(&key);
	free(pem);
	EVP_PKEY_free(ok);
}

static void
alg_names_parse_strictly(void **state)
{
	(void)state;
	assert_int_equal(jws_alg_parse("RS256"), JWS_RS256);
	assert_int_equal(jws_alg_parse("PS256"), JWS_PS256);
	assert_int_equal(jws_alg_parse("ES256"), JWS_ES256);
	assert_int_equal(jws_alg_parse("es256"), 0);
	assert_int_equal(jws_alg_parse("HS256"), 0);
	assert_int_equal(jws_alg_parse("none"), 0);
	assert_int_equal(jws_alg_parse(NULL), 0);
	assert_string_equal(jws_alg_name(9), "unknown");
}

static void
b64url_has_no_padding_and_url_alphabet(void **state)
{
	char		out[16];

	(void)state;
	assert_int_equal(jws_b64url("", 0, out), 0);
	assert_int_equal(jws_b64url("f", 1, out), 2);
	assert_string_equal(out, "Zg");
	jws_b64url("fo", 2, out);
	assert_string_equal(out, "Zm8");
	jws_b64url("foo", 3, out);
	assert_string_equal(out, "Zm9v");
	jws_b64url("\xfb\xff", 2, out);
	assert_string_equal(out, "-_8");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(es256_assertion_verifies_with_raw_signature),
		cmocka_unit_test(rs256_and_ps256_assertions_verify),
		cmocka_unit_test(
		    assertion_has_given_kid_random_jti_and_optional_claims),
		cmocka_unit_test(jwk_exports_public_key_and_thumbprint_kid),
		cmocka_unit_test(jwk_of_rsa_key_has_n_and_e),
		cmocka_unit_test(generated_key_round_trips_through_pem),
		cmocka_unit_test(bad_pems_and_mismatched_keys_refused),
		cmocka_unit_test(key_check_refuses_mismatched_halves),
		cmocka_unit_test(alg_names_parse_strictly),
		cmocka_unit_test(b64url_has_no_padding_and_url_alphabet),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
