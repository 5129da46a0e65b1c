/*
 * dash_manage.c: the dashboard's pages to manage token sources and API
 * keys, usable without JavaScript.
 *
 *	GET  /dashboard/sources			list, and a new-source form
 *	POST /dashboard/sources			create (the form)
 *	GET  /dashboard/sources/{name}		the edit form
 *	POST /dashboard/sources/{name}		save (the form)
 *	POST /dashboard/sources/{name}/delete	delete
 *	GET  /dashboard/keys			list, and a new-key form
 *	POST /dashboard/keys			create: the key, shown once
 *	POST /dashboard/keys/{id}/revoke	revoke
 *
 * The POSTs are admin routes of the router: the same credentials, role,
 * rate limit and CSRF checks as the admin API, which they then call
 * (admin_source_create and the like) with the form read as the JSON the
 * API takes (dash_forms.c). A refused form is shown again with its
 * error next to its field; secrets are never shown. With JavaScript,
 * assets/manage.js sends the same forms to the admin API itself.
 */

#include <sys/types.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <yajl/yajl_gen.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "assets.h"
#include "kiln.h"

#define DM_PAIRS_MAX	64
#define DM_CREATE	0
#define DM_EDIT		1
#define DM_KEY		2

/* The parts of a page, for dr_page. */
struct dm_page {
	const char		*title;
	const char		*active;	/* "sources" or "keys" */
	const struct principal	*principal;
	struct dbuf		*body;
};

/* Values of a refused form to show again (numbers as text). */
struct dm_values {
	struct df_pair	pairs[DM_PAIRS_MAX];
	char		text[DM_PAIRS_MAX][24];
	size_t		n;
	struct kore_buf	lists;
};

static int	dm_form(struct http_request *, int, yajl_val *);
static int	dm_pairs_read(struct http_request *, struct kore_buf *,
		    struct df_pair *, size_t *);
static void	dm_values(struct dm_values *, yajl_val);
static void	dm_values_free(struct dm_values *);
static void	dm_json_text(struct kore_buf *, yajl_val);
static int	dm_query(struct http_request *, const char *, char *, size_t);
static void	dm_page(struct api_pending *, int, const char *,
		    const char *, struct dbuf *);
static void	dm_page_fragment(struct dbuf *, const char *, const void *);
static void	dm_message(struct api_pending *, int, const char *,
		    const char *);
static int	dm_finish(struct http_request *, struct api_pending *);
static void	dm_sources_body(struct dbuf *, const struct principal *,
		    const char *, const struct df_row *, size_t,
		    const char *, int, const struct df_form *);
static size_t	dm_cache_rows(struct df_row *, int *);
static const char	*dm_after(struct http_request *, char *, size_t);
static void	dm_sources_loaded(struct api_pending *,
		    const struct store_rows *, int);
static void	dm_source_loaded(struct api_pending *,
		    const struct store_rows *, int);
static void	dm_keys_loaded(struct api_pending *,
		    const struct store_rows *, int);
static int	dm_created(struct http_request *, struct api_pending *);
static int	dm_saved(struct http_request *, struct api_pending *);
static int	dm_deleted(struct http_request *, struct api_pending *);
static int	dm_key_done(struct http_request *, struct api_pending *);
static int	dm_revoked(struct http_request *, struct api_pending *);
static const char	*dm_field(struct api_pending *, int, char *, size_t);
static int	dm_urldecode(char *);

int
dm_sources_page(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;
	int			ret;

	if (!dash_viewer(req, st, &ret))
		return (ret);

	/* From the database, as GET /api/tokens: no worker lags behind. */
	p = api_pending_start(req, st, dm_sources_loaded);
	p->finish = dm_finish;
	store_sources_page(DF_PAGE_ROWS + 1, dm_after(req, p->name,
	    sizeof(p->name)), api_pending_cb, p);

	return (KORE_RESULT_RETRY);
}

int
dm_source_page(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;
	int			ret;

	if (!dash_viewer(req, st, &ret))
		return (ret);

	p = api_pending_start(req, st, dm_source_loaded);
	p->finish = dm_finish;
	store_sources_view(st->name, api_pending_cb, p);

	return (KORE_RESULT_RETRY);
}

int
dm_source_create(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;
	yajl_val		body;

	if (!dm_form(req, DM_CREATE, &body))
		return (KORE_RESULT_OK);

	p = admin_source_create(req, st, body);
	p->finish = dm_created;

	return (KORE_RESULT_RETRY);
}

int
dm_source_save(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;
	yajl_val		body;

	if (!dm_form(req, DM_EDIT, &body))
		return (KORE_RESULT_OK);

	p = admin_source_patch(req, st, body);
	p->finish = dm_saved;

	return (KORE_RESULT_RETRY);
}

int
dm_source_delete(struct http_request *req, struct api_state *st)
{
	int		ret;

	ret = admin_token_delete(req, st);
	if (st->pending != NULL)
		st->pending->finish = dm_deleted;

	return (ret);
}

int
dm_keys_page(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;
	int			ret;

	if (!dash_viewer(req, st, &ret))
		return (ret);

	p = api_pending_start(req, st, dm_keys_loaded);
	p->finish = dm_finish;
	if (st->principal.role < ROLE_ADMIN) {
		dm_message(p, 403, "API keys", "Only admins manage API keys.");
		return (KORE_RESULT_RETRY);
	}
	if (dm_query(req, "revoked", p->name, sizeof(p->name)))
		p->version = 1;
	store_keys_list(api_pending_cb, p);

	return (KORE_RESULT_RETRY);
}

int
dm_key_create(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;
	yajl_val		body;

	if (!dm_form(req, DM_KEY, &body))
		return (KORE_RESULT_OK);

	p = admin_key_create(req, st, body);
	p->finish = dm_key_done;

	return (KORE_RESULT_RETRY);
}

int
dm_key_revoke(struct http_request *req, struct api_state *st)
{
	int		ret;

	ret = admin_key_revoke(req, st);
	if (st->pending != NULL)
		st->pending->finish = dm_revoked;

	return (ret);
}

/*
 * The form of the request as the JSON body the admin API takes, or
 * KORE_RESULT_ERROR with the refusal answered. The form's values (and
 * every copy of a secret in them) are wiped once read.
 */
static int
dm_form(struct http_request *req, int mode, yajl_val *body)
{
	struct kore_buf		buf;
	struct df_pair		pairs[DM_PAIRS_MAX];
	yajl_alloc_funcs	wipe;
	yajl_gen		g;
	const unsigned char	*json;
	size_t			n, len;
	int			ok;

	*body = NULL;
	kore_buf_init(&buf, 1024);
	if (!dm_pairs_read(req, &buf, pairs, &n)) {
		OPENSSL_cleanse(buf.data, buf.length);
		kore_buf_cleanup(&buf);
		return (KORE_RESULT_ERROR);
	}

	json_wipe_funcs(&wipe);
	if ((g = yajl_gen_alloc(&wipe)) == NULL)
		fatal("yajl_gen_alloc");
	yajl_gen_map_open(g);
	if (mode == DM_KEY)
		ok = df_key_json(pairs, n, g);
	else
		ok = df_form_json(pairs, n, mode == DM_EDIT, g);
	yajl_gen_map_close(g);
	if (ok && yajl_gen_get_buf(g, &json, &len) == yajl_gen_status_ok)
		*body = json_parse((const char *)json, len);
	yajl_gen_free(g);
	OPENSSL_cleanse(buf.data, buf.length);
	kore_buf_cleanup(&buf);

	if (*body == NULL) {
		api_error(req, 400, "bad_request",
		    "the form is not valid UTF-8");
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

/* The fields of an x-www-form-urlencoded body, decoded, into buf. */
static int
dm_pairs_read(struct http_request *req, struct kore_buf *buf,
    struct df_pair *pairs, size_t *n)
{
	const char	*ctype;
	char		chunk[4096], *s, *pair, *eq;
	ssize_t		r;

	*n = 0;
	if (!http_request_header(req, "content-type", &ctype) ||
	    strncasecmp(ctype, "application/x-www-form-urlencoded", 33)) {
		api_error(req, 415, "unsupported_media_type",
		    "expected an HTML form (x-www-form-urlencoded)");
		return (KORE_RESULT_ERROR);
	}
	for (;;) {
		if ((r = http_body_read(req, chunk, sizeof(chunk))) == -1) {
			api_error(req, 400, "bad_request",
			    "cannot read the body");
			return (KORE_RESULT_ERROR);
		}
		if (r == 0)
			break;
		if (buf->offset + r > API_BODY_MAX) {
			OPENSSL_cleanse(chunk, sizeof(chunk));
			api_error(req, 413, "payload_too_large",
			    "body larger than 65536 bytes");
			return (KORE_RESULT_ERROR);
		}
		kore_buf_append(buf, chunk, r);
	}
	OPENSSL_cleanse(chunk, sizeof(chunk));
	kore_buf_append(buf, "", 1);

	for (s = (char *)buf->data; (pair = strsep(&s, "&")) != NULL;) {
		if (*pair == '\0')
			continue;
		if (*n == DM_PAIRS_MAX) {
			api_error(req, 400, "bad_request",
			    "too many form fields");
			return (KORE_RESULT_ERROR);
		}
		if ((eq = strchr(pair, '=')) != NULL)
			*eq++ = '\0';
		else
			eq = pair + strlen(pair);
		if (!dm_urldecode(pair) || !dm_urldecode(eq)) {
			api_error(req, 400, "bad_request",
			    "a form field is not valid URL encoding");
			return (KORE_RESULT_ERROR);
		}
		pairs[*n].name = pair;
		pairs[*n].value = eq;
		(*n)++;
	}

	return (KORE_RESULT_OK);
}

/* The values of a refused body, to fill its form again. */
static void
dm_values(struct dm_values *v, yajl_val body)
{
	yajl_val	x;
	size_t		i, j, at[DM_PAIRS_MAX];
	const char	*s;

	memset(v, 0, sizeof(*v));
	kore_buf_init(&v->lists, 256);
	if (body == NULL || !YAJL_IS_OBJECT(body))
		return;

	for (i = 0; i < body->u.object.len && v->n < DM_PAIRS_MAX; i++) {
		x = body->u.object.values[i];
		v->pairs[v->n].name = body->u.object.keys[i];
		at[v->n] = (size_t)-1;
		if (YAJL_IS_STRING(x)) {
			v->pairs[v->n].value = YAJL_GET_STRING(x);
		} else if (YAJL_IS_INTEGER(x)) {
			(void)snprintf(v->text[v->n], sizeof(v->text[0]),
			    "%lld", (long long)YAJL_GET_INTEGER(x));
			v->pairs[v->n].value = v->text[v->n];
		} else if (YAJL_IS_TRUE(x) || YAJL_IS_FALSE(x)) {
			v->pairs[v->n].value = YAJL_IS_TRUE(x) ?
			    "true" : "false";
		} else if (YAJL_IS_ARRAY(x)) {
			/* a key's sources, joined again */
			at[v->n] = v->lists.offset;
			for (j = 0; j < x->u.array.len; j++) {
				s = YAJL_GET_STRING(x->u.array.values[j]);
				kore_buf_appendf(&v->lists, "%s%s",
				    j ? ", " : "", s != NULL ? s : "");
			}
			kore_buf_append(&v->lists, "", 1);
		} else if (YAJL_IS_OBJECT(x)) {
			/* extra_authorize_params, as JSON again */
			at[v->n] = v->lists.offset;
			dm_json_text(&v->lists, x);
		} else {
			continue;
		}
		v->n++;
	}
	/* the list buffer may have moved while it grew */
	for (i = 0; i < v->n; i++) {
		if (at[i] != (size_t)-1)
			v->pairs[i].value = (const char *)v->lists.data + at[i];
	}
}

/* x as JSON text, NUL-terminated, at the end of buf. */
static void
dm_json_text(struct kore_buf *buf, yajl_val x)
{
	yajl_gen		g;
	const unsigned char	*json;
	size_t			len;

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatal("yajl_gen_alloc");
	df_gen_value(g, x);
	if (yajl_gen_get_buf(g, &json, &len) == yajl_gen_status_ok)
		kore_buf_append(buf, json, len);
	kore_buf_append(buf, "", 1);
	yajl_gen_free(g);
}

static void
dm_values_free(struct dm_values *v)
{
	kore_buf_cleanup(&v->lists);
}

/* A query-string argument, decoded; 0 when absent, empty or not text. */
static int
dm_query(struct http_request *req, const char *key, char *out, size_t len)
{
	return (qs_get(req->query_string, key, out, len) == 1 &&
	    out[0] != '\0');
}

/* The page around body, as the step's answer. */
static void
dm_page(struct api_pending *p, int status, const char *active,
    const char *title, struct dbuf *body)
{
	struct dm_page	pg;
	struct dbuf	d;

	pg.title = title;
	pg.active = active;
	pg.principal = &p->principal;
	pg.body = body;

	dbuf_init(&d);
	dr_page(&d, asset_manage_html, asset_len_manage_html,
	    dm_page_fragment, &pg);
	if (p->html == NULL)
		p->html = kore_buf_alloc(d.len + 1);
	kore_buf_reset(p->html);
	kore_buf_append(p->html, d.data, d.len);
	dbuf_free(&d);
	p->status = status;
	p->finish = dm_finish;
}

static void
dm_page_fragment(struct dbuf *d, const char *key, const void *arg)
{
	const struct dm_page	*pg = arg;

	if (!strcmp(key, "body"))
		dbuf_append(d, pg->body->data, pg->body->len);
	else if (!strcmp(key, "title"))
		dr_escape(d, pg->title);
	else if (!strcmp(key, "csrf"))
		dr_escape(d, pg->principal->csrf);
	else if (!strcmp(key, "role"))
		dr_escape(d, jwt_role_name(pg->principal->role));
	else if (!strcmp(key, "nav_sources"))
		dbuf_appendf(d, "%s", !strcmp(pg->active, "sources") ?
		    " aria-current=\"page\"" : "");
	else if (!strcmp(key, "nav_keys"))
		dbuf_appendf(d, "%s", !strcmp(pg->active, "keys") ?
		    " aria-current=\"page\"" : "");
}

/* A page of one message (a refusal, an error of the database). */
static void
dm_message(struct api_pending *p, int status, const char *title,
    const char *text)
{
	struct dbuf	d;

	dbuf_init(&d);
	dbuf_appendf(&d, "<section class=\"panel wide\"><h2>");
	dr_escape(&d, title);
	dbuf_appendf(&d, "</h2><p class=\"alert\" role=\"alert\">");
	dr_escape(&d, text);
	dbuf_appendf(&d, "</p><p><a href=\"/dashboard/sources\">Sources</a> · "
	    "<a href=\"/dashboard/keys\">API keys</a></p></section>");
	dm_page(p, status, "sources", title, &d);
	dbuf_free(&d);
	p->code[0] = '\0';
	p->done = 1;
}

static int
dm_finish(struct http_request *req, struct api_pending *p)
{
	if (p->redirect != NULL) {
		dash_redirect(req, p->redirect);
		return (1);
	}
	if (p->html == NULL)
		return (0);

	dash_html_headers(req);
	http_response(req, p->status, p->html->data, p->html->offset);

	return (1);
}

/* The sources page: a page of the list (n rows of total), a form. */
static void
dm_sources_body(struct dbuf *d, const struct principal *pr,
    const char *kind, const struct df_row *rows, size_t n,
    const char *after, int more, const struct df_form *f)
{
	dbuf_appendf(d, "<section class=\"panel wide\" aria-labelledby="
	    "\"h-sources\"><h2 id=\"h-sources\">Token sources</h2>"
	    "<div id=\"sources-list\" class=\"scroll\">");
	df_sources(d, rows, n, after, more, cache_count(),
	    pr->role >= ROLE_ADMIN, pr->csrf);
	dbuf_appendf(d, "</div></section>");
	if (pr->role < ROLE_ADMIN)
		return;

	dbuf_appendf(d, "<section class=\"panel wide\" id=\"new\" "
	    "aria-labelledby=\"h-new\"><h2 id=\"h-new\">New source</h2>");
	df_kinds(d, kind);
	df_source_form(d, f);
	dbuf_appendf(d, "</section>");
}

/* ?after=NAME of the sources list into buf; "" for the first page. */
static const char *
dm_after(struct http_request *req, char *buf, size_t len)
{
	if (!dm_query(req, "after", buf, len) || !source_name_valid(buf))
		buf[0] = '\0';

	return (buf);
}

/* The first page of this worker's sources (a refused form's page). */
static size_t
dm_cache_rows(struct df_row *rows, int *more)
{
	struct cache_entry	*e;
	size_t			n;
	int64_t			now;

	now = isotime_now();
	n = 0;
	for (e = cache_first(); e != NULL && n < DF_PAGE_ROWS;
	    e = cache_next(e)) {
		rows[n].name = e->name;
		rows[n].kind = source_kind_name(e->kind);
		rows[n].state = policy_state(e->paused || cache_paused(),
		    e->leased, e->failures, e->token != NULL, e->expires_ms,
		    now);
		rows[n].enabled = e->enabled;
		n++;
	}
	*more = e != NULL;

	return (n);
}

/* GET /dashboard/sources: the rows of store_sources_view, a page. */
static void
dm_sources_loaded(struct api_pending *p, const struct store_rows *rows,
    int ok)
{
	const struct source_view	*v;
	struct df_row			r[DF_PAGE_ROWS];
	struct df_form			f;
	struct dbuf			d;
	size_t				i, n;
	int64_t				now;
	char				kind[32], name[KILN_NAME_MAX + 2];

	if (!ok) {
		dm_message(p, 503, "Sources", "The database did not answer; "
		    "try again.");
		return;
	}

	if (!dm_query(p->req, "kind", kind, sizeof(kind)) ||
	    source_kind_parse(kind) == 0)
		(void)kore_strlcpy(kind, "client_credentials", sizeof(kind));
	now = isotime_now();
	for (n = 0, i = 0; i < rows->n && n < DF_PAGE_ROWS; i++, n++) {
		v = &rows->views[i];
		r[n].name = v->name;
		r[n].kind = v->kind;
		r[n].state = policy_state(v->paused || cache_paused(),
		    v->leased, (u_int32_t)(v->failures == STORE_NULL ? 0 :
		    v->failures), v->fingerprint != NULL &&
		    *v->fingerprint != '\0', v->expires_ms == STORE_NULL ? 0 :
		    v->expires_ms, now);
		r[n].enabled = v->enabled;
	}

	memset(&f, 0, sizeof(f));
	f.kind = kind;
	f.csrf = p->principal.csrf;
	f.admin = p->principal.role >= ROLE_ADMIN;

	dbuf_init(&d);
	if (dm_query(p->req, "created", name, sizeof(name)) &&
	    source_name_valid(name))
		df_notice(&d, "Created the source", name);
	else if (dm_query(p->req, "saved", name, sizeof(name)) &&
	    source_name_valid(name))
		df_notice(&d, "Saved the source", name);
	else if (dm_query(p->req, "deleted", name, sizeof(name)) &&
	    source_name_valid(name))
		df_notice(&d, "Deleted the source", name);
	/* p->name: the ?after= the rows were asked for */
	dm_sources_body(&d, &p->principal, kind, r, n, p->name[0] != '\0' ?
	    p->name : NULL, rows->n > DF_PAGE_ROWS, &f);
	dm_page(p, 200, "sources", "Sources", &d);
	dbuf_free(&d);
	p->done = 1;
}

/* GET of one source: its form, filled with what is stored. */
static void
dm_source_loaded(struct api_pending *p, const struct store_rows *rows,
    int ok)
{
	const struct source_view	*v;
	struct df_pair			pairs[40];
	struct df_form			f;
	struct dbuf			d;
	size_t				n;
	char				*url, *au, *ru, *du, rb[24], fl[24];
	int				redact;

	if (!ok) {
		dm_message(p, 503, "Source", "The database did not answer; "
		    "try again.");
		return;
	}
	if (rows->n == 0) {
		dm_message(p, 404, "Source", "No such token source.");
		return;
	}

	v = &rows->views[0];
	/* As the API shows it: query values only to those who may edit. */
	redact = p->principal.role < ROLE_ADMIN;
	url = v->token_url != NULL ? source_url_redact(v->token_url,
	    redact) : NULL;
	au = v->authorize_url != NULL ? source_url_redact(v->authorize_url,
	    redact) : NULL;
	ru = v->revocation_url != NULL ?
	    source_url_redact(v->revocation_url, redact) : NULL;
	du = v->device_authorization_url != NULL ?
	    source_url_redact(v->device_authorization_url, redact) : NULL;
	n = 0;
#define DM_PAIR(k, x)	do { if ((x) != NULL) { pairs[n].name = (k); \
			    pairs[n++].value = (x); } } while (0)
	DM_PAIR("token_url", url);
	DM_PAIR("token_url_shown", url);
	DM_PAIR("client_id", v->client_id);
	DM_PAIR("auth_method", v->auth_method);
	DM_PAIR("scope", v->scope);
	DM_PAIR("audience", v->audience);
	DM_PAIR("resource", v->resource);
	DM_PAIR("username", v->username);
	DM_PAIR("token_path", v->token_path);
	DM_PAIR("expires_at_path", v->expires_at_path);
	DM_PAIR("expires_in_path", v->expires_in_path);
	DM_PAIR("access", v->access);
	DM_PAIR("subject_source", v->subject_source);
	DM_PAIR("subject_token_type", v->subject_token_type);
	DM_PAIR("requested_token_type", v->requested_token_type);
	DM_PAIR("actor_source", v->actor_source);
	DM_PAIR("actor_token_type", v->actor_token_type);
	DM_PAIR("tls_client_cert_subject", v->tls_cert_subject);
	DM_PAIR("issuer", v->issuer);
	DM_PAIR("subject", v->subject);
	DM_PAIR("assertion_audience", v->assertion_audience);
	DM_PAIR("target_audience", v->target_audience);
	DM_PAIR("signing_key_id", v->signing_key_id);
	DM_PAIR("key_generate", v->key_generate);
	DM_PAIR("authorize_url", au);
	DM_PAIR("revocation_url", ru);
	DM_PAIR("device_authorization_url", du);
	DM_PAIR("extra_authorize_params", v->extra_authorize_params);
	DM_PAIR("require_header", v->require_header ? "true" : "false");
	DM_PAIR("enabled", v->enabled ? "true" : "false");
	if (v->refresh_buffer != STORE_NULL && v->refresh_buffer >= 0) {
		(void)snprintf(rb, sizeof(rb), "%lld",
		    (long long)v->refresh_buffer);
		DM_PAIR("refresh_buffer", rb);
	}
	if (v->fallback_lifetime != STORE_NULL) {
		(void)snprintf(fl, sizeof(fl), "%lld",
		    (long long)v->fallback_lifetime);
		DM_PAIR("fallback_lifetime", fl);
	}
#undef DM_PAIR

	memset(&f, 0, sizeof(f));
	f.kind = v->kind;
	f.source = v->name;
	f.values = pairs;
	f.nvalues = n;
	f.set = (v->client_secret_set ? DF_CLIENT_SECRET : 0) |
	    (v->refresh_token_set ? DF_REFRESH_TOKEN : 0) |
	    (v->password_set ? DF_PASSWORD : 0) |
	    (v->tls_client_key_set ? DF_TLS_KEY : 0) |
	    (v->tls_cert_subject != NULL ? DF_TLS_CERT : 0) |
	    (v->tls_ca_set ? DF_TLS_CA : 0) |
	    (v->signing_key_id != NULL || v->key_generate != NULL ?
	    DF_PRIVATE_KEY : 0);
	f.csrf = p->principal.csrf;
	f.admin = p->principal.role >= ROLE_ADMIN;

	dbuf_init(&d);
	dbuf_appendf(&d, "<section class=\"panel wide\" aria-labelledby="
	    "\"h-edit\"><h2 id=\"h-edit\">%s</h2>", f.admin ?
	    "Edit source" : "Source");
	df_source_form(&d, &f);
	if (f.admin) {
		dbuf_appendf(&d, "<form method=\"post\" action=\""
		    "/dashboard/sources/%s/delete\" class=\"delete-form\" "
		    "data-api=\"/api/tokens/%s\" data-method=\"DELETE\" "
		    "data-confirm=\"Delete the source %s?\" data-done=\""
		    "/dashboard/sources?deleted=%s\"><input type=\"hidden\" "
		    "name=\"csrf\" value=\"%s\"><button class=\"danger\">"
		    "Delete this source</button></form>", p->name, p->name,
		    p->name, p->name, p->principal.csrf);
	}
	dbuf_appendf(&d, "<p><a href=\"/dashboard/sources\">All sources</a>"
	    "</p></section>");
	free(url);
	free(au);
	free(ru);
	free(du);

	dm_page(p, 200, "sources", v->name, &d);
	dbuf_free(&d);
	p->done = 1;
}

static void
dm_keys_loaded(struct api_pending *p, const struct store_rows *rows,
    int ok)
{
	const struct key_row	*r;
	struct df_key		*k;
	struct dbuf		d;
	size_t			i;

	if (!ok) {
		dm_message(p, 503, "API keys", "The database did not answer; "
		    "try again.");
		return;
	}

	k = kore_calloc(rows->n + 1, sizeof(*k));
	for (i = 0; i < rows->n; i++) {
		r = &rows->keys[i];
		k[i].id = r->id;
		k[i].name = r->name;
		k[i].role = r->role;
		k[i].sources = r->sources;
		k[i].created_ms = r->created_ms == STORE_NULL ? DR_NULL :
		    r->created_ms;
		k[i].revoked_ms = r->revoked_ms == STORE_NULL ? DR_NULL :
		    r->revoked_ms;
	}

	dbuf_init(&d);
	if (p->version == 1)
		df_notice(&d, "Revoked the key", p->name);
	dbuf_appendf(&d, "<section class=\"panel wide\" aria-labelledby="
	    "\"h-newkey\"><h2 id=\"h-newkey\">New API key</h2>");
	df_key_form(&d, NULL, 0, NULL, NULL, p->principal.csrf);
	df_key_created(&d, NULL, NULL);
	dbuf_appendf(&d, "</section><section class=\"panel wide\" "
	    "aria-labelledby=\"h-keys\"><h2 id=\"h-keys\">API keys</h2>"
	    "<div id=\"keys-list\" class=\"scroll\">");
	df_keys(&d, k, rows->n, p->principal.csrf);
	dbuf_appendf(&d, "</div></section>");
	kore_free(k);

	dm_page(p, 200, "keys", "API keys", &d);
	dbuf_free(&d);
	p->done = 1;
}

/* The field an error of p names, or NULL (create: a new source). */
static const char *
dm_field(struct api_pending *p, int create, char *buf, size_t len)
{
	if (create && !strcmp(p->code, "conflict"))
		return ("name");
	if (json_err_field(p->message, buf, len))
		return (buf);

	return (NULL);
}

/* POST /dashboard/sources answered: to the list, or the form again. */
static int
dm_created(struct http_request *req, struct api_pending *p)
{
	struct df_row		rows[DF_PAGE_ROWS];
	struct dm_values	v;
	size_t			n;
	int			more;
	struct df_form		f;
	struct dbuf		d;
	const char		*kind;
	char			field[64], where[128];

	if (p->code[0] == '\0') {
		(void)snprintf(where, sizeof(where),
		    "/dashboard/sources?created=%s", p->name);
		dash_redirect(req, where);
		return (1);
	}

	dm_values(&v, p->body);
	kind = df_value(v.pairs, v.n, "kind");
	if (kind == NULL || source_kind_parse(kind) == 0)
		kind = "client_credentials";
	memset(&f, 0, sizeof(f));
	f.kind = kind;
	f.values = v.pairs;
	f.nvalues = v.n;
	f.typed = df_typed(v.pairs, v.n);
	f.error = p->message;
	f.field = dm_field(p, 1, field, sizeof(field));
	f.csrf = p->principal.csrf;
	f.admin = 1;

	n = dm_cache_rows(rows, &more);
	dbuf_init(&d);
	dm_sources_body(&d, &p->principal, kind, rows, n, NULL, more, &f);
	dm_page(p, p->status, "sources", "Sources", &d);
	dbuf_free(&d);
	dm_values_free(&v);

	return (dm_finish(req, p));
}

/* POST /dashboard/sources/{name} answered, as dm_created. */
static int
dm_saved(struct http_request *req, struct api_pending *p)
{
	struct dm_values	v;
	struct df_form		f;
	struct dbuf		d;
	char			*url, field[64], where[128];
	int			bits[6], i;
	const char		*names[6] = { "client_secret",
				    "refresh_token", "password",
				    "tls_client_key", "tls_client_cert",
				    "tls_ca" };
	char			*held[6];

	if (p->code[0] == '\0') {
		(void)snprintf(where, sizeof(where),
		    "/dashboard/sources?saved=%s", p->name);
		dash_redirect(req, where);
		return (1);
	}
	if (p->status != 422) {
		dm_message(p, p->status, "Source", p->message);
		return (dm_finish(req, p));
	}

	dm_values(&v, p->body);
	url = p->src.token_url != NULL ?
	    source_url_redact(p->src.token_url, 0) : NULL;
	if (url != NULL && df_value(v.pairs, v.n, "token_url") == NULL &&
	    v.n < DM_PAIRS_MAX) {
		v.pairs[v.n].name = "token_url";
		v.pairs[v.n++].value = url;
	}
	if (url != NULL && v.n < DM_PAIRS_MAX) {
		v.pairs[v.n].name = "token_url_shown";
		v.pairs[v.n++].value = url;
	}

	memset(&f, 0, sizeof(f));
	f.kind = source_kind_name(p->src.kind);
	f.source = p->name;
	f.values = v.pairs;
	f.nvalues = v.n;
	bits[0] = DF_CLIENT_SECRET;
	bits[1] = DF_REFRESH_TOKEN;
	bits[2] = DF_PASSWORD;
	bits[3] = DF_TLS_KEY;
	bits[4] = DF_TLS_CERT;
	bits[5] = DF_TLS_CA;
	held[0] = p->src.client_secret;
	held[1] = p->src.refresh_token;
	held[2] = p->src.password;
	held[3] = p->src.tls_client_key;
	held[4] = p->src.tls_client_cert;
	held[5] = p->src.tls_ca;
	for (i = 0; i < 6; i++) {
		if (df_value(v.pairs, v.n, names[i]) != NULL)
			f.typed |= bits[i];
		else if (held[i] != NULL)
			f.set |= bits[i];
	}
	if (df_value(v.pairs, v.n, "private_key") != NULL)
		f.typed |= DF_PRIVATE_KEY;
	else if (p->src.private_key != NULL || p->src.key_stored ||
	    p->src.key_generate != 0)
		f.set |= DF_PRIVATE_KEY;
	f.error = p->message;
	f.field = dm_field(p, 0, field, sizeof(field));
	f.csrf = p->principal.csrf;
	f.admin = 1;

	dbuf_init(&d);
	dbuf_appendf(&d, "<section class=\"panel wide\" aria-labelledby="
	    "\"h-edit\"><h2 id=\"h-edit\">Edit source</h2>");
	df_source_form(&d, &f);
	dbuf_appendf(&d, "<p><a href=\"/dashboard/sources\">All sources</a>"
	    "</p></section>");
	dm_page(p, p->status, "sources", p->name, &d);
	dbuf_free(&d);
	dm_values_free(&v);
	free(url);

	return (dm_finish(req, p));
}

static int
dm_deleted(struct http_request *req, struct api_pending *p)
{
	char		where[128];

	if (p->code[0] != '\0') {
		dm_message(p, p->status, "Source", p->message);
		return (dm_finish(req, p));
	}
	(void)snprintf(where, sizeof(where), "/dashboard/sources?deleted=%s",
	    p->name);
	dash_redirect(req, where);

	return (1);
}

/* A new key: shown on this page once; or the form again. */
static int
dm_key_done(struct http_request *req, struct api_pending *p)
{
	struct dm_values	v;
	struct dbuf		d;
	char			field[64];

	dm_values(&v, p->body);
	dbuf_init(&d);
	dbuf_appendf(&d, "<section class=\"panel wide\" aria-labelledby="
	    "\"h-newkey\"><h2 id=\"h-newkey\">New API key</h2>");
	if (p->code[0] == '\0') {
		df_key_created(&d, df_value(v.pairs, v.n, "name"), p->secret);
	} else {
		df_key_form(&d, v.pairs, v.n, p->message,
		    json_err_field(p->message, field, sizeof(field)) ?
		    field : NULL, p->principal.csrf);
	}
	dbuf_appendf(&d, "<p><a href=\"/dashboard/keys\">All API keys</a>"
	    "</p></section>");
	dm_page(p, p->code[0] == '\0' ? 201 : p->status, "keys",
	    "API keys", &d);
	dbuf_free(&d);
	dm_values_free(&v);

	return (dm_finish(req, p));
}

static int
dm_revoked(struct http_request *req, struct api_pending *p)
{
	char		where[128];

	if (p->code[0] != '\0') {
		dm_message(p, p->status, "API keys", p->message);
		return (dm_finish(req, p));
	}
	(void)snprintf(where, sizeof(where), "/dashboard/keys?revoked=%s",
	    p->name);
	dash_redirect(req, where);

	return (1);
}

/*
 * A form field decoded in place: as http_argument_urldecode, but a
 * textarea's line breaks (a PEM's) and tabs pass; other control
 * characters are refused.
 */
static int
dm_urldecode(char *arg)
{
	char		*p, *in, h[3];
	long		v;

	for (p = in = arg; *p != '\0';) {
		if (*p == '+') {
			*in++ = ' ';
			p++;
			continue;
		}
		if (*p != '%' || !isxdigit((unsigned char)p[1]) ||
		    !isxdigit((unsigned char)p[2])) {
			if ((unsigned char)*p <= 0x1f || *p == 0x7f)
				return (KORE_RESULT_ERROR);
			*in++ = *p++;
			continue;
		}
		h[0] = p[1];
		h[1] = p[2];
		h[2] = '\0';
		v = strtol(h, NULL, 16);
		if ((v <= 0x1f && v != '\n' && v != '\r' && v != '\t') ||
		    v == 0x7f)
			return (KORE_RESULT_ERROR);
		*in++ = (char)v;
		p += 3;
	}
	*in = '\0';

	return (KORE_RESULT_OK);
}
