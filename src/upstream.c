/*
 * upstream.c: the one HTTP call of a refresh attempt, through kore_curl,
 * asynchronous, bounded by a connect and a total timeout. Whatever goes
 * wrong (refused, timeout, 5xx, HTML, broken JSON) ends as an ordinary
 * failure in at->error; the answer buffers are wiped since they hold the
 * token and the request body holds secrets.
 *
 * A token request never reaches a link-local or cloud metadata address
 * unless KILN_UPSTREAM_ALLOW lists it: the check is on the address each
 * socket is opened for, after DNS, so no name or spelling of an address
 * gets around it. Loopback stays allowed.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

#define UPSTREAM_REUSE_IDLE_S	2L	/* longest idle connection reused */

/*
 * Where no token request goes: "this host" (connecting to 0.0.0.0 or ::
 * reaches the machine itself), link-local (169.254/16 holds the metadata
 * server of AWS, GCP, Azure and others), Alibaba's 100.100.100.200,
 * Azure's WireServer, and the IPv6 metadata servers of AWS and GCP.
 */
static const struct cidr upstream_refused[] = {
	{ AF_INET, { 0 }, 8 },
	{ AF_INET, { 169, 254 }, 16 },
	{ AF_INET, { 100, 100, 100, 200 }, 32 },
	{ AF_INET, { 168, 63, 129, 16 }, 32 },
	{ AF_INET6, { 0 }, 128 },
	{ AF_INET6, { 0xfe, 0x80 }, 10 },
	{ AF_INET6, { 0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0,
	    0, 0, 0x02, 0x54 }, 128 },
	{ AF_INET6, { 0xfd, 0x20, 0x00, 0xce, 0, 0, 0, 0, 0, 0, 0, 0,
	    0, 0, 0x02, 0x54 }, 128 },
};

/* IPv6 prefixes that carry an IPv4 address: mapped, NAT64. */
static const u_int8_t	upstream_v4_in_v6[][12] = {
	{ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff },
	{ 0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0 },
};

static void	upstream_cb(struct kore_curl *, void *);
static int	upstream_no_resend(void *, curl_off_t, int);
static void	upstream_tls(CURL *, const struct source *);
static void	upstream_blob(CURL *, CURLoption, const char *);
static void	upstream_answer(struct attempt *);
static void	upstream_wipe(struct kore_buf *);
static void	upstream_span(struct attempt *);
static curl_socket_t	upstream_open_socket(void *, curlsocktype,
			    struct curl_sockaddr *);
static int	upstream_addr_allowed(int, const u_int8_t *, char *,
		    size_t);
static int	upstream_listed(const struct cidr *, size_t, int,
		    const u_int8_t *);

void
upstream_send(struct attempt *at, void (*done)(struct attempt *))
{
	CURL		*h;

	at->done = done;
	at->sent_ms = isotime_now();

	if (!kore_curl_init(&at->curl, at->url != NULL ? at->url :
	    at->src.token_url, KORE_CURL_ASYNC)) {
		(void)snprintf(at->error, sizeof(at->error),
		    "upstream: %.200s", at->curl.errbuf);
		done(at);
		return;
	}

	kore_curl_http_setup(&at->curl, HTTP_METHOD_POST, at->oreq.body,
	    at->oreq.len);
	kore_curl_http_set_header(&at->curl, "Content-Type",
	    at->oreq.content_type);
	kore_curl_http_set_header(&at->curl, "Accept", "application/json");
	if (at->oreq.authorization != NULL) {
		kore_curl_http_set_header(&at->curl, "Authorization",
		    at->oreq.authorization);
	}
	/* A traced call names its own CLIENT span as the parent. */
	if (at->otel.sampled) {
		otel_child(&at->otel_call, &at->otel);
		otel_traceparent(&at->otel_call, at->traceparent);
	}
	if (at->traceparent[0] != '\0') {
		kore_curl_http_set_header(&at->curl, "traceparent",
		    at->traceparent);
	}

	h = at->curl.handle;
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)kiln_config.connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
	    (long)kiln_config.upstream_timeout_ms);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	upstream_guard(h, at->addr_refused);
	upstream_tls(h, &at->src);

	/*
	 * A token request is never sent twice by curl: when a kept-alive
	 * connection ends without an answer, curl would resend the request
	 * on a new one, but the server may have used a rotating refresh
	 * token already; the attempt fails, with its event, and the policy
	 * retries. Connections idle longer than servers commonly keep them
	 * open (node: 5 s) are not reused, so that race stays rare.
	 */
	curl_easy_setopt(h, CURLOPT_MAXAGE_CONN, UPSTREAM_REUSE_IDLE_S);
	if (at->curl.http.tosend != NULL) {
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, upstream_no_resend);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, at);
	}

	kore_curl_bind_callback(&at->curl, upstream_cb, at);
	kore_curl_run(&at->curl);
}

/*
 * A private CA for this upstream, and mutual TLS (RFC 8705):
 * certificate, key and CA go to curl as blobs
 * that point into the attempt's source, which outlives the handle; the
 * key is never written to a file. Curl matches reused connections on
 * these blobs, so no other source's connection carries this identity.
 */
static void
upstream_tls(CURL *h, const struct source *src)
{
	if (src->tls_ca != NULL)
		upstream_blob(h, CURLOPT_CAINFO_BLOB, src->tls_ca);
	if (!mtls_method(src->auth_method))
		return;

	curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
	upstream_blob(h, CURLOPT_SSLCERT_BLOB, src->tls_client_cert);
	curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
	upstream_blob(h, CURLOPT_SSLKEY_BLOB, src->tls_client_key);
}

static void
upstream_blob(CURL *h, CURLoption opt, const char *pem)
{
	struct curl_blob	blob;

	if (pem == NULL)
		return;

	blob.data = (void *)(uintptr_t)pem;
	blob.len = strlen(pem);
	blob.flags = CURL_BLOB_NOCOPY;
	curl_easy_setopt(h, opt, &blob);
}

static int
upstream_no_resend(void *arg, curl_off_t offset, int origin)
{
	struct attempt	*at = arg;

	at->resend_refused = 1;

	return (CURL_SEEKFUNC_CANTSEEK);
}

static void
upstream_cb(struct kore_curl *c, void *arg)
{
	struct attempt	*at = arg;

	at->duration_ms = isotime_now() - at->started_ms;

	if (!kore_curl_success(c) && at->addr_refused[0] != '\0') {
		(void)snprintf(at->error, sizeof(at->error), "upstream: "
		    "address %s refused: link-local or cloud metadata "
		    "(KILN_UPSTREAM_ALLOW lists exceptions); nothing sent",
		    at->addr_refused);
	} else if (!kore_curl_success(c) && at->resend_refused) {
		(void)snprintf(at->error, sizeof(at->error), "upstream: "
		    "connection closed without an answer (not resent)");
	} else if (!kore_curl_success(c)) {
		(void)snprintf(at->error, sizeof(at->error), "upstream: %.200s",
		    kore_curl_strerror(c));
	} else {
		at->http_status = c->http.status;
		upstream_answer(at);
	}

	shared_upstream(at->src.token_url, at->ok,
	    (isotime_now() - at->sent_ms) * 1000);
	if (at->otel.sampled)
		upstream_span(at);
	upstream_wipe(c->response);
	upstream_wipe(c->http.tosend);
	kore_curl_cleanup(c);

	at->done(at);
}

static void
upstream_answer(struct attempt *at)
{
	struct oauth_answer	probe;
	const u_int8_t		*body;
	size_t			len;
	char			err[KILN_ERR_MAX];

	kore_curl_response_as_bytes(&at->curl, &body, &len);

	/* The device flow reads the answer itself (device.c). */
	if (at->raw != NULL) {
		kore_buf_append(at->raw, body, len);
		at->ok = at->http_status >= 200 && at->http_status < 300;
		if (!at->ok)
			(void)snprintf(at->error, sizeof(at->error),
			    "upstream answered HTTP %ld", at->http_status);
		return;
	}

	if (at->http_status >= 200 && at->http_status < 300) {
		if (oauth_parse(&at->src, (const char *)body, len,
		    at->sent_ms, &at->ans, err, sizeof(err))) {
			at->ok = 1;
		} else {
			(void)snprintf(at->error, sizeof(at->error),
			    "upstream answer: %.200s", err);
		}
		return;
	}

	/* An OAuth error answer names its error code; keep only that. */
	memset(&probe, 0, sizeof(probe));
	err[0] = '\0';
	if (len > 0 && !oauth_parse(&at->src, (const char *)body, len,
	    at->sent_ms, &probe, err, sizeof(err)) &&
	    !strncmp(err, "upstream error: ", 16)) {
		(void)snprintf(at->error, sizeof(at->error),
		    "upstream answered HTTP %ld (%.64s)", at->http_status,
		    err + 16);
	} else {
		(void)snprintf(at->error, sizeof(at->error),
		    "upstream answered HTTP %ld", at->http_status);
	}
	oauth_answer_free(&probe);
}

/* The CLIENT span of the call: the token URL's parts, no query. */
static void
upstream_span(struct attempt *at)
{
	struct otel_span	*s;
	char			code[24];

	if ((s = otel_end(&at->otel_call, OTEL_KIND_CLIENT, "POST")) == NULL)
		return;
	otel_attr_str(s, "http.request.method", "POST");
	otel_url_attrs(s, at->src.token_url);
	if (at->http_status > 0)
		otel_attr_int(s, "http.response.status_code", at->http_status);
	otel_attr_str(s, "kiln.source", at->name);
	if (!at->ok) {
		if (at->http_status > 0)
			(void)snprintf(code, sizeof(code), "%ld",
			    at->http_status);
		else
			(void)kore_strlcpy(code, "transport", sizeof(code));
		otel_attr_str(s, "error.type", code);
		otel_error(s, at->error);
	}
}

static void
upstream_wipe(struct kore_buf *buf)
{
	if (buf != NULL && buf->data != NULL)
		OPENSSL_cleanse(buf->data, buf->length);
}

/*
 * Every outgoing call of kiln goes through this: curl opens its sockets
 * in upstream_open_socket, which writes a refused address into refused
 * (UPSTREAM_ADDR_LEN bytes) and opens no socket for it.
 */
void
upstream_guard(CURL *h, char *refused)
{
	refused[0] = '\0';
	curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, upstream_open_socket);
	curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, refused);
}

static curl_socket_t
upstream_open_socket(void *arg, curlsocktype purpose,
    struct curl_sockaddr *a)
{
	char		*refused = arg;
	const u_int8_t	*ip;

	/* curl's addr has room for the whole sockaddr of addrlen. */
	if (a->family == AF_INET)
		ip = (const u_int8_t *)
		    &((const struct sockaddr_in *)&a->addr)->sin_addr;
	else if (a->family == AF_INET6)
		ip = (const u_int8_t *)
		    &((const struct sockaddr_in6 *)&a->addr)->sin6_addr;
	else
		ip = NULL;

	if (!upstream_addr_allowed(a->family, ip, refused, UPSTREAM_ADDR_LEN))
		return (CURL_SOCKET_BAD);

	return (socket(a->family, a->socktype, a->protocol));
}

/* May a call go to ip (of family)? If not, its text goes into text. */
static int
upstream_addr_allowed(int family, const u_int8_t *ip, char *text,
    size_t len)
{
	const u_int8_t			*v4;
	size_t				i, n, nallow;
	const struct cidr		*allow;

	allow = kiln_config.upstream_allow;
	nallow = kiln_config.upstream_allow_count;
	n = sizeof(upstream_refused) / sizeof(upstream_refused[0]);

	v4 = NULL;
	if (family == AF_INET6) {
		for (i = 0; i < sizeof(upstream_v4_in_v6) /
		    sizeof(upstream_v4_in_v6[0]); i++) {
			if (!memcmp(ip, upstream_v4_in_v6[i], 12))
				v4 = ip + 12;
		}
	} else if (family != AF_INET) {
		(void)snprintf(text, len, "of family %d", family);
		return (0);
	}

	if (upstream_listed(allow, nallow, family, ip) ||
	    (v4 != NULL && upstream_listed(allow, nallow, AF_INET, v4)))
		return (1);
	if (!upstream_listed(upstream_refused, n, family, ip) &&
	    (v4 == NULL || !upstream_listed(upstream_refused, n, AF_INET, v4)))
		return (1);

	if (inet_ntop(family, ip, text, len) == NULL)
		(void)kore_strlcpy(text, "?", len);

	return (0);
}

/* Is addr (of family) inside one of the n CIDRs of list? */
static int
upstream_listed(const struct cidr *list, size_t n, int family,
    const u_int8_t *addr)
{
	size_t		i;

	for (i = 0; i < n; i++) {
		if (addr_cidr_match(&list[i], family, addr))
			return (1);
	}

	return (0);
}

/* Is a literal address refused (a webhook URL's, checked at creation)? */
int
upstream_addr_refused(int family, const u_int8_t *ip)
{
	char			text[UPSTREAM_ADDR_LEN];

	return (!upstream_addr_allowed(family, ip, text, sizeof(text)));
}
