/*
 * session.c: the dashboard's sessions, their CSRF tokens and the login
 * form's fields.
 *
 * A dashboard session lives no longer than the credential it was made
 * from: every request of a session checks, in memory, that its key is
 * still there and unrevoked (revocations are in the shared region before
 * the revoking request is answered, and reach other instances by NOTIFY)
 * and that its JWT's exp has not passed. The session table is reloaded
 * at most every 250 ms; a cookie it does not know waits for a reload
 * that began after the request came, and is then remembered as unknown.
 */

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

#define SESSION_RELOAD_MS	250
#define SESSION_TICK_MS		250
#define SESSION_UNKNOWN		1024

struct session {
	char		hash[AUTH_HASH_LEN + 1];
	int		role;
	char		csrf[33];
	int64_t		expires_ms;
	int64_t		key_id;		/* 0: made from a JWT */
};

static struct {
	struct session		*table;
	size_t			count;
	int			loading;
	int			again;
	int64_t			started;
	struct kore_timer	*timer;
	struct api_table_wait	wait;	/* cookies: ended or nobody's */
	void			(*changed_cb)(void);
} sess;

static void	session_loaded(const struct store_rows *, void *, int);
static struct session	*session_find(const char *);
static struct session	*session_lookup(const char *);
static int	session_valid(const struct session *, int64_t);
static void	session_apply(const struct store_rows *);
static void	session_reload_due(void *, u_int64_t);
static int	session_known(const char *);
static void	session_tick(void *, u_int64_t);
static void	session_notified(const char *);
static void	session_changed(void);
static void	session_key_revoked(int64_t);

void
session_init(void)
{
	api_wait_init(&sess.wait, SESSION_UNKNOWN);
	cache_listen("kiln_sessions", session_notified);
	auth_cookie_resolver(session_request, session_alive);
	auth_revoke_watch(session_key_revoked);
	(void)kore_timer_add(session_tick, SESSION_TICK_MS, NULL, 0);
}

/* Key id was revoked: end its sessions now, before any reload. */
static void
session_key_revoked(int64_t id)
{
	size_t		i;

	for (i = 0; i < sess.count; i++) {
		if (sess.table[i].key_id == id)
			sess.table[i].expires_ms = 0;
	}
	session_changed();
}

/*
 * Reload the session table: at once, or 250 ms after the last reload
 * began, whoever asks (NOTIFY, unknown cookies) and however often.
 */
void
session_reload(void)
{
	int64_t		now, wait;

	if (sess.loading) {
		sess.again = 1;
		return;
	}
	if (sess.timer != NULL)
		return;

	now = isotime_now();
	wait = sess.started + SESSION_RELOAD_MS - now;
	if (wait > 0 && wait <= SESSION_RELOAD_MS) {
		sess.timer = kore_timer_add(session_reload_due, wait,
		    NULL, KORE_TIMER_ONESHOT);
		return;
	}

	sess.loading = 1;
	sess.started = now;
	store_sessions_load(session_loaded, NULL);
}

static void
session_reload_due(void *unused, u_int64_t unused2)
{
	sess.timer = NULL;
	session_reload();
}

/*
 * The dashboard session of the request's cookie. No cookie is fine
 * (anonymous); a cookie that names no live session is not.
 */
int
session_request(struct http_request *req, struct principal *p)
{
	struct session		*s;
	char			*cookie, hash[AUTH_HASH_LEN + 1];

	if (!session_cookie(req, SESSION_COOKIE, &cookie))
		return (KORE_RESULT_OK);

	auth_key_hash(cookie, hash);
	if ((s = session_find(hash)) == NULL)
		return (KORE_RESULT_ERROR);

	p->role = s->role;
	p->key_id = s->key_id;
	p->kind = PRINCIPAL_SESSION;
	(void)snprintf(p->id, sizeof(p->id), "session:%.12s", hash);
	(void)kore_strlcpy(p->session, hash, sizeof(p->session));
	(void)kore_strlcpy(p->csrf, s->csrf, sizeof(p->csrf));
	p->rate_key = hash_fnv1a_str(p->id);

	return (KORE_RESULT_OK);
}

/* A state-changing request of a session must carry its CSRF token. */
int
session_csrf_ok(struct http_request *req, const struct principal *p)
{
	const char	*v;
	char		form[64];

	if (p->kind != PRINCIPAL_SESSION)
		return (1);

	if (http_request_header(req, "x-csrf-token", &v) &&
	    strlen(v) == 32)
		return (CRYPTO_memcmp(v, p->csrf, 32) == 0);
	if (session_form_field(req, "csrf", form, sizeof(form)) &&
	    strlen(form) == 32)
		return (CRYPTO_memcmp(form, p->csrf, 32) == 0);

	return (0);
}

/*
 * One field of an application/x-www-form-urlencoded body (small bodies
 * only); the body is rewound for whoever reads it next.
 */
int
session_form_field(struct http_request *req, const char *name, char *out,
    size_t len)
{
	const char	*ctype;
	char		body[8192], *p, *pair, *eq;
	ssize_t		n;
	size_t		off;
	int		found;

	if (!http_request_header(req, "content-type", &ctype) ||
	    strncasecmp(ctype, "application/x-www-form-urlencoded", 33))
		return (0);

	off = 0;
	while (off < sizeof(body) - 1 &&
	    (n = http_body_read(req, body + off, sizeof(body) - 1 - off)) > 0)
		off += n;
	body[off] = '\0';
	(void)http_body_rewind(req);

	found = 0;
	for (p = body; !found && (pair = strsep(&p, "&")) != NULL;) {
		if ((eq = strchr(pair, '=')) == NULL)
			continue;
		*eq++ = '\0';
		if (strcmp(pair, name))
			continue;
		if (!http_argument_urldecode(eq) || strlen(eq) >= len)
			break;
		(void)kore_strlcpy(out, eq, len);
		found = 1;
	}
	OPENSSL_cleanse(body, sizeof(body));

	return (found);
}

/* len - 1 random hex characters. */
void
session_random_hex(char *out, size_t len)
{
	u_int8_t	rnd[64];
	size_t		i, n;

	n = (len - 1) / 2;
	if (n > sizeof(rnd) || RAND_bytes(rnd, n) != 1)
		fatal("session_random_hex");
	for (i = 0; i < n; i++)
		(void)snprintf(out + i * 2, 3, "%02x", rnd[i]);
	out[n * 2] = '\0';
	OPENSSL_cleanse(rnd, sizeof(rnd));
}

static void
session_loaded(const struct store_rows *rows, void *arg, int ok)
{
	sess.loading = 0;
	if (ok)
		session_apply(rows);
	api_wait_wake(&sess.wait, ok, sess.started, session_known);
	if (sess.again) {
		sess.again = 0;
		session_reload();
	}
}

/* Replace the session table with the rows of q_sessions_load. */
static void
session_apply(const struct store_rows *rows)
{
	const struct session_row	*r;
	size_t				i, n;

	n = rows->n;
	kore_free(sess.table);
	sess.table = n ? kore_calloc(n, sizeof(*sess.table)) : NULL;
	sess.count = n;

	for (i = 0; i < n; i++) {
		r = &rows->sessions[i];
		(void)kore_strlcpy(sess.table[i].hash, r->hash,
		    sizeof(sess.table[i].hash));
		sess.table[i].role = jwt_role_parse(r->role);
		(void)kore_strlcpy(sess.table[i].csrf, r->csrf,
		    sizeof(sess.table[i].csrf));
		sess.table[i].expires_ms = r->expires_ms;
		sess.table[i].key_id = r->key_id;
	}

	session_changed();
}

/* Does the session table know hash (a cookie's)? */
static int
session_known(const char *hash)
{
	return (session_lookup(hash) != NULL);
}

/* Put a request (p->name: its cookie's hash) to wait for the table. */
void
session_wait(struct api_pending *p)
{
	api_wait_add(&sess.wait, p);
	session_reload();
}

/*
 * The request's session cookie, when this worker cannot tell yet whether
 * it names a session (one made a moment ago elsewhere): hash gets its
 * hash (AUTH_HASH_LEN + 1). An Authorization header wins over a cookie.
 */
int
session_unsure(struct http_request *req, char *hash)
{
	const char	*v;
	char		*cookie;

	if (http_request_header(req, "authorization", &v))
		return (0);
	if (!session_cookie(req, SESSION_COOKIE, &cookie))
		return (0);
	auth_key_hash(cookie, hash);

	return (!api_wait_unknown(&sess.wait, hash) && !session_known(hash));
}

/*
 * A cookie of the request. Kore parses the header again on every call
 * and appends: once per request (a waiting request comes back often).
 */
int
session_cookie(struct http_request *req, const char *name, char **value)
{
	if (TAILQ_EMPTY(&req->req_cookies))
		http_populate_cookies(req);

	return (http_request_cookie(req, name, value));
}


/* A session this worker made: known at once, before any reload. */
void
session_add(const char *hash, int role, const char *csrf,
    int64_t expires_ms, int64_t key_id)
{
	struct session		*s;

	sess.table = kore_realloc(sess.table,
	    (sess.count + 1) * sizeof(*sess.table));
	s = &sess.table[sess.count++];
	memset(s, 0, sizeof(*s));
	(void)kore_strlcpy(s->hash, hash, sizeof(s->hash));
	(void)kore_strlcpy(s->csrf, csrf, sizeof(s->csrf));
	s->role = role;
	s->expires_ms = expires_ms;
	s->key_id = key_id;
}

/* The session of hash if it is live: unexpired, its credential valid. */
static struct session *
session_find(const char *hash)
{
	struct session		*s;

	/* Ended sessions stay ended, whatever a stale reload says. */
	if (api_wait_unknown(&sess.wait, hash) ||
	    (s = session_lookup(hash)) == NULL ||
	    !session_valid(s, isotime_now()))
		return (NULL);

	return (s);
}

static struct session *
session_lookup(const char *hash)
{
	size_t		i;

	for (i = 0; i < sess.count; i++) {
		if (CRYPTO_memcmp(sess.table[i].hash, hash,
		    AUTH_HASH_LEN) == 0)
			return (&sess.table[i]);
	}

	return (NULL);
}

/* A JWT session's expires_ms is no later than the JWT's exp. */
static int
session_valid(const struct session *s, int64_t now)
{
	if (s->expires_ms <= now)
		return (0);
	if (s->key_id != 0 && !auth_key_live(s->key_id))
		return (0);

	return (1);
}

/* Sockets of sessions that just ended (a JWT's exp) are closed. */
static void
session_tick(void *unused, u_int64_t unused2)
{
	session_changed();
}

int
session_alive(const char *hash)
{
	return (session_find(hash) != NULL);
}

int
session_role(const char *hash)
{
	struct session		*s;

	if ((s = session_find(hash)) == NULL)
		return (ROLE_NONE);
	return (s->role);
}

const char *
session_csrf(const char *hash)
{
	struct session		*s;

	if ((s = session_find(hash)) == NULL)
		return (NULL);
	return (s->csrf);
}

/* A session ended (logout here or elsewhere): it never comes back. */
void
session_forget(const char *hash)
{
	struct session		*s;

	if ((s = session_lookup(hash)) != NULL)
		s->expires_ms = 0;
	api_wait_remember(&sess.wait, hash);
	session_changed();
	auth_sessions_ended();
}

/* A payload of kiln_sessions: the hash of an ended session, or nothing. */
static void
session_notified(const char *hash)
{
	if (strlen(hash) == AUTH_HASH_LEN)
		session_forget(hash);
	else
		session_reload();
}

/* cb is told when sessions ended (logout, expiry, a revoked key). */
void
session_watch(void (*cb)(void))
{
	sess.changed_cb = cb;
}

static void
session_changed(void)
{
	if (sess.changed_cb != NULL)
		sess.changed_cb();
}
