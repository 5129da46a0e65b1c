/*
 * api_webhook.c: the admin API of webhooks (admin role, api.c checks).
 *
 *	POST /api/webhooks {"url","events":[...],"secret"?}
 *	GET /api/webhooks, DELETE /api/webhooks/{id}
 *	GET /api/webhooks/{id}/deliveries[?limit=N&before=ID]
 *
 * The secret is shown once, in the answer that generated it; it is
 * stored sealed for the URL's origin (store.c) and never listed. A URL
 * whose host is a refused address (link-local, cloud metadata; see
 * upstream.c) is refused here already; a name is checked on every
 * connection by the delivery (webhook.c).
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <yajl/yajl_gen.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

#define WH_URL_MAX		2048
#define WH_SECRET_MIN		16
#define WH_SECRET_MAX		256
#define WH_DELIVERIES_DEFAULT	50
#define WH_DELIVERIES_MAX	200

static const char *wh_events[] = {
	"token.failing", "token.recovered", "token.expired",
	"token.refreshed", "connection.needs_reauth", NULL
};

static int	wh_check(yajl_val, char **, char *, size_t);
static int	wh_url_check(const char *, char *, size_t);
static char	*wh_events_csv(yajl_val);
static int	wh_secret_ok(const char *);
static char	*wh_secret_generate(void);
static int	wh_arg(struct http_request *, const char *, int64_t,
		    int64_t, int64_t *);
static void	wh_created(struct api_pending *, const struct store_rows *,
		    int);
static void	wh_listed(struct api_pending *, const struct store_rows *,
		    int);
static void	wh_deleted(struct api_pending *, const struct store_rows *,
		    int);
static void	wh_deliveries(struct api_pending *,
		    const struct store_rows *, int);
static void	wh_delivery(void *, const struct store_rows *, size_t *);
static void	wh_events_json(void *, const char *);
static void	*wh_gen(struct api_pending *, int);
static void	wh_time(void *, const char *, int64_t);
static void	wh_num(void *, const char *, int64_t);
static void	wh_str(void *, const char *, const char *);
static void	wh_url(void *, const char *);

int
admin_webhooks_create(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;
	yajl_val		body, secret;
	const char		*sp[] = { "secret", NULL };
	const char		*up[] = { "url", NULL };
	char			*events, msg[KILN_ERR_MAX];

	if (!api_body_json(req, &body))
		return (KORE_RESULT_OK);
	if (!wh_check(body, &events, msg, sizeof(msg))) {
		yajl_tree_free(body);
		api_error(req, 422, "invalid_field", msg);
		return (KORE_RESULT_OK);
	}

	p = api_pending_start(req, st, wh_created);
	p->body = body;
	secret = yajl_tree_get(body, sp, yajl_t_string);
	if (secret == NULL)
		p->secret = wh_secret_generate();
	store_webhook_create(YAJL_GET_STRING(yajl_tree_get(body, up,
	    yajl_t_string)), events, p->secret != NULL ? p->secret :
	    YAJL_GET_STRING(secret), &p->who, api_pending_cb, p);
	kore_free(events);

	return (KORE_RESULT_RETRY);
}

int
admin_webhooks_list(struct http_request *req, struct api_state *st)
{
	store_webhooks_list(api_pending_cb,
	    api_pending_start(req, st, wh_listed));
	return (KORE_RESULT_RETRY);
}

int
admin_webhook_delete(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;

	p = api_pending_start(req, st, wh_deleted);
	store_webhook_delete(st->name, &p->who, api_pending_cb, p);
	return (KORE_RESULT_RETRY);
}

int
admin_webhook_deliveries(struct http_request *req, struct api_state *st)
{
	int64_t		limit, before;

	if (!wh_arg(req, "limit", WH_DELIVERIES_DEFAULT, WH_DELIVERIES_MAX,
	    &limit)) {
		api_error(req, 422, "invalid_field",
		    "limit: expected an integer from 1 to 200");
		return (KORE_RESULT_OK);
	}
	if (!wh_arg(req, "before", 0, INT64_MAX, &before)) {
		api_error(req, 422, "invalid_field",
		    "before: expected a positive delivery id");
		return (KORE_RESULT_OK);
	}

	store_webhook_deliveries(st->name, limit, before, api_pending_cb,
	    api_pending_start(req, st, wh_deliveries));
	return (KORE_RESULT_RETRY);
}

/* The body: url, events, secret (optional), nothing else. */
static int
wh_check(yajl_val body, char **events, char *msg, size_t len)
{
	yajl_val	url, ev, secret;
	const char	*up[] = { "url", NULL }, *ep[] = { "events", NULL };
	const char	*sp[] = { "secret", NULL };

	*events = NULL;
	if (!YAJL_IS_OBJECT(body)) {
		(void)kore_strlcpy(msg, "body: expected a JSON object", len);
		return (KORE_RESULT_ERROR);
	}
	url = yajl_tree_get(body, up, yajl_t_any);
	ev = yajl_tree_get(body, ep, yajl_t_any);
	secret = yajl_tree_get(body, sp, yajl_t_any);
	if (body->u.object.len != 2 + (secret != NULL)) {
		(void)kore_strlcpy(msg, "body: expected url, events and "
		    "optionally secret, nothing else", len);
		return (KORE_RESULT_ERROR);
	}
	if (url == NULL || !YAJL_IS_STRING(url)) {
		(void)kore_strlcpy(msg, "url: expected an http:// or "
		    "https:// URL", len);
		return (KORE_RESULT_ERROR);
	}
	if (!wh_url_check(YAJL_GET_STRING(url), msg, len))
		return (KORE_RESULT_ERROR);
	if (ev == NULL || (*events = wh_events_csv(ev)) == NULL) {
		(void)kore_strlcpy(msg, "events: expected 1 to 5 distinct of "
		    "token.failing, token.recovered, token.expired, "
		    "token.refreshed, connection.needs_reauth", len);
		return (KORE_RESULT_ERROR);
	}
	if (secret != NULL && (!YAJL_IS_STRING(secret) ||
	    !wh_secret_ok(YAJL_GET_STRING(secret)))) {
		kore_free(*events);
		*events = NULL;
		(void)kore_strlcpy(msg, "secret: expected 16 to 256 printable "
		    "characters", len);
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

/*
 * http(s), plain origin, no control characters or spaces; a host that is
 * an address (in any spelling the resolver takes) must not be refused.
 */
static int
wh_url_check(const char *url, char *msg, size_t len)
{
	const char	*h, *end;
	size_t		i, n;
	int		family;
	u_int8_t	ip[16];
	char		origin[SOURCE_ORIGIN_MAX], host[SOURCE_ORIGIN_MAX];

	n = strlen(url);
	for (i = 0; i < n; i++) {
		if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
			break;
	}
	source_origin(url, origin, sizeof(origin));
	if (n == 0 || n > WH_URL_MAX || i < n || !strncmp(origin, "url:", 4)) {
		(void)kore_strlcpy(msg, "url: expected an http:// or https:// "
		    "URL with a plain host, at most 2048 bytes", len);
		return (KORE_RESULT_ERROR);
	}

	/* origin is scheme://host:port, the host lower case. */
	h = strstr(origin, "://") + 3;
	end = strrchr(h, ':');
	(void)snprintf(host, sizeof(host), "%.*s", (int)(end - h), h);
	family = AF_INET;
	if (host[0] == '[') {
		host[strlen(host) - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, ip) != 1)
			family = 0;
		else
			family = AF_INET6;
	} else if (inet_aton(host, (struct in_addr *)ip) == 0) {
		family = 0;
	}
	if (family != 0 && upstream_addr_refused(family, ip)) {
		(void)snprintf(msg, len, "url: address %.64s refused: link-local "
		    "or cloud metadata (KILN_UPSTREAM_ALLOW lists exceptions)",
		    host[0] == '[' ? host + 1 : host);
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

/* The events as "a,b" for the store, or NULL when not a valid list. */
static char *
wh_events_csv(yajl_val v)
{
	struct kore_buf		buf;
	const char		*s;
	size_t			i, j, n;
	u_int32_t		seen;
	char			*out;

	if (!YAJL_IS_ARRAY(v) || v->u.array.len == 0 ||
	    v->u.array.len > 5)
		return (NULL);

	seen = 0;
	kore_buf_init(&buf, 128);
	for (i = 0; i < v->u.array.len; i++) {
		s = YAJL_GET_STRING(v->u.array.values[i]);
		for (j = 0; s != NULL && wh_events[j] != NULL; j++) {
			if (!strcmp(s, wh_events[j]))
				break;
		}
		if (s == NULL || wh_events[j] == NULL || (seen & (1 << j))) {
			kore_buf_cleanup(&buf);
			return (NULL);
		}
		seen |= 1 << j;
		kore_buf_appendf(&buf, "%s%s", i ? "," : "", s);
	}
	out = kore_strdup(kore_buf_stringify(&buf, &n));
	kore_buf_cleanup(&buf);

	return (out);
}

static int
wh_secret_ok(const char *s)
{
	size_t		i, n;

	n = strlen(s);
	if (n < WH_SECRET_MIN || n > WH_SECRET_MAX)
		return (0);
	for (i = 0; i < n; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return (0);
	}

	return (1);
}

/* 32 random bytes, base64url: the secret shown once. */
static char *
wh_secret_generate(void)
{
	u_int8_t	rnd[32];
	char		*b64, *out;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		fatal("RAND_bytes");
	if (!kore_base64url_encode(rnd, sizeof(rnd), &b64, KORE_BASE64_RAW))
		fatal("base64url");
	OPENSSL_cleanse(rnd, sizeof(rnd));
	out = kore_strdup(b64);
	OPENSSL_cleanse(b64, strlen(b64));
	kore_free(b64);

	return (out);
}

/* A numeric query argument in 1..max, def when absent; 0 when bad. */
static int
wh_arg(struct http_request *req, const char *key, int64_t def, int64_t max,
    int64_t *out)
{
	const char	*v;
	size_t		klen, n;
	int		err;
	char		buf[24];

	*out = def;
	klen = strlen(key);
	for (v = req->query_string; v != NULL;
	    v = strchr(v, '&') != NULL ? strchr(v, '&') + 1 : NULL) {
		if (strncmp(v, key, klen) || v[klen] != '=')
			continue;
		v += klen + 1;
		if ((n = strcspn(v, "&")) == 0 || n >= sizeof(buf))
			return (0);
		memcpy(buf, v, n);
		buf[n] = '\0';
		*out = kore_strtonum(buf, 10, 1, max, &err);
		return (err == KORE_RESULT_OK);
	}

	return (1);
}

static void
wh_created(struct api_pending *p, const struct store_rows *rows, int ok)
{
	void		*g;
	const char	*up[] = { "url", NULL }, *ep[] = { "events", NULL };
	yajl_val	ev;
	const char	*s;
	size_t		i;
	char		id[24];

	if (!ok || rows->num[0] == STORE_NULL) {
		api_pending_fail(p, 503, "database_unavailable",
		    "the database did not answer; try again");
		return;
	}

	g = wh_gen(p, 201);
	yajl_gen_string(g, (const unsigned char *)"data", 4);
	yajl_gen_map_open(g);
	json_kv_int(g, "id", rows->num[0]);
	wh_url(g, YAJL_GET_STRING(yajl_tree_get(p->body, up,
	    yajl_t_string)));
	yajl_gen_string(g, (const unsigned char *)"events", 6);
	yajl_gen_array_open(g);
	ev = yajl_tree_get(p->body, ep, yajl_t_array);
	for (i = 0; ev != NULL && i < ev->u.array.len; i++) {
		s = YAJL_GET_STRING(ev->u.array.values[i]);
		yajl_gen_string(g, (const unsigned char *)s, strlen(s));
	}
	yajl_gen_array_close(g);
	wh_time(g, "created_at", rows->num[1]);
	if (p->secret != NULL)
		json_kv_str(g, "secret", p->secret);
	yajl_gen_map_close(g);

	(void)snprintf(id, sizeof(id), "%lld", (long long)rows->num[0]);
	log_kv(LOG_LVL_INFO, "webhook created", "webhook", id, NULL);
	p->done = 1;
}

static void
wh_listed(struct api_pending *p, const struct store_rows *rows, int ok)
{
	const struct webhook_row	*w;
	void				*g;
	size_t				i;

	if (!ok) {
		api_pending_fail(p, 503, "database_unavailable",
		    "the database did not answer; try again");
		return;
	}

	g = wh_gen(p, 200);
	yajl_gen_string(g, (const unsigned char *)"data", 4);
	yajl_gen_array_open(g);
	for (i = 0; i < rows->n; i++) {
		w = &rows->webhooks[i];
		yajl_gen_map_open(g);
		json_kv_int(g, "id", w->id);
		wh_url(g, w->url);
		wh_events_json(g, w->events);
		wh_time(g, "created_at", w->created_ms);
		yajl_gen_string(g, (const unsigned char *)"deliveries", 10);
		yajl_gen_map_open(g);
		json_kv_int(g, "pending", w->pending);
		json_kv_int(g, "delivered", w->delivered);
		json_kv_int(g, "failed", w->failed);
		yajl_gen_map_close(g);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	p->done = 1;
}

static void
wh_deleted(struct api_pending *p, const struct store_rows *rows, int ok)
{
	if (!ok) {
		api_pending_fail(p, 503, "database_unavailable",
		    "the database did not answer; try again");
		return;
	}
	if (rows->n == 0) {
		api_pending_fail(p, 404, "not_found", "no such webhook");
		return;
	}

	log_kv(LOG_LVL_INFO, "webhook deleted", "webhook", p->name, NULL);
	json_kv_str(wh_gen(p, 200), "message", "webhook deleted");
	p->done = 1;
}

/* Rows come one per attempt, a delivery's together, newest first. */
static void
wh_deliveries(struct api_pending *p, const struct store_rows *rows,
    int ok)
{
	void		*g;
	size_t		i;

	if (!ok) {
		api_pending_fail(p, 503, "database_unavailable",
		    "the database did not answer; try again");
		return;
	}
	if (rows->n == 0) {
		api_pending_fail(p, 404, "not_found", "no such webhook");
		return;
	}

	g = wh_gen(p, 200);
	yajl_gen_string(g, (const unsigned char *)"data", 4);
	yajl_gen_array_open(g);
	for (i = 0; i < rows->n && rows->deliveries[i].id != STORE_NULL;)
		wh_delivery(g, rows, &i);
	yajl_gen_array_close(g);
	p->done = 1;
}

/* The delivery at *i with its attempts; *i moves past them. */
static void
wh_delivery(void *g, const struct store_rows *rows, size_t *i)
{
	const struct delivery_row	*d, *a;

	d = &rows->deliveries[*i];
	yajl_gen_map_open(g);
	json_kv_int(g, "id", d->id);
	wh_str(g, "event_id", d->event_id);
	wh_str(g, "type", d->type);
	wh_time(g, "created_at", d->created_ms);
	wh_str(g, "status", d->status);
	wh_num(g, "attempts", d->attempts);
	if (!strcmp(d->status, "pending"))
		wh_time(g, "next_attempt_at", d->next_ms);
	else
		wh_time(g, "finished_at", d->finished_ms);
	wh_num(g, "last_status", d->last_status);
	wh_str(g, "last_error", d->last_error);
	yajl_gen_string(g, (const unsigned char *)"data", 4);
	yajl_gen_map_open(g);
	wh_str(g, "source", d->source);
	wh_str(g, "subject", d->subject);
	wh_str(g, "state", d->state);
	wh_num(g, "generation", d->generation);
	wh_str(g, "fingerprint", d->fingerprint);
	wh_num(g, "failures", d->failures);
	wh_str(g, "error", d->error);
	yajl_gen_map_close(g);

	yajl_gen_string(g, (const unsigned char *)"attempt_log", 11);
	yajl_gen_array_open(g);
	for (; *i < rows->n && rows->deliveries[*i].id == d->id; (*i)++) {
		a = &rows->deliveries[*i];
		if (a->attempt == STORE_NULL)
			continue;
		yajl_gen_map_open(g);
		json_kv_int(g, "attempt", a->attempt);
		wh_time(g, "started_at", a->a_started_ms);
		wh_num(g, "duration_ms", a->a_duration_ms);
		wh_num(g, "http_status", a->a_status);
		wh_str(g, "error", a->a_error);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
}

/* "events": ["a", ...] from "a,b" (NULL: nothing written). */
static void
wh_events_json(void *g, const char *csv)
{
	char		*copy, *p, *item;

	if (csv == NULL)
		return;
	yajl_gen_string(g, (const unsigned char *)"events", 6);
	yajl_gen_array_open(g);
	copy = kore_strdup(csv);
	for (p = copy; (item = strsep(&p, ",")) != NULL;) {
		if (*item != '\0')
			yajl_gen_string(g, (const unsigned char *)item,
			    strlen(item));
	}
	kore_free(copy);
	yajl_gen_array_close(g);
}

static void *
wh_gen(struct api_pending *p, int status)
{
	if (p->g == NULL) {
		p->g = api_json_begin();
		json_kv_bool(p->g, "success", 1);
	}
	p->status = status;

	return (p->g);
}

static void
wh_time(void *g, const char *key, int64_t v)
{
	char		buf[ISOTIME_LEN];

	if (v == STORE_NULL) {
		json_kv_null(g, key);
		return;
	}
	isotime_format(v, buf, sizeof(buf));
	json_kv_str(g, key, buf);
}

static void
wh_num(void *g, const char *key, int64_t v)
{
	if (v == STORE_NULL)
		json_kv_null(g, key);
	else
		json_kv_int(g, key, v);
}

static void
wh_str(void *g, const char *key, const char *v)
{
	if (v == NULL)
		json_kv_null(g, key);
	else
		json_kv_str(g, key, v);
}

/* "url", never with its userinfo (a credential). */
static void
wh_url(void *g, const char *url)
{
	char		*shown;

	if (url == NULL || (shown = source_url_redact(url, 0)) == NULL) {
		json_kv_null(g, "url");
		return;
	}
	json_kv_str(g, "url", shown);
	free(shown);
}
