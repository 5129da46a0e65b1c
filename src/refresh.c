/*
 * refresh.c: the scheduler and the life of one refresh attempt.
 *
 * Every worker runs the scheduler tick over its cache, but an attempt
 * only goes upstream after winning the lease row in PostgreSQL, whose
 * conditions are checked against the stored state (not the cache): so
 * exactly one worker of one instance calls the upstream per token and
 * cycle, and a worker with a stale cache simply loses. An attempt is
 *
 *	lease -> build request -> upstream -> seal -> commit (+NOTIFY)
 *
 * and every attempt that reached the upstream ends in one statement that
 * writes the token (or the failure and its backoff) and the event row.
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

#define REFRESH_TICK_MS		200
#define REFRESH_LOST_RETRY_MS	1000
#define REFRESH_COMMIT_RETRY_MS	1000
#define REFRESH_MAX_RUNNING	32	/* attempts at once per worker */
#define REFRESH_OTHERS_MS	2000	/* before taking another's token */
#define REFRESH_PASS_MS		1000	/* a whole pass, at most so often */
#define REFRESH_AHEAD_MS	(REFRESH_PASS_MS + 2 * REFRESH_TICK_MS)

static u_int32_t		refresh_running;
static u_int64_t		refresh_seq;		/* attempt ids */
static int			refresh_behind;
static int			refresh_backlog;	/* own ones first */
static int64_t			refresh_soonest;	/* 0: a whole pass */
static int64_t			refresh_pass_ms;	/* the last one */
static u_int64_t		refresh_changes;	/* cache_changes() */

/* The entries due within REFRESH_AHEAD_MS (see refresh_scan). */
static struct cache_entry	**refresh_hot;
static size_t			refresh_hot_n;
static size_t			refresh_hot_cap;

static void	refresh_tick(void *, u_int64_t);
static void	refresh_scan(void);
static void	refresh_pass(int64_t);
static void	refresh_hot_scan(int64_t);
static void	refresh_hot_add(struct cache_entry *);
static void	refresh_touch(struct cache_entry *);
static int64_t	refresh_wake(const struct cache_entry *);
static int	refresh_due(const struct cache_entry *, int64_t);
static int	refresh_schedulable(const struct cache_entry *);
static int	refresh_mine(const struct cache_entry *);
static int	refresh_source_live(const struct cache_entry *);
static void	refresh_leased(const struct store_rows *, void *, int);
static int	refresh_source(struct attempt *, struct source_row *);
static void	refresh_answered(struct attempt *);
static void	refresh_succeeded(struct attempt *);
static void	refresh_failed(struct attempt *);
static void	refresh_committed(const struct store_rows *, void *, int);
static void	refresh_commit(void *, u_int64_t);
static void	refresh_renew(void *, u_int64_t);
static void	refresh_end(struct attempt *);
static int	refresh_ondemand(const char *);
static void	refresh_refused(struct attempt *, struct cache_entry *);
static const char	*refresh_verdict(const struct attempt *);
static void	refresh_span(struct attempt *);
static int	refresh_exchange(struct cache_entry *, int64_t);
static int	refresh_waiting(struct cache_entry *, int64_t);
static void	refresh_subject_changed(struct cache_entry *);
static int	refresh_subject_token(struct attempt *);
static int	refresh_consent_pending(const struct cache_entry *);

void
refresh_init(void)
{
	cache_watch_remove(refresh_forget);
	cache_watch_due(refresh_touch);
	cache_watch_generation(refresh_subject_changed);
	(void)kore_timer_add(refresh_tick, REFRESH_TICK_MS, NULL, 0);
}

/*
 * Ask for a refresh of e. The lease decides whether it happens: for a
 * scheduled one the stored next attempt must be due, for min_ttl the
 * stored token must be shorter than arg seconds, for rejected the stored
 * generation must still be arg; an on-demand one (min_ttl, rejected)
 * must also be within its budget (see q_lease). Returns
 * KORE_RESULT_ERROR when an on-demand refresh is refused at once
 * because pre-warming is off here: the caller answers without waiting.
 */
int
refresh_request(struct cache_entry *e, const char *trigger, int64_t arg,
    const char *request_id, const char *traceparent)
{
	struct attempt	*at;

	if (refresh_ondemand(trigger) && (!kiln_config.prewarming_enabled ||
	    cache_paused() || e->paused)) {
		e->refused = "pre-warming is paused for this token";
		e->refused_until = 0;
		return (KORE_RESULT_ERROR);
	}
	/* A flow's connection has no token before the consent. */
	if (refresh_consent_pending(e)) {
		e->refused = "connection waits for the person's consent";
		e->refused_until = 0;
		return (refresh_ondemand(trigger) ? KORE_RESULT_ERROR :
		    KORE_RESULT_OK);
	}
	if (refresh_ondemand(trigger) && e->reauth) {
		e->refused = "connection needs re-authorization";
		e->refused_until = 0;
		return (KORE_RESULT_ERROR);
	}
	/* A person's token comes by consent: the source itself has none. */
	if (e->conn == NULL && e->kind == KIND_AUTHORIZATION_CODE) {
		e->refused = "an authorization_code source serves its "
		    "connections only";
		e->refused_until = 0;
		return (KORE_RESULT_ERROR);
	}
	if (e->inflight || drain_active())
		return (KORE_RESULT_OK);
	/* An exchange without a valid subject waits: no upstream call. */
	if (refresh_waiting(e, isotime_now()))
		return (KORE_RESULT_OK);
	e->inflight = 1;
	e->refused = NULL;
	refresh_running++;

	at = kore_calloc(1, sizeof(*at));
	(void)kore_strlcpy(at->name, e->name, sizeof(at->name));
	(void)kore_strlcpy(at->subject, e->conn != NULL ? e->conn :
	    CONN_DEFAULT, sizeof(at->subject));
	at->trigger = trigger;
	at->arg = arg;
	at->started_ms = isotime_now();
	(void)snprintf(at->id, sizeof(at->id), "%s/%lld.%llu",
	    kiln_config.owner, (long long)at->started_ms,
	    (unsigned long long)++refresh_seq);
	if (request_id != NULL)
		(void)kore_strlcpy(at->request_id, request_id,
		    sizeof(at->request_id));
	if (traceparent != NULL)
		(void)kore_strlcpy(at->traceparent, traceparent,
		    sizeof(at->traceparent));
	if (otel_on())
		otel_from(&at->otel, traceparent);

	store_lease(at->name, at->subject, trigger, arg, refresh_leased, at);
	return (KORE_RESULT_OK);
}

static void
refresh_tick(void *unused, u_int64_t unused2)
{
	refresh_scan();
}

/*
 * Start the attempts that are due, at most REFRESH_MAX_RUNNING at once:
 * with thousands of tokens due together the database queue would
 * overflow, and the upstream would be hit by all of them.
 *
 * With 100 000 connections a whole pass is 100 000 entries read, so it
 * runs at most once a second, and not at all while nothing is due and
 * nothing changed. It keeps the entries due before the next one at hand
 * (refresh_hot), with those that change meanwhile (refresh_touch): the
 * ticks and the attempts that end look at those only. A backlog is
 * worked off at the speed attempts finish, in turn.
 */
static void
refresh_scan(void)
{
	int64_t		now;

	refresh_behind = 0;
	if (!cache_loaded() || !kiln_config.prewarming_enabled ||
	    cache_paused() || drain_active())
		return;

	now = isotime_now();
	if (now - refresh_pass_ms >= REFRESH_PASS_MS && (refresh_soonest == 0 ||
	    now + REFRESH_AHEAD_MS >= refresh_soonest ||
	    refresh_changes != cache_changes()))
		refresh_pass(now);
	else
		refresh_hot_scan(now);

	/*
	 * A worker with a backlog of its own does not take the late tokens
	 * of another, which has one too: both would lease the same tokens,
	 * and half the leases would be lost. Once it is through its own,
	 * it takes those of a worker that is late (busy, or restarting).
	 */
	refresh_backlog = refresh_behind;
}

/* Every entry: start the due ones, keep those due soon at hand. */
static void
refresh_pass(int64_t now)
{
	struct cache_entry	*e;
	size_t			i;
	int64_t			t, soonest;

	refresh_pass_ms = now;
	refresh_changes = cache_changes();
	for (i = 0; i < refresh_hot_n; i++)
		refresh_hot[i]->hot = 0;
	refresh_hot_n = 0;
	soonest = INT64_MAX;

	for (e = cache_any_first(); e != NULL; e = cache_any_next(e)) {
		if (refresh_running < REFRESH_MAX_RUNNING &&
		    !refresh_exchange(e, now) && refresh_due(e, now) &&
		    (!refresh_backlog || refresh_mine(e)))
			refresh_request(e, TRIGGER_SCHEDULE, 0, NULL, NULL);
		if (e->inflight)
			continue;
		if ((t = refresh_wake(e)) <= now + REFRESH_AHEAD_MS)
			refresh_hot_add(e);
		else if (t < soonest)
			soonest = t;
	}

	refresh_soonest = soonest;
	refresh_hot_scan(now);
}

/* The entries at hand: start the due ones, drop those not due soon. */
static void
refresh_hot_scan(int64_t now)
{
	struct cache_entry	*e;
	size_t			i, kept;

	for (i = kept = 0; i < refresh_hot_n; i++) {
		e = refresh_hot[i];
		if (refresh_running >= REFRESH_MAX_RUNNING) {
			refresh_behind = 1;
			break;
		}
		if (!refresh_exchange(e, now) && refresh_due(e, now)) {
			/* Another's, while we have our own: the next pass. */
			if (refresh_backlog && !refresh_mine(e)) {
				e->hot = 0;
				continue;
			}
			refresh_request(e, TRIGGER_SCHEDULE, 0, NULL, NULL);
		}
		/* An attempt's end, or a change, brings it back. */
		if (e->inflight || refresh_wake(e) > now + REFRESH_AHEAD_MS) {
			e->hot = 0;
			continue;
		}
		refresh_hot[kept++] = e;
	}
	if (i < refresh_hot_n) {
		memmove(&refresh_hot[kept], &refresh_hot[i],
		    (refresh_hot_n - i) * sizeof(*refresh_hot));
		kept += refresh_hot_n - i;
	}
	refresh_hot_n = kept;
}

static void
refresh_hot_add(struct cache_entry *e)
{
	if (e->hot)
		return;
	if (refresh_hot_n == refresh_hot_cap) {
		refresh_hot_cap = refresh_hot_cap ? refresh_hot_cap * 2 : 256;
		refresh_hot = kore_realloc(refresh_hot,
		    refresh_hot_cap * sizeof(*refresh_hot));
	}
	refresh_hot[refresh_hot_n++] = e;
	e->hot = 1;
}

/* e changed (cache.c) or its attempt ended: is it due soon now? */
static void
refresh_touch(struct cache_entry *e)
{
	if (refresh_wake(e) <= isotime_now() + REFRESH_AHEAD_MS)
		refresh_hot_add(e);
}

/*
 * When e may be due at the earliest, if nothing changes meanwhile
 * (INT64_MAX: when it changes; a change of these is a cache change,
 * or an attempt's end).
 */
static int64_t
refresh_wake(const struct cache_entry *e)
{
	int64_t		t;

	if (e->kind == KIND_TOKEN_EXCHANGE)
		return (0);			/* waits on others: look */
	if (!refresh_schedulable(e))
		return (INT64_MAX);
	t = refresh_mine(e) ? e->next_ms : e->next_ms + REFRESH_OTHERS_MS;
	if (e->retry_ms > t)
		t = e->retry_ms;

	return (t);
}

/*
 * May the scheduler start e at all (when due)? Not while an attempt
 * runs, disabled or paused, nor a grant gone or a consent awaited, nor
 * an authorization_code source's own entry (its connections only).
 */
static int
refresh_schedulable(const struct cache_entry *e)
{
	if (!e->enabled || e->paused || e->inflight || e->reauth)
		return (0);

	return (!(e->conn == NULL && e->kind == KIND_AUTHORIZATION_CODE) &&
	    !refresh_consent_pending(e));
}

static int
refresh_due(const struct cache_entry *e, int64_t now)
{
	if (!refresh_schedulable(e))
		return (0);
	if (now < e->next_ms || now < e->retry_ms)
		return (0);
	if (e->conn != NULL && !refresh_source_live(e))
		return (0);

	return (refresh_mine(e) || now >= e->next_ms + REFRESH_OTHERS_MS);
}

/*
 * A connection follows its source's entry, which a pause or a delete
 * reaches first (the connection's own row is reloaded only when it
 * changes, or by the reconcile).
 */
static int
refresh_source_live(const struct cache_entry *e)
{
	const struct cache_entry	*s;

	if ((s = cache_lookup(e->name)) == NULL)
		return (0);

	return (s->enabled && !s->paused && s->id == e->id);
}

/* e leaves the cache: not one of those at hand any more. */
void
refresh_forget(const struct cache_entry *e)
{
	size_t		i;

	if (!e->hot)
		return;
	for (i = 0; i < refresh_hot_n; i++) {
		if (refresh_hot[i] == e) {
			memmove(&refresh_hot[i], &refresh_hot[i + 1],
			    (refresh_hot_n - i - 1) * sizeof(*refresh_hot));
			refresh_hot_n--;
			break;
		}
	}
}

/*
 * The workers of an instance share the scheduled tokens out by name, so
 * they do not race each other for the same leases; a token whose worker
 * is late (busy, or being restarted) is taken by any after a while.
 */
static int
refresh_mine(const struct cache_entry *e)
{
	u_int32_t	n;

	n = worker_count > KORE_WORKER_BASE ?
	    worker_count - KORE_WORKER_BASE : 1;

	return (e->hash % n == (u_int32_t)(worker->id - 1) % n);
}

static void
refresh_leased(const struct store_rows *rows, void *arg, int ok)
{
	struct attempt	*at = arg;
	char		err[KILN_ERR_MAX], key[CONN_KEY_MAX];

	if (!ok || rows->lease == NULL || rows->lease->source == NULL) {
		/* Someone else holds it, it is no longer due, or refused. */
		at->ok = -1;
		if (ok && rows->lease != NULL) {
			(void)kore_strlcpy(at->why, rows->lease->why,
			    sizeof(at->why));
			at->why_until = rows->lease->why_until;
		}
		refresh_end(at);
		return;
	}

	log_context(at->request_id, NULL);
	if (!refresh_source(at, rows->lease->source) ||
	    !refresh_subject_token(at)) {
		refresh_failed(at);
		return;
	}
	/* Without a refresh token only a new consent gets a token. */
	if (at->src.kind == KIND_DEVICE_CODE &&
	    at->src.refresh_token == NULL) {
		(void)snprintf(at->error, sizeof(at->error), "refresh_token: "
		    "the upstream gave none; connect again");
		at->reauth = 1;
		refresh_failed(at);
		return;
	}

	if (!oauth_build(&at->src, &at->oreq, err, sizeof(err))) {
		(void)snprintf(at->error, sizeof(at->error), "%s", err);
		refresh_failed(at);
		return;
	}

	log_kv(LOG_LVL_DEBUG, "refreshing token", "token", at->name,
	    "trigger", at->trigger, NULL);
	log_context(NULL, NULL);
	conn_key(at->name, at->subject, key, sizeof(key));
	cache_announce(key);			/* leased: "refreshing" */
	at->renew = kore_timer_add(refresh_renew, kiln_config.lease_ms / 3,
	    at, 0);
	upstream_send(at, refresh_answered);
}

/* The source as stored, secrets opened, and its token state. */
static int
refresh_source(struct attempt *at, struct source_row *row)
{
	at->source_id = row->id;
	at->generation = row->generation;
	at->expires_ms = row->expires_ms;
	at->failures = (u_int32_t)row->failures;
	/* A rotated refresh token is stored only if none was given since. */
	if (row->seed_digest != NULL)
		at->seed_digest = kore_strdup(row->seed_digest);

	/* The source's strings are ours now. */
	at->src = row->src;
	memset(&row->src, 0, sizeof(row->src));
	if (!row->opened) {
		(void)kore_strlcpy(at->error, row->error, sizeof(at->error));
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

static void
refresh_answered(struct attempt *at)
{
	if (at->ok && at->ans.expires_ms <= at->sent_ms) {
		at->ok = 0;
		(void)snprintf(at->error, sizeof(at->error),
		    "upstream answer: token already expired");
	}
	shared_refresh(at->name, at->ok);
	shared_minute_refresh(at->ok, at->duration_ms);

	if (at->ok)
		refresh_succeeded(at);
	else
		refresh_failed(at);
}

static void
refresh_succeeded(struct attempt *at)
{
	const char	*token = at->ans.token;
	int64_t		buffer;
	char		origin[SOURCE_ORIGIN_MAX];
	char		field[32 + KILN_SUBJECT_MAX];

	buffer = at->src.refresh_buffer >= 0 ?
	    at->src.refresh_buffer * 1000 : kiln_config.refresh_buffer_ms;
	at->refresh_ms = policy_refresh_at(at->sent_ms, at->ans.expires_ms,
	    buffer, policy_random());

	seal_fingerprint(token, strlen(token), at->fpr);
	/* A connection's values are bound to its subject (conn.c). */
	if (!conn_field("token", at->subject, field, sizeof(field)) ||
	    !seal_seal(at->name, field, token, strlen(token),
	    &at->sealed_token))
		fatal("seal_seal failed");

	/* A rotated refresh token replaces the stored one, atomically. */
	source_origin(at->src.token_url, origin, sizeof(origin));
	if ((at->src.kind == KIND_REFRESH_TOKEN ||
	    at->src.kind == KIND_AUTHORIZATION_CODE ||
	    at->src.kind == KIND_DEVICE_CODE) &&
	    at->ans.refresh_token != NULL &&
	    (!conn_field("refresh_token", at->subject, field,
	    sizeof(field)) ||
	    !seal_seal_for(at->name, field, origin,
	    at->ans.refresh_token, strlen(at->ans.refresh_token),
	    &at->sealed_refresh)))
		fatal("seal_seal failed");

	refresh_commit(at, 0);
}

/* Write the outcome of at (again, after a database outage). */
static void
refresh_commit(void *arg, u_int64_t unused)
{
	struct attempt	*at = arg;

	if (at->renew != NULL) {
		kore_timer_remove(at->renew);
		at->renew = NULL;
	}
	if (at->otel.sampled)
		otel_child(&at->otel_call, &at->otel);
	if (at->ok)
		store_commit_success(at, refresh_committed, at);
	else
		store_commit_failure(at, refresh_committed, at);
}

/* A long upstream call keeps its lease. */
static void
refresh_renew(void *arg, u_int64_t unused)
{
	struct attempt	*at = arg;

	store_lease_renew(at->source_id, at->subject, NULL, NULL);
}

static void
refresh_failed(struct attempt *at)
{
	int64_t		now, delay;

	now = isotime_now();
	if (at->duration_ms == 0)
		at->duration_ms = now - at->started_ms;
	delay = policy_backoff(at->failures + 1, now, at->expires_ms,
	    policy_random());
	at->next_ms = now + delay;
	at->verdict = refresh_verdict(at);

	/*
	 * A connection whose grant the upstream no longer knows is not
	 * retried: only the person can bring it back (a new import).
	 */
	if (!conn_is_default(at->subject) && (at->src.kind ==
	    KIND_REFRESH_TOKEN || at->src.kind == KIND_AUTHORIZATION_CODE ||
	    at->src.kind == KIND_DEVICE_CODE) &&
	    (at->http_status == 400 ||
	    at->http_status == 401) && strstr(at->error, "(invalid_grant)"))
		at->reauth = 1;

	log_context(at->request_id, NULL);
	log_kv(LOG_LVL_WARN, at->reauth ? "connection needs "
	    "re-authorization" : "token refresh failed", "token", at->name,
	    "subject", at->subject, "trigger", at->trigger, "error", at->error,
	    "#http_status", (int64_t)at->http_status,
	    "#failures", (int64_t)at->failures + 1,
	    "#retry_in_ms", delay, "#duration_ms", at->duration_ms, NULL);
	log_context(NULL, NULL);

	refresh_commit(at, 0);
}

static void
refresh_committed(const struct store_rows *rows, void *arg, int ok)
{
	struct attempt		*at = arg;
	struct otel_span	*s;
	char			expires[ISOTIME_LEN], refresh[ISOTIME_LEN];
	char			key[CONN_KEY_MAX];

	/*
	 * The commit's span: one statement, a CTE over tokens and events
	 * (its name is not its SQL: SQL text lives only in store.c).
	 */
	if ((s = otel_end(&at->otel_call, OTEL_KIND_CLIENT,
	    "kiln.commit")) != NULL) {
		otel_attr_str(s, "db.system", "postgresql");
		otel_attr_str(s, "db.operation.name", "UPDATE");
		otel_attr_str(s, "db.collection.name", "tokens");
		otel_attr_str(s, "kiln.source", at->name);
		if (!ok)
			otel_error(s, "outcome not stored, will retry");
	}

	log_context(at->request_id, NULL);
	if (!ok) {
		/*
		 * The database is away: keep the outcome (and the lease)
		 * and write it when it is back, so no attempt goes
		 * unrecorded and a rotated refresh token is not lost.
		 */
		log_kv(LOG_LVL_ERROR, "refresh outcome not stored yet, "
		    "retrying", "token", at->name, NULL);
		log_context(NULL, NULL);
		(void)kore_timer_add(refresh_commit, REFRESH_COMMIT_RETRY_MS,
		    at, KORE_TIMER_ONESHOT);
		return;
	}

	/* The commit may have written webhook events: look now. */
	webhook_kick(0);

	if (at->ok && rows->num[0] == STORE_NULL && rows->num[2] == 0) {
		/* An earlier send of this commit was written: its answer
		 * was lost on the way back. */
		log_kv(LOG_LVL_INFO, "refresh outcome was already stored",
		    "token", at->name, "fingerprint", at->fpr, NULL);
	} else if (at->ok && rows->num[0] == STORE_NULL) {
		log_kv(LOG_LVL_WARN, "lease lost before commit, token dropped",
		    "token", at->name, "fingerprint", at->fpr, NULL);
	} else if (at->ok) {
		isotime_format(at->ans.expires_ms, expires, sizeof(expires));
		isotime_format(at->refresh_ms, refresh, sizeof(refresh));
		log_kv(LOG_LVL_INFO, "token refreshed", "token", at->name,
		    "subject", at->subject, "trigger", at->trigger,
		    "fingerprint", at->fpr,
		    "#generation", rows->num[0], "expires_at", expires,
		    "refresh_at", refresh,
		    "expiry_from", at->ans.expiry_from,
		    "#duration_ms", at->duration_ms, NULL);
		/* The key that signed retires the ones it replaced. */
		if (at->src.key_id != NULL)
			store_signing_keys_settle(at->source_id,
			    at->src.key_id);
	}
	log_context(NULL, NULL);

	conn_key(at->name, at->subject, key, sizeof(key));
	cache_announce(key);		/* first: other workers wait */
	cache_reload(key);
	refresh_end(at);
}

/* Attempts of this worker still running (the drain waits for them). */
int
refresh_busy(void)
{
	return (refresh_running > 0);
}

static void
refresh_end(struct attempt *at)
{
	struct cache_entry	*e;

	refresh_running--;
	if (at->renew != NULL)
		kore_timer_remove(at->renew);
	if (at->otel.sampled)
		refresh_span(at);
	if ((e = cache_lookup_conn(at->name, at->subject)) != NULL) {
		e->inflight = 0;
		if (at->ok == -1)
			refresh_refused(at, e);
		refresh_touch(e);
	}

	source_free(&at->src);
	oauth_request_free(&at->oreq);
	oauth_answer_free(&at->ans);
	seal_wipe(at->sealed_token);
	seal_wipe(at->sealed_refresh);
	kore_free(at->seed_digest);
	kore_free(at);

	if (refresh_behind)
		refresh_scan();
}

static int
refresh_ondemand(const char *trigger)
{
	return (!strcmp(trigger, TRIGGER_MIN_TTL) ||
	    !strcmp(trigger, TRIGGER_REJECTED));
}

/*
 * The lease was not won. A token refused for its host's open circuit is
 * not asked for again before the circuit may let a probe through. The
 * requests waiting on e answer at once when it was refused (also when
 * they wait on a scheduled attempt that the circuit stopped); when
 * someone else holds the lease, or the token changed, they wait for it.
 */
static void
refresh_refused(struct attempt *at, struct cache_entry *e)
{
	const char	*why;
	int64_t		now;

	now = isotime_now();
	e->retry_ms = now + REFRESH_LOST_RETRY_MS;
	if (!strcmp(at->why, "circuit") && at->why_until > e->retry_ms)
		e->retry_ms = at->why_until;

	if (!strcmp(at->trigger, TRIGGER_ADMIN))
		return;
	if (!strcmp(at->why, "budget"))
		why = "on-demand refresh budget spent";
	else if (!strcmp(at->why, "backoff"))
		why = "token is in its failure backoff";
	else if (!strcmp(at->why, "circuit"))
		why = "upstream circuit is open";
	else if (!strcmp(at->why, "paused"))
		why = "pre-warming is paused for this token";
	else if (!strcmp(at->why, "reauth"))
		why = "connection needs re-authorization";
	else
		return;

	cache_refused(e, why, at->why_until);
}

/* What this failed attempt says about its upstream host. */
static const char *
refresh_verdict(const struct attempt *at)
{
	if (at->sent_ms == 0)
		return ("none");
	if (at->http_status == 0 || at->http_status >= 500)
		return ("down");

	return ("up");
}

/* The attempt's span, from the request (or the scheduler) to its end. */
static void
refresh_span(struct attempt *at)
{
	struct otel_span	*s;

	if ((s = otel_end(&at->otel, OTEL_KIND_INTERNAL,
	    "kiln.refresh")) == NULL)
		return;
	otel_attr_str(s, "kiln.source", at->name);
	otel_attr_str(s, "kiln.trigger", at->trigger);
	otel_attr_str(s, "kiln.outcome", at->ok == 1 ? "success" :
	    at->ok == -1 ? "not_leased" : "failure");
	if (at->ok == -1 && at->why[0] != '\0')
		otel_attr_str(s, "kiln.lease_refused", at->why);
	if (at->ok == 0)
		otel_error(s, at->error);
}

/*
 * Token exchange (RFC 8693). An exchange is made anew whenever its
 * subject holds a newer generation than the one it was made from (the
 * lease makes that one upstream call per generation, whichever worker
 * asks), and waits, with no upstream call, while its subject (or
 * actor) has no valid token. Returns 1 when e is dealt with here.
 */
static int
refresh_exchange(struct cache_entry *e, int64_t now)
{
	struct cache_entry	*s;

	if (e->kind != KIND_TOKEN_EXCHANGE)
		return (0);
	if (refresh_waiting(e, now))
		return (1);
	if (!e->enabled || e->paused || e->inflight || now < e->retry_ms)
		return (0);
	if ((s = cache_lookup(e->subject)) == NULL ||
	    s->generation <= e->subject_generation)
		return (0);
	/* A failed exchange keeps its backoff, new subject or not. */
	if (e->failures > 0 && now < e->next_ms)
		return (0);

	refresh_request(e, TRIGGER_SUBJECT, s->generation, NULL, NULL);

	return (1);
}

/* Does e wait for its subject or actor to get a valid token? */
static int
refresh_waiting(struct cache_entry *e, int64_t now)
{
	struct cache_entry	*s, *a;

	if (e->kind != KIND_TOKEN_EXCHANGE)
		return (0);

	s = cache_lookup(e->subject);
	a = e->actor[0] != '\0' ? cache_lookup(e->actor) : NULL;
	e->waiting = s == NULL || !s->enabled || !cache_valid(s, now) ||
	    (e->actor[0] != '\0' && (a == NULL || !cache_valid(a, now)));

	return (e->waiting);
}

/* The cache holds a new token of s: exchanges of it follow at once. */
static void
refresh_subject_changed(struct cache_entry *s)
{
	struct cache_entry	*e;
	int64_t			now;

	/* A connection is no subject of an exchange: its source's is. */
	if (s->conn != NULL || !cache_loaded() ||
	    !kiln_config.prewarming_enabled || cache_paused() ||
	    drain_active())
		return;

	now = isotime_now();
	for (e = cache_first(); e != NULL; e = cache_next(e)) {
		if (e->kind == KIND_TOKEN_EXCHANGE &&
		    (!strcmp(e->subject, s->name) ||
		    !strcmp(e->actor, s->name)))
			(void)refresh_exchange(e, now);
	}
}

/* The subject (and actor) token, clear, from this worker's cache. */
static int
refresh_subject_token(struct attempt *at)
{
	struct cache_entry	*s, *a;
	int64_t			now;

	if (at->src.kind != KIND_TOKEN_EXCHANGE)
		return (KORE_RESULT_OK);

	now = isotime_now();
	s = cache_lookup(at->src.subject_source);
	if (s == NULL || !cache_valid(s, now) || s->token == NULL) {
		(void)snprintf(at->error, sizeof(at->error), "subject_source "
		    "%s has no valid token", at->src.subject_source);
		return (KORE_RESULT_ERROR);
	}
	if ((at->src.subject_token = strdup(s->token)) == NULL)
		fatal("strdup");
	at->subject_generation = s->generation;

	if (at->src.actor_source == NULL)
		return (KORE_RESULT_OK);
	a = cache_lookup(at->src.actor_source);
	if (a == NULL || !cache_valid(a, now) || a->token == NULL) {
		(void)snprintf(at->error, sizeof(at->error), "actor_source "
		    "%s has no valid token", at->src.actor_source);
		return (KORE_RESULT_ERROR);
	}
	if ((at->src.actor_token = strdup(a->token)) == NULL)
		fatal("strdup");

	return (KORE_RESULT_OK);
}

/*
 * A connection of a device or a consent flow that never had a token
 * (generation 0): nothing to refresh until the person consents.
 */
static int
refresh_consent_pending(const struct cache_entry *e)
{
	if (e->generation != 0)
		return (0);

	return (e->kind == KIND_DEVICE_CODE ||
	    (e->kind == KIND_AUTHORIZATION_CODE && e->conn != NULL));
}
