/*
 * webhook.c: delivery of the webhooks' outbox (store.c, migration 008).
 *
 * The rows are written by the commits that change a token; here a timer
 * on every worker claims the due ones (one statement, FOR UPDATE SKIP
 * LOCKED, the row's next attempt pushed past the attempt as a lease) and
 * POSTs each through kore_curl, under the same address rule as token
 * requests (upstream_guard) and a 5 s timeout. A 2xx delivers; anything
 * else is retried with exponential backoff and jitter (KILN_WEBHOOK_
 * BACKOFF_MS, 1 s, doubling up to 1 h) until the event is 24 h old.
 * Nothing here is on the path of a refresh or of a token answer.
 *
 * The body carries the event, never a token or a secret; it is signed:
 * Kiln-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "t.body")>.
 */

#include <sys/types.h>

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <yajl/yajl_gen.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

#define WEBHOOK_TIMEOUT_MS	5000
#define WEBHOOK_LEASE_MS	(WEBHOOK_TIMEOUT_MS + 5000)
#define WEBHOOK_INFLIGHT_MAX	16	/* per worker */
#define WEBHOOK_PER_HOOK	8	/* out at once, over all workers */
#define WEBHOOK_BACKOFF_MAX_MS	3600000
#define WEBHOOK_GIVE_UP_MS	(24LL * 3600 * 1000)
#define WEBHOOK_EXPIRY_MS	5000	/* how often expiries are swept */
#define WEBHOOK_SIG_MAX		192
#define WEBHOOK_PAUSE_MS	5000	/* after a claim the database failed */
#define WEBHOOK_IDLE_MS		5000	/* between claims when none was due */

struct webhook_send {
	int64_t			id;
	int64_t			attempt;
	int64_t			started_ms;
	char			type[32];
	char			addr_refused[UPSTREAM_ADDR_LEN];
	char			error[KILN_ERR_MAX];
	struct kore_curl	curl;
};

static struct {
	int		claiming;
	int		inflight;
	int64_t		tick_ms;
	int64_t		swept_ms;
	int64_t		paused_until;
	int64_t		idle_until;	/* no claim before, unless kicked */
	int		kick_set;
	int64_t		kick_at;	/* a claim at (or after) this time */
	int		backlog;	/* the last claim got rows */
} wh;

static void	webhook_tick(void *, u_int64_t);
static int	webhook_claim(void);
static void	webhook_claimed(const struct store_rows *, void *, int);
static void	webhook_swept(const struct store_rows *, void *, int);
static void	webhook_retry_stored(const struct store_rows *, void *, int);
static void	webhook_post(const struct delivery_row *);
static void	webhook_cb(struct kore_curl *, void *);
static void	webhook_finish(struct webhook_send *, int, long);
static int64_t	webhook_backoff(int64_t);
static char	*webhook_body(const struct delivery_row *, size_t *);
static void	webhook_sign(const char *, const char *, size_t, int64_t,
		    char *, size_t);
static void	webhook_kv_num(void *, const char *, int64_t);
static void	webhook_kv_str(void *, const char *, const char *);

/*
 * Every worker claims; the statement decides who gets what. The tick
 * follows the backoff base so that short test backoffs stay visible.
 */
void
webhook_init(void)
{
	wh.tick_ms = kiln_config.webhook_backoff_ms / 4;
	if (wh.tick_ms < 50)
		wh.tick_ms = 50;
	if (wh.tick_ms > 1000)
		wh.tick_ms = 1000;
	(void)kore_timer_add(webhook_tick, wh.tick_ms, NULL, 0);
}

static void
webhook_tick(void *unused, u_int64_t unused2)
{
	int64_t		now;

	if (drain_active())
		return;

	now = isotime_now();
	if (now < wh.paused_until)
		return;
	if (now - wh.swept_ms >= WEBHOOK_EXPIRY_MS) {
		wh.swept_ms = now;
		store_webhook_expired(webhook_swept, NULL);
	}

	if (wh.kick_set && now >= wh.kick_at) {
		if (webhook_claim())
			wh.kick_set = 0;
	} else if (now >= wh.idle_until) {
		(void)webhook_claim();
	}
}

/*
 * Look for due deliveries at the next tick, or at `at` (ms) at the
 * latest (0: now). Between kicks an idle worker asks only every
 * WEBHOOK_IDLE_MS: events are written by refresh commits (which kick
 * the worker that made them) and retried on the worker whose attempt
 * failed (kicked for the retry's time); other workers and instances
 * find what is left within WEBHOOK_IDLE_MS.
 */
void
webhook_kick(int64_t at)
{
	if (!wh.kick_set || at < wh.kick_at) {
		wh.kick_at = at;
		wh.kick_set = 1;
	}
}

/* A failed attempt is stored: its retry is due backoff (arg) ms on. */
static void
webhook_retry_stored(const struct store_rows *rows, void *arg, int ok)
{
	if (ok)
		webhook_kick(isotime_now() + (int64_t)(intptr_t)arg);
}

/* The expiry sweep may have written token.expired events. */
static void
webhook_swept(const struct store_rows *rows, void *arg, int ok)
{
	webhook_kick(0);
}

/* Ask for due deliveries; 0 when a claim or the cap is in the way. */
static int
webhook_claim(void)
{
	if (wh.claiming || wh.inflight >= WEBHOOK_INFLIGHT_MAX)
		return (0);
	wh.claiming = 1;
	store_webhook_claim(WEBHOOK_INFLIGHT_MAX - wh.inflight,
	    WEBHOOK_LEASE_MS, WEBHOOK_PER_HOOK, webhook_claimed, NULL);
	return (1);
}

static void
webhook_claimed(const struct store_rows *rows, void *arg, int ok)
{
	size_t		i;

	wh.claiming = 0;
	if (!ok) {
		/* A database that does not answer is not asked 4 times/s. */
		wh.paused_until = isotime_now() + WEBHOOK_PAUSE_MS;
		return;
	}

	wh.backlog = rows->n > 0;
	if (rows->n == 0)
		wh.idle_until = isotime_now() + WEBHOOK_IDLE_MS;
	for (i = 0; i < rows->n; i++)
		webhook_post(&rows->deliveries[i]);
}

static void
webhook_post(const struct delivery_row *d)
{
	struct webhook_send	*s;
	CURL			*h;
	char			*body;
	size_t			len;
	char			sig[WEBHOOK_SIG_MAX];

	s = kore_calloc(1, sizeof(*s));
	s->id = d->id;
	s->attempt = d->attempts;
	s->started_ms = isotime_now();
	(void)kore_strlcpy(s->type, d->type ? d->type : "", sizeof(s->type));
	wh.inflight++;

	if (d->secret == NULL) {
		(void)kore_strlcpy(s->error, "the webhook's secret cannot be "
		    "opened (wrong master key?); nothing sent",
		    sizeof(s->error));
		webhook_finish(s, 0, 0);
		return;
	}
	if (!kore_curl_init(&s->curl, d->url, KORE_CURL_ASYNC)) {
		(void)snprintf(s->error, sizeof(s->error), "webhook: %.200s",
		    s->curl.errbuf);
		webhook_finish(s, 0, 0);
		return;
	}

	body = webhook_body(d, &len);
	webhook_sign(d->secret, body, len, s->started_ms / 1000, sig,
	    sizeof(sig));
	kore_curl_http_setup(&s->curl, HTTP_METHOD_POST, body, len);
	kore_free(body);
	kore_curl_http_set_header(&s->curl, "Content-Type",
	    "application/json");
	kore_curl_http_set_header(&s->curl, "User-Agent",
	    "kiln/" KILN_VERSION);
	kore_curl_http_set_header(&s->curl, "Kiln-Event-Id", d->event_id);
	kore_curl_http_set_header(&s->curl, "Kiln-Signature", sig);

	h = s->curl.handle;
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)WEBHOOK_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)WEBHOOK_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	upstream_guard(h, s->addr_refused);

	kore_curl_bind_callback(&s->curl, webhook_cb, s);
	kore_curl_run(&s->curl);
}

static void
webhook_cb(struct kore_curl *c, void *arg)
{
	struct webhook_send	*s = arg;
	long			status;

	status = 0;
	if (!kore_curl_success(c) && s->addr_refused[0] != '\0') {
		(void)snprintf(s->error, sizeof(s->error), "address %s "
		    "refused: link-local or cloud metadata "
		    "(KILN_UPSTREAM_ALLOW lists exceptions); nothing sent",
		    s->addr_refused);
	} else if (!kore_curl_success(c)) {
		(void)snprintf(s->error, sizeof(s->error), "%.200s",
		    kore_curl_strerror(c));
	} else {
		status = c->http.status;
		if (status < 200 || status > 299)
			(void)snprintf(s->error, sizeof(s->error),
			    "receiver answered HTTP %ld", status);
	}

	if (c->http.tosend != NULL)
		OPENSSL_cleanse(c->http.tosend->data,
		    c->http.tosend->length);
	kore_curl_cleanup(c);
	webhook_finish(s, status >= 200 && status <= 299, status);
}

/* The attempt's outcome to the store, and a log line (no body). */
static void
webhook_finish(struct webhook_send *s, int ok, long status)
{
	int64_t		duration, backoff;
	char		id[24], code[24], ms[24], n[24];

	duration = isotime_now() - s->started_ms;
	backoff = webhook_backoff(s->attempt);
	/*
	 * The retry is due backoff ms after the statement that stores this
	 * outcome runs (the database's now()): it is kicked for then, once
	 * that statement is done. Kicked from here, a claim could come
	 * before the row was due (the statement waited in the pool), find
	 * nothing and leave the retry to the idle claim, seconds late.
	 */
	store_webhook_done(s->id, s->attempt, ok, status,
	    ok ? NULL : s->error, duration, s->started_ms,
	    backoff, WEBHOOK_GIVE_UP_MS, ok ? NULL : webhook_retry_stored,
	    (void *)(intptr_t)backoff);

	(void)snprintf(id, sizeof(id), "%lld", (long long)s->id);
	(void)snprintf(code, sizeof(code), "%ld", status);
	(void)snprintf(ms, sizeof(ms), "%lld", (long long)duration);
	(void)snprintf(n, sizeof(n), "%lld", (long long)s->attempt);
	log_kv(ok ? LOG_LVL_INFO : LOG_LVL_WARN, ok ? "webhook delivered" :
	    "webhook attempt failed", "delivery", id, "type", s->type,
	    "attempt", n, "http_status", code, "duration_ms", ms,
	    "error", ok ? "" : s->error, NULL);

	wh.inflight--;
	kore_free(s);

	/* More may be due: claim now rather than at the next tick. */
	if (wh.backlog && !drain_active())
		(void)webhook_claim();
}

/*
 * The wait before the attempt after attempt n: the base doubled n - 1
 * times, at most an hour, less up to a quarter of it at random (the
 * jitter spreads receivers' retries, the gaps still grow).
 */
static int64_t
webhook_backoff(int64_t n)
{
	double		d;

	d = (double)kiln_config.webhook_backoff_ms;
	while (--n > 0 && d < WEBHOOK_BACKOFF_MAX_MS)
		d *= 2;
	if (d > WEBHOOK_BACKOFF_MAX_MS)
		d = WEBHOOK_BACKOFF_MAX_MS;

	return ((int64_t)(d * (0.75 + 0.25 * policy_random())));
}

/* {"id","type","created_at","data":{...}}: the event, never a token. */
static char *
webhook_body(const struct delivery_row *d, size_t *len)
{
	yajl_gen		g;
	const unsigned char	*buf;
	char			*out, created[ISOTIME_LEN];

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatal("yajl_gen_alloc");
	isotime_format(d->created_ms, created, sizeof(created));

	yajl_gen_map_open(g);
	webhook_kv_str(g, "id", d->event_id);
	webhook_kv_str(g, "type", d->type);
	json_kv_str(g, "created_at", created);
	yajl_gen_string(g, (const unsigned char *)"data", 4);
	yajl_gen_map_open(g);
	webhook_kv_str(g, "source", d->source);
	webhook_kv_str(g, "subject", d->subject);
	webhook_kv_str(g, "state", d->state);
	webhook_kv_num(g, "generation", d->generation);
	webhook_kv_str(g, "fingerprint", d->fingerprint);
	webhook_kv_num(g, "failures", d->failures);
	webhook_kv_str(g, "error", d->error);
	yajl_gen_map_close(g);
	yajl_gen_map_close(g);

	if (yajl_gen_get_buf(g, &buf, len) != yajl_gen_status_ok)
		fatal("yajl_gen_get_buf");
	out = kore_malloc(*len + 1);
	memcpy(out, buf, *len);
	out[*len] = '\0';
	yajl_gen_free(g);

	return (out);
}

/* t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")> into out. */
static void
webhook_sign(const char *secret, const char *body, size_t len, int64_t t,
    char *out, size_t outlen)
{
	struct kore_buf	buf;
	unsigned int	mdlen, i;
	u_int8_t	md[EVP_MAX_MD_SIZE];
	char		hex[EVP_MAX_MD_SIZE * 2 + 1];

	kore_buf_init(&buf, len + 32);
	kore_buf_appendf(&buf, "%lld.", (long long)t);
	kore_buf_append(&buf, body, len);
	if (HMAC(EVP_sha256(), secret, (int)strlen(secret), buf.data,
	    buf.offset, md, &mdlen) == NULL)
		fatal("HMAC");
	kore_buf_cleanup(&buf);

	for (i = 0; i < mdlen; i++)
		(void)snprintf(hex + i * 2, 3, "%02x", md[i]);
	(void)snprintf(out, outlen, "t=%lld,v1=%s", (long long)t, hex);
	OPENSSL_cleanse(md, sizeof(md));
}

static void
webhook_kv_str(void *g, const char *key, const char *v)
{
	if (v == NULL)
		json_kv_null(g, key);
	else
		json_kv_str(g, key, v);
}

static void
webhook_kv_num(void *g, const char *key, int64_t v)
{
	if (v == STORE_NULL)
		json_kv_null(g, key);
	else
		json_kv_int(g, key, v);
}
