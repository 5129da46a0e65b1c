/*
 * fuzz_devcode.c: what a device authorization endpoint answers (RFC
 * 8628 3.2) and what a poll's error answer means (3.5), both from an
 * untrusted upstream. An accepted answer must hold only what kiln shows
 * a person as it is: printable codes, http(s) URIs without quotes or
 * angle brackets, an interval and a lifetime in their bounds. A poll's
 * error code must be printable without spaces, and its meaning one of
 * the six.
 */

#include <sys/types.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kiln.h"
#include "fuzz.h"

static void
check_text(const char *s, int spaces)
{
	FUZZ_CHECK(s != NULL && s[0] != '\0');
	for (; *s != '\0'; s++) {
		FUZZ_CHECK(*s >= 0x20 && *s <= 0x7e);
		FUZZ_CHECK(spaces || *s != ' ');
	}
}

static void
check_uri(const char *s)
{
	check_text(s, 0);
	FUZZ_CHECK(!strncasecmp(s, "https://", 8) ||
	    !strncasecmp(s, "http://", 7));
	FUZZ_CHECK(strpbrk(s, "\"'<>`\\") == NULL);
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct devcode_answer	ans;
	char			err[KILN_ERR_MAX];
	char			code[DEVCODE_ERROR_MAX + 1];
	int			what;

	if (devcode_parse((const char *)data, size, &ans, err,
	    sizeof(err))) {
		check_text(ans.device_code, 1);
		check_text(ans.user_code, 1);
		FUZZ_CHECK(strlen(ans.user_code) <= DEVCODE_USER_CODE_MAX);
		check_uri(ans.verification_uri);
		if (ans.verification_uri_complete != NULL)
			check_uri(ans.verification_uri_complete);
		FUZZ_CHECK(ans.expires_in >= 1 &&
		    ans.expires_in <= DEVCODE_LIFETIME_MAX);
		FUZZ_CHECK(ans.interval >= 1 &&
		    ans.interval <= DEVCODE_INTERVAL_MAX);
		devcode_answer_free(&ans);
	} else {
		FUZZ_CHECK(ans.device_code == NULL);
		FUZZ_CHECK(err[0] != '\0');
	}

	what = devcode_poll_error((const char *)data, size, code,
	    sizeof(code));
	FUZZ_CHECK(what >= DEVCODE_PENDING && what <= DEVCODE_TRANSIENT);
	if (what == DEVCODE_TRANSIENT)
		FUZZ_CHECK(code[0] == '\0');
	else
		check_text(code, 0);

	return (0);
}
