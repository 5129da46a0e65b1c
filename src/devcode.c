/*
 * devcode.c (pure): the device authorization grant (RFC 8628). What the
 * device authorization endpoint answers (3.2), checked before anything
 * of it is shown to a person, and what an error of the token endpoint
 * means for the polling (3.5). The device code is a credential: it is
 * wiped when freed and never appears in an error.
 */

#include <sys/types.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "kiln.h"

#define DEVCODE_BODY_MAX	65536
#define DEVCODE_CODE_MAX	4096
#define DEVCODE_URI_MAX		2048

static int	devcode_text(yajl_val, size_t, int);
static int	devcode_uri(yajl_val);
static int	devcode_seconds(yajl_val, int64_t, int, int64_t *);
static void	devcode_wipe_tree(yajl_val);

/*
 * The answer of the device authorization endpoint into ans (3.2):
 * device_code, user_code, verification_uri and expires_in are required;
 * interval defaults to 5 s. The URIs are shown to a person and opened
 * by browsers: http(s) only, printable, nothing else.
 */
int
devcode_parse(const char *body, size_t len, struct devcode_answer *ans,
    char *err, size_t errlen)
{
	yajl_val	root, v;
	int		ret;

	memset(ans, 0, sizeof(*ans));
	ret = KORE_RESULT_ERROR;
	root = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';

	if (body == NULL || len == 0 || len > DEVCODE_BODY_MAX ||
	    !json_depth_ok(body, len) ||
	    (root = json_parse(body, len)) == NULL || !YAJL_IS_OBJECT(root)) {
		json_seterr(err, errlen, "answer is not a JSON object");
		goto cleanup;
	}

	v = json_path_get(root, "device_code");
	if (!devcode_text(v, DEVCODE_CODE_MAX, 1)) {
		v = json_path_get(root, "error");
		if (devcode_text(v, DEVCODE_ERROR_MAX, 0))
			json_seterr(err, errlen, "upstream error: %s",
			    v->u.string);
		else
			json_seterr(err, errlen, "device_code: missing or "
			    "not printable");
		goto cleanup;
	}
	if ((ans->device_code = strdup(v->u.string)) == NULL)
		goto nomem;

	v = json_path_get(root, "user_code");
	if (!devcode_text(v, DEVCODE_USER_CODE_MAX, 1)) {
		json_seterr(err, errlen, "user_code: missing or not printable");
		goto cleanup;
	}
	(void)snprintf(ans->user_code, sizeof(ans->user_code), "%s",
	    v->u.string);

	v = json_path_get(root, "verification_uri");
	if (!devcode_uri(v)) {
		json_seterr(err, errlen, "verification_uri: missing or not an "
		    "http(s) URI");
		goto cleanup;
	}
	if ((ans->verification_uri = strdup(v->u.string)) == NULL)
		goto nomem;

	v = json_path_get(root, "verification_uri_complete");
	if (v != NULL && !YAJL_IS_NULL(v)) {
		if (!devcode_uri(v)) {
			json_seterr(err, errlen, "verification_uri_complete: "
			    "not an http(s) URI");
			goto cleanup;
		}
		if ((ans->verification_uri_complete =
		    strdup(v->u.string)) == NULL)
			goto nomem;
	}

	if (!devcode_seconds(json_path_get(root, "expires_in"), 0, 1,
	    &ans->expires_in)) {
		json_seterr(err, errlen, "expires_in: missing or not seconds");
		goto cleanup;
	}
	if (ans->expires_in > DEVCODE_LIFETIME_MAX)
		ans->expires_in = DEVCODE_LIFETIME_MAX;

	if (!devcode_seconds(json_path_get(root, "interval"),
	    DEVCODE_INTERVAL_DEFAULT, 0, &ans->interval)) {
		json_seterr(err, errlen, "interval: not seconds");
		goto cleanup;
	}
	if (ans->interval == 0)
		ans->interval = DEVCODE_INTERVAL_DEFAULT;
	if (ans->interval > DEVCODE_INTERVAL_MAX) {
		json_seterr(err, errlen, "interval: more than %d s",
		    DEVCODE_INTERVAL_MAX);
		goto cleanup;
	}

	ret = KORE_RESULT_OK;
	goto cleanup;

nomem:
	json_seterr(err, errlen, "answer: out of memory");

cleanup:
	if (root != NULL) {
		devcode_wipe_tree(root);
		yajl_tree_free(root);
	}
	if (ret != KORE_RESULT_OK)
		devcode_answer_free(ans);

	return (ret);
}

void
devcode_answer_free(struct devcode_answer *ans)
{
	if (ans == NULL)
		return;

	seal_wipe(ans->device_code);
	free(ans->verification_uri);
	free(ans->verification_uri_complete);
	memset(ans, 0, sizeof(*ans));
}

/*
 * What an error answer of the token endpoint means while polling (3.5):
 * DEVCODE_PENDING and DEVCODE_SLOW keep the flow, DEVCODE_EXPIRED and
 * DEVCODE_DENIED end it, any other OAuth error (invalid_grant,
 * invalid_client, ...) ends it too (DEVCODE_FAILED). An answer that is
 * no OAuth error at all (a 5xx page, a timeout) is DEVCODE_TRANSIENT:
 * the poll is tried again at the interval. code gets the error code,
 * printable, for the event ("" when none).
 */
int
devcode_poll_error(const char *body, size_t len, char *code, size_t clen)
{
	static const struct {
		const char	*name;
		int		what;
	} errors[] = {
		{ "authorization_pending", DEVCODE_PENDING },
		{ "slow_down", DEVCODE_SLOW },
		{ "expired_token", DEVCODE_EXPIRED },
		{ "access_denied", DEVCODE_DENIED },
	};
	yajl_val	root, v;
	size_t		i;
	int		what;

	if (clen > 0)
		code[0] = '\0';
	if (body == NULL || len == 0 || len > DEVCODE_BODY_MAX ||
	    !json_depth_ok(body, len) || (root = json_parse(body, len)) == NULL)
		return (DEVCODE_TRANSIENT);

	what = DEVCODE_TRANSIENT;
	v = json_path_get(root, "error");
	if (YAJL_IS_OBJECT(root) && devcode_text(v, DEVCODE_ERROR_MAX, 0)) {
		(void)snprintf(code, clen, "%s", YAJL_GET_STRING(v));
		what = DEVCODE_FAILED;
		for (i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
			if (!strcmp(errors[i].name, code))
				what = errors[i].what;
		}
	}
	yajl_tree_free(root);

	return (what);
}

/*
 * A string of 1 to max bytes: printable ASCII, with spaces only when
 * spaces is set (a device code is VSCHAR, RFC 6749 A.16; an error code
 * is NQSCHAR without the quote and backslash that would need care).
 */
static int
devcode_text(yajl_val v, size_t max, int spaces)
{
	const char	*s;
	size_t		i;

	if (!YAJL_IS_STRING(v))
		return (0);
	s = YAJL_GET_STRING(v);
	for (i = 0; s[i] != '\0'; i++) {
		if (i >= max || s[i] < 0x20 || s[i] > 0x7e)
			return (0);
		if (!spaces && (s[i] == ' ' || s[i] == '"' || s[i] == '\\'))
			return (0);
	}

	return (i > 0);
}

static int
devcode_uri(yajl_val v)
{
	const char	*s, *host;
	size_t		i;

	if (!devcode_text(v, DEVCODE_URI_MAX, 0))
		return (0);
	s = YAJL_GET_STRING(v);
	if (!strncasecmp(s, "https://", 8))
		host = s + 8;
	else if (!strncasecmp(s, "http://", 7))
		host = s + 7;
	else
		return (0);
	if (*host == '\0' || *host == '/' || *host == '?' || *host == '#')
		return (0);
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] == '<' || s[i] == '>' || s[i] == '`' ||
		    s[i] == '\'')
			return (0);
	}

	return (1);
}

/*
 * Whole seconds from 0 to DEVCODE_LIFETIME_MAX * 100, an integer or a
 * whole double; absent or null: def, unless required.
 */
static int
devcode_seconds(yajl_val v, int64_t def, int required, int64_t *out)
{
	double		d;

	if (v == NULL || YAJL_IS_NULL(v)) {
		*out = def;
		return (!required);
	}
	if (YAJL_IS_INTEGER(v)) {
		*out = YAJL_GET_INTEGER(v);
	} else if (YAJL_IS_DOUBLE(v)) {
		d = YAJL_GET_DOUBLE(v);
		if (!isfinite(d) || d != floor(d) || fabs(d) > 1e12)
			return (0);
		*out = (int64_t)d;
	} else {
		return (0);
	}

	if (*out < 0 || *out > DEVCODE_LIFETIME_MAX * 100LL)
		return (0);
	if (required && *out == 0)
		return (0);

	return (1);
}

/* The tree's copy of the device code is wiped before it is freed. */
static void
devcode_wipe_tree(yajl_val root)
{
	yajl_val	v;

	v = json_path_get(root, "device_code");
	if (YAJL_IS_STRING(v))
		OPENSSL_cleanse(v->u.string, strlen(v->u.string));
}
