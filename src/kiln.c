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

static void	usage(void) __attribute__((noreturn));
static void	die(const char *) __attribute__((noreturn));
static void	kiln_drain_start(void);
static int	kiln_busy(void);

extern int	kore_foreground;

void
kore_parent_configure(int argc, char **argv)
{
	const char	*conf;
	int64_t		n;
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
	otel_init();
	if (!store_migrate(err, sizeof(err)))
		die(err);
	if (kiln_config.admin_key != NULL) {
		auth_key_hash(kiln_config.admin_key, hash);
		if (!store_key_bootstrap(hash, err, sizeof(err)))
			die(err);
	}
	if (kiln_config.sources_file != NULL &&
	    !sources_file_load(kiln_config.sources_file, 1, err, sizeof(err)))
		die(err);
	/* A person's consent comes back to {KILN_PUBLIC_URL}/oauth/... */
	if (kiln_config.public_url == NULL &&
	    (n = store_code_sources_sync(err, sizeof(err))) != 0) {
		if (n > 0)
			(void)snprintf(err, sizeof(err), "KILN_PUBLIC_URL: "
			    "required: %lld authorization_code sources exist",
			    (long long)n);
		die(err);
	}
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
	session_init();
	auth_keys_reload();
	session_reload();
	refresh_init();
	device_init();
	reseal_init();
	webhook_init();
	dash_init();
	dconn_init();
	push_init();
	drain_init(kiln_busy, kiln_drain_start);
	ops_route_names(api_route_name);
	ship_worker_init();
	otel_worker_init();
}

/* A drain waits for refreshes and device polls (a spent device code). */
static int
kiln_busy(void)
{
	return (refresh_busy() || device_busy());
}

/* The drain began: the dashboard's sockets and the push clients hear. */
static void
kiln_drain_start(void)
{
	dash_shutdown();
	push_shutdown();
}

void
kore_worker_teardown(void)
{
	store_release_leases();
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
