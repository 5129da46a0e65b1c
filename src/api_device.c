/*
 * api_device.c: POST /api/tokens/{name}/connections {"subject"} of a
 * device_code source (RFC 8628). kiln asks the device authorization
 * endpoint for a code (the request sleeps meanwhile, the worker goes
 * on), keeps the device code sealed in PostgreSQL for device.c to poll
 * with, and answers what the person needs: the user code and where to
 * enter it. The device code itself is never answered nor logged.
 */

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <yajl/yajl_gen.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

/* The call to the device authorization endpoint, and its request. */
struct device_start {
	struct attempt		at;		/* first: upstream's handle */
	struct api_pending	*p;
	struct devcode_answer	ans;
};

static void	device_sourced(struct api_pending *,
		    const struct store_rows *, int);
static void	device_answered(struct attempt *);
static void	device_stored(struct api_pending *,
		    const struct store_rows *, int);
static void	device_render(struct api_pending *,
		    const struct device_start *, int64_t);
static void	device_start_free(struct device_start *);

int
api_device_create(struct http_request *req, struct api_state *st,
    const char *subject)
{
	struct api_pending	*p;

	p = api_pending_start(req, st, device_sourced);
	(void)kore_strlcpy(st->subject, subject, sizeof(st->subject));
	store_source_full(st->name, api_pending_cb, p);

	return (KORE_RESULT_RETRY);
}

/* The source as stored, its secrets opened: ask for a device code. */
static void
device_sourced(struct api_pending *p, const struct store_rows *rows, int ok)
{
	struct device_start	*ds;
	struct api_state	*st;
	char			err[KILN_ERR_MAX];

	if (!ok) {
		api_pending_fail(p, 503, "database_unavailable",
		    "the database did not answer; try again");
		return;
	}
	if (rows->source == NULL || rows->source->src.kind !=
	    KIND_DEVICE_CODE) {
		api_pending_fail(p, 404, "not_found",
		    "unknown device_code source");
		return;
	}
	if (!rows->source->opened) {
		api_pending_fail(p, 500, "secret_unreadable",
		    rows->source->error);
		return;
	}

	st = http_state_get(p->req);
	ds = kore_calloc(1, sizeof(*ds));
	ds->p = p;
	ds->at.src = rows->source->src;
	memset(&rows->source->src, 0, sizeof(rows->source->src));
	(void)kore_strlcpy(ds->at.name, p->name, sizeof(ds->at.name));
	(void)kore_strlcpy(ds->at.subject, st->subject,
	    sizeof(ds->at.subject));
	(void)kore_strlcpy(ds->at.request_id, st->request_id,
	    sizeof(ds->at.request_id));
	ds->at.trigger = "device";
	ds->at.started_ms = isotime_now();

	/* No device code, no refresh token: the authorization request. */
	if (!oauth_build(&ds->at.src, &ds->at.oreq, err, sizeof(err))) {
		api_pending_fail(p, 422, "invalid_field", err);
		device_start_free(ds);
		return;
	}

	ds->at.url = ds->at.src.device_authorization_url;
	ds->at.raw = kore_buf_alloc(1024);
	upstream_send(&ds->at, device_answered);
}

static void
device_answered(struct attempt *at)
{
	struct device_start	*ds = (struct device_start *)at;
	struct api_pending	*p = ds->p;
	char			origin[SOURCE_ORIGIN_MAX];
	char			field[32 + KILN_SUBJECT_MAX];
	char			err[KILN_ERR_MAX], msg[KILN_ERR_MAX];
	char			*sealed;
	int64_t			expires_ms;

	if (p->req == NULL) {
		/* Nobody waits for the code: nothing is kept. */
		api_pending_free(p);
		device_start_free(ds);
		return;
	}

	err[0] = '\0';
	if (at->ok && devcode_parse((const char *)at->raw->data,
	    at->raw->offset, &ds->ans, err, sizeof(err))) {
		source_origin(at->src.token_url, origin, sizeof(origin));
		if (!conn_field("device_code", at->subject, field,
		    sizeof(field)) || !seal_seal_for(at->name, field, origin,
		    ds->ans.device_code, strlen(ds->ans.device_code),
		    &sealed))
			fatal("seal_seal_for failed");
		/* The answer, sent once the flow is stored. */
		expires_ms = isotime_now() + ds->ans.expires_in * 1000;
		device_render(p, ds, expires_ms);
		p->render = device_stored;
		store_device_start(p->name, at->subject, sealed,
		    ds->ans.interval, expires_ms, &p->who, api_pending_cb, p);
		seal_wipe(sealed);
		device_start_free(ds);
		return;
	}

	if (!at->ok && at->http_status > 0 && devcode_poll_error(
	    (const char *)at->raw->data, at->raw->offset, err,
	    sizeof(err)) != DEVCODE_TRANSIENT)
		(void)snprintf(msg, sizeof(msg), "device authorization "
		    "endpoint answered HTTP %ld (%.64s)", at->http_status, err);
	else if (!at->ok)
		(void)snprintf(msg, sizeof(msg), "device authorization "
		    "endpoint: %.200s", at->error);
	else
		(void)snprintf(msg, sizeof(msg), "device authorization "
		    "answer: %.200s", err);
	log_context(at->request_id, NULL);
	log_kv(LOG_LVL_WARN, "device flow not started", "token", at->name,
	    "subject", at->subject, "error", msg,
	    "#http_status", (int64_t)at->http_status, NULL);
	log_context(NULL, NULL);

	api_pending_fail(p, 502, "upstream_error", msg);
	device_start_free(ds);
	http_request_wakeup(p->req);
}

/* The flow is kept: the answer rendered before goes out. */
static void
device_stored(struct api_pending *p, const struct store_rows *rows, int ok)
{
	struct api_state	*st;

	if (!ok || rows->n == 0) {
		yajl_gen_free(p->g);
		p->g = NULL;
		if (ok)
			api_pending_fail(p, 404, "not_found",
			    "unknown device_code source");
		else
			api_pending_fail(p, 503, "database_unavailable",
			    "the database did not answer; try again");
		return;
	}

	st = http_state_get(p->req);
	log_kv(LOG_LVL_INFO, "device flow started", "token", p->name,
	    "subject", st->subject, NULL);
	p->done = 1;
}

/* 201 with what the person needs; never the device code. */
static void
device_render(struct api_pending *p, const struct device_start *ds,
    int64_t expires_ms)
{
	char			expires[ISOTIME_LEN];
	void			*g;

	p->g = g = api_json_begin();
	p->status = 201;
	json_kv_bool(g, "success", 1);
	yajl_gen_string(g, (const unsigned char *)"data", 4);
	yajl_gen_map_open(g);
	json_kv_str(g, "subject", ds->at.subject);
	json_kv_str(g, "state", "pending");
	json_kv_str(g, "user_code", ds->ans.user_code);
	json_kv_str(g, "verification_uri", ds->ans.verification_uri);
	if (ds->ans.verification_uri_complete != NULL)
		json_kv_str(g, "verification_uri_complete",
		    ds->ans.verification_uri_complete);
	else
		json_kv_null(g, "verification_uri_complete");
	json_kv_int(g, "interval", ds->ans.interval);
	isotime_format(expires_ms, expires, sizeof(expires));
	json_kv_str(g, "expires_at", expires);
	yajl_gen_map_close(g);
}

static void
device_start_free(struct device_start *ds)
{
	if (ds->at.raw != NULL) {
		OPENSSL_cleanse(ds->at.raw->data, ds->at.raw->length);
		kore_buf_free(ds->at.raw);
	}
	source_free(&ds->at.src);
	oauth_request_free(&ds->at.oreq);
	devcode_answer_free(&ds->ans);
	kore_free(ds);
}
