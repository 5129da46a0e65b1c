/*
 * push.c: clients hear of a new token the moment the worker has it.
 *
 *	GET /api/tokens/{name}/current-token?wait_for_change=true
 *	    &last_fingerprint=F[&timeout_sec=T]
 *	GET /api/tokens/{name}/stream		(text/event-stream)
 *
 * A long-poll sleeps on its cache entry, like a min_ttl request, and is
 * woken by the cache when the entry moves (or by its deadline, set no
 * later than the token's expiry); it answers when the fingerprint is no
 * longer F, the token went invalid, or T passed. No database work.
 *
 * An event stream is a chunked 200 whose connection the stream then owns
 * (as Kore's WebSockets do after their 101): events are written to it as
 * the cache says its entry changed (cache_watch_entry), a comment every
 * KILN_SSE_HEARTBEAT seconds keeps it and its proxies awake. The streams
 * of an entry hang on it (e->push). Both kinds are capped per worker and
 * counted in the shared region for /metrics and the dashboard.
 *
 * Both keep only the access they came with: each remembers who it was
 * let in as (a stream copies it, a long-poll has its request's
 * principal), and current-token's access rule is applied again when a
 * key is revoked, the key table or the source changes, and every tick.
 * A stream that lost access hears `event: revoked` and ends; a long-poll
 * is woken and answered the refusal current-token would give.
 */

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <yajl/yajl_gen.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

#define POLL_TIMEOUT_DEFAULT	60
#define POLL_TIMEOUT_MAX	300
#define PUSH_TICK_MS		1000
#define PUSH_QUEUE_MAX		(256 * 1024)
#define PUSH_RECONNECT_S	2
#define PUSH_REQUEST_ROOM	256	/* requests left for other work */

struct push_entry;

struct push_stream {
	struct connection		*c;
	struct push_entry		*pe;
	TAILQ_ENTRY(push_stream)	list;
	/* Who it was let in as (struct principal, in short). */
	int				role;
	int				kind;
	int				header;	/* X-Kiln-Request */
	int64_t				key_id;
	int64_t				expires_ms;
	char				session[AUTH_HASH_LEN + 1];
};

/* What the streams of one cache entry were last told. */
struct push_entry {
	struct cache_entry		*e;
	int64_t				generation;
	const char			*state;
	TAILQ_HEAD(, push_stream)	streams;
	TAILQ_ENTRY(push_entry)		list;
};

/*
 * The answer of the long-polls a new token wakes, rendered once per wake
 * (and second of expires_in) instead of by http_response per request:
 * the bytes Kore would write, but for the headers each request has.
 */
static struct {
	struct cache_entry	*e;
	const char		*answer;	/* the e->answer it is of */
	int64_t			expires_in;
	struct kore_buf		head;		/* status line, keep-alive */
	struct kore_buf		tail;		/* our headers, the body */
} push_ans;

static struct {
	TAILQ_HEAD(, push_entry)	entries;
	int64_t				waiters;
	int64_t				streams;
	int				shutdown;
} push;

static void	push_count(void);
static void	push_entry_cb(struct cache_entry *, int);
static void	push_check(struct push_entry *, int64_t);
static void	push_tick(void *, u_int64_t);
static void	push_heartbeat(void *, u_int64_t);
static void	push_entry_free(struct push_entry *);
static const char	*push_state(const struct cache_entry *, int64_t);
static void	push_token_event(struct kore_buf *, struct cache_entry *,
		    int64_t);
static void	push_state_event(struct kore_buf *, struct cache_entry *,
		    const char *);
static void	push_shutdown_event(struct kore_buf *);
static void	push_chunk(struct kore_buf *, size_t);
static void	push_fanout(struct push_entry *, struct kore_buf *);
static int	push_write(struct push_stream *, const void *, size_t);
static void	push_end(struct push_stream *);
static size_t	push_queued(struct connection *);
static int	push_discard(struct netbuf *);
static void	push_stream_gone(struct connection *);
static int	push_query(const char *, const char *, char *, size_t);
static void	push_key_revoked(int64_t);
static void	push_recheck_all(void);
static void	push_recheck_streams(struct push_entry *, int64_t);
static void	push_recheck_waiters(struct cache_entry *, int64_t);
static int	push_refused(struct push_stream *, struct cache_entry *,
		    int64_t, const char **, const char **);
static int	push_header(struct http_request *);
static void	push_revoked_event(struct kore_buf *, struct cache_entry *,
		    const char *, const char *);
static void	push_answer_render(struct cache_entry *, int64_t);
static void	push_answer_forget(void);
static int	push_etag_match(const char *, const char *);

void
push_init(void)
{
	TAILQ_INIT(&push.entries);
	kore_buf_init(&push_ans.head, 128);
	kore_buf_init(&push_ans.tail, 1024);
	push_count();
	cache_watch_entry(push_entry_cb);
	auth_revoke_watch(push_key_revoked);
	auth_keys_watch(push_recheck_all);
	(void)kore_timer_add(push_tick, PUSH_TICK_MS, NULL, 0);
	(void)kore_timer_add(push_heartbeat, kiln_config.sse_heartbeat_ms,
	    NULL, 0);
}

/*
 * The drain: long-polls answer now (the current token), streams are
 * told to reconnect elsewhere and end.
 */
void
push_shutdown(void)
{
	struct push_entry	*pe;
	struct push_stream	*s;
	struct cache_entry	*e;
	struct cache_waiter	*w;
	struct kore_buf		buf;

	push.shutdown = 1;
	for (e = cache_any_first(); e != NULL; e = cache_any_next(e)) {
		while ((w = TAILQ_FIRST(&e->waiters)) != NULL) {
			cache_unwait(w);
			http_request_wakeup(w->req);
		}
	}

	kore_buf_init(&buf, 256);
	push_shutdown_event(&buf);
	TAILQ_FOREACH(pe, &push.entries, list) {
		while ((s = TAILQ_FIRST(&pe->streams)) != NULL) {
			TAILQ_REMOVE(&pe->streams, s, list);
			s->pe = NULL;
			if (push_write(s, buf.data, buf.offset))
				push_end(s);
		}
	}
	kore_buf_cleanup(&buf);
}

/*
 * The long-poll parameters of a current-token request. KORE_RESULT_OK
 * with st->poll_until set (0: no wait asked), or KORE_RESULT_ERROR with
 * the 400 answered.
 */
int
push_wait_parse(struct http_request *req, struct api_state *st)
{
	const char	*q;
	char		v[16];
	int64_t		timeout;
	size_t		i;
	int		err;

	st->poll_until = 0;
	if ((q = req->query_string) == NULL)
		return (KORE_RESULT_OK);

	switch (push_query(q, "wait_for_change", v, sizeof(v))) {
	case -1:
		goto bad;
	case 0:
		return (KORE_RESULT_OK);
	}
	if (!strcmp(v, "false"))
		return (KORE_RESULT_OK);
	if (strcmp(v, "true"))
		goto bad;

	st->last_fpr[0] = '\0';
	if (push_query(q, "last_fingerprint", st->last_fpr,
	    sizeof(st->last_fpr)) == -1)
		goto bad;
	for (i = 0; st->last_fpr[i] != '\0'; i++) {
		if (!((st->last_fpr[i] >= '0' && st->last_fpr[i] <= '9') ||
		    (st->last_fpr[i] >= 'a' && st->last_fpr[i] <= 'f')))
			goto bad;
	}
	if (i != 0 && i != KILN_FPR_LEN)
		goto bad;

	timeout = POLL_TIMEOUT_DEFAULT;
	switch (push_query(q, "timeout_sec", v, sizeof(v))) {
	case -1:
		goto bad;
	case 1:
		timeout = kore_strtonum(v, 10, 1, POLL_TIMEOUT_MAX, &err);
		if (err != KORE_RESULT_OK)
			goto bad;
		break;
	}

	st->poll_until = isotime_now() + timeout * 1000;
	return (KORE_RESULT_OK);

bad:
	api_error(req, 400, "bad_request", "wait_for_change=true|false, "
	    "last_fingerprint=<12 hex> and timeout_sec=1-300 expected");
	return (KORE_RESULT_ERROR);
}

/*
 * A long-poll on e: KORE_RESULT_RETRY while it sleeps, KORE_RESULT_OK
 * when the caller answers as usual (token or 503), KORE_RESULT_ERROR
 * when it was refused here (too many waiters, answered).
 */
int
push_wait(struct http_request *req, struct api_state *st,
    struct cache_entry *e, int64_t now)
{
	int64_t		deadline;

	push_unpark(st);
	if (push.shutdown || drain_active() || !cache_valid(e, now) ||
	    now >= st->poll_until || strcmp(e->fpr, st->last_fpr))
		return (KORE_RESULT_OK);

	/*
	 * Kore stops accepting on a worker at http_request_limit requests
	 * in flight: waiters leave room for the work that answers them.
	 */
	if (push.waiters >= kiln_config.waiters_max ||
	    http_request_count + PUSH_REQUEST_ROOM >= http_request_limit) {
		http_response_header(req, "Retry-After", "1");
		api_error(req, 503, "too_many_waiters",
		    "too many waiting requests on this worker");
		return (KORE_RESULT_ERROR);
	}

	/* Woken no later than the token stops being valid. */
	deadline = e->expires_ms - CACHE_VALID_MARGIN_MS;
	if (st->poll_until < deadline)
		deadline = st->poll_until;

	st->longpoll = 1;
	push.waiters++;
	push_count();
	cache_wait(&st->waiter, req, e, deadline);

	return (KORE_RESULT_RETRY);
}

/* The request no longer sleeps (woken, answered or gone). */
void
push_unpark(struct api_state *st)
{
	if (!st->longpoll)
		return;
	cache_unwait(&st->waiter);
	st->longpoll = 0;
	push.waiters--;
	push_count();
}

/*
 * If-None-Match names the current token: 304 without a body (answered,
 * returns 1). Else 0.
 */
int
push_not_modified(struct http_request *req, struct cache_entry *e)
{
	const char	*inm;
	char		etag[KILN_FPR_LEN + 3];

	if (!http_request_header(req, "if-none-match", &inm) ||
	    !push_etag_match(inm, e->fpr))
		return (0);

	(void)snprintf(etag, sizeof(etag), "\"%s\"", e->fpr);
	http_response_header(req, "ETag", etag);
	http_response_header(req, "Cache-Control", "no-store");
	req->flags |= HTTP_REQUEST_NO_CONTENT_LENGTH;
	http_response(req, 304, NULL, 0);

	return (1);
}

/*
 * Answer a long-poll the current token of e with the answer rendered
 * once for all it woke: 1 if answered, 0 when Kore's way must (a HEAD,
 * HTTP/1.0, a closing connection, cookies, HSTS), the caller answers.
 */
int
push_answer(struct http_request *req, struct cache_entry *e, int64_t now)
{
	struct connection	*c = req->owner;
	struct http_header	*hdr;
	const char		*v;
	char			line[512];
	size_t			hl, vl;
	int64_t			in;

	if (c == NULL || c->proto != CONN_PROTO_HTTP ||
	    req->method != HTTP_METHOD_GET ||
	    (req->flags & HTTP_VERSION_1_0) ||
	    (c->flags & (CONN_CLOSE_EMPTY | CONN_IS_BUSY)) ||
	    http_keepalive_time == 0 || http_hsts_enable != 0 ||
	    !TAILQ_EMPTY(&req->resp_cookies) ||
	    (http_request_header(req, "connection", &v) &&
	    !strcasecmp(v, "close")))
		return (0);

	if (e->answer == NULL)
		cache_answer(e);
	if (e->answer == NULL)
		return (0);
	in = (e->expires_ms - now) / 1000;
	if (push_ans.e != e || push_ans.answer != e->answer ||
	    push_ans.expires_in != in)
		push_answer_render(e, in);

	net_send_queue(c, push_ans.head.data, push_ans.head.offset);
	TAILQ_FOREACH(hdr, &req->resp_headers, list) {
		hl = strlen(hdr->header);
		vl = strlen(hdr->value);
		if (hl + vl + 4 > sizeof(line)) {
			net_send_queue(c, hdr->header, hl);
			net_send_queue(c, ": ", 2);
			net_send_queue(c, hdr->value, vl);
			net_send_queue(c, "\r\n", 2);
			continue;
		}
		memcpy(line, hdr->header, hl);
		memcpy(line + hl, ": ", 2);
		memcpy(line + hl + 2, hdr->value, vl);
		memcpy(line + hl + 2 + vl, "\r\n", 2);
		net_send_queue(c, line, hl + vl + 4);
	}
	net_send_queue(c, push_ans.tail.data, push_ans.tail.offset);

	/* As http_response: the status for the log, the next request. */
	req->status = 200;
	http_start_recv(c);

	return (1);
}

/*
 * Open an event stream on e (access was checked by the caller): the
 * current token and state now, the rest as it comes.
 */
int
push_stream_entry(struct http_request *req, struct api_state *st,
    struct cache_entry *e)
{
	struct push_entry	*pe;
	struct push_stream	*s;
	struct connection	*c;
	struct kore_buf		buf;
	const char		*v;
	int64_t			now, last;
	int			err;

	if (push.streams >= kiln_config.streams_max) {
		http_response_header(req, "Retry-After", "1");
		api_error(req, 503, "too_many_streams",
		    "too many event streams on this worker");
		return (KORE_RESULT_OK);
	}

	http_response_header(req, "Content-Type", "text/event-stream");
	http_response_header(req, "Cache-Control", "no-store");
	http_response_header(req, "X-Accel-Buffering", "no");
	if (req->method == HTTP_METHOD_HEAD) {
		http_response(req, 200, NULL, 0);
		return (KORE_RESULT_OK);
	}
	http_response_header(req, "Transfer-Encoding", "chunked");
	req->flags |= HTTP_REQUEST_NO_CONTENT_LENGTH;

	/* Last-Event-ID: the generation the client has; older gets ours. */
	last = -1;
	if (http_request_header(req, "last-event-id", &v)) {
		last = kore_strtonum64(v, 1, &err);
		if (err != KORE_RESULT_OK)
			last = -1;
	}

	now = isotime_now();
	kore_buf_init(&buf, 1024);
	if (cache_valid(e, now) && e->generation != last)
		push_token_event(&buf, e, now);
	push_state_event(&buf, e, push_state(e, now));
	if (drain_active() || push.shutdown) {
		push_shutdown_event(&buf);
		kore_buf_append(&buf, "0\r\n\r\n", 5);
	}
	http_response(req, 200, buf.data, buf.offset);
	OPENSSL_cleanse(buf.data, buf.offset);
	kore_buf_cleanup(&buf);

	c = req->owner;
	if (drain_active() || push.shutdown) {
		c->flags |= CONN_CLOSE_EMPTY;
		return (KORE_RESULT_OK);
	}

	/* The connection is the stream's now: no more requests on it. */
	c->http_timeout = 0;
	c->idle_timer.length = kiln_config.sse_heartbeat_ms * 2 + 5000;
	net_recv_reset(c, 64, push_discard);

	if ((pe = e->push) == NULL) {
		pe = kore_calloc(1, sizeof(*pe));
		pe->e = e;
		pe->generation = e->generation;
		pe->state = push_state(e, now);
		TAILQ_INIT(&pe->streams);
		TAILQ_INSERT_TAIL(&push.entries, pe, list);
		e->push = pe;
	}

	s = kore_calloc(1, sizeof(*s));
	s->c = c;
	s->pe = pe;
	s->role = st->principal.role;
	s->kind = st->principal.kind;
	s->key_id = st->principal.key_id;
	s->expires_ms = st->principal.expires_ms;
	(void)kore_strlcpy(s->session, st->principal.session,
	    sizeof(s->session));
	s->header = push_header(req);
	TAILQ_INSERT_TAIL(&pe->streams, s, list);
	c->hdlr_extra = s;
	c->disconnect = push_stream_gone;
	push.streams++;
	push_count();

	return (KORE_RESULT_OK);
}

static void
push_count(void)
{
	shared_push(worker->id, push.waiters, push.streams);
}

/* The cache (re)loaded e, or is about to free it. */
static void
push_entry_cb(struct cache_entry *e, int what)
{
	struct push_entry	*pe;
	struct push_stream	*s;
	struct cache_waiter	*w;

	if (push_ans.e == e)
		push_answer_forget();

	/* Its access may have changed: the waiters look again. */
	if (what == CACHE_ENTRY_CHANGED && e->enabled) {
		push_recheck_waiters(e, isotime_now());
	} else {
		while ((w = TAILQ_FIRST(&e->waiters)) != NULL) {
			cache_unwait(w);
			http_request_wakeup(w->req);
		}
	}
	if ((pe = e->push) == NULL)
		return;

	if (what == CACHE_ENTRY_CHANGED && e->enabled) {
		push_check(pe, isotime_now());
		return;
	}

	/* The source went or was disabled: its streams end. */
	while ((s = TAILQ_FIRST(&pe->streams)) != NULL) {
		TAILQ_REMOVE(&pe->streams, s, list);
		s->pe = NULL;
		push_end(s);
	}
	push_entry_free(pe);
}

/* Tell the streams of pe what changed since they were last told. */
static void
push_check(struct push_entry *pe, int64_t now)
{
	struct cache_entry	*e = pe->e;
	struct kore_buf		buf;
	const char		*state;

	/* Nothing goes to a stream that lost its access meanwhile. */
	push_recheck_streams(pe, now);

	state = push_state(e, now);
	if (state == pe->state && (e->generation == pe->generation ||
	    !cache_valid(e, now)))
		return;

	kore_buf_init(&buf, 1024);
	if (e->generation != pe->generation && cache_valid(e, now)) {
		pe->generation = e->generation;
		push_token_event(&buf, e, now);
	}
	if (state != pe->state) {
		pe->state = state;
		push_state_event(&buf, e, state);
	}
	push_fanout(pe, &buf);
	OPENSSL_cleanse(buf.data, buf.offset);
	kore_buf_cleanup(&buf);
}

/* Tokens expire without a reload: look again every second. */
static void
push_tick(void *unused, u_int64_t unused2)
{
	struct push_entry	*pe, *next;
	int64_t			now;

	now = isotime_now();
	for (pe = TAILQ_FIRST(&push.entries); pe != NULL; pe = next) {
		next = TAILQ_NEXT(pe, list);
		if (TAILQ_EMPTY(&pe->streams)) {
			push_entry_free(pe);
			continue;
		}
		push_check(pe, now);
	}
}

static void
push_heartbeat(void *unused, u_int64_t unused2)
{
	struct push_entry	*pe;
	struct kore_buf		buf;

	kore_buf_init(&buf, 32);
	kore_buf_append(&buf, ": heartbeat\n\n", 13);
	push_chunk(&buf, 0);
	TAILQ_FOREACH(pe, &push.entries, list)
		push_fanout(pe, &buf);
	kore_buf_cleanup(&buf);
}

static void
push_entry_free(struct push_entry *pe)
{
	pe->e->push = NULL;
	TAILQ_REMOVE(&push.entries, pe, list);
	kore_free(pe);
}

/* The states of the dashboard, without "refreshing" (every refresh). */
static const char *
push_state(const struct cache_entry *e, int64_t now)
{
	return (policy_state(e->paused || cache_paused(), 0, e->failures,
	    e->token != NULL, e->expires_ms, now));
}

/* event: token, its data the answer of current-token; one chunk. */
static void
push_token_event(struct kore_buf *buf, struct cache_entry *e, int64_t now)
{
	size_t		start;

	if (e->answer == NULL)
		cache_answer(e);
	if (e->answer == NULL)
		return;

	start = buf->offset;
	kore_buf_appendf(buf, "id: %lld\nevent: token\ndata: ",
	    (long long)e->generation);
	kore_buf_append(buf, e->answer, e->answer_split);
	kore_buf_appendf(buf, "%lld", (long long)((e->expires_ms - now) /
	    1000));
	kore_buf_append(buf, e->answer + e->answer_split,
	    e->answer_len - e->answer_split);
	kore_buf_append(buf, "\n\n", 2);
	push_chunk(buf, start);
}

static void
push_state_event(struct kore_buf *buf, struct cache_entry *e,
    const char *state)
{
	yajl_gen		g;
	const unsigned char	*data;
	size_t			start, len;

	g = api_json_begin();
	json_kv_str(g, "agent_name", e->name);
	json_kv_str(g, "state", state);
	json_kv_int(g, "generation", e->generation);
	json_kv_str(g, "fingerprint", e->fpr);
	json_kv_int(g, "failures", e->failures);
	yajl_gen_map_close(g);
	(void)yajl_gen_get_buf(g, &data, &len);

	start = buf->offset;
	kore_buf_appendf(buf, "event: state\ndata: ");
	kore_buf_append(buf, data, len);
	kore_buf_append(buf, "\n\n", 2);
	push_chunk(buf, start);
	yajl_gen_free(g);
}

/* As the dashboard's sockets are told (dash_shutdown). */
static void
push_shutdown_event(struct kore_buf *buf)
{
	yajl_gen		g;
	const unsigned char	*data;
	size_t			start, len;

	g = api_json_begin();
	json_kv_str(g, "type", "shutdown_pending");
	json_kv_int(g, "reconnect_after", PUSH_RECONNECT_S);
	json_kv_str(g, "message", "This kiln instance is shutting down; "
	    "reconnect to another one.");
	yajl_gen_map_close(g);
	(void)yajl_gen_get_buf(g, &data, &len);

	start = buf->offset;
	kore_buf_appendf(buf, "retry: %d\nevent: shutdown_pending\ndata: ",
	    PUSH_RECONNECT_S * 1000);
	kore_buf_append(buf, data, len);
	kore_buf_append(buf, "\n\n", 2);
	push_chunk(buf, start);
	yajl_gen_free(g);
}

/* Frame what buf holds from start as one HTTP/1.1 chunk. */
static void
push_chunk(struct kore_buf *buf, size_t start)
{
	size_t		len, n;
	char		head[20];

	len = buf->offset - start;
	n = (size_t)snprintf(head, sizeof(head), "%zx\r\n", len);
	kore_buf_append(buf, "\r\n", 2);
	kore_buf_append(buf, head, n);		/* room for the move */
	memmove(buf->data + start + n, buf->data + start, len + 2);
	memcpy(buf->data + start, head, n);
}

static void
push_fanout(struct push_entry *pe, struct kore_buf *buf)
{
	struct push_stream	*s, *next;

	if (buf->offset == 0)
		return;
	for (s = TAILQ_FIRST(&pe->streams); s != NULL; s = next) {
		next = TAILQ_NEXT(s, list);
		(void)push_write(s, buf->data, buf->offset);
	}
}

/*
 * Queue and send; a stream that does not read (its queue grows past
 * PUSH_QUEUE_MAX) or cannot be written is closed. 0 when it was.
 */
static int
push_write(struct push_stream *s, const void *data, size_t len)
{
	struct connection	*c = s->c;

	if (c->state == CONN_STATE_DISCONNECTING)
		return (0);
	if (push_queued(c) + len > PUSH_QUEUE_MAX) {
		log_kv(LOG_LVL_WARN, "event stream closed: not reading",
		    NULL);
		kore_connection_disconnect(c);
		return (0);
	}

	net_send_queue(c, data, len);
	if (!net_send_flush(c)) {
		kore_connection_disconnect(c);
		return (0);
	}
	if (c->state == CONN_STATE_DISCONNECTING)
		return (0);
	kore_connection_start_idletimer(c);

	return (1);
}

/* The last chunk; the connection closes once it is sent. */
static void
push_end(struct push_stream *s)
{
	struct connection	*c = s->c;

	if (c->state == CONN_STATE_DISCONNECTING)
		return;
	c->flags |= CONN_CLOSE_EMPTY;
	net_send_queue(c, "0\r\n\r\n", 5);
	if (!net_send_flush(c))
		kore_connection_disconnect(c);
}

static size_t
push_queued(struct connection *c)
{
	struct netbuf	*nb;
	size_t		n;

	n = 0;
	TAILQ_FOREACH(nb, &c->send_queue, list) {
		n += nb->b_len - nb->s_off;
		if (n > PUSH_QUEUE_MAX)
			break;
	}

	return (n);
}

/* A stream's client has nothing to say; what it sends is dropped. */
static int
push_discard(struct netbuf *nb)
{
	nb->s_off = 0;
	return (KORE_RESULT_OK);
}

static void
push_stream_gone(struct connection *c)
{
	struct push_stream	*s = c->hdlr_extra;

	if (s == NULL)
		return;
	if (s->pe != NULL)
		TAILQ_REMOVE(&s->pe->streams, s, list);
	c->hdlr_extra = NULL;
	kore_free(s);
	push.streams--;
	push_count();
}

/*
 * The value of key in the query q into out: 1 found, 0 absent, -1 too
 * long or given twice. The values kiln takes need no percent-decoding.
 */
static int
push_query(const char *q, const char *key, char *out, size_t len)
{
	const char	*p;
	size_t		klen, n;
	int		found;

	found = 0;
	klen = strlen(key);
	for (p = q; p != NULL; p = strchr(p, '&') ? strchr(p, '&') + 1 :
	    NULL) {
		if (strncmp(p, key, klen) || p[klen] != '=')
			continue;
		if (found)
			return (-1);
		n = strcspn(p + klen + 1, "&");
		if (n >= len)
			return (-1);
		memcpy(out, p + klen + 1, n);
		out[n] = '\0';
		found = 1;
	}

	return (found);
}

/* If-None-Match: "*", or a list of (weak or strong) tags, one is fpr. */
static int
push_etag_match(const char *v, const char *fpr)
{
	size_t		n;

	if (fpr[0] == '\0')
		return (0);
	for (;;) {
		v += strspn(v, " \t,");
		if (*v == '\0')
			return (0);
		if (*v == '*')
			return (1);
		if (!strncmp(v, "W/", 2))
			v += 2;
		n = strcspn(v, ",");
		while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			n--;
		if (n == KILN_FPR_LEN + 2 && v[0] == '"' &&
		    v[n - 1] == '"' && !strncmp(v + 1, fpr, KILN_FPR_LEN))
			return (1);
		v += strcspn(v, ",");
	}
}

/* Key id was revoked: whoever came in with it looks again. */
static void
push_key_revoked(int64_t id)
{
	push_recheck_all();
}

/*
 * Keys were revoked or narrowed, or sessions ended: every stream and
 * long-poll looks again, a connection's too.
 */
static void
push_recheck_all(void)
{
	struct cache_entry	*e;
	struct push_entry	*pe, *next;
	int64_t			now;

	now = isotime_now();
	for (e = cache_any_first(); e != NULL; e = cache_any_next(e))
		push_recheck_waiters(e, now);
	for (pe = TAILQ_FIRST(&push.entries); pe != NULL; pe = next) {
		next = TAILQ_NEXT(pe, list);
		push_recheck_streams(pe, now);
	}
}

/* The streams of pe that may no longer read its token end. */
static void
push_recheck_streams(struct push_entry *pe, int64_t now)
{
	struct push_stream	*s, *next;
	struct cache_entry	*e = pe->e;
	struct kore_buf		buf;
	const char		*code, *msg;

	if (e->access != ACCESS_KEY && !e->require_header)
		return;
	for (s = TAILQ_FIRST(&pe->streams); s != NULL; s = next) {
		next = TAILQ_NEXT(s, list);
		if (push_refused(s, e, now, &code, &msg) == 0)
			continue;
		TAILQ_REMOVE(&pe->streams, s, list);
		s->pe = NULL;
		kore_buf_init(&buf, 256);
		push_revoked_event(&buf, e, code, msg);
		if (push_write(s, buf.data, buf.offset))
			push_end(s);
		kore_buf_cleanup(&buf);
	}
}

/*
 * The requests held on e that may no longer read its token are woken:
 * current-token, run again, answers them its refusal.
 */
static void
push_recheck_waiters(struct cache_entry *e, int64_t now)
{
	struct cache_waiter	*w, *next;
	struct api_state	*st;
	const char		*code, *msg;

	if (e->access != ACCESS_KEY && !e->require_header)
		return;
	for (w = TAILQ_FIRST(&e->waiters); w != NULL; w = next) {
		next = TAILQ_NEXT(w, list);
		if ((st = http_state_get(w->req)) == NULL)
			continue;
		if (!auth_principal_live(&st->principal, now))
			auth_principal_drop(&st->principal);
		if ((e->require_header && !push_header(w->req)) ||
		    auth_source_refused(&st->principal, e->access, e->name,
		    &code, &msg) != 0) {
			cache_unwait(w);
			http_request_wakeup(w->req);
		}
	}
}

/*
 * May stream s still read e (current-token's rule)? 0, or the status
 * current-token would answer now, and its error.
 */
static int
push_refused(struct push_stream *s, struct cache_entry *e, int64_t now,
    const char **code, const char **msg)
{
	struct principal	p;

	memset(&p, 0, sizeof(p));
	p.role = s->role;
	p.kind = s->kind;
	p.key_id = s->key_id;
	p.expires_ms = s->expires_ms;
	(void)kore_strlcpy(p.session, s->session, sizeof(p.session));
	if (!auth_principal_live(&p, now)) {
		auth_principal_drop(&p);
		s->role = p.role;
		s->kind = p.kind;
		s->key_id = 0;
		s->expires_ms = 0;
	}

	if (e->require_header && !s->header) {
		*code = "header_required";
		*msg = "this source requires the header X-Kiln-Request: true";
		return (403);
	}

	return (auth_source_refused(&p, e->access, e->name, code, msg));
}

/* Did the request say X-Kiln-Request: true? */
static int
push_header(struct http_request *req)
{
	const char	*v;

	return (http_request_header(req, "x-kiln-request", &v) &&
	    !strcmp(v, "true"));
}

/* The stream's last event: why it ends, as current-token would say. */
static void
push_revoked_event(struct kore_buf *buf, struct cache_entry *e,
    const char *code, const char *msg)
{
	yajl_gen		g;
	const unsigned char	*data;
	size_t			start, len;

	g = api_json_begin();
	json_kv_str(g, "agent_name", e->name);
	json_kv_str(g, "code", code);
	json_kv_str(g, "message", msg);
	yajl_gen_map_close(g);
	(void)yajl_gen_get_buf(g, &data, &len);

	start = buf->offset;
	kore_buf_appendf(buf, "event: revoked\ndata: ");
	kore_buf_append(buf, data, len);
	kore_buf_append(buf, "\n\n", 2);
	push_chunk(buf, start);
	yajl_gen_free(g);
}

/* The head and tail of push_answer for e, expires_in in. */
static void
push_answer_render(struct cache_entry *e, int64_t in)
{
	struct kore_buf		*t = &push_ans.tail;
	char			num[24];
	size_t			n;

	push_answer_forget();
	kore_buf_appendf(&push_ans.head, "HTTP/1.1 200 %s\r\n",
	    http_status_text(200));
	kore_buf_append(&push_ans.head, http_version, http_version_len);
	kore_buf_appendf(&push_ans.head, "connection: keep-alive\r\n"
	    "keep-alive: timeout=%d\r\n", http_keepalive_time);

	n = (size_t)snprintf(num, sizeof(num), "%lld", (long long)in);
	kore_buf_appendf(t, "Content-Type: application/json; "
	    "charset=utf-8\r\nCache-Control: no-store\r\n");
	if (e->fpr[0] != '\0')
		kore_buf_appendf(t, "ETag: \"%s\"\r\n", e->fpr);
	kore_buf_appendf(t, "content-length: %zu\r\n\r\n",
	    e->answer_len + n);
	kore_buf_append(t, e->answer, e->answer_split);
	kore_buf_append(t, num, n);
	kore_buf_append(t, e->answer + e->answer_split,
	    e->answer_len - e->answer_split);

	push_ans.e = e;
	push_ans.answer = e->answer;
	push_ans.expires_in = in;
}

/* The rendered answer holds a token: wiped when it is no longer of use. */
static void
push_answer_forget(void)
{
	OPENSSL_cleanse(push_ans.tail.data, push_ans.tail.offset);
	kore_buf_reset(&push_ans.tail);
	kore_buf_reset(&push_ans.head);
	push_ans.e = NULL;
	push_ans.answer = NULL;
}
