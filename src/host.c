/*
 * host.c: which Host header values kiln answers. A browser page on
 * another site can have its name resolve to 127.0.0.1 (DNS rebinding)
 * and then reach a loopback kiln as a "same origin" request; the Host
 * header still carries the attacker's name, so it is checked.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "kiln.h"

static int	host_port_valid(const char *);
static int	host_name_valid(const char *, size_t);

/*
 * Split a Host header value into its name (lowercased, without port,
 * an IPv6 literal keeping its brackets). Malformed values fail.
 */
int
host_split(const char *host, char *name, size_t len)
{
	const char	*end, *port;
	size_t		n, i;

	if (host[0] == '[') {
		if ((end = strchr(host, ']')) == NULL)
			return (KORE_RESULT_ERROR);
		for (i = 1; host + i < end; i++) {
			if (!isxdigit((unsigned char)host[i]) &&
			    host[i] != ':' && host[i] != '.')
				return (KORE_RESULT_ERROR);
		}
		end++;
		port = *end == ':' ? end + 1 : NULL;
		if (port == NULL && *end != '\0')
			return (KORE_RESULT_ERROR);
	} else {
		if ((end = strchr(host, ':')) == NULL)
			end = host + strlen(host);
		port = *end == ':' ? end + 1 : NULL;
	}

	if (port != NULL && !host_port_valid(port))
		return (KORE_RESULT_ERROR);
	n = end - host;
	if (n == 0 || n >= len)
		return (KORE_RESULT_ERROR);
	if (host[0] != '[' && !host_name_valid(host, n))
		return (KORE_RESULT_ERROR);

	for (i = 0; i < n; i++)
		name[i] = tolower((unsigned char)host[i]);
	name[n] = '\0';

	return (KORE_RESULT_OK);
}

/* localhost, 127.0.0.0/8 or [::1], with or without a port. */
int
host_loopback(const char *host)
{
	struct in_addr	a4;
	struct in6_addr	a6;
	size_t		n;
	char		name[HOST_NAME_MAX_LEN + 1];

	if (!host_split(host, name, sizeof(name)))
		return (0);
	if (!strcmp(name, "localhost"))
		return (1);
	if (inet_pton(AF_INET, name, &a4) == 1)
		return ((ntohl(a4.s_addr) >> 24) == 127);
	n = strlen(name);
	if (name[0] == '[' && name[n - 1] == ']' && n - 2 < INET6_ADDRSTRLEN) {
		name[n - 1] = '\0';
		if (inet_pton(AF_INET6, name + 1, &a6) == 1)
			return (IN6_IS_ADDR_LOOPBACK(&a6));
	}

	return (0);
}

/* Is the name of host one of the comma-separated list (lowercase)? */
int
host_listed(const char *host, const char *list)
{
	const char	*p, *comma;
	size_t		n;
	char		name[HOST_NAME_MAX_LEN + 1];

	if (!host_split(host, name, sizeof(name)))
		return (0);
	n = strlen(name);

	for (p = list; *p != '\0'; p = comma + 1) {
		if ((comma = strchr(p, ',')) == NULL)
			comma = p + strlen(p);
		if ((size_t)(comma - p) == n && !memcmp(p, name, n))
			return (1);
		if (*comma == '\0')
			break;
	}

	return (0);
}

/*
 * KILN_ALLOWED_HOSTS: check a comma-separated list of host names and
 * write it lowercased, without blanks, to out. Fails naming the item.
 */
int
host_list_parse(const char *list, char *out, size_t len, char *err,
    size_t errlen)
{
	const char	*p, *end;
	size_t		n, o, i;

	o = 0;
	for (p = list; *p != '\0';) {
		while (*p == ' ' || *p == ',')
			p++;
		for (end = p; *end != '\0' && *end != ',' && *end != ' ';)
			end++;
		if ((n = end - p) == 0)
			break;
		if (!host_name_valid(p, n) || n > HOST_NAME_MAX_LEN) {
			(void)snprintf(err, errlen, "'%.*s' is not a host "
			    "name", (int)(n > 64 ? 64 : n), p);
			return (KORE_RESULT_ERROR);
		}
		if (o + (o > 0) + n + 1 > len) {
			(void)snprintf(err, errlen, "list too long");
			return (KORE_RESULT_ERROR);
		}
		if (o > 0)
			out[o++] = ',';
		for (i = 0; i < n; i++)
			out[o++] = tolower((unsigned char)p[i]);
		p = end;
	}
	if (o == 0) {
		(void)snprintf(err, errlen, "no host name");
		return (KORE_RESULT_ERROR);
	}
	out[o] = '\0';

	return (KORE_RESULT_OK);
}

static int
host_port_valid(const char *port)
{
	size_t		n;

	for (n = 0; port[n] != '\0'; n++) {
		if (n >= 5 || !isdigit((unsigned char)port[n]))
			return (0);
	}

	return (n > 0);
}

/* Letters, digits, '-' and '.': a DNS name or an IPv4 address. */
static int
host_name_valid(const char *s, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++) {
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '.')
			return (0);
	}

	return (n > 0);
}
