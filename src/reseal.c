/*
 * reseal.c: after a master key rotation every secret and token sealed
 * under a retired key (KILN_MASTER_KEY_OLD), and every secret sealed
 * before secrets were bound to their origin, is sealed again under the
 * current key: all of them, the refresh token an upstream never rotates
 * and every connection's included, so the retired key can then be
 * dropped.
 *
 * One worker of each instance runs the pass in the background after the
 * start, with asynchronous store jobs, a batch of rows at a time. Each
 * write swaps a blob only if it is still the one read (store.c), so two
 * instances, a refresh or an admin change meanwhile do no harm; a pass
 * that made progress is followed by another until nothing is left that
 * a key here can open. What is left is counted for /health/detailed and
 * /metrics.
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

#define RESEAL_WORKER		1
#define RESEAL_DELAY_MS		500
#define RESEAL_RETRY_MS		5000
#define RESEAL_COLS		STORE_SEALED
#define RESEAL_TOKEN		3	/* not bound to an origin */

struct reseal_row {
	int64_t		id;
	char		*subject;
	char		*url;
	char		*old[RESEAL_COLS];
	char		*new[RESEAL_COLS];
};

static const char	*reseal_fields[RESEAL_COLS] = {
	"client_secret", "refresh_token", "password", "token",
	"tls_client_key"
};

static void	reseal_start(void *, u_int64_t);
static void	reseal_later(void);
static void	reseal_scanned(const struct store_rows *, void *, int);
static void	reseal_row(const struct sealed_row *, struct reseal_row *);
static char	*reseal_blob(const char *, const char *, const char *, int,
		    const char *);
static void	reseal_next(void);
static void	reseal_written(const struct store_rows *, void *, int);
static void	reseal_counted(const struct store_rows *, void *, int);
static void	reseal_rows_free(void);
static void	reseal_sync_row(void *, const char *, const char *,
		    const char *, const char *const *, char **);
static int	reseal_opens(const char *, const char *, const char *, int,
		    const char *);
static int	reseal_field(const char *, int, char *, size_t);
static u_int64_t	reseal_count(int64_t);

static struct {
	int64_t			after;
	char			after_subject[KILN_SUBJECT_MAX + 1];
	struct reseal_row	*rows;
	int			nrows;
	int			next;
	u_int64_t		resealed;
	u_int64_t		unopened;
} pass;

void
reseal_init(void)
{
	if (worker->id != RESEAL_WORKER)
		return;

	(void)kore_timer_add(reseal_start, RESEAL_DELAY_MS, NULL,
	    KORE_TIMER_ONESHOT);
}

/* The "secrets" check of /health/detailed. */
void
reseal_health(void *g)
{
	const struct shared	*sh = shared_get();
	const char		*status, *state;

	if (sh->reseal_retired == 0 && sh->reseal_unbound == 0)
		status = "healthy";
	else if (sh->reseal_state != RESEAL_DONE)
		status = "rotating";
	else
		status = "degraded";

	if (sh->reseal_state == RESEAL_DONE)
		state = "done";
	else if (sh->reseal_state == RESEAL_RUNNING)
		state = "running";
	else
		state = "pending";

	yajl_gen_string(g, (const unsigned char *)"secrets", 7);
	yajl_gen_map_open(g);
	json_kv_str(g, "status", status);
	json_kv_str(g, "pass", state);
	json_kv_str(g, "key_id", seal_key_id());
	if (sh->reseal_retired < 0) {
		json_kv_null(g, "rows_under_retired_keys");
		json_kv_null(g, "rows_not_origin_bound");
	} else {
		json_kv_int(g, "rows_under_retired_keys", sh->reseal_retired);
		json_kv_int(g, "rows_not_origin_bound", sh->reseal_unbound);
	}
	yajl_gen_map_close(g);
}

void
reseal_metrics(struct kore_buf *b)
{
	const struct shared	*sh = shared_get();

	kore_buf_appendf(b, "# HELP kiln_sealed_rows_retired_key Token "
	    "sources and connections with a secret or token still sealed "
	    "under a retired master key (-1: not counted yet).\n"
	    "# TYPE kiln_sealed_rows_retired_key gauge\n"
	    "kiln_sealed_rows_retired_key %lld\n",
	    (long long)sh->reseal_retired);
	kore_buf_appendf(b, "# HELP kiln_sealed_rows_unbound Token sources "
	    "with a secret not yet bound to its origin (-1: not counted "
	    "yet).\n# TYPE kiln_sealed_rows_unbound gauge\n"
	    "kiln_sealed_rows_unbound %lld\n",
	    (long long)sh->reseal_unbound);
}

static void
reseal_start(void *arg, u_int64_t now)
{
	const struct shared	*sh = shared_get();

	pass.after = 0;
	pass.after_subject[0] = '\0';
	pass.resealed = 0;
	pass.unopened = 0;
	shared_reseal(RESEAL_RUNNING, sh->reseal_retired, sh->reseal_unbound);
	store_reseal_scan(pass.after, pass.after_subject, reseal_scanned,
	    NULL);
}

static void
reseal_later(void)
{
	(void)kore_timer_add(reseal_start, RESEAL_RETRY_MS, NULL,
	    KORE_TIMER_ONESHOT);
}

static void
reseal_scanned(const struct store_rows *rows, void *arg, int ok)
{
	int		i, n;

	if (!ok) {
		reseal_later();
		return;
	}

	if ((n = (int)rows->n) == 0) {
		store_reseal_count(reseal_counted, NULL);
		return;
	}

	pass.rows = kore_calloc(n, sizeof(*pass.rows));
	pass.nrows = n;
	pass.next = 0;
	for (i = 0; i < n; i++)
		reseal_row(&rows->sealed[i], &pass.rows[i]);
	pass.after = pass.rows[n - 1].id;
	(void)kore_strlcpy(pass.after_subject, pass.rows[n - 1].subject,
	    sizeof(pass.after_subject));

	reseal_next();
}

/* Open what is not under the current key, and seal it again. */
static void
reseal_row(const struct sealed_row *s, struct reseal_row *r)
{
	const char	*name, *blob;
	int		c;
	char		origin[SOURCE_ORIGIN_MAX];

	r->id = s->id;
	name = s->name;
	r->subject = kore_strdup(s->subject);
	r->url = kore_strdup(s->url);
	source_origin(r->url, origin, sizeof(origin));

	for (c = 0; c < RESEAL_COLS; c++) {
		if ((blob = s->blob[c]) == NULL)
			continue;
		if (seal_current(blob, c != RESEAL_TOKEN))
			continue;
		r->new[c] = reseal_blob(name, s->subject, blob, c, origin);
		if (r->new[c] == NULL) {
			pass.unopened++;
			log_kv(LOG_LVL_WARN, "sealed value opens with no key "
			    "held here", "token", name, "subject", s->subject,
			    "field", reseal_fields[c], NULL);
			continue;
		}
		r->old[c] = kore_strdup(blob);
	}
}

/* The sealed field of column c of subject's row: bound to the subject. */
static int
reseal_field(const char *subject, int c, char *out, size_t len)
{
	return (conn_field(reseal_fields[c], subject, out, len));
}

/* blob of column c sealed again under the current key, or NULL. */
static char *
reseal_blob(const char *name, const char *subject, const char *blob, int c,
    const char *origin)
{
	size_t		len;
	int		ok;
	char		*plain, *out, field[32 + KILN_SUBJECT_MAX];

	if (!reseal_field(subject, c, field, sizeof(field)))
		return (NULL);
	if (c == RESEAL_TOKEN)
		ok = seal_open(name, field, blob, &plain, &len);
	else
		ok = seal_open_for(name, field, origin, blob, &plain, &len);
	if (!ok)
		return (NULL);

	if (c == RESEAL_TOKEN)
		ok = seal_seal(name, field, plain, len, &out);
	else
		ok = seal_seal_for(name, field, origin, plain, len, &out);
	OPENSSL_cleanse(plain, len);
	free(plain);
	if (!ok)
		fatal("seal_seal failed");

	return (out);
}

static void
reseal_next(void)
{
	struct reseal_row	*r;
	int			c;

	for (; pass.next < pass.nrows; pass.next++) {
		r = &pass.rows[pass.next];
		for (c = 0; c < RESEAL_COLS && r->new[c] == NULL; c++)
			;
		if (c < RESEAL_COLS)
			break;
	}

	if (pass.next == pass.nrows) {
		reseal_rows_free();
		store_reseal_scan(pass.after, pass.after_subject,
		    reseal_scanned, NULL);
		return;
	}

	r = &pass.rows[pass.next];
	store_reseal_write(r->id, r->subject, r->url, r->old, r->new,
	    reseal_written, NULL);
}

static void
reseal_written(const struct store_rows *rows, void *arg, int ok)
{
	if (!ok) {
		reseal_rows_free();
		reseal_later();
		return;
	}

	pass.resealed += reseal_count(rows->num[0]) +
	    reseal_count(rows->num[1]);
	pass.next++;
	reseal_next();
}

static void
reseal_counted(const struct store_rows *rows, void *arg, int ok)
{
	int64_t		retired, unbound;

	if (!ok) {
		reseal_later();
		return;
	}

	retired = (int64_t)reseal_count(rows->num[0]);
	unbound = (int64_t)reseal_count(rows->num[1]);
	shared_reseal(RESEAL_DONE, retired, unbound);
	log_kv(retired || unbound ? LOG_LVL_WARN : LOG_LVL_INFO,
	    "re-seal pass done", "#values_resealed", (int64_t)pass.resealed,
	    "#unopened", (int64_t)pass.unopened, "#rows_under_retired_keys",
	    retired, "#rows_not_origin_bound", unbound, NULL);

	/* Progress, yet rows left: a write lost a race; go again. */
	if ((retired || unbound) && pass.resealed > 0)
		reseal_later();
}

static void
reseal_rows_free(void)
{
	int		i, c;

	for (i = 0; i < pass.nrows; i++) {
		kore_free(pass.rows[i].subject);
		kore_free(pass.rows[i].url);
		for (c = 0; c < RESEAL_COLS; c++) {
			kore_free(pass.rows[i].old[c]);
			seal_wipe(pass.rows[i].new[c]);
		}
	}
	kore_free(pass.rows);
	pass.rows = NULL;
	pass.nrows = 0;
	pass.next = 0;
}

/*
 * kiln reseal (write) and kiln check (not write), in the parent before
 * Kore starts: the same queries and the same sealing as the pass above,
 * driven synchronously over every stored row.
 */
int
reseal_sync(int write, struct reseal_tally *t, char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	t->write = write;

	return (store_reseal_sync(!write, reseal_sync_row, t, &t->written,
	    err, errlen));
}

static void
reseal_sync_row(void *arg, const char *name, const char *subject,
    const char *url, const char *const *blobs, char **fresh)
{
	struct reseal_tally	*t = arg;
	int			c, current;
	char			origin[SOURCE_ORIGIN_MAX];

	t->rows++;
	source_origin(url, origin, sizeof(origin));
	for (c = 0; c < RESEAL_COLS; c++) {
		if (blobs[c] == NULL || *blobs[c] == '\0')
			continue;
		t->values++;
		current = seal_current(blobs[c], c != RESEAL_TOKEN);
		if (!current)
			t->stale++;
		if (!t->write) {
			if (!reseal_opens(name, subject, blobs[c], c,
			    origin)) {
				t->unopened++;
				log_kv(LOG_LVL_WARN, "sealed value opens with "
				    "no key held here", "token", name,
				    "subject", subject, "field",
				    reseal_fields[c], NULL);
			}
			continue;
		}
		if (current)
			continue;
		if ((fresh[c] = reseal_blob(name, subject, blobs[c], c,
		    origin)) == NULL) {
			t->unopened++;
			log_kv(LOG_LVL_WARN, "sealed value opens with no key "
			    "held here", "token", name, "subject", subject,
			    "field", reseal_fields[c], NULL);
		}
	}
}

static int
reseal_opens(const char *name, const char *subject, const char *blob, int c,
    const char *origin)
{
	size_t		len;
	int		ok;
	char		*plain, field[32 + KILN_SUBJECT_MAX];

	if (!reseal_field(subject, c, field, sizeof(field)))
		return (0);
	if (c == RESEAL_TOKEN)
		ok = seal_open(name, field, blob, &plain, &len);
	else
		ok = seal_open_for(name, field, origin, blob, &plain, &len);
	if (ok) {
		OPENSSL_cleanse(plain, len);
		free(plain);
	}

	return (ok);
}

/* A count of a row, 0 when NULL. */
static u_int64_t
reseal_count(int64_t v)
{
	return (v == STORE_NULL || v < 0 ? 0 : (u_int64_t)v);
}
