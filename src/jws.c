/*
 * jws.c: the JWTs kiln signs for upstreams (RFC 7515, 7519, 7523): client
 * assertions (private_key_jwt) and authorization grants (jwt_bearer),
 * RS256, PS256 or ES256; private keys read from PEM or generated; public
 * keys as JWKs, their kid the RFC 7638 thumbprint. Errors name the field
 * "private_key" and never carry key bytes.
 */

#include <sys/types.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <yajl/yajl_gen.h>

#include "kiln.h"

#define JWS_RSA_MIN_BITS	2048
#define JWS_RSA_MAX_BITS	8192
#define JWS_EC_COORD		32
#define JWS_JTI_BYTES		16

static const char *algs[] = { NULL, "RS256", "PS256", "ES256" };

static int	key_check(EVP_PKEY *, int *, char *, size_t);
static int	key_thumbprint(EVP_PKEY *, char *);
static int	key_members(EVP_PKEY *, char *, size_t, char *, size_t,
		    char *, size_t);
static int	bn_b64url(EVP_PKEY *, const char *, size_t, char *, size_t);
static int	sign_raw(const struct jws_key *, const char *, size_t,
		    u_int8_t *, size_t *);
static int	ecdsa_raw(const u_int8_t *, size_t, u_int8_t *);
static int	no_passphrase(char *, int, int, void *);
static void	gen_str(yajl_gen, const char *, const char *);
static char	*gen_take(yajl_gen);

int
jws_alg_parse(const char *name)
{
	int		i;

	if (name == NULL)
		return (0);

	for (i = JWS_RS256; i <= JWS_ES256; i++) {
		if (!strcmp(algs[i], name))
			return (i);
	}

	return (0);
}

const char *
jws_alg_name(int alg)
{
	if (alg < JWS_RS256 || alg > JWS_ES256)
		return ("unknown");

	return (algs[alg]);
}

/*
 * Read a private key from PEM: PKCS#8 ("BEGIN PRIVATE KEY") or the
 * traditional "BEGIN RSA PRIVATE KEY" and "BEGIN EC PRIVATE KEY". An
 * encrypted key is refused (there is nobody to ask for a passphrase).
 * alg 0 takes the key's own: RS256 for RSA, ES256 for EC P-256.
 */
int
jws_key_load(const char *pem, int alg, struct jws_key *key, char *err,
    size_t errlen)
{
	EVP_PKEY	*pkey;
	BIO		*bio;

	memset(key, 0, sizeof(*key));
	pkey = NULL;

	if (pem == NULL || strstr(pem, "-----BEGIN ") == NULL) {
		json_seterr(err, errlen, "private_key: must be a PEM private "
		    "key (PKCS#8, RSA or EC)");
		return (KORE_RESULT_ERROR);
	}
	if (strstr(pem, "ENCRYPTED") != NULL) {
		json_seterr(err, errlen, "private_key: encrypted keys are not "
		    "supported, give the key unencrypted (it is sealed)");
		return (KORE_RESULT_ERROR);
	}

	if ((bio = BIO_new_mem_buf(pem, -1)) == NULL) {
		json_seterr(err, errlen, "private_key: out of memory");
		return (KORE_RESULT_ERROR);
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	ERR_clear_error();

	if (pkey == NULL) {
		json_seterr(err, errlen, "private_key: not a readable PEM "
		    "private key (PKCS#8, RSA or EC)");
		return (KORE_RESULT_ERROR);
	}

	if (!key_check(pkey, &alg, err, errlen) ||
	    !key_thumbprint(pkey, key->thumbprint)) {
		if (err != NULL && err[0] == '\0')
			json_seterr(err, errlen, "private_key: unusable key");
		EVP_PKEY_free(pkey);
		return (KORE_RESULT_ERROR);
	}

	key->pkey = pkey;
	key->alg = alg;

	return (KORE_RESULT_OK);
}

/* A new key for alg: EC P-256 for ES256, RSA 2048 for RS256 and PS256. */
int
jws_key_generate(int alg, struct jws_key *key, char *err, size_t errlen)
{
	EVP_PKEY	*pkey;

	memset(key, 0, sizeof(*key));

	switch (alg) {
	case JWS_ES256:
		pkey = EVP_EC_gen("P-256");
		break;
	case JWS_RS256:
	case JWS_PS256:
		pkey = EVP_RSA_gen(JWS_RSA_MIN_BITS);
		break;
	default:
		json_seterr(err, errlen, "private_key: generate must be one "
		    "of RS256, PS256, ES256");
		return (KORE_RESULT_ERROR);
	}

	if (pkey == NULL || !key_thumbprint(pkey, key->thumbprint)) {
		EVP_PKEY_free(pkey);
		ERR_clear_error();
		json_seterr(err, errlen, "private_key: key generation failed");
		return (KORE_RESULT_ERROR);
	}

	key->pkey = pkey;
	key->alg = alg;

	return (KORE_RESULT_OK);
}

/* The key as PKCS#8 PEM, malloc'd, for sealing; the caller wipes it. */
int
jws_key_pem(const struct jws_key *key, char **out)
{
	BUF_MEM		*mem;
	BIO		*bio;
	int		ret;

	*out = NULL;
	ret = KORE_RESULT_ERROR;

	if ((bio = BIO_new(BIO_s_secmem())) == NULL)
		return (KORE_RESULT_ERROR);

	if (!PEM_write_bio_PKCS8PrivateKey(bio, key->pkey, NULL, NULL, 0,
	    NULL, NULL))
		goto cleanup;

	BIO_get_mem_ptr(bio, &mem);
	if ((*out = malloc(mem->length + 1)) == NULL)
		goto cleanup;
	memcpy(*out, mem->data, mem->length);
	(*out)[mem->length] = '\0';

	ret = KORE_RESULT_OK;

cleanup:
	BIO_free(bio);
	ERR_clear_error();

	return (ret);
}

/*
 * The private and public halves belong together: a signature made with
 * the one verifies with the other (OpenSSL's own pairwise check of an
 * RSA key tests its primes, a tenth of a second).
 */
int
jws_key_check(const struct jws_key *key, char *err, size_t errlen)
{
	static const char	probe[] = "kiln: key check";
	u_int8_t		sig[JWS_RSA_MAX_BITS / 8];
	EVP_MD_CTX		*md;
	size_t			slen;
	int			ok;

	ok = 0;
	if ((md = EVP_MD_CTX_new()) == NULL)
		goto done;
	slen = sizeof(sig);
	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL,
	    key->pkey) != 1 || EVP_DigestSign(md, sig, &slen,
	    (const u_int8_t *)probe, sizeof(probe)) != 1)
		goto done;
	EVP_MD_CTX_free(md);
	if ((md = EVP_MD_CTX_new()) == NULL)
		goto done;
	ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL,
	    key->pkey) == 1 && EVP_DigestVerify(md, sig, slen,
	    (const u_int8_t *)probe, sizeof(probe)) == 1;

done:
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	if (!ok)
		json_seterr(err, errlen, "private_key: the key's public and "
		    "private parts do not match");

	return (ok);
}

void
jws_key_free(struct jws_key *key)
{
	if (key == NULL)
		return;

	EVP_PKEY_free(key->pkey);
	memset(key, 0, sizeof(*key));
}

/*
 * The public JWK of key (kty, crv/x/y or n/e, kid, alg, use) as JSON,
 * malloc'd. kid NULL: the thumbprint.
 */
int
jws_jwk(const struct jws_key *key, const char *kid, char **out)
{
	yajl_gen	g;
	char		a[1400], b[1400], crv[16];

	*out = NULL;

	if (!key_members(key->pkey, a, sizeof(a), b, sizeof(b), crv,
	    sizeof(crv)))
		return (KORE_RESULT_ERROR);

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		return (KORE_RESULT_ERROR);

	yajl_gen_map_open(g);
	if (crv[0] != '\0') {
		gen_str(g, "kty", "EC");
		gen_str(g, "crv", crv);
		gen_str(g, "x", a);
		gen_str(g, "y", b);
	} else {
		gen_str(g, "kty", "RSA");
		gen_str(g, "n", a);
		gen_str(g, "e", b);
	}
	gen_str(g, "kid", kid != NULL ? kid : key->thumbprint);
	gen_str(g, "alg", jws_alg_name(key->alg));
	gen_str(g, "use", "sig");
	yajl_gen_map_close(g);

	*out = gen_take(g);

	return (*out != NULL);
}

/*
 * header.claims.signature, base64url, malloc'd. The header has alg, typ
 * JWT and kid (the thumbprint when kid is NULL).
 */
int
jws_sign(const struct jws_key *key, const char *kid, const char *claims,
    char **out, char *err, size_t errlen)
{
	u_int8_t	sig[JWS_RSA_MAX_BITS / 8];
	size_t		hlen, clen, slen, n;
	yajl_gen	g;
	char		*header, *jwt;

	*out = NULL;
	jwt = NULL;

	if (key == NULL || key->pkey == NULL) {
		json_seterr(err, errlen, "private_key: no signing key");
		return (KORE_RESULT_ERROR);
	}

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		goto nomem;
	yajl_gen_map_open(g);
	gen_str(g, "alg", jws_alg_name(key->alg));
	gen_str(g, "typ", "JWT");
	gen_str(g, "kid", kid != NULL ? kid : key->thumbprint);
	yajl_gen_map_close(g);
	if ((header = gen_take(g)) == NULL)
		goto nomem;

	hlen = strlen(header);
	clen = strlen(claims);
	n = JWS_B64_LEN(hlen) + 1 + JWS_B64_LEN(clen) + 1 +
	    JWS_B64_LEN(sizeof(sig)) + 1;
	if ((jwt = malloc(n)) == NULL) {
		free(header);
		goto nomem;
	}

	n = jws_b64url(header, hlen, jwt);
	free(header);
	jwt[n++] = '.';
	n += jws_b64url(claims, clen, jwt + n);

	slen = sizeof(sig);
	if (!sign_raw(key, jwt, n, sig, &slen)) {
		free(jwt);
		json_seterr(err, errlen, "private_key: signing failed");
		return (KORE_RESULT_ERROR);
	}

	jwt[n++] = '.';
	(void)jws_b64url(sig, slen, jwt + n);
	*out = jwt;

	return (KORE_RESULT_OK);

nomem:
	json_seterr(err, errlen, "assertion: out of memory");
	return (KORE_RESULT_ERROR);
}

/*
 * The signed assertion of c: iss, sub, aud, a random jti, iat, exp, and
 * scope or target_audience when given.
 */
int
jws_assertion(const struct jws_key *key, const char *kid,
    const struct jws_claims *c, char **out, char *err, size_t errlen)
{
	u_int8_t	rnd[JWS_JTI_BYTES];
	yajl_gen	g;
	char		jti[JWS_B64_LEN(JWS_JTI_BYTES) + 1], *claims;
	int		ret;

	*out = NULL;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		json_seterr(err, errlen, "assertion: no randomness");
		return (KORE_RESULT_ERROR);
	}
	(void)jws_b64url(rnd, sizeof(rnd), jti);

	if ((g = yajl_gen_alloc(NULL)) == NULL) {
		json_seterr(err, errlen, "assertion: out of memory");
		return (KORE_RESULT_ERROR);
	}
	yajl_gen_map_open(g);
	gen_str(g, "iss", c->iss);
	gen_str(g, "sub", c->sub);
	gen_str(g, "aud", c->aud);
	gen_str(g, "jti", jti);
	yajl_gen_string(g, (const unsigned char *)"iat", 3);
	yajl_gen_integer(g, c->iat);
	yajl_gen_string(g, (const unsigned char *)"exp", 3);
	yajl_gen_integer(g, c->exp);
	if (c->scope != NULL)
		gen_str(g, "scope", c->scope);
	if (c->target_audience != NULL)
		gen_str(g, "target_audience", c->target_audience);
	yajl_gen_map_close(g);

	if ((claims = gen_take(g)) == NULL) {
		json_seterr(err, errlen, "assertion: claims are not valid "
		    "UTF-8");
		return (KORE_RESULT_ERROR);
	}

	ret = jws_sign(key, kid, claims, out, err, errlen);
	free(claims);

	return (ret);
}

/* Unpadded base64url of in into out (JWS_B64_LEN(len) + 1 bytes). */
size_t
jws_b64url(const void *in, size_t len, char *out)
{
	static const char	tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "abcdefghijklmnopqrstuvwxyz0123456789-_";
	const u_int8_t		*p;
	size_t			i, n;
	u_int32_t		v;

	p = in;
	n = 0;
	for (i = 0; i + 2 < len; i += 3) {
		v = (p[i] << 16) | (p[i + 1] << 8) | p[i + 2];
		out[n++] = tab[(v >> 18) & 63];
		out[n++] = tab[(v >> 12) & 63];
		out[n++] = tab[(v >> 6) & 63];
		out[n++] = tab[v & 63];
	}
	if (len - i == 1) {
		v = p[i] << 16;
		out[n++] = tab[(v >> 18) & 63];
		out[n++] = tab[(v >> 12) & 63];
	} else if (len - i == 2) {
		v = (p[i] << 16) | (p[i + 1] << 8);
		out[n++] = tab[(v >> 18) & 63];
		out[n++] = tab[(v >> 12) & 63];
		out[n++] = tab[(v >> 6) & 63];
	}
	out[n] = '\0';

	return (n);
}

/* The key fits alg (0: choose), RSA of 2048 to 8192 bits, EC P-256. */
static int
key_check(EVP_PKEY *pkey, int *alg, char *err, size_t errlen)
{
	char		group[32];
	int		bits;

	if (EVP_PKEY_is_a(pkey, "RSA")) {
		bits = EVP_PKEY_get_bits(pkey);
		if (bits < JWS_RSA_MIN_BITS || bits > JWS_RSA_MAX_BITS) {
			json_seterr(err, errlen, "private_key: an RSA key "
			    "must have 2048 to 8192 bits, this one has %d",
			    bits);
			return (KORE_RESULT_ERROR);
		}
		if (*alg == 0)
			*alg = JWS_RS256;
		if (*alg == JWS_ES256) {
			json_seterr(err, errlen, "private_key: ES256 needs an "
			    "EC P-256 key, this one is RSA");
			return (KORE_RESULT_ERROR);
		}
		return (KORE_RESULT_OK);
	}

	if (EVP_PKEY_is_a(pkey, "EC")) {
		if (!EVP_PKEY_get_group_name(pkey, group, sizeof(group),
		    NULL) || strcmp(group, "prime256v1")) {
			json_seterr(err, errlen, "private_key: an EC key must "
			    "be on the curve P-256");
			return (KORE_RESULT_ERROR);
		}
		if (*alg == 0)
			*alg = JWS_ES256;
		if (*alg != JWS_ES256) {
			json_seterr(err, errlen, "private_key: %s needs an RSA "
			    "key, this one is EC", jws_alg_name(*alg));
			return (KORE_RESULT_ERROR);
		}
		return (KORE_RESULT_OK);
	}

	json_seterr(err, errlen, "private_key: must be an RSA or EC P-256 "
	    "key");

	return (KORE_RESULT_ERROR);
}

/* RFC 7638: SHA-256 of the required members in lexical order. */
static int
key_thumbprint(EVP_PKEY *pkey, char *out)
{
	u_int8_t	md[32];
	char		a[1400], b[1400], crv[16], text[2900];
	int		n;

	if (!key_members(pkey, a, sizeof(a), b, sizeof(b), crv, sizeof(crv)))
		return (KORE_RESULT_ERROR);

	if (crv[0] != '\0')
		n = snprintf(text, sizeof(text),
		    "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
		    crv, a, b);
	else
		n = snprintf(text, sizeof(text),
		    "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", b, a);
	if (n < 0 || (size_t)n >= sizeof(text))
		return (KORE_RESULT_ERROR);

	if (!EVP_Digest(text, n, md, NULL, EVP_sha256(), NULL))
		return (KORE_RESULT_ERROR);
	(void)jws_b64url(md, sizeof(md), out);

	return (KORE_RESULT_OK);
}

/* EC: x, y and crv "P-256"; RSA: n, e and crv "". */
static int
key_members(EVP_PKEY *pkey, char *a, size_t alen, char *b, size_t blen,
    char *crv, size_t crvlen)
{
	crv[0] = '\0';

	if (EVP_PKEY_is_a(pkey, "EC")) {
		(void)snprintf(crv, crvlen, "P-256");
		return (bn_b64url(pkey, OSSL_PKEY_PARAM_EC_PUB_X,
		    JWS_EC_COORD, a, alen) && bn_b64url(pkey,
		    OSSL_PKEY_PARAM_EC_PUB_Y, JWS_EC_COORD, b, blen));
	}

	return (bn_b64url(pkey, OSSL_PKEY_PARAM_RSA_N, 0, a, alen) &&
	    bn_b64url(pkey, OSSL_PKEY_PARAM_RSA_E, 0, b, blen));
}

/* A big number of the key, base64url; pad > 0: that many bytes. */
static int
bn_b64url(EVP_PKEY *pkey, const char *param, size_t pad, char *out,
    size_t len)
{
	u_int8_t	buf[JWS_RSA_MAX_BITS / 8];
	BIGNUM		*bn;
	int		n, ret;

	bn = NULL;
	ret = KORE_RESULT_ERROR;

	if (!EVP_PKEY_get_bn_param(pkey, param, &bn))
		goto cleanup;

	n = pad > 0 ? (int)pad : BN_num_bytes(bn);
	if (n <= 0 || (size_t)n > sizeof(buf) ||
	    JWS_B64_LEN((size_t)n) + 1 > len)
		goto cleanup;
	if (BN_bn2binpad(bn, buf, n) != n)
		goto cleanup;

	(void)jws_b64url(buf, n, out);
	ret = KORE_RESULT_OK;

cleanup:
	BN_free(bn);
	ERR_clear_error();

	return (ret);
}

static int
sign_raw(const struct jws_key *key, const char *data, size_t len,
    u_int8_t *sig, size_t *slen)
{
	u_int8_t	der[JWS_RSA_MAX_BITS / 8];
	EVP_PKEY_CTX	*pctx;
	EVP_MD_CTX	*md;
	size_t		dlen;
	int		ret;

	ret = KORE_RESULT_ERROR;

	if ((md = EVP_MD_CTX_new()) == NULL)
		return (KORE_RESULT_ERROR);

	if (EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL,
	    key->pkey) != 1)
		goto cleanup;
	if (key->alg == JWS_PS256 &&
	    (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx,
	    RSA_PSS_SALTLEN_DIGEST) != 1))
		goto cleanup;

	dlen = sizeof(der);
	if (EVP_DigestSign(md, der, &dlen, (const u_int8_t *)data, len) != 1)
		goto cleanup;

	/* RFC 7518 3.4: ES256 is R || S, 32 bytes each, not DER. */
	if (key->alg == JWS_ES256) {
		if (*slen < 2 * JWS_EC_COORD || !ecdsa_raw(der, dlen, sig))
			goto cleanup;
		*slen = 2 * JWS_EC_COORD;
	} else {
		if (dlen > *slen)
			goto cleanup;
		memcpy(sig, der, dlen);
		*slen = dlen;
	}

	ret = KORE_RESULT_OK;

cleanup:
	EVP_MD_CTX_free(md);
	ERR_clear_error();

	return (ret);
}

static int
ecdsa_raw(const u_int8_t *der, size_t len, u_int8_t *out)
{
	const BIGNUM	*r, *s;
	const u_int8_t	*p;
	ECDSA_SIG	*sig;
	int		ret;

	p = der;
	if ((sig = d2i_ECDSA_SIG(NULL, &p, (long)len)) == NULL)
		return (KORE_RESULT_ERROR);

	ECDSA_SIG_get0(sig, &r, &s);
	ret = BN_bn2binpad(r, out, JWS_EC_COORD) == JWS_EC_COORD &&
	    BN_bn2binpad(s, out + JWS_EC_COORD, JWS_EC_COORD) == JWS_EC_COORD;
	ECDSA_SIG_free(sig);

	return (ret);
}

/* OpenSSL must never prompt on a terminal for a passphrase. */
static int
no_passphrase(char *buf, int size, int rw, void *arg)
{
	(void)buf;
	(void)size;
	(void)rw;
	(void)arg;

	return (-1);
}

static void
gen_str(yajl_gen g, const char *key, const char *value)
{
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	yajl_gen_string(g, (const unsigned char *)value, strlen(value));
}

/* The generated text, malloc'd; NULL when out of memory. */
static char *
gen_take(yajl_gen g)
{
	const unsigned char	*buf;
	size_t			len;
	char			*out;

	out = NULL;
	if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok &&
	    (out = malloc(len + 1)) != NULL) {
		memcpy(out, buf, len);
		out[len] = '\0';
	}
	yajl_gen_free(g);

	return (out);
}
