/*
 * upstream.c: the one HTTP call of a refresh attempt, through kore_curl,
 * asynchronous, bounded by a connect and a total timeout. Whatever goes
 * wrong (refused, timeout, 5xx, HTML, broken JSON) ends as an ordinary
 * failure in at->error; the answer buffers are wiped since they hold the
 * token and the request body holds secrets.
 */

#include <sys/types.h>

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

#define UPSTREAM_REUSE_IDLE_S	2L	/* longest idle connection reused */

static void	upstream_cb(struct kore_curl *, void *);
static int	upstream_no_resend(void *, curl_off_t, int);
static void	upstream_answer(struct attempt *);
static void	upstream_wipe(struct kore_buf *);

void
upstream_send(struct attempt *at, void (*done)(struct attempt *))
{
	CURL		*h;

	at->done = done;
	at->sent_ms = kiln_now();

	if (!kore_curl_init(&at->curl, at->src.token_url, KORE_CURL_ASYNC)) {
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

	at->duration_ms = kiln_now() - at->started_ms;

	if (!kore_curl_success(c) && at->resend_refused) {
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
	    (kiln_now() - at->sent_ms) * 1000);
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

static void
upstream_wipe(struct kore_buf *buf)
{
	if (buf != NULL && buf->data != NULL)
		OPENSSL_cleanse(buf->data, buf->length);
}
