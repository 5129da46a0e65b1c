/*
 * seal.c: secrets at rest. AES-256-GCM under a small key ring; the first
 * key seals, every key opens, so a master key can be rotated. The
 * additional data binds each blob to its source name and field.
 *
 * Sealed text: v1.<key id, 8 hex>.<base64(nonce || ciphertext || tag)>
 */

#include <sys/types.h>

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "kiln.h"

#define SEAL_PREFIX		"v1."
#define SEAL_PREFIX_BOUND	"v2."
#define SEAL_PREFIX_LEN		3
#define SEAL_ID_LEN		8
#define SEAL_NONCE_LEN		12
#define SEAL_TAG_LEN		16
#define SEAL_ID_LABEL		"kiln-key-id:"
#define SEAL_AAD_MAX		512
/* Far above any secret; keeps EVP's int lengths safe. */
#define SEAL_PLAIN_MAX		(64 * 1024 * 1024)

struct seal_key {
	u_int8_t	key[SEAL_KEY_LEN];
	char		id[SEAL_ID_LEN + 1];
};

static struct {
	struct seal_key	keys[SEAL_KEYS_MAX];
	size_t		count;
} ring;

static int	seal_aad(const char *, const char *, char *, size_t);
static int	seal_aad_bound(const char *, const char *, const char *,
		    char *, size_t);
static int	seal_text(const char *, const char *, const void *, size_t,
		    char **);
static int	open_text(const char *, const char *, char **, size_t *);
static int	seal_crypt(int, const struct seal_key *, const u_int8_t *,
		    const char *, const u_int8_t *, size_t, u_int8_t *,
		    u_int8_t *);
static void	hex(const u_int8_t *, size_t, char *);

int
seal_key_add(const u_int8_t *key, size_t len)
{
	struct seal_key		*k;
	size_t			i;
	u_int8_t		md[EVP_MAX_MD_SIZE];
	u_int8_t		buf[sizeof(SEAL_ID_LABEL) - 1 + SEAL_KEY_LEN];
	char			id[SEAL_ID_LEN + 1];

	if (key == NULL || len != SEAL_KEY_LEN)
		return (KORE_RESULT_ERROR);

	memcpy(buf, SEAL_ID_LABEL, sizeof(SEAL_ID_LABEL) - 1);
	memcpy(buf + sizeof(SEAL_ID_LABEL) - 1, key, len);
	if (!EVP_Digest(buf, sizeof(buf), md, NULL, EVP_sha256(), NULL)) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return (KORE_RESULT_ERROR);
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	hex(md, SEAL_ID_LEN / 2, id);

	/* The same key twice is harmless; two keys with one id are not. */
	for (i = 0; i < ring.count; i++) {
		if (strcmp(ring.keys[i].id, id) != 0)
			continue;
		if (CRYPTO_memcmp(ring.keys[i].key, key, len) == 0)
			return (KORE_RESULT_OK);
		return (KORE_RESULT_ERROR);
	}

	if (ring.count == SEAL_KEYS_MAX)
		return (KORE_RESULT_ERROR);

	k = &ring.keys[ring.count++];
	memcpy(k->key, key, len);
	memcpy(k->id, id, sizeof(k->id));

	return (KORE_RESULT_OK);
}

void
seal_keys_clear(void)
{
	OPENSSL_cleanse(&ring, sizeof(ring));
	ring.count = 0;
}

int
seal_seal(const char *name, const char *field, const void *plain, size_t len,
    char **out)
{
	char		aad[SEAL_AAD_MAX];

	if (!seal_aad(name, field, aad, sizeof(aad)))
		return (KORE_RESULT_ERROR);

	return (seal_text(SEAL_PREFIX, aad, plain, len, out));
}

int
seal_open(const char *name, const char *field, const char *sealed,
    char **plain, size_t *len)
{
	char		aad[SEAL_AAD_MAX];

	if (sealed == NULL || strncmp(sealed, SEAL_PREFIX, SEAL_PREFIX_LEN))
		return (KORE_RESULT_ERROR);
	if (!seal_aad(name, field, aad, sizeof(aad)))
		return (KORE_RESULT_ERROR);

	return (open_text(sealed, aad, plain, len));
}

/* A secret, bound to the origin (source_origin) it may be sent to. */
int
seal_seal_for(const char *name, const char *field, const char *origin,
    const void *plain, size_t len, char **out)
{
	char		aad[SEAL_AAD_MAX];

	if (!seal_aad_bound(name, field, origin, aad, sizeof(aad)))
		return (KORE_RESULT_ERROR);

	return (seal_text(SEAL_PREFIX_BOUND, aad, plain, len, out));
}

/*
 * Open a secret for origin. A v1 blob (sealed before secrets were bound
 * to an origin) still opens, by name and field only, until the re-seal
 * pass has bound it (seal_current).
 */
int
seal_open_for(const char *name, const char *field, const char *origin,
    const char *sealed, char **plain, size_t *len)
{
	char		aad[SEAL_AAD_MAX];

	if (sealed == NULL)
		return (KORE_RESULT_ERROR);
	if (!strncmp(sealed, SEAL_PREFIX, SEAL_PREFIX_LEN))
		return (seal_open(name, field, sealed, plain, len));
	if (strncmp(sealed, SEAL_PREFIX_BOUND, SEAL_PREFIX_LEN))
		return (KORE_RESULT_ERROR);
	if (!seal_aad_bound(name, field, origin, aad, sizeof(aad)))
		return (KORE_RESULT_ERROR);

	return (open_text(sealed, aad, plain, len));
}

/*
 * Whether sealed needs no re-sealing: under the current key and, for a
 * secret (bound), in the origin-bound format.
 */
int
seal_current(const char *sealed, int bound)
{
	if (ring.count == 0 || sealed == NULL)
		return (0);
	if (strncmp(sealed, bound ? SEAL_PREFIX_BOUND : SEAL_PREFIX,
	    SEAL_PREFIX_LEN))
		return (0);

	return (!strncmp(sealed + SEAL_PREFIX_LEN, ring.keys[0].id,
	    SEAL_ID_LEN) && sealed[SEAL_PREFIX_LEN + SEAL_ID_LEN] == '.');
}

/* The id of the key that seals, or NULL without keys. */
const char *
seal_key_id(void)
{
	if (ring.count == 0)
		return (NULL);

	return (ring.keys[0].id);
}

void
seal_fingerprint(const void *data, size_t len, char *out)
{
	u_int8_t	md[EVP_MAX_MD_SIZE];

	if (!EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL)) {
		memset(out, '0', KILN_FPR_LEN);
		out[KILN_FPR_LEN] = '\0';
		return;
	}

	hex(md, KILN_FPR_LEN / 2, out);
}

/*
 * A keyed digest (HMAC-SHA256 under a key derived from the current master
 * key) as 64 hex characters: lets kiln tell whether settings that hold
 * secrets changed without storing anything that could be brute-forced.
 */
void
seal_mac(const void *data, size_t len, char *out)
{
	u_int8_t	key[32], mac[32];
	unsigned int	klen, mlen;

	if (ring.count == 0)
		abort();

	klen = sizeof(key);
	mlen = sizeof(mac);
	if (HMAC(EVP_sha256(), ring.keys[0].key, SEAL_KEY_LEN,
	    (const unsigned char *)"kiln-config-digest", 18, key,
	    &klen) == NULL ||
	    HMAC(EVP_sha256(), key, klen, data, len, mac, &mlen) == NULL)
		abort();

	hex(mac, sizeof(mac), out);
	OPENSSL_cleanse(key, sizeof(key));
}

/* The SHA-256 of data as 64 lowercase hex characters and a NUL. */
int
seal_sha256_hex(const void *data, size_t len, char *out)
{
	u_int8_t	md[32];

	if (!EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL))
		return (KORE_RESULT_ERROR);

	hex(md, sizeof(md), out);

	return (KORE_RESULT_OK);
}

void
seal_wipe(char *s)
{
	if (s == NULL)
		return;

	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

/* For KILN_MASTER_KEY: whitespace around the text (a file's newline) is ok. */
int
seal_b64_decode(const char *text, u_int8_t **out, size_t *outlen)
{
	size_t		len;

	if (text == NULL)
		return (KORE_RESULT_ERROR);

	while (*text == ' ' || *text == '\t' || *text == '\r' || *text == '\n')
		text++;

	len = strlen(text);
	while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t' ||
	    text[len - 1] == '\r' || text[len - 1] == '\n'))
		len--;

	return (json_b64_decode(text, len, JSON_B64_STD, out, outlen));
}

static int
seal_aad(const char *name, const char *field, char *aad, size_t len)
{
	int		n;

	if (name == NULL || field == NULL)
		return (KORE_RESULT_ERROR);

	n = snprintf(aad, len, "kiln:%s:%s", name, field);
	if (n < 0 || (size_t)n >= len)
		return (KORE_RESULT_ERROR);

	return (KORE_RESULT_OK);
}

static int
seal_aad_bound(const char *name, const char *field, const char *origin,
    char *aad, size_t len)
{
	int		n;

	if (name == NULL || field == NULL || origin == NULL)
		return (KORE_RESULT_ERROR);

	n = snprintf(aad, len, "kiln:v2:%s:%s:%s", name, field, origin);
	if (n < 0 || (size_t)n >= len)
		return (KORE_RESULT_ERROR);

	return (KORE_RESULT_OK);
}

static int
seal_text(const char *prefix, const char *aad, const void *plain,
    size_t len, char **out)
{
	size_t		rawlen, b64len;
	int		ret;
	u_int8_t	*raw;
	char		*text;

	ret = KORE_RESULT_ERROR;
	raw = NULL;
	text = NULL;

	if (ring.count == 0 || len > SEAL_PLAIN_MAX ||
	    (plain == NULL && len > 0))
		return (KORE_RESULT_ERROR);

	rawlen = SEAL_NONCE_LEN + len + SEAL_TAG_LEN;
	b64len = 4 * ((rawlen + 2) / 3);

	if ((raw = malloc(rawlen)) == NULL)
		goto cleanup;
	if ((text = malloc(SEAL_PREFIX_LEN + SEAL_ID_LEN + 1 +
	    b64len + 1)) == NULL)
		goto cleanup;

	if (RAND_bytes(raw, SEAL_NONCE_LEN) != 1)
		goto cleanup;

	if (!seal_crypt(1, &ring.keys[0], raw, aad, plain, len,
	    raw + SEAL_NONCE_LEN, raw + SEAL_NONCE_LEN + len))
		goto cleanup;

	memcpy(text, prefix, SEAL_PREFIX_LEN);
	memcpy(text + SEAL_PREFIX_LEN, ring.keys[0].id, SEAL_ID_LEN);
	text[SEAL_PREFIX_LEN + SEAL_ID_LEN] = '.';
	(void)EVP_EncodeBlock((unsigned char *)text + SEAL_PREFIX_LEN +
	    SEAL_ID_LEN + 1, raw, (int)rawlen);

	*out = text;
	text = NULL;
	ret = KORE_RESULT_OK;

cleanup:
	free(raw);
	free(text);

	return (ret);
}

/* Open sealed (its prefix checked by the caller) with aad. */
static int
open_text(const char *sealed, const char *aad, char **plain, size_t *len)
{
	const struct seal_key	*k;
	size_t			i, rawlen, ctlen;
	int			ret;
	u_int8_t		*raw;
	char			*text;

	ret = KORE_RESULT_ERROR;
	raw = NULL;
	text = NULL;

	if (strlen(sealed) < SEAL_PREFIX_LEN + SEAL_ID_LEN + 1 ||
	    sealed[SEAL_PREFIX_LEN + SEAL_ID_LEN] != '.')
		return (KORE_RESULT_ERROR);

	k = NULL;
	for (i = 0; i < ring.count; i++) {
		if (!strncmp(ring.keys[i].id, sealed + SEAL_PREFIX_LEN,
		    SEAL_ID_LEN)) {
			k = &ring.keys[i];
			break;
		}
	}
	if (k == NULL)
		return (KORE_RESULT_ERROR);

	sealed += SEAL_PREFIX_LEN + SEAL_ID_LEN + 1;
	if (!json_b64_decode(sealed, strlen(sealed), JSON_B64_STD, &raw,
	    &rawlen))
		return (KORE_RESULT_ERROR);
	if (rawlen < SEAL_NONCE_LEN + SEAL_TAG_LEN ||
	    rawlen - SEAL_NONCE_LEN - SEAL_TAG_LEN > SEAL_PLAIN_MAX)
		goto cleanup;

	ctlen = rawlen - SEAL_NONCE_LEN - SEAL_TAG_LEN;
	if ((text = malloc(ctlen + 1)) == NULL)
		goto cleanup;

	if (!seal_crypt(0, k, raw, aad, raw + SEAL_NONCE_LEN, ctlen,
	    (u_int8_t *)text, raw + SEAL_NONCE_LEN + ctlen)) {
		OPENSSL_cleanse(text, ctlen + 1);
		goto cleanup;
	}

	text[ctlen] = '\0';
	*plain = text;
	*len = ctlen;
	text = NULL;
	ret = KORE_RESULT_OK;

cleanup:
	free(raw);
	free(text);

	return (ret);
}

/*
 * One AES-256-GCM pass. Sealing writes the tag, opening checks it;
 * a failed check leaves the output to be wiped by the caller.
 */
static int
seal_crypt(int enc, const struct seal_key *k, const u_int8_t *nonce,
    const char *aad, const u_int8_t *in, size_t len, u_int8_t *out,
    u_int8_t *tag)
{
	EVP_CIPHER_CTX		*ctx;
	int			ret, outl;

	ret = KORE_RESULT_ERROR;

	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		return (KORE_RESULT_ERROR);

	if (!EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc))
		goto cleanup;
	if (!EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN,
	    SEAL_NONCE_LEN, NULL))
		goto cleanup;
	if (!EVP_CipherInit_ex(ctx, NULL, NULL, k->key, nonce, enc))
		goto cleanup;
	if (!EVP_CipherUpdate(ctx, NULL, &outl, (const u_int8_t *)aad,
	    (int)strlen(aad)))
		goto cleanup;
	if (len > 0 && !EVP_CipherUpdate(ctx, out, &outl, in, (int)len))
		goto cleanup;

	if (!enc && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG,
	    SEAL_TAG_LEN, tag))
		goto cleanup;
	if (EVP_CipherFinal_ex(ctx, out + len, &outl) <= 0)
		goto cleanup;
	if (enc && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG,
	    SEAL_TAG_LEN, tag))
		goto cleanup;

	ret = KORE_RESULT_OK;

cleanup:
	EVP_CIPHER_CTX_free(ctx);

	return (ret);
}

static void
hex(const u_int8_t *in, size_t len, char *out)
{
	static const char	digits[] = "0123456789abcdef";
	size_t			i;

	for (i = 0; i < len; i++) {
		out[i * 2] = digits[in[i] >> 4];
		out[i * 2 + 1] = digits[in[i] & 0x0f];
	}

	out[len * 2] = '\0';
}
