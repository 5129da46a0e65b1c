/*
 * dash_views.c: what the dashboard shows of many sources, gathered from
 * the worker's memory and the store and rendered by the pure rooms
 * (dash_render.c, dash_pages.c, dash_chart.c):
 *
 *	the token table's page of a view (search, filters, paging), from
 *	the cache sorted by name, with a digest of what it shows so that a
 *	socket gets it only when it changed;
 *	the charts of the last hour, from the per-minute rings of shared.c;
 *	the page of one token, from two reads of the store.
 *
 * dashboard.c (the routes, the sockets, the pushes) calls here; nothing
 * here calls dashboard.c.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

#define DV_CHART_HOSTS	8

static struct {
	/* the cache's entries by name, for the table's pages */
	struct cache_entry	**sorted;
	size_t			nsorted;
	int			stale;
} dv;

static int	dv_by_name(const void *, const void *);
static void	dv_sort(void);
static void	dv_token_row(struct dp_token *, const struct cache_entry *,
		    int64_t);
static void	dv_events(struct dp_event *, const struct store_rows *);

/* A token came, went or changed: sort the table again before use. */
void
dv_changed(void)
{
	dv.stale = 1;
}

/* The cache's entries sorted by name, again after any change. */
static int
dv_by_name(const void *a, const void *b)
{
	const struct cache_entry	*x = *(struct cache_entry *const *)a;
	const struct cache_entry	*y = *(struct cache_entry *const *)b;

	return (strcmp(x->name, y->name));
}

static void
dv_sort(void)
{
	struct cache_entry	*e;
	size_t			n;

	if (!dv.stale && dv.nsorted == cache_count())
		return;
	n = 0;
	for (e = cache_first(); e != NULL; e = cache_next(e))
		n++;
	dv.sorted = kore_realloc(dv.sorted, (n + 1) * sizeof(e));
	n = 0;
	for (e = cache_first(); e != NULL; e = cache_next(e))
		dv.sorted[n++] = e;
	qsort(dv.sorted, n, sizeof(e), dv_by_name);
	dv.nsorted = n;
	dv.stale = 0;
}

/*
 * The page of the table that view asks for (all of page 1 when NULL),
 * rendered by dr_tokens, with the pager. Returns a digest of what the
 * rows show but the countdowns, so that a push can be skipped when
 * nothing but time changed; when it is unless (not 0), nothing is
 * rendered.
 */
u_int64_t
dv_tokens(struct kore_buf *b, int role, const char *csrf,
    const struct dp_view *view, u_int64_t unless)
{
	struct cache_entry	*e;
	struct dp_view		all;
	struct dr_token		t[DP_PAGE_SIZE];
	struct dbuf		d;
	size_t			i, n, matched, skip;
	u_int64_t		digest;
	const char		*state;
	int64_t			now;

	if (view == NULL) {
		memset(&all, 0, sizeof(all));
		all.page = 1;
		view = &all;
	}
	dv_sort();
	now = isotime_now();
	skip = (size_t)(view->page - 1) * DP_PAGE_SIZE;
	n = matched = 0;
	digest = hash_fnv1a(HASH_FNV_BASIS, &role, sizeof(role));
	for (i = 0; i < dv.nsorted; i++) {
		e = dv.sorted[i];
		state = policy_state(e->paused || cache_paused(), e->leased,
		    e->failures, e->token != NULL, e->expires_ms, now);
		if (e->waiting && !cache_valid(e, now))
			state = "waiting";	/* for its subject */
		if (!dp_view_match(view, e->name, source_kind_name(e->kind),
		    state, e->host))
			continue;
		if (matched++ < skip || n == DP_PAGE_SIZE)
			continue;
		t[n].name = e->name;
		t[n].kind = source_kind_name(e->kind);
		t[n].state = state;
		t[n].fpr = e->token != NULL ? e->fpr : NULL;
		t[n].last_error = e->last_error;
		t[n].generation = e->generation;
		t[n].expires_in_ms = e->expires_ms - now;
		t[n].next_in_ms = e->next_ms - now;
		t[n].last_duration_ms = e->last_duration_ms;
		t[n].failures = e->failures;
		t[n].paused = e->paused;
		t[n].auth = NULL;
		t[n].cert_subject = NULL;
		t[n].cert_not_after_ms = 0;
		if (mtls_method(e->auth_method)) {
			t[n].auth = source_auth_name(e->auth_method);
			t[n].cert_subject = e->cert_subject;
			t[n].cert_not_after_ms = e->cert_not_after_ms;
		}
		t[n].auth_method = e->auth_method == AUTH_PRIVATE_KEY_JWT ?
		    "private_key_jwt" : NULL;
		t[n].key_id = e->key_id[0] != '\0' ? e->key_id : NULL;
		n++;
		digest = hash_fnv1a(digest, e->name, strlen(e->name));
		digest = hash_fnv1a(digest, state, strlen(state));
		digest = hash_fnv1a(digest, &e->generation,
		    sizeof(e->generation));
		digest = hash_fnv1a(digest, &e->failures, sizeof(e->failures));
		digest = hash_fnv1a(digest, &e->next_ms, sizeof(e->next_ms));
		digest = hash_fnv1a(digest, &e->expires_ms,
		    sizeof(e->expires_ms));
		digest = hash_fnv1a(digest, &e->last_duration_ms,
		    sizeof(e->last_duration_ms));
		digest = hash_fnv1a(digest, &e->paused, sizeof(e->paused));
		digest = hash_fnv1a(digest, e->key_id, strlen(e->key_id));
		if (e->last_error != NULL)
			digest = hash_fnv1a(digest, e->last_error,
			    strlen(e->last_error));
	}
	digest = hash_fnv1a(digest, &matched, sizeof(matched));
	digest = hash_fnv1a(digest, &dv.nsorted, sizeof(dv.nsorted));
	if (digest == 0)
		digest = 1;
	if (unless != 0 && digest == unless)
		return (digest);

	dbuf_init(&d);
	dp_pager(&d, view, matched, dv.nsorted);
	dr_tokens(&d, t, n, role, csrf);
	kore_buf_append(b, d.data, d.len);
	dbuf_free(&d);

	return (digest);
}

/* The filter form of the table, with the hosts known as suggestions. */
void
dv_filter(struct kore_buf *b, const struct dp_view *view)
{
	const char		*hosts[SHARED_HOSTS];
	struct cache_entry	*e;
	struct dbuf		d;
	size_t			i, n;

	n = 0;
	for (e = cache_first(); e != NULL; e = cache_next(e)) {
		if (e->host[0] == '\0')
			continue;
		for (i = 0; i < n && strcmp(hosts[i], e->host); i++)
			;
		if (i == n && n < SHARED_HOSTS)
			hosts[n++] = e->host;
	}
	dbuf_init(&d);
	dp_filter(&d, view, hosts, n);
	kore_buf_append(b, d.data, d.len);
	dbuf_free(&d);
}

/*
 * The last hour, a point a minute (the current one live, its rate over
 * the seconds gone by): requests/s, refresh latency p50/p99, refresh
 * failures and upstream errors by host, summed over the workers.
 */
void
dv_charts(struct kore_buf *b)
{
	struct shared_minute	*m;
	const struct shared	*sh = shared_get();
	struct dc_series	s[DV_CHART_HOSTS];
	double			reqs[SHARED_MINUTES], p50[SHARED_MINUTES];
	double			p99[SHARED_MINUTES], fails[SHARED_MINUTES];
	double			hosts[DV_CHART_HOSTS][SHARED_MINUTES];
	double			le[SHARED_BUCKETS], secs;
	int			i, h, nh, top[DV_CHART_HOSTS];
	u_int64_t		sum, best;
	struct dbuf		d;
	int64_t			now;

	m = kore_calloc(SHARED_MINUTES, sizeof(*m));
	now = isotime_now();
	shared_minutes(now / 60000, m);
	for (i = 0; i < SHARED_BUCKETS; i++)
		le[i] = shared_bucket_le(i) * 1000.0;
	for (i = 0; i < SHARED_MINUTES; i++) {
		secs = i == SHARED_MINUTES - 1 ?
		    (now % 60000) / 1000.0 + 1 : 60.0;
		reqs[i] = m[i].requests / secs;
		p50[i] = dc_quantile(m[i].refresh_ms, le, SHARED_BUCKETS, 0.5);
		p99[i] = dc_quantile(m[i].refresh_ms, le, SHARED_BUCKETS,
		    0.99);
		fails[i] = (double)m[i].refresh_failures;
	}

	/* The hosts with the most errors of the hour, most first. */
	nh = 0;
	while (nh < DV_CHART_HOSTS) {
		best = 0;
		top[nh] = -1;
		for (h = 0; h < SHARED_HOSTS; h++) {
			for (i = 0; i < nh && top[i] != h; i++)
				;
			if (i < nh || sh->hosts[h].host[0] == '\0')
				continue;
			for (sum = 0, i = 0; i < SHARED_MINUTES; i++)
				sum += m[i].host_errors[h];
			if (sum > best) {
				best = sum;
				top[nh] = h;
			}
		}
		if (top[nh] < 0)
			break;
		for (i = 0; i < SHARED_MINUTES; i++)
			hosts[nh][i] = m[i].host_errors[top[nh]];
		s[nh].label = sh->hosts[top[nh]].host;
		s[nh].v = hosts[nh];
		nh++;
	}

	dbuf_init(&d);
	s[0].label = "requests/s";
	s[0].v = reqs;
	dc_chart(&d, "requests", "Requests per second", "all routes", s, 1,
	    SHARED_MINUTES, 60);
	s[0].label = "p50";
	s[0].v = p50;
	s[1].label = "p99";
	s[1].v = p99;
	dc_chart(&d, "latency", "Refresh latency", "ms, bucket bound", s, 2,
	    SHARED_MINUTES, 60);
	s[0].label = "failures";
	s[0].v = fails;
	dc_chart(&d, "failures", "Refresh failures", "per minute", s, 1,
	    SHARED_MINUTES, 60);
	for (h = 0; h < nh; h++) {
		s[h].label = sh->hosts[top[h]].host;
		s[h].v = hosts[h];
	}
	dc_chart(&d, "upstream", "Upstream errors by host", "per minute", s,
	    nh, SHARED_MINUTES, 60);
	kore_buf_append(b, d.data, d.len);
	dbuf_free(&d);
	kore_free(m);
}

static void	dv_token_webhooks(struct api_pending *,
		    const struct store_rows *, int);

/* A token's last 24 h: rendered now, kept while its history loads. */
void
dv_token_timeline(struct api_pending *p, const struct store_rows *rows,
    int ok)
{
	struct cache_entry	*e;
	struct dp_event		*ev;
	struct dp_token		t;
	struct dbuf		d;

	if (!ok) {
		api_pending_fail(p, 503, "database_unavailable",
		    "cannot read the token's history; try again");
		return;
	}
	if ((e = cache_lookup(p->name)) == NULL) {
		api_pending_fail(p, 404, "not_found", "unknown token source");
		return;
	}

	ev = kore_calloc(rows->n + 1, sizeof(*ev));
	dv_events(ev, rows);
	dv_token_row(&t, e, isotime_now());

	/* The timeline, a NUL, the errors: the page's parts of this query. */
	p->html = kore_buf_alloc(16384);
	dbuf_init(&d);
	dp_timeline(&d, ev, rows->n, &t, isotime_now());
	kore_buf_append(p->html, d.data, d.len + 1);
	dbuf_free(&d);
	dbuf_init(&d);
	dp_errors(&d, ev, rows->n);
	kore_buf_append(p->html, d.data, d.len + 1);
	dbuf_free(&d);
	kore_free(ev);

	/* Admins see its webhook deliveries too: one more query. */
	if (p->principal.role >= ROLE_ADMIN) {
		p->render = dv_token_webhooks;
		store_webhooks_source(p->name, api_pending_cb, p);
		return;
	}
	kore_buf_append(p->html, "", 1);
	p->render = dv_token_history;
	store_events(p->name, DP_HISTORY_PAGE + 1, p->version, api_pending_cb,
	    p);
}

/* The token's webhook deliveries, kept as the page's third part. */
static void
dv_token_webhooks(struct api_pending *p, const struct store_rows *rows,
    int ok)
{
	if (ok && rows->n > 0)
		dv_webhooks(p->html, rows);
	kore_buf_append(p->html, "", 1);
	p->render = dv_token_history;
	store_events(p->name, DP_HISTORY_PAGE + 1, p->version, api_pending_cb,
	    p);
}

/* The page of the token's history asked for: the page is complete. */
void
dv_token_history(struct api_pending *p, const struct store_rows *rows,
    int ok)
{
	struct cache_entry	*e;
	struct dp_event		*ev;
	struct dp_token		t;
	struct dbuf		d, hist;
	const char		*timeline, *errors, *webhooks;
	size_t			n;
	int64_t			now;

	if (!ok) {
		api_pending_fail(p, 503, "database_unavailable",
		    "cannot read the token's history; try again");
		return;
	}
	if ((e = cache_lookup(p->name)) == NULL) {
		api_pending_fail(p, 404, "not_found", "unknown token source");
		return;
	}

	now = isotime_now();
	n = rows->n > DP_HISTORY_PAGE ? DP_HISTORY_PAGE : rows->n;
	ev = kore_calloc(rows->n + 1, sizeof(*ev));
	dv_events(ev, rows);
	dv_token_row(&t, e, now);

	dbuf_init(&hist);
	dp_history(&hist, t.name, ev, n, rows->n > DP_HISTORY_PAGE,
	    p->version);
	timeline = (const char *)p->html->data;
	errors = timeline + strlen(timeline) + 1;
	webhooks = errors + strlen(errors) + 1;
	dbuf_init(&d);
	dp_token_page(&d, &t, timeline, errors, hist.data, webhooks,
	    jwt_role_name(p->principal.role), now);
	kore_buf_reset(p->html);
	kore_buf_append(p->html, d.data, d.len);
	dbuf_free(&d);
	dbuf_free(&hist);
	kore_free(ev);
	p->done = 1;
}

/* One token of the cache as the token page shows it. */
static void
dv_token_row(struct dp_token *t, const struct cache_entry *e, int64_t now)
{
	memset(t, 0, sizeof(*t));
	t->name = e->name;
	t->kind = source_kind_name(e->kind);
	t->state = policy_state(e->paused || cache_paused(), e->leased,
	    e->failures, e->token != NULL, e->expires_ms, now);
	if (e->waiting && !cache_valid(e, now))
		t->state = "waiting";	/* for its subject */
	t->host = e->host[0] != '\0' ? e->host : NULL;
	t->fpr = e->token != NULL ? e->fpr : NULL;
	t->last_error = e->last_error;
	t->generation = e->generation;
	t->expires_ms = e->expires_ms;
	t->next_ms = e->next_ms;
	t->lifetime_ms = e->lifetime_ms;
	t->failures = e->failures;
	t->paused = e->paused;
	t->enabled = e->enabled;
}

/* The event rows of the store as the token page's rows. */
static void
dv_events(struct dp_event *ev, const struct store_rows *rows)
{
	const struct event_row	*r;
	size_t			i;

	for (i = 0; i < rows->n; i++) {
		r = &rows->events[i];
		ev[i].id = r->id;
		ev[i].finished_ms = r->finished_ms;
		ev[i].duration_ms = r->duration_ms;
		ev[i].http_status = r->http_status;
		ev[i].generation = r->generation;
		ev[i].trigger = r->trigger;
		ev[i].outcome = r->outcome;
		ev[i].error = r->error;
		ev[i].fpr = r->fingerprint;
	}
}

/* Webhook delivery rows (store_webhooks_recent, _source) as dr_webhooks. */
void
dv_webhooks(struct kore_buf *b, const struct store_rows *rows)
{
	const struct delivery_row	*d;
	struct dr_webhook		*w;
	struct dbuf			out;
	size_t				i;
	char				**urls;

	w = kore_calloc(rows->n + 1, sizeof(*w));
	urls = kore_calloc(rows->n + 1, sizeof(*urls));
	for (i = 0; i < rows->n; i++) {
		d = &rows->deliveries[i];
		w[i].id = d->webhook_id;
		urls[i] = d->url != NULL ? source_url_redact(d->url, 1) :
		    NULL;
		w[i].url = urls[i];
		w[i].type = d->id == STORE_NULL ? NULL : d->type;
		w[i].source = d->source;
		w[i].status = d->status;
		w[i].attempts = d->attempts;
		w[i].last_status = d->last_status;
		w[i].created_ms = d->created_ms;
		w[i].last_error = d->last_error;
	}

	dbuf_init(&out);
	dr_webhooks(&out, w, rows->n);
	kore_buf_append(b, out.data, out.len);
	dbuf_free(&out);
	for (i = 0; i < rows->n; i++)
		free(urls[i]);
	kore_free(urls);
	kore_free(w);
}
