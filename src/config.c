/*
 * config.c: kiln's settings from the environment, checked at start, and
 * the runtime kore.conf (read here because a single-binary Kore build
 * only knows its compiled-in configuration).
 */

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/socket.h>

#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

struct kiln_config	kiln_config;

static int	env_bool(const char *, int, int *, char *, size_t);
static int	env_num(const char *, int64_t, int64_t, int64_t, int64_t *,
		    char *, size_t);
static int	env_double(const char *, double, double, double, double *,
		    char *, size_t);
static int	master_keys(char *, size_t);
static int	key_add_b64(const char *, const char *, char *, size_t);
static char	*key_file_read(const char *, char *, size_t);
static int	config_auth(char *, size_t);
static int	config_cidrs(const char *, struct cidr **, size_t *, char *,
		    size_t);
static int	config_hosts(char *, size_t);
static int	bind_split(const char *, char *, size_t, char *, size_t);
static int	config_database(struct kiln_config *, char *, size_t);
static const char	*db_default(const PQconninfoOption *, char *,
			    size_t);
static void	db_append(struct kore_buf *, const char *, const char *);
static int64_t	db_ms(const char *, const char *, int64_t);
static char	*migrations_default(const char *);
static int	config_otel(char *, size_t);
static int	config_public_url(char *, size_t);
static int	otel_endpoint(char *, size_t);
static int	otel_sampler(char *, size_t);
static int	otel_pairs(const char *, int, char ***, char *, size_t);
static int	otel_decode(char *);

int
config_load(const char *conf_path, char *err, size_t errlen)
{
	struct kiln_config	*c = &kiln_config;
	double			buffer_min;
	int64_t			v;
	const char		*ef;
	char			host[256];

	memset(c, 0, sizeof(*c));

	if ((c->database_url = getenv("KILN_DATABASE_URL")) == NULL ||
	    *c->database_url == '\0') {
		(void)snprintf(err, errlen, "KILN_DATABASE_URL: not set");
		return (KORE_RESULT_ERROR);
	}
	if (!config_database(c, err, errlen))
		return (KORE_RESULT_ERROR);
	c->sources_file = getenv("KILN_SOURCES_FILE");
	if (c->sources_file != NULL && *c->sources_file == '\0')
		c->sources_file = NULL;

	if ((c->migrations_dir = getenv("KILN_MIGRATIONS_DIR")) == NULL)
		c->migrations_dir = migrations_default(conf_path);
	if ((ef = getenv("KILN_ENV_FILE")) != NULL && *ef != '\0' &&
	    access(ef, R_OK) == -1) {
		(void)snprintf(err, errlen, "KILN_ENV_FILE: %s: %s", ef,
		    strerror(errno));
		return (KORE_RESULT_ERROR);
	}

	if (!env_bool("PREWARMING_ENABLED", 1, &c->prewarming_enabled,
	    err, errlen))
		return (KORE_RESULT_ERROR);
	if (!env_double("PREWARMING_REFRESH_BUFFER", 5, 0, 1440,
	    &buffer_min, err, errlen))
		return (KORE_RESULT_ERROR);
	c->refresh_buffer_ms = (int64_t)(buffer_min * 60000.0);

	if (!env_num("KILN_UPSTREAM_CONNECT_TIMEOUT", 5, 1, 60, &v,
	    err, errlen))
		return (KORE_RESULT_ERROR);
	c->connect_timeout_ms = v * 1000;
	if (!env_num("KILN_UPSTREAM_TIMEOUT", 10, 1, 300, &v, err, errlen))
		return (KORE_RESULT_ERROR);
	c->upstream_timeout_ms = v * 1000;
	if (!env_num("KILN_LEASE_SECONDS", 30, 2, 600, &v, err, errlen))
		return (KORE_RESULT_ERROR);
	c->lease_ms = v * 1000;
	if (c->lease_ms <= c->upstream_timeout_ms) {
		(void)snprintf(err, errlen, "KILN_LEASE_SECONDS: must be "
		    "longer than KILN_UPSTREAM_TIMEOUT");
		return (KORE_RESULT_ERROR);
	}
	if (!env_num("KILN_WAIT_MS", 5000, 0, 60000, &c->wait_ms,
	    err, errlen))
		return (KORE_RESULT_ERROR);
	if (!env_num("KILN_RECONCILE_MS", 5000, 100, 600000,
	    &c->reconcile_ms, err, errlen))
		return (KORE_RESULT_ERROR);
	if (!env_num("KILN_DRAIN_TIMEOUT", 30, 0, 3600, &v, err, errlen))
		return (KORE_RESULT_ERROR);
	c->drain_ms = v * 1000;
	if (!env_num("KILN_ONDEMAND_INTERVAL", 30, 0, 86400, &v, err, errlen))
		return (KORE_RESULT_ERROR);
	c->ondemand_ms = v * 1000;
	if (!env_num("KILN_CIRCUIT_FAILURES", 5, 1, 1000,
	    &c->circuit_failures, err, errlen))
		return (KORE_RESULT_ERROR);
	if (!env_num("KILN_CIRCUIT_OPEN", 30, 1, 3600, &v, err, errlen))
		return (KORE_RESULT_ERROR);
	c->circuit_open_ms = v * 1000;
	if (!env_num("KILN_WEBHOOK_BACKOFF_MS", 1000, 10, 3600000,
	    &c->webhook_backoff_ms, err, errlen))
		return (KORE_RESULT_ERROR);
	if (!env_num("KILN_DB_PREPARED", 1, 0, 1, &c->db_prepared, err,
	    errlen))
		return (KORE_RESULT_ERROR);
	if (!env_num("KILN_HUGE_PAGES", 1, 0, 1, &c->huge_pages, err,
	    errlen))
		return (KORE_RESULT_ERROR);
	if (!env_num("KILN_WAITERS_MAX", 10000, 0, 1000000, &c->waiters_max,
	    err, errlen))
		return (KORE_RESULT_ERROR);
	if (!env_num("KILN_STREAMS_MAX", 10000, 0, 1000000, &c->streams_max,
	    err, errlen))
		return (KORE_RESULT_ERROR);
	if (!env_num("KILN_SSE_HEARTBEAT", 15, 1, 300, &v, err, errlen))
		return (KORE_RESULT_ERROR);
	c->sse_heartbeat_ms = v * 1000;
	if (!env_num("KILN_KEY_ROLLOVER", 300, 0, 86400, &c->key_rollover,
	    err, errlen))
		return (KORE_RESULT_ERROR);

	if (!config_auth(err, errlen) || !config_hosts(err, errlen))
		return (KORE_RESULT_ERROR);
	if (!config_cidrs("KILN_UPSTREAM_ALLOW", &c->upstream_allow,
	    &c->upstream_allow_count, err, errlen))
		return (KORE_RESULT_ERROR);
	if (!config_otel(err, errlen))
		return (KORE_RESULT_ERROR);
	if (!config_public_url(err, errlen))
		return (KORE_RESULT_ERROR);

	if (gethostname(host, sizeof(host)) == -1)
		(void)kore_strlcpy(host, "localhost", sizeof(host));
	(void)snprintf(c->owner, sizeof(c->owner), "%.48s:%d", host,
	    (int)getpid());

	return (master_keys(err, errlen));
}

/*
 * Feed the runtime configuration file to Kore, with the listener and the
 * worker count replaced by KILN_BIND and KILN_WORKERS when they are set,
 * and the pid file named by KILN_PIDFILE.
 */
int
config_read_kore(const char *path, char *err, size_t errlen)
{
	FILE		*in, *out;
	const char	*bind, *workers, *bench, *p;
	int		ret, err_num;
	char		line[BUFSIZ], host[256], port[16];

	bind = getenv("KILN_BIND");
	if (bind != NULL && !bind_split(bind, host, sizeof(host),
	    port, sizeof(port))) {
		(void)snprintf(err, errlen,
		    "KILN_BIND: expected host:port, got '%.64s'", bind);
		return (KORE_RESULT_ERROR);
	}
	workers = getenv("KILN_WORKERS");
	if (workers != NULL) {
		(void)kore_strtonum(workers, 10, 1, 64, &err_num);
		if (err_num != KORE_RESULT_OK) {
			(void)snprintf(err, errlen,
			    "KILN_WORKERS: expected 1..64");
			return (KORE_RESULT_ERROR);
		}
	}

	/* The benchmark's framework ceiling: a bare Kore route, off by default. */
	bench = getenv("KILN_BENCH_ROUTE");
	if (bench != NULL && strcmp(bench, "1"))
		bench = NULL;

	if ((in = fopen(path, "r")) == NULL) {
		(void)snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return (KORE_RESULT_ERROR);
	}
	if ((out = tmpfile()) == NULL) {
		(void)fclose(in);
		(void)snprintf(err, errlen, "tmpfile: %s", strerror(errno));
		return (KORE_RESULT_ERROR);
	}

	while (fgets(line, sizeof(line), in) != NULL) {
		for (p = line; isspace((unsigned char)*p); p++)
			;
		if (bind != NULL && !strncmp(p, "bind", 4) &&
		    isspace((unsigned char)p[4]))
			fprintf(out, "bind %s %s\n", host, port);
		else if (workers != NULL && !strncmp(p, "workers", 7) &&
		    isspace((unsigned char)p[7]))
			fprintf(out, "workers %s\n", workers);
		else if (bench != NULL && !strncmp(p, "route", 5) &&
		    isspace((unsigned char)p[5])) {
			fprintf(out, "route ^/bench/constant$ "
			    "bench_constant\n");
			fputs(line, out);
			bench = NULL;
		} else
			fputs(line, out);
	}
	if ((p = getenv("KILN_PIDFILE")) != NULL && *p != '\0')
		fprintf(out, "pidfile %s\n", p);
	ret = ferror(in) ? KORE_RESULT_ERROR : KORE_RESULT_OK;
	(void)fclose(in);

	if (ret == KORE_RESULT_OK) {
		rewind(out);
		kore_parse_config_file(out);
	} else {
		(void)snprintf(err, errlen, "%s: read error", path);
	}
	(void)fclose(out);

	return (ret);
}

/* Admin authentication, rate limits and the public allow-list. */
static int
config_auth(char *err, size_t errlen)
{
	struct kiln_config	*c = &kiln_config;

	c->jwt_secret = getenv("KILN_JWT_SECRET");
	if (c->jwt_secret != NULL && *c->jwt_secret == '\0')
		c->jwt_secret = NULL;
	if (c->jwt_secret != NULL && strlen(c->jwt_secret) < 32) {
		(void)snprintf(err, errlen,
		    "KILN_JWT_SECRET: must be at least 32 bytes");
		return (KORE_RESULT_ERROR);
	}
	if ((c->jwt_issuer = getenv("KILN_JWT_ISSUER")) == NULL)
		c->jwt_issuer = "kiln";
	if ((c->jwt_audience = getenv("KILN_JWT_AUDIENCE")) == NULL)
		c->jwt_audience = "kiln-admin";

	c->admin_key = getenv("KILN_ADMIN_KEY");
	if (c->admin_key != NULL && *c->admin_key == '\0')
		c->admin_key = NULL;
	if (c->admin_key != NULL && strlen(c->admin_key) < 32) {
		(void)snprintf(err, errlen,
		    "KILN_ADMIN_KEY: must be at least 32 characters");
		return (KORE_RESULT_ERROR);
	}

	if (!env_num("KILN_RATE_ADMIN", 10000, 1, 10000000, &c->rate_admin,
	    err, errlen) ||
	    !env_num("KILN_RATE_OPERATOR", 1000, 1, 10000000,
	    &c->rate_operator, err, errlen) ||
	    !env_num("KILN_RATE_VIEWER", 100, 1, 10000000, &c->rate_viewer,
	    err, errlen) ||
	    !env_num("KILN_RATE_ANONYMOUS", 10, 1, 10000000,
	    &c->rate_anonymous, err, errlen) ||
	    !env_num("KILN_RATE_PUBLIC", 0, 0, 100000000, &c->rate_public,
	    err, errlen))
		return (KORE_RESULT_ERROR);

	return (config_cidrs("KILN_PUBLIC_ALLOW", &kiln_config.allow,
	    &kiln_config.allow_count, err, errlen));
}

/*
 * The environment variable var as a comma-separated list of CIDRs (v4
 * or v6, a bare address is a /32 or /128), appended to *list.
 */
static int
config_cidrs(const char *var, struct cidr **list, size_t *count, char *err,
    size_t errlen)
{
	struct cidr	*r;
	const char	*v;
	char		*copy, *p, *item, *slash;
	int		max, rc, ret;

	if ((v = getenv(var)) == NULL || *v == '\0')
		return (KORE_RESULT_OK);

	ret = KORE_RESULT_OK;
	copy = kore_strdup(v);
	for (p = copy; ret == KORE_RESULT_OK &&
	    (item = strsep(&p, ",")) != NULL;) {
		while (*item == ' ')
			item++;
		if (*item == '\0')
			continue;
		*list = kore_realloc(*list, (*count + 1) * sizeof(**list));
		r = &(*list)[*count];
		memset(r, 0, sizeof(*r));

		if ((slash = strchr(item, '/')) != NULL)
			*slash++ = '\0';
		r->family = strchr(item, ':') ? AF_INET6 : AF_INET;
		max = r->family == AF_INET ? 32 : 128;
		rc = KORE_RESULT_OK;
		r->bits = slash ? (int)kore_strtonum(slash, 10, 0, max, &rc) :
		    max;
		if (rc != KORE_RESULT_OK ||
		    inet_pton(r->family, item, r->addr) != 1) {
			(void)snprintf(err, errlen, "%s: '%.64s' is not a CIDR",
			    var, item);
			ret = KORE_RESULT_ERROR;
		} else {
			(*count)++;
		}
	}
	kore_free(copy);

	return (ret);
}

/* KILN_ALLOWED_HOSTS: the only Host names answered, when set. */
static int
config_hosts(char *err, size_t errlen)
{
	const char	*v;
	size_t		len;
	char		why[96];

	if ((v = getenv("KILN_ALLOWED_HOSTS")) == NULL || *v == '\0')
		return (KORE_RESULT_OK);

	len = strlen(v) + 1;
	kiln_config.allowed_hosts = kore_malloc(len);
	if (!host_list_parse(v, kiln_config.allowed_hosts, len, why,
	    sizeof(why))) {
		(void)snprintf(err, errlen, "KILN_ALLOWED_HOSTS: %s", why);
		kore_free(kiln_config.allowed_hosts);
		kiln_config.allowed_hosts = NULL;
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

static int
bind_split(const char *v, char *host, size_t hlen, char *port, size_t plen)
{
	const char	*colon;
	int		err;

	if ((colon = strrchr(v, ':')) == NULL || colon == v)
		return (KORE_RESULT_ERROR);
	if ((size_t)(colon - v) >= hlen)
		return (KORE_RESULT_ERROR);
	(void)kore_strtonum(colon + 1, 10, 0, 65535, &err);
	if (err != KORE_RESULT_OK)
		return (KORE_RESULT_ERROR);

	memcpy(host, v, colon - v);
	host[colon - v] = '\0';
	(void)kore_strlcpy(port, colon + 1, plen);

	return (KORE_RESULT_OK);
}

static int
env_bool(const char *name, int def, int *out, char *err, size_t errlen)
{
	const char	*v;

	if ((v = getenv(name)) == NULL || *v == '\0') {
		*out = def;
		return (KORE_RESULT_OK);
	}

	if (!strcasecmp(v, "true") || !strcmp(v, "1") ||
	    !strcasecmp(v, "yes") || !strcasecmp(v, "on")) {
		*out = 1;
	} else if (!strcasecmp(v, "false") || !strcmp(v, "0") ||
	    !strcasecmp(v, "no") || !strcasecmp(v, "off")) {
		*out = 0;
	} else {
		(void)snprintf(err, errlen,
		    "%s: expected true or false", name);
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

static int
env_num(const char *name, int64_t def, int64_t min, int64_t max,
    int64_t *out, char *err, size_t errlen)
{
	const char	*v;
	int		rc;

	if ((v = getenv(name)) == NULL || *v == '\0') {
		*out = def;
		return (KORE_RESULT_OK);
	}

	*out = kore_strtonum(v, 10, min, max, &rc);
	if (rc != KORE_RESULT_OK) {
		(void)snprintf(err, errlen, "%s: expected an integer "
		    "between %lld and %lld", name, (long long)min,
		    (long long)max);
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

static int
env_double(const char *name, double def, double min, double max,
    double *out, char *err, size_t errlen)
{
	const char	*v;
	char		*end;

	if ((v = getenv(name)) == NULL || *v == '\0') {
		*out = def;
		return (KORE_RESULT_OK);
	}

	errno = 0;
	*out = strtod(v, &end);
	if (errno != 0 || end == v || *end != '\0' || *out < min ||
	    *out > max || *out != *out) {
		(void)snprintf(err, errlen, "%s: expected a number between "
		    "%g and %g", name, min, max);
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

/*
 * KILN_MASTER_KEY (base64 of 32 bytes) or KILN_MASTER_KEY_FILE seals;
 * KILN_MASTER_KEY_OLD lists retired keys (comma separated) still opened.
 */
static int
master_keys(char *err, size_t errlen)
{
	const char	*v, *file;
	char		*text, *old, *p, *k;
	int		ret;

	v = getenv("KILN_MASTER_KEY");
	file = getenv("KILN_MASTER_KEY_FILE");

	if (v != NULL && *v != '\0') {
		if (!key_add_b64("KILN_MASTER_KEY", v, err, errlen))
			return (KORE_RESULT_ERROR);
	} else if (file != NULL && *file != '\0') {
		if ((text = key_file_read(file, err, errlen)) == NULL)
			return (KORE_RESULT_ERROR);
		ret = key_add_b64("KILN_MASTER_KEY_FILE", text, err, errlen);
		seal_wipe(text);
		if (!ret)
			return (KORE_RESULT_ERROR);
	} else {
		(void)snprintf(err, errlen, "KILN_MASTER_KEY: not set "
		    "(nor KILN_MASTER_KEY_FILE)");
		return (KORE_RESULT_ERROR);
	}

	if ((v = getenv("KILN_MASTER_KEY_OLD")) == NULL || *v == '\0')
		return (KORE_RESULT_OK);

	old = kore_strdup(v);
	ret = KORE_RESULT_OK;
	for (p = old; ret && (k = strsep(&p, ",")) != NULL;) {
		if (*k != '\0')
			ret = key_add_b64("KILN_MASTER_KEY_OLD", k, err,
			    errlen);
	}
	OPENSSL_cleanse(old, strlen(v));
	kore_free(old);

	return (ret);
}

static int
key_add_b64(const char *name, const char *text, char *err, size_t errlen)
{
	u_int8_t	*key;
	size_t		len;
	int		ret;

	if (!seal_b64_decode(text, &key, &len)) {
		(void)snprintf(err, errlen, "%s: not valid base64", name);
		return (KORE_RESULT_ERROR);
	}

	ret = seal_key_add(key, len);
	OPENSSL_cleanse(key, len);
	free(key);

	if (!ret) {
		(void)snprintf(err, errlen,
		    "%s: must be 32 bytes (base64 encoded)", name);
	}

	return (ret);
}

static char *
key_file_read(const char *path, char *err, size_t errlen)
{
	struct stat	st;
	ssize_t		n;
	int		fd;
	char		buf[256], *end;

	if ((fd = open(path, O_RDONLY)) == -1 || fstat(fd, &st) == -1) {
		(void)snprintf(err, errlen, "KILN_MASTER_KEY_FILE: %s: %s",
		    path, strerror(errno));
		if (fd != -1)
			(void)close(fd);
		return (NULL);
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		(void)close(fd);
		(void)snprintf(err, errlen, "KILN_MASTER_KEY_FILE: %s: "
		    "readable by others (chmod 600)", path);
		return (NULL);
	}

	n = read(fd, buf, sizeof(buf) - 1);
	(void)close(fd);
	if (n <= 0) {
		(void)snprintf(err, errlen, "KILN_MASTER_KEY_FILE: %s: empty",
		    path);
		return (NULL);
	}
	buf[n] = '\0';
	for (end = buf + n; end > buf && isspace((unsigned char)end[-1]);)
		*--end = '\0';

	end = strdup(buf);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (end == NULL)
		fatal("strdup");

	return (end);
}

/*
 * Defaults for what the database URL (or the PG* environment) leaves
 * unset: a database that stops answering must be noticed, by the
 * connect, by TCP, and by the server for a statement.
 */
static const struct {
	const char	*keyword;
	const char	*value;
} db_defaults[] = {
	{ "connect_timeout",		"5" },
	{ "keepalives",			"1" },
	{ "keepalives_idle",		"10" },
	{ "keepalives_interval",	"5" },
	{ "keepalives_count",		"3" },
	{ "tcp_user_timeout",		"20000" },
};
#define DB_STATEMENT_TIMEOUT	"statement_timeout"
#define DB_STATEMENT_MS		"10000"
#define DB_ANSWER_MARGIN_MS	5000

/*
 * KILN_DATABASE_URL (URL or key=value) rewritten as key=value with the
 * defaults added, and the deadlines kiln's workers keep themselves:
 * PQconnectPoll() honours no connect_timeout, and no server answers a
 * statement_timeout through a black hole.
 */
static int
config_database(struct kiln_config *c, char *err, size_t errlen)
{
	PQconninfoOption	*opts, *o;
	struct kore_buf		buf;
	const char		*v, *env;
	char			*perr, tmp[1024];

	if ((opts = PQconninfoParse(c->database_url, &perr)) == NULL) {
		/* libpq quotes the URL, password and all: not that. */
		(void)snprintf(err, errlen, "KILN_DATABASE_URL: %s",
		    perr == NULL ? "out of memory" :
		    strstr(perr, c->database_url) != NULL ?
		    "not a valid connection URL" : perr);
		err[strcspn(err, "\n")] = '\0';
		PQfreemem(perr);
		return (KORE_RESULT_ERROR);
	}

	c->db_connect_ms = 0;
	c->db_answer_ms = 0;
	kore_buf_init(&buf, 256);
	for (o = opts; o->keyword != NULL; o++) {
		env = o->envvar != NULL ? getenv(o->envvar) : NULL;
		v = o->val;
		if (!strcmp(o->keyword, "options") ||
		    (v == NULL && (env == NULL || *env == '\0')))
			v = db_default(o, tmp, sizeof(tmp));

		if (!strcmp(o->keyword, "connect_timeout"))
			c->db_connect_ms = db_ms(v != NULL ? v : env, "", 1000);
		if (!strcmp(o->keyword, "options"))
			c->db_answer_ms = db_ms(strstr(v, DB_STATEMENT_TIMEOUT),
			    DB_STATEMENT_TIMEOUT "=", 1);
		if (v != NULL)
			db_append(&buf, o->keyword, v);
	}
	PQconninfoFree(opts);

	/* libpq waits 2 s at least; the answer gets time to come. */
	if (c->db_connect_ms > 0 && c->db_connect_ms < 2000)
		c->db_connect_ms = 2000;
	if (c->db_answer_ms > 0)
		c->db_answer_ms += DB_ANSWER_MARGIN_MS;

	c->database_url = kore_strdup(kore_buf_stringify(&buf, NULL));
	kore_buf_cleanup(&buf);

	return (KORE_RESULT_OK);
}

/* The value of o when neither the URL nor the environment gave one. */
static const char *
db_default(const PQconninfoOption *o, char *tmp, size_t len)
{
	const char	*v;
	size_t		i;

	if (!strcmp(o->keyword, "options")) {
		if ((v = o->val) == NULL || *v == '\0')
			v = getenv("PGOPTIONS");
		if (v != NULL && strstr(v, DB_STATEMENT_TIMEOUT) != NULL)
			return (v);
		(void)snprintf(tmp, len, "%s%s-c " DB_STATEMENT_TIMEOUT "="
		    DB_STATEMENT_MS, v != NULL ? v : "",
		    v != NULL && *v != '\0' ? " " : "");
		return (tmp);
	}

	for (i = 0; i < sizeof(db_defaults) / sizeof(db_defaults[0]); i++) {
		if (!strcmp(o->keyword, db_defaults[i].keyword))
			return (db_defaults[i].value);
	}

	return (NULL);
}

/* keyword='value', quoted as libpq reads it. */
static void
db_append(struct kore_buf *buf, const char *keyword, const char *v)
{
	if (buf->offset > 0)
		kore_buf_append(buf, " ", 1);
	kore_buf_appendf(buf, "%s='", keyword);
	for (; *v != '\0'; v++) {
		if (*v == '\'' || *v == '\\')
			kore_buf_append(buf, "\\", 1);
		kore_buf_append(buf, v, 1);
	}
	kore_buf_append(buf, "'", 1);
}

/*
 * Milliseconds of "<prefix><number>[unit]", units ms, s, min (the
 * default unit is unit ms); 0 when absent, zero or not understood.
 */
static int64_t
db_ms(const char *s, const char *prefix, int64_t unit)
{
	char		*end;
	long long	n;

	if (s == NULL || strncmp(s, prefix, strlen(prefix)))
		return (0);
	s += strlen(prefix);
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno != 0 || end == s || n <= 0)
		return (0);

	if (!strncmp(end, "ms", 2))
		unit = 1;
	else if (!strncmp(end, "min", 3))
		unit = 60000;
	else if (*end == 's')
		unit = 1000;

	return (n * unit);
}

/*
 * The migrations beside the configuration (a source tree), else where
 * an installed kiln keeps them: ../share/kiln/migrations from the
 * binary (/usr/sbin/kiln: /usr/share/kiln/migrations).
 */
static char *
migrations_default(const char *conf_path)
{
	struct stat	st;
	ssize_t		n;
	char		dir[PATH_MAX], exe[PATH_MAX], path[PATH_MAX];

	(void)kore_strlcpy(dir, conf_path, sizeof(dir));
	(void)snprintf(path, sizeof(path), "%s/migrations", dirname(dir));
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return (kore_strdup(path));

	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) > 0) {
		exe[n] = '\0';
		(void)kore_strlcpy(dir, dirname(exe), sizeof(dir));
		(void)snprintf(path, sizeof(path), "%s/share/kiln/migrations",
		    dirname(dir));
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			return (kore_strdup(path));
	}

	/* Named as it is looked for; a start then says it is missing. */
	(void)kore_strlcpy(dir, conf_path, sizeof(dir));
	(void)snprintf(path, sizeof(path), "%s/migrations", dirname(dir));
	return (kore_strdup(path));
}

/*
 * What config_read_kore checks, without feeding Kore (which would bind
 * the listener, busy while the server being checked runs): kiln check.
 */
int
config_check_kore(const char *path, char *err, size_t errlen)
{
	const char	*v;
	int		rc;
	char		host[256], port[16];

	if ((v = getenv("KILN_BIND")) != NULL && !bind_split(v, host,
	    sizeof(host), port, sizeof(port))) {
		(void)snprintf(err, errlen,
		    "KILN_BIND: expected host:port, got '%.64s'", v);
		return (KORE_RESULT_ERROR);
	}
	if ((v = getenv("KILN_WORKERS")) != NULL) {
		(void)kore_strtonum(v, 10, 1, 64, &rc);
		if (rc != KORE_RESULT_OK) {
			(void)snprintf(err, errlen,
			    "KILN_WORKERS: expected 1..64");
			return (KORE_RESULT_ERROR);
		}
	}
	if (access(path, R_OK) == -1) {
		(void)snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

/*
 * The OpenTelemetry SDK's variables for the trace exporter (see
 * docs/operations.md). No endpoint: no export. Values of headers are
 * never echoed in an error (they often hold the collector's API key).
 */
static int
config_otel(char *err, size_t errlen)
{
	struct kiln_config	*c = &kiln_config;
	const char		*v, *var;
	char			**h, **r, *line;
	size_t			n, len;

	var = getenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") != NULL ?
	    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT" : "OTEL_EXPORTER_OTLP_TIMEOUT";
	if (!env_num(var, 10000, 1, 600000, &c->otel_timeout_ms,
	    err, errlen) ||
	    !env_num("OTEL_BSP_SCHEDULE_DELAY", 5000, 1, 3600000,
	    &c->otel_delay_ms, err, errlen) ||
	    !env_num("OTEL_BSP_MAX_QUEUE_SIZE", 2048, 1, 65536,
	    &c->otel_queue, err, errlen) ||
	    !env_num("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, 1, 65536,
	    &c->otel_batch, err, errlen))
		return (KORE_RESULT_ERROR);
	if (c->otel_batch > c->otel_queue) {
		(void)snprintf(err, errlen, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "
		    "must not exceed OTEL_BSP_MAX_QUEUE_SIZE");
		return (KORE_RESULT_ERROR);
	}
	if (!otel_sampler(err, errlen))
		return (KORE_RESULT_ERROR);
	var = getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") != NULL ?
	    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" :
	    "OTEL_EXPORTER_OTLP_PROTOCOL";
	if ((v = getenv(var)) != NULL && *v != '\0' &&
	    strcmp(v, "http/protobuf")) {
		if (strcmp(v, "http/json")) {
			(void)snprintf(err, errlen, "%s: expected "
			    "http/protobuf or http/json", var);
			return (KORE_RESULT_ERROR);
		}
		c->otel_json = 1;
	}

	if (!otel_pairs("OTEL_RESOURCE_ATTRIBUTES", 0, &c->otel_resource,
	    err, errlen))
		return (KORE_RESULT_ERROR);
	c->otel_service = "kiln";
	for (r = c->otel_resource; r != NULL && *r != NULL; r += 2) {
		if (!strcmp(r[0], "service.name"))
			c->otel_service = r[1];
	}
	if ((v = getenv("OTEL_SERVICE_NAME")) != NULL && *v != '\0')
		c->otel_service = kore_strdup(v);

	var = getenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS") != NULL ?
	    "OTEL_EXPORTER_OTLP_TRACES_HEADERS" : "OTEL_EXPORTER_OTLP_HEADERS";
	if (!otel_pairs(var, 1, &c->otel_headers, err, errlen))
		return (KORE_RESULT_ERROR);
	/* Pairs become "name: value" lines, as curl takes them. */
	for (h = c->otel_headers, n = 0; h != NULL && h[n] != NULL; n += 2) {
		len = strlen(h[n]) + strlen(h[n + 1]) + 3;
		line = kore_malloc(len);
		(void)snprintf(line, len, "%s: %s", h[n], h[n + 1]);
		kore_free(h[n]);
		kore_free(h[n + 1]);
		h[n / 2] = line;
		h[n / 2 + 1] = NULL;
	}

	return (otel_endpoint(err, errlen));
}

static int
otel_endpoint(char *err, size_t errlen)
{
	const char	*v, *var, *p;
	size_t		len;

	if ((v = getenv("OTEL_SDK_DISABLED")) != NULL &&
	    !strcasecmp(v, "true"))
		return (KORE_RESULT_OK);
	if ((v = getenv("OTEL_TRACES_EXPORTER")) != NULL && *v != '\0' &&
	    strcmp(v, "otlp")) {
		if (!strcmp(v, "none"))
			return (KORE_RESULT_OK);
		(void)snprintf(err, errlen, "OTEL_TRACES_EXPORTER: expected "
		    "otlp or none");
		return (KORE_RESULT_ERROR);
	}

	var = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
	if ((v = getenv(var)) == NULL || *v == '\0') {
		var = "OTEL_EXPORTER_OTLP_ENDPOINT";
		if ((v = getenv(var)) == NULL || *v == '\0')
			return (KORE_RESULT_OK);
	}
	if (strncasecmp(v, "http://", 7) && strncasecmp(v, "https://", 8)) {
		(void)snprintf(err, errlen, "%s: expected an http:// or "
		    "https:// URL", var);
		return (KORE_RESULT_ERROR);
	}
	for (p = v; *p != '\0'; p++) {
		if (*p <= 0x20 || *p == 0x7f) {
			(void)snprintf(err, errlen, "%s: blank or control "
			    "character in the URL", var);
			return (KORE_RESULT_ERROR);
		}
	}

	/* The base endpoint gets the signal's path, the other is as is. */
	len = strlen(v) + sizeof("/v1/traces");
	kiln_config.otel_url = kore_malloc(len);
	if (!strcmp(var, "OTEL_EXPORTER_OTLP_ENDPOINT"))
		(void)snprintf(kiln_config.otel_url, len, "%s%sv1/traces", v,
		    v[strlen(v) - 1] == '/' ? "" : "/");
	else
		(void)kore_strlcpy(kiln_config.otel_url, v, len);

	return (KORE_RESULT_OK);
}

static int
otel_sampler(char *err, size_t errlen)
{
	static const struct {
		const char	*name;
		int		sampler;
	} samplers[] = {
		{ "always_on", OTEL_SAMPLER_ALWAYS_ON },
		{ "always_off", OTEL_SAMPLER_ALWAYS_OFF },
		{ "traceidratio", OTEL_SAMPLER_RATIO },
		{ "parentbased_always_on",
		    OTEL_SAMPLER_PARENT | OTEL_SAMPLER_ALWAYS_ON },
		{ "parentbased_always_off",
		    OTEL_SAMPLER_PARENT | OTEL_SAMPLER_ALWAYS_OFF },
		{ "parentbased_traceidratio",
		    OTEL_SAMPLER_PARENT | OTEL_SAMPLER_RATIO },
	};
	const char	*v;
	size_t		i;

	kiln_config.otel_sampler = OTEL_SAMPLER_PARENT |
	    OTEL_SAMPLER_ALWAYS_ON;
	kiln_config.otel_ratio = 1.0;
	if ((v = getenv("OTEL_TRACES_SAMPLER")) != NULL && *v != '\0') {
		for (i = 0; i < sizeof(samplers) / sizeof(samplers[0]); i++) {
			if (!strcmp(v, samplers[i].name))
				break;
		}
		if (i == sizeof(samplers) / sizeof(samplers[0])) {
			(void)snprintf(err, errlen, "OTEL_TRACES_SAMPLER: "
			    "unknown sampler '%.32s'", v);
			return (KORE_RESULT_ERROR);
		}
		kiln_config.otel_sampler = samplers[i].sampler;
	}
	if ((kiln_config.otel_sampler & ~OTEL_SAMPLER_PARENT) !=
	    OTEL_SAMPLER_RATIO)
		return (KORE_RESULT_OK);

	return (env_double("OTEL_TRACES_SAMPLER_ARG", 1.0, 0.0, 1.0,
	    &kiln_config.otel_ratio, err, errlen));
}

/*
 * var as "key=value,key=value" (W3C Baggage style: values percent
 * encoded) into *out: key, value, ..., NULL. Header names must be
 * tokens (RFC 9110).
 */
static int
otel_pairs(const char *var, int header, char ***out, char *err,
    size_t errlen)
{
	const char	*v;
	char		*copy, *p, *item, *eq, *key, *val, *end;
	size_t		n, i;
	int		ret;

	if ((v = getenv(var)) == NULL || *v == '\0')
		return (KORE_RESULT_OK);

	ret = KORE_RESULT_OK;
	n = 0;
	copy = kore_strdup(v);
	for (p = copy; ret == KORE_RESULT_OK &&
	    (item = strsep(&p, ",")) != NULL;) {
		key = item + strspn(item, " \t");
		if (*key == '\0')
			continue;
		if ((eq = strchr(key, '=')) == NULL) {
			(void)snprintf(err, errlen, "%s: item %zu is not "
			    "key=value", var, n / 2 + 1);
			ret = KORE_RESULT_ERROR;
			break;
		}
		*eq = '\0';
		val = eq + 1 + strspn(eq + 1, " \t");
		for (end = eq; end > key && (end[-1] == ' ' ||
		    end[-1] == '\t'); end--)
			end[-1] = '\0';
		for (end = val + strlen(val); end > val && (end[-1] == ' ' ||
		    end[-1] == '\t'); end--)
			end[-1] = '\0';
		for (i = 0; key[i] != '\0'; i++) {
			if (key[i] <= 0x20 || key[i] >= 0x7f || (header &&
			    strchr("\"(),/:;<=>?@[\\]{}", key[i]) != NULL))
				break;
		}
		if (*key == '\0' || key[i] != '\0' || !otel_decode(val)) {
			(void)snprintf(err, errlen, "%s: item %zu: bad key "
			    "or badly encoded value", var, n / 2 + 1);
			ret = KORE_RESULT_ERROR;
			break;
		}
		*out = kore_realloc(*out, (n + 3) * sizeof(**out));
		(*out)[n++] = kore_strdup(key);
		(*out)[n++] = kore_strdup(val);
		(*out)[n] = NULL;
	}
	kore_free(copy);

	return (ret);
}

/* Percent-decode s in place; no control character may come out. */
static int
otel_decode(char *s)
{
	char		*d, hex[3];
	long		c;

	for (d = s; *s != '\0'; d++) {
		if (*s != '%') {
			*d = *s++;
		} else {
			if (!isxdigit((unsigned char)s[1]) ||
			    !isxdigit((unsigned char)s[2]))
				return (0);
			hex[0] = s[1];
			hex[1] = s[2];
			hex[2] = '\0';
			c = strtol(hex, NULL, 16);
			*d = (char)c;
			s += 3;
		}
		if ((unsigned char)*d < 0x20 || *d == 0x7f)
			return (0);
	}
	*d = '\0';

	return (1);
}

/*
 * KILN_PUBLIC_URL: where browsers reach kiln, the base of the redirect
 * URI of authorization_code sources; KILN_RETURN_TO_ALLOW: the origins
 * a browser may be sent back to once it connected (comma-separated).
 */
static int
config_public_url(char *err, size_t errlen)
{
	const char	*v;
	char		*copy, *p, *item;
	size_t		len;
	int		ret;

	if ((v = getenv("KILN_PUBLIC_URL")) != NULL && *v != '\0') {
		if (!flow_public_url_valid(v)) {
			(void)snprintf(err, errlen, "KILN_PUBLIC_URL: expected "
			    "http(s)://host[:port][/path], no query");
			return (KORE_RESULT_ERROR);
		}
		kiln_config.public_url = kore_strdup(v);
		len = strlen(kiln_config.public_url);
		while (len > 0 && kiln_config.public_url[len - 1] == '/')
			kiln_config.public_url[--len] = '\0';
	}

	if ((v = getenv("KILN_RETURN_TO_ALLOW")) == NULL || *v == '\0')
		return (KORE_RESULT_OK);

	ret = KORE_RESULT_OK;
	copy = kore_strdup(v);
	for (p = copy; ret == KORE_RESULT_OK &&
	    (item = strsep(&p, ",")) != NULL;) {
		while (*item == ' ')
			item++;
		len = strlen(item);
		while (len > 0 && (item[len - 1] == ' ' ||
		    item[len - 1] == '/'))
			item[--len] = '\0';
		if (*item == '\0')
			continue;
		if (!flow_origin_allowed(item, item) ||
		    strchr(strstr(item, "://") + 3, '/') != NULL) {
			(void)snprintf(err, errlen, "KILN_RETURN_TO_ALLOW: "
			    "'%.64s' is not an origin (scheme://host[:port])",
			    item);
			ret = KORE_RESULT_ERROR;
		}
	}
	kore_free(copy);
	if (ret == KORE_RESULT_OK)
		kiln_config.return_to_allow = kore_strdup(v);

	return (ret);
}
