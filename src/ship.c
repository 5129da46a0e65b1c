/*
 * ship.c: what an operator and a service manager need around the server.
 *
 * The subcommands (kiln version, check, migrate, keygen, reseal) run in
 * the parent before Kore starts anything, with blocking libpq, and exit
 * with a status a deploy pipeline can act on: 0 done, 1 failed.
 *
 * Under systemd (Type=notify) the parent tells the manager READY=1 once
 * every worker has loaded its token cache, and WATCHDOG=1 each time every
 * worker has checked in again; the sd_notify datagram is written here,
 * without libsystemd. Only the parent may talk to the manager (it is the
 * main PID), so the workers report to it with Kore's messages.
 *
 * SIGHUP: Kore's parent hands the signal to every worker; the first one
 * asks the parent to reload, and the parent re-reads the sources file
 * (upserted: changes reach the workers by NOTIFY like any other) and the
 * LOG_LEVEL of KILN_ENV_FILE, which the workers pick up from shared
 * memory. No listener nor connection is touched.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <ctype.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

#define SHIP_MSG_READY		(KORE_MSG_APP_BASE + 20)
#define SHIP_MSG_ALIVE		(KORE_MSG_APP_BASE + 21)
#define SHIP_MSG_RELOAD		(KORE_MSG_APP_BASE + 22)
#define SHIP_TICK_MS		100
#define SHIP_ENV_LINE		4096
#define SHIP_RELOAD_WORKER	1

static int	cmd_check(const char *);
static int	cmd_migrate(const char *);
static int	cmd_keygen(void);
static int	cmd_reseal(const char *);
static int	cmd_setup(const char *, const char *);
static int	cmd_fail(const char *, const char *);
static void	ship_msg_ready(struct kore_msg *, const void *);
static void	ship_msg_alive(struct kore_msg *, const void *);
static void	ship_msg_reload(struct kore_msg *, const void *);
static void	ship_hup(int);
static void	ship_tick(void *, u_int64_t);
static u_int64_t	ship_all_workers(void);
static char	*ship_env_get(const char *, const char *);

static struct {
	u_int64_t		watchdog_ms;	/* 0: no watchdog asked */
	u_int64_t		ready;		/* parent */
	u_int64_t		alive;		/* parent */
	int			notified;
	volatile sig_atomic_t	hup;		/* worker */
	int			sent_ready;	/* worker */
	u_int64_t		last_alive;	/* worker */
	u_int64_t		log_gen;	/* worker */
} ship;

/* kiln SUBCOMMAND: the exit status of the command, or -1 if unknown. */
int
ship_command(const char *conf, int argc, char **argv)
{
	if (argc != 1) {
		if (argc > 1)
			return (cmd_fail(argv[0], "unexpected arguments"));
		return (-1);
	}

	if (!strcmp(argv[0], "version")) {
		printf("kiln %s\n", KILN_VERSION);
		return (0);
	}
	if (!strcmp(argv[0], "keygen"))
		return (cmd_keygen());
	if (!strcmp(argv[0], "check"))
		return (cmd_check(conf));
	if (!strcmp(argv[0], "migrate"))
		return (cmd_migrate(conf));
	if (!strcmp(argv[0], "reseal"))
		return (cmd_reseal(conf));

	return (-1);
}

/* 32 random bytes, base64: a KILN_MASTER_KEY. */
static int
cmd_keygen(void)
{
	u_int8_t	key[SEAL_KEY_LEN];
	char		b64[4 * ((SEAL_KEY_LEN + 2) / 3) + 1];

	if (RAND_bytes(key, sizeof(key)) != 1)
		return (cmd_fail("keygen", "RAND_bytes failed"));
	(void)EVP_EncodeBlock((unsigned char *)b64, key, sizeof(key));
	OPENSSL_cleanse(key, sizeof(key));
	printf("%s\n", b64);
	OPENSSL_cleanse(b64, sizeof(b64));

	return (0);
}

/*
 * The configuration, the environment, the database, the migrations and
 * the master key, checked as at a start but without starting anything.
 */
static int
cmd_check(const char *conf)
{
	struct reseal_tally	t;
	int			pending, total;
	char			err[KILN_ERR_MAX];

	if (cmd_setup("check", conf) != 0)
		return (1);
	printf("configuration: ok (%s)\n", conf);

	if (kiln_config.sources_file != NULL) {
		if (!sources_file_load(kiln_config.sources_file, 0, err,
		    sizeof(err)))
			return (cmd_fail("check", err));
		printf("sources file: ok (%s)\n", kiln_config.sources_file);
	}

	if (!store_migrations_pending(&pending, &total, err, sizeof(err)))
		return (cmd_fail("check", err));
	printf("database: reachable\n");
	printf("migrations: %d of %d pending (%s)\n", pending, total,
	    kiln_config.migrations_dir);

	if (pending == total) {
		printf("master key: no stored rows yet\n");
		return (0);
	}
	if (!reseal_sync(0, &t, err, sizeof(err)))
		return (cmd_fail("check", err));
	if (t.unopened > 0) {
		(void)snprintf(err, sizeof(err), "master key: %lld of %lld "
		    "stored values do not open with the keys given "
		    "(KILN_MASTER_KEY, KILN_MASTER_KEY_OLD)",
		    (long long)t.unopened, (long long)t.values);
		return (cmd_fail("check", err));
	}
	printf("master key: opens all %lld stored values (%lld not under "
	    "the current key)\n", (long long)t.values, (long long)t.stale);

	return (0);
}

static int
cmd_migrate(const char *conf)
{
	int		before, after, total;
	char		err[KILN_ERR_MAX];

	if (cmd_setup("migrate", conf) != 0)
		return (1);
	if (!store_migrations_pending(&before, &total, err, sizeof(err)) ||
	    !store_migrate(err, sizeof(err)) ||
	    !store_migrations_pending(&after, &total, err, sizeof(err)))
		return (cmd_fail("migrate", err));

	printf("migrations: %d applied, %d of %d pending\n", before - after,
	    after, total);

	return (0);
}

static int
cmd_reseal(const char *conf)
{
	struct reseal_tally	t;
	char			err[KILN_ERR_MAX];

	if (cmd_setup("reseal", conf) != 0)
		return (1);
	if (!reseal_sync(1, &t, err, sizeof(err)))
		return (cmd_fail("reseal", err));

	printf("resealed: %lld values in %lld rows under key %s; "
	    "%lld could not be opened\n", (long long)t.written,
	    (long long)t.rows, seal_key_id(), (long long)t.unopened);
	if (t.unopened > 0) {
		(void)snprintf(err, sizeof(err), "%lld stored values open "
		    "with no key given (KILN_MASTER_KEY_OLD?)",
		    (long long)t.unopened);
		return (cmd_fail("reseal", err));
	}

	return (0);
}

static int
cmd_setup(const char *cmd, const char *conf)
{
	char		err[KILN_ERR_MAX];

	/* A deploy pipeline waits seconds, not the start's 30 of retries. */
	(void)setenv("PGCONNECT_TIMEOUT", "5", 0);
	store_sync_once();

	if (!log_setup(getenv("LOG_FORMAT"), getenv("LOG_LEVEL"), err,
	    sizeof(err)) || !config_load(conf, err, sizeof(err)) ||
	    !config_check_kore(conf, err, sizeof(err)))
		return (cmd_fail(cmd, err));

	return (0);
}

static int
cmd_fail(const char *cmd, const char *msg)
{
	fprintf(stderr, "kiln %s: %s\n", cmd, msg);
	return (1);
}

/*
 * Parent, before the fork: the messages of the workers, and the
 * watchdog interval systemd asked for (the workers inherit it).
 */
void
ship_parent_init(void)
{
	const char	*usec, *pid;
	long long	v;
	char		*end;

	(void)kore_msg_register(SHIP_MSG_READY, ship_msg_ready);
	(void)kore_msg_register(SHIP_MSG_ALIVE, ship_msg_alive);
	(void)kore_msg_register(SHIP_MSG_RELOAD, ship_msg_reload);

	if ((usec = getenv("WATCHDOG_USEC")) == NULL)
		return;
	pid = getenv("WATCHDOG_PID");
	if (pid != NULL && strtoll(pid, NULL, 10) != (long long)getpid())
		return;
	v = strtoll(usec, &end, 10);
	if (*end != '\0' || v <= 0)
		return;

	/* Twice per interval, as sd_watchdog_enabled(3) advises. */
	ship.watchdog_ms = (u_int64_t)v / 2000;
	if (ship.watchdog_ms == 0)
		ship.watchdog_ms = 1;
}

/* Send one sd_notify datagram to NOTIFY_SOCKET, if there is one. */
void
ship_notify(const char *state)
{
	struct sockaddr_un	sun;
	const char		*path;
	socklen_t		len;
	size_t			plen;
	int			fd;

	if ((path = getenv("NOTIFY_SOCKET")) == NULL ||
	    (path[0] != '/' && path[0] != '@'))
		return;
	if ((plen = strlen(path)) >= sizeof(sun.sun_path))
		return;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, plen);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	len = offsetof(struct sockaddr_un, sun_path) + plen;

	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL,
	    (struct sockaddr *)&sun, len) == -1) {
		log_kv(LOG_LVL_WARN, "NOTIFY_SOCKET: cannot send", "error",
		    errno_s, NULL);
	}
	(void)close(fd);
}

static u_int64_t
ship_all_workers(void)
{
	int		n;

	n = worker_count - KORE_WORKER_BASE;
	if (n >= 64)
		return (~(u_int64_t)0);

	return (((u_int64_t)1 << n) - 1);
}

static void
ship_msg_ready(struct kore_msg *msg, const void *data)
{
	if (msg->src == 0 || msg->src > 64)
		return;
	ship.ready |= (u_int64_t)1 << (msg->src - 1);
	if (ship.notified || ship.ready != ship_all_workers())
		return;

	ship.notified = 1;
	ship_notify("READY=1\nSTATUS=serving");
	log_kv(LOG_LVL_INFO, "ready", "#workers",
	    (int64_t)(worker_count - KORE_WORKER_BASE), NULL);
}

/* WATCHDOG=1 once every worker has checked in since the last one. */
static void
ship_msg_alive(struct kore_msg *msg, const void *data)
{
	if (msg->src == 0 || msg->src > 64)
		return;
	ship.alive |= (u_int64_t)1 << (msg->src - 1);
	if (!ship.notified || ship.alive != ship_all_workers())
		return;

	ship.alive = 0;
	ship_notify("WATCHDOG=1");
}

static void
ship_msg_reload(struct kore_msg *msg, const void *data)
{
	const char	*file;
	char		*level, err[KILN_ERR_MAX];
	int		ok;

	ship_notify("RELOADING=1");
	ok = 1;

	/* The parent relays the workers' messages: wait seconds, once. */
	(void)setenv("PGCONNECT_TIMEOUT", "5", 0);
	store_sync_once();

	if ((file = getenv("KILN_ENV_FILE")) != NULL && *file != '\0') {
		level = ship_env_get(file, "LOG_LEVEL");
		if (!log_setup(getenv("LOG_FORMAT"), level, err,
		    sizeof(err))) {
			log_kv(LOG_LVL_ERROR, "reload: log level kept",
			    "error", err, NULL);
			ok = 0;
		} else {
			shared_log_level(log_level());
		}
		free(level);
	}

	if (kiln_config.sources_file != NULL &&
	    !sources_file_load(kiln_config.sources_file, 1, err,
	    sizeof(err))) {
		log_kv(LOG_LVL_ERROR, "reload: sources file not applied",
		    "error", err, NULL);
		ok = 0;
	}

	log_kv(ok ? LOG_LVL_INFO : LOG_LVL_WARN, ok ? "reloaded" :
	    "reloaded with errors", NULL);
	ship_notify("READY=1");
}

/* The value of name in an environment file (KEY=VALUE lines), or NULL. */
static char *
ship_env_get(const char *path, const char *name)
{
	FILE		*fp;
	size_t		nlen, len;
	char		line[SHIP_ENV_LINE], *p, *v, *found;

	if ((fp = fopen(path, "r")) == NULL) {
		log_kv(LOG_LVL_WARN, "KILN_ENV_FILE: cannot open", "file",
		    path, "error", errno_s, NULL);
		return (NULL);
	}

	found = NULL;
	nlen = strlen(name);
	while (fgets(line, sizeof(line), fp) != NULL) {
		for (p = line; isspace((unsigned char)*p); p++)
			;
		if (strncmp(p, name, nlen) || p[nlen] != '=')
			continue;
		v = p + nlen + 1;
		len = strcspn(v, "\r\n");
		while (len > 0 && isspace((unsigned char)v[len - 1]))
			len--;
		if (len >= 2 && (v[0] == '"' || v[0] == '\'') &&
		    v[len - 1] == v[0]) {
			v++;
			len -= 2;
		}
		v[len] = '\0';
		free(found);
		if ((found = strdup(v)) == NULL)
			fatal("strdup");
	}
	(void)fclose(fp);

	return (found);
}

/* Worker: report readiness, check in for the watchdog, take SIGHUP. */
void
ship_worker_init(void)
{
	struct sigaction	sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = ship_hup;
	(void)sigfillset(&sa.sa_mask);
	if (sigaction(SIGHUP, &sa, NULL) == -1)
		fatal("sigaction: %s", errno_s);

	ship.log_gen = shared_get()->log_gen;
	(void)kore_timer_add(ship_tick, SHIP_TICK_MS, NULL, 0);
}

static void
ship_hup(int sig)
{
	ship.hup = 1;
}

static void
ship_tick(void *arg, u_int64_t now)
{
	const struct shared	*sh = shared_get();

	if (ship.hup) {
		ship.hup = 0;
		if (worker->id == SHIP_RELOAD_WORKER) {
			kore_msg_send(KORE_MSG_PARENT, SHIP_MSG_RELOAD,
			    NULL, 0);
		}
	}

	if (sh->log_gen != ship.log_gen) {
		ship.log_gen = sh->log_gen;
		log_level_set(sh->log_level);
	}

	if (!cache_loaded())
		return;

	if (!ship.sent_ready) {
		ship.sent_ready = 1;
		kore_msg_send(KORE_MSG_PARENT, SHIP_MSG_READY, NULL, 0);
	}

	if (ship.watchdog_ms > 0 && now - ship.last_alive >= ship.watchdog_ms) {
		ship.last_alive = now;
		kore_msg_send(KORE_MSG_PARENT, SHIP_MSG_ALIVE, NULL, 0);
	}
}
