/*
 * cache.c: the per-worker table of current tokens, answered from memory.
 *
 * PostgreSQL is the truth. A worker loads every source at start, then
 * follows changes: after a commit the names that changed are announced
 * (NOTIFY kiln_tokens, comma-separated names), every worker LISTENs on its
 * own libpq connection and reloads those rows, in batches; a reconcile
 * timer reloads everything as a safety net (for an announce that was lost
 * with its worker, and after the LISTEN connection was lost). Requests
 * that must wait for a change (min_ttl, rejected) sleep on their entry
 * and are woken by a reload or by their deadline.
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

#define CACHE_BUCKETS		131072	/* 100 000 connections: short chains */
#define CACHE_TICK_MS		50
#define CACHE_PAGE		5000	/* rows per page of a full load */
#define CACHE_CONN_RECONCILE	12	/* every 12th reconcile: connections */
#define LISTEN_RETRY_MS		1000
#define KILN_TYPE_LISTEN	100

#define LISTEN_CONNECTING	1	/* PQconnectPoll() under way */
#define LISTEN_SENT		2	/* LISTEN sent, answer awaited */
#define LISTEN_UP		3

LIST_HEAD(cache_bucket, cache_entry);

static struct {
	struct cache_bucket			*buckets;	/* slab_map */
	TAILQ_HEAD(, cache_entry)		entries;
	TAILQ_HEAD(, cache_entry)		conns;	/* not default */
	TAILQ_HEAD(, cache_waiter)		waiters;
	int64_t					waiters_due;
	int					loaded;
	int					loading;
	int					paused;
	u_int32_t				count;
	u_int32_t				nconns;
	u_int64_t				changes;
	int					load_conns;
	int					load_pending;
	u_int32_t				reconciles;
} cache;

/*
 * The LISTEN connection; the event header must come first. Nothing on
 * it blocks the worker: it connects, LISTENs and is pinged from the
 * event loop, each step with a deadline.
 */
static struct {
	struct kore_event	evt;
	PGconn			*db;
	int			state;
	int			retry_armed;
	int			writing;
	struct kore_timer	*deadline;
	int64_t			ping_ms;	/* when sent, 0: none */
	int			busy;		/* what was sent, 0: none */
	int			gathering;	/* notifies being read */
	char			*inflight;	/* names of the lane's query */
	struct kore_buf		*reloads;	/* names to reload */
	struct kore_buf		*announces;	/* names to announce */
	int			prepared;	/* the reload, on this db */
} listener;

/* What the LISTEN connection was asked (besides STORE_LANE_*). */
#define LANE_LISTEN		10
#define LANE_PING		11
#define LANE_PREPARE		12

/*
 * Who hears of what: the channels of the layers above (cache_listen),
 * and the one told when a token changes (cache_watch). Set at init.
 */
#define LISTEN_CHANNELS		4

static struct {
	const char	*channel;
	void		(*cb)(const char *);
} channels[LISTEN_CHANNELS];
static int		nchannels;
static void		(*changed_cb)(void);
static void		(*removed_cb)(const struct cache_entry *);
static void		(*entry_cb)(struct cache_entry *, int);
static void		(*generation_cb)(struct cache_entry *);
static void		(*due_cb)(struct cache_entry *);

static struct cache_entry	*cache_insert(const char *, const char *);
static struct cache_entry	*cache_lookup_key(const char *);
static void	cache_remove(struct cache_entry *);
static size_t	cache_entry_size(const char *);
static u_int32_t	cache_hash(const char *, const char *);
static void	cache_apply(const struct token_row *);
static void	cache_loaded_all(const struct store_rows *, void *, int);
static void	cache_loaded_names(const struct store_rows *, const char *,
		    int);
static struct cache_entry	*cache_mark_names(const char *, int);
static void	cache_wake(struct cache_entry *);
static void	cache_tick(void *, u_int64_t);
static void	cache_reconcile(void *, u_int64_t);
static void	cache_load_all(void);
static void	cache_load(int);
static void	listen_connect(void *, u_int64_t);
static void	listen_handle(void *, int);
static void	listen_names(char *);
static void	cache_changed(void);
static void	listen_close(void);
static void	listen_poll(void);
static void	listen_send(const char *, int, int64_t);
static int	listen_results(void);
static int	listen_flush(void);
static void	listen_up(void);
static void	listen_ping(void);
static void	listen_timeout(void *, u_int64_t);
static void	listen_lost(const char *);
static void	lane_add(struct kore_buf **, const char *);
static char	*lane_take(struct kore_buf *);
static void	lane_next(void);
static void	lane_done(void);
static void	lane_fallback(void);
static void	lane_reloaded(PGresult *);
static yajl_gen	answer_gen(struct kore_buf *);
static void	answer_append(void *, const char *, size_t);
static void	answer_free(struct cache_entry *);

void
cache_init(void)
{
	u_int32_t	i;

	slab_huge(kiln_config.huge_pages);
	if ((cache.buckets = slab_map(CACHE_BUCKETS *
	    sizeof(*cache.buckets))) == NULL)
		fatal("cache_init: cannot map the table: %s", errno_s);
	for (i = 0; i < CACHE_BUCKETS; i++)
		LIST_INIT(&cache.buckets[i]);
	TAILQ_INIT(&cache.entries);
	TAILQ_INIT(&cache.conns);
	TAILQ_INIT(&cache.waiters);

	listener.evt.type = KILN_TYPE_LISTEN;
	listener.evt.handle = listen_handle;

	listen_connect(NULL, 0);
	cache_load_all();

	(void)kore_timer_add(cache_tick, CACHE_TICK_MS, NULL, 0);
	(void)kore_timer_add(cache_reconcile, kiln_config.reconcile_ms,
	    NULL, 0);
}

int
cache_loaded(void)
{
	return (cache.loaded);
}

int
cache_paused(void)
{
	return (cache.paused);
}

struct cache_entry *
cache_lookup(const char *name)
{
	struct cache_entry	*e;
	u_int32_t		h;

	/* The whole hash first: no string is read for another key. */
	h = cache_hash(name, NULL);
	LIST_FOREACH(e, &cache.buckets[h % CACHE_BUCKETS], hlink) {
		if (e->hash == h && e->conn == NULL && !strcmp(e->name, name))
			return (e);
	}

	return (NULL);
}

/*
 * A connection's entry: hashed by its key "name/subject", in the same
 * table; the default one is the source's entry (cache_lookup).
 */
struct cache_entry *
cache_lookup_conn(const char *name, const char *subject)
{
	struct cache_entry	*e;
	u_int32_t		h;

	if (conn_is_default(subject))
		return (cache_lookup(name));

	h = cache_hash(name, subject);
	LIST_FOREACH(e, &cache.buckets[h % CACHE_BUCKETS], hlink) {
		if (e->hash == h && e->conn != NULL &&
		    !strcmp(e->conn, subject) && !strcmp(e->name, name)) {
			/* Its answer is read next: start that load now. */
			__builtin_prefetch(e->answer);
			return (e);
		}
	}

	return (NULL);
}

/* "name" or "name/subject", unchecked text from a NOTIFY or a batch. */
static struct cache_entry *
cache_lookup_key(const char *key)
{
	char		name[KILN_NAME_MAX + 1];
	char		subject[KILN_SUBJECT_MAX + 1];

	if (!conn_key_split(key, name, sizeof(name), subject,
	    sizeof(subject)))
		return (NULL);

	return (subject[0] == '\0' ? cache_lookup(name) :
	    cache_lookup_conn(name, subject));
}

/* Every entry, sources then connections (the scheduler's round). */
struct cache_entry *
cache_any_first(void)
{
	if (TAILQ_FIRST(&cache.entries) != NULL)
		return (TAILQ_FIRST(&cache.entries));
	return (TAILQ_FIRST(&cache.conns));
}

struct cache_entry *
cache_any_next(struct cache_entry *e)
{
	if (TAILQ_NEXT(e, list) != NULL || e->conn != NULL)
		return (TAILQ_NEXT(e, list));
	return (TAILQ_FIRST(&cache.conns));
}

u_int32_t
cache_any_count(void)
{
	return (cache.count + cache.nconns);
}

u_int32_t
cache_count(void)
{
	return (cache.count);
}

struct cache_entry *
cache_first(void)
{
	return (TAILQ_FIRST(&cache.entries));
}

struct cache_entry *
cache_next(struct cache_entry *e)
{
	return (TAILQ_NEXT(e, list));
}

int
cache_valid(const struct cache_entry *e, int64_t now)
{
	return (e->token != NULL &&
	    e->expires_ms > now + CACHE_VALID_MARGIN_MS);
}

/*
 * Reload name: on the LISTEN connection when it is up (no wait behind
 * the pool's jobs, and the names heard meanwhile go as one query), else
 * in the pool.
 */
void
cache_reload(const char *name)
{
	if (listener.state != LISTEN_UP) {
		store_reload(name, cache_loaded_names);
		return;
	}
	lane_add(&listener.reloads, name);
	lane_next();
}

/* Tell every worker of every instance that name changed, the same way. */
void
cache_announce(const char *name)
{
	if (listener.state != LISTEN_UP) {
		store_announce(name);
		return;
	}
	lane_add(&listener.announces, name);
	lane_next();
}

/*
 * Put the request to sleep until its entry changes (or the whole table
 * is loaded when entry is NULL) or the deadline passes.
 */
void
cache_wait(struct cache_waiter *w, struct http_request *req,
    struct cache_entry *e, int64_t deadline)
{
	w->req = req;
	w->entry = e;
	w->deadline = deadline;
	w->epoch = e != NULL ? e->epoch : 0;

	if (e != NULL)
		TAILQ_INSERT_TAIL(&e->waiters, w, list);
	TAILQ_INSERT_TAIL(&cache.waiters, w, glist);
	w->linked = 1;
	if (deadline < cache.waiters_due)
		cache.waiters_due = deadline;

	http_request_sleep(req);
}

void
cache_unwait(struct cache_waiter *w)
{
	if (!w->linked)
		return;

	if (w->entry != NULL)
		TAILQ_REMOVE(&w->entry->waiters, w, list);
	TAILQ_REMOVE(&cache.waiters, w, glist);
	w->linked = 0;
	w->entry = NULL;
}

static void
cache_wake(struct cache_entry *e)
{
	struct cache_waiter	*w;

	while ((w = TAILQ_FIRST(&e->waiters)) != NULL) {
		cache_unwait(w);
		http_request_wakeup(w->req);
	}
}

/*
 * An on-demand refresh of e was refused (budget, pause, backoff, open
 * circuit): the requests waiting for it answer now instead of at their
 * deadline, and can say why and when to come back.
 */
void
cache_refused(struct cache_entry *e, const char *why, int64_t until)
{
	e->refused = why;
	e->refused_until = until;
	e->epoch++;
	cache_wake(e);
}

static void
cache_tick(void *unused, u_int64_t unused2)
{
	struct cache_waiter	*w, *next;
	int64_t			now;

	/*
	 * No deadline before waiters_due (the earliest one, or earlier):
	 * thousands of long-polls are not walked 20 times a second.
	 */
	now = isotime_now();
	if (now < cache.waiters_due)
		return;
	cache.waiters_due = INT64_MAX;
	for (w = TAILQ_FIRST(&cache.waiters); w != NULL; w = next) {
		next = TAILQ_NEXT(w, glist);
		if (w->deadline > now && (w->entry != NULL || !cache.loaded)) {
			if (w->deadline < cache.waiters_due)
				cache.waiters_due = w->deadline;
			continue;
		}
		cache_unwait(w);
		http_request_wakeup(w->req);
	}
}

static void
cache_reconcile(void *unused, u_int64_t unused2)
{
	if (listener.db == NULL && !listener.retry_armed)
		listen_connect(NULL, 0);
	else if (listener.state == LISTEN_UP)
		listen_ping();

	/*
	 * The sources every time; the connections (100 000 rows) less
	 * often: a change of one is announced and reloaded on the lane,
	 * and everything is reloaded when the LISTEN connection comes back.
	 */
	cache.reconciles++;
	cache_load(!cache.loaded || cache.load_pending ||
	    cache.reconciles % CACHE_CONN_RECONCILE == 0);
}

/*
 * The whole table, a page at a time (entries not seen by the end of the
 * last page are gone): each page is a short step of the event loop.
 */
static void
cache_load_all(void)
{
	cache_load(1);
}

/* Every row (conns 1) or the sources' own (0); one load at a time. */
static void
cache_load(int conns)
{
	struct cache_entry	*e;

	if (cache.loading) {
		if (conns && !cache.load_conns)
			cache.load_pending = 1;
		return;
	}
	cache.loading = 1;
	cache.load_conns = conns;
	cache.load_pending = 0;

	for (e = conns ? cache_any_first() : cache_first(); e != NULL;
	    e = conns ? cache_any_next(e) : cache_next(e))
		e->seen = 0;
	store_load_page(0, "", CACHE_PAGE, conns, cache_loaded_all, NULL);
}

static void
cache_loaded_all(const struct store_rows *rows, void *arg, int ok)
{
	const struct token_row	*last;
	struct cache_entry	*e, *next;
	size_t			i;

	if (!ok) {
		if (cache.load_conns)
			cache.load_pending = 1;
		cache.loading = 0;
		return;
	}

	/* The next page is asked for first: PostgreSQL works meanwhile. */
	if (rows->n == CACHE_PAGE) {
		last = &rows->tokens[rows->n - 1];
		store_load_page(last->id, last->subject, CACHE_PAGE,
		    cache.load_conns, cache_loaded_all, NULL);
	}

	for (i = 0; i < rows->n; i++)
		cache_apply(&rows->tokens[i]);
	if (rows->n == CACHE_PAGE)
		return;
	cache.loading = 0;

	for (e = cache.load_conns ? cache_any_first() : cache_first();
	    e != NULL; e = next) {
		next = cache.load_conns ? cache_any_next(e) : cache_next(e);
		if (!e->seen)
			cache_remove(e);
	}

	if (!cache.load_conns) {
		if (cache.load_pending)
			cache_load(1);
		return;
	}
	if (!cache.loaded) {
		cache.loaded = 1;
		log_kv(LOG_LVL_INFO, "token cache loaded",
		    "#sources", (int64_t)cache.count,
		    "#connections", (int64_t)cache.nconns, NULL);
		cache.waiters_due = 0;		/* those waiting for it */
		cache_tick(NULL, 0);
	}
}

/* A batch of reloaded names (comma-separated). */
static void
cache_loaded_names(const struct store_rows *rows, const char *names, int ok)
{
	struct cache_entry	*e;
	size_t			i;

	if (!ok)
		return;

	cache_mark_names(names, 0);
	for (i = 0; i < rows->n; i++)
		cache_apply(&rows->tokens[i]);

	/* A name that is no longer there was deleted. */
	while ((e = cache_mark_names(names, 1)) != NULL)
		cache_remove(e);
}

/*
 * With find 0: mark the entries of names unseen. With find 1: the first
 * entry of names still unseen, or NULL.
 */
static struct cache_entry *
cache_mark_names(const char *names, int find)
{
	struct cache_entry	*e;
	char			name[CONN_KEY_MAX];
	size_t			len;

	while (*names != '\0') {
		len = strcspn(names, ",");
		if (len < sizeof(name)) {
			memcpy(name, names, len);
			name[len] = '\0';
			if ((e = cache_lookup_key(name)) != NULL) {
				if (find && !e->seen)
					return (e);
				if (!find)
					e->seen = 0;
			}
		}
		names += len;
		if (*names == ',')
			names++;
	}

	return (NULL);
}

/* One row of store_load() into its entry. */
static void
cache_apply(const struct token_row *t)
{
	struct cache_entry	*e;
	const char		*type;
	char			*token;
	size_t			len;
	u_int64_t		epoch;
	int			render, fresh;
	const char		*subject;
	char			field[16 + KILN_SUBJECT_MAX];

	cache.changes++;
	subject = conn_is_default(t->subject) ? NULL : t->subject;
	if ((e = cache_lookup_conn(t->name, subject)) == NULL)
		e = cache_insert(t->name, subject);
	e->seen = 1;
	e->reauth = !strcmp(t->state, "needs_reauth") ||
	    !strcmp(t->state, "revoked");

	/*
	 * Reloads run on several connections and may answer out of order:
	 * a snapshot older than the token we hold is stale, not news
	 * (unless the source was deleted and made again: another id).
	 */
	if (e->id == t->id && t->generation < e->generation)
		return;

	epoch = e->epoch;
	e->id = t->id;
	e->kind = source_kind_parse(t->kind);
	(void)kore_strlcpy(e->key_id, t->signing_key_id != NULL ?
	    t->signing_key_id : "", sizeof(e->key_id));
	e->access = strcmp(t->access, "key") ? ACCESS_OPEN : ACCESS_KEY;
	e->require_header = t->require_header;
	e->enabled = t->enabled;
	e->paused = t->paused;
	cache.paused = t->prewarming_paused;

	if (t->generation != e->generation || e->token == NULL) {
		seal_wipe(e->token);
		e->token = NULL;
		e->fpr[0] = '\0';
		if (t->token_sealed != NULL && *t->token_sealed != '\0' &&
		    conn_field("token", subject, field, sizeof(field)) &&
		    seal_open(t->name, field, t->token_sealed, &token,
		    &len)) {
			e->token = token;
			(void)kore_strlcpy(e->fpr, t->fingerprint ?
			    t->fingerprint : "", sizeof(e->fpr));
		} else if (t->token_sealed != NULL &&
		    *t->token_sealed != '\0') {
			log_kv(LOG_LVL_ERROR, "stored token cannot be opened "
			    "(wrong master key?)", "token", t->name, NULL);
		}
	}

	e->last_duration_ms = t->last_duration_ms == STORE_NULL ? -1 :
	    t->last_duration_ms;
	if (t->leased != e->leased) {
		e->leased = t->leased;
		cache_changed();
	}

	type = t->token_type != NULL && *t->token_type != '\0' ?
	    t->token_type : "Bearer";
	render = t->generation != e->generation || e->answer == NULL ||
	    e->expires_ms != t->expires_ms || strcmp(e->token_type, type);
	(void)kore_strlcpy(e->token_type, type, sizeof(e->token_type));
	e->expires_ms = t->expires_ms;
	e->refresh_ms = t->refresh_ms;
	e->lifetime_ms = t->lifetime_ms;
	e->cert_not_after_ms = t->cert_not_after_ms == STORE_NULL ? 0 :
	    t->cert_not_after_ms;
	(void)kore_strlcpy(e->subject, t->subject_source != NULL ?
	    t->subject_source : "", sizeof(e->subject));
	(void)kore_strlcpy(e->actor, t->actor_source != NULL ?
	    t->actor_source : "", sizeof(e->actor));
	e->subject_generation = t->subject_generation;
	e->auth_method = source_auth_parse(t->auth_method);
	(void)kore_strlcpy(e->cert_subject, t->cert_subject != NULL ?
	    t->cert_subject : "", sizeof(e->cert_subject));
	fresh = t->generation != e->generation && e->token != NULL;
	(void)kore_strlcpy(e->host, t->host != NULL ? t->host : "",
	    sizeof(e->host));

	if (t->generation != e->generation ||
	    (u_int32_t)t->failures != e->failures ||
	    t->next_ms != e->next_ms) {
		e->generation = t->generation;
		e->failures = (u_int32_t)t->failures;
		e->next_ms = t->next_ms;
		e->retry_ms = 0;
		e->epoch++;
	}
	/*
	 * A connection's answer is rendered when first asked for (most of
	 * 100 000 may never be): a kilobyte each, for nothing, at boot.
	 */
	if (render && e->conn != NULL)
		answer_free(e);
	else if (render)
		cache_answer(e);
	if (e->epoch != epoch) {
		cache_wake(e);
		cache_changed();
		if (due_cb != NULL)
			due_cb(e);
	}

	kore_free(e->last_error);
	e->last_error = NULL;
	if (t->last_error != NULL && *t->last_error != '\0')
		e->last_error = kore_strdup(t->last_error);

	if (entry_cb != NULL)
		entry_cb(e, CACHE_ENTRY_CHANGED);
	if (fresh && generation_cb != NULL)
		generation_cb(e);
}

static struct cache_entry *
cache_insert(const char *name, const char *subject)
{
	struct cache_entry	*e;

	/* A connection's subject is the last bytes of its entry. */
	if ((e = slab_alloc(cache_entry_size(subject))) == NULL)
		fatal("cache_insert: out of memory");
	(void)kore_strlcpy(e->name, name, sizeof(e->name));
	(void)kore_strlcpy(e->token_type, "Bearer", sizeof(e->token_type));
	e->generation = -1;
	e->hash = cache_hash(name, subject);
	TAILQ_INIT(&e->waiters);

	LIST_INSERT_HEAD(&cache.buckets[e->hash % CACHE_BUCKETS], e, hlink);
	if (subject != NULL) {
		e->conn = e->conn_s;
		memcpy(e->conn, subject, strlen(subject) + 1);
		TAILQ_INSERT_TAIL(&cache.conns, e, list);
		cache.nconns++;
	} else {
		TAILQ_INSERT_TAIL(&cache.entries, e, list);
		cache.count++;
	}

	return (e);
}

static void
cache_remove(struct cache_entry *e)
{
	cache.changes++;
	cache_wake(e);
	cache_changed();
	if (removed_cb != NULL)
		removed_cb(e);
	if (entry_cb != NULL)
		entry_cb(e, CACHE_ENTRY_REMOVED);

	LIST_REMOVE(e, hlink);
	if (e->conn != NULL) {
		TAILQ_REMOVE(&cache.conns, e, list);
		cache.nconns--;
	} else {
		TAILQ_REMOVE(&cache.entries, e, list);
		cache.count--;
	}

	seal_wipe(e->token);
	answer_free(e);
	kore_free(e->last_error);
	slab_free(e, cache_entry_size(e->conn));
}

/* The hash of conn_key()'s "name" or "name/subject", without writing it. */
static u_int32_t
cache_hash(const char *name, const char *subject)
{
	u_int64_t	h;

	h = hash_fnv1a(HASH_FNV_BASIS, name, strlen(name));
	if (subject != NULL)
		h = hash_fnv1a(hash_fnv1a(h, "/", 1), subject,
		    strlen(subject));

	return ((u_int32_t)h);
}

static size_t
cache_entry_size(const char *subject)
{
	return (offsetof(struct cache_entry, conn_s) +
	    (subject != NULL ? strlen(subject) + 1 : 0));
}

/*
 * The token answer of e, rendered once per token (with yajl) in two
 * parts around the one value that changes each second, expires_in.
 */
void
cache_answer(struct cache_entry *e)
{
	struct kore_buf	*buf;
	yajl_gen	g;
	char		expires[ISOTIME_LEN];

	answer_free(e);
	if (e->token == NULL)
		return;

	/* Room for both parts, so the token is not copied as it grows. */
	isotime_format(e->expires_ms, expires, sizeof(expires));
	buf = kore_buf_alloc(512 + strlen(e->token));

	g = answer_gen(buf);
	yajl_gen_map_open(g);
	json_kv_str(g, "agent_name", e->name);
	if (e->conn != NULL)
		json_kv_str(g, "subject", e->conn);
	json_kv_str(g, "token", e->token);
	json_kv_str(g, "token_type", e->token_type);
	json_kv_str(g, "expires_at", expires);
	yajl_gen_map_close(g);
	yajl_gen_free(g);
	buf->offset--;				/* the closing brace */
	kore_buf_appendf(buf, ",\"expires_in\":");
	e->answer_split = buf->offset;

	g = answer_gen(buf);
	yajl_gen_map_open(g);
	json_kv_bool(g, "valid", 1);
	json_kv_str(g, "message", "Current token retrieved successfully");
	json_kv_str(g, "fingerprint", e->fpr);
	json_kv_int(g, "generation", e->generation);
	yajl_gen_map_close(g);
	yajl_gen_free(g);
	buf->data[e->answer_split] = ',';	/* was the opening brace */

	/* One piece, so an answer is one read from memory; no slack. */
	e->answer_len = buf->offset;
	if ((e->answer = slab_alloc(e->answer_len)) == NULL)
		fatal("cache_answer: out of memory");
	memcpy(e->answer, buf->data, e->answer_len);
	OPENSSL_cleanse(buf->data, buf->length);
	kore_buf_free(buf);
}

static yajl_gen
answer_gen(struct kore_buf *buf)
{
	yajl_gen	g;

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatal("yajl_gen_alloc");
	yajl_gen_config(g, yajl_gen_print_callback, answer_append, buf);

	return (g);
}

static void
answer_append(void *arg, const char *data, size_t len)
{
	kore_buf_append(arg, data, len);
}

static void
answer_free(struct cache_entry *e)
{
	if (e->answer != NULL) {
		OPENSSL_cleanse(e->answer, e->answer_len);
		slab_free(e->answer, e->answer_len);
		e->answer = NULL;
	}
}

/*
 * The LISTEN side: a plain libpq connection of our own in the event loop,
 * since kore_pgsql gives a connection back to its pool after each query.
 */
static void
listen_connect(void *unused, u_int64_t unused2)
{
	listener.retry_armed = 0;
	if (listener.db != NULL)
		return;

	listener.db = PQconnectStart(kiln_config.database_url);
	if (listener.db == NULL || PQstatus(listener.db) == CONNECTION_BAD ||
	    PQsocket(listener.db) == -1) {
		listen_lost("cannot LISTEN for token changes, retrying");
		return;
	}

	/* PQconnectPoll() honours no connect_timeout: this does. */
	listener.state = LISTEN_CONNECTING;
	listener.ping_ms = 0;
	if (kiln_config.db_connect_ms > 0) {
		listener.deadline = kore_timer_add(listen_timeout,
		    kiln_config.db_connect_ms, NULL, KORE_TIMER_ONESHOT);
	}
	kore_platform_schedule_write(PQsocket(listener.db), &listener);
}

static void
listen_handle(void *arg, int error)
{
	PGnotify	*n;
	int		i;

	/* Connecting: libpq finds out what the event was. */
	if (listener.state == LISTEN_CONNECTING) {
		listen_poll();
		return;
	}

	if (error || !PQconsumeInput(listener.db)) {
		listen_lost("lost the LISTEN connection");
		return;
	}
	if (listener.writing && !listen_flush())
		return;

	switch (listen_results()) {
	case KORE_RESULT_ERROR:
		listen_lost("cannot LISTEN for token changes, retrying");
		return;
	case KORE_RESULT_OK:
		lane_done();
		if (listener.state == LISTEN_SENT)
			listen_up();
		listener.ping_ms = 0;
		break;
	}
	if (listener.db == NULL)
		return;

	/* The names of all the notifies read now go in one reload. */
	listener.gathering = 1;
	while ((n = PQnotifies(listener.db)) != NULL) {
		for (i = 0; i < nchannels; i++) {
			if (!strcmp(n->relname, channels[i].channel))
				break;
		}
		if (i < nchannels)
			channels[i].cb(n->extra);
		else if (!strcmp(n->extra, "*"))
			cache_load_all();
		else
			listen_names(n->extra);
		PQfreemem(n);
	}
	listener.gathering = 0;
	lane_next();
}

static void
listen_poll(void)
{
	char		query[256];
	size_t		len;
	int		i;

	/* The socket may change as libpq tries the next address. */
	switch (PQconnectPoll(listener.db)) {
	case PGRES_POLLING_OK:
		break;
	case PGRES_POLLING_READING:
		kore_platform_schedule_read(PQsocket(listener.db), &listener);
		return;
	case PGRES_POLLING_WRITING:
		kore_platform_schedule_write(PQsocket(listener.db), &listener);
		return;
	default:
		listen_lost("cannot LISTEN for token changes, retrying");
		return;
	}

	if (listener.deadline != NULL) {
		kore_timer_remove(listener.deadline);
		listener.deadline = NULL;
	}
	if (PQsetnonblocking(listener.db, 1) == -1) {
		listen_lost("cannot LISTEN for token changes, retrying");
		return;
	}

	listener.state = LISTEN_SENT;
	listener.busy = LANE_LISTEN;
	len = snprintf(query, sizeof(query), "LISTEN kiln_tokens");
	for (i = 0; i < nchannels && len < sizeof(query); i++) {
		len += snprintf(query + len, sizeof(query) - len,
		    "; LISTEN %s", channels[i].channel);
	}
	listen_send(query, 1, 0);
}

/* Send query, answered within db_answer_ms, from the event loop. */
static void
listen_send(const char *query, int arm, int64_t now)
{
	if (!PQsendQuery(listener.db, query)) {
		listen_lost("lost the LISTEN connection");
		return;
	}
	listener.writing = 1;
	if (!listen_flush())
		return;

	if (arm && kiln_config.db_answer_ms > 0) {
		listener.deadline = kore_timer_add(listen_timeout,
		    kiln_config.db_answer_ms, NULL, KORE_TIMER_ONESHOT);
	}
	listener.ping_ms = now;
}

/*
 * The answer of the query sent: KORE_RESULT_OK when it is all in,
 * KORE_RESULT_RETRY while it is not (or none was sent), ERROR if the
 * server said no. PQgetResult() would block while libpq is busy.
 */
static int
listen_results(void)
{
	PGresult	*res;
	int		ret;

	if (!listener.busy)
		return (KORE_RESULT_RETRY);

	ret = KORE_RESULT_OK;
	for (;;) {
		if (PQisBusy(listener.db))
			return (KORE_RESULT_RETRY);
		if ((res = PQgetResult(listener.db)) == NULL)
			break;
		switch (PQresultStatus(res)) {
		case PGRES_TUPLES_OK:
			if (listener.busy == STORE_LANE_RELOAD)
				lane_reloaded(res);
			else if (listener.busy != STORE_LANE_ANNOUNCE)
				ret = KORE_RESULT_ERROR;
			break;
		case PGRES_COMMAND_OK:
			if (listener.busy == LANE_PREPARE)
				listener.prepared = 1;
			break;
		case PGRES_EMPTY_QUERY:
			break;
		default:
			ret = KORE_RESULT_ERROR;
			break;
		}
		PQclear(res);
	}

	return (ret);
}

/*
 * What did not fit in the socket goes when it can; then the socket is
 * only read (level-triggered: notifies wait). 0 when the connection
 * was lost.
 */
static int
listen_flush(void)
{
	int		fd;

	fd = PQsocket(listener.db);
	switch (PQflush(listener.db)) {
	case 0:
		listener.writing = 0;
		kore_platform_event_level_read(fd, &listener);
		break;
	case 1:
		kore_platform_event_level_all(fd, &listener);
		break;
	default:
		listen_lost("lost the LISTEN connection");
		return (0);
	}

	return (1);
}

static void
listen_up(void)
{
	int		i;

	if (listener.deadline != NULL) {
		kore_timer_remove(listener.deadline);
		listener.deadline = NULL;
	}
	listener.state = LISTEN_UP;
	log_kv(LOG_LVL_DEBUG, "listening for token changes", NULL);

	/* Changes may have been missed while we were not listening. */
	if (cache.loaded) {
		cache_load_all();
		for (i = 0; i < nchannels; i++)
			channels[i].cb("");
	}
}

/*
 * A connection that went silent (a black hole, a forgotten flow) says
 * nothing: ask it something now and then, and give it up when the
 * answer does not come in time.
 */
static void
listen_ping(void)
{
	int64_t		now;

	now = isotime_now();
	if (listener.ping_ms == 0 && !listener.busy) {
		listener.busy = LANE_PING;
		listen_send("", 0, now);
		return;
	}
	if (kiln_config.db_answer_ms > 0 &&
	    now - listener.ping_ms > kiln_config.db_answer_ms)
		listen_lost("the LISTEN connection does not answer");
}

static void
listen_timeout(void *unused, u_int64_t unused2)
{
	listener.deadline = NULL;		/* a oneshot is freed by Kore */
	listen_lost(listener.state == LISTEN_CONNECTING ?
	    "cannot LISTEN for token changes (connect timeout), retrying" :
	    "cannot LISTEN for token changes (no answer), retrying");
}

static void
listen_lost(const char *what)
{
	const char	*err;

	err = listener.db != NULL ? PQerrorMessage(listener.db) : "no memory";
	log_kv(LOG_LVL_WARN, what, "error", *err != '\0' ? err :
	    "connection closed", NULL);
	listen_close();
}

/* A payload of kiln_tokens: source names, comma-separated. */
static void
listen_names(char *names)
{
	char		*name;
	char		n[KILN_NAME_MAX + 1], s[KILN_SUBJECT_MAX + 1];

	while ((name = strsep(&names, ",")) != NULL) {
		if (conn_key_split(name, n, sizeof(n), s, sizeof(s)))
			cache_reload(name);
	}
}

static void
listen_close(void)
{
	if (listener.deadline != NULL) {
		kore_timer_remove(listener.deadline);
		listener.deadline = NULL;
	}
	listener.state = 0;
	listener.ping_ms = 0;
	listener.writing = 0;
	listener.prepared = 0;
	lane_fallback();
	if (listener.db != NULL) {
		PQfinish(listener.db);
		listener.db = NULL;
	}

	if (!listener.retry_armed) {
		listener.retry_armed = 1;
		(void)kore_timer_add(listen_connect, LISTEN_RETRY_MS, NULL,
		    KORE_TIMER_ONESHOT);
	}
}

/*
 * The notifications of channel go to cb, with their payload; after the
 * LISTEN connection came back, cb hears "" (changes may have been
 * missed). Called at init, before the worker's event loop runs.
 */
void
cache_listen(const char *channel, void (*cb)(const char *))
{
	if (nchannels == LISTEN_CHANNELS)
		fatal("cache_listen: too many channels");
	channels[nchannels].channel = channel;
	channels[nchannels].cb = cb;
	nchannels++;
}

/* cb is told when a token changed, appeared or went. */
void
cache_watch(void (*cb)(void))
{
	changed_cb = cb;
}

/* cb is told of an entry that holds a new generation of its token. */
void
cache_watch_generation(void (*cb)(struct cache_entry *))
{
	generation_cb = cb;
}

/* cb is told of an entry about to leave the cache (and be freed). */
void
cache_watch_remove(void (*cb)(const struct cache_entry *))
{
	removed_cb = cb;
}

/* cb is told of an entry whose next attempt (or generation) changed. */
void
cache_watch_due(void (*cb)(struct cache_entry *))
{
	due_cb = cb;
}

/*
 * cb is told of an entry that was (re)loaded, whether or not anything
 * changed, and of one about to be freed; it may keep its own state in
 * e->push, which it frees when told of the removal.
 */
void
cache_watch_entry(void (*cb)(struct cache_entry *, int))
{
	entry_cb = cb;
}

static void
cache_changed(void)
{
	if (changed_cb != NULL)
		changed_cb();
}

/* name joins the names of buf (once). */
static void
lane_add(struct kore_buf **buf, const char *name)
{
	struct kore_buf	*b;
	size_t		len, i, end;

	if (*buf == NULL)
		*buf = kore_buf_alloc(1024);
	b = *buf;

	len = strlen(name);
	for (i = 0; i < b->offset; i = end + 1) {
		for (end = i; end < b->offset && b->data[end] != ','; end++)
			;
		if (end - i == len && !memcmp(b->data + i, name, len))
			return;
	}

	if (b->offset > 0)
		kore_buf_append(b, ",", 1);
	kore_buf_append(b, name, len);
}

/* The first names of b, whole, that fit in a NOTIFY payload. */
static char *
lane_take(struct kore_buf *b)
{
	char		*names;
	size_t		cut, len;

	len = b->offset;
	cut = len;
	if (cut > STORE_LANE_MAX) {
		for (cut = STORE_LANE_MAX; b->data[cut] != ','; cut--)
			;
	}

	names = kore_malloc(cut + 1);
	memcpy(names, b->data, cut);
	names[cut] = '\0';

	if (cut < len) {
		memmove(b->data, b->data + cut + 1, len - cut - 1);
		b->offset = len - cut - 1;
	} else {
		b->offset = 0;
	}

	return (names);
}

/*
 * One query at a time on the connection: announces first (other
 * workers wait for them), then reloads, each batch as one statement.
 */
static void
lane_next(void)
{
	struct kore_buf	*b;
	int		what;

	if (listener.state != LISTEN_UP || listener.busy ||
	    listener.gathering || listener.db == NULL)
		return;

	if (listener.announces != NULL && listener.announces->offset > 0) {
		b = listener.announces;
		what = STORE_LANE_ANNOUNCE;
	} else if (listener.reloads != NULL && listener.reloads->offset > 0) {
		b = listener.reloads;
		what = STORE_LANE_RELOAD;
	} else {
		return;
	}

	/* The reload is prepared first, once per connection. */
	if (what == STORE_LANE_RELOAD && !listener.prepared &&
	    kiln_config.db_prepared) {
		listener.busy = LANE_PREPARE;
		if (!store_lane_prepare(listener.db)) {
			listen_lost("lost the LISTEN connection");
			return;
		}
		listener.writing = 1;
		if (listen_flush())
			listener.ping_ms = isotime_now();
		return;
	}

	listener.inflight = lane_take(b);
	listener.busy = what;
	if (!store_lane_send(listener.db, what, listener.inflight,
	    listener.prepared)) {
		listen_lost("lost the LISTEN connection");
		return;
	}
	listener.writing = 1;
	if (!listen_flush())
		return;
	listener.ping_ms = isotime_now();	/* answered in time? */
}

/* The rows of the reload in flight, as from the pool. */
static void
lane_reloaded(PGresult *res)
{
	struct store_rows	rows;

	store_lane_rows(res, &rows);
	cache_loaded_names(&rows, listener.inflight, 1);
	store_lane_free(&rows);
}

/* The query sent was answered. */
static void
lane_done(void)
{
	listener.busy = 0;
	kore_free(listener.inflight);
	listener.inflight = NULL;
}

/*
 * The connection is gone: what it was to do (and what it may not have
 * done) goes through the pool.
 */
static void
lane_fallback(void)
{
	struct kore_buf	*b;
	char		*names, *name, *p;
	int		i;

	for (i = 0; i < 2; i++) {
		b = i == 0 ? listener.announces : listener.reloads;
		if (listener.inflight != NULL &&
		    listener.busy == (i == 0 ? STORE_LANE_ANNOUNCE :
		    STORE_LANE_RELOAD)) {
			if (b == NULL) {
				b = kore_buf_alloc(1024);
				if (i == 0)
					listener.announces = b;
				else
					listener.reloads = b;
			}
			if (b->offset > 0)
				kore_buf_append(b, ",", 1);
			kore_buf_append(b, listener.inflight,
			    strlen(listener.inflight));
		}
		if (b == NULL || b->offset == 0)
			continue;

		kore_buf_append(b, "", 1);
		names = p = kore_strdup((const char *)b->data);
		b->offset = 0;
		while ((name = strsep(&p, ",")) != NULL) {
			if (*name == '\0')
				continue;
			if (i == 0)
				store_announce(name);
			else
				store_reload(name, cache_loaded_names);
		}
		kore_free(names);
	}

	listener.busy = 0;
	kore_free(listener.inflight);
	listener.inflight = NULL;
}

/* A count of the rows applied and entries removed: what may have moved. */
u_int64_t
cache_changes(void)
{
	return (cache.changes);
}
