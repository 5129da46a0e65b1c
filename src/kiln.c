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

#define KILN_VERSION		"0.1.0"
#define SOURCES_FILE_MAX	(4 * 1024 * 1024)

static void	usage(void) __attribute__((noreturn));
static void	die(const char *) __attribute__((noreturn));
static void	sources_load(const char *);
static char	*sources_read(const char *, char *, size_t);

extern int	kore_foreground;

void
kore_parent_configure(int argc, char **argv)
{
	const char	*conf;
	int		ch;
	char		err[KILN_ERR_MAX], hash[AUTH_HASH_LEN + 1];

	/* Line buffered: nothing half-written is copied into the workers. */
	(void)setvbuf(stdout, NULL, _IOLBF, 0);

	conf = "kore.conf";
	while ((ch = getopt(argc, argv, "c:fhnqrv")) != -1) {
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
	if (kiln_config.sources_file != NULL)
		sources_load(kiln_config.sources_file);

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
	reseal_init();
	dash_init();
	drain_init(refresh_busy, dash_shutdown);
	ops_route_names(api_route_name);
}

void
kore_worker_teardown(void)
{
	store_release_leases();
}

/* KILN_SOURCES_FILE: {"sources":[...]}, upserted at every start. */
static void
sources_load(const char *path)
{
	yajl_val	root, list;
	struct source	*src;
	const char	*key[] = { "sources", NULL };
	size_t		i, n;
	char		*text, perr[128], err[KILN_ERR_MAX], msg[512];

	if ((text = sources_read(path, err, sizeof(err))) == NULL)
		die(err);
	root = yajl_tree_parse(text, perr, sizeof(perr));
	seal_wipe(text);
	if (root == NULL) {
		(void)snprintf(msg, sizeof(msg), "KILN_SOURCES_FILE: %s: not "
		    "valid JSON", path);
		die(msg);
	}

	if ((list = yajl_tree_get(root, key, yajl_t_array)) == NULL) {
		(void)snprintf(msg, sizeof(msg), "KILN_SOURCES_FILE: %s: "
		    "expected {\"sources\":[...]}", path);
		die(msg);
	}

	n = YAJL_GET_ARRAY(list)->len;
	src = kore_calloc(n ? n : 1, sizeof(*src));
	for (i = 0; i < n; i++) {
		if (!source_from_json(YAJL_GET_ARRAY(list)->values[i],
		    SOURCE_ALLOW_ENV, &src[i], err, sizeof(err))) {
			(void)snprintf(msg, sizeof(msg), "KILN_SOURCES_FILE: "
			    "sources[%zu].%s", i, err);
			die(msg);
		}
	}
	yajl_tree_free(root);

	if (!store_upsert_sources(src, n, err, sizeof(err)))
		die(err);

	for (i = 0; i < n; i++)
		source_free(&src[i]);
	kore_free(src);
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
	fprintf(stderr, "usage: kiln [-fhqv] [-c kore.conf]\n");
	fprintf(stderr, "\t-c\tconfiguration file (default ./kore.conf)\n");
	fprintf(stderr, "\t-f\tstay in the foreground\n");
	fprintf(stderr, "\t-q\tquiet\n");
	fprintf(stderr, "\t-v\tprint the version\n");
	exit(1);
}
