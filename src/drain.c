/*
 * drain.c: the graceful drain of a worker on SIGTERM or SIGQUIT.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <yajl/yajl_tree.h>

#include <kore/kore.h>
#include <kore/hooks.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>
#include <kore/seccomp.h>

#include "kiln.h"

#define DRAIN_GRACE_MS		250

static void	drain_signal(int);
static void	drain_tick(void *, u_int64_t);
static void	drain_listeners(void);
static void	drain_backlog(struct listener *);
static void	drain_retire(struct listener *);

/* What the drain needs beyond Kore's own worker sandbox. */
KORE_SECCOMP_FILTER("kiln",
	KORE_SYSCALL_ALLOW(shutdown),
	KORE_SYSCALL_ALLOW(tgkill),
	KORE_SYSCALL_ALLOW(gettid),
	KORE_SYSCALL_ALLOW(dup),
	KORE_SYSCALL_ALLOW(sched_yield),
);

/*
 * Graceful drain. Kore's workers quit at once on SIGTERM; kiln's take
 * the signal themselves: readiness turns 503, the listener stops
 * accepting (new connections are refused, so clients go elsewhere),
 * WebSockets are told to reconnect, requests and refreshes in flight
 * finish, then the signal is handed back to Kore, bounded by
 * KILN_DRAIN_TIMEOUT.
 */
static struct {
	volatile sig_atomic_t	signal;
	int			active;
	int64_t			started;
	int64_t			deadline;
	struct sigaction	saved_term;
	struct sigaction	saved_quit;
	LIST_HEAD(, listener)	retired;
	int			(*busy)(void);
	void			(*on_start)(void);
} drain;

int
drain_active(void)
{
	return (drain.active);
}

static void
drain_signal(int sig)
{
	drain.signal = sig;
}

static void
drain_tick(void *unused, u_int64_t unused2)
{
	int			sig, busy;

	if (drain.signal == 0)
		return;

	if (!drain.active) {
		drain.active = 1;
		drain.started = isotime_now();
		drain.deadline = drain.started + kiln_config.drain_ms;
		drain_listeners();
		log_kv(LOG_LVL_INFO, "draining", "#in_flight",
		    (int64_t)http_request_count, NULL);
		if (drain.on_start != NULL)
			drain.on_start();
	}

	/*
	 * A short grace lets connections accepted from the queue send
	 * their request; then wait for what is in flight.
	 */
	busy = http_request_count > 0 || (drain.busy != NULL && drain.busy());
	if (isotime_now() < drain.started + DRAIN_GRACE_MS ||
	    (busy && isotime_now() < drain.deadline))
		return;

	log_kv(LOG_LVL_INFO, "drained", "#in_flight",
	    (int64_t)http_request_count, NULL);
	sig = drain.signal;
	(void)sigaction(SIGTERM, &drain.saved_term, NULL);
	(void)sigaction(SIGQUIT, &drain.saved_quit, NULL);
	drain.signal = 0;
	(void)raise(sig);
}

/*
 * Stop accepting. Each worker drops the listeners from its own event
 * loop; the last one to do so first accepts what queued in the meantime,
 * then shuts the shared socket down, so that from then on connections
 * are refused (the parent still holds a copy, and a listening socket
 * nobody accepts on would let them hang, then reset them). Shutting it
 * down earlier would fail the workers that still poll it.
 */
static void
drain_listeners(void)
{
	struct kore_server	*srv;
	struct listener		*l;
	int			fds[8], n, i, last;

	/* Out of this worker's epoll first: a dup keeps it registered. */
	if (worker->has_lock)
		kore_platform_disable_accept();

	last = shared_drain_arrive() >= worker_count - KORE_WORKER_BASE;
	/* The last one takes the whole queue, whatever the others hold. */
	if (last)
		worker_fair_accept = 0;

	n = 0;
	LIST_FOREACH(srv, &kore_servers, list) {
		while ((l = LIST_FIRST(&srv->listeners)) != NULL) {
			/* Connections that queued meanwhile are served. */
			if (last)
				drain_backlog(l);
			if (n < 8 && (fds[n] = dup(l->fd)) != -1)
				n++;
			drain_retire(l);
		}
	}

	for (i = 0; i < n; i++) {
		if (last)
			(void)shutdown(fds[i], SHUT_RDWR);
		(void)close(fds[i]);
	}
}

/* Accept what waits in the listen queue: it is served, not reset. */
static void
drain_backlog(struct listener *l)
{
	u_int32_t	before;

	do {
		before = worker_active_connections;
		l->evt.flags |= KORE_EVENT_READ;
		kore_listener_accept(l, 0);
	} while (worker_active_connections != before);
}

/*
 * A listener that no longer accepts. Its connections still point at it
 * (c->owner: Kore reads its server for every request on a keep-alive
 * connection), so it is closed but kept until the worker exits.
 */
static void
drain_retire(struct listener *l)
{
	LIST_REMOVE(l, list);
	if (l->fd != -1)
		(void)close(l->fd);
	l->fd = -1;
	LIST_INSERT_HEAD(&drain.retired, l, list);
}

/*
 * busy: work of the worker still in flight (beyond HTTP requests);
 * on_start: told once when the drain begins. Both may be NULL.
 */
void
drain_init(int (*busy)(void), void (*on_start)(void))
{
	struct sigaction	sa;

	drain.busy = busy;
	drain.on_start = on_start;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = drain_signal;
	(void)sigfillset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, &drain.saved_term) == -1 ||
	    sigaction(SIGQUIT, &sa, &drain.saved_quit) == -1)
		fatal("sigaction: %s", errno_s);

	(void)kore_timer_add(drain_tick, 50, NULL, 0);
}
