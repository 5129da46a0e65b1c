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
 * Dashboard sessions (a cookie instead of a credential) are session.c's.
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
#define LOGIN_RATE_SALT		0x6c6f67696e000001ULL
#define AUTH_WATCH_MAX		4
#define AUTH_KEY_LEN		48	/* KEY_PREFIX + 43 of base64url */
#define AUTH_UNKNOWN		1024	/* keys seen to be nobody's */
#define AUTH_WAIT_RELOAD_MS	250	/* reloads strangers' keys ask for */

struct auth_key {
	int64_t		id;
	int		role;
	char		hash[AUTH_HASH_LEN + 1];
	char		*sources;	/* ",a,b,", NULL: every source */
};


static struct {
	struct auth_key		*keys;
	size_t			count;
	int			loading;
	int			loaded;
	int			again;
	int64_t			started;	/* the last load began */
	struct kore_timer	*timer;		/* a reload for waiters */
	struct api_table_wait	wait;		/* keys made a moment ago */
	int			(*session_live_cb)(const char *);
	int			(*cookie_cb)(struct http_request *,
				    struct principal *);
	void			(*revoked_cb[AUTH_WATCH_MAX])(int64_t);
	size_t			nrevoked_cb;
	void			(*keys_cb[AUTH_WATCH_MAX])(void);
	size_t			nkeys_cb;
} auth;

static int	auth_jwt(const char *, struct principal *);
static int	auth_key(const char *, struct principal *);
static void	auth_keys_loaded(const struct store_rows *, void *, int);
static void	auth_keys_tick(void *, u_int64_t);
static void	auth_keys_free(void);
static struct auth_key	*auth_key_find(int64_t);
static u_int64_t	auth_addr_key(struct http_request *);
static void	auth_keys_notified(const char *);
static void	auth_keys_due(void *, u_int64_t);
static int	auth_key_known(const char *);
static struct auth_key	*auth_key_by_hash(const char *);

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

#define AUTH_RELOAD_RETRY_MS	1000	/* after a load that failed */
#define AUTH_RELOAD_EVERY	12	/* reconciles (60 s): NOTIFY lost */

void
auth_init(void)
{
	api_wait_init(&auth.wait, AUTH_UNKNOWN);
	cache_listen("kiln_keys", auth_keys_notified);
	(void)kore_timer_add(auth_keys_tick, kiln_config.reconcile_ms *
	    AUTH_RELOAD_EVERY, NULL, 0);
}

/* Now and then, and after a failed load: what NOTIFY may have missed. */
static void
auth_keys_tick(void *arg, u_int64_t now)
{
	auth_keys_reload();
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
	auth.started = isotime_now();
	store_keys_load(auth_keys_loaded, NULL);
}

/*
 * An API key this worker does not know and has not seen to be nobody's:
 * made a moment ago elsewhere, or made up. hash gets its hash. Only a
 * key of the shape kiln makes can be new.
 */
int
auth_key_unsure(const char *key, char *hash)
{
	if (!auth.loaded || strlen(key) != AUTH_KEY_LEN ||
	    strncmp(key, KEY_PREFIX, strlen(KEY_PREFIX)))
		return (0);
	auth_key_hash(key, hash);

	return (!api_wait_unknown(&auth.wait, hash) && !auth_key_known(hash));
}

/*
 * Put a request (p->name: its key's hash) to wait for a table of keys
 * loaded after it came: at once, or AUTH_WAIT_RELOAD_MS after the last
 * load began, however many wait.
 */
void
auth_key_wait(struct api_pending *p)
{
	int64_t		wait;

	api_wait_add(&auth.wait, p);
	if (auth.timer != NULL)
		return;
	wait = auth.started + AUTH_WAIT_RELOAD_MS - isotime_now();
	auth.timer = kore_timer_add(auth_keys_due, wait > 0 ? wait : 1,
	    NULL, KORE_TIMER_ONESHOT);
}

static void
auth_keys_due(void *arg, u_int64_t now)
{
	auth.timer = NULL;
	auth_keys_reload();
}

static int
auth_key_known(const char *hash)
{
	return (auth_key_by_hash(hash) != NULL);
}

/* Every key is compared: the time taken does not say which matched. */
static struct auth_key *
auth_key_by_hash(const char *hash)
{
	struct auth_key	*found;
	size_t		i;

	found = NULL;
	for (i = 0; i < auth.count; i++) {
		if (CRYPTO_memcmp(auth.keys[i].hash, hash,
		    AUTH_HASH_LEN) == 0)
			found = &auth.keys[i];
	}

	return (found);
}

/*
 * Key id was revoked (here, or by NOTIFY from anywhere): refuse it, and
 * have its sessions ended now, before any reload.
 */
void
auth_key_revoked(int64_t id)
{
	size_t		i;

	shared_key_revoke(id);
	for (i = 0; i < auth.nrevoked_cb; i++)
		auth.revoked_cb[i](id);
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
		return (auth.cookie_cb != NULL ? auth.cookie_cb(req, p) :
		    KORE_RESULT_OK);
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
		if (addr_cidr_match(&kiln_config.allow[i], c->family, addr) ||
		    addr_cidr_match(&kiln_config.allow[i], family, v4))
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
	struct auth_key	*k;
	char		hash[AUTH_HASH_LEN + 1];

	auth_key_hash(key, hash);
	if ((k = auth_key_by_hash(hash)) == NULL ||
	    shared_key_revoked(k->id))
		return (KORE_RESULT_ERROR);

	p->role = k->role;
	p->kind = PRINCIPAL_KEY;
	p->key_id = k->id;
	(void)snprintf(p->id, sizeof(p->id), "key:%lld", (long long)k->id);
	p->rate_key = hash_fnv1a_str(p->id);

	return (KORE_RESULT_OK);
}

/* Has this worker read the table of API keys once? */
int
auth_keys_ready(void)
{
	return (auth.loaded);
}

static void
auth_keys_loaded(const struct store_rows *rows, void *arg, int ok)
{
	const struct key_row	*k;
	size_t			i, n, len;
	int64_t			began = auth.started;

	auth.loading = 0;
	if (auth.again) {
		auth.again = 0;
		auth_keys_reload();
	}
	/* A change announced while the database failed us is not lost. */
	if (!ok) {
		if (!auth.loading)
			(void)kore_timer_add(auth_keys_tick,
			    AUTH_RELOAD_RETRY_MS, NULL, KORE_TIMER_ONESHOT);
		api_wait_wake(&auth.wait, 0, began, auth_key_known);
		return;
	}

	auth.loaded = 1;
	n = rows->n;
	auth_keys_free();
	auth.keys = n ? kore_calloc(n, sizeof(*auth.keys)) : NULL;
	auth.count = n;

	for (i = 0; i < n; i++) {
		k = &rows->keys[i];
		auth.keys[i].id = k->id;
		auth.keys[i].role = jwt_role_parse(k->role ? k->role : "");
		(void)kore_strlcpy(auth.keys[i].hash, k->hash ? k->hash : "",
		    sizeof(auth.keys[i].hash));
		if (k->sources == NULL)
			continue;
		len = strlen(k->sources) + 3;
		auth.keys[i].sources = kore_malloc(len);
		(void)snprintf(auth.keys[i].sources, len, ",%s,",
		    k->sources);
	}

	api_wait_wake(&auth.wait, 1, began, auth_key_known);

	/* Scopes may have narrowed: who holds access looks again. */
	for (i = 0; i < auth.nkeys_cb; i++)
		auth.keys_cb[i]();
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

/* Is key id loaded and not revoked (a session made from it lives)? */
int
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

/*
 * cb tells who the session cookie of a request without credential is;
 * live, whether the session of a cookie's hash is still on (a session
 * principal asked again, long after its request came).
 */
void
auth_cookie_resolver(int (*cb)(struct http_request *, struct principal *),
    int (*live)(const char *))
{
	auth.cookie_cb = cb;
	auth.session_live_cb = live;
}

/* Sessions ended (a logout, here or elsewhere): who holds access looks. */
void
auth_sessions_ended(void)
{
	size_t		i;

	for (i = 0; i < auth.nkeys_cb; i++)
		auth.keys_cb[i]();
}

/* cb is told of each key revoked (each watcher in turn). */
void
auth_revoke_watch(void (*cb)(int64_t))
{
	if (auth.nrevoked_cb == AUTH_WATCH_MAX)
		fatal("auth_revoke_watch: too many watchers");
	auth.revoked_cb[auth.nrevoked_cb++] = cb;
}

/* cb is told each time the keys were read again, or sessions ended. */
void
auth_keys_watch(void (*cb)(void))
{
	if (auth.nkeys_cb == AUTH_WATCH_MAX)
		fatal("auth_keys_watch: too many watchers");
	auth.keys_cb[auth.nkeys_cb++] = cb;
}

/*
 * Does p still hold what it was let in with: its key (or its session's
 * key) not revoked, its JWT not expired? Streams and held requests ask,
 * long after auth_request.
 */
int
auth_principal_live(const struct principal *p, int64_t now)
{
	switch (p->kind) {
	case PRINCIPAL_KEY:
		return (auth_key_live(p->key_id));
	case PRINCIPAL_SESSION:
		if (auth.session_live_cb != NULL &&
		    !auth.session_live_cb(p->session))
			return (0);
		return (p->key_id == 0 || auth_key_live(p->key_id));
	case PRINCIPAL_JWT:
		return (p->expires_ms + JWT_LEEWAY_MS > now);
	}

	return (1);
}

/* p no longer authenticates: what is left is the anonymous caller. */
void
auth_principal_drop(struct principal *p)
{
	p->role = ROLE_NONE;
	p->kind = PRINCIPAL_ANONYMOUS;
	p->key_id = 0;
	p->expires_ms = 0;
}

/*
 * May p read the token of source name, of access mode access? 0 if so,
 * else the status current-token answers (401, 403) and its error.
 */
int
auth_source_refused(const struct principal *p, int access,
    const char *name, const char **code, const char **msg)
{
	if (access != ACCESS_KEY)
		return (0);
	if (p->role < ROLE_CLIENT) {
		*code = "unauthorized";
		*msg = "this source requires a client key";
		return (401);
	}
	if (!auth_key_scope_allows(p, name)) {
		*code = "forbidden";
		*msg = "this key is not scoped to this token source";
		return (403);
	}

	return (0);
}
