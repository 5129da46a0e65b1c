/*
 * kiln.c: Kore's hooks and the wiring of the parts.
 *
 * The parent reads the runtime kore.conf, checks the environment, runs
 * the migrations and upserts the sources file, all before any worker is
 * forked. Each worker then loads its token cache and runs its scheduler.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <yajl/yajl_tree.h>

#include <kore/kore.h>
#include <kore/hooks.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>
#include <kore/seccomp.h>

#include "kiln.h"

#define SOURCES_FILE_MAX	(4 * 1024 * 1024)
#define DRAIN_GRACE_MS		250

static void	usage(void) __attribute__((noreturn));
static void	die(const char *) __attribute__((noreturn));
static void	drain_setup(void);
static void	drain_signal(int);
static void	drain_tick(void *, u_int64_t);
static void	drain_listeners(void);
static void	drain_backlog(struct listener *);
static void	drain_retire(struct listener *);
static char	*sources_read(const char *, char *, size_t);

extern int	kore_foreground;

/* What the drain needs beyond Kore's own worker sandbox. */
KORE_SECCOMP_FILTER("kiln",
	KORE_SYSCALL_ALLOW(shutdown),
	KORE_SYSCALL_ALLOW(tgkill),
	KORE_SYSCALL_ALLOW(gettid),
	KORE_SYSCALL_ALLOW(dup),
	KORE_SYSCALL_ALLOW(sched_yield),
);

void
kore_parent_configure(int argc, char **argv)
{
	const char	*conf;
	int		ch;
	char		err[KILN_ERR_MAX], hash[AUTH_HASH_LEN + 1];

	/* Line buffered: nothing half-written is copied into the workers. */
	(void)setvbuf(stdout, NULL, _IOLBF, 0);

	/* A reload before Kore takes SIGHUP over must not end the start. */
	(void)signal(SIGHUP, SIG_IGN);

	conf = "kore.conf";
	while ((ch = getopt(argc, argv, "+c:fhnqrv")) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 'f':
			kore_foreground = 1;
			break;
		case 'n':
		case 'r':
			break;
		case 'q':
			kore_quiet = 1;
			break;
		case 'v':
			printf("kiln %s\n", KILN_VERSION);
			exit(0);
		case 'h':
		default:
			usage();
		}
	}

	/* kiln check, migrate, ...: run, exit, Kore never starts. */
	if (optind < argc) {
		if ((ch = ship_command(conf, argc - optind, argv + optind)) < 0)
			usage();
		exit(ch);
	}

	/*
	 * libpq tries GSSAPI encryption first on TCP connections; Kerberos
	 * then reads its configuration directories, which the workers'
	 * sandbox forbids. Off unless asked for.
	 */
	(void)setenv("PGGSSENCMODE", "disable", 0);

	/* kiln does not chroot nor change user: run it as the right user. */
	skip_chroot = 1;
	skip_runas = 1;

	if (!log_setup(getenv("LOG_FORMAT"), getenv("LOG_LEVEL"), err,
	    sizeof(err)))
		die(err);
	if (!config_load(conf, err, sizeof(err)))
		die(err);
	if (!config_read_kore(conf, err, sizeof(err)))
		die(err);

	store_register();
	shared_init();
	if (!store_migrate(err, sizeof(err)))
		die(err);
	if (kiln_config.admin_key != NULL) {
		auth_key_hash(kiln_config.admin_key, hash);
		if (!store_key_bootstrap(hash, err, sizeof(err)))
			die(err);
	}
	if (kiln_config.sources_file != NULL &&
	    !kiln_sources_load(kiln_config.sources_file, 1, err, sizeof(err)))
		die(err);
	ship_parent_init();

	log_kv(LOG_LVL_INFO, "kiln configured", "config", conf,
	    "version", KILN_VERSION, NULL);
}

void
kore_worker_configure(void)
{
	u_int8_t	rnd[2];
	size_t		len;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		fatal("RAND_bytes");
	len = strlen(kiln_config.owner);
	(void)snprintf(kiln_config.owner + len, sizeof(kiln_config.owner) -
	    len, ":w%u:%02x%02x", worker->id, rnd[0], rnd[1]);

	cache_init();
	auth_init();
	auth_keys_reload();
	auth_sessions_reload();
	refresh_init();
	reseal_init();
	dash_init();
	drain_setup();
	ship_worker_init();
}

void
kore_worker_teardown(void)
{
	store_release_leases();
}

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
} drain;

int
kiln_draining(void)
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
	int			sig;

	if (drain.signal == 0)
		return;

	if (!drain.active) {
		drain.active = 1;
		drain.started = kiln_now();
		drain.deadline = drain.started + kiln_config.drain_ms;
		drain_listeners();
		log_kv(LOG_LVL_INFO, "draining", "#in_flight",
		    (int64_t)http_request_count, NULL);
		dash_shutdown();
	}

	/*
	 * A short grace lets connections accepted from the queue send
	 * their request; then wait for what is in flight.
	 */
	if (kiln_now() < drain.started + DRAIN_GRACE_MS ||
	    ((http_request_count > 0 || refresh_busy()) &&
	    kiln_now() < drain.deadline))
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

static void
drain_setup(void)
{
	struct sigaction	sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = drain_signal;
	(void)sigfillset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, &drain.saved_term) == -1 ||
	    sigaction(SIGQUIT, &sa, &drain.saved_quit) == -1)
		fatal("sigaction: %s", errno_s);

	(void)kore_timer_add(drain_tick, 50, NULL, 0);
}

int64_t
kiln_now(void)
{
	struct timespec	ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/*
 * KILN_BENCH_ROUTE=1 only: Kore's own constant JSON route, the ceiling
 * the benchmarks compare the current-token path with. The body has the
 * size of a token answer.
 */
int
kiln_bench_constant(struct http_request *req)
{
	static const char	body[] =
	    "{\"agent_name\":\"bench\",\"token\":\"0123456789abcdef0123456789"
	    "abcdef0123456789abcdef0123456789abcdef\",\"token_type\":\"Bearer"
	    "\",\"expires_at\":\"2026-11-21T19:26:15.611Z\",\"expires_in\":"
	    "1799,\"valid\":true,\"message\":\"Current token retrieved "
	    "successfully\",\"fingerprint\":\"6d0087ddcbb6\",\"generation\":1}";

	http_response_header(req, "Content-Type",
	    "application/json; charset=utf-8");
	http_response_header(req, "Cache-Control", "no-store");
	http_response(req, 200, body, sizeof(body) - 1);

	return (KORE_RESULT_OK);
}

/*
 * KILN_SOURCES_FILE: {"sources":[...]}, upserted at every start (apply)
 * and on SIGHUP, or only checked (kiln check).
 */
int
kiln_sources_load(const char *path, int apply, char *err, size_t errlen)
{
	yajl_val	root, list;
	struct source	*src;
	const char	*key[] = { "sources", NULL };
	size_t		i, n, done;
	int		ret;
	char		*text, perr[128], why[KILN_ERR_MAX];

	if ((text = sources_read(path, err, errlen)) == NULL)
		return (KORE_RESULT_ERROR);
	root = yajl_tree_parse(text, perr, sizeof(perr));
	seal_wipe(text);
	if (root == NULL) {
		(void)snprintf(err, errlen, "KILN_SOURCES_FILE: %s: not "
		    "valid JSON", path);
		return (KORE_RESULT_ERROR);
	}

	if ((list = yajl_tree_get(root, key, yajl_t_array)) == NULL) {
		(void)snprintf(err, errlen, "KILN_SOURCES_FILE: %s: "
		    "expected {\"sources\":[...]}", path);
		yajl_tree_free(root);
		return (KORE_RESULT_ERROR);
	}

	ret = KORE_RESULT_OK;
	n = YAJL_GET_ARRAY(list)->len;
	src = kore_calloc(n ? n : 1, sizeof(*src));
	for (done = 0; done < n; done++) {
		if (!source_from_json(YAJL_GET_ARRAY(list)->values[done],
		    SOURCE_ALLOW_ENV, &src[done], why, sizeof(why))) {
			(void)snprintf(err, errlen, "KILN_SOURCES_FILE: "
			    "sources[%zu].%s", done, why);
			ret = KORE_RESULT_ERROR;
			break;
		}
	}
	yajl_tree_free(root);

	if (ret && apply)
		ret = store_upsert_sources(src, n, err, errlen);

	/* A source that failed half way is freed too. */
	for (i = 0; i < n && i <= done; i++)
		source_free(&src[i]);
	kore_free(src);

	return (ret);
}

static char *
sources_read(const char *path, char *err, size_t errlen)
{
	FILE		*fp;
	size_t		len;
	char		*text;

	if ((fp = fopen(path, "r")) == NULL) {
		(void)snprintf(err, errlen, "KILN_SOURCES_FILE: cannot open %s",
		    path);
		return (NULL);
	}

	if ((text = malloc(SOURCES_FILE_MAX + 1)) == NULL)
		fatal("malloc");
	len = fread(text, 1, SOURCES_FILE_MAX + 1, fp);
	(void)fclose(fp);

	if (len > SOURCES_FILE_MAX) {
		free(text);
		(void)snprintf(err, errlen, "KILN_SOURCES_FILE: %s: too large",
		    path);
		return (NULL);
	}
	text[len] = '\0';

	return (text);
}

static void
die(const char *msg)
{
	log_kv(LOG_LVL_ERROR, "kiln cannot start", "error", msg, NULL);
	fprintf(stderr, "kiln: %s\n", msg);
	exit(1);
}

static void
usage(void)
{
	fprintf(stderr, "usage: kiln [-fhqv] [-c kore.conf] "
	    "[version | check | migrate | keygen | reseal]\n");
	fprintf(stderr, "\t-c\tconfiguration file (default ./kore.conf)\n");
	fprintf(stderr, "\t-f\tstay in the foreground\n");
	fprintf(stderr, "\t-q\tquiet\n");
	fprintf(stderr, "\t-v\tprint the version\n");
	exit(1);
}
