/*
 * api.c: kiln's single Kore route. It gives every request its identity
 * (X-Request-Id, W3C trace context), finds the handler by method and
 * path, and answers JSON for everything, 404 and 405 included. JSON is
 * always written with yajl_gen.
 */

#include <sys/types.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <yajl/yajl_gen.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

#define SEG_MAX		8

struct route {
	int		methods;
	const char	*path;		/* '*' is the source name */
	int		(*handler)(struct http_request *, struct api_state *);
};

static const struct route routes[] = {
	{ HTTP_METHOD_GET, "/api/tokens/*/current-token", api_current_token },
	{ HTTP_METHOD_POST, "/api/tokens/*/current-token/rejected",
	    api_rejected },
	{ HTTP_METHOD_GET, "/health", ops_health },
	{ 0, NULL, NULL }
};

static struct {
	char		prefix[9];
	u_int64_t	counter;
} api_ids;

static int	api_route(struct http_request *, struct api_state *);
static int	route_match(const char *, const char *, char *, size_t);
static void	api_identity(struct http_request *, struct api_state *);
static int	id_valid(const char *);
static void	api_allow(struct http_request *, int);
static void	api_state_free(struct http_request *);

int
kiln_dispatch(struct http_request *req)
{
	struct api_state	*st;
	int			ret;

	if ((st = http_state_get(req)) == NULL) {
		st = http_state_create(req, sizeof(*st), api_state_free);
		st->route = -1;
		api_identity(req, st);
	}

	log_context(st->request_id, NULL);
	if (st->route == -1)
		ret = api_route(req, st);
	else
		ret = routes[st->route].handler(req, st);
	log_context(NULL, NULL);

	return (ret);
}

static int
api_route(struct http_request *req, struct api_state *st)
{
	const struct route	*r;
	int			i, allow;
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

		/* An over-long or malformed name is simply not found. */
		if (strchr(r->path, '*') != NULL && !source_name_valid(name)) {
			api_error(req, 404, "not_found",
			    "unknown token source");
			return (KORE_RESULT_OK);
		}
		(void)kore_strlcpy(st->name, name, sizeof(st->name));
		st->route = i;
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
	char		span[17];

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

	/* traceparent: 00-<32 hex trace>-<16 hex parent>-<2 hex flags> */
	if (http_request_header(req, "traceparent", &v) &&
	    strlen(v) == 55 && v[2] == '-' && v[35] == '-' && v[52] == '-') {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			fatal("RAND_bytes");
		(void)snprintf(span, sizeof(span), "%08llx%02x%02x%02x%02x",
		    (unsigned long long)(api_ids.counter & 0xffffffff),
		    rnd[0], rnd[1], rnd[2], rnd[3]);
		(void)snprintf(st->traceparent, sizeof(st->traceparent),
		    "00-%.32s-%s-%.2s", v + 3, span, v + 53);
	}
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

	if ((st = http_state_get(req)) != NULL)
		cache_unwait(&st->waiter);
}

void *
api_json_begin(void)
{
	yajl_gen	g;

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatal("yajl_gen_alloc");
	yajl_gen_map_open(g);

	return (g);
}

/* Close the top-level object, answer it, and free the generator. */
void
api_json_send(struct http_request *req, int status, void *arg)
{
	yajl_gen		g = arg;
	const unsigned char	*buf;
	size_t			len;

	yajl_gen_map_close(g);
	if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok)
		fatal("yajl_gen_get_buf");

	http_response_header(req, "Content-Type",
	    "application/json; charset=utf-8");
	http_response_header(req, "Cache-Control", "no-store");
	http_response(req, status, buf, len);

	yajl_gen_clear(g);
	yajl_gen_free(g);
}

void
api_error(struct http_request *req, int status, const char *code,
    const char *message)
{
	yajl_gen	g;

	g = api_json_begin();
	api_kv_bool(g, "success", 0);
	yajl_gen_string(g, (const unsigned char *)"error", 5);
	yajl_gen_map_open(g);
	api_kv_str(g, "code", code);
	api_kv_str(g, "message", message);
	yajl_gen_map_close(g);
	api_json_send(req, status, g);
}

void
api_kv_str(void *g, const char *key, const char *value)
{
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	if (value == NULL)
		yajl_gen_null(g);
	else
		yajl_gen_string(g, (const unsigned char *)value,
		    strlen(value));
}

void
api_kv_int(void *g, const char *key, int64_t value)
{
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	yajl_gen_integer(g, value);
}

void
api_kv_bool(void *g, const char *key, int value)
{
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	yajl_gen_bool(g, value);
}

/* A number with one decimal, as the pre-warming guide shows them. */
void
api_kv_decimal(void *g, const char *key, double value)
{
	char		buf[32];
	int		len;

	len = snprintf(buf, sizeof(buf), "%.1f", value);
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	yajl_gen_number(g, buf, len);
}

void
api_kv_null(void *g, const char *key)
{
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	yajl_gen_null(g);
}

/*
 * The request body as a JSON tree, or KORE_RESULT_ERROR with the error
 * answered (415 wrong type, 413 too large, 400 unreadable or not JSON).
 */
int
api_body_json(struct http_request *req, yajl_val *root)
{
	struct kore_buf		buf;
	const char		*ctype;
	ssize_t			n;
	char			chunk[4096], perr[128];

	*root = NULL;
	if (!http_request_header(req, "content-type", &ctype) ||
	    strncasecmp(ctype, "application/json", 16) ||
	    (ctype[16] != '\0' && ctype[16] != ';' && ctype[16] != ' ')) {
		api_error(req, 415, "unsupported_media_type",
		    "expected Content-Type: application/json");
		return (KORE_RESULT_ERROR);
	}

	kore_buf_init(&buf, 1024);
	for (;;) {
		if ((n = http_body_read(req, chunk, sizeof(chunk))) == -1) {
			kore_buf_cleanup(&buf);
			api_error(req, 400, "bad_request",
			    "cannot read the body");
			return (KORE_RESULT_ERROR);
		}
		if (n == 0)
			break;
		if (buf.offset + n > API_BODY_MAX) {
			kore_buf_cleanup(&buf);
			api_error(req, 413, "payload_too_large",
			    "body larger than 65536 bytes");
			return (KORE_RESULT_ERROR);
		}
		kore_buf_append(&buf, chunk, n);
	}

	if (memchr(buf.data, '\0', buf.offset) == NULL) {
		kore_buf_stringify(&buf, NULL);
		*root = yajl_tree_parse((const char *)buf.data, perr,
		    sizeof(perr));
	}
	OPENSSL_cleanse(buf.data, buf.offset);
	kore_buf_cleanup(&buf);

	if (*root == NULL) {
		api_error(req, 400, "bad_request", "body is not valid JSON");
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}
