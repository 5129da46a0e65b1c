/*
 * api_reply.c: what the handlers of every surface answer with: JSON
 * bodies and errors, the request body read as JSON, and the pending
 * database step of a request. Below the router (api.c), which calls the
 * handlers.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <yajl/yajl_gen.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

/*
 * A database step of a request: the callback renders the answer (or
 * starts the next step) while the request sleeps; the dispatcher sends
 * the answer when the request runs again. A request that goes away
 * meanwhile leaves the pending step to be freed by its callback.
 */
struct api_pending *
api_pending_start(struct http_request *req, struct api_state *st,
    void (*render)(struct api_pending *, const struct store_rows *, int))
{
	struct api_pending	*p;

	p = kore_calloc(1, sizeof(*p));
	p->req = req;
	p->render = render;
	p->status = 200;
	p->principal = st->principal;
	(void)kore_strlcpy(p->name, st->name, sizeof(p->name));
	api_audit_who(req, &st->principal, st->request_id, &p->who);
	st->pending = p;

	return (p);
}

void
api_pending_cb(const struct store_rows *rows, void *arg, int ok)
{
	struct api_pending	*p = arg;

	if (p->req == NULL) {
		api_pending_free(p);
		return;
	}

	p->render(p, rows, ok);
	if (p->done)
		http_request_wakeup(p->req);
}

void
api_pending_fail(struct api_pending *p, int status, const char *code,
    const char *message)
{
	p->status = status;
	(void)kore_strlcpy(p->code, code, sizeof(p->code));
	(void)kore_strlcpy(p->message, message, sizeof(p->message));
	p->done = 1;
}

void
api_pending_free(struct api_pending *p)
{
	if (p->g != NULL)
		yajl_gen_free(p->g);
	if (p->body != NULL)
		yajl_tree_free(p->body);
	if (p->secret != NULL) {
		OPENSSL_cleanse(p->secret, strlen(p->secret));
		kore_free(p->secret);
	}
	if (p->html != NULL)
		kore_buf_free(p->html);
	source_free(&p->src);
	kore_free(p);
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
	struct api_state	*st;
	yajl_gen		g = arg;
	const unsigned char	*buf;
	size_t			len;

	/* A plain form post from the dashboard goes back to the page. */
	st = http_state_get(req);
	if (st != NULL && st->form_redirect && status < 400) {
		yajl_gen_free(g);
		http_response_header(req, "Location", "/dashboard");
		http_response(req, 303, NULL, 0);
		return;
	}

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
	char		field[64];

	g = api_json_begin();
	json_kv_bool(g, "success", 0);
	yajl_gen_string(g, (const unsigned char *)"error", 5);
	yajl_gen_map_open(g);
	json_kv_str(g, "code", code);
	json_kv_str(g, "message", message);
	/* Which field to show the error next to (the dashboard's forms). */
	if ((!strcmp(code, "invalid_field") ||
	    !strcmp(code, "secret_required")) &&
	    json_err_field(message, field, sizeof(field)))
		json_kv_str(g, "field", field);
	yajl_gen_map_close(g);
	api_json_send(req, status, g);
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
	int			check;
	char			chunk[4096], key[65], msg[160];

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

	check = json_check((const char *)buf.data, buf.offset, key,
	    sizeof(key));
	if (check == JSON_OK)
		*root = json_parse((const char *)buf.data, buf.offset);
	OPENSSL_cleanse(buf.data, buf.offset);
	kore_buf_cleanup(&buf);

	if (check == JSON_BAD_ESCAPE) {
		(void)snprintf(msg, sizeof(msg), "%s: must not contain "
		    "\\u0000 or unpaired surrogates", key[0] ? key : "body");
		api_error(req, 422, "invalid_field", msg);
		return (KORE_RESULT_ERROR);
	}
	if (*root == NULL) {
		api_error(req, 400, "bad_request", check == JSON_BAD_UTF8 ?
		    "body is not valid UTF-8" : "body is not valid JSON");
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

/*
 * Who a request of principal p is, for the audit row of what it does:
 * the principal's id (a session by its hash, which the store resolves),
 * the peer address and the request id. Never a credential.
 */
void
api_audit_who(struct http_request *req, const struct principal *p,
    const char *request_id, struct audit_who *who)
{
	struct connection	*c = req->owner;
	const u_int8_t		*addr;
	int			family;

	memset(who, 0, sizeof(*who));
	switch (p->kind) {
	case PRINCIPAL_KEY:
		who->kind = "key";
		(void)kore_strlcpy(who->principal, p->id,
		    sizeof(who->principal));
		break;
	case PRINCIPAL_JWT:
		who->kind = "jwt";
		(void)kore_strlcpy(who->principal, p->id,
		    sizeof(who->principal));
		break;
	case PRINCIPAL_SESSION:
		who->kind = "session";
		(void)kore_strlcpy(who->principal, p->session,
		    sizeof(who->principal));
		break;
	default:
		who->kind = "anonymous";
		break;
	}
	if (request_id != NULL)
		(void)kore_strlcpy(who->request_id, request_id,
		    sizeof(who->request_id));

	family = c->family;
	if (family == AF_INET)
		addr = (const u_int8_t *)&c->addr.ipv4.sin_addr;
	else if (family == AF_INET6)
		addr = (const u_int8_t *)&c->addr.ipv6.sin6_addr;
	else
		return;
	(void)addr_unmap(&family, &addr);
	if (inet_ntop(family, addr, who->address,
	    sizeof(who->address)) == NULL)
		who->address[0] = '\0';
}

void
api_wait_init(struct api_table_wait *w, size_t slots)
{
	TAILQ_INIT(&w->waiters);
	w->unknown = kore_calloc(slots, sizeof(*w->unknown));
	w->slots = slots;
}

/* p->name: the hash of the credential the request brings. */
void
api_wait_add(struct api_table_wait *w, struct api_pending *p)
{
	struct api_waiter	*aw;

	p->render = NULL;
	aw = kore_calloc(1, sizeof(*aw));
	aw->p = p;
	aw->since = isotime_now();
	TAILQ_INSERT_TAIL(&w->waiters, aw, list);
}

/*
 * A load that began at started is done: wake the requests that came
 * before it (every one when it failed: ok 0). A hash the new table does
 * not know (known) is remembered. A woken request runs its route again.
 */
void
api_wait_wake(struct api_table_wait *w, int ok, int64_t started,
    int (*known)(const char *))
{
	struct api_waiter	*aw, *next;
	struct api_pending	*p;

	for (aw = TAILQ_FIRST(&w->waiters); aw != NULL; aw = next) {
		next = TAILQ_NEXT(aw, list);
		if (ok && aw->since > started)
			continue;
		TAILQ_REMOVE(&w->waiters, aw, list);
		p = aw->p;
		kore_free(aw);
		if (ok && !known(p->name))
			api_wait_remember(w, p->name);
		if (p->req == NULL) {
			api_pending_free(p);
			continue;
		}
		p->resume = 1;
		p->done = 1;
		http_request_wakeup(p->req);
	}
}

int
api_wait_unknown(const struct api_table_wait *w, const char *hash)
{
	return (!strcmp(w->unknown[hash_fnv1a_str(hash) % w->slots], hash));
}

void
api_wait_remember(struct api_table_wait *w, const char *hash)
{
	(void)kore_strlcpy(w->unknown[hash_fnv1a_str(hash) % w->slots], hash,
	    AUTH_HASH_LEN + 1);
}
