/*
 * api_audit.c: the audit log over the admin API (admins only).
 *
 *	GET /api/audit?limit=&before=&action=&principal=&target=&since=&until=
 *
 * Newest first, a page at a time: next_before is the id to pass as
 * before for the next page (null on the last one). The rows are written
 * by the store in the statement of each change (migration 009); none
 * holds a secret: principals are ids, fields are names.
 */

#include <sys/types.h>

#include <stdio.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

static void	audit_listed(struct api_pending *, const struct store_rows *,
		    int);
static void	audit_json_row(void *, const struct audit_row *);
static void	audit_json_str(void *, const char *, const char *);
static void	audit_json_list(void *, const char *, const char *);

int
api_audit_list(struct http_request *req, struct api_state *st)
{
	struct api_pending	*p;
	struct audit_query	q;
	char			err[KILN_ERR_MAX];

	if (!audit_query_parse(req->query_string, &q, err, sizeof(err))) {
		api_error(req, 400, "bad_request", err);
		return (KORE_RESULT_OK);
	}

	p = api_pending_start(req, st, audit_listed);
	store_audit_list(&q, api_pending_cb, p);

	return (KORE_RESULT_RETRY);
}

/* A full page (as many rows as the limit) may have a next one. */
static void
audit_listed(struct api_pending *p, const struct store_rows *rows, int ok)
{
	struct audit_query	q;
	void			*g;
	size_t			i;
	char			err[KILN_ERR_MAX];

	if (!ok) {
		api_pending_fail(p, 503, "database_unavailable",
		    "the database did not answer; try again");
		return;
	}

	g = p->g = api_json_begin();
	p->status = 200;
	json_kv_bool(g, "success", 1);
	yajl_gen_string(g, (const unsigned char *)"data", 4);
	yajl_gen_map_open(g);
	yajl_gen_string(g, (const unsigned char *)"events", 6);
	yajl_gen_array_open(g);
	for (i = 0; i < rows->n; i++)
		audit_json_row(g, &rows->audit[i]);
	yajl_gen_array_close(g);
	/* The query was checked before the listing started. */
	(void)audit_query_parse(p->req->query_string, &q, err, sizeof(err));
	if (rows->n > 0 && (int64_t)rows->n == q.limit)
		json_kv_int(g, "next_before", rows->audit[rows->n - 1].id);
	else
		json_kv_null(g, "next_before");
	yajl_gen_map_close(g);
	p->done = 1;
}

static void
audit_json_row(void *g, const struct audit_row *a)
{
	char		at[ISOTIME_LEN];

	isotime_format(a->at_ms, at, sizeof(at));
	yajl_gen_map_open(g);
	json_kv_int(g, "id", a->id);
	json_kv_str(g, "at", at);
	audit_json_str(g, "principal_kind", a->principal_kind);
	audit_json_str(g, "principal", a->principal);
	audit_json_str(g, "action", a->action);
	audit_json_str(g, "target", a->target);
	audit_json_list(g, "fields", a->fields);
	audit_json_str(g, "address", a->address);
	audit_json_str(g, "request_id", a->request_id);
	audit_json_str(g, "outcome", a->outcome);
	yajl_gen_map_close(g);
}

static void
audit_json_str(void *g, const char *key, const char *v)
{
	if (v == NULL)
		json_kv_null(g, key);
	else
		json_kv_str(g, key, v);
}

/* "a,b" as ["a","b"]; "" as []. */
static void
audit_json_list(void *g, const char *key, const char *v)
{
	const char	*s, *e;

	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	yajl_gen_array_open(g);
	for (s = v; s != NULL && *s != '\0'; s = *e ? e + 1 : e) {
		e = s + strcspn(s, ",");
		if (e > s)
			yajl_gen_string(g, (const unsigned char *)s, e - s);
	}
	yajl_gen_array_close(g);
}
