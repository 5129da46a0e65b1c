/*
 * device.c: kiln polls the token endpoint for every pending device flow
 * (RFC 8628 3.4, 3.5) on a timer of every worker. A poll is
 *
 *	claim (store) -> source -> open the device code -> upstream ->
 *	    pending: next poll at the interval
 *	    slow_down: the interval grows by 5 s, for good
 *	    a token: sealed, stored as the subject's connection (NOTIFY)
 *	    expired_token, access_denied, another error: the flow ends
 *
 * The claim moves the flow's next poll a whole interval on and leases
 * it, in one statement over rows locked with SKIP LOCKED: whichever
 * worker of whichever instance claims first polls, once per interval.
 */

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

#define DEVICE_TICK_MS		1000
#define DEVICE_CLAIM_MAX	64	/* polls claimed at once */
#define DEVICE_RUNNING_MAX	128	/* polls at once per worker */
#define DEVICE_RETRY_MS		1000	/* a token not stored yet */

/* One poll: the attempt first, upstream_send's handle. */
struct device_poll {
	struct attempt	at;
	char		*sealed_code;
	int64_t		expires_ms;
};

static int		device_claiming;
static u_int32_t	device_asked;
static u_int32_t	device_running;

static void	device_tick(void *, u_int64_t);
static void	device_claimed(const struct store_rows *, void *, int);
static void	device_sourced(const struct store_rows *, void *, int);
static int	device_open(struct device_poll *, struct source_row *);
static void	device_polled(struct attempt *);
static void	device_token(struct device_poll *);
static void	device_commit(void *, u_int64_t);
static void	device_stored(const struct store_rows *, void *, int);
static void	device_end(struct device_poll *, const char *);
static void	device_ended(const struct store_rows *, void *, int);
static void	device_free(struct device_poll *);
static void	device_noted(const struct store_rows *, void *, int);

void
device_init(void)
{
	(void)kore_timer_add(device_tick, DEVICE_TICK_MS, NULL, 0);
}

/* Polls of this worker under way (the drain waits for them). */
int
device_busy(void)
{
	return (device_running > 0 || device_claiming);
}

/*
 * Claim as many due polls as this worker has room for; a claim that got
 * all it asked for may have left more due, so it claims again at once.
 */
static void
device_tick(void *unused, u_int64_t unused2)
{
	u_int32_t	room;

	if (device_claiming || device_running >= DEVICE_RUNNING_MAX ||
	    !cache_loaded() || drain_active())
		return;

	room = DEVICE_RUNNING_MAX - device_running;
	device_asked = room < DEVICE_CLAIM_MAX ? room : DEVICE_CLAIM_MAX;
	device_claiming = 1;
	store_device_claim(device_asked, device_claimed, NULL);
}

static void
device_claimed(const struct store_rows *rows, void *unused, int ok)
{
	const struct device_row	*d;
	struct device_poll	*dp;
	size_t			i;

	device_claiming = 0;
	if (!ok)
		return;

	for (i = 0; i < rows->n; i++) {
		d = &rows->devices[i];
		dp = kore_calloc(1, sizeof(*dp));
		device_running++;
		(void)kore_strlcpy(dp->at.name, d->name, sizeof(dp->at.name));
		(void)kore_strlcpy(dp->at.subject, d->subject,
		    sizeof(dp->at.subject));
		dp->at.source_id = d->source_id;
		dp->at.trigger = "device";
		dp->at.started_ms = isotime_now();
		dp->sealed_code = kore_strdup(d->device_code_sealed);
		dp->expires_ms = d->expires_ms;

		if (dp->expires_ms <= dp->at.started_ms) {
			device_end(dp, "expired_token (no consent in time)");
			continue;
		}
		store_source_full(d->name, device_sourced, dp);
	}

	if (rows->n == device_asked)
		device_tick(NULL, 0);
}

/* The source as stored, secrets opened: poll with the device code. */
static void
device_sourced(const struct store_rows *rows, void *arg, int ok)
{
	struct device_poll	*dp = arg;
	char			err[KILN_ERR_MAX];

	/* The lease runs out and the next claim polls: nothing lost. */
	if (!ok || rows->source == NULL ||
	    rows->source->src.kind != KIND_DEVICE_CODE) {
		device_free(dp);
		return;
	}
	if (!device_open(dp, rows->source)) {
		device_end(dp, dp->at.error);
		return;
	}
	if (!oauth_build(&dp->at.src, &dp->at.oreq, err, sizeof(err))) {
		device_end(dp, err);
		return;
	}

	dp->at.raw = kore_buf_alloc(1024);
	upstream_send(&dp->at, device_polled);
}

/* The source is the poll's now; its device code opened into it. */
static int
device_open(struct device_poll *dp, struct source_row *row)
{
	char		origin[SOURCE_ORIGIN_MAX];
	char		field[32 + KILN_SUBJECT_MAX];
	size_t		len;

	dp->at.src = row->src;
	memset(&row->src, 0, sizeof(row->src));
	if (!row->opened) {
		(void)kore_strlcpy(dp->at.error, row->error,
		    sizeof(dp->at.error));
		return (KORE_RESULT_ERROR);
	}

	/* Sealed for the token URL's origin: it goes nowhere else. */
	source_origin(dp->at.src.token_url, origin, sizeof(origin));
	if (!conn_field("device_code", dp->at.subject, field,
	    sizeof(field)) || !seal_open_for(dp->at.name, field, origin,
	    dp->sealed_code, &dp->at.src.device_code, &len)) {
		(void)kore_strlcpy(dp->at.error, "stored device_code cannot "
		    "be opened (wrong master key, or another origin)",
		    sizeof(dp->at.error));
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

static void
device_polled(struct attempt *at)
{
	struct device_poll	*dp = (struct device_poll *)at;
	int			what;
	char			code[DEVCODE_ERROR_MAX + 1];
	char			why[KILN_ERR_MAX];

	if (at->ok) {
		device_token(dp);
		return;
	}

	what = at->http_status > 0 ? devcode_poll_error(
	    (const char *)at->raw->data, at->raw->offset, code,
	    sizeof(code)) : DEVCODE_TRANSIENT;
	switch (what) {
	case DEVCODE_PENDING:
		store_device_next(at->source_id, at->subject, 0, device_noted,
		    NULL);
		break;
	case DEVCODE_SLOW:
		log_kv(LOG_LVL_INFO, "device flow: slow_down, polling "
		    "slower", "token", at->name, "subject", at->subject,
		    "#add_s", (int64_t)DEVCODE_SLOW_DOWN, NULL);
		store_device_next(at->source_id, at->subject,
		    DEVCODE_SLOW_DOWN, device_noted, NULL);
		break;
	case DEVCODE_TRANSIENT:
		log_kv(LOG_LVL_WARN, "device flow: poll failed, polling on",
		    "token", at->name, "subject", at->subject, "error",
		    at->error, NULL);
		store_device_next(at->source_id, at->subject, 0, device_noted,
		    NULL);
		break;
	default:
		(void)snprintf(why, sizeof(why), "%s", code);
		device_end(dp, why);
		return;
	}

	device_free(dp);
}

/* The consent is given: seal what came, store it as the connection. */
static void
device_token(struct device_poll *dp)
{
	struct attempt	*at = &dp->at;
	int64_t		buffer;
	char		origin[SOURCE_ORIGIN_MAX];
	char		field[32 + KILN_SUBJECT_MAX];
	char		err[KILN_ERR_MAX];

	if (!oauth_parse(&at->src, (const char *)at->raw->data,
	    at->raw->offset, at->sent_ms, &at->ans, err, sizeof(err)) ||
	    at->ans.expires_ms <= at->sent_ms) {
		device_end(dp, at->ans.token == NULL ? err :
		    "token already expired");
		return;
	}

	buffer = at->src.refresh_buffer >= 0 ?
	    at->src.refresh_buffer * 1000 : kiln_config.refresh_buffer_ms;
	at->refresh_ms = policy_refresh_at(at->sent_ms, at->ans.expires_ms,
	    buffer, policy_random());
	seal_fingerprint(at->ans.token, strlen(at->ans.token), at->fpr);

	/* Sealed as refresh.c seals a connection's: bound to its subject. */
	source_origin(at->src.token_url, origin, sizeof(origin));
	if (!conn_field("token", at->subject, field, sizeof(field)) ||
	    !seal_seal(at->name, field, at->ans.token,
	    strlen(at->ans.token), &at->sealed_token))
		fatal("seal_seal failed");
	if (at->ans.refresh_token != NULL &&
	    (!conn_field("refresh_token", at->subject, field,
	    sizeof(field)) || !seal_seal_for(at->name, field, origin,
	    at->ans.refresh_token, strlen(at->ans.refresh_token),
	    &at->sealed_refresh)))
		fatal("seal_seal_for failed");

	device_commit(dp, 0);
}

/* Write the token (again, after a database outage). */
static void
device_commit(void *arg, u_int64_t unused)
{
	struct device_poll	*dp = arg;

	store_device_success(&dp->at, device_stored, dp);
}

static void
device_stored(const struct store_rows *rows, void *arg, int ok)
{
	struct device_poll	*dp = arg;
	struct attempt		*at = &dp->at;
	char			key[CONN_KEY_MAX];

	if (!ok) {
		/* The device code is spent: keep the token until stored. */
		log_kv(LOG_LVL_ERROR, "device flow token not stored yet, "
		    "retrying", "token", at->name, "subject", at->subject,
		    NULL);
		(void)kore_timer_add(device_commit, DEVICE_RETRY_MS, dp,
		    KORE_TIMER_ONESHOT);
		return;
	}

	if (rows->num[0] == STORE_NULL) {
		log_kv(LOG_LVL_WARN, "device flow replaced before its token "
		    "was stored, token dropped", "token", at->name,
		    "subject", at->subject, "fingerprint", at->fpr, NULL);
	} else {
		log_kv(LOG_LVL_INFO, "connection connected (device flow)",
		    "token", at->name, "subject", at->subject,
		    "fingerprint", at->fpr, "#generation", rows->num[0],
		    "refresh_token", at->sealed_refresh != NULL ? "yes" : "no",
		    NULL);
		conn_key(at->name, at->subject, key, sizeof(key));
		cache_reload(key);
		webhook_kick(0);	/* token.refreshed, if asked for */
	}
	device_free(dp);
}

/* The flow ends without a token; why names the OAuth error code. */
static void
device_end(struct device_poll *dp, const char *why)
{
	struct attempt	*at = &dp->at;

	if (at->duration_ms == 0)
		at->duration_ms = isotime_now() - at->started_ms;
	(void)snprintf(at->error, sizeof(at->error), "device flow ended: "
	    "%.200s", why);
	log_kv(LOG_LVL_WARN, "device flow ended without a token", "token",
	    at->name, "subject", at->subject, "error", at->error,
	    "#http_status", (int64_t)at->http_status, NULL);
	store_device_end(at, device_ended, dp);
}

static void
device_ended(const struct store_rows *rows, void *arg, int ok)
{
	struct device_poll	*dp = arg;
	char			key[CONN_KEY_MAX];

	if (ok && rows->n > 0) {
		conn_key(dp->at.name, dp->at.subject, key, sizeof(key));
		cache_reload(key);
	}
	device_free(dp);
}

static void
device_noted(const struct store_rows *rows, void *arg, int ok)
{
	/* Not written: the lease runs out, the next claim polls. */
}

static void
device_free(struct device_poll *dp)
{
	device_running--;
	if (dp->at.raw != NULL) {
		OPENSSL_cleanse(dp->at.raw->data, dp->at.raw->length);
		kore_buf_free(dp->at.raw);
	}
	source_free(&dp->at.src);
	oauth_request_free(&dp->at.oreq);
	oauth_answer_free(&dp->at.ans);
	seal_wipe(dp->at.sealed_token);
	seal_wipe(dp->at.sealed_refresh);
	kore_free(dp->sealed_code);
	kore_free(dp);
}
