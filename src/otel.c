/*
 * otel.c: OpenTelemetry traces, exported over OTLP/HTTP as JSON.
 *
 * Recording a span is cheap: when it ends it is written into a slot of a
 * fixed-size per-worker ring, with no allocation. A timer (every
 * OTEL_BSP_SCHEDULE_DELAY, or at once when a batch is full) turns one
 * batch of slots into one OTLP JSON document and posts it through
 * kore_curl, asynchronously, one export in flight per worker, bounded by
 * a timeout. When the collector is slow or gone the ring fills and new
 * spans are dropped, and a failed export drops its batch: both counted
 * (kiln_spans_dropped_total). Serving and refreshing never wait on it.
 *
 * Without an endpoint nothing is set up: otel_on() is 0, no context is
 * ever sampled, and the callers' one test of it is the whole cost.
 *
 * Attributes are copied in as the callers give them (static keys, values
 * cut to OTEL_STR bytes, bytes outside printable ASCII replaced), and the
 * callers give no token, secret or query string.
 */

#include <sys/types.h>
#include <sys/mman.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/rand.h>
#include <yajl/yajl_gen.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

#define OTEL_ATTRS		8
#define OTEL_STR		96
#define OTEL_KICK_MS		1
#define OTEL_PB_SPAN		1024	/* room for one encoded span */

#define STATUS_ERROR		2	/* STATUS_CODE_ERROR */

struct otel_attr {
	const char	*key;			/* a literal */
	int		is_int;
	int64_t		num;
	char		str[OTEL_STR];
};

struct otel_span {
	struct otel_ctx		ctx;
	int			kind;
	int			error;
	u_int64_t		end_ns;
	char			name[72];
	char			message[128];
	int			nattrs;
	struct otel_attr	attrs[OTEL_ATTRS];
};

/* Summed over the workers: one region made by the parent. */
struct otel_counters {
	volatile u_int64_t	exported;
	volatile u_int64_t	dropped;
	volatile u_int64_t	failed;		/* exports */
};

static struct otel_counters	*otel_shm;

static struct {
	struct otel_span	*ring;
	size_t			size;
	size_t			head;
	size_t			count;
	size_t			sending;	/* spans of the export */
	int			busy;
	int			failing;
	struct kore_timer	*kick;
	struct kore_curl	curl;
	struct kore_buf		*pb_out;	/* kept between exports */
	struct kore_buf		*pb_spans;
	struct kore_buf		*pb_one;
	u_int64_t		seed;
	u_int64_t		n;
} ot;

static void	otel_tick(void *, u_int64_t);
static void	otel_kicked(void *, u_int64_t);
static void	otel_export(void);
static void	otel_sent(struct kore_curl *, void *);
static void	otel_json(yajl_gen, size_t);
static void	otel_json_span(yajl_gen, const struct otel_span *);
static void	otel_json_attr(yajl_gen, const char *, const char *, int,
		    int64_t);
static void	otel_pb(struct kore_buf *, size_t);
static void	otel_pb_span(struct kore_buf *, const struct otel_span *);
static void	otel_pb_attr(struct kore_buf *, int, const char *,
		    const char *, int, int64_t);
static void	pb_varint(struct kore_buf *, u_int64_t);
static size_t	pb_varint_len(u_int64_t);
static void	pb_head(struct kore_buf *, int, size_t);
static void	pb_str(struct kore_buf *, int, const char *);
static void	pb_hex(struct kore_buf *, int, const char *);
static void	pb_fixed64(struct kore_buf *, int, u_int64_t);
static void	otel_id(char *, int);
static void	otel_count(volatile u_int64_t *, u_int64_t);
static void	otel_dec(u_int64_t, int, char *);

/* The parent: the counters every worker adds to. */
void
otel_init(void)
{
	otel_shm = mmap(NULL, sizeof(*otel_shm), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (otel_shm == MAP_FAILED)
		fatal("mmap otel counters: %s", errno_s);
	memset(otel_shm, 0, sizeof(*otel_shm));
}

void
otel_worker_init(void)
{
	if (!otel_on())
		return;

	if (RAND_bytes((u_int8_t *)&ot.seed, sizeof(ot.seed)) != 1)
		fatal("RAND_bytes");
	ot.size = (size_t)kiln_config.otel_queue;
	ot.ring = kore_calloc(ot.size, sizeof(*ot.ring));

	/*
	 * kore_buf grows by the bytes appended only, which would copy the
	 * whole batch at every append past its size: room for a batch of
	 * large spans from the start, kept.
	 */
	ot.pb_spans = kore_buf_alloc(kiln_config.otel_batch * OTEL_PB_SPAN);
	ot.pb_out = kore_buf_alloc(kiln_config.otel_batch * OTEL_PB_SPAN +
	    4096);
	ot.pb_one = kore_buf_alloc(OTEL_PB_SPAN * 2);
	(void)kore_timer_add(otel_tick, kiln_config.otel_delay_ms, NULL, 0);
}

int
otel_on(void)
{
	return (kiln_config.otel_url != NULL);
}

/*
 * The sampler's decision for a new span of trace_id (32 hex): a parent
 * based sampler follows the caller's flag when there is a caller; the
 * ratio compares the trace id's last 8 bytes with the ratio, so every
 * service that uses the rule decides the same for the same trace.
 */
int
otel_sample(const char *trace_id, int has_parent, int parent_sampled)
{
	u_int64_t	x;
	int		i, c;

	if ((kiln_config.otel_sampler & OTEL_SAMPLER_PARENT) && has_parent)
		return (parent_sampled != 0);

	switch (kiln_config.otel_sampler & ~OTEL_SAMPLER_PARENT) {
	case OTEL_SAMPLER_ALWAYS_ON:
		return (1);
	case OTEL_SAMPLER_ALWAYS_OFF:
		return (0);
	}

	x = 0;
	for (i = 16; i < 32; i++) {
		c = trace_id[i];
		x = (x << 4) | (u_int64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
	}

	/* The top 53 bits against the ratio of 2^53. */
	return ((double)(x >> 11) <
	    kiln_config.otel_ratio * 9007199254740992.0);
}

/*
 * A server span from kiln's own traceparent (its trace, span id and the
 * sampled flag already decided) and the caller's span id, or NULL.
 */
void
otel_root(struct otel_ctx *ctx, const char *traceparent, const char *parent)
{
	memcpy(ctx->trace_id, traceparent + 3, 32);
	ctx->trace_id[32] = '\0';
	memcpy(ctx->span_id, traceparent + 36, 16);
	ctx->span_id[16] = '\0';
	(void)kore_strlcpy(ctx->parent_id, parent != NULL ? parent : "",
	    sizeof(ctx->parent_id));
	ctx->sampled = traceparent[54] == '1';
	ctx->start_ns = otel_now_ns();
}

/* A span whose parent is named by traceparent, or a new trace. */
void
otel_from(struct otel_ctx *ctx, const char *traceparent)
{
	struct trace_parent	tp;

	if (traceparent != NULL && trace_parent_parse(traceparent, &tp)) {
		memcpy(ctx->trace_id, tp.trace_id, sizeof(ctx->trace_id));
		memcpy(ctx->parent_id, tp.parent_id, sizeof(ctx->parent_id));
		ctx->sampled = otel_sample(ctx->trace_id, 1,
		    tp.flags & TRACE_FLAG_SAMPLED);
	} else {
		otel_id(ctx->trace_id, 2);
		ctx->parent_id[0] = '\0';
		ctx->sampled = otel_sample(ctx->trace_id, 0, 0);
	}
	otel_id(ctx->span_id, 1);
	ctx->start_ns = otel_now_ns();
}

void
otel_child(struct otel_ctx *ctx, const struct otel_ctx *parent)
{
	memcpy(ctx->trace_id, parent->trace_id, sizeof(ctx->trace_id));
	memcpy(ctx->parent_id, parent->span_id, sizeof(ctx->parent_id));
	otel_id(ctx->span_id, 1);
	ctx->sampled = parent->sampled;
	ctx->start_ns = otel_now_ns();
}

/* The traceparent naming ctx as the parent: TRACE_PARENT_LEN + 1 bytes. */
void
otel_traceparent(const struct otel_ctx *ctx, char *out)
{
	(void)snprintf(out, TRACE_PARENT_LEN + 1, "00-%s-%s-0%c",
	    ctx->trace_id, ctx->span_id, ctx->sampled ? '1' : '0');
}

u_int64_t
otel_now_ns(void)
{
	struct timespec	ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	return ((u_int64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec);
}

/*
 * End the span of ctx now: its slot in the ring, for the attributes, or
 * NULL when it is not recorded (not sampled, or dropped: ring full).
 */
struct otel_span *
otel_end(const struct otel_ctx *ctx, int kind, const char *name)
{
	struct otel_span	*s;

	if (!ctx->sampled || ot.ring == NULL)
		return (NULL);
	if (ot.count == ot.size) {
		otel_count(&otel_shm->dropped, 1);
		return (NULL);
	}

	s = &ot.ring[(ot.head + ot.count) % ot.size];
	ot.count++;
	s->ctx = *ctx;
	s->kind = kind;
	s->end_ns = otel_now_ns();
	s->error = 0;
	s->message[0] = '\0';
	s->nattrs = 0;
	(void)kore_strlcpy(s->name, name, sizeof(s->name));

	/* A full batch goes out from the event loop, not from here. */
	if (ot.count >= (size_t)kiln_config.otel_batch && !ot.busy &&
	    ot.kick == NULL) {
		ot.kick = kore_timer_add(otel_kicked, OTEL_KICK_MS, NULL,
		    KORE_TIMER_ONESHOT);
	}

	return (s);
}

void
otel_attr_str(struct otel_span *s, const char *key, const char *v)
{
	struct otel_attr	*a;
	size_t			i;

	if (s == NULL || s->nattrs == OTEL_ATTRS || v == NULL)
		return;
	a = &s->attrs[s->nattrs++];
	a->key = key;
	a->is_int = 0;
	for (i = 0; i < sizeof(a->str) - 1 && v[i] != '\0'; i++)
		a->str[i] = (v[i] < 0x20 || v[i] > 0x7e) ? '?' : v[i];
	a->str[i] = '\0';
}

void
otel_attr_int(struct otel_span *s, const char *key, int64_t v)
{
	struct otel_attr	*a;

	if (s == NULL || s->nattrs == OTEL_ATTRS)
		return;
	a = &s->attrs[s->nattrs++];
	a->key = key;
	a->is_int = 1;
	a->num = v;
}

/* Status error, with a message (no secret in it: the log's words). */
void
otel_error(struct otel_span *s, const char *message)
{
	size_t		i;

	if (s == NULL)
		return;
	s->error = 1;
	if (message == NULL)
		message = "";
	for (i = 0; i < sizeof(s->message) - 1 && message[i] != '\0'; i++) {
		s->message[i] = (message[i] < 0x20 || message[i] > 0x7e) ?
		    '?' : message[i];
	}
	s->message[i] = '\0';
}

/*
 * url.scheme, server.address, server.port and url.path of an absolute
 * URL: never its user information nor its query string.
 */
void
otel_url_attrs(struct otel_span *s, const char *url)
{
	const char	*p, *host, *end, *at, *port, *close;
	size_t		n;
	int64_t		num;
	char		buf[OTEL_STR];

	if (s == NULL || (p = strstr(url, "://")) == NULL)
		return;
	num = (p - url == 5 && !strncasecmp(url, "https", 5)) ? 443 : 80;
	n = (size_t)(p - url) < sizeof(buf) ? (size_t)(p - url) :
	    sizeof(buf) - 1;
	memcpy(buf, url, n);
	buf[n] = '\0';
	otel_attr_str(s, "url.scheme", buf);

	host = p + 3;
	end = host + strcspn(host, "/?#");
	if ((at = memchr(host, '@', end - host)) != NULL)
		host = at + 1;
	port = NULL;
	if (*host == '[' && (close = memchr(host, ']', end - host)) != NULL)
		port = close[1] == ':' ? close + 1 : NULL;
	else
		port = memchr(host, ':', end - host);
	n = (size_t)((port != NULL ? port : end) - host);
	if (n >= sizeof(buf))
		n = sizeof(buf) - 1;
	memcpy(buf, host, n);
	buf[n] = '\0';
	otel_attr_str(s, "server.address", buf);

	for (p = port != NULL ? port + 1 : end, n = 0; p < end &&
	    *p >= '0' && *p <= '9' && n < 6; p++, n++)
		num = (n == 0 ? 0 : num * 10) + (*p - '0');
	otel_attr_int(s, "server.port", num);

	n = strcspn(end, "?#");
	if (n == 0)
		otel_attr_str(s, "url.path", "/");
	else {
		if (n >= sizeof(buf))
			n = sizeof(buf) - 1;
		memcpy(buf, end, n);
		buf[n] = '\0';
		otel_attr_str(s, "url.path", buf);
	}
}

void
otel_metrics(struct kore_buf *b)
{
	kore_buf_appendf(b, "# HELP kiln_spans_exported_total Spans the "
	    "OTLP collector accepted.\n# TYPE kiln_spans_exported_total "
	    "counter\nkiln_spans_exported_total %llu\n",
	    (unsigned long long)otel_shm->exported);
	kore_buf_appendf(b, "# HELP kiln_spans_dropped_total Spans dropped: "
	    "queue full or export failed.\n# TYPE kiln_spans_dropped_total "
	    "counter\nkiln_spans_dropped_total %llu\n",
	    (unsigned long long)otel_shm->dropped);
	kore_buf_appendf(b, "# HELP kiln_span_exports_failed_total OTLP "
	    "exports that failed.\n# TYPE kiln_span_exports_failed_total "
	    "counter\nkiln_span_exports_failed_total %llu\n",
	    (unsigned long long)otel_shm->failed);
}

static void
otel_tick(void *unused, u_int64_t unused2)
{
	if (ot.count > 0)
		otel_export();
}

static void
otel_kicked(void *unused, u_int64_t unused2)
{
	/* A oneshot: Kore frees it after this call. */
	ot.kick = NULL;
	if (ot.count > 0)
		otel_export();
}

/* One batch from the head of the ring, posted; its slots are free. */
static void
otel_export(void)
{
	yajl_gen		g;
	const unsigned char	*body;
	size_t			n, len;
	char			**h, *colon;
	CURL			*c;

	if (ot.busy)
		return;
	n = ot.count < (size_t)kiln_config.otel_batch ? ot.count :
	    (size_t)kiln_config.otel_batch;

	g = NULL;
	if (kiln_config.otel_json) {
		if ((g = yajl_gen_alloc(NULL)) == NULL)
			fatal("yajl_gen_alloc");
		otel_json(g, n);
		(void)yajl_gen_get_buf(g, &body, &len);
	} else {
		otel_pb(ot.pb_out, n);
		body = ot.pb_out->data;
		len = ot.pb_out->offset;
	}
	ot.head = (ot.head + n) % ot.size;
	ot.count -= n;

	if (!kore_curl_init(&ot.curl, kiln_config.otel_url, KORE_CURL_ASYNC)) {
		otel_count(&otel_shm->dropped, n);
		otel_count(&otel_shm->failed, 1);
	} else {
		kore_curl_http_setup(&ot.curl, HTTP_METHOD_POST, body, len);
	}
	if (g != NULL)
		yajl_gen_free(g);
	if (ot.curl.handle == NULL)
		return;

	kore_curl_http_set_header(&ot.curl, "Content-Type",
	    kiln_config.otel_json ? "application/json" :
	    "application/x-protobuf");
	for (h = kiln_config.otel_headers; h != NULL && *h != NULL; h++) {
		/* "name: value", split where config.c joined them. */
		colon = strchr(*h, ':');
		*colon = '\0';
		kore_curl_http_set_header(&ot.curl, *h, colon + 2);
		*colon = ':';
	}

	c = ot.curl.handle;
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
	    (long)kiln_config.otel_timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)kiln_config.otel_timeout_ms);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");

	ot.busy = 1;
	ot.sending = n;
	kore_curl_bind_callback(&ot.curl, otel_sent, NULL);
	kore_curl_run(&ot.curl);
}

static void
otel_sent(struct kore_curl *c, void *unused)
{
	char		why[128];
	int		ok;

	ok = kore_curl_success(c) && c->http.status >= 200 &&
	    c->http.status < 300;
	if (ok) {
		otel_count(&otel_shm->exported, ot.sending);
		if (ot.failing)
			log_kv(LOG_LVL_INFO, "span export recovered", NULL);
		ot.failing = 0;
	} else {
		otel_count(&otel_shm->dropped, ot.sending);
		otel_count(&otel_shm->failed, 1);
		if (!kore_curl_success(c)) {
			(void)snprintf(why, sizeof(why), "%.120s",
			    kore_curl_strerror(c));
		} else {
			(void)snprintf(why, sizeof(why), "collector answered "
			    "HTTP %ld", c->http.status);
		}
		/* Once per outage: the collector's trouble is not ours. */
		if (!ot.failing) {
			log_kv(LOG_LVL_WARN, "span export failed, spans "
			    "dropped", "error", why,
			    "#spans", (int64_t)ot.sending, NULL);
		}
		ot.failing = 1;
	}

	kore_curl_cleanup(c);
	ot.busy = 0;
	ot.sending = 0;
	if (ot.count >= (size_t)kiln_config.otel_batch && ot.kick == NULL) {
		ot.kick = kore_timer_add(otel_kicked, OTEL_KICK_MS, NULL,
		    KORE_TIMER_ONESHOT);
	}
}

/*
 * The OTLP/HTTP JSON mapping: ids as hex, times as decimal strings of
 * nanoseconds, kind and status code as integers, 64-bit integers as
 * strings ({"intValue": "200"}).
 */
static void
otel_json(yajl_gen g, size_t n)
{
	char		**r;
	size_t		i;

	yajl_gen_map_open(g);
	yajl_gen_string(g, (const unsigned char *)"resourceSpans", 13);
	yajl_gen_array_open(g);
	yajl_gen_map_open(g);

	yajl_gen_string(g, (const unsigned char *)"resource", 8);
	yajl_gen_map_open(g);
	yajl_gen_string(g, (const unsigned char *)"attributes", 10);
	yajl_gen_array_open(g);
	otel_json_attr(g, "service.name", kiln_config.otel_service, 0, 0);
	otel_json_attr(g, "service.version", KILN_VERSION, 0, 0);
	otel_json_attr(g, "telemetry.sdk.name", "kiln", 0, 0);
	for (r = kiln_config.otel_resource; r != NULL && *r != NULL; r += 2) {
		if (strcmp(r[0], "service.name"))
			otel_json_attr(g, r[0], r[1], 0, 0);
	}
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);

	yajl_gen_string(g, (const unsigned char *)"scopeSpans", 10);
	yajl_gen_array_open(g);
	yajl_gen_map_open(g);
	yajl_gen_string(g, (const unsigned char *)"scope", 5);
	yajl_gen_map_open(g);
	json_kv_str(g, "name", "kiln");
	json_kv_str(g, "version", KILN_VERSION);
	yajl_gen_map_close(g);
	yajl_gen_string(g, (const unsigned char *)"spans", 5);
	yajl_gen_array_open(g);
	for (i = 0; i < n; i++)
		otel_json_span(g, &ot.ring[(ot.head + i) % ot.size]);
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
	yajl_gen_array_close(g);

	yajl_gen_map_close(g);
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
}

static void
otel_json_span(yajl_gen g, const struct otel_span *s)
{
	int		i;
	char		num[24];

	yajl_gen_map_open(g);
	json_kv_str(g, "traceId", s->ctx.trace_id);
	json_kv_str(g, "spanId", s->ctx.span_id);
	if (s->ctx.parent_id[0] != '\0')
		json_kv_str(g, "parentSpanId", s->ctx.parent_id);
	json_kv_str(g, "name", s->name);
	json_kv_int(g, "kind", s->kind);
	otel_dec(s->ctx.start_ns, 0, num);
	json_kv_str(g, "startTimeUnixNano", num);
	otel_dec(s->end_ns < s->ctx.start_ns ? s->ctx.start_ns : s->end_ns,
	    0, num);
	json_kv_str(g, "endTimeUnixNano", num);

	yajl_gen_string(g, (const unsigned char *)"attributes", 10);
	yajl_gen_array_open(g);
	for (i = 0; i < s->nattrs; i++) {
		otel_json_attr(g, s->attrs[i].key, s->attrs[i].str,
		    s->attrs[i].is_int, s->attrs[i].num);
	}
	yajl_gen_array_close(g);

	if (s->error) {
		yajl_gen_string(g, (const unsigned char *)"status", 6);
		yajl_gen_map_open(g);
		json_kv_int(g, "code", STATUS_ERROR);
		if (s->message[0] != '\0')
			json_kv_str(g, "message", s->message);
		yajl_gen_map_close(g);
	}
	yajl_gen_map_close(g);
}

static void
otel_json_attr(yajl_gen g, const char *key, const char *str, int is_int,
    int64_t num)
{
	char		buf[24];

	yajl_gen_map_open(g);
	json_kv_str(g, "key", key);
	yajl_gen_string(g, (const unsigned char *)"value", 5);
	yajl_gen_map_open(g);
	if (is_int) {
		otel_dec(num < 0 ? -(u_int64_t)num : (u_int64_t)num, num < 0,
		    buf);
		json_kv_str(g, "intValue", buf);
	} else {
		json_kv_str(g, "stringValue", str);
	}
	yajl_gen_map_close(g);
	yajl_gen_map_close(g);
}

/*
 * OTLP protobuf (opentelemetry/proto/collector/trace/v1), encoded by
 * hand: ExportTraceServiceRequest { resource_spans = 1 { resource = 1
 * { attributes = 1 }, scope_spans = 2 { scope = 1 { name = 1,
 * version = 2 }, spans = 2 } } }. No escaping, no number formatting:
 * several times cheaper than the JSON, which is why it is the default.
 */
static void
otel_pb(struct kore_buf *out, size_t n)
{
	struct kore_buf		res, *spans, *one;
	char			**r;
	size_t			i, scope_len, ss_len, rs_len;

	kore_buf_init(&res, 1024);
	otel_pb_attr(&res, 1, "service.name", kiln_config.otel_service, 0, 0);
	otel_pb_attr(&res, 1, "service.version", KILN_VERSION, 0, 0);
	otel_pb_attr(&res, 1, "telemetry.sdk.name", "kiln", 0, 0);
	for (r = kiln_config.otel_resource; r != NULL && *r != NULL; r += 2) {
		if (strcmp(r[0], "service.name"))
			otel_pb_attr(&res, 1, r[0], r[1], 0, 0);
	}

	spans = ot.pb_spans;
	one = ot.pb_one;
	kore_buf_reset(spans);
	kore_buf_reset(out);
	for (i = 0; i < n; i++) {
		kore_buf_reset(one);
		otel_pb_span(one, &ot.ring[(ot.head + i) % ot.size]);
		pb_head(spans, 2, one->offset);
		kore_buf_append(spans, one->data, one->offset);
	}

	scope_len = 2 + strlen("kiln") + 2 + strlen(KILN_VERSION);
	ss_len = 1 + pb_varint_len(scope_len) + scope_len + spans->offset;
	rs_len = 1 + pb_varint_len(res.offset) + res.offset +
	    1 + pb_varint_len(ss_len) + ss_len;

	pb_head(out, 1, rs_len);
	pb_head(out, 1, res.offset);
	kore_buf_append(out, res.data, res.offset);
	pb_head(out, 2, ss_len);
	pb_head(out, 1, scope_len);
	pb_str(out, 1, "kiln");
	pb_str(out, 2, KILN_VERSION);
	kore_buf_append(out, spans->data, spans->offset);

	kore_buf_cleanup(&res);
}

static void
otel_pb_span(struct kore_buf *b, const struct otel_span *s)
{
	size_t		mlen;
	int		i;

	pb_hex(b, 1, s->ctx.trace_id);
	pb_hex(b, 2, s->ctx.span_id);
	if (s->ctx.parent_id[0] != '\0')
		pb_hex(b, 4, s->ctx.parent_id);
	pb_str(b, 5, s->name);
	pb_varint(b, 6 << 3);
	pb_varint(b, (u_int64_t)s->kind);
	pb_fixed64(b, 7, s->ctx.start_ns);
	pb_fixed64(b, 8, s->end_ns < s->ctx.start_ns ? s->ctx.start_ns :
	    s->end_ns);
	for (i = 0; i < s->nattrs; i++) {
		otel_pb_attr(b, 9, s->attrs[i].key, s->attrs[i].str,
		    s->attrs[i].is_int, s->attrs[i].num);
	}
	if (s->error) {
		/* Status { message = 2, code = 3 } */
		mlen = strlen(s->message);
		pb_head(b, 15, (mlen > 0 ? 1 + pb_varint_len(mlen) + mlen :
		    0) + 2);
		if (mlen > 0)
			pb_str(b, 2, s->message);
		pb_varint(b, 3 << 3);
		pb_varint(b, STATUS_ERROR);
	}
}

/* KeyValue { key = 1, value = 2: AnyValue { string 1 | int 3 } }. */
static void
otel_pb_attr(struct kore_buf *b, int field, const char *key,
    const char *str, int is_int, int64_t num)
{
	size_t		klen, vlen, any;

	klen = strlen(key);
	if (is_int) {
		any = 1 + pb_varint_len((u_int64_t)num);
	} else {
		vlen = strlen(str);
		any = 1 + pb_varint_len(vlen) + vlen;
	}
	pb_head(b, field, 1 + pb_varint_len(klen) + klen +
	    1 + pb_varint_len(any) + any);
	pb_str(b, 1, key);
	pb_head(b, 2, any);
	if (is_int) {
		pb_varint(b, 3 << 3);
		pb_varint(b, (u_int64_t)num);
	} else {
		pb_str(b, 1, str);
	}
}

static void
pb_varint(struct kore_buf *b, u_int64_t v)
{
	u_int8_t	out[10];
	size_t		n;

	for (n = 0; v >= 0x80; v >>= 7)
		out[n++] = (u_int8_t)(v | 0x80);
	out[n++] = (u_int8_t)v;
	kore_buf_append(b, out, n);
}

static size_t
pb_varint_len(u_int64_t v)
{
	size_t		n;

	for (n = 1; v >= 0x80; v >>= 7)
		n++;

	return (n);
}

/* The tag of a length-delimited field and its length. */
static void
pb_head(struct kore_buf *b, int field, size_t len)
{
	pb_varint(b, ((u_int64_t)field << 3) | 2);
	pb_varint(b, len);
}

static void
pb_str(struct kore_buf *b, int field, const char *s)
{
	size_t		len;

	len = strlen(s);
	pb_head(b, field, len);
	kore_buf_append(b, s, len);
}

/* A hex id as its bytes. */
static void
pb_hex(struct kore_buf *b, int field, const char *hex)
{
	u_int8_t	out[16];
	size_t		i, n;
	int		hi, lo;
	const char	*p;

	n = strlen(hex) / 2;
	for (i = 0; i < n && i < sizeof(out); i++) {
		p = hex + 2 * i;
		hi = p[0] <= '9' ? p[0] - '0' : p[0] - 'a' + 10;
		lo = p[1] <= '9' ? p[1] - '0' : p[1] - 'a' + 10;
		out[i] = (u_int8_t)((hi << 4) | lo);
	}
	pb_head(b, field, i);
	kore_buf_append(b, out, i);
}

static void
pb_fixed64(struct kore_buf *b, int field, u_int64_t v)
{
	u_int8_t	out[8];
	int		i;

	pb_varint(b, ((u_int64_t)field << 3) | 1);
	for (i = 0; i < 8; i++) {
		out[i] = (u_int8_t)(v & 0xff);
		v >>= 8;
	}
	kore_buf_append(b, out, sizeof(out));
}

/* words x 16 hex digits, never all zero (the low bit is set). */
static void
otel_id(char *out, int words)
{
	int		i;

	for (i = 0; i < words; i++)
		hash_hex64(hash_mix64(ot.seed + ++ot.n) | 1, out + i * 16);
	out[words * 16] = '\0';
}

static void
otel_count(volatile u_int64_t *c, u_int64_t n)
{
	(void)__sync_fetch_and_add(c, n);
}

/* v in decimal, '-' first when neg, into out (24 bytes): no printf. */
static void
otel_dec(u_int64_t v, int neg, char *out)
{
	char		tmp[24];
	int		i, n;

	i = sizeof(tmp);
	do {
		tmp[--i] = '0' + (v % 10);
		v /= 10;
	} while (v != 0);
	n = 0;
	if (neg)
		out[n++] = '-';
	while (i < (int)sizeof(tmp))
		out[n++] = tmp[i++];
	out[n] = '\0';
}


