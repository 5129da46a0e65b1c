/*
 * dashboard.c: the operators' live page, rendered on the server.
 *
 *	GET  /dashboard			the whole page (works without JavaScript)
 *	GET  /dashboard/login		login form; POST to sign in
 *	POST /dashboard/logout		end the session
 *	GET  /dashboard/audit		the audit log (admins; dash_audit.c)
 *	GET  /dashboard/ws		WebSocket of server-rendered fragments
 *	GET  /dashboard/tokens/{name}	one token: state, 24 h, history
 *	GET  /dashboard/static/...	the stylesheet and the small script
 *
 * Every worker renders the fragments from its own cache and shared
 * counters and pushes them to the sockets it holds: at once when a token
 * changes (every worker of every instance learns that through NOTIFY)
 * and once a second for the countdowns. Only fingerprints are shown,
 * never a token or a secret; the HTML is made in dash_render.c (pure),
 * where every string goes through dr_escape.
 */

#define _GNU_SOURCE
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

#include "assets.h"
#include "kiln.h"

#define DASH_TICK_MS		1000
#define DASH_DIRTY_MS		100
#define DASH_WINDOW		60
#define DASH_RECONNECT_S	2
#define DASH_PING_TICKS		30
#define DASH_QUEUE_MAX		(1024 * 1024)	/* bytes queued per socket */
#define DASH_SESSION_SOCKETS	8		/* per session, all workers */
#define DASH_TOKENS_RESYNC	60		/* ticks: the table unchanged */
#define DASH_CHART_TICKS	5		/* ticks between chart pushes */
#define DASH_HISTORY_MS		1000		/* at most a load a second */

/* No inline script or style; nothing may frame the pages. */
#define DASH_CSP	"default-src 'self'; script-src 'self'; " \
			"style-src 'self'; img-src 'self'; " \
			"connect-src 'self'; object-src 'none'; " \
			"base-uri 'none'; form-action 'self'; " \
			"frame-ancestors 'none'"

struct dash_client {
	struct connection		*c;
	char				session[AUTH_HASH_LEN + 1];
	u_int64_t			key;
	struct dp_view			view;		/* of its table */
	u_int64_t			sent;		/* digest of it */
	u_int64_t			sent_tick;
	TAILQ_ENTRY(dash_client)	list;
	u_int64_t			id;
	void				*live;	/* dash_live's */
};

static struct {
	TAILQ_HEAD(, dash_client)	clients;
	u_int32_t			count;
	int				dirty;
	int				history_loading;
	struct kore_buf			history;
	int64_t				history_ms;	/* last loaded */
	u_int64_t			history_sent;	/* its digest */
	int				db_ok;
	char				handshake[AUTH_HASH_LEN + 1];
	struct dp_view			handshake_view;

	/* public-endpoint traffic, one slot per second */
	u_int64_t			reqs[DASH_WINDOW];
	u_int64_t			errs[DASH_WINDOW];
	u_int64_t			lat[DASH_WINDOW][SHARED_BUCKETS + 1];
	u_int64_t			last_reqs;
	u_int64_t			last_errs;
	u_int64_t			last_lat[SHARED_BUCKETS + 1];
	int				slot;
	int				sampled;
	u_int64_t			ticks;
	struct kore_buf			webhooks;	/* admins' page */
	const struct dash_live		*live;	/* other pages */
	const char			*handshake_query;
	u_int64_t			ids;
} dash;

static void	dash_tick(void *, u_int64_t);
static void	dash_dirty_tick(void *, u_int64_t);
static void	dash_sample(void);
static void	dash_history_loaded(const struct store_rows *, void *, int);
static void	dash_push(const char *, struct kore_buf *);
static void	dash_push_all(int);
static int	dash_push_to(struct dash_client *);
static int	dash_send(struct dash_client *, const char *,
		    struct kore_buf *);
static int	dash_write(struct dash_client *, u_int8_t, const void *,
		    size_t);
static size_t	dash_queued(struct connection *);
static void	dash_render(const char *, struct kore_buf *);
static int	dash_push_tokens(struct dash_client *, int);
static void	render_history(struct kore_buf *, const struct store_rows *);
static void	render_traffic(struct kore_buf *);
static void	render_upstream(struct kore_buf *);
static void	render_alerts(struct kore_buf *);
static void	render_clients(struct kore_buf *);
static size_t	dash_hosts(struct dr_host *, int64_t);
static void	render_page(struct kore_buf *, const struct principal *,
		    const char *);
static void	render_login(struct kore_buf *, const char *, const char *);
static void	page_fragment(struct dbuf *, const char *, const void *);
static const char	*dash_login_check(struct http_request *,
			    struct principal *, char *);
static int	dash_origin_ok(struct http_request *);
static void	dash_cookie(struct http_request *, const char *, const char *,
		    int);
static void	dash_logged_in(struct api_pending *, const struct store_rows *,
		    int);
static void	dash_logged_out(struct api_pending *, const struct store_rows *,
		    int);
static void	dash_page_history(struct api_pending *,
		    const struct store_rows *, int);
static u_int64_t	dash_quantile(double);
static void	dash_page_webhooks(struct api_pending *,
		    const struct store_rows *, int);

void
dash_init(void)
{
	TAILQ_INIT(&dash.clients);
	kore_buf_init(&dash.history, 4096);
	dash.db_ok = 1;
	dash.dirty = 1;
	shared_ws_reset(worker->id);
	store_db_watch(dash_db_state);
	cache_watch(dash_changed);
	session_watch(dash_sessions_changed);

	(void)kore_timer_add(dash_tick, DASH_TICK_MS, NULL, 0);
	(void)kore_timer_add(dash_dirty_tick, DASH_DIRTY_MS, NULL, 0);
}

/* A token changed (or the database came and went): push soon. */
void
dash_changed(void)
{
	dash.dirty = 1;
	dv_changed();
	if (dash.live != NULL)
		dash.live->changed();
}

/* A page with a live part of its own (dash_conn.c); set at init. */
void
dash_live(const struct dash_live *live)
{
	dash.live = live;
}

/* What a dash_live renders, to its socket; 0 once that is gone. */
int
dash_live_send(u_int64_t id, const char *target, struct kore_buf *html)
{
	struct dash_client	*dc;

	TAILQ_FOREACH(dc, &dash.clients, list) {
		if (dc->id == id)
			return (dash_send(dc, target, html));
	}

	return (KORE_RESULT_ERROR);
}

void
dash_db_state(int ok)
{
	if (ok != dash.db_ok) {
		dash.db_ok = ok;
		dash.dirty = 1;
	}
}

/* Close the sockets whose session ended (logout, expiry). */
void
dash_sessions_changed(void)
{
	struct dash_client	*dc, *next;

	for (dc = TAILQ_FIRST(&dash.clients); dc != NULL; dc = next) {
		next = TAILQ_NEXT(dc, list);
		if (!session_alive(dc->session))
			kore_connection_disconnect(dc->c);
	}
}

/* Shutdown: every socket hears it and knows when to come back. */
void
dash_shutdown(void)
{
	struct dash_client	*dc, *next;
	yajl_gen		g;
	const unsigned char	*buf;
	size_t			len;

	g = api_json_begin();
	json_kv_str(g, "type", "shutdown_pending");
	json_kv_int(g, "reconnect_after", DASH_RECONNECT_S);
	json_kv_str(g, "message", "This kiln instance is shutting down; "
	    "reconnecting to another one.");
	yajl_gen_map_close(g);
	(void)yajl_gen_get_buf(g, &buf, &len);

	for (dc = TAILQ_FIRST(&dash.clients); dc != NULL; dc = next) {
		next = TAILQ_NEXT(dc, list);
		(void)dash_write(dc, WEBSOCKET_OP_TEXT, buf, len);
	}
	yajl_gen_free(g);
}

/*
 * The dashboard session of a page, a viewer at least (a cookie of a
 * session this worker did not know yet has waited in api.c): 1 to go on;
 * 0 with *ret set when the request went to the login page.
 */
int
dash_viewer(struct http_request *req, struct api_state *st, int *ret)
{
	(void)session_request(req, &st->principal);
	if (st->principal.role < ROLE_VIEWER) {
		dash_redirect(req, "/dashboard/login");
		*ret = KORE_RESULT_OK;
		return (0);
	}

	return (1);
}

int
dash_page(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;
	int			ret;

	if (!dash_viewer(req, st, &ret))
		return (ret);

	p = api_pending_start(req, st, dash_page_history);
	p->finish = dash_finish;
	p->principal = st->principal;
	/* The table's view (search, filters, page) rides in p->secret. */
	if (req->query_string != NULL)
		p->secret = kore_strdup(req->query_string);
	store_recent_events(api_pending_cb, p);

	return (KORE_RESULT_RETRY);
}

/*
 * The page of one token: its state from the cache, then its last 24 h
 * and a page of its history (?before=id) from the store.
 */
int
dash_token_page(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;
	int			ret;

	if (!dash_viewer(req, st, &ret))
		return (ret);
	if (cache_lookup(st->name) == NULL) {
		api_error(req, 404, "not_found", "unknown token source");
		return (KORE_RESULT_OK);
	}

	p = api_pending_start(req, st, dv_token_timeline);
	p->finish = dash_finish;
	p->principal = st->principal;
	p->version = dp_query_int(req->query_string, "before");
	store_timeline(st->name, api_pending_cb, p);

	return (KORE_RESULT_RETRY);
}

int
dash_login_form(struct http_request *req, struct api_state *st)
{
	struct kore_buf		buf;
	char			csrf[33];

	session_random_hex(csrf, sizeof(csrf));
	dash_cookie(req, "kiln_login", csrf, 600);

	kore_buf_init(&buf, 4096);
	render_login(&buf, csrf, NULL);
	dash_html_headers(req);
	http_response(req, 200, buf.data, buf.offset);
	kore_buf_cleanup(&buf);

	return (KORE_RESULT_OK);
}

/*
 * Sign in with an API key or an admin JWT pasted into the form; the
 * login CSRF token is a double submit (cookie and field must match).
 */
int
dash_login(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;
	struct principal	pr;
	const char		*refused;
	char			*cookie, field[64];
	char			id[65], hash[AUTH_HASH_LEN + 1], csrf[33];

	/* (counted once: not again when back from waiting for a key) */
	if (!st->credential_waited && !auth_login_rate(req))
		return (KORE_RESULT_OK);

	if (!session_cookie(req, "kiln_login", &cookie) ||
	    !session_form_field(req, "csrf", field, sizeof(field)) ||
	    strlen(cookie) != 32 || strlen(field) != 32 ||
	    CRYPTO_memcmp(cookie, field, 32) != 0) {
		api_error(req, 403, "forbidden", "login form expired; reload");
		return (KORE_RESULT_OK);
	}

	if ((refused = dash_login_check(req, &pr, hash)) != NULL) {
		/* A key made a moment ago elsewhere: wait for the keys. */
		if (hash[0] != '\0' && !st->credential_waited) {
			st->credential_waited = 1;
			p = api_pending_start(req, st, NULL);
			(void)kore_strlcpy(p->name, hash, sizeof(p->name));
			auth_key_wait(p);
			return (KORE_RESULT_RETRY);
		}
		log_kv(LOG_LVL_INFO, "dashboard login refused", "reason",
		    refused, NULL);
		p = dash_audit_refused(req, st, &pr, field);
		p->finish = dash_finish;
		return (KORE_RESULT_RETRY);
	}

	session_random_hex(id, sizeof(id));
	auth_key_hash(id, hash);
	session_random_hex(csrf, sizeof(csrf));

	p = api_pending_start(req, st, dash_logged_in);
	p->finish = dash_finish;
	p->secret = kore_strdup(id);
	(void)kore_strlcpy(p->name, hash, sizeof(p->name));
	p->principal = pr;
	(void)kore_strlcpy(p->principal.csrf, csrf, sizeof(p->principal.csrf));
	api_audit_who(req, &pr, st->request_id, &p->who);
	store_session_create(hash, csrf, &pr, SESSION_LIFETIME, &p->who,
	    api_pending_cb, p);
	OPENSSL_cleanse(id, sizeof(id));

	return (KORE_RESULT_RETRY);
}

/*
 * The principal of the credential of the login form, or why not (never
 * the credential itself: it is wiped here). unsure gets the hash of a
 * key this worker may not know yet (see auth_key_unsure), else "".
 */
static const char *
dash_login_check(struct http_request *req, struct principal *pr,
    char *unsure)
{
	const char	*why;
	char		credential[4096];

	why = NULL;
	unsure[0] = '\0';
	memset(pr, 0, sizeof(*pr));
	if (!session_form_field(req, "credential", credential,
	    sizeof(credential)))
		why = "no credential";
	else if (!auth_credential(credential, pr)) {
		why = "not a valid key or token";
		if (!auth_key_unsure(credential, unsure))
			unsure[0] = '\0';
	}
	else if (pr->role < ROLE_VIEWER)
		why = "role may not use the dashboard";
	else if (pr->kind == PRINCIPAL_JWT && pr->expires_ms <= isotime_now())
		why = "token expired";
	OPENSSL_cleanse(credential, sizeof(credential));

	return (why);
}

int
dash_logout(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;

	if (session_request(req, &st->principal) != KORE_RESULT_OK ||
	    st->principal.kind != PRINCIPAL_SESSION) {
		dash_redirect(req, "/dashboard/login");
		return (KORE_RESULT_OK);
	}
	if (!session_csrf_ok(req, &st->principal)) {
		api_error(req, 403, "forbidden", "missing or wrong CSRF token");
		return (KORE_RESULT_OK);
	}

	p = api_pending_start(req, st, dash_logged_out);
	p->finish = dash_finish;
	(void)kore_strlcpy(p->name, st->principal.session, sizeof(p->name));
	store_session_delete(st->principal.session, &p->who, api_pending_cb,
	    p);

	return (KORE_RESULT_RETRY);
}

/* The audit log page: a session of an admin. */
int
dash_audit(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;
	int			ret;

	if (!dash_viewer(req, st, &ret))
		return (ret);
	if (st->principal.role < ROLE_ADMIN) {
		api_error(req, 403, "forbidden", "this role may not do that");
		return (KORE_RESULT_OK);
	}
	if ((p = dash_audit_start(req, st)) == NULL)
		return (KORE_RESULT_OK);
	p->finish = dash_finish;

	return (KORE_RESULT_RETRY);
}

/* The WebSocket: a live session and our own Origin, nothing less. */
int
dash_ws(struct http_request *req, struct api_state *st)
{
	u_int64_t	key;

	if (!dash_origin_ok(req)) {
		api_error(req, 403, "forbidden", "cross-origin WebSocket");
		return (KORE_RESULT_OK);
	}
	(void)session_request(req, &st->principal);
	if (st->principal.kind != PRINCIPAL_SESSION ||
	    st->principal.role < ROLE_VIEWER) {
		api_error(req, 401, "unauthorized", "no dashboard session");
		return (KORE_RESULT_OK);
	}

	/*
	 * While draining, every answer closes its connection: a socket
	 * opened now would be gone before it is used. Go elsewhere.
	 */
	if (drain_active()) {
		http_response_header(req, "Retry-After", "2");
		api_error(req, 503, "draining", "this instance is shutting "
		    "down; reconnect to another one");
		return (KORE_RESULT_OK);
	}
	key = hash_fnv1a_str(st->principal.session);
	if (!shared_ws_open(key, DASH_SESSION_SOCKETS, worker->id)) {
		api_error(req, 429, "rate_limited", "too many dashboard "
		    "sockets for this session");
		return (KORE_RESULT_OK);
	}

	(void)kore_strlcpy(dash.handshake, st->principal.session,
	    sizeof(dash.handshake));
	dp_view_parse(req->query_string, &dash.handshake_view);
	dash.handshake_query = req->query_string;
	kore_websocket_handshake(req, "dash_ws_connect", "dash_ws_message",
	    "dash_ws_disconnect");
	dash.handshake[0] = '\0';
	dash.handshake_query = NULL;

	/* A refused handshake (bad headers) holds no socket. */
	if (req->owner->proto != CONN_PROTO_WEBSOCKET)
		shared_ws_close(key, worker->id);

	return (KORE_RESULT_OK);
}

int
dash_static(struct http_request *req, struct api_state *st)
{
	const u_int8_t	*data;
	const char	*type;
	size_t		len;

	if (!strcmp(st->name, "dashboard.css")) {
		data = asset_dashboard_css;
		len = asset_len_dashboard_css;
		type = "text/css; charset=utf-8";
	} else if (!strcmp(st->name, "dashboard.js")) {
		data = asset_dashboard_js;
		len = asset_len_dashboard_js;
		type = "application/javascript; charset=utf-8";
	} else if (!strcmp(st->name, "manage.js")) {
		data = asset_manage_js;
		len = asset_len_manage_js;
		type = "application/javascript; charset=utf-8";
	} else if (!strcmp(st->name, "conn.js")) {
		data = asset_conn_js;
		len = asset_len_conn_js;
		type = "application/javascript; charset=utf-8";
	} else {
		api_error(req, 404, "not_found", "no such resource");
		return (KORE_RESULT_OK);
	}

	http_response_header(req, "Content-Type", type);
	http_response_header(req, "Cache-Control", "no-cache");
	http_response_header(req, "X-Content-Type-Options", "nosniff");
	http_response(req, 200, data, len);

	return (KORE_RESULT_OK);
}

void
dash_ws_connect(struct connection *c)
{
	struct dash_client	*dc;

	dc = kore_calloc(1, sizeof(*dc));
	dc->c = c;
	(void)kore_strlcpy(dc->session, dash.handshake, sizeof(dc->session));
	dc->key = hash_fnv1a_str(dc->session);
	dc->view = dash.handshake_view;
	c->hdlr_extra = dc;
	TAILQ_INSERT_TAIL(&dash.clients, dc, list);
	dash.count++;
	shared_websockets(1);

	/* Another page's socket: its owner pushes to it, nothing else. */
	dc->id = ++dash.ids;
	if (dash.live != NULL && (dc->live = dash.live->open(
	    dash.handshake_query, dc->session, dc->id)) != NULL)
		return;

	/* A new (or reconnected) page gets the whole state at once. */
	if (dash.history.offset > 0 &&
	    !dash_send(dc, "history", &dash.history))
		return;
	if (!dash_push_to(dc))
		return;
	(void)dash_push_tokens(dc, 1);
}

/*
 * The page tells which part of the table it shows:
 * {"type":"view","query":"q=...&state=...&page=2"}; it gets that part
 * at once, and from then on only that part.
 */
void
dash_ws_message(struct connection *c, u_int8_t op, void *data, size_t len)
{
	struct dash_client	*dc = c->hdlr_extra;
	yajl_val		v, type, query;
	const char		*t, *q;

	if (dc == NULL || dc->live != NULL || op != WEBSOCKET_OP_TEXT ||
	    len > 1024)
		return;
	if ((v = json_parse(data, len)) == NULL)
		return;
	type = json_path_get(v, "type");
	query = json_path_get(v, "query");
	t = YAJL_IS_STRING(type) ? YAJL_GET_STRING(type) : NULL;
	q = YAJL_IS_STRING(query) ? YAJL_GET_STRING(query) : NULL;
	if (t != NULL && q != NULL && !strcmp(t, "view")) {
		dp_view_parse(q, &dc->view);
		yajl_tree_free(v);
		(void)dash_push_tokens(dc, 1);
		return;
	}
	yajl_tree_free(v);
}

void
dash_ws_disconnect(struct connection *c)
{
	struct dash_client	*dc = c->hdlr_extra;

	if (dc == NULL)
		return;
	if (dc->live != NULL)
		dash.live->close(dc->live);
	TAILQ_REMOVE(&dash.clients, dc, list);
	dash.count--;
	shared_websockets(-1);
	shared_ws_close(dc->key, worker->id);
	c->hdlr_extra = NULL;
	kore_free(dc);
}

static void
dash_tick(void *unused, u_int64_t unused2)
{
	static const u_int8_t	nothing[1];
	struct dash_client	*dc, *next;
	struct kore_buf		charts;

	dash_sample();
	if (dash.count == 0)
		return;
	dash_push_all(1);
	if (dash.ticks % DASH_CHART_TICKS == 0) {
		kore_buf_init(&charts, 16384);
		dv_charts(&charts);
		dash_push("charts", &charts);
		kore_buf_cleanup(&charts);
	}

	/*
	 * Kore's idle timer counts only what the peer sends: ping, so the
	 * browser's pong keeps a quiet page connected.
	 */
	if (++dash.ticks % DASH_PING_TICKS == 0) {
		for (dc = TAILQ_FIRST(&dash.clients); dc != NULL; dc = next) {
			next = TAILQ_NEXT(dc, list);
			(void)dash_write(dc, WEBSOCKET_OP_PING, nothing, 0);
		}
	}
}

/*
 * Something changed: the history again, and the tables. With thousands
 * of sources something changes all the time: once a second at most.
 */
static void
dash_dirty_tick(void *unused, u_int64_t unused2)
{
	int64_t		now;

	now = isotime_now();
	if (!dash.dirty || dash.history_loading ||
	    now - dash.history_ms < DASH_HISTORY_MS)
		return;
	dash.history_ms = now;
	dash.dirty = 0;
	dash.history_loading = 1;
	store_recent_events(dash_history_loaded, NULL);
}

static void
dash_history_loaded(const struct store_rows *rows, void *arg, int ok)
{
	u_int64_t	digest;

	dash.history_loading = 0;
	dash_db_state(ok);
	if (ok) {
		kore_buf_reset(&dash.history);
		render_history(&dash.history, rows);
	}
	if (dash.count > 0) {
		/* The same rows again (another worker's news): not resent. */
		digest = hash_fnv1a(HASH_FNV_BASIS, dash.history.data,
		    dash.history.offset);
		if (digest != dash.history_sent)
			dash_push("history", &dash.history);
		dash.history_sent = digest;
		dash_push_all(1);
	}
}

/* Every live fragment to one socket; 0 once the socket is gone. */
static int
dash_push_to(struct dash_client *dc)
{
	static const char	*targets[] = { "traffic", "upstream", "alerts",
				    "clients", "charts", NULL };
	struct kore_buf		buf;
	int			i, ok;

	kore_buf_init(&buf, 8192);
	ok = 1;
	for (i = 0; ok && targets[i] != NULL; i++) {
		kore_buf_reset(&buf);
		dash_render(targets[i], &buf);
		ok = dash_send(dc, targets[i], &buf);
	}
	kore_buf_cleanup(&buf);

	return (ok);
}

/*
 * Every live fragment to every socket; the table to each socket only
 * when its part of the table changed (its countdowns run in the page).
 */
static void
dash_push_all(int unused)
{
	static const char	*targets[] = { "traffic", "upstream",
				    "alerts", "clients", NULL };
	struct dash_client	*dc, *next;
	struct kore_buf		buf;
	int			i;

	for (dc = TAILQ_FIRST(&dash.clients); dc != NULL; dc = next) {
		next = TAILQ_NEXT(dc, list);
		if (dc->live == NULL)
			(void)dash_push_tokens(dc, 0);
	}

	kore_buf_init(&buf, 8192);
	for (i = 0; targets[i] != NULL; i++) {
		kore_buf_reset(&buf);
		dash_render(targets[i], &buf);
		dash_push(targets[i], &buf);
	}
	kore_buf_cleanup(&buf);
}

static void
dash_render(const char *target, struct kore_buf *buf)
{
	if (!strcmp(target, "tokens"))
		(void)dv_tokens(buf, ROLE_VIEWER, NULL, NULL, 0);
	else if (!strcmp(target, "charts"))
		dv_charts(buf);
	else if (!strcmp(target, "traffic"))
		render_traffic(buf);
	else if (!strcmp(target, "upstream"))
		render_upstream(buf);
	else if (!strcmp(target, "alerts"))
		render_alerts(buf);
	else if (!strcmp(target, "clients"))
		render_clients(buf);
}

static void
dash_push(const char *target, struct kore_buf *html)
{
	struct dash_client	*dc, *next;

	/* A send may close its socket (and free dc): keep the next one. */
	for (dc = TAILQ_FIRST(&dash.clients); dc != NULL; dc = next) {
		next = TAILQ_NEXT(dc, list);
		if (dc->live == NULL)
			(void)dash_send(dc, target, html);
	}
}

/*
 * The part of the table one socket shows, rendered for its session's
 * role (the actions depend on it), sent when it differs from what the
 * socket last got, or when forced, or every DASH_TOKENS_RESYNC ticks
 * (the page's countdowns drift). 0 once the socket is gone.
 */
static int
dash_push_tokens(struct dash_client *dc, int force)
{
	struct kore_buf		buf;
	u_int64_t		digest, unless;
	int			ok;

	/* Unchanged and not due: the rows are chosen, not rendered. */
	unless = force || dash.ticks - dc->sent_tick >= DASH_TOKENS_RESYNC ?
	    0 : dc->sent;
	kore_buf_init(&buf, 16384);
	digest = dv_tokens(&buf, session_role(dc->session),
	    session_csrf(dc->session), &dc->view, unless);
	ok = KORE_RESULT_OK;
	if (unless == 0 || digest != unless) {
		dc->sent = digest;
		dc->sent_tick = dash.ticks;
		ok = dash_send(dc, "tokens", &buf);
	}
	kore_buf_cleanup(&buf);

	return (ok);
}

static int
dash_send(struct dash_client *dc, const char *target, struct kore_buf *html)
{
	yajl_gen		g;
	const unsigned char	*buf;
	size_t			len;
	int			ok;

	g = api_json_begin();
	json_kv_str(g, "type", "patch");
	json_kv_str(g, "target", target);
	yajl_gen_string(g, (const unsigned char *)"html", 4);
	yajl_gen_string(g, html->data, html->offset);
	yajl_gen_map_close(g);
	(void)yajl_gen_get_buf(g, &buf, &len);
	ok = dash_write(dc, WEBSOCKET_OP_TEXT, buf, len);
	yajl_gen_free(g);

	return (ok);
}

/*
 * One frame to a socket, unless its peer stopped reading: beyond
 * DASH_QUEUE_MAX bytes waiting for it, the socket is closed rather than
 * let the worker's memory grow (a frame larger than that still goes to
 * a socket with nothing queued). KORE_RESULT_ERROR once the socket is
 * gone: dc is freed then.
 */
static int
dash_write(struct dash_client *dc, u_int8_t op, const void *data,
    size_t len)
{
	struct connection	*c = dc->c;
	size_t			queued;

	if (c->state == CONN_STATE_DISCONNECTING)
		return (KORE_RESULT_ERROR);
	queued = dash_queued(c);
	if (queued > 0 && queued + len > DASH_QUEUE_MAX) {
		log_kv(LOG_LVL_WARN, "dashboard socket closed: not reading",
		    "#queued", (int64_t)queued, NULL);
		kore_connection_disconnect(c);
		return (KORE_RESULT_ERROR);
	}

	kore_websocket_send(c, op, data, len);

	return (c->state == CONN_STATE_DISCONNECTING ? KORE_RESULT_ERROR :
	    KORE_RESULT_OK);
}

/* Bytes waiting in a connection's send queue (Kore's netbufs). */
static size_t
dash_queued(struct connection *c)
{
	struct netbuf	*nb;
	size_t		n;

	n = 0;
	TAILQ_FOREACH(nb, &c->send_queue, list) {
		n += nb->b_len - nb->s_off;
		if (n > DASH_QUEUE_MAX)
			break;
	}

	return (n);
}

/* One slot a second of the public endpoints' counters (all workers). */
static void
dash_sample(void)
{
	const struct shared	*sh = shared_get();
	u_int64_t		reqs, errs, lat[SHARED_BUCKETS + 1];
	int			r, i, code;

	reqs = errs = 0;
	memset(lat, 0, sizeof(lat));
	for (r = 0; r < 2; r++) {
		for (i = 0; i < SHARED_STATUSES; i++) {
			reqs += sh->requests[r][i];
			code = shared_status_code(i);
			if (code == 0 || code >= 500)
				errs += sh->requests[r][i];
		}
		for (i = 0; i <= SHARED_BUCKETS; i++)
			lat[i] += sh->latency[r][i];
	}

	/* The first sample only sets the base. */
	dash.slot = (dash.slot + 1) % DASH_WINDOW;
	dash.reqs[dash.slot] = dash.sampled ? reqs - dash.last_reqs : 0;
	dash.errs[dash.slot] = dash.sampled ? errs - dash.last_errs : 0;
	for (i = 0; i <= SHARED_BUCKETS; i++) {
		dash.lat[dash.slot][i] = dash.sampled ?
		    lat[i] - dash.last_lat[i] : 0;
		dash.last_lat[i] = lat[i];
	}
	dash.last_reqs = reqs;
	dash.last_errs = errs;
	dash.sampled = 1;
}

/* Upper bound (µs) of the bucket holding quantile q of the window. */
static u_int64_t
dash_quantile(double q)
{
	u_int64_t	counts[SHARED_BUCKETS + 1], total, seen;
	int		s, i;

	memset(counts, 0, sizeof(counts));
	total = 0;
	for (s = 0; s < DASH_WINDOW; s++) {
		for (i = 0; i <= SHARED_BUCKETS; i++) {
			counts[i] += dash.lat[s][i];
			total += dash.lat[s][i];
		}
	}
	if (total == 0)
		return (0);

	for (seen = 0, i = 0; i < SHARED_BUCKETS; i++) {
		seen += counts[i];
		if (seen >= q * total)
			return ((u_int64_t)(shared_bucket_le(i) * 1e6));
	}

	return ((u_int64_t)(shared_bucket_le(SHARED_BUCKETS - 1) * 1e6));
}

/* The rows of store_recent_events, rendered by dr_history. */
static void
render_history(struct kore_buf *b, const struct store_rows *rows)
{
	const struct event_row	*e;
	struct dr_event		*ev;
	struct dbuf		d;
	size_t			i;

	ev = kore_calloc(rows->n + 1, sizeof(*ev));
	for (i = 0; i < rows->n; i++) {
		e = &rows->events[i];
		ev[i].source = e->source;
		ev[i].trigger = e->trigger;
		ev[i].outcome = e->outcome;
		ev[i].error = e->error;
		ev[i].finished_ms = e->finished_ms;
		ev[i].duration_ms = e->duration_ms;
		ev[i].http_status = e->http_status;
		ev[i].generation = e->generation;
	}

	dbuf_init(&d);
	dr_history(&d, ev, rows->n);
	kore_buf_append(b, d.data, d.len);
	dbuf_free(&d);
	kore_free(ev);
}

/* Requests per second of the last minute as an SVG sparkline. */
static void
render_traffic(struct kore_buf *b)
{
	struct dbuf	d;

	dbuf_init(&d);
	dr_traffic(&d, dash.reqs, dash.errs, DASH_WINDOW, dash.slot,
	    dash_quantile(0.5), dash_quantile(0.99));
	kore_buf_append(b, d.data, d.len);
	dbuf_free(&d);
}

/* The upstream hosts of the shared counters, with their circuits. */
static size_t
dash_hosts(struct dr_host *h, int64_t now)
{
	const struct shared	*sh = shared_get();
	size_t			i;

	for (i = 0; i < SHARED_HOSTS && sh->hosts[i].host[0] != '\0'; i++) {
		h[i].host = sh->hosts[i].host;
		h[i].state = shared_circuit_state(&sh->hosts[i], now);
		h[i].failures = sh->hosts[i].failures;
	}

	return (i);
}

static void
render_upstream(struct kore_buf *b)
{
	struct dr_host		h[SHARED_HOSTS];
	struct dbuf		d;
	size_t			n;

	n = dash_hosts(h, isotime_now());
	dbuf_init(&d);
	dr_upstream(&d, h, n);
	kore_buf_append(b, d.data, d.len);
	dbuf_free(&d);
}

static void
render_alerts(struct kore_buf *b)
{
	struct dr_host		h[SHARED_HOSTS];
	struct cache_entry	*e;
	struct dr_alert		*a;
	struct dbuf		d;
	size_t			i, n, nh;
	int64_t			now;

	now = isotime_now();
	n = 0;
	for (e = cache_first(); e != NULL; e = cache_next(e))
		n++;
	a = kore_calloc(n + 1, sizeof(*a));
	i = 0;
	for (e = cache_first(); e != NULL && i < n; e = cache_next(e), i++) {
		a[i].name = e->name;
		a[i].enabled = e->enabled;
		a[i].valid = cache_valid(e, now);
		a[i].in_buffer = now >= e->refresh_ms;
		a[i].failures = e->failures;
		a[i].has_cert = e->cert_not_after_ms != 0;
		a[i].cert_left_ms = e->cert_not_after_ms - now;
	}
	/* Connections whose grant is gone, counted on their source. */
	for (e = cache_any_first(); e != NULL; e = cache_any_next(e)) {
		if (e->conn == NULL || !e->reauth)
			continue;
		for (n = 0; n < i; n++) {
			if (!strcmp(a[n].name, e->name)) {
				a[n].reauth++;
				break;
			}
		}
	}
	nh = dash_hosts(h, now);

	dbuf_init(&d);
	dr_alerts(&d, dash.db_ok, a, i, h, nh);
	kore_buf_append(b, d.data, d.len);
	dbuf_free(&d);
	kore_free(a);
}

static void
render_clients(struct kore_buf *b)
{
	const struct shared	*sh = shared_get();
	struct dbuf		d;
	int64_t			waiters, streams;

	dbuf_init(&d);
	dr_clients(&d, sh->websockets, dash.count, worker_active_connections);
	kore_buf_append(b, d.data, d.len);
	dbuf_free(&d);

	shared_push_totals(&waiters, &streams);
	kore_buf_appendf(b, "<dl class=\"figures\"><div><dt>Waiting "
	    "long-polls</dt><dd id=\"push-waiters\">%lld</dd></div><div>"
	    "<dt>Token streams</dt><dd id=\"push-streams\">%lld</dd></div>"
	    "</dl>", (long long)waiters, (long long)streams);
}

struct dash_page_args {
	const struct principal	*principal;
	struct dp_view		view;
};

static void
render_page(struct kore_buf *b, const struct principal *p,
    const char *query)
{
	struct dash_page_args	args;
	struct dbuf	d;

	dbuf_init(&d);
	args.principal = p;
	dp_view_parse(query, &args.view);
	dr_page(&d, asset_dashboard_html, asset_len_dashboard_html,
	    page_fragment, &args);
	kore_buf_append(b, d.data, d.len);
	dbuf_free(&d);
}

/* The fragment of one {{name}} of the page, for dr_page. */
static void
page_fragment(struct dbuf *d, const char *key, const void *arg)
{
	const struct dash_page_args	*a = arg;
	const struct principal		*p = a->principal;
	struct kore_buf			b;

	kore_buf_init(&b, 4096);
	if (!strcmp(key, "tokens"))
		(void)dv_tokens(&b, p->role, p->csrf, &a->view, 0);
	else if (!strcmp(key, "filter"))
		dv_filter(&b, &a->view);
	else if (!strcmp(key, "history"))
		kore_buf_append(&b, dash.history.data, dash.history.offset);
	else if (!strcmp(key, "webhooks") && p->role >= ROLE_ADMIN)
		kore_buf_append(&b, dash.webhooks.data, dash.webhooks.offset);
	else if (!strcmp(key, "webhooks"))
		kore_buf_appendf(&b, "<p>Shown to admins.</p>");
	else if (!strcmp(key, "csrf"))
		kore_buf_appendf(&b, "%s", p->csrf);
	else if (!strcmp(key, "role"))
		kore_buf_appendf(&b, "%s", jwt_role_name(p->role));
	else if (!strcmp(key, "worker"))
		kore_buf_appendf(&b, "%u", worker->id);
	else
		dash_render(key, &b);
	dbuf_append(d, b.data, b.offset);
	kore_buf_cleanup(&b);
}

static void
render_login(struct kore_buf *b, const char *csrf, const char *error)
{
	struct dbuf	d;

	dbuf_init(&d);
	dr_login(&d, asset_login_html, asset_len_login_html, csrf, error);
	kore_buf_append(b, d.data, d.len);
	dbuf_free(&d);
}

/* Every HTML answer: no sniffing, no referrer, no inline script. */
void
dash_html_headers(struct http_request *req)
{
	http_response_header(req, "Content-Type", "text/html; charset=utf-8");
	http_response_header(req, "Cache-Control", "no-store");
	http_response_header(req, "Content-Security-Policy", DASH_CSP);
	http_response_header(req, "X-Content-Type-Options", "nosniff");
	http_response_header(req, "Referrer-Policy", "no-referrer");
}

static int
dash_origin_ok(struct http_request *req)
{
	const char	*origin, *host, *rest;

	if (!http_request_header(req, "origin", &origin) ||
	    !http_request_header(req, "host", &host))
		return (0);

	if (!strncmp(origin, "https://", 8))
		rest = origin + 8;
	else if (!strncmp(origin, "http://", 7))
		rest = origin + 7;
	else
		return (0);

	return (!strcmp(rest, host));
}

static void
dash_cookie(struct http_request *req, const char *name, const char *value,
    int maxage)
{
	char		buf[256];

	(void)snprintf(buf, sizeof(buf), "%s=%s; Path=/; Max-Age=%d; "
	    "HttpOnly; SameSite=Strict%s", name, value, maxage,
	    req->owner->owner != NULL && req->owner->owner->server->tls ?
	    "; Secure" : "");
	http_response_header(req, "Set-Cookie", buf);
}

void
dash_redirect(struct http_request *req, const char *location)
{
	http_response_header(req, "Location", location);
	http_response_header(req, "Cache-Control", "no-store");
	http_response(req, 303, NULL, 0);
}

static void
dash_logged_in(struct api_pending *p, const struct store_rows *rows, int ok)
{
	if (!ok || rows->n == 0) {
		api_pending_fail(p, 503, "database_unavailable",
		    "cannot store the session; try again");
		return;
	}

	/* Known here at once; the other workers hear of it by NOTIFY. */
	p->version = rows->num[0] == STORE_NULL ? 0 : rows->num[0];
	session_add(p->name, p->principal.role, p->principal.csrf,
	    p->version, p->principal.kind == PRINCIPAL_KEY ?
	    p->principal.key_id : 0);
	log_kv(LOG_LVL_INFO, "dashboard login", "principal", p->principal.id,
	    NULL);
	p->redirect = "/dashboard";
	p->cookie = 1;
	p->done = 1;
}

static void
dash_logged_out(struct api_pending *p, const struct store_rows *rows, int ok)
{
	struct dash_client	*dc, *next;

	if (!ok) {
		api_pending_fail(p, 503, "database_unavailable",
		    "cannot end the session; try again");
		return;
	}

	session_forget(p->name);
	for (dc = TAILQ_FIRST(&dash.clients); dc != NULL; dc = next) {
		next = TAILQ_NEXT(dc, list);
		if (!strcmp(dc->session, p->name))
			kore_connection_disconnect(dc->c);
	}
	p->redirect = "/dashboard/login";
	p->cookie = -1;
	p->done = 1;
}

static void
dash_page_history(struct api_pending *p, const struct store_rows *rows, int ok)
{
	struct kore_buf		*b;

	dash_db_state(ok);
	if (ok) {
		kore_buf_reset(&dash.history);
		render_history(&dash.history, rows);
	}

	/* An admin's page shows the webhooks too: one more query. */
	if (p->principal.role >= ROLE_ADMIN) {
		p->render = dash_page_webhooks;
		store_webhooks_recent(api_pending_cb, p);
		return;
	}

	b = kore_buf_alloc(32768);
	render_page(b, &p->principal, p->secret);
	p->html = b;
	p->done = 1;
}

/* Called by the dispatcher for a finished dashboard step. */
int
dash_finish(struct http_request *req, struct api_pending *p)
{
	struct kore_buf		*b = p->html;

	if (p->redirect != NULL) {
		/* The cookie lasts as long as its session (p->version). */
		if (p->cookie == 1)
			dash_cookie(req, SESSION_COOKIE, p->secret,
			    (int)((p->version - isotime_now() + 999) / 1000));
		else if (p->cookie == -1)
			dash_cookie(req, SESSION_COOKIE, "", 0);
		dash_redirect(req, p->redirect);
		return (1);
	}
	if (b != NULL) {
		dash_html_headers(req);
		http_response(req, p->status, b->data, b->offset);
		return (1);
	}

	return (0);
}

/* The admin's page, once the webhooks and their deliveries are in. */
static void
dash_page_webhooks(struct api_pending *p, const struct store_rows *rows,
    int ok)
{
	struct kore_buf		*b;

	dash_db_state(ok);
	if (dash.webhooks.data == NULL)
		kore_buf_init(&dash.webhooks, 4096);
	if (ok) {
		kore_buf_reset(&dash.webhooks);
		dv_webhooks(&dash.webhooks, rows);
	}

	b = kore_buf_alloc(32768);
	render_page(b, &p->principal, p->secret);
	p->html = b;
	p->done = 1;
}

