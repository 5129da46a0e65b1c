/*
 * conn.c (pure): the names of connections. A source has one token per
 * subject; its token of old is the subject "default". Everywhere a token
 * is named by text (NOTIFY payloads, reload batches) a connection is
 * "source/subject" and the default one is the bare source name, so
 * every name that meant a source still means the same token.
 */

#include <sys/types.h>

#include <stdio.h>
#include <string.h>

#include "kiln.h"

int
conn_subject_valid(const char *s)
{
	size_t		n;
	char		c;

	if (s == NULL)
		return (0);
	for (n = 0; s[n] != '\0'; n++) {
		if (n >= KILN_SUBJECT_MAX)
			return (0);
		c = s[n];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '@' || c == ':' || c == '-'))
			return (0);
	}

	return (n > 0);
}

int
conn_is_default(const char *subject)
{
	return (subject == NULL || !strcmp(subject, CONN_DEFAULT));
}

/*
 * The sealed field of a connection's value: bound to its subject, so a
 * value copied to another subject's row does not open.
 */
int
conn_field(const char *field, const char *subject, char *out, size_t len)
{
	int		n;

	if (conn_is_default(subject))
		n = snprintf(out, len, "%s", field);
	else
		n = snprintf(out, len, "%s/%s", field, subject);

	return (n >= 0 && (size_t)n < len);
}

/* "name/subject" or "name": the parts, checked; subject "" is default. */
int
conn_key_split(const char *key, char *name, size_t nlen, char *subject,
    size_t slen)
{
	const char	*slash;
	size_t		n;

	if ((slash = strchr(key, '/')) == NULL) {
		if (strlen(key) >= nlen || slen == 0)
			return (0);
		(void)strcpy(name, key);
		subject[0] = '\0';
		return (source_name_valid(name));
	}

	n = (size_t)(slash - key);
	if (n >= nlen || strlen(slash + 1) >= slen)
		return (0);
	memcpy(name, key, n);
	name[n] = '\0';
	(void)strcpy(subject, slash + 1);

	return (source_name_valid(name) && conn_subject_valid(subject) &&
	    !conn_is_default(subject));
}

void
conn_key(const char *name, const char *subject, char *out, size_t len)
{
	if (conn_is_default(subject))
		(void)snprintf(out, len, "%s", name);
	else
		(void)snprintf(out, len, "%s/%s", name, subject);
}
