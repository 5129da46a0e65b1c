/*
 * log.c: one line per event on stdout, JSON (default) or text.
 *
 * log_kv(level, msg, key, value, ..., NULL): a key starting with '#' takes
 * an int64_t value, any other key a string (NULL values are left out).
 * The request id and trace id of the request being handled are added to
 * every line until log_context() clears them. Never pass a token or a
 * secret: pass its fingerprint.
 */

#include <sys/types.h>
#include <sys/time.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

static const char	*level_names[] = { "debug", "info", "warn", "error" };

static struct {
	int		json;
	int		level;
	char		request_id[64];
	char		trace_id[40];
} log_ctx = { 1, LOG_LVL_INFO, "", "" };

static void	log_write_json(int, const char *, va_list);
static void	log_write_text(int, const char *, va_list);
static void	log_now(char *, size_t);
static int	log_worker(void);

int
log_setup(const char *format, const char *level, char *err, size_t errlen)
{
	int		i;

	if (format == NULL || *format == '\0' || !strcmp(format, "json")) {
		log_ctx.json = 1;
	} else if (!strcmp(format, "text")) {
		log_ctx.json = 0;
	} else {
		(void)snprintf(err, errlen, "LOG_FORMAT: expected json or text");
		return (KORE_RESULT_ERROR);
	}

	if (level == NULL || *level == '\0') {
		log_ctx.level = LOG_LVL_INFO;
		return (KORE_RESULT_OK);
	}

	for (i = 0; i < 4; i++) {
		if (!strcasecmp(level, level_names[i])) {
			log_ctx.level = i;
			return (KORE_RESULT_OK);
		}
	}
	if (!strcasecmp(level, "warning")) {
		log_ctx.level = LOG_LVL_WARN;
		return (KORE_RESULT_OK);
	}

	(void)snprintf(err, errlen,
	    "LOG_LEVEL: expected debug, info, warn or error");
	return (KORE_RESULT_ERROR);
}

int
log_enabled(int level)
{
	return (level >= log_ctx.level);
}

int
log_level(void)
{
	return (log_ctx.level);
}

void
log_level_set(int level)
{
	if (level >= LOG_LVL_DEBUG && level <= LOG_LVL_ERROR)
		log_ctx.level = level;
}

void
log_context(const char *request_id, const char *trace_id)
{
	(void)kore_strlcpy(log_ctx.request_id,
	    request_id ? request_id : "", sizeof(log_ctx.request_id));
	(void)kore_strlcpy(log_ctx.trace_id,
	    trace_id ? trace_id : "", sizeof(log_ctx.trace_id));
}

void
log_kv(int level, const char *msg, ...)
{
	va_list		args;

	if (!log_enabled(level))
		return;

	va_start(args, msg);
	if (log_ctx.json)
		log_write_json(level, msg, args);
	else
		log_write_text(level, msg, args);
	va_end(args);
}

static void
log_write_json(int level, const char *msg, va_list args)
{
	yajl_gen		g;
	const char		*key, *sv;
	const unsigned char	*out;
	size_t			len;
	int64_t			iv;
	char			ts[ISOTIME_LEN];

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		return;

	log_now(ts, sizeof(ts));
	yajl_gen_map_open(g);
	yajl_gen_string(g, (const unsigned char *)"ts", 2);
	yajl_gen_string(g, (const unsigned char *)ts, strlen(ts));
	yajl_gen_string(g, (const unsigned char *)"level", 5);
	yajl_gen_string(g, (const unsigned char *)level_names[level],
	    strlen(level_names[level]));
	yajl_gen_string(g, (const unsigned char *)"msg", 3);
	yajl_gen_string(g, (const unsigned char *)msg, strlen(msg));
	yajl_gen_string(g, (const unsigned char *)"worker", 6);
	yajl_gen_integer(g, log_worker());
	if (log_ctx.request_id[0] != '\0') {
		yajl_gen_string(g, (const unsigned char *)"request_id", 10);
		yajl_gen_string(g, (const unsigned char *)log_ctx.request_id,
		    strlen(log_ctx.request_id));
	}
	if (log_ctx.trace_id[0] != '\0') {
		yajl_gen_string(g, (const unsigned char *)"trace_id", 8);
		yajl_gen_string(g, (const unsigned char *)log_ctx.trace_id,
		    strlen(log_ctx.trace_id));
	}

	while ((key = va_arg(args, const char *)) != NULL) {
		if (*key == '#') {
			iv = va_arg(args, int64_t);
			key++;
			yajl_gen_string(g, (const unsigned char *)key,
			    strlen(key));
			yajl_gen_integer(g, iv);
			continue;
		}
		if ((sv = va_arg(args, const char *)) == NULL)
			continue;
		yajl_gen_string(g, (const unsigned char *)key, strlen(key));
		yajl_gen_string(g, (const unsigned char *)sv, strlen(sv));
	}
	yajl_gen_map_close(g);

	if (yajl_gen_get_buf(g, &out, &len) == yajl_gen_status_ok) {
		fprintf(stdout, "%.*s\n", (int)len, (const char *)out);
		fflush(stdout);
	}
	yajl_gen_free(g);
}

static void
log_write_text(int level, const char *msg, va_list args)
{
	struct kore_buf		buf;
	const char		*key, *sv;
	int64_t			iv;
	char			ts[ISOTIME_LEN];

	log_now(ts, sizeof(ts));
	kore_buf_init(&buf, 256);
	kore_buf_appendf(&buf, "%s %-5s [%d] %s", ts, level_names[level],
	    log_worker(), msg);
	if (log_ctx.request_id[0] != '\0')
		kore_buf_appendf(&buf, " request_id=%s", log_ctx.request_id);
	if (log_ctx.trace_id[0] != '\0')
		kore_buf_appendf(&buf, " trace_id=%s", log_ctx.trace_id);

	while ((key = va_arg(args, const char *)) != NULL) {
		if (*key == '#') {
			iv = va_arg(args, int64_t);
			kore_buf_appendf(&buf, " %s=%lld", key + 1,
			    (long long)iv);
		} else if ((sv = va_arg(args, const char *)) != NULL) {
			kore_buf_appendf(&buf, " %s=\"%s\"", key, sv);
		}
	}

	fprintf(stdout, "%.*s\n", (int)buf.offset, (const char *)buf.data);
	fflush(stdout);
	kore_buf_cleanup(&buf);
}

static void
log_now(char *ts, size_t len)
{
	struct timeval	tv;

	(void)gettimeofday(&tv, NULL);
	isotime_format((int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000,
	    ts, len);
}

static int
log_worker(void)
{
	if (worker == NULL)
		return (0);
	return (worker->id);
}
