/*
 * fuzz_isotime.c: isotime_parse and isotime_epoch_parse on arbitrary text;
 * every accepted time must survive isotime_format -> isotime_parse
 * unchanged. The first 8 bytes, read as a time, are formatted as well.
 */

#include <sys/types.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln.h"
#include "fuzz.h"

/* 9999-12-31T23:59:59.999Z, as in isotime.c. */
#define MAX_MS		253402300799999LL

static void
round_trip(int64_t ms)
{
	int64_t		back;
	char		buf[ISOTIME_LEN];

	FUZZ_CHECK(ms >= 0 && ms <= MAX_MS);

	isotime_format(ms, buf, sizeof(buf));
	FUZZ_CHECK(strlen(buf) == 24 && buf[10] == 'T' && buf[23] == 'Z');

	back = -1;
	FUZZ_CHECK(isotime_parse(buf, &back));
	FUZZ_CHECK(back == ms);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;

	return (0);
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	int64_t		ms, raw;
	char		*s, buf[ISOTIME_LEN];

	s = fuzz_cstr(data, size);

	ms = -1;
	if (isotime_parse(s, &ms))
		round_trip(ms);
	else
		FUZZ_CHECK(ms == -1);

	ms = -1;
	if (isotime_epoch_parse(s, &ms))
		round_trip(ms);
	else
		FUZZ_CHECK(ms == -1);

	free(s);

	if (size >= sizeof(raw)) {
		memcpy(&raw, data, sizeof(raw));
		/* Any value at all must format without trouble. */
		isotime_format(raw, buf, sizeof(buf));
		FUZZ_CHECK(strlen(buf) < sizeof(buf));
		/* Every representable time comes back unchanged. */
		if (raw < 0)
			raw = -(raw + 1);
		round_trip(raw % (MAX_MS + 1));
	}

	return (0);
}
