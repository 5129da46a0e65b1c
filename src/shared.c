/*
 * shared.c: the state every worker of one instance shares, in a single
 * MAP_SHARED region made by the parent before the workers fork: request
 * and refresh counters and latency histograms (for /metrics), the rate
 * limit buckets, the upstream circuit states, the dashboard sockets
 * each session holds, and the API keys revoked lately (so that every
 * worker refuses a key the moment one revoked it, before the NOTIFY
 * reaches the others).
 *
 * Counters are updated with atomic adds; the tables that need more than
 * one word at a time take a small spin lock. A worker that dies holding
 * it cannot wedge the others: the lock is stolen after a bounded spin.
 */

#include <sys/types.h>
#include <sys/mman.h>

#include <sched.h>
#include <stdio.h>
#include <string.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

#define LOCK_SPINS		100000

static const double	buckets[SHARED_BUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1.0, 2.5, 5.0, 10.0
};

static const int	statuses[SHARED_STATUSES] = {
	200, 201, 202, 204, 400, 401, 403, 404, 405, 409, 413, 415, 422,
	429, 500, 503, 0
};

static struct shared	*shm;

static void	shared_lock(void);
static void	shared_unlock(void);
static int	shared_bucket(u_int64_t);
static void	shared_host(const char *, char *, size_t);
static u_int32_t	shared_ws_total(const struct shared_ws *);
static struct shared_minute	*shared_minute_now(void);

void
shared_init(void)
{
	shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shm == MAP_FAILED)
		fatal("mmap shared region: %s", errno_s);
	memset(shm, 0, sizeof(*shm));
	shm->started_ms = isotime_now();
	shm->reseal_retired = -1;
	shm->reseal_unbound = -1;
}

const struct shared *
shared_get(void)
{
	return (shm);
}

double
shared_bucket_le(int i)
{
	return (buckets[i]);
}

int
shared_status_code(int i)
{
	return (statuses[i]);
}

void
shared_request(int route, int status, u_int64_t us)
{
	int		i;

	if (route < 0 || route >= SHARED_ROUTES)
		route = SHARED_ROUTES - 1;
	for (i = 0; statuses[i] != 0 && statuses[i] != status; i++)
		;

	__atomic_add_fetch(&shm->requests[route][i], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&shm->latency[route][shared_bucket(us)], 1,
	    __ATOMIC_RELAXED);
	__atomic_add_fetch(&shm->latency_sum_us[route], us, __ATOMIC_RELAXED);
	shared_minute_now()->requests++;
}

void
shared_upstream(const char *url, int ok, u_int64_t us)
{
	struct shared_host	*h, *slot;
	int64_t			now;
	int			i;
	char			host[SHARED_HOST_LEN];

	__atomic_add_fetch(&shm->upstream[shared_bucket(us)], 1,
	    __ATOMIC_RELAXED);
	__atomic_add_fetch(&shm->upstream_sum_us, us, __ATOMIC_RELAXED);

	shared_host(url, host, sizeof(host));
	now = isotime_now();

	shared_lock();
	slot = NULL;
	for (i = 0; i < SHARED_HOSTS; i++) {
		h = &shm->hosts[i];
		if (!strcmp(h->host, host)) {
			slot = h;
			break;
		}
		if (slot == NULL && h->host[0] == '\0')
			slot = h;
	}
	if (slot != NULL) {
		if (slot->host[0] == '\0')
			(void)kore_strlcpy(slot->host, host,
			    sizeof(slot->host));
		if (ok) {
			slot->failures = 0;
			slot->open_until = 0;
		} else if (++slot->failures >= kiln_config.circuit_failures) {
			slot->open_until = now + kiln_config.circuit_open_ms;
		}
		slot->last_ms = now;
		if (!ok)
			shared_minute_now()->host_errors[slot - shm->hosts]++;
	}
	shared_unlock();
}

/* closed, open, or half-open (open period over, next result decides). */
const char *
shared_circuit_state(const struct shared_host *h, int64_t now)
{
	if (h->failures < kiln_config.circuit_failures)
		return ("closed");
	if (now < h->open_until)
		return ("open");

	return ("half-open");
}

void
shared_refresh(const char *name, int ok)
{
	struct shared_source	*s;
	u_int32_t		i, h;

	h = (u_int32_t)hash_fnv1a_str(name);
	shared_lock();
	for (i = 0; i < SHARED_PROBES; i++) {
		s = &shm->sources[(h + i) % SHARED_SOURCES];
		if (s->name[0] == '\0')
			(void)kore_strlcpy(s->name, name, sizeof(s->name));
		else if (strcmp(s->name, name))
			continue;
		s->attempts++;
		if (!ok)
			s->failures++;
		break;
	}
	shared_unlock();
}

/* A worker stopped accepting; returns how many have. */
int
shared_drain_arrive(void)
{
	return (__atomic_add_fetch(&shm->draining, 1, __ATOMIC_SEQ_CST));
}

void
shared_pg_error(void)
{
	__atomic_add_fetch(&shm->pg_errors, 1, __ATOMIC_RELAXED);
}

void
shared_websockets(int delta)
{
	__atomic_add_fetch(&shm->websockets, delta, __ATOMIC_RELAXED);
}

/*
 * One token from the bucket of key (limit per minute, refilled
 * continuously). Returns 1 when allowed; remaining and the seconds until
 * a token is back are given for the X-RateLimit headers.
 */
int
shared_rate_take(u_int64_t key, u_int32_t limit, int64_t now,
    u_int32_t *remaining, u_int32_t *reset)
{
	struct shared_rate	*b, *slot;
	double			rate, wait;
	u_int32_t		i;
	int			allowed;

	rate = limit / 60000.0;
	shared_lock();

	b = NULL;
	slot = NULL;
	for (i = 0; i < SHARED_PROBES; i++) {
		b = &shm->rates[(key + i) % SHARED_RATES];
		if (b->key == key)
			break;
		if (slot == NULL || b->last_ms < slot->last_ms)
			slot = b;
		b = NULL;
	}
	if (b == NULL) {
		/* A new principal takes the stalest slot it probed. */
		b = slot;
		b->key = key;
		b->tokens = limit;
		b->last_ms = now;
	}

	b->tokens += (now - b->last_ms) * rate;
	if (b->tokens > limit)
		b->tokens = limit;
	b->last_ms = now;

	allowed = b->tokens >= 1.0;
	if (allowed)
		b->tokens -= 1.0;

	*remaining = (u_int32_t)b->tokens;
	wait = b->tokens >= 1.0 ? 0 : (1.0 - b->tokens) / rate / 1000.0;
	*reset = (u_int32_t)(wait + 0.999);

	shared_unlock();

	return (allowed);
}

/* The re-seal pass's state and counts (-1: not counted yet). */
void
shared_reseal(int state, int64_t retired, int64_t unbound)
{
	shm->reseal_retired = retired;
	shm->reseal_unbound = unbound;
	shm->reseal_state = state;
}

/*
 * One more dashboard socket of session key on worker wid, unless the
 * session holds max already (over every worker). The counts are kept
 * per worker so that a worker that starts again (after a crash) forgets
 * exactly the sockets that died with it.
 */
int
shared_ws_open(u_int64_t key, u_int32_t max, u_int32_t wid)
{
	struct shared_ws	*w, *slot;
	u_int32_t		i, total;
	int			ok;

	wid %= SHARED_WS_WORKERS;
	shared_lock();
	w = slot = NULL;
	for (i = 0; i < SHARED_PROBES * 2 && w == NULL; i++) {
		w = &shm->ws[(key + i) % SHARED_WS_SESSIONS];
		if (w->key == key)
			break;
		if (slot == NULL && shared_ws_total(w) == 0)
			slot = w;
		w = NULL;
	}
	if (w == NULL && slot != NULL) {
		w = slot;
		memset(w, 0, sizeof(*w));
		w->key = key;
	}

	ok = 0;
	if (w != NULL) {
		total = shared_ws_total(w);
		if (total < max && w->count[wid] < UINT8_MAX) {
			w->count[wid]++;
			ok = 1;
		}
	}
	shared_unlock();

	return (ok);
}

void
shared_ws_close(u_int64_t key, u_int32_t wid)
{
	struct shared_ws	*w;
	u_int32_t		i;

	wid %= SHARED_WS_WORKERS;
	shared_lock();
	for (i = 0; i < SHARED_PROBES * 2; i++) {
		w = &shm->ws[(key + i) % SHARED_WS_SESSIONS];
		if (w->key == key && w->count[wid] > 0) {
			w->count[wid]--;
			break;
		}
	}
	shared_unlock();
}

/* A worker starts: it holds no socket. */
void
shared_ws_reset(u_int32_t wid)
{
	u_int32_t	i;

	wid %= SHARED_WS_WORKERS;
	shared_lock();
	for (i = 0; i < SHARED_WS_SESSIONS; i++)
		shm->ws[i].count[wid] = 0;
	shared_unlock();
}

static u_int32_t
shared_ws_total(const struct shared_ws *w)
{
	u_int32_t	i, total;

	for (total = 0, i = 0; i < SHARED_WS_WORKERS; i++)
		total += w->count[i];

	return (total);
}

/* Key id was revoked; ids are never reused, so the list only grows. */
void
shared_key_revoke(int64_t id)
{
	if (shared_key_revoked(id))
		return;
	shared_lock();
	__atomic_store_n(&shm->revoked[shm->nrevoked++ % SHARED_REVOKED], id,
	    __ATOMIC_RELEASE);
	shared_unlock();
}

int
shared_key_revoked(int64_t id)
{
	int		i;

	if (id <= 0)
		return (0);
	for (i = 0; i < SHARED_REVOKED; i++) {
		if (__atomic_load_n(&shm->revoked[i], __ATOMIC_ACQUIRE) == id)
			return (1);
	}

	return (0);
}

static void
shared_lock(void)
{
	int		i;

	for (i = 0; __atomic_test_and_set(&shm->lock, __ATOMIC_ACQUIRE); i++) {
		if (i >= LOCK_SPINS)
			return;
		if (i % 64 == 63)
			sched_yield();
	}
}

static void
shared_unlock(void)
{
	__atomic_clear(&shm->lock, __ATOMIC_RELEASE);
}

static int
shared_bucket(u_int64_t us)
{
	int		i;

	for (i = 0; i < SHARED_BUCKETS; i++) {
		if (us <= (u_int64_t)(buckets[i] * 1e6))
			break;
	}

	return (i);
}

static void
shared_host(const char *url, char *host, size_t len)
{
	const char	*p, *at;
	size_t		n;

	if ((p = strstr(url, "://")) != NULL)
		url = p + 3;
	n = strcspn(url, "/?#");
	if ((at = memchr(url, '@', n)) != NULL) {
		n -= at + 1 - url;
		url = at + 1;
	}
	if (n >= len)
		n = len - 1;
	memcpy(host, url, n);
	host[n] = '\0';
}

/* A reload changed the log level: the workers take it from here. */
void
shared_log_level(int level)
{
	shm->log_level = level;
	shm->log_gen++;
}

/*
 * The long-polls and event streams a worker holds, set (not added) by
 * that worker: a worker that was restarted starts again from its own 0.
 */
void
shared_push(u_int32_t wid, int64_t waiters, int64_t streams)
{
	if (wid >= SHARED_WS_WORKERS)
		return;
	__atomic_store_n(&shm->push_waiters[wid], waiters, __ATOMIC_RELAXED);
	__atomic_store_n(&shm->push_streams[wid], streams, __ATOMIC_RELAXED);
}

void
shared_push_totals(int64_t *waiters, int64_t *streams)
{
	u_int32_t	i;

	*waiters = *streams = 0;
	for (i = 0; i < SHARED_WS_WORKERS; i++) {
		*waiters += __atomic_load_n(&shm->push_waiters[i],
		    __ATOMIC_RELAXED);
		*streams += __atomic_load_n(&shm->push_streams[i],
		    __ATOMIC_RELAXED);
	}
}

/* A refresh attempt ended, after ms: the charts' minute counts it. */
void
shared_minute_refresh(int ok, int64_t ms)
{
	struct shared_minute	*m;

	m = shared_minute_now();
	m->refreshes++;
	if (!ok)
		m->refresh_failures++;
	m->refresh_ms[shared_bucket(ms < 0 ? 0 : (u_int64_t)ms * 1000)]++;
}

/*
 * The last SHARED_MINUTES minutes up to minute now (since the epoch),
 * oldest first, summed over the workers. A worker may be writing its
 * bucket meanwhile: a chart can be off by what it adds, no more.
 */
void
shared_minutes(int64_t now, struct shared_minute *out)
{
	const struct shared_minute	*m;
	struct shared_minute		*o;
	int64_t				minute;
	int				w, i, b;

	memset(out, 0, sizeof(*out) * SHARED_MINUTES);
	for (i = 0; i < SHARED_MINUTES; i++) {
		o = &out[i];
		minute = now - (SHARED_MINUTES - 1) + i;
		o->minute = minute;
		for (w = 0; w < SHARED_WS_WORKERS; w++) {
			m = &shm->minutes[w][minute % SHARED_MINUTES];
			if (m->minute != minute)
				continue;
			o->requests += m->requests;
			o->refreshes += m->refreshes;
			o->refresh_failures += m->refresh_failures;
			for (b = 0; b <= SHARED_BUCKETS; b++)
				o->refresh_ms[b] += m->refresh_ms[b];
			for (b = 0; b < SHARED_HOSTS; b++)
				o->host_errors[b] += m->host_errors[b];
		}
	}
}

/* This worker's bucket of the current minute, emptied when it is new. */
static struct shared_minute *
shared_minute_now(void)
{
	struct shared_minute	*m;
	int64_t			minute;
	u_int32_t		wid;

	minute = isotime_now() / 60000;
	wid = worker != NULL ? worker->id % SHARED_WS_WORKERS : 0;
	m = &shm->minutes[wid][minute % SHARED_MINUTES];
	if (m->minute != minute) {
		memset(m, 0, sizeof(*m));
		m->minute = minute;
	}

	return (m);
}
