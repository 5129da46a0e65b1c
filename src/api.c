/*
 * api.c: kiln's single Kore route. It gives every request its identity
 * (X-Request-Id, W3C trace context), finds the handler by method and
 * path, and answers JSON for everything, 404 and 405 included. JSON is
 * always written with yajl_gen.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <yajl/yajl_gen.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

#define SEG_MAX		8
#define API_START_WAIT_MS	3000

#define R_PUBLIC	0x01	/* backend clients: allow-list, public rate */
#define R_ADMIN		0x02	/* credentials, role, per-role rate */
#define R_NAME		0x04	/* '*' is a source name */
#define R_ID		0x08	/* '*' is a numeric id */

#define GET		HTTP_METHOD_GET
#define POST		HTTP_METHOD_POST
#define PATCH		HTTP_METHOD_PATCH
#define DELETE		HTTP_METHOD_DELETE

struct route {
	int		methods;
	const char	*path;		/* '*' matches one segment */
	int		flags;
	int		role;
	int		(*handler)(struct http_request *, struct api_state *);
};

static const struct route routes[] = {
	{ GET, "/api/tokens/*/current-token", R_PUBLIC | R_NAME, 0,
	    api_current_token },
	{ POST, "/api/tokens/*/current-token/rejected", R_PUBLIC | R_NAME, 0,
	    api_rejected },
	{ GET, "/api/tokens/*/connections/*/current-token", R_PUBLIC, 0,
	    api_conn_current_token },
	{ POST, "/api/tokens/*/connections/*/current-token/rejected",
	    R_PUBLIC, 0, api_conn_rejected },
	{ GET, "/api/tokens/*/stream", R_PUBLIC | R_NAME, 0, api_stream },
	{ GET, "/health", 0, 0, ops_health },
	{ GET, "/health/detailed", 0, 0, ops_health_detailed },
	{ GET, "/metrics", 0, 0, ops_metrics },
	{ GET, "/api/tokens", R_ADMIN, ROLE_VIEWER, admin_tokens_list },
	{ POST, "/api/tokens", R_ADMIN, ROLE_ADMIN, admin_tokens_create },
	{ GET, "/api/tokens/*", R_ADMIN | R_NAME, ROLE_VIEWER,
	    admin_token_get },
	{ PATCH, "/api/tokens/*", R_ADMIN | R_NAME, ROLE_ADMIN,
	    admin_token_patch },
	{ DELETE, "/api/tokens/*", R_ADMIN | R_NAME, ROLE_ADMIN,
	    admin_token_delete },
	{ POST, "/api/tokens/*/refresh", R_ADMIN | R_NAME, ROLE_OPERATOR,
	    admin_token_refresh },
	{ GET, "/api/tokens/*/events", R_ADMIN | R_NAME, ROLE_VIEWER,
	    admin_token_events },
	{ GET, "/api/tokens/*/jwks.json", R_PUBLIC | R_NAME, 0, api_jwks },
	{ POST, "/api/tokens/*/keys/rotate", R_ADMIN | R_NAME, ROLE_ADMIN,
	    admin_key_rotate },
	{ GET, "/api/prewarming/status", R_ADMIN, ROLE_VIEWER,
	    admin_prewarming_status },
	{ POST, "/api/prewarming/refresh", R_ADMIN, ROLE_OPERATOR,
	    admin_prewarming_refresh },
	{ POST, "/api/prewarming/start", R_ADMIN, ROLE_OPERATOR,
	    admin_prewarming_start },
	{ POST, "/api/prewarming/stop", R_ADMIN, ROLE_OPERATOR,
	    admin_prewarming_stop },
	{ GET, "/api/keys", R_ADMIN, ROLE_ADMIN, admin_keys_list },
	{ POST, "/api/keys", R_ADMIN, ROLE_ADMIN, admin_keys_create },
	{ DELETE, "/api/keys/*", R_ADMIN | R_ID, ROLE_ADMIN,
	    admin_key_revoke },
	{ GET, "/api/audit", R_ADMIN, ROLE_ADMIN, api_audit_list },
	{ POST, "/api/tokens/*/connections", R_ADMIN | R_NAME, ROLE_CLIENT,
	    api_conn_create },
	{ GET, "/api/tokens/*/connections", R_ADMIN | R_NAME, ROLE_VIEWER,
	    api_conn_list },
	{ GET, "/api/tokens/*/connections/*", R_ADMIN, ROLE_VIEWER,
	    api_conn_get },
	{ DELETE, "/api/tokens/*/connections/*", R_ADMIN, ROLE_OPERATOR,
	    api_conn_delete },
	{ GET, "/oauth/callback", 0, 0, api_oauth_callback },
	{ GET, "/api/webhooks", R_ADMIN, ROLE_ADMIN, admin_webhooks_list },
	{ POST, "/api/webhooks", R_ADMIN, ROLE_ADMIN, admin_webhooks_create },
	{ DELETE, "/api/webhooks/*", R_ADMIN | R_ID, ROLE_ADMIN,
	    admin_webhook_delete },
	{ GET, "/api/webhooks/*/deliveries", R_ADMIN | R_ID, ROLE_ADMIN,
	    admin_webhook_deliveries },
	{ GET, "/dashboard", 0, 0, dash_page },
	{ GET, "/dashboard/login", 0, 0, dash_login_form },
	{ POST, "/dashboard/login", 0, 0, dash_login },
	{ POST, "/dashboard/logout", 0, 0, dash_logout },
	{ GET, "/dashboard/ws", 0, 0, dash_ws },
	{ GET, "/dashboard/static/*", 0, 0, dash_static },
	{ GET, "/dashboard/audit", 0, 0, dash_audit },
	{ GET, "/dashboard/tokens/*", R_NAME, 0, dash_token_page },
	{ GET, "/dashboard/sources", 0, 0, dm_sources_page },
	{ POST, "/dashboard/sources", R_ADMIN, ROLE_ADMIN, dm_source_create },
	{ GET, "/dashboard/sources/*", R_NAME, 0, dm_source_page },
	{ POST, "/dashboard/sources/*", R_ADMIN | R_NAME, ROLE_ADMIN,
	    dm_source_save },
	{ POST, "/dashboard/sources/*/delete", R_ADMIN | R_NAME, ROLE_ADMIN,
	    dm_source_delete },
	{ GET, "/dashboard/keys", 0, 0, dm_keys_page },
	{ POST, "/dashboard/keys", R_ADMIN, ROLE_ADMIN, dm_key_create },
	{ POST, "/dashboard/keys/*/revoke", R_ADMIN | R_ID, ROLE_ADMIN,
	    dm_key_revoke },
	{ GET, "/dashboard/tokens/*/connections", R_NAME, 0, dconn_page },
	{ POST, "/dashboard/tokens/*/connections", R_ADMIN | R_NAME,
	    ROLE_OPERATOR, dconn_connect },
	{ POST, "/dashboard/tokens/*/connections/delete", R_ADMIN | R_NAME,
	    ROLE_OPERATOR, dconn_disconnect },
	{ 0, NULL, 0, 0, NULL }
};

/* Each route has its row of counters in shared memory, the last spare. */
_Static_assert(sizeof(routes) / sizeof(routes[0]) <= SHARED_ROUTES,
    "more routes than SHARED_ROUTES");

static struct {
	char		prefix[9];
	u_int64_t	counter;
	u_int64_t	seed[3];
} api_ids;

/* Requests that came before the worker had its tables. */
static TAILQ_HEAD(, api_state)	api_starting =
				    TAILQ_HEAD_INITIALIZER(api_starting);
static struct kore_timer	*api_start_timer;

static int	api_route(struct http_request *, struct api_state *);
static int	api_guard(struct http_request *, struct api_state *,
		    const struct route *);
static int	api_pending_finish(struct http_request *, struct api_state *);
static u_int64_t	api_now_us(void);
static int	id_digits(const char *);
static int	route_match(const char *, const char *, char *, size_t);
static void	api_identity(struct http_request *, struct api_state *);
static void	api_trace(struct http_request *, struct api_state *);
static int	api_worker_starting(struct http_request *,
		    struct api_state *);
static void	api_start_tick(void *, u_int64_t);
static int	api_host_allowed(struct http_request *);
static int	api_host_refuse(struct http_request *);
static int	listener_loopback(struct listener *);
static int	id_valid(const char *);
static void	api_allow(struct http_request *, int);
static void	api_state_free(struct http_request *);
static void	api_span(struct http_request *, struct api_state *);
static int	api_credential_wait(struct http_request *, struct api_state *,
		    int);

int
kiln_dispatch(struct http_request *req)
{
	struct api_state	*st;
	int			ret, closing;
	char			trace[33];

	/*
	 * While draining, every answer closes its connection. Only for
	 * this pass: Kore closes a connection so marked the moment its
	 * send queue is empty, and a request that waits has sent nothing.
	 */
	closing = drain_active() && !(req->owner->flags & CONN_CLOSE_EMPTY);
	if (closing)
		req->owner->flags |= CONN_CLOSE_EMPTY;

	if ((st = http_state_get(req)) == NULL) {
		st = http_state_create(req, sizeof(*st), api_state_free);
		st->route = -1;
		st->start_us = api_now_us();
		api_identity(req, st);
	}

	/* The trace id alone: 32 hex after "00-". */
	(void)kore_strlcpy(trace, st->traceparent + 3, sizeof(trace));
	log_context(st->request_id, st->traceparent[0] ? trace : NULL);
	if (st->pending != NULL)
		ret = api_pending_finish(req, st);
	else if (st->route == -1 && !api_host_allowed(req))
		ret = api_host_refuse(req);
	else if (st->route == -1 && api_worker_starting(req, st))
		ret = KORE_RESULT_RETRY;
	else if (st->route == -1)
		ret = api_route(req, st);
	else
		ret = routes[st->route].handler(req, st);

	if (ret == KORE_RESULT_RETRY && st->pending != NULL &&
	    !st->pending->done)
		http_request_sleep(req);
	if (ret == KORE_RESULT_RETRY && closing)
		req->owner->flags &= ~CONN_CLOSE_EMPTY;
	if (ret != KORE_RESULT_RETRY)
		shared_request(st->route, req->status,
		    api_now_us() - st->start_us);
	if (ret != KORE_RESULT_RETRY && st->otel.sampled)
		api_span(req, st);
	log_context(NULL, NULL);

	return (ret);
}

/* "GET /api/tokens" and so on: the label of a route in the metrics. */
const char *
api_route_name(int i)
{
	static char	names[SHARED_ROUTES][64];

	if (i < 0 || i >= api_route_count())
		return ("unmatched");
	if (names[i][0] == '\0') {
		(void)snprintf(names[i], sizeof(names[i]), "%s %s",
		    http_method_text(routes[i].methods), routes[i].path);
	}

	return (names[i]);
}

int
api_route_count(void)
{
	return ((int)(sizeof(routes) / sizeof(routes[0])) - 1);
}

static int
api_pending_finish(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p = st->pending;

	if (!p->done)
		return (KORE_RESULT_RETRY);

	/* A step that only looked something up: run the handler again. */
	if (p->resume) {
		st->pending = NULL;
		api_pending_free(p);
		if (st->route == -1)
			return (api_route(req, st));
		return (routes[st->route].handler(req, st));
	}

	if (p->finish != NULL && p->finish(req, p)) {
		/* answered */
	} else if (p->code[0] != '\0') {
		api_error(req, p->status, p->code, p->message);
	} else {
		api_json_send(req, p->status, p->g);
		p->g = NULL;
	}

	st->pending = NULL;
	api_pending_free(p);

	return (KORE_RESULT_OK);
}

static u_int64_t
api_now_us(void)
{
	struct timespec	ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((u_int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
}

static int
api_route(struct http_request *req, struct api_state *st)
{
	const struct route	*r;
	int			i, allow, ret;
	char			name[KILN_NAME_MAX + 2];

	allow = 0;
	for (i = 0; routes[i].path != NULL; i++) {
		r = &routes[i];
		if (!route_match(r->path, req->path, name, sizeof(name)))
			continue;
		if (!(r->methods & req->method) &&
		    !(req->method == HTTP_METHOD_HEAD &&
		    (r->methods & HTTP_METHOD_GET))) {
			allow |= r->methods;
			continue;
		}

		st->route = i;
		if ((ret = api_guard(req, st, r)) != KORE_RESULT_OK)
			return (ret == KORE_RESULT_RETRY ? ret : KORE_RESULT_OK);

		/* An over-long or malformed name is simply not found. */
		if (((r->flags & R_NAME) && !source_name_valid(name)) ||
		    ((r->flags & R_ID) && !id_digits(name))) {
			api_error(req, 404, "not_found", (r->flags & R_NAME) ?
			    "unknown token source" : "no such resource");
			return (KORE_RESULT_OK);
		}
		(void)kore_strlcpy(st->name, name, sizeof(st->name));
		return (r->handler(req, st));
	}

	if (allow != 0) {
		api_allow(req, allow);
		api_error(req, 405, "method_not_allowed",
		    "method not allowed on this resource");
	} else {
		api_error(req, 404, "not_found", "no such resource");
	}

	return (KORE_RESULT_OK);
}

/*
 * Who may use route r: public routes check the allow-list and the public
 * rate; admin routes authenticate, rate-limit per principal, then check
 * the role. Answers the refusal itself (KORE_RESULT_ERROR), or has the
 * request wait for a credential made a moment ago (KORE_RESULT_RETRY).
 */
static int
api_guard(struct http_request *req, struct api_state *st,
    const struct route *r)
{
	const char	*ctype;
	int		valid;

	if (r->flags & R_PUBLIC) {
		if (!auth_public_allowed(req)) {
			api_error(req, 403, "forbidden",
			    "address not allowed");
			return (KORE_RESULT_ERROR);
		}
		if (!auth_request(req, &st->principal) &&
		    api_credential_wait(req, st, 1))
			return (KORE_RESULT_RETRY);
		return (auth_rate(req, &st->principal, 1));
	}
	/* The dashboard's pages read their session cookie themselves. */
	if (!(r->flags & R_ADMIN))
		return (api_credential_wait(req, st, 0) ?
		    KORE_RESULT_RETRY : KORE_RESULT_OK);

	if (!(valid = auth_request(req, &st->principal)) &&
	    api_credential_wait(req, st, 1))
		return (KORE_RESULT_RETRY);
	if (!valid) {
		st->principal.role = ROLE_NONE;
		log_kv(LOG_LVL_INFO, "invalid credentials",
		    "path", req->path, NULL);
	}
	if (!auth_rate(req, &st->principal, 0))
		return (KORE_RESULT_ERROR);
	if (!auth_allow(req, &st->principal, r->role))
		return (KORE_RESULT_ERROR);

	/* The dashboard's forms: a session needs its CSRF token. */
	if (st->principal.kind == PRINCIPAL_SESSION &&
	    req->method != HTTP_METHOD_GET && req->method != HTTP_METHOD_HEAD) {
		if (!session_csrf_ok(req, &st->principal)) {
			api_error(req, 403, "forbidden",
			    "missing or wrong CSRF token");
			return (KORE_RESULT_ERROR);
		}
		st->form_redirect = !http_request_header(req, "x-csrf-token",
		    &ctype);
	}

	return (KORE_RESULT_OK);
}

/*
 * A credential this worker cannot place yet: a session cookie or an API
 * key (keys: 1) made a moment ago on another worker or instance, its
 * NOTIFY on the way. Wait, once, for a table loaded after the request
 * came; then the route is matched again. A credential no such table
 * knows is remembered as nobody's: a flood of made-up ones costs no
 * more than a reload now and then.
 */
static int
api_credential_wait(struct http_request *req, struct api_state *st, int keys)
{
	struct api_pending	*p;
	void			(*wait)(struct api_pending *);
	const char		*v;
	char			hash[AUTH_HASH_LEN + 1];

	if (st->credential_waited)
		return (0);
	if (session_unsure(req, hash))
		wait = session_wait;
	else if (keys && http_request_header(req, "authorization", &v) &&
	    !strncasecmp(v, "Bearer ", 7) && auth_key_unsure(v + 7, hash))
		wait = auth_key_wait;
	else
		return (0);

	st->credential_waited = 1;
	st->route = -1;
	p = api_pending_start(req, st, NULL);
	(void)kore_strlcpy(p->name, hash, sizeof(p->name));
	wait(p);

	return (1);
}

static int
id_digits(const char *s)
{
	size_t		n;

	for (n = 0; s[n] != '\0'; n++) {
		if (n >= 18 || s[n] < '0' || s[n] > '9')
			return (0);
	}

	return (n > 0);
}

/* Match a path against a route; '*' takes one segment into name. */
static int
route_match(const char *pattern, const char *path, char *name, size_t len)
{
	const char	*p, *q;
	size_t		n;

	name[0] = '\0';
	for (p = pattern, q = path; *p != '\0'; p++) {
		if (*p != '*') {
			if (*q++ != *p)
				return (0);
			continue;
		}
		for (n = 0; q[n] != '\0' && q[n] != '/'; n++)
			;
		if (n == 0)
			return (0);
		if (n >= len)
			n = len - 1;
		memcpy(name, q, n);
		name[n] = '\0';
		while (*q != '\0' && *q != '/')
			q++;
	}

	return (*q == '\0');
}

static void
api_identity(struct http_request *req, struct api_state *st)
{
	const char	*v;
	u_int8_t	rnd[4];

	if (api_ids.prefix[0] == '\0') {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			fatal("RAND_bytes");
		(void)snprintf(api_ids.prefix, sizeof(api_ids.prefix),
		    "%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
	}

	if (http_request_header(req, "x-request-id", &v) && id_valid(v)) {
		(void)kore_strlcpy(st->request_id, v, sizeof(st->request_id));
	} else {
		(void)snprintf(st->request_id, sizeof(st->request_id),
		    "%s-%llu", api_ids.prefix,
		    (unsigned long long)++api_ids.counter);
	}
	http_response_header(req, "X-Request-Id", st->request_id);
	api_trace(req, st);
}

/*
 * Continue the caller's trace when its traceparent is valid W3C, else
 * start a new one: nothing unchecked is logged or sent upstream. Only
 * the sampled flag goes on (the other bits are not defined). New ids
 * come from a per-worker random seed stirred with the request counter
 * (splitmix64): unique and well spread, without a RAND_bytes per request
 * on the hot path.
 */
static void
api_trace(struct http_request *req, struct api_state *st)
{
	struct trace_parent	tp;
	const char		*v;
	u_int64_t		n;
	int			parent, sampled;

	if (api_ids.seed[0] == 0 && RAND_bytes((u_int8_t *)api_ids.seed,
	    sizeof(api_ids.seed)) != 1)
		fatal("RAND_bytes");
	n = api_ids.counter;
	parent = http_request_header(req, "traceparent", &v) &&
	    trace_parent_parse(v, &tp);
	if (!parent) {
		hash_hex64(api_ids.seed[0] | 1, tp.trace_id);
		hash_hex64(hash_mix64(api_ids.seed[1] + n), tp.trace_id + 16);
		tp.flags = 0;
	}
	/* With spans exported, the sampler decides the flag sent on. */
	sampled = tp.flags & TRACE_FLAG_SAMPLED;
	if (otel_on())
		sampled = otel_sample(tp.trace_id, parent, sampled);
	memcpy(st->traceparent, "00-", 3);
	memcpy(st->traceparent + 3, tp.trace_id, 32);
	st->traceparent[35] = '-';
	/* Never all zero: the low bit is set. */
	hash_hex64(hash_mix64(api_ids.seed[2] ^ n) | 1, st->traceparent + 36);
	st->traceparent[52] = '-';
	st->traceparent[53] = '0';
	st->traceparent[54] = sampled ? '1' : '0';
	st->traceparent[55] = '\0';
	if (otel_on())
		otel_root(&st->otel, st->traceparent,
		    parent ? tp.parent_id : NULL);
}

/*
 * A worker that has just started may accept before its tokens, pause
 * states and API keys have come from PostgreSQL. A request then sleeps
 * (woken by a 10 ms timer, at most API_START_WAIT_MS) rather than get a
 * 503 for a token that is there, a 401 for a valid key or a stale pause
 * state. Liveness, readiness and metrics answer at once: they say how
 * the worker is.
 */
static int
api_worker_starting(struct http_request *req, struct api_state *st)
{
	if ((cache_loaded() && auth_keys_ready()) ||
	    api_now_us() - st->start_us > API_START_WAIT_MS * 1000)
		return (0);
	if (!strcmp(req->path, "/metrics") || !strcmp(req->path, "/health") ||
	    !strncmp(req->path, "/health/", 8))
		return (0);

	if (!st->starting) {
		st->starting = 1;
		st->req = req;
		TAILQ_INSERT_TAIL(&api_starting, st, starting_list);
	}
	if (api_start_timer == NULL) {
		api_start_timer = kore_timer_add(api_start_tick, 10, NULL,
		    KORE_TIMER_ONESHOT);
	}
	http_request_sleep(req);

	return (1);
}

static void
api_start_tick(void *arg, u_int64_t now)
{
	struct api_state	*st, *next;
	int			ready;

	/* A oneshot: Kore frees it after this call. */
	api_start_timer = NULL;
	ready = cache_loaded() && auth_keys_ready();
	for (st = TAILQ_FIRST(&api_starting); st != NULL; st = next) {
		next = TAILQ_NEXT(st, starting_list);
		if (!ready && api_now_us() - st->start_us <=
		    API_START_WAIT_MS * 1000)
			continue;
		TAILQ_REMOVE(&api_starting, st, starting_list);
		st->starting = 0;
		http_request_wakeup(st->req);
	}
	if (!TAILQ_EMPTY(&api_starting)) {
		api_start_timer = kore_timer_add(api_start_tick, 10, NULL,
		    KORE_TIMER_ONESHOT);
	}
}



/*
 * DNS rebinding: with KILN_ALLOWED_HOSTS only those names; without it,
 * a loopback listener answers only loopback names and addresses.
 */
static int
api_host_allowed(struct http_request *req)
{
	if (kiln_config.allowed_hosts != NULL)
		return (host_listed(req->host, kiln_config.allowed_hosts));
	if (!listener_loopback(req->owner->owner))
		return (1);

	return (host_loopback(req->host));
}

static int
api_host_refuse(struct http_request *req)
{
	char		name[HOST_NAME_MAX_LEN + 1];

	/* The name only when well-formed: nothing raw into the log. */
	if (!host_split(req->host, name, sizeof(name)))
		(void)kore_strlcpy(name, "(malformed)", sizeof(name));
	log_kv(LOG_LVL_INFO, "host not allowed", "host", name, NULL);
	api_error(req, 421, "misdirected_request", "host not allowed");

	return (KORE_RESULT_OK);
}

/* Whether a listener is bound to a loopback address, looked up once. */
static int
listener_loopback(struct listener *l)
{
	static struct {
		struct listener	*l;
		int		loopback;
	} seen[8];
	struct sockaddr_storage	ss;
	struct sockaddr_in	*s4;
	struct sockaddr_in6	*s6;
	socklen_t		len;
	size_t			i;
	int			loopback;

	for (i = 0; i < 8 && seen[i].l != NULL; i++) {
		if (seen[i].l == l)
			return (seen[i].loopback);
	}

	loopback = 0;
	len = sizeof(ss);
	if (getsockname(l->fd, (struct sockaddr *)&ss, &len) == 0) {
		s4 = (struct sockaddr_in *)&ss;
		s6 = (struct sockaddr_in6 *)&ss;
		if (ss.ss_family == AF_INET)
			loopback = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
		else if (ss.ss_family == AF_INET6)
			loopback = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
	}
	if (i < 8) {
		seen[i].l = l;
		seen[i].loopback = loopback;
	}

	return (loopback);
}

static int
id_valid(const char *v)
{
	size_t		n;

	for (n = 0; v[n] != '\0'; n++) {
		if (n >= 64)
			return (0);
		if (!isalnum((unsigned char)v[n]) && v[n] != '-' &&
		    v[n] != '_' && v[n] != '.')
			return (0);
	}

	return (n > 0);
}

static void
api_allow(struct http_request *req, int methods)
{
	char		allow[64];

	(void)snprintf(allow, sizeof(allow), "%s%s%s%s",
	    (methods & HTTP_METHOD_GET) ? "GET, HEAD, " : "",
	    (methods & HTTP_METHOD_POST) ? "POST, " : "",
	    (methods & HTTP_METHOD_PATCH) ? "PATCH, " : "",
	    (methods & HTTP_METHOD_DELETE) ? "DELETE, " : "");
	allow[strlen(allow) - 2] = '\0';

	http_response_header(req, "Allow", allow);
}

static void
api_state_free(struct http_request *req)
{
	struct api_state	*st;

	if ((st = http_state_get(req)) == NULL)
		return;

	cache_unwait(&st->waiter);
	push_unpark(st);
	if (st->starting)
		TAILQ_REMOVE(&api_starting, st, starting_list);
	if (st->pending != NULL) {
		/* Its callback has yet to run and will free it. */
		if (st->pending->done)
			api_pending_free(st->pending);
		else
			st->pending->req = NULL;
		st->pending = NULL;
	}
}

/*
 * The SERVER span of a request, after the HTTP semantic conventions:
 * named by its route (low cardinality), the path without its query
 * string, an error only for a 5xx (a 4xx is the client's).
 */
static void
api_span(struct http_request *req, struct api_state *st)
{
	struct otel_span	*s;
	const char		*port;
	char			host[HOST_NAME_MAX_LEN + 1], code[8];
	int			tls;

	s = otel_end(&st->otel, OTEL_KIND_SERVER, st->route >= 0 ?
	    api_route_name(st->route) : http_method_text(req->method));
	if (s == NULL)
		return;

	tls = req->owner->owner != NULL && req->owner->owner->server != NULL &&
	    req->owner->owner->server->tls;
	otel_attr_str(s, "http.request.method", http_method_text(req->method));
	otel_attr_int(s, "http.response.status_code", req->status);
	otel_attr_str(s, "url.path", req->path);
	otel_attr_str(s, "url.scheme", tls ? "https" : "http");
	if (st->route >= 0)
		otel_attr_str(s, "http.route", strchr(api_route_name(st->route),
		    ' ') + 1);
	if (req->host != NULL && host_split(req->host, host, sizeof(host))) {
		otel_attr_str(s, "server.address", host);
		port = strrchr(req->host, ':');
		if (port != NULL && strchr(port, ']') == NULL)
			otel_attr_int(s, "server.port", strtoll(port + 1,
			    NULL, 10));
		else
			otel_attr_int(s, "server.port", tls ? 443 : 80);
	}
	if (st->route >= 0 && (routes[st->route].flags & R_NAME) &&
	    st->name[0] != '\0')
		otel_attr_str(s, "kiln.source", st->name);
	if (req->status >= 500) {
		(void)snprintf(code, sizeof(code), "%d", req->status);
		otel_attr_str(s, "error.type", code);
		otel_error(s, NULL);
	}
}
