/*
 * auth.c: who is calling, and may they.
 *
 * A caller presents "Authorization: Bearer <credential>": a JWT (HS256,
 * see jwt.c) or an API key. API keys are stored as SHA-256 hashes only;
 * each worker keeps the table of key hashes in memory (reloaded on
 * NOTIFY kiln_keys), so checking a key costs no database round trip;
 * the sources a client key is scoped to are in that table too.
 * Rate limits are token buckets per principal in the region shared by
 * the workers of the instance (shared.c).
 *
 * A dashboard session lives no longer than the credential it was made
 * from: every request of a session checks, in memory, that its key is
 * still there and unrevoked (revocations are in the shared region before
 * the revoking request is answered, and reach other instances by NOTIFY)
 * and that its JWT's exp has not passed. The session table is reloaded
 * at most once a second; a cookie it does not know waits for a reload
 * that began after the request came, and is then remembered as unknown.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

#define JWT_LEEWAY_MS		30000
#define KEY_PREFIX		"kiln_"
#define SESSION_RELOAD_MS	1000
#define SESSION_TICK_MS		250
#define SESSION_UNKNOWN		1024
#define LOGIN_RATE_SALT		0x6c6f67696e000001ULL

struct auth_key {
	int64_t		id;
	int		role;
	char		hash[AUTH_HASH_LEN + 1];
	char		*sources;	/* ",a,b,", NULL: every source */
};

struct auth_session {
	char		hash[AUTH_HASH_LEN + 1];
	int		role;
	char		csrf[33];
	int64_t		expires_ms;
	int64_t		key_id;		/* 0: made from a JWT */
};

/* A dashboard request whose cookie waits for a fresher session table. */
struct auth_waiter {
	struct api_pending		*p;
	int64_t				since;
	TAILQ_ENTRY(auth_waiter)	list;
};

static struct {
	struct auth_key		*keys;
	size_t			count;
	int			loading;
	int			loaded;
	int			again;
	struct auth_session	*sessions;
	size_t			nsessions;
	int			sessions_loading;
	int			sessions_again;
	int64_t			sessions_started;
	struct kore_timer	*sessions_timer;
	TAILQ_HEAD(, auth_waiter)	waiters;
	char			unknown[SESSION_UNKNOWN][AUTH_HASH_LEN + 1];
	void			(*sessions_cb)(void);
} auth;

static int	auth_jwt(const char *, struct principal *);
static int	auth_key(const char *, struct principal *);
static void	auth_keys_loaded(struct kore_pgsql *, void *, int);
static void	auth_keys_free(void);
static struct auth_key	*auth_key_find(int64_t);
static void	auth_sessions_loaded(struct kore_pgsql *, void *, int);
static struct auth_session	*auth_session_find(const char *);
static struct auth_session	*auth_session_lookup(const char *);
static int	auth_session_valid(const struct auth_session *, int64_t);
static int	auth_key_live(int64_t);
static void	auth_sessions_apply(struct kore_pgsql *);
static void	auth_sessions_due(void *, u_int64_t);
static void	auth_sessions_wake(int);
static void	auth_session_tick(void *, u_int64_t);
static char	*auth_unknown_slot(const char *);
static u_int64_t	auth_addr_key(struct http_request *);
static int	auth_cidr_match(const struct cidr *, int, const u_int8_t *);
static void	auth_keys_notified(const char *);
static void	auth_sessions_notified(const char *);
static void	auth_sessions_changed(void);

/* The SHA-256 of an API key, as 64 hex characters. */
void
auth_key_hash(const char *key, char *out)
{
	if (!seal_sha256_hex(key, strlen(key), out))
		fatal("EVP_Digest");
}

/* A new key: "kiln_" + 43 characters of base64url (256 bits). */
char *
auth_key_generate(void)
{
	u_int8_t	rnd[32];
	char		*b64, *key;
	size_t		len;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		fatal("RAND_bytes");
	if (!kore_base64url_encode(rnd, sizeof(rnd), &b64,
	    KORE_BASE64_RAW))
		fatal("base64url");
	OPENSSL_cleanse(rnd, sizeof(rnd));

	len = strlen(KEY_PREFIX) + strlen(b64) + 1;
	key = kore_malloc(len);
	(void)snprintf(key, len, "%s%s", KEY_PREFIX, b64);
	OPENSSL_cleanse(b64, strlen(b64));
	kore_free(b64);

	return (key);
}

void
auth_init(void)
{
	TAILQ_INIT(&auth.waiters);
	cache_listen("kiln_keys", auth_keys_notified);
	cache_listen("kiln_sessions", auth_sessions_notified);
	(void)kore_timer_add(auth_session_tick, SESSION_TICK_MS, NULL, 0);
}

/* A reload asked for while one runs follows it: that one may be stale. */
void
auth_keys_reload(void)
{
	if (auth.loading) {
		auth.again = 1;
		return;
	}
	auth.loading = 1;
	store_keys_load(auth_keys_loaded, NULL);
}

/*
 * Key id was revoked (here, or by NOTIFY from anywhere): refuse it and
 * end its sessions now, before any reload.
 */
void
auth_key_revoked(int64_t id)
{
	size_t		i;

	shared_key_revoke(id);
	for (i = 0; i < auth.nsessions; i++) {
		if (auth.sessions[i].key_id == id)
			auth.sessions[i].expires_ms = 0;
	}
	auth_sessions_changed();
}

/*
 * Who the request is from. KORE_RESULT_ERROR when a credential was
 * presented but is not valid (the caller answers 401); no credential
 * at all gives the anonymous principal of the peer address.
 */
int
auth_request(struct http_request *req, struct principal *p)
{
	const char	*v;

	memset(p, 0, sizeof(*p));
	p->role = ROLE_NONE;
	p->rate_key = auth_addr_key(req);
	(void)snprintf(p->id, sizeof(p->id), "anonymous");

	if (!http_request_header(req, "authorization", &v))
		return (auth_session(req, p));
	if (strncasecmp(v, "Bearer ", 7) || v[7] == '\0')
		return (KORE_RESULT_ERROR);
	v += 7;

	/* A JWT has exactly two dots; an API key has none. */
	if (strchr(v, '.') != NULL)
		return (auth_jwt(v, p));

	return (auth_key(v, p));
}

/* May p use a route that needs role need? Answers 401/403 itself. */
int
auth_allow(struct http_request *req, const struct principal *p, int need)
{
	if (p->role == ROLE_NONE) {
		http_response_header(req, "WWW-Authenticate", "Bearer");
		api_error(req, 401, "unauthorized",
		    "missing or invalid credentials");
		return (KORE_RESULT_ERROR);
	}
	if (p->role < need) {
		api_error(req, 403, "forbidden", "this role may not do that");
		return (KORE_RESULT_ERROR);
	}

	return (KORE_RESULT_OK);
}

/*
 * One request of p against its bucket. Sets the X-RateLimit-* headers;
 * answers 429 itself and returns KORE_RESULT_ERROR when over the limit.
 */
int
auth_rate(struct http_request *req, const struct principal *p, int public)
{
	u_int32_t	limit, remaining, reset;
	char		buf[24];

	if (public) {
		if (kiln_config.rate_public == 0)
			return (KORE_RESULT_OK);
		limit = kiln_config.rate_public;
	} else {
		switch (p->role) {
		case ROLE_ADMIN:
			limit = kiln_config.rate_admin;
			break;
		case ROLE_OPERATOR:
			limit = kiln_config.rate_operator;
			break;
		case ROLE_VIEWER:
		case ROLE_CLIENT:
			limit = kiln_config.rate_viewer;
			break;
		default:
			limit = kiln_config.rate_anonymous;
			break;
		}
	}

	if (shared_rate_take(p->rate_key ^ (public ? 0x9e3779b97f4a7c15ULL :
	    0), limit, isotime_now(), &remaining, &reset)) {
		(void)snprintf(buf, sizeof(buf), "%u", limit);
		http_response_header(req, "X-RateLimit-Limit", buf);
		(void)snprintf(buf, sizeof(buf), "%u", remaining);
		http_response_header(req, "X-RateLimit-Remaining", buf);
		(void)snprintf(buf, sizeof(buf), "%u", reset);
		http_response_header(req, "X-RateLimit-Reset", buf);
		return (KORE_RESULT_OK);
	}

	(void)snprintf(buf, sizeof(buf), "%u", limit);
	http_response_header(req, "X-RateLimit-Limit", buf);
	http_response_header(req, "X-RateLimit-Remaining", "0");
	(void)snprintf(buf, sizeof(buf), "%u", reset ? reset : 1);
	http_response_header(req, "X-RateLimit-Reset", buf);
	http_response_header(req, "Retry-After", buf);
	api_error(req, 429, "rate_limited", "too many requests");

	return (KORE_RESULT_ERROR);
}

/* The optional CIDR allow-list of the public endpoints. */
int
auth_public_allowed(struct http_request *req)
{
	struct connection	*c = req->owner;
	const u_int8_t		*addr, *v4;
	size_t			i;
	int			family;

	if (kiln_config.allow_count == 0)
		return (1);

	if (c->family == AF_INET)
		addr = (const u_int8_t *)&c->addr.ipv4.sin_addr;
	else if (c->family == AF_INET6)
		addr = (const u_int8_t *)&c->addr.ipv6.sin6_addr;
	else
		return (0);

	/* An IPv4 client of a `::` listener is ::ffff:a.b.c.d. */
	family = c->family;
	v4 = addr;
	(void)addr_unmap(&family, &v4);
	for (i = 0; i < kiln_config.allow_count; i++) {
		if (auth_cidr_match(&kiln_config.allow[i], c->family, addr) ||
		    auth_cidr_match(&kiln_config.allow[i], family, v4))
			return (1);
	}

	return (0);
}

static int
auth_jwt(const char *token, struct principal *p)
{
	struct jwt_check	chk;
	struct jwt_claims	claims;
	char			err[KILN_ERR_MAX];

	if (kiln_config.jwt_secret == NULL)
		return (KORE_RESULT_ERROR);

	memset(&chk, 0, sizeof(chk));
	chk.secret = (const u_int8_t *)kiln_config.jwt_secret;
	chk.secret_len = strlen(kiln_config.jwt_secret);
	chk.issuer = kiln_config.jwt_issuer;
	chk.audience = kiln_config.jwt_audience;
	chk.now_ms = isotime_now();
	chk.leeway_ms = JWT_LEEWAY_MS;

	if (!jwt_verify(token, &chk, &claims, err, sizeof(err))) {
		log_kv(LOG_LVL_INFO, "bearer JWT refused", "reason", err, NULL);
		return (KORE_RESULT_ERROR);
	}

	p->role = claims.role;
	p->kind = PRINCIPAL_JWT;
	p->expires_ms = claims.expires_ms;
	(void)kore_strlcpy(p->jti, claims.id, sizeof(p->jti));
	(void)kore_strlcpy(p->subject, claims.subject, sizeof(p->subject));
	(void)snprintf(p->id, sizeof(p->id), "jwt:%.60s", claims.subject);
	p->rate_key = hash_fnv1a_str(p->id);

	return (KORE_RESULT_OK);
}

static int
auth_key(const char *key, struct principal *p)
{
	size_t		i;
	int		found;
	char		hash[AUTH_HASH_LEN + 1];

	auth_key_hash(key, hash);

	found = -1;
	for (i = 0; i < auth.count; i++) {
		if (CRYPTO_memcmp(auth.keys[i].hash, hash,
		    AUTH_HASH_LEN) == 0)
			found = (int)i;
	}
	if (found == -1 || shared_key_revoked(auth.keys[found].id))
		return (KORE_RESULT_ERROR);

	p->role = auth.keys[found].role;
	p->kind = PRINCIPAL_KEY;
	p->key_id = auth.keys[found].id;
	(void)snprintf(p->id, sizeof(p->id), "key:%lld",
	    (long long)auth.keys[found].id);
	p->rate_key = hash_fnv1a_str(p->id);

	return (KORE_RESULT_OK);
}

static void
auth_keys_loaded(struct kore_pgsql *sql, void *arg, int ok)
{
	size_t		i, n, len;

	auth.loading = 0;
	if (auth.again) {
		auth.again = 0;
		auth_keys_reload();
	}
	if (!ok)
		return;

	auth.loaded = 1;
	n = kore_pgsql_ntuples(sql);
	auth_keys_free();
	auth.keys = n ? kore_calloc(n, sizeof(*auth.keys)) : NULL;
	auth.count = n;

	for (i = 0; i < n; i++) {
		auth.keys[i].id = strtoll(kore_pgsql_getvalue(sql, i, 0),
		    NULL, 10);
		auth.keys[i].role = jwt_role_parse(kore_pgsql_getvalue(sql,
		    i, 1));
		(void)kore_strlcpy(auth.keys[i].hash,
		    kore_pgsql_getvalue(sql, i, 2), sizeof(auth.keys[i].hash));
		if (PQgetisnull(sql->result, i, 3))
			continue;
		len = kore_pgsql_getlength(sql, i, 3) + 3;
		auth.keys[i].sources = kore_malloc(len);
		(void)snprintf(auth.keys[i].sources, len, ",%s,",
		    kore_pgsql_getvalue(sql, i, 3));
	}
}

static void
auth_keys_free(void)
{
	size_t		i;

	for (i = 0; i < auth.count; i++)
		kore_free(auth.keys[i].sources);
	kore_free(auth.keys);
	auth.keys = NULL;
	auth.count = 0;
}

static struct auth_key *
auth_key_find(int64_t id)
{
	size_t		i;

	for (i = 0; i < auth.count; i++) {
		if (auth.keys[i].id == id)
			return (&auth.keys[i]);
	}

	return (NULL);
}

/*
 * May p read the token of source name? Only client keys are scoped; a
 * key revoked since it was checked reads nothing.
 */
int
auth_key_scope_allows(const struct principal *p, const char *name)
{
	struct auth_key	*k;
	char		needle[KILN_NAME_MAX + 3];

	if (p->kind != PRINCIPAL_KEY)
		return (1);
	if ((k = auth_key_find(p->key_id)) == NULL)
		return (0);
	if (k->sources == NULL)
		return (1);

	(void)snprintf(needle, sizeof(needle), ",%s,", name);

	return (strstr(k->sources, needle) != NULL);
}

static u_int64_t
auth_addr_key(struct http_request *req)
{
	struct connection	*c = req->owner;

	if (c->family == AF_INET)
		return (addr_rate_key(AF_INET,
		    (const u_int8_t *)&c->addr.ipv4.sin_addr));
	if (c->family == AF_INET6)
		return (addr_rate_key(AF_INET6,
		    (const u_int8_t *)&c->addr.ipv6.sin6_addr));

	return (1);
}

static int
auth_cidr_match(const struct cidr *r, int family, const u_int8_t *addr)
{
	int		full, rest;

	if (r->family != family)
		return (0);

	full = r->bits / 8;
	rest = r->bits % 8;
	if (memcmp(r->addr, addr, full))
		return (0);
	if (rest == 0)
		return (1);

	return (((r->addr[full] ^ addr[full]) & (0xff << (8 - rest))) == 0);
}

/*
 * Reload the session table: at once, or a second after the last reload
 * began, whoever asks (NOTIFY, unknown cookies) and however often.
 */
void
auth_sessions_reload(void)
{
	int64_t		now, wait;

	if (auth.sessions_loading) {
		auth.sessions_again = 1;
		return;
	}
	if (auth.sessions_timer != NULL)
		return;

	now = isotime_now();
	wait = auth.sessions_started + SESSION_RELOAD_MS - now;
	if (wait > 0 && wait <= SESSION_RELOAD_MS) {
		auth.sessions_timer = kore_timer_add(auth_sessions_due, wait,
		    NULL, KORE_TIMER_ONESHOT);
		return;
	}

	auth.sessions_loading = 1;
	auth.sessions_started = now;
	store_sessions_load(auth_sessions_loaded, NULL);
}

static void
auth_sessions_due(void *unused, u_int64_t unused2)
{
	auth.sessions_timer = NULL;
	auth_sessions_reload();
}

/*
 * The dashboard session of the request's cookie. No cookie is fine
 * (anonymous); a cookie that names no live session is not.
 */
int
auth_session(struct http_request *req, struct principal *p)
{
	struct auth_session	*s;
	char			*cookie, hash[AUTH_HASH_LEN + 1];

	http_populate_cookies(req);
	if (!http_request_cookie(req, SESSION_COOKIE, &cookie))
		return (KORE_RESULT_OK);

	auth_key_hash(cookie, hash);
	if ((s = auth_session_find(hash)) == NULL)
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
auth_csrf_ok(struct http_request *req, const struct principal *p)
{
	const char	*v;
	char		form[64];

	if (p->kind != PRINCIPAL_SESSION)
		return (1);

	if (http_request_header(req, "x-csrf-token", &v) &&
	    strlen(v) == 32)
		return (CRYPTO_memcmp(v, p->csrf, 32) == 0);
	if (auth_form_field(req, "csrf", form, sizeof(form)) &&
	    strlen(form) == 32)
		return (CRYPTO_memcmp(form, p->csrf, 32) == 0);

	return (0);
}

/*
 * One field of an application/x-www-form-urlencoded body (small bodies
 * only); the body is rewound for whoever reads it next.
 */
int
auth_form_field(struct http_request *req, const char *name, char *out,
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
auth_random_hex(char *out, size_t len)
{
	u_int8_t	rnd[64];
	size_t		i, n;

	n = (len - 1) / 2;
	if (n > sizeof(rnd) || RAND_bytes(rnd, n) != 1)
		fatal("auth_random_hex");
	for (i = 0; i < n; i++)
		(void)snprintf(out + i * 2, 3, "%02x", rnd[i]);
	out[n * 2] = '\0';
	OPENSSL_cleanse(rnd, sizeof(rnd));
}

static void
auth_sessions_loaded(struct kore_pgsql *sql, void *arg, int ok)
{
	auth.sessions_loading = 0;
	if (ok)
		auth_sessions_apply(sql);
	auth_sessions_wake(ok);
	if (auth.sessions_again) {
		auth.sessions_again = 0;
		auth_sessions_reload();
	}
}

/* Replace the session table with the rows of q_sessions_load. */
static void
auth_sessions_apply(struct kore_pgsql *sql)
{
	size_t		i, n;

	n = kore_pgsql_ntuples(sql);
	kore_free(auth.sessions);
	auth.sessions = n ? kore_calloc(n, sizeof(*auth.sessions)) : NULL;
	auth.nsessions = n;

	for (i = 0; i < n; i++) {
		(void)kore_strlcpy(auth.sessions[i].hash,
		    kore_pgsql_getvalue(sql, i, 0),
		    sizeof(auth.sessions[i].hash));
		auth.sessions[i].role = jwt_role_parse(
		    kore_pgsql_getvalue(sql, i, 1));
		(void)kore_strlcpy(auth.sessions[i].csrf,
		    kore_pgsql_getvalue(sql, i, 2),
		    sizeof(auth.sessions[i].csrf));
		auth.sessions[i].expires_ms = strtoll(
		    kore_pgsql_getvalue(sql, i, 3), NULL, 10);
		auth.sessions[i].key_id = strtoll(
		    kore_pgsql_getvalue(sql, i, 4), NULL, 10);
	}

	auth_sessions_changed();
}

/*
 * Wake the requests waiting for a table loaded after they came (or all
 * of them when the load failed). A cookie still unknown to such a table
 * names no session: it is remembered, and costs no reload again.
 */
static void
auth_sessions_wake(int ok)
{
	struct auth_waiter	*w, *next;
	struct api_pending	*p;

	for (w = TAILQ_FIRST(&auth.waiters); w != NULL; w = next) {
		next = TAILQ_NEXT(w, list);
		if (ok && w->since > auth.sessions_started)
			continue;
		TAILQ_REMOVE(&auth.waiters, w, list);
		p = w->p;
		kore_free(w);
		if (ok && auth_session_lookup(p->name) == NULL)
			(void)kore_strlcpy(auth_unknown_slot(p->name),
			    p->name, AUTH_HASH_LEN + 1);
		if (p->req == NULL) {
			api_pending_free(p);
			continue;
		}
		p->resume = 1;
		p->done = 1;
		http_request_wakeup(p->req);
	}
}

/* Put a dashboard request (p->name: its cookie's hash) to wait. */
void
auth_session_wait(struct api_pending *p)
{
	struct auth_waiter	*w;

	p->render = NULL;
	w = kore_calloc(1, sizeof(*w));
	w->p = p;
	w->since = isotime_now();
	TAILQ_INSERT_TAIL(&auth.waiters, w, list);
	auth_sessions_reload();
}

/* LIVE, NONE (ended, or known to be no session), or UNSURE. */
int
auth_session_state(const char *hash)
{
	struct auth_session	*s;

	if (!strcmp(auth_unknown_slot(hash), hash))
		return (AUTH_SESSION_NONE);
	if ((s = auth_session_lookup(hash)) != NULL)
		return (auth_session_valid(s, isotime_now()) ?
		    AUTH_SESSION_LIVE : AUTH_SESSION_NONE);

	return (AUTH_SESSION_UNSURE);
}

/* A session this worker made: known at once, before any reload. */
void
auth_session_add(const char *hash, int role, const char *csrf,
    int64_t expires_ms, int64_t key_id)
{
	struct auth_session	*s;

	auth.sessions = kore_realloc(auth.sessions,
	    (auth.nsessions + 1) * sizeof(*auth.sessions));
	s = &auth.sessions[auth.nsessions++];
	memset(s, 0, sizeof(*s));
	(void)kore_strlcpy(s->hash, hash, sizeof(s->hash));
	(void)kore_strlcpy(s->csrf, csrf, sizeof(s->csrf));
	s->role = role;
	s->expires_ms = expires_ms;
	s->key_id = key_id;
}

/* The session of hash if it is live: unexpired, its credential valid. */
static struct auth_session *
auth_session_find(const char *hash)
{
	struct auth_session	*s;

	/* Ended sessions stay ended, whatever a stale reload says. */
	if (!strcmp(auth_unknown_slot(hash), hash) ||
	    (s = auth_session_lookup(hash)) == NULL ||
	    !auth_session_valid(s, isotime_now()))
		return (NULL);

	return (s);
}

static struct auth_session *
auth_session_lookup(const char *hash)
{
	size_t		i;

	for (i = 0; i < auth.nsessions; i++) {
		if (CRYPTO_memcmp(auth.sessions[i].hash, hash,
		    AUTH_HASH_LEN) == 0)
			return (&auth.sessions[i]);
	}

	return (NULL);
}

/* A JWT session's expires_ms is no later than the JWT's exp. */
static int
auth_session_valid(const struct auth_session *s, int64_t now)
{
	if (s->expires_ms <= now)
		return (0);
	if (s->key_id != 0 && !auth_key_live(s->key_id))
		return (0);

	return (1);
}

static int
auth_key_live(int64_t id)
{
	size_t		i;

	if (!auth.loaded || shared_key_revoked(id))
		return (0);
	for (i = 0; i < auth.count; i++) {
		if (auth.keys[i].id == id)
			return (1);
	}

	return (0);
}

/* Where hash goes in the table of cookies known to name no session. */
static char *
auth_unknown_slot(const char *hash)
{
	return (auth.unknown[hash_fnv1a_str(hash) % SESSION_UNKNOWN]);
}

/* Sockets of sessions that just ended (a JWT's exp) are closed. */
static void
auth_session_tick(void *unused, u_int64_t unused2)
{
	auth_sessions_changed();
}

int
auth_session_alive(const char *hash)
{
	return (auth_session_find(hash) != NULL);
}

int
auth_session_role(const char *hash)
{
	struct auth_session	*s;

	if ((s = auth_session_find(hash)) == NULL)
		return (ROLE_NONE);
	return (s->role);
}

const char *
auth_session_csrf(const char *hash)
{
	struct auth_session	*s;

	if ((s = auth_session_find(hash)) == NULL)
		return (NULL);
	return (s->csrf);
}

/* A session ended (logout here or elsewhere): it never comes back. */
void
auth_session_forget(const char *hash)
{
	struct auth_session	*s;

	if ((s = auth_session_lookup(hash)) != NULL)
		s->expires_ms = 0;
	(void)kore_strlcpy(auth_unknown_slot(hash), hash, AUTH_HASH_LEN + 1);
	auth_sessions_changed();
}

/*
 * A dashboard login is charged, before anything else, to the bucket of
 * its peer address (of the anonymous size): answers 429 itself.
 */
int
auth_login_rate(struct http_request *req)
{
	struct principal	p;

	memset(&p, 0, sizeof(p));
	p.role = ROLE_NONE;
	p.rate_key = auth_addr_key(req) ^ LOGIN_RATE_SALT;

	return (auth_rate(req, &p, 0));
}

/* A credential typed into the login form: a JWT or an API key. */
int
auth_credential(const char *credential, struct principal *p)
{
	memset(p, 0, sizeof(*p));
	if (strchr(credential, '.') != NULL)
		return (auth_jwt(credential, p));

	return (auth_key(credential, p));
}

/* A payload of kiln_keys: the id of a revoked key, or nothing. */
static void
auth_keys_notified(const char *id)
{
	long long	v;
	char		*end;

	v = strtoll(id, &end, 10);
	if (*id != '\0' && *end == '\0' && v > 0)
		auth_key_revoked(v);
	auth_keys_reload();
}

/* A payload of kiln_sessions: the hash of an ended session, or nothing. */
static void
auth_sessions_notified(const char *hash)
{
	if (strlen(hash) == AUTH_HASH_LEN)
		auth_session_forget(hash);
	else
		auth_sessions_reload();
}

/* cb is told when sessions ended (logout, expiry, a revoked key). */
void
auth_sessions_watch(void (*cb)(void))
{
	auth.sessions_cb = cb;
}

static void
auth_sessions_changed(void)
{
	if (auth.sessions_cb != NULL)
		auth.sessions_cb();
}
