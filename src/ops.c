/*
 * ops.c: what orchestrators call. GET /health is liveness with the
 * pre-warming summary of the pre-warming guide; GET /health/detailed is
 * readiness; GET /metrics is for scrapers.
 */

#include <sys/types.h>

#include <stdio.h>
#include <string.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include <yajl/yajl_gen.h>

#include "kiln.h"

#define OPS_DB_FRESH_MS		1000
#define OPS_DB_SLOW_MS		2000

/* A readiness request waiting for the database check in flight. */
struct ops_waiter {
	struct api_pending		*p;
	TAILQ_ENTRY(ops_waiter)		list;
};

/*
 * The database check of /health/detailed: one at a time per worker, and
 * its answer serves every readiness request of the next second. A check
 * without an answer after OPS_DB_SLOW_MS means a database that does not
 * answer: its waiters, and every probe until it ends, get 503 at once.
 */
/* The labels of the routes, given by the wiring (api_route_name). */
static const char	*(*route_label)(int);

static struct {
	int				inflight;
	int				ok;
	int64_t				sent_ms;
	int64_t				checked_ms;
	int64_t				response_ms;
	struct kore_timer		*slow;
	TAILQ_HEAD(, ops_waiter)	waiters;
} ops_db = { .waiters = TAILQ_HEAD_INITIALIZER(ops_db.waiters) };

static void	ops_db_checked(const struct store_rows *, void *, int);
static void	ops_db_slow(void *, u_int64_t);
static void	ops_db_answer(const struct store_rows *, int);
static int	detailed_finish(struct http_request *,
		    struct api_pending *);
static void	render_detailed(struct api_pending *,
		    const struct store_rows *, int);
static void	metrics_http(struct kore_buf *);
static const char	*ops_route_name(int);
static void	metrics_histogram(struct kore_buf *, const char *,
		    const char *, const char *, const u_int64_t *, u_int64_t);
static void	metrics_tokens(struct kore_buf *);
static void	metrics_certs(struct kore_buf *);
static void	detailed_certs(void *, int64_t);
static void	metrics_misc(struct kore_buf *);
static void	metrics_json(struct http_request *);

int
ops_health(struct http_request *req, struct api_state *st)
{
	struct cache_entry	*e;
	void			*g;
	int64_t			now, next;
	int			authenticated, active;

	now = isotime_now();
	authenticated = cache_loaded();
	next = -1;
	active = kiln_config.prewarming_enabled && !cache_paused();

	for (e = cache_first(); e != NULL; e = cache_next(e)) {
		if (!e->enabled)
			continue;
		if (!cache_valid(e, now))
			authenticated = 0;
		if (!e->paused && (next == -1 || e->next_ms < next))
			next = e->next_ms;
	}

	g = api_json_begin();
	json_kv_str(g, "status", "healthy");
	json_kv_str(g, "service", "kiln");
	json_kv_bool(g, "authenticated", authenticated);
	yajl_gen_string(g, (const unsigned char *)"prewarming", 10);
	yajl_gen_map_open(g);
	json_kv_bool(g, "active", active);
	if (next == -1 || !active) {
		json_kv_null(g, "next_refresh_in_minutes");
	} else {
		json_kv_decimal(g, "next_refresh_in_minutes",
		    (next > now ? next - now : 0) / 60000.0);
	}
	yajl_gen_map_close(g);
	api_json_send(req, 200, g);

	return (KORE_RESULT_OK);
}

/*
 * Readiness: the database answers, every enabled source has a valid
 * token, the configuration is sane; plus the upstream circuits. 503 when
 * anything but the upstream check is unhealthy, or while draining.
 */
int
ops_health_detailed(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;
	struct ops_waiter	*w;
	int64_t			now;

	now = isotime_now();
	p = api_pending_start(req, st, render_detailed);
	p->finish = detailed_finish;
	if (ops_db.checked_ms != 0 &&
	    now - ops_db.checked_ms < OPS_DB_FRESH_MS) {
		/* Answered by the dispatcher on its next pass. */
		render_detailed(p, NULL, ops_db.ok);
		return (KORE_RESULT_RETRY);
	}

	if (ops_db.inflight && now - ops_db.sent_ms >= OPS_DB_SLOW_MS) {
		render_detailed(p, NULL, 0);
		return (KORE_RESULT_RETRY);
	}

	w = kore_calloc(1, sizeof(*w));
	w->p = p;
	TAILQ_INSERT_TAIL(&ops_db.waiters, w, list);
	if (!ops_db.inflight) {
		ops_db.inflight = 1;
		ops_db.sent_ms = now;
		ops_db.slow = kore_timer_add(ops_db_slow, OPS_DB_SLOW_MS,
		    NULL, KORE_TIMER_ONESHOT);
		store_ping(ops_db_checked, NULL);
	}

	return (KORE_RESULT_RETRY);
}

static void
ops_db_checked(const struct store_rows *rows, void *arg, int ok)
{
	ops_db.inflight = 0;
	ops_db.ok = ok;
	ops_db.checked_ms = isotime_now();
	ops_db.response_ms = ops_db.checked_ms - ops_db.sent_ms;
	if (ops_db.slow != NULL) {
		kore_timer_remove(ops_db.slow);
		ops_db.slow = NULL;
	}
	ops_db_answer(rows, ok);
}

/* The check hangs: answer its waiters now; it may still come back. */
static void
ops_db_slow(void *arg, u_int64_t now)
{
	ops_db.slow = NULL;
	ops_db_answer(NULL, 0);
}

static void
ops_db_answer(const struct store_rows *rows, int ok)
{
	struct ops_waiter	*w;
	struct api_pending	*p;

	while ((w = TAILQ_FIRST(&ops_db.waiters)) != NULL) {
		TAILQ_REMOVE(&ops_db.waiters, w, list);
		p = w->p;
		kore_free(w);
		if (p->req == NULL) {
			api_pending_free(p);
			continue;
		}
		render_detailed(p, rows, ok);
		http_request_wakeup(p->req);
	}
}

/*
 * A drain may have begun between the render and the answer, and the
 * answer closes the connection then: it says so (503), never "ready".
 */
static int
detailed_finish(struct http_request *req, struct api_pending *p)
{
	if (p->status == 200 && drain_active()) {
		yajl_gen_free(p->g);
		p->g = NULL;
		render_detailed(p, NULL, ops_db.ok);
	}

	return (0);
}

static void
render_detailed(struct api_pending *p, const struct store_rows *rows, int ok)
{
	const struct shared	*sh = shared_get();
	struct cache_entry	*e;
	void			*g;
	int64_t			now;
	int			i, healthy, valid, total;
	char			ts[ISOTIME_LEN];

	now = isotime_now();
	healthy = ok && cache_loaded() && !drain_active();

	p->g = g = api_json_begin();
	isotime_format(now, ts, sizeof(ts));
	json_kv_str(g, "timestamp", ts);
	json_kv_str(g, "service", "kiln");

	yajl_gen_string(g, (const unsigned char *)"checks", 6);
	yajl_gen_map_open(g);

	yajl_gen_string(g, (const unsigned char *)"database", 8);
	yajl_gen_map_open(g);
	json_kv_str(g, "status", ok ? "healthy" : "unhealthy");
	if (ok)
		json_kv_int(g, "response_time_ms", ops_db.response_ms);
	else
		json_kv_str(g, "error", "no answer from PostgreSQL");
	json_kv_int(g, "checked_ms_ago", now - ops_db.checked_ms);
	yajl_gen_map_close(g);

	yajl_gen_string(g, (const unsigned char *)"token_acquisition", 17);
	yajl_gen_map_open(g);
	valid = total = 0;
	yajl_gen_string(g, (const unsigned char *)"invalid", 7);
	yajl_gen_array_open(g);
	for (e = cache_first(); e != NULL; e = cache_next(e)) {
		if (!e->enabled)
			continue;
		total++;
		if (cache_valid(e, now)) {
			valid++;
			continue;
		}
		yajl_gen_string(g, (const unsigned char *)e->name,
		    strlen(e->name));
	}
	yajl_gen_array_close(g);
	json_kv_int(g, "sources", total);
	json_kv_int(g, "valid", valid);
	json_kv_str(g, "status", valid == total ? "healthy" : "unhealthy");
	yajl_gen_map_close(g);
	if (valid != total)
		healthy = 0;

	yajl_gen_string(g, (const unsigned char *)"configuration", 13);
	yajl_gen_map_open(g);
	json_kv_str(g, "status", "healthy");
	json_kv_bool(g, "prewarming_enabled", kiln_config.prewarming_enabled);
	json_kv_bool(g, "prewarming_paused", cache_paused());
	json_kv_bool(g, "jwt_auth", kiln_config.jwt_secret != NULL);
	json_kv_int(g, "workers", worker_count - KORE_WORKER_BASE);
	json_kv_bool(g, "draining", drain_active());
	yajl_gen_map_close(g);

	yajl_gen_string(g, (const unsigned char *)"upstream", 8);
	yajl_gen_map_open(g);
	json_kv_str(g, "status", "healthy");
	yajl_gen_string(g, (const unsigned char *)"hosts", 5);
	yajl_gen_array_open(g);
	for (i = 0; i < SHARED_HOSTS && sh->hosts[i].host[0] != '\0'; i++) {
		yajl_gen_map_open(g);
		json_kv_str(g, "host", sh->hosts[i].host);
		json_kv_str(g, "circuit",
		    shared_circuit_state(&sh->hosts[i], now));
		json_kv_int(g, "consecutive_failures", sh->hosts[i].failures);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);

	reseal_health(g);
	detailed_certs(g, now);

	yajl_gen_map_close(g);
	json_kv_str(g, "status", healthy ? "healthy" : "unhealthy");

	p->status = healthy ? 200 : 503;
	p->done = 1;
}

/*
 * GET /metrics: Prometheus text, or with Accept: application/json the
 * JSON summary. Counters are the instance's (all workers, shared.c).
 */
int
ops_metrics(struct http_request *req, struct api_state *st)
{
	struct kore_buf		buf;
	const char		*accept;

	if (http_request_header(req, "accept", &accept) &&
	    strstr(accept, "application/json") != NULL) {
		metrics_json(req);
		return (KORE_RESULT_OK);
	}

	kore_buf_init(&buf, 16384);
	metrics_http(&buf);
	metrics_tokens(&buf);
	metrics_certs(&buf);
	metrics_misc(&buf);
	reseal_metrics(&buf);
	otel_metrics(&buf);

	http_response_header(req, "Content-Type",
	    "text/plain; version=0.0.4; charset=utf-8");
	http_response_header(req, "Cache-Control", "no-store");
	http_response(req, 200, buf.data, buf.offset);
	kore_buf_cleanup(&buf);

	return (KORE_RESULT_OK);
}

static void
metrics_http(struct kore_buf *b)
{
	const struct shared	*sh = shared_get();
	const char		*name;
	u_int64_t		n, cum;
	int			r, i;

	kore_buf_appendf(b, "# HELP kiln_http_requests_total HTTP requests "
	    "answered, by route and status.\n"
	    "# TYPE kiln_http_requests_total counter\n");
	for (r = 0; r < SHARED_ROUTES; r++) {
		name = ops_route_name(r);
		for (i = 0; i < SHARED_STATUSES; i++) {
			if ((n = sh->requests[r][i]) == 0)
				continue;
			if (shared_status_code(i) == 0)
				kore_buf_appendf(b, "kiln_http_requests_total"
				    "{route=\"%s\",status=\"other\"} %llu\n",
				    name, (unsigned long long)n);
			else
				kore_buf_appendf(b, "kiln_http_requests_total"
				    "{route=\"%s\",status=\"%d\"} %llu\n",
				    name, shared_status_code(i),
				    (unsigned long long)n);
		}
	}

	kore_buf_appendf(b, "# HELP kiln_http_request_duration_seconds "
	    "Time to answer, by route.\n"
	    "# TYPE kiln_http_request_duration_seconds histogram\n");
	for (r = 0; r < SHARED_ROUTES; r++) {
		name = ops_route_name(r);
		for (cum = 0, i = 0; i <= SHARED_BUCKETS; i++)
			cum += sh->latency[r][i];
		if (cum == 0)
			continue;
		metrics_histogram(b, "kiln_http_request_duration_seconds",
		    "route", name, sh->latency[r], sh->latency_sum_us[r]);
	}
}

static void
metrics_histogram(struct kore_buf *b, const char *metric, const char *lkey,
    const char *lval, const u_int64_t *counts, u_int64_t sum_us)
{
	u_int64_t	cum;
	int		i;
	char		label[160];

	label[0] = '\0';
	if (lkey != NULL)
		(void)snprintf(label, sizeof(label), "%s=\"%s\",", lkey, lval);

	for (cum = 0, i = 0; i < SHARED_BUCKETS; i++) {
		cum += counts[i];
		kore_buf_appendf(b, "%s_bucket{%sle=\"%g\"} %llu\n", metric,
		    label, shared_bucket_le(i), (unsigned long long)cum);
	}
	cum += counts[SHARED_BUCKETS];
	kore_buf_appendf(b, "%s_bucket{%sle=\"+Inf\"} %llu\n", metric, label,
	    (unsigned long long)cum);
	if (lkey != NULL)
		label[strlen(label) - 1] = '\0';
	kore_buf_appendf(b, "%s_sum%s%s%s %.6f\n", metric,
	    lkey ? "{" : "", label, lkey ? "}" : "", sum_us / 1e6);
	kore_buf_appendf(b, "%s_count%s%s%s %llu\n", metric,
	    lkey ? "{" : "", label, lkey ? "}" : "", (unsigned long long)cum);
}

static void
metrics_tokens(struct kore_buf *b)
{
	const struct shared	*sh = shared_get();
	struct cache_entry	*e;
	int64_t			now;
	int			i;

	kore_buf_appendf(b, "# HELP kiln_refresh_attempts_total Refresh "
	    "attempts that reached the upstream, by source (this instance).\n"
	    "# TYPE kiln_refresh_attempts_total counter\n");
	for (i = 0; i < SHARED_SOURCES; i++) {
		if (sh->sources[i].name[0] != '\0')
			kore_buf_appendf(b, "kiln_refresh_attempts_total"
			    "{source=\"%s\"} %llu\n", sh->sources[i].name,
			    (unsigned long long)sh->sources[i].attempts);
	}

	kore_buf_appendf(b, "# HELP kiln_refresh_failures_total Failed "
	    "refresh attempts, by source (this instance).\n"
	    "# TYPE kiln_refresh_failures_total counter\n");
	for (i = 0; i < SHARED_SOURCES; i++) {
		if (sh->sources[i].name[0] != '\0')
			kore_buf_appendf(b, "kiln_refresh_failures_total"
			    "{source=\"%s\"} %llu\n", sh->sources[i].name,
			    (unsigned long long)sh->sources[i].failures);
	}

	now = isotime_now();
	kore_buf_appendf(b, "# HELP kiln_token_expires_in_seconds Seconds "
	    "until the current token expires (negative: expired).\n"
	    "# TYPE kiln_token_expires_in_seconds gauge\n");
	for (e = cache_first(); e != NULL; e = cache_next(e)) {
		if (e->token != NULL)
			kore_buf_appendf(b, "kiln_token_expires_in_seconds"
			    "{source=\"%s\"} %.3f\n", e->name,
			    (e->expires_ms - now) / 1000.0);
	}

	kore_buf_appendf(b, "# HELP kiln_token_generation Generation of "
	    "the current token.\n# TYPE kiln_token_generation gauge\n");
	for (e = cache_first(); e != NULL; e = cache_next(e))
		kore_buf_appendf(b, "kiln_token_generation{source=\"%s\"} "
		    "%lld\n", e->name, (long long)(e->generation < 0 ? 0 :
		    e->generation));

	kore_buf_appendf(b, "# HELP kiln_token_valid 1 when the source has "
	    "a valid token.\n# TYPE kiln_token_valid gauge\n");
	for (e = cache_first(); e != NULL; e = cache_next(e))
		kore_buf_appendf(b, "kiln_token_valid{source=\"%s\"} %d\n",
		    e->name, cache_valid(e, now));
}

static void
metrics_misc(struct kore_buf *b)
{
	const struct shared	*sh = shared_get();
	int64_t			now, waiters, streams;
	int			i;

	kore_buf_appendf(b, "# HELP kiln_upstream_request_duration_seconds "
	    "Time of the calls to identity providers.\n"
	    "# TYPE kiln_upstream_request_duration_seconds histogram\n");
	metrics_histogram(b, "kiln_upstream_request_duration_seconds", NULL,
	    NULL, sh->upstream, sh->upstream_sum_us);

	now = isotime_now();
	kore_buf_appendf(b, "# HELP kiln_upstream_circuit_open 1 while the "
	    "circuit of an upstream host is open.\n"
	    "# TYPE kiln_upstream_circuit_open gauge\n");
	for (i = 0; i < SHARED_HOSTS && sh->hosts[i].host[0] != '\0'; i++)
		kore_buf_appendf(b, "kiln_upstream_circuit_open{host=\"%s\"} "
		    "%d\n", sh->hosts[i].host, !strcmp("open",
		    shared_circuit_state(&sh->hosts[i], now)));

	kore_buf_appendf(b, "# HELP kiln_websockets_open Open dashboard "
	    "WebSockets.\n# TYPE kiln_websockets_open gauge\n"
	    "kiln_websockets_open %lld\n", (long long)sh->websockets);
	shared_push_totals(&waiters, &streams);
	kore_buf_appendf(b, "# HELP kiln_waiters Long-polls waiting for a "
	    "new token.\n# TYPE kiln_waiters gauge\nkiln_waiters %lld\n"
	    "# HELP kiln_streams Open token event streams.\n"
	    "# TYPE kiln_streams gauge\nkiln_streams %lld\n",
	    (long long)waiters, (long long)streams);
	kore_buf_appendf(b, "# HELP kiln_pgsql_errors_total Failed "
	    "PostgreSQL queries.\n# TYPE kiln_pgsql_errors_total counter\n"
	    "kiln_pgsql_errors_total %llu\n",
	    (unsigned long long)sh->pg_errors);
	kore_buf_appendf(b, "# HELP kiln_uptime_seconds Seconds since the "
	    "instance started.\n# TYPE kiln_uptime_seconds gauge\n"
	    "kiln_uptime_seconds %lld\n",
	    (long long)((now - sh->started_ms) / 1000));
}

/* The JSON shape of the reference systems: global and per endpoint. */
static void
metrics_json(struct http_request *req)
{
	const struct shared	*sh = shared_get();
	void			*g;
	u_int64_t		total, ok, errors, limited, sum, n;
	int64_t			waiters, streams;
	int			r, i, code;
	char			ts[ISOTIME_LEN];

	g = api_json_begin();
	isotime_format(isotime_now(), ts, sizeof(ts));
	json_kv_str(g, "timestamp", ts);

	total = ok = errors = limited = sum = 0;
	for (r = 0; r < SHARED_ROUTES; r++) {
		sum += sh->latency_sum_us[r];
		for (i = 0; i < SHARED_STATUSES; i++) {
			n = sh->requests[r][i];
			code = shared_status_code(i);
			total += n;
			if (code >= 200 && code < 400)
				ok += n;
			else
				errors += n;
			if (code == 429)
				limited += n;
		}
	}

	yajl_gen_string(g, (const unsigned char *)"global", 6);
	yajl_gen_map_open(g);
	json_kv_int(g, "uptime_seconds", (isotime_now() - sh->started_ms) / 1000);
	json_kv_int(g, "total_requests", total);
	json_kv_int(g, "success_count", ok);
	json_kv_int(g, "error_count", errors);
	json_kv_int(g, "rate_limit_count", limited);
	json_kv_decimal(g, "success_rate", total ? 100.0 * ok / total : 100.0);
	json_kv_decimal(g, "avg_duration_ms", total ? sum / 1000.0 / total :
	    0.0);
	json_kv_int(g, "pgsql_errors", sh->pg_errors);
	json_kv_int(g, "websockets_open", sh->websockets);
	shared_push_totals(&waiters, &streams);
	json_kv_int(g, "waiters", waiters);
	json_kv_int(g, "streams", streams);
	yajl_gen_map_close(g);

	yajl_gen_string(g, (const unsigned char *)"endpoints", 9);
	yajl_gen_map_open(g);
	for (r = 0; r < SHARED_ROUTES; r++) {
		total = ok = 0;
		for (i = 0; i < SHARED_STATUSES; i++) {
			total += sh->requests[r][i];
			code = shared_status_code(i);
			if (code >= 200 && code < 400)
				ok += sh->requests[r][i];
		}
		if (total == 0)
			continue;
		yajl_gen_string(g, (const unsigned char *)ops_route_name(r),
		    strlen(ops_route_name(r)));
		yajl_gen_map_open(g);
		json_kv_int(g, "total_requests", total);
		json_kv_decimal(g, "success_rate", 100.0 * ok / total);
		json_kv_decimal(g, "avg_duration_ms",
		    sh->latency_sum_us[r] / 1000.0 / total);
		yajl_gen_map_close(g);
	}
	yajl_gen_map_close(g);

	api_json_send(req, 200, g);
}

void
ops_route_names(const char *(*label)(int))
{
	route_label = label;
}

static const char *
ops_route_name(int r)
{
	return (route_label != NULL ? route_label(r) : "unmatched");
}

/*
 * The TLS client certificates of mutual TLS sources: one expiring
 * within DR_CERT_WARN_MS is a warning (the token still comes until it
 * has expired, so health is not changed by it).
 */
static void
detailed_certs(void *g, int64_t now)
{
	struct cache_entry	*e;
	int			warn;
	char			ts[ISOTIME_LEN];

	warn = 0;
	yajl_gen_string(g, (const unsigned char *)"client_certificates", 19);
	yajl_gen_map_open(g);
	yajl_gen_string(g, (const unsigned char *)"expiring", 8);
	yajl_gen_array_open(g);
	for (e = cache_first(); e != NULL; e = cache_next(e)) {
		if (e->cert_not_after_ms == 0 ||
		    e->cert_not_after_ms - now >= DR_CERT_WARN_MS)
			continue;
		warn = 1;
		yajl_gen_map_open(g);
		json_kv_str(g, "source", e->name);
		isotime_format(e->cert_not_after_ms, ts, sizeof(ts));
		json_kv_str(g, "not_after", ts);
		json_kv_int(g, "expires_in_seconds",
		    (e->cert_not_after_ms - now) / 1000);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	json_kv_int(g, "warn_days", DR_CERT_WARN_MS / 86400000);
	json_kv_str(g, "status", warn ? "warning" : "healthy");
	yajl_gen_map_close(g);
}

static void
metrics_certs(struct kore_buf *b)
{
	struct cache_entry	*e;

	kore_buf_appendf(b, "# HELP kiln_tls_client_cert_not_after_seconds "
	    "notAfter of the TLS client certificate of a source, epoch "
	    "seconds.\n# TYPE kiln_tls_client_cert_not_after_seconds gauge\n");
	for (e = cache_first(); e != NULL; e = cache_next(e)) {
		if (e->cert_not_after_ms != 0)
			kore_buf_appendf(b, "kiln_tls_client_cert_not_after_"
			    "seconds{source=\"%s\"} %lld\n", e->name,
			    (long long)(e->cert_not_after_ms / 1000));
	}
}
