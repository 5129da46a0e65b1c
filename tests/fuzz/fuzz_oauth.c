/*
 * fuzz_oauth.c: upstream answers. Input: one control byte, then
 * "token_path\nexpires_at_path\nbody" (an empty path stays unset; with no
 * newline the rest is all body). The body goes through oauth_parse for
 * each of the four kinds, through jwt_exp_unverified, and through
 * json_parse + json_path_get, which is compared with a walk made
 * of yajl_tree_get calls.
 */

#include <sys/types.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln.h"
#include "fuzz.h"

#define SENT		1755624343000LL		/* 2025-08-19T17:25:43Z */
#define EPOCH_MAX_MS	253402300799000LL
#define LIFETIME_MAX	31536000LL
#define TOKEN_MAX	16384

static const int64_t	lifetimes[4] = { 900, 0, LIFETIME_MAX, -5 };

static void
check_answer(const struct oauth_answer *ans, int64_t sent)
{
	size_t		i, len;

	FUZZ_CHECK(ans->token != NULL);
	len = strlen(ans->token);
	FUZZ_CHECK(len > 0 && len <= TOKEN_MAX);
	for (i = 0; i < len; i++)
		FUZZ_CHECK(ans->token[i] > 0x20 && ans->token[i] < 0x7f);

	len = strnlen(ans->token_type, sizeof(ans->token_type));
	FUZZ_CHECK(len > 0 && len < sizeof(ans->token_type));
	FUZZ_CHECK(fuzz_printable(ans->token_type));
	FUZZ_CHECK(strchr(ans->token_type, ' ') == NULL);

	if (ans->refresh_token != NULL) {
		len = strlen(ans->refresh_token);
		FUZZ_CHECK(len > 0 && len <= TOKEN_MAX);
	}

	FUZZ_CHECK(ans->expiry_from != NULL);
	FUZZ_CHECK(ans->expires_ms > sent);
	if (!strcmp(ans->expiry_from, "expires_in") ||
	    !strcmp(ans->expiry_from, "fallback"))
		FUZZ_CHECK(ans->expires_ms - sent <= LIFETIME_MAX * 1000);
	else if (!strcmp(ans->expiry_from, "expires_at") ||
	    !strcmp(ans->expiry_from, "jwt"))
		FUZZ_CHECK(ans->expires_ms <= EPOCH_MAX_MS + 999);
	else
		FUZZ_CHECK(!"unknown expiry_from");
}

/* What json_path_get should find: yajl_tree_get, one segment a call. */
static yajl_val
path_reference(yajl_val root, const char *path)
{
	const char	*seg[2];
	const char	*p, *dot;
	char		*part;
	yajl_val	v;
	size_t		len;

	if (root == NULL || *path == '\0')
		return (NULL);

	v = root;
	seg[1] = NULL;
	for (p = path;; p = dot + 1) {
		dot = strchr(p, '.');
		len = (dot != NULL) ? (size_t)(dot - p) : strlen(p);
		if (len == 0)
			return (NULL);
		if ((part = strndup(p, len)) == NULL)
			abort();
		seg[0] = part;
		v = yajl_tree_get(v, seg, yajl_t_any);
		free(part);
		if (v == NULL || dot == NULL)
			return (v);
		/* yajl_tree_get with an object as the next start. */
		if (!YAJL_IS_OBJECT(v))
			return (NULL);
	}
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	u_int8_t	key[SEAL_KEY_LEN];

	(void)argc;
	(void)argv;

	/* oauth.c links seal.c (wiping); give it a ring all the same. */
	memset(key, 0x5a, sizeof(key));
	if (!seal_key_add(key, sizeof(key)))
		abort();

	return (0);
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct oauth_answer	ans, first;
	struct source		src;
	const unsigned char	*p, *end, *nl;
	char			*tp, *eap, *body, *cstr;
	size_t			blen;
	int64_t			sent, ms;
	int			ctl, kind, any, ok[KIND_JSON_LOGIN + 1];
	yajl_val		root;
	char			err[KILN_ERR_MAX];

	if (size < 1)
		return (0);

	ctl = data[0];
	p = data + 1;
	end = data + size;
	tp = eap = NULL;

	if ((nl = memchr(p, '\n', end - p)) != NULL) {
		tp = fuzz_cstr(p, nl - p);
		p = nl + 1;
		if ((nl = memchr(p, '\n', end - p)) != NULL) {
			eap = fuzz_cstr(p, nl - p);
			p = nl + 1;
		}
	}

	/* The body is exactly its bytes: no NUL after it for overreads. */
	blen = end - p;
	if ((body = malloc(blen ? blen : 1)) == NULL)
		abort();
	memcpy(body, p, blen);

	sent = (ctl & 0x08) ? 0 : SENT;

	memset(&src, 0, sizeof(src));
	(void)snprintf(src.name, sizeof(src.name), "fuzz");
	src.token_url = "https://idp.example/token";
	src.auth_method = AUTH_SECRET_POST;
	src.refresh_buffer = -1;
	src.fallback_lifetime = lifetimes[ctl & 0x03];
	src.token_path = (tp != NULL && tp[0] != '\0') ? tp : NULL;
	src.expires_at_path = (eap != NULL && eap[0] != '\0') ? eap : NULL;
	src.expires_in_path = (ctl & 0x04) ? src.expires_at_path :
	    "expires_in";

	/*
	 * The kinds differ only in how strictly a rotated refresh_token is
	 * read: refresh_token may refuse what the others take, not more.
	 */
	memset(&first, 0, sizeof(first));
	any = 0;
	for (kind = KIND_CLIENT_CREDENTIALS; kind <= KIND_JSON_LOGIN;
	    kind++) {
		src.kind = kind;
		memset(err, 'x', sizeof(err));
		ok[kind] = oauth_parse(&src, body, blen, sent, &ans, err,
		    sizeof(err));
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		if (!ok[kind]) {
			FUZZ_CHECK(err[0] != '\0');
			FUZZ_CHECK(ans.token == NULL &&
			    ans.refresh_token == NULL);
			if (src.token_path == NULL ||
			    fuzz_printable(src.token_path))
				FUZZ_CHECK(fuzz_printable(err));
			continue;
		}
		FUZZ_CHECK(err[0] == '\0');
		check_answer(&ans, sent);
		if (!any) {
			first = ans;
			any = 1;
			continue;
		}
		FUZZ_CHECK(!strcmp(first.token, ans.token));
		FUZZ_CHECK(!strcmp(first.token_type, ans.token_type));
		FUZZ_CHECK(first.expires_ms == ans.expires_ms);
		FUZZ_CHECK((first.refresh_token == NULL) ==
		    (ans.refresh_token == NULL));
		oauth_answer_free(&ans);
	}
	if (any)
		oauth_answer_free(&first);
	FUZZ_CHECK(ok[KIND_CLIENT_CREDENTIALS] == ok[KIND_PASSWORD]);
	FUZZ_CHECK(ok[KIND_CLIENT_CREDENTIALS] == ok[KIND_JSON_LOGIN]);
	FUZZ_CHECK(!ok[KIND_REFRESH_TOKEN] || ok[KIND_CLIENT_CREDENTIALS]);

	/* The body as a token, for the unverified exp claim. */
	cstr = fuzz_cstr(p, blen);
	ms = -1;
	if (jwt_exp_unverified(cstr, &ms))
		FUZZ_CHECK(ms > 0 && ms <= EPOCH_MAX_MS && ms % 1000 == 0);
	else
		FUZZ_CHECK(ms == -1);
	free(cstr);

	if ((root = json_parse(body, blen)) != NULL) {
		FUZZ_CHECK(fuzz_tree_depth(root) <= FUZZ_DEPTH_MAX);
		FUZZ_CHECK(fuzz_json_strings_ok(body, blen));
		if (tp != NULL)
			FUZZ_CHECK(json_path_get(root, tp) ==
			    path_reference(root, tp));
		if (eap != NULL)
			FUZZ_CHECK(json_path_get(root, eap) ==
			    path_reference(root, eap));
		FUZZ_CHECK(json_path_get(root, "access_token") ==
		    path_reference(root, "access_token"));
		yajl_tree_free(root);
	}

	free(body);
	free(tp);
	free(eap);

	return (0);
}
