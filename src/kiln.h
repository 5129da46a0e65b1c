/*
 * kiln: keeps upstream access tokens hot.
 *
 * This header is the map of the program: one section per source file.
 * The sections marked "pure" use only libc, OpenSSL and yajl so that the
 * unit tests under tests/unit can link them without Kore.
 *
 * The layers, top down. A call goes down a layer or sideways inside one,
 * never up, and no two files call each other (even through others); news
 * goes up only through a callback the upper layer registered at init.
 * SQL and the reading of result rows live only in store*.c. This is the
 * one list of the layers: tests/layers.py reads it (make test).
 *
 *   layer start:    kiln ship
 *   layer surfaces: api api_public api_admin ops dashboard session auth
 *                   bench api_reply api_audit dash_audit api_webhook
 *                   push dash_views dash_manage api_jwks api_conn
 *                   dash_conn api_oauth api_device
 *   layer engine:   cache refresh reseal webhook device
 *   layer services: store upstream shared log config drain sources
 *                   otel
 *   layer pure:     isotime policy seal json oauth jwt source hash trace
 *                   host addr dash_render audit mtls dash_chart
 *                   dash_pages dash_forms jws conn conn_html flow
 *                   devcode qs slab
 */

#ifndef __H_KILN_H
#define __H_KILN_H

#include <sys/types.h>
#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#if !defined(KORE_RESULT_OK)
#define KORE_RESULT_ERROR	0
#define KORE_RESULT_OK		1
#define KORE_RESULT_RETRY	2
#endif

#define KILN_NAME_MAX		64
#define KILN_FPR_LEN		12
#define KILN_ERR_MAX		256

/* Upstream kinds. */
#define KIND_CLIENT_CREDENTIALS	1
#define KIND_REFRESH_TOKEN	2
#define KIND_PASSWORD		3
#define KIND_JSON_LOGIN		4
#define KIND_TOKEN_EXCHANGE	12	/* RFC 8693 */
#define TX_ACCESS_TOKEN		"urn:ietf:params:oauth:token-type:access_token"
#define KIND_JWT_BEARER		5	/* RFC 7523 2.1 */
#define KIND_AUTHORIZATION_CODE	13	/* RFC 6749 4.1, RFC 7636 */
#define KIND_DEVICE_CODE	14	/* RFC 8628 */

#define AUTH_SECRET_POST	1
#define AUTH_SECRET_BASIC	2
#define AUTH_TLS_CLIENT		11	/* RFC 8705, PKI */
#define AUTH_TLS_SELF_SIGNED	12	/* RFC 8705, self-signed */
#define AUTH_PRIVATE_KEY_JWT	3	/* RFC 7523 2.2 */

#define ACCESS_OPEN		1
#define ACCESS_KEY		2

/*
 * A token source: the recipe for getting a token. Secrets are clear text
 * here and only here (in memory, wiped on free); they are sealed before
 * they reach PostgreSQL. Unset strings are NULL. Durations in seconds.
 */
struct source {
	char		name[KILN_NAME_MAX + 1];
	int		kind;
	char		*token_url;
	char		*client_id;
	char		*client_secret;
	int		auth_method;
	char		*scope;
	char		*audience;
	char		*resource;
	char		*refresh_token;
	char		*username;
	char		*password;
	char		*token_path;
	char		*expires_at_path;
	char		*expires_in_path;
	int64_t		refresh_buffer;		/* -1: global default */
	int64_t		fallback_lifetime;
	int		access;
	int		require_header;
	int		enabled;
	char		*tls_client_cert;	/* PEM chain, leaf first */
	char		*tls_client_key;	/* PEM, secret */
	char		*tls_ca;		/* PEM, or NULL */
	char		*subject_source;	/* token_exchange: names */
	char		*subject_token_type;
	char		*requested_token_type;
	char		*actor_source;
	char		*actor_token_type;
	char		*subject_token;		/* in an attempt only */
	char		*actor_token;
	/* Signed JWTs (jws.c): private_key_jwt and jwt_bearer. */
	char		*private_key;		/* PEM: given, or opened */
	int		key_generate;		/* JWS_* kiln makes, or 0 */
	int		key_alg;		/* JWS_*; 0: the key's own */
	char		*key_id;		/* kid; NULL: thumbprint */
	int		key_new;		/* private_key is to store */
	int		key_stored;		/* the database holds a key */
	char		*issuer;		/* jwt_bearer iss */
	char		*subject;		/* jwt_bearer sub */
	char		*assertion_audience;	/* aud; NULL: token_url */
	char		*target_audience;
	/* authorization_code (c-authcode): the consent in a browser. */
	char		*authorize_url;
	char		*revocation_url;	/* RFC 7009, or NULL */
	char		*extra_authorize_params;	/* JSON object */
	char		*code;		/* in an exchange only */
	char		*code_verifier;
	char		*redirect_uri;
	/* device_code (RFC 8628, devcode.c, device.c). */
	char		*device_authorization_url;
	char		*device_code;		/* in a poll only */
};

/* isotime.c (pure): times are milliseconds since the epoch, UTC. */
int64_t	isotime_now(void);
int	isotime_parse(const char *, int64_t *);
void	isotime_format(int64_t, char *, size_t);
int	isotime_epoch_parse(const char *, int64_t *);
#define ISOTIME_LEN		32
#define ISOTIME_EPOCH_MS_ABOVE	100000000000LL	/* larger: epoch ms */

/* policy.c (pure): the refresh policy of DESIGN.md. rnd is in [0, 1). */
int64_t	policy_refresh_at(int64_t, int64_t, int64_t, double);
int64_t	policy_backoff(u_int32_t, int64_t, int64_t, double);
double	policy_random(void);
const char	*policy_state(int, int, u_int32_t, int, int64_t, int64_t);
#define POLICY_BACKOFF_BASE_MS	1000
#define POLICY_BACKOFF_MAX_MS	300000
#define POLICY_BACKOFF_MIN_MS	250

/* seal.c (pure): AES-256-GCM with a key ring, SHA-256 fingerprints. */
#define SEAL_KEY_LEN		32
#define SEAL_KEYS_MAX		4
int	seal_key_add(const u_int8_t *, size_t);
void	seal_keys_clear(void);
int	seal_seal(const char *, const char *, const void *, size_t, char **);
int	seal_open(const char *, const char *, const char *, char **, size_t *);
int	seal_seal_for(const char *, const char *, const char *, const void *,
	    size_t, char **);
int	seal_open_for(const char *, const char *, const char *, const char *,
	    char **, size_t *);
int	seal_current(const char *, int);
const char	*seal_key_id(void);
void	seal_fingerprint(const void *, size_t, char *);
void	seal_wipe(char *);
void	seal_mac(const void *, size_t, char *);
#define SEAL_MAC_LEN		64
int	seal_sha256_hex(const void *, size_t, char *);
#define SEAL_SHA256_HEX_LEN	64
int	seal_b64_decode(const char *, u_int8_t **, size_t *);

/* json.c (pure): untrusted JSON text, base64, wiping yajl buffers. */
#define JSON_OK			0
#define JSON_BAD_UTF8		1
#define JSON_BAD_ESCAPE		2
#define JSON_B64_STD		0
#define JSON_B64_URL		1
yajl_val	json_parse(const char *, size_t);
yajl_val	json_tree(const char *, size_t);
yajl_val	json_path_get(yajl_val, const char *);
int	json_check(const char *, size_t, char *, size_t);
int	json_depth_ok(const char *, size_t);
int	json_b64_decode(const char *, size_t, int, u_int8_t **, size_t *);
int	json_b64_value(int, int);
void	json_wipe_funcs(yajl_alloc_funcs *);
void	json_seterr(char *, size_t, const char *, ...)
	    __attribute__((format (printf, 3, 4)));
void	json_kv_str(void *, const char *, const char *);
void	json_kv_int(void *, const char *, int64_t);
void	json_kv_bool(void *, const char *, int);
void	json_kv_decimal(void *, const char *, double);
void	json_kv_null(void *, const char *);
int	json_err_field(const char *, char *, size_t);

/* hash.c (pure): FNV-1a, for table slots and rate buckets (not secrets). */
#define HASH_FNV_BASIS		14695981039346656037ULL
u_int64_t	hash_fnv1a(u_int64_t, const void *, size_t);
u_int64_t	hash_fnv1a_str(const char *);
u_int64_t	hash_mix64(u_int64_t);
void		hash_hex64(u_int64_t, char *);

/* slab.c (pure): the token table's memory, on huge pages when it can. */
#define SLAB_ALIGN		64
#define SLAB_MAX		4096
void	slab_huge(int);
void	*slab_map(size_t);
void	*slab_alloc(size_t);
void	slab_free(void *, size_t);
size_t	slab_mapped(void);

/* qs.c (pure): a query string's argument, percent-decoded. */
int	qs_get(const char *, const char *, char *, size_t);

/* source.c (pure): the source JSON of DESIGN.md, shared by file and API. */
#define SOURCE_ALLOW_ENV	0x01
#define SOURCE_PATCH		0x02
int	source_from_json(yajl_val, int, struct source *, char *, size_t);
int	source_name_valid(const char *);
int	source_kind_parse(const char *);
const char	*source_kind_name(int);
const char	*source_auth_name(int);
int	source_auth_parse(const char *);
void	source_free(struct source *);
char	*source_url_redact(const char *, int);
void	source_origin(const char *, char *, size_t);
#define SOURCE_ORIGIN_MAX	288

/* oauth.c (pure): request bodies and answers of each upstream kind. */
struct oauth_request {
	char		*body;
	size_t		len;
	const char	*content_type;
	char		*authorization;		/* "Basic ..." or NULL */
};

struct oauth_answer {
	char		*token;
	char		token_type[32];
	char		*refresh_token;		/* rotated one, or NULL */
	int64_t		expires_ms;
	const char	*expiry_from;		/* "expires_in", ... */
};

int	oauth_build(const struct source *, struct oauth_request *,
	    char *, size_t);
void	oauth_request_free(struct oauth_request *);
int	oauth_parse(const struct source *, const char *, size_t, int64_t,
	    struct oauth_answer *, char *, size_t);
void	oauth_answer_free(struct oauth_answer *);

/* jwt.c (pure): HS256 bearer tokens of the admin API; upstream exp. */
#define ROLE_NONE		0
#define ROLE_CLIENT		1	/* current-token of key sources only */
#define ROLE_VIEWER		2
#define ROLE_OPERATOR		3
#define ROLE_ADMIN		4

struct jwt_check {
	const u_int8_t	*secret;
	size_t		secret_len;
	const char	*issuer;
	const char	*audience;
	int64_t		now_ms;
	int64_t		leeway_ms;
};

struct jwt_claims {
	int		role;
	char		subject[64];
	char		id[64];			/* jti, or "" */
	int64_t		expires_ms;
};

int	jwt_verify(const char *, const struct jwt_check *,
	    struct jwt_claims *, char *, size_t);
int	jwt_role_parse(const char *);
const char	*jwt_role_name(int);
int	jwt_exp_unverified(const char *, int64_t *);

/* trace.c (pure): the W3C traceparent header, checked. */
#define TRACE_PARENT_LEN	55
#define TRACE_FLAG_SAMPLED	0x01

struct trace_parent {
	char		trace_id[33];
	char		parent_id[17];
	u_int8_t	flags;
};

int	trace_parent_parse(const char *, struct trace_parent *);

/* host.c (pure): the Host header values kiln answers (DNS rebinding). */
#define HOST_NAME_MAX_LEN	255
int	host_split(const char *, char *, size_t);
int	host_loopback(const char *);
int	host_listed(const char *, const char *);
int	host_list_parse(const char *, char *, size_t, char *, size_t);
/* addr.c (pure): client addresses for the allow-lists and rate buckets. */
struct cidr {
	int		family;
	u_int8_t	addr[16];
	int		bits;
};

int	addr_unmap(int *, const u_int8_t **);
u_int64_t	addr_rate_key(int, const u_int8_t *);
int	addr_cidr_match(const struct cidr *, int, const u_int8_t *);
/* mtls.c (pure): PEM material of mutual TLS client authentication. */
#define MTLS_SUBJECT_MAX	256
int	mtls_method(int);
int	mtls_check(const struct source *, char *, size_t);
int	mtls_cert_info(const char *, char *, size_t, int64_t *);
size_t	mtls_count(const char *);

/* dash_render.c (pure): dashboard HTML from plain rows, escaped. */
#define DR_NULL		INT64_MIN	/* a number that is NULL */
#define DR_ALERTS_MAX	20		/* token alerts listed */
struct dbuf {			/* growable, NUL-terminated; free it */
	char		*data;
	size_t		len;
	size_t		cap;
};
struct dr_token {
	const char	*name;
	const char	*kind;
	const char	*state;
	const char	*fpr;			/* NULL: no token */
	const char	*last_error;		/* NULL: none */
	int64_t		generation;
	int64_t		expires_in_ms;
	int64_t		next_in_ms;
	int64_t		last_duration_ms;	/* < 0: none */
	u_int32_t	failures;
	int		paused;
	const char	*auth;			/* mTLS method, or NULL */
	const char	*cert_subject;		/* or NULL */
	int64_t		cert_not_after_ms;	/* 0: none */
	const char	*auth_method;		/* NULL: a secret's */
	const char	*key_id;		/* NULL: none */
};
struct dr_event {			/* strings NULL, numbers DR_NULL */
	const char	*source;
	const char	*trigger;
	const char	*outcome;
	const char	*error;
	int64_t		finished_ms;
	int64_t		duration_ms;
	int64_t		http_status;
	int64_t		generation;
};
struct dr_alert {
	const char	*name;
	int		enabled;
	int		valid;
	int		in_buffer;		/* now >= refresh time */
	u_int32_t	failures;
	int		has_cert;		/* mTLS client certificate */
	int64_t		cert_left_ms;		/* until its notAfter */
	u_int32_t	reauth;			/* connections: needs_reauth */
};
#define DR_CERT_WARN_MS		(14LL * 86400 * 1000)
struct dr_host {
	const char	*host;
	const char	*state;			/* circuit state */
	u_int32_t	failures;
};
void	dbuf_init(struct dbuf *);
void	dbuf_free(struct dbuf *);
void	dbuf_append(struct dbuf *, const void *, size_t);
void	dbuf_appendf(struct dbuf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	dr_escape(struct dbuf *, const char *);
void	dr_duration(struct dbuf *, int64_t);
void	dr_login(struct dbuf *, const u_int8_t *, size_t, const char *,
	    const char *);
void	dr_tokens(struct dbuf *, const struct dr_token *, size_t, int,
	    const char *);
void	dr_history(struct dbuf *, const struct dr_event *, size_t);
void	dr_alerts(struct dbuf *, int, const struct dr_alert *, size_t,
	    const struct dr_host *, size_t);
void	dr_upstream(struct dbuf *, const struct dr_host *, size_t);
void	dr_traffic(struct dbuf *, const u_int64_t *, const u_int64_t *, int,
	    int, u_int64_t, u_int64_t);
void	dr_clients(struct dbuf *, int64_t, u_int32_t, u_int32_t);
void	dr_page(struct dbuf *, const u_int8_t *, size_t,
	    void (*)(struct dbuf *, const char *, const void *), const void *);
struct dr_webhook {			/* strings NULL, numbers DR_NULL */
	int64_t		id;
	const char	*url;		/* without userinfo */
	const char	*type;		/* NULL: no delivery yet */
	const char	*source;
	const char	*status;
	int64_t		attempts;
	int64_t		last_status;
	int64_t		created_ms;
	const char	*last_error;
};
void	dr_webhooks(struct dbuf *, const struct dr_webhook *, size_t);

/*
 * audit.c (pure): what an audit row names. Who acted (struct audit_who:
 * a principal id such as "key:7" or "jwt:<sub>", never a credential; a
 * dashboard session by the hash of its cookie, which the store records
 * as the key or subject the session was made from), the names of the
 * fields a change set (never their values), the listing's query.
 */
#define AUDIT_SOURCE_FIELDS	35	/* +device_authorization_url */
#define AUDIT_DIGEST_LEN	32
#define AUDIT_VALUE_MAX		128
#define AUDIT_FIELDS_LEN	512
#define AUDIT_LIMIT_DEFAULT	50
#define AUDIT_LIMIT_MAX		500
#define AUDIT_NONE		INT64_MIN

struct audit_who {
	const char	*kind;		/* key, jwt, session, anonymous */
	char		principal[80];	/* "": none */
	char		address[48];	/* "": unknown */
	char		request_id[64];
};

struct audit_snap {
	u_int8_t	d[AUDIT_SOURCE_FIELDS][AUDIT_DIGEST_LEN];
};

struct audit_query {
	int64_t		limit;
	int64_t		before;		/* 0: newest first */
	int64_t		since_ms;	/* AUDIT_NONE: no bound */
	int64_t		until_ms;
	char		action[AUDIT_VALUE_MAX + 1];	/* "": any */
	char		principal[AUDIT_VALUE_MAX + 1];
	char		target[AUDIT_VALUE_MAX + 1];
};

void	audit_source_snap(const struct source *, struct audit_snap *);
int	audit_source_changed(const struct audit_snap *,
	    const struct source *, char *, size_t);
int	audit_body_fields(yajl_val, char *, size_t);
int	audit_query_parse(const char *, struct audit_query *, char *,
	    size_t);

/* dash_chart.c (pure): the dashboard's line charts as SVG. */
struct dc_series {
	const char	*label;
	const double	*v;		/* n values, oldest first; < 0: none */
};
double	dc_quantile(const u_int64_t *, const double *, size_t, double);
void	dc_chart(struct dbuf *, const char *, const char *, const char *,
	    const struct dc_series *, size_t, size_t, int);

/* dash_pages.c (pure): the page of one token, the token table's view. */
#define DP_PAGE_SIZE	50
#define DP_DAY_MS	(24 * 3600 * 1000LL)
#define DP_HISTORY_PAGE	25
struct dp_view {
	char		q[KILN_NAME_MAX + 1];
	char		kind[24];
	char		state[16];
	char		host[128];
	int		page;			/* from 1 */
};
struct dp_event {			/* strings NULL, numbers DR_NULL */
	int64_t		id;
	int64_t		finished_ms;
	int64_t		duration_ms;
	int64_t		http_status;
	int64_t		generation;
	const char	*trigger;
	const char	*outcome;
	const char	*error;
	const char	*fpr;
};
struct dp_token {
	const char	*name;
	const char	*kind;
	const char	*state;
	const char	*host;			/* NULL: unknown */
	const char	*fpr;			/* NULL: no token */
	const char	*last_error;
	int64_t		generation;
	int64_t		expires_ms;
	int64_t		next_ms;
	int64_t		lifetime_ms;		/* 0: unknown */
	u_int32_t	failures;
	int		paused;
	int		enabled;
};
void	dp_view_parse(const char *, struct dp_view *);
int64_t	dp_query_int(const char *, const char *);
int	dp_view_match(const struct dp_view *, const char *, const char *,
	    const char *, const char *);
void	dp_view_query(struct dbuf *, const struct dp_view *, int);
void	dp_filter(struct dbuf *, const struct dp_view *, const char *const *,
	    size_t);
void	dp_pager(struct dbuf *, const struct dp_view *, size_t, size_t);
void	dp_timeline(struct dbuf *, const struct dp_event *, size_t,
	    const struct dp_token *, int64_t);
void	dp_history(struct dbuf *, const char *, const struct dp_event *,
	    size_t, int, int64_t);
void	dp_errors(struct dbuf *, const struct dp_event *, size_t);
void	dp_state(struct dbuf *, const struct dp_token *, int64_t);
void	dp_token_page(struct dbuf *, const struct dp_token *, const char *,
	    const char *, const char *, const char *, const char *, int64_t);

/* dash_forms.c (pure): the dashboard's forms for sources and API keys. */
#define DF_CLIENT_SECRET	0x01	/* secrets, as bits */
#define DF_REFRESH_TOKEN	0x02
#define DF_PASSWORD		0x04
#define DF_TLS_KEY		0x08
#define DF_TLS_CERT		0x10	/* PEMs: not secret, not shown */
#define DF_TLS_CA		0x20
#define DF_PRIVATE_KEY		0x40
struct df_pair {			/* a form field, or a value shown */
	const char	*name;
	const char	*value;
};
struct df_form {
	const char		*kind;
	const char		*source;	/* NULL: a new source */
	const struct df_pair	*values;
	size_t			nvalues;
	int			set;		/* DF_*: a value is stored */
	int			typed;		/* DF_*: sent, not kept */
	const char		*error;		/* NULL: none */
	const char		*field;		/* where error goes, or NULL */
	const char		*csrf;
	int			admin;
};
struct df_row {				/* the sources list */
	const char	*name;
	const char	*kind;
	const char	*state;
	int		enabled;
};
struct df_key {				/* the keys list; DR_NULL: none */
	int64_t		id;
	const char	*name;
	const char	*role;
	const char	*sources;
	int64_t		created_ms;
	int64_t		revoked_ms;
};
#define DF_PAGE_ROWS		100
const char	*df_value(const struct df_pair *, size_t, const char *);
int	df_form_json(const struct df_pair *, size_t, int, void *);
int	df_key_json(const struct df_pair *, size_t, void *);
void	df_notice(struct dbuf *, const char *, const char *);
void	df_sources(struct dbuf *, const struct df_row *, size_t,
	    const char *, int, size_t, int, const char *);
void	df_kinds(struct dbuf *, const char *);
void	df_source_form(struct dbuf *, const struct df_form *);
void	df_keys(struct dbuf *, const struct df_key *, size_t, const char *);
void	df_key_form(struct dbuf *, const struct df_pair *, size_t,
	    const char *, const char *, const char *);
void	df_key_created(struct dbuf *, const char *, const char *);
int	df_typed(const struct df_pair *, size_t);
void	df_gen_value(void *, void *);

/* jws.c (pure): JWTs kiln signs (RS256, PS256, ES256), keys and JWKs. */
#define JWS_RS256		1
#define JWS_PS256		2
#define JWS_ES256		3
#define JWS_THUMB_LEN		43	/* base64url of SHA-256 */
#define JWS_B64_LEN(n)		(((n) * 4 + 2) / 3)

struct jws_key {
	void		*pkey;			/* EVP_PKEY */
	int		alg;
	char		thumbprint[JWS_THUMB_LEN + 1];	/* RFC 7638 */
};

struct jws_claims {
	const char	*iss;
	const char	*sub;
	const char	*aud;
	const char	*scope;			/* NULL: left out */
	const char	*target_audience;	/* NULL: left out */
	int64_t		iat;			/* seconds */
	int64_t		exp;
};

int	jws_alg_parse(const char *);
const char	*jws_alg_name(int);
int	jws_key_load(const char *, int, struct jws_key *, char *, size_t);
int	jws_key_check(const struct jws_key *, char *, size_t);
int	jws_key_generate(int, struct jws_key *, char *, size_t);
int	jws_key_pem(const struct jws_key *, char **);
void	jws_key_free(struct jws_key *);
int	jws_jwk(const struct jws_key *, const char *, char **);
int	jws_sign(const struct jws_key *, const char *, const char *, char **,
	    char *, size_t);
int	jws_assertion(const struct jws_key *, const char *,
	    const struct jws_claims *, char **, char *, size_t);
size_t	jws_b64url(const void *, size_t, char *);

/*
 * conn.c (pure): connections, one token per (source, subject); the
 * default one is the source's own token, named by the source alone.
 */
#define KILN_SUBJECT_MAX	128
#define CONN_DEFAULT		"default"
#define CONN_KEY_MAX		(KILN_NAME_MAX + 1 + KILN_SUBJECT_MAX + 1)
int	conn_subject_valid(const char *);
int	conn_is_default(const char *);
int	conn_field(const char *, const char *, char *, size_t);
int	conn_key_split(const char *, char *, size_t, char *, size_t);
void	conn_key(const char *, const char *, char *, size_t);

/* conn_html.c (pure): the dashboard's page of a source's connections. */
#define CH_PAGE_ROWS		50
#define CH_NONE			0
#define CH_CONNECTED		1
#define CH_DISCONNECTED		2
struct ch_view {
	char		state[16];		/* "": any */
	char		cursor[KILN_SUBJECT_MAX + 1];	/* "": first */
	int		limit;			/* rows a page */
	int		notice;			/* CH_* */
	char		subject[KILN_SUBJECT_MAX + 1];	/* noticed */
};
struct ch_row {			/* strings NULL, numbers DR_NULL */
	const char	*subject;
	const char	*state;
	int64_t		generation;
	int64_t		expires_ms;
	const char	*fingerprint;
	int64_t		failures;
	const char	*last_error;
	int64_t		updated_ms;
};
struct ch_started {		/* a Connect's answer; NULL: absent */
	const char	*subject;
	const char	*state;
	const char	*authorization_url;
	const char	*user_code;
	const char	*verification_uri;
	const char	*verification_uri_complete;
	const char	*expires_at;
};
void	ch_view_parse(const char *, struct ch_view *);
int	ch_kind_connects(const char *);
void	ch_table(struct dbuf *, const char *, const char *,
	    const struct ch_row *, size_t, const char *,
	    const struct ch_view *, u_int32_t, int, const char *);
void	ch_page(struct dbuf *, const char *, const char *, const char *,
	    const struct ch_view *, const char *, int, const char *);
void	ch_message(struct dbuf *, const char *, const char *, const char *,
	    const struct ch_started *);
void	ch_confirm(struct dbuf *, const char *, const char *, const char *,
	    const char *);

/*
 * flow.c (pure): the authorization code flow's values: a PKCE verifier
 * and its S256 challenge (RFC 7636), the state, the consent URL, the
 * return_to rules and the revocation request (RFC 7009).
 */
#define FLOW_VERIFIER_LEN	64	/* 43-128 of RFC 7636 4.1 */
#define FLOW_CHALLENGE_LEN	43
#define FLOW_STATE_LEN		43	/* 32 random bytes, base64url */
#define FLOW_TTL_MS		(10 * 60 * 1000)
#define FLOW_RETURN_MAX		2048
int	flow_random(char *, size_t);
int	flow_challenge(const char *, char *, size_t);
int	flow_state_hash(const char *, char *);
char	*flow_authorize_url(const struct source *, const char *,
	    const char *, const char *);
int	flow_origin_allowed(const char *, const char *);
int	flow_public_url_valid(const char *);
char	*flow_return_url(const char *, const char *, const char *,
	    const char *);
int	flow_revoke_body(const struct source *, const char *,
	    struct oauth_request *);
char	*flow_html_escape(const char *);

/*
 * devcode.c (pure): the device authorization grant (RFC 8628): the
 * answer of the device authorization endpoint, the errors of polling.
 */
#define DEVCODE_GRANT	"urn:ietf:params:oauth:grant-type:device_code"
#define DEVCODE_INTERVAL_DEFAULT	5	/* seconds, 3.2 */
#define DEVCODE_INTERVAL_MAX	300
#define DEVCODE_SLOW_DOWN	5	/* seconds added, 3.5 */
#define DEVCODE_LIFETIME_MAX	86400
#define DEVCODE_USER_CODE_MAX	64
#define DEVCODE_ERROR_MAX	64
#define DEVCODE_PENDING		1	/* authorization_pending */
#define DEVCODE_SLOW		2	/* slow_down */
#define DEVCODE_EXPIRED		3	/* expired_token */
#define DEVCODE_DENIED		4	/* access_denied */
#define DEVCODE_FAILED		5	/* another OAuth error: ends */
#define DEVCODE_TRANSIENT	6	/* no OAuth error: poll again */

struct devcode_answer {
	char		*device_code;			/* secret */
	char		user_code[DEVCODE_USER_CODE_MAX + 1];
	char		*verification_uri;
	char		*verification_uri_complete;	/* or NULL */
	int64_t		expires_in;
	int64_t		interval;
};

int	devcode_parse(const char *, size_t, struct devcode_answer *, char *,
	    size_t);
void	devcode_answer_free(struct devcode_answer *);
int	devcode_poll_error(const char *, size_t, char *, size_t);

/*
 * Everything below needs Kore (kore.h, http.h, pgsql.h, curl.h included
 * before this header).
 */
#if defined(KORE_RESULT_RETRY) && defined(HTTP_METHOD_GET)

struct cache_entry;
struct attempt;
struct api_pending;

/* kiln.c: hooks and wiring; ship.c: subcommands, sd_notify, SIGHUP. */
#define KILN_VERSION		"0.1.0"

/* sources.c: the sources file, checked (apply 0) or upserted. */
int	sources_file_load(const char *, int, char *, size_t);

/* drain.c: the graceful drain of a worker (SIGTERM, SIGQUIT). */
void	drain_init(int (*)(void), void (*)(void));
int	drain_active(void);

/* bench.c: the constant route of the benchmarks (KILN_BENCH_ROUTE=1). */
int	bench_constant(struct http_request *);

/* config.c: environment, validated at start. */
struct kiln_config {
	char		*database_url;		/* with kiln's defaults */
	int64_t		db_connect_ms;		/* 0: no deadline */
	int64_t		db_answer_ms;		/* 0: no deadline */
	char		*sources_file;
	char		*migrations_dir;
	int		prewarming_enabled;
	int64_t		refresh_buffer_ms;
	int64_t		connect_timeout_ms;
	int64_t		upstream_timeout_ms;
	int64_t		lease_ms;
	int64_t		wait_ms;
	int64_t		reconcile_ms;
	int64_t		drain_ms;
	int64_t		ondemand_ms;
	int64_t		circuit_failures;
	int64_t		circuit_open_ms;
	const char	*jwt_secret;
	const char	*jwt_issuer;
	const char	*jwt_audience;
	const char	*admin_key;
	int64_t		rate_admin;
	int64_t		rate_operator;
	int64_t		rate_viewer;
	int64_t		rate_anonymous;
	int64_t		rate_public;
	struct cidr	*allow;
	size_t		allow_count;
	struct cidr	*upstream_allow;	/* KILN_UPSTREAM_ALLOW */
	size_t		upstream_allow_count;
	char		*allowed_hosts;		/* NULL: loopback rule */
	char		owner[96];
	int64_t		webhook_backoff_ms;	/* first retry's wait */
	int64_t		db_prepared;		/* KILN_DB_PREPARED */
	int64_t		huge_pages;		/* KILN_HUGE_PAGES */
	int64_t		waiters_max;		/* KILN_WAITERS_MAX */
	int64_t		streams_max;		/* KILN_STREAMS_MAX */
	int64_t		sse_heartbeat_ms;	/* KILN_SSE_HEARTBEAT */
	char		*otel_url;		/* NULL: no span export */
	char		**otel_headers;		/* "name: value", NULL-ended */
	char		*otel_service;
	char		**otel_resource;	/* key, value, ..., NULL */
	int		otel_sampler;		/* OTEL_SAMPLER_* */
	double		otel_ratio;
	int64_t		otel_timeout_ms;
	int64_t		otel_delay_ms;
	int64_t		otel_queue;
	int64_t		otel_batch;
	int		otel_json;		/* http/json, not protobuf */
	int64_t		key_rollover;		/* seconds, KILN_KEY_ROLLOVER */
	/* authorization_code (c-authcode) */
	char		*public_url;	/* KILN_PUBLIC_URL, no '/' */
	char		*return_to_allow;	/* KILN_RETURN_TO_ALLOW */
};

extern struct kiln_config	kiln_config;

int	config_load(const char *, char *, size_t);
int	config_read_kore(const char *, char *, size_t);
int	config_check_kore(const char *, char *, size_t);

/* ship.c: subcommands, sd_notify readiness and watchdog, SIGHUP. */
int	ship_command(const char *, int, char **);
void	ship_parent_init(void);
void	ship_worker_init(void);
void	ship_notify(const char *);

/* shared.c: counters, rate buckets and circuits shared by the workers. */
#define SHARED_ROUTES		64
#define SHARED_STATUSES		17
#define SHARED_BUCKETS		14
#define SHARED_SOURCES		1024
#define SHARED_RATES		4096
#define SHARED_HOSTS		64
#define SHARED_HOST_LEN		128
#define SHARED_PROBES		8
#define SHARED_REVOKED		256

struct shared_source {
	char		name[KILN_NAME_MAX + 1];
	u_int64_t	attempts;
	u_int64_t	failures;
};

struct shared_rate {
	u_int64_t	key;
	double		tokens;
	int64_t		last_ms;
};

struct shared_host {
	char		host[SHARED_HOST_LEN];
	u_int32_t	failures;
	int64_t		open_until;
	int64_t		last_ms;
};

/* Dashboard sockets of one session, counted per worker. */
#define SHARED_WS_SESSIONS	1024
#define SHARED_WS_WORKERS	64

struct shared_ws {
	u_int64_t	key;
	u_int8_t	count[SHARED_WS_WORKERS];
};

/*
 * The charts' history: one ring of per-minute buckets per worker, each
 * written only by its worker (no lock), summed over the workers by the
 * reader. minute is the bucket's minute since the epoch (0: unused).
 */
#define SHARED_MINUTES		60

struct shared_minute {
	int64_t		minute;
	u_int64_t	requests;
	u_int64_t	refreshes;
	u_int64_t	refresh_failures;
	u_int64_t	refresh_ms[SHARED_BUCKETS + 1];
	u_int32_t	host_errors[SHARED_HOSTS];	/* by hosts[] slot */
};

struct shared {
	volatile char		lock;
	int64_t			started_ms;
	u_int64_t		requests[SHARED_ROUTES][SHARED_STATUSES];
	u_int64_t		latency[SHARED_ROUTES][SHARED_BUCKETS + 1];
	u_int64_t		latency_sum_us[SHARED_ROUTES];
	u_int64_t		upstream[SHARED_BUCKETS + 1];
	u_int64_t		upstream_sum_us;
	u_int64_t		pg_errors;
	int64_t			websockets;
	int			draining;
	struct shared_source	sources[SHARED_SOURCES];
	struct shared_rate	rates[SHARED_RATES];
	struct shared_host	hosts[SHARED_HOSTS];
	int			reseal_state;	/* RESEAL_* */
	int64_t			reseal_retired;
	int64_t			reseal_unbound;
	struct shared_ws	ws[SHARED_WS_SESSIONS];
	int64_t			revoked[SHARED_REVOKED];
	u_int32_t		nrevoked;	/* revoked: key ids */
	int			log_level;	/* set by a reload */
	u_int64_t		log_gen;
	int64_t			push_waiters[SHARED_WS_WORKERS];
	int64_t			push_streams[SHARED_WS_WORKERS];
	struct shared_minute	minutes[SHARED_WS_WORKERS][SHARED_MINUTES];
};

void	shared_init(void);
const struct shared	*shared_get(void);
double	shared_bucket_le(int);
int	shared_status_code(int);
void	shared_request(int, int, u_int64_t);
void	shared_upstream(const char *, int, u_int64_t);
const char	*shared_circuit_state(const struct shared_host *, int64_t);
void	shared_refresh(const char *, int);
void	shared_pg_error(void);
int	shared_drain_arrive(void);
void	shared_websockets(int);
int	shared_rate_take(u_int64_t, u_int32_t, int64_t, u_int32_t *,
	    u_int32_t *);
void	shared_reseal(int, int64_t, int64_t);
int	shared_ws_open(u_int64_t, u_int32_t, u_int32_t);
void	shared_ws_close(u_int64_t, u_int32_t);
void	shared_ws_reset(u_int32_t);
void	shared_key_revoke(int64_t);
int	shared_key_revoked(int64_t);
void	shared_log_level(int);
void	shared_push(u_int32_t, int64_t, int64_t);
void	shared_push_totals(int64_t *, int64_t *);
void	shared_minute_refresh(int, int64_t);
void	shared_minutes(int64_t, struct shared_minute *);

/* log.c: one structured line per event on stdout. */
#define LOG_LVL_DEBUG		0
#define LOG_LVL_INFO		1
#define LOG_LVL_WARN		2
#define LOG_LVL_ERROR		3

int	log_setup(const char *, const char *, char *, size_t);
void	log_kv(int, const char *, ...);
void	log_context(const char *, const char *);
int	log_enabled(int);
int	log_level(void);
void	log_level_set(int);

/* store.c: all SQL. Startup work is synchronous (parent), the rest async. */
int	store_migrate(char *, size_t);
int	store_upsert_sources(struct source *, size_t, char *, size_t);
void	store_register(void);
void	store_db_watch(void (*)(int));

/*
 * Rows come back decoded: a callback gets the struct store_rows of its
 * statement, with n rows in the one array named at the statement's
 * function (or the leading numbers of its first row in num). Strings
 * point into the result and live only while the callback runs (NULL is
 * SQL NULL); a number that may be NULL is STORE_NULL then. The store
 * frees the arrays once the callback returns.
 */
#define STORE_NULL	INT64_MIN

struct token_row {			/* store_load, store_reload */
	int64_t		id;
	const char	*name;
	const char	*kind;
	const char	*access;
	int		require_header;
	int		enabled;
	int		paused;
	const char	*token_sealed;
	const char	*token_type;
	int64_t		generation;	/* numbers: 0 when NULL */
	const char	*fingerprint;
	int64_t		expires_ms;
	int64_t		refresh_ms;
	int64_t		next_ms;
	int64_t		failures;
	const char	*last_error;
	int		prewarming_paused;
	int64_t		last_duration_ms;	/* STORE_NULL: none */
	int		leased;
	int64_t		lifetime_ms;
	int64_t		cert_not_after_ms;	/* STORE_NULL: no mTLS */
	const char	*subject_source;	/* token_exchange */
	const char	*actor_source;
	int64_t		subject_generation;	/* 0 when NULL */
	const char	*auth_method;
	const char	*cert_subject;		/* NULL: no mTLS */
	const char	*host;		/* of token_url, lower case */
	const char	*subject;	/* "default": the source's token */
	const char	*state;
	const char	*signing_key_id;	/* NULL: no signing key */
};

struct source_view {			/* store_sources_view */
	const char	*name;
	const char	*kind;
	const char	*token_url;
	const char	*client_id;
	int		client_secret_set;
	const char	*auth_method;
	const char	*scope;
	const char	*audience;
	const char	*resource;
	int		refresh_token_set;
	const char	*username;
	int		password_set;
	const char	*token_path;
	const char	*expires_at_path;
	const char	*expires_in_path;
	int64_t		refresh_buffer;	/* numbers: STORE_NULL when NULL */
	int64_t		fallback_lifetime;
	const char	*access;
	int		require_header;
	int		enabled;
	int		paused;
	int64_t		created_ms;
	int64_t		updated_ms;
	int64_t		generation;
	const char	*fingerprint;
	int64_t		obtained_ms;
	int64_t		expires_ms;
	int64_t		refresh_ms;
	int64_t		next_ms;
	int64_t		failures;
	const char	*last_error;
	int64_t		last_duration_ms;
	int		leased;
	const char	*tls_cert_subject;
	int64_t		tls_cert_not_after_ms;
	int		tls_client_key_set;
	int		tls_ca_set;
	const char	*subject_source;
	const char	*subject_token_type;
	const char	*requested_token_type;
	const char	*actor_source;
	const char	*actor_token_type;
	int		waiting;	/* subject not valid */
	const char	*issuer;	/* signed JWTs */
	const char	*subject;
	const char	*assertion_audience;
	const char	*target_audience;
	const char	*key_generate;
	const char	*key_ids;	/* "a,b", oldest first */
	const char	*signing_key_id;
	/* authorization_code (c-authcode) */
	const char	*authorize_url;
	const char	*revocation_url;
	const char	*extra_authorize_params;	/* JSON object */
	const char	*device_authorization_url;	/* device_code */
};

/*
 * A stored source with its secrets opened (store_source_full, and the
 * lease of store_lease). The callback may take src (copy it, then zero
 * it); what is left is wiped and freed by the store. opened is 0 when a
 * secret cannot be opened, error says which.
 */
struct source_row {
	struct source	src;
	int		opened;
	char		error[KILN_ERR_MAX];
	int64_t		version;	/* store_source_full */
	int64_t		id;		/* the lease: */
	int64_t		generation;
	int64_t		expires_ms;
	int64_t		failures;
	const char	*seed_digest;
};

struct signing_key_row {		/* store_signing_keys */
	int64_t		source_id;
	const char	*kid;		/* NULL: the source has no key */
	const char	*alg;
	const char	*public_jwk;
	int64_t		activate_ms;
	int		generated;
	const char	*generate;	/* the source's key_generate */
	int64_t		version;
	const char	*token_url;
};

struct lease_row {			/* store_lease: one row */
	struct source_row	*source;	/* NULL: refused */
	const char		*why;
	int64_t			why_until;	/* 0 when NULL */
};

struct event_row {	/* store_events, _recent_events, _timeline */
	int64_t		id;		/* numbers: STORE_NULL when NULL */
	const char	*source;	/* store_recent_events only */
	const char	*trigger;
	int64_t		started_ms;	/* store_events only */
	int64_t		finished_ms;
	const char	*outcome;
	int64_t		duration_ms;
	int64_t		http_status;
	const char	*error;
	int64_t		generation;
	const char	*fingerprint;
};

struct key_row {		/* store_keys_load, _key_create, _keys_list */
	int64_t		id;
	const char	*name;
	const char	*role;
	const char	*hash;
	int64_t		created_ms;	/* STORE_NULL when NULL */
	int64_t		revoked_ms;
	const char	*sources;	/* "a,b", NULL: every source */
};

struct session_row {			/* store_sessions_load */
	const char	*hash;
	const char	*role;
	const char	*csrf;
	int64_t		expires_ms;
	int64_t		key_id;		/* 0: none */
};

struct audit_row {			/* store_audit_list */
	int64_t		id;
	int64_t		at_ms;
	const char	*principal_kind;
	const char	*principal;
	const char	*action;
	const char	*target;
	const char	*fields;	/* "a,b" */
	const char	*address;
	const char	*request_id;
	const char	*outcome;
};

struct webhook_row {			/* store_webhooks_list */
	int64_t		id;
	const char	*url;
	const char	*events;	/* "a,b" */
	int64_t		created_ms;
	int64_t		pending;
	int64_t		delivered;
	int64_t		failed;
};

/*
 * A webhook delivery (the outbox row), with one of its attempts when the
 * statement joins them (attempt STORE_NULL otherwise). secret is the
 * webhook's secret, opened, in store_webhook_claim only (NULL when it
 * cannot be opened); the store wipes it.
 */
struct delivery_row {
	int64_t		webhook_id;
	const char	*url;
	int64_t		id;		/* STORE_NULL: no delivery */
	const char	*event_id;
	const char	*type;
	int64_t		created_ms;
	const char	*source;
	const char	*subject;
	const char	*state;
	int64_t		generation;	/* numbers: STORE_NULL when NULL */
	const char	*fingerprint;
	int64_t		failures;
	const char	*error;
	const char	*status;
	int64_t		attempts;
	int64_t		next_ms;
	int64_t		last_status;
	const char	*last_error;
	int64_t		finished_ms;
	int64_t		attempt;
	int64_t		a_started_ms;
	int64_t		a_duration_ms;
	int64_t		a_status;
	const char	*a_error;
	char		*secret;
};

struct edge_row {			/* store_exchange_edges */
	const char	*name;
	const char	*subject;
	const char	*actor;		/* NULL: none */
};

/* secret, refresh, password, token, TLS client key */
#define STORE_SEALED		5
struct sealed_row {			/* store_reseal_scan */
	int64_t		id;
	const char	*name;
	const char	*subject;	/* "default": the source's row */
	const char	*url;
	const char	*blob[STORE_SEALED];	/* STORE_SEALED_COLS */
};

/*
 * num: the first three columns of row 0 as numbers (STORE_NULL when NULL
 * or no row), for the statements that answer ids and counts: the
 * generation of store_commit_success, the sessions ended by
 * store_key_revoke (num[2]), the expiry of store_session_create, the
 * counts of store_reseal_write and store_reseal_count.
 */
struct store_rows {
	size_t			n;
	int64_t			num[3];
	struct token_row	*tokens;
	struct source_view	*views;
	struct source_row	*source;
	struct lease_row	*lease;
	struct event_row	*events;
	struct key_row		*keys;
	struct session_row	*sessions;
	struct sealed_row	*sealed;
	struct audit_row	*audit;
	struct conn_row		*conns;
	struct webhook_row	*webhooks;
	struct delivery_row	*deliveries;
	struct edge_row		*edges;
	struct signing_key_row	*signing_keys;
	struct flow_row		*flows;		/* c-authcode */
	struct device_row	*devices;	/* store_device_claim */
};

typedef void	(*store_rows_cb)(const struct store_rows *, void *, int);
typedef void	(*store_names_cb)(const struct store_rows *, const char *,
		    int);

void	store_load(store_rows_cb, void *);
void	store_reload(const char *, store_names_cb);
void	store_announce(const char *);
void	store_lease(const char *, const char *, const char *, int64_t,
	    store_rows_cb, void *);
void	store_commit_success(struct attempt *, store_rows_cb, void *);
void	store_commit_failure(struct attempt *, store_rows_cb, void *);
void	store_release_leases(void);
void	store_lease_renew(int64_t, const char *, store_rows_cb, void *);
char	*store_upstream_digest(const struct source *);
int	store_key_bootstrap(const char *, char *, size_t);
void	store_keys_load(store_rows_cb, void *);
void	store_key_create(const char *, const char *, const char *,
	    const char *, const struct audit_who *, const char *,
	    store_rows_cb, void *);
void	store_keys_list(store_rows_cb, void *);
void	store_key_revoke(const char *, const struct audit_who *,
	    store_rows_cb, void *);
void	store_sources_view(const char *, store_rows_cb, void *);
void	store_sources_page(int64_t, const char *, store_rows_cb, void *);
void	store_source_full(const char *, store_rows_cb, void *);
void	store_source_create(const struct source *, const struct audit_who *,
	    const char *, store_rows_cb, void *);
void	store_source_patch(const struct source *, int64_t, int, int,
	    const struct audit_who *, const char *, store_rows_cb, void *);
void	store_source_delete(const char *, const struct audit_who *,
	    store_rows_cb, void *);
void	store_source_pause(const char *, int, const struct audit_who *,
	    store_rows_cb, void *);
void	store_prewarming_pause(int, const struct audit_who *, store_rows_cb,
	    void *);
void	store_events(const char *, int64_t, int64_t, store_rows_cb, void *);
void	store_ping(store_rows_cb, void *);
void	store_sessions_load(store_rows_cb, void *);
struct principal;
void	store_session_create(const char *, const char *,
	    const struct principal *, int64_t, const struct audit_who *,
	    store_rows_cb, void *);
void	store_session_delete(const char *, const struct audit_who *,
	    store_rows_cb, void *);
void	store_recent_events(store_rows_cb, void *);
void	store_reseal_scan(int64_t, const char *, store_rows_cb, void *);
void	store_reseal_write(int64_t, const char *, const char *,
	    char *const *, char *const *, store_rows_cb, void *);
void	store_reseal_count(store_rows_cb, void *);
void	store_signing_keys(const char *, store_rows_cb, void *);
int	store_signing_key_rotate(const char *, int, const char *, int64_t,
	    int64_t, store_rows_cb, void *);
void	store_signing_keys_settle(int64_t, const char *);
typedef void	(*store_reseal_fn)(void *, const char *, const char *,
		    const char *, const char *const *, char **);
void	store_sync_once(void);
void	store_exchange_edges(store_rows_cb, void *);
int	store_migrations_pending(int *, int *, char *, size_t);
int	store_reseal_sync(int, store_reseal_fn, void *, int64_t *, char *,
	    size_t);
void	store_webhook_create(const char *, const char *, const char *,
	    const struct audit_who *, store_rows_cb, void *);
void	store_webhooks_list(store_rows_cb, void *);
void	store_webhook_delete(const char *, const struct audit_who *,
	    store_rows_cb, void *);
void	store_webhook_deliveries(const char *, int64_t, int64_t,
	    store_rows_cb, void *);
void	store_webhook_claim(int64_t, int64_t, int64_t, store_rows_cb,
	    void *);
void	store_webhook_done(int64_t, int64_t, int, int64_t, const char *,
	    int64_t, int64_t, int64_t, int64_t, store_rows_cb, void *);
void	store_webhook_expired(store_rows_cb, void *);
void	store_webhooks_recent(store_rows_cb, void *);
void	store_webhooks_source(const char *, store_rows_cb, void *);
void	store_timeline(const char *, store_rows_cb, void *);

/* cache.c: per-worker token table, propagation, waiting requests. */
#define CACHE_VALID_MARGIN_MS	1000

struct cache_waiter {
	struct http_request		*req;
	struct cache_entry		*entry;
	int64_t				deadline;
	u_int64_t			epoch;
	int				linked;
	TAILQ_ENTRY(cache_waiter)	list;
	TAILQ_ENTRY(cache_waiter)	glist;
};

/*
 * What the current-token path reads comes last, from a cache line of its
 * own, up to a connection's subject in the entry's last bytes (cache.c):
 * three adjacent lines in all.
 */
struct cache_entry {
	int64_t			id;
	int			kind;
	int			paused;
	char			token_type[32];
	int64_t			generation;
	int64_t			refresh_ms;
	int64_t			next_ms;
	u_int32_t		failures;
	char			*last_error;
	u_int64_t		epoch;
	int			leased;
	int64_t			last_duration_ms;
	int			inflight;
	int64_t			retry_ms;
	int			seen;
	int			hot;		/* refresh.c: due soon */
	int64_t			lifetime_ms;	/* last token's, or 0 */
	const char		*refused;	/* on-demand: why not */
	int64_t			refused_until;
	void			*push;		/* push.c's, or NULL */
	int64_t			cert_not_after_ms;	/* 0: no mTLS */
	char			subject[KILN_NAME_MAX + 1];	/* exchange */
	char			actor[KILN_NAME_MAX + 1];
	int64_t			subject_generation;	/* exchanged from */
	int			waiting;	/* for a valid subject */
	int			auth_method;
	char			cert_subject[MTLS_SUBJECT_MAX];
	int			reauth;		/* needs_reauth */
	char			key_id[48];	/* signing kid, cut */
	TAILQ_HEAD(, cache_waiter)	waiters;
	TAILQ_ENTRY(cache_entry)	list;
	char			host[SHARED_HOST_LEN];	/* of its URL */

	/* The hot path's, together. */
	LIST_ENTRY(cache_entry)		hlink __attribute__((aligned(64)));
	u_int32_t		hash;		/* of name[/conn] */
	int			enabled;
	char			*conn;		/* subject, NULL: default */
	int			access;
	int			require_header;
	int64_t			expires_ms;
	char			*token;
	char			*answer;	/* JSON without expires_in */
	size_t			answer_len;
	size_t			answer_split;	/* where its value goes */
	char			fpr[KILN_FPR_LEN + 1];
	char			name[KILN_NAME_MAX + 1];
	char			conn_s[];	/* conn points here */
};

void			cache_init(void);
int			cache_loaded(void);
int			cache_paused(void);
struct cache_entry	*cache_lookup(const char *);
u_int32_t		cache_count(void);
struct cache_entry	*cache_first(void);
struct cache_entry	*cache_next(struct cache_entry *);
void			cache_reload(const char *);
void			cache_wait(struct cache_waiter *, struct http_request *,
			    struct cache_entry *, int64_t);
void			cache_unwait(struct cache_waiter *);
int			cache_valid(const struct cache_entry *, int64_t);
void			cache_answer(struct cache_entry *);
void			cache_refused(struct cache_entry *, const char *,
			    int64_t);
void			cache_listen(const char *,
			    void (*)(const char *));
void			cache_watch(void (*)(void));
void			cache_watch_due(void (*)(struct cache_entry *));
void			cache_watch_remove(
			    void (*)(const struct cache_entry *));
void			cache_watch_entry(
			    void (*)(struct cache_entry *, int));
#define CACHE_ENTRY_CHANGED	1
#define CACHE_ENTRY_REMOVED	2
void			cache_watch_generation(
			    void (*)(struct cache_entry *));

/* auth.c: principals, API keys, rate limits, the public allow-list. */
#define AUTH_HASH_LEN		64
#define PRINCIPAL_ANONYMOUS	0
#define PRINCIPAL_JWT		1
#define PRINCIPAL_KEY		2
#define PRINCIPAL_SESSION	3

#define SESSION_COOKIE		"kiln_session"
#define SESSION_LIFETIME	(8 * 3600)

struct principal {
	int		role;
	int		kind;
	u_int64_t	rate_key;
	char		id[80];
	char		session[AUTH_HASH_LEN + 1];
	char		csrf[33];
	int64_t		key_id;		/* a key, or a session of one */
	int64_t		expires_ms;	/* a JWT's exp */
	char		jti[64];	/* a JWT's jti, or "" */
	char		subject[64];	/* a JWT's sub */
};

void	auth_key_hash(const char *, char *);
char	*auth_key_generate(void);
void	auth_keys_reload(void);
int	auth_keys_ready(void);
int	auth_request(struct http_request *, struct principal *);
int	auth_key_unsure(const char *, char *);
void	auth_key_wait(struct api_pending *);
int	auth_allow(struct http_request *, const struct principal *, int);
int	auth_rate(struct http_request *, const struct principal *, int);
int	auth_public_allowed(struct http_request *);
int	auth_key_scope_allows(const struct principal *, const char *);
int	auth_credential(const char *, struct principal *);
void	auth_init(void);
int	auth_login_rate(struct http_request *);
void	auth_key_revoked(int64_t);
int	auth_key_live(int64_t);
void	auth_cookie_resolver(int (*)(struct http_request *,
	    struct principal *), int (*)(const char *));
void	auth_sessions_ended(void);
void	auth_revoke_watch(void (*)(int64_t));
void	auth_keys_watch(void (*)(void));
int	auth_principal_live(const struct principal *, int64_t);
void	auth_principal_drop(struct principal *);
int	auth_source_refused(const struct principal *, int, const char *,
	    const char **, const char **);

/* session.c: dashboard sessions, their CSRF tokens, the login form. */

void	session_init(void);
void	session_reload(void);
int	session_request(struct http_request *, struct principal *);
int	session_csrf_ok(struct http_request *, const struct principal *);
int	session_form_field(struct http_request *, const char *, char *,
	    size_t);
void	session_random_hex(char *, size_t);
int	session_alive(const char *);
int	session_role(const char *);
const char	*session_csrf(const char *);
void	session_forget(const char *);
int	session_unsure(struct http_request *, char *);
int	session_cookie(struct http_request *, const char *, char **);
void	session_wait(struct api_pending *);
void	session_add(const char *, int, const char *, int64_t, int64_t);
void	session_watch(void (*)(void));

/*
 * otel.c: OpenTelemetry spans, recorded into a per-worker ring and
 * exported as OTLP/HTTP JSON in batches. Ids are lowercase hex.
 */
#define OTEL_SAMPLER_ALWAYS_ON		0
#define OTEL_SAMPLER_ALWAYS_OFF		1
#define OTEL_SAMPLER_RATIO		2
#define OTEL_SAMPLER_PARENT		0x10	/* parentbased_ */

#define OTEL_KIND_INTERNAL	1
#define OTEL_KIND_SERVER	2
#define OTEL_KIND_CLIENT	3

struct otel_ctx {			/* a span being timed */
	char		trace_id[33];
	char		span_id[17];
	char		parent_id[17];	/* "": a root span */
	int		sampled;
	u_int64_t	start_ns;
};

struct otel_span;

void	otel_init(void);
void	otel_worker_init(void);
int	otel_on(void);
int	otel_sample(const char *, int, int);
void	otel_root(struct otel_ctx *, const char *, const char *);
void	otel_from(struct otel_ctx *, const char *);
void	otel_child(struct otel_ctx *, const struct otel_ctx *);
void	otel_traceparent(const struct otel_ctx *, char *);
u_int64_t	otel_now_ns(void);
struct otel_span	*otel_end(const struct otel_ctx *, int, const char *);
void	otel_attr_str(struct otel_span *, const char *, const char *);
void	otel_attr_int(struct otel_span *, const char *, int64_t);
void	otel_error(struct otel_span *, const char *);
void	otel_url_attrs(struct otel_span *, const char *);
void	otel_metrics(struct kore_buf *);

/* refresh.c: scheduler, leases, attempts. */
#define TRIGGER_SCHEDULE	"schedule"
#define TRIGGER_MIN_TTL		"min_ttl"
#define TRIGGER_REJECTED	"rejected"
#define TRIGGER_ADMIN		"admin"
#define TRIGGER_SUBJECT		"subject"	/* new subject token */

#define UPSTREAM_ADDR_LEN	48	/* an IPv6 address as text */

struct attempt {
	char			name[KILN_NAME_MAX + 1];
	const char		*trigger;
	int64_t			arg;
	int64_t			source_id;
	int64_t			generation;
	int64_t			expires_ms;
	u_int32_t		failures;
	int64_t			started_ms;
	int64_t			sent_ms;
	int64_t			duration_ms;
	long			http_status;
	char			id[128];	/* owner/started.seq: once */
	int			resend_refused;	/* curl wanted to resend */
	char			addr_refused[UPSTREAM_ADDR_LEN];
	struct source		src;
	struct oauth_request	oreq;
	struct oauth_answer	ans;
	char			*sealed_token;
	char			*sealed_refresh;
	char			*seed_digest;	/* as leased */
	char			fpr[KILN_FPR_LEN + 1];
	int64_t			refresh_ms;
	int64_t			next_ms;
	int			ok;
	char			error[KILN_ERR_MAX];
	char			request_id[64];
	char			traceparent[64];
	void			(*done)(struct attempt *);
	const char		*verdict;	/* on the host: up, down */
	char			why[16];	/* lease refused: why */
	int64_t			why_until;
	struct kore_timer	*renew;
	struct kore_curl	curl;
	char			subject[KILN_SUBJECT_MAX + 1];
	int			reauth;		/* the grant is gone */
	struct otel_ctx		otel;		/* the attempt's span */
	struct otel_ctx		otel_call;	/* upstream call, commit */
	int64_t			subject_generation;	/* exchange: used */
	const char		*url;		/* device.c: not token_url */
	struct kore_buf		*raw;		/* device.c: answer as is */
};

void	refresh_init(void);
int	refresh_busy(void);
void	refresh_forget(const struct cache_entry *);
int	refresh_request(struct cache_entry *, const char *, int64_t,
	    const char *, const char *);

/* upstream.c: the HTTP call to the identity provider. */
void	upstream_send(struct attempt *, void (*)(struct attempt *));
void	upstream_guard(CURL *, char *);
int	upstream_addr_refused(int, const u_int8_t *);

/* api.c: routing, request identity, JSON answers; the public endpoints. */
struct api_pending {
	struct http_request	*req;
	int			done;
	int			status;
	void			*g;
	char			code[32];
	char			message[KILN_ERR_MAX];
	char			name[KILN_NAME_MAX + 1];
	yajl_val		body;
	char			*secret;
	struct source		src;
	struct principal	principal;
	struct kore_buf		*html;
	const char		*redirect;
	int			cookie;
	int			resume;
	int64_t			version;
	int			with_refresh;
	int			upstream;
	void			(*render)(struct api_pending *,
				    const struct store_rows *, int);
	/* Answers a finished step itself (1), or leaves it to JSON (0). */
	int			(*finish)(struct http_request *,
				    struct api_pending *);
	struct audit_who	who;		/* of the request */
	char			fields[AUDIT_FIELDS_LEN];	/* audited */
};

struct api_state {
	int			route;
	int			form_redirect;
	u_int64_t		start_us;
	struct principal	principal;
	struct api_pending	*pending;
	int			stage;
	int			credential_waited;
	char			name[KILN_NAME_MAX + 1];
	int64_t			deadline;
	int64_t			min_ttl;
	int64_t			generation;
	u_int64_t		epoch;
	struct cache_waiter	waiter;
	char			request_id[64];
	char			traceparent[64];
	int			starting;	/* waits for the tables */
	struct http_request	*req;
	TAILQ_ENTRY(api_state)	starting_list;
	char			subject[KILN_SUBJECT_MAX + 1];	/* "": none */
	int			longpoll;	/* push.c: parked */
	int64_t			poll_until;
	char			last_fpr[KILN_FPR_LEN + 1];
	struct otel_ctx		otel;		/* the server span */
};

#define API_BODY_MAX		65536

int	kiln_dispatch(struct http_request *);
const char	*api_route_name(int);
int	api_route_count(void);

/* api_reply.c: JSON answers, the request body, pending steps. */
struct api_pending	*api_pending_start(struct http_request *,
			    struct api_state *, void (*)(struct api_pending *,
			    const struct store_rows *, int));
void	api_pending_cb(const struct store_rows *, void *, int);
void	api_pending_fail(struct api_pending *, int, const char *,
	    const char *);
void	api_pending_free(struct api_pending *);
int	api_body_json(struct http_request *, yajl_val *);
void	*api_json_begin(void);
void	api_json_send(struct http_request *, int, void *);
void	api_error(struct http_request *, int, const char *, const char *);

/*
 * Requests that wait for a table (dashboard sessions, API keys) loaded
 * after they came, by the hash of the credential they bring (p->name),
 * and the hashes such a table did not know: remembered in slots, so a
 * credential seen to be nobody's waits once, not on every request.
 */
struct api_waiter {
	struct api_pending		*p;
	int64_t				since;
	TAILQ_ENTRY(api_waiter)		list;
};

struct api_table_wait {
	TAILQ_HEAD(, api_waiter)	waiters;
	char				(*unknown)[AUTH_HASH_LEN + 1];
	size_t				slots;
};

void	api_wait_init(struct api_table_wait *, size_t);
void	api_wait_add(struct api_table_wait *, struct api_pending *);
void	api_wait_wake(struct api_table_wait *, int, int64_t,
	    int (*)(const char *));
int	api_wait_unknown(const struct api_table_wait *, const char *);
void	api_wait_remember(struct api_table_wait *, const char *);

/* api_public.c: current-token and rejected. */
int	api_current_token(struct http_request *, struct api_state *);
int	api_rejected(struct http_request *, struct api_state *);
int	api_stream(struct http_request *, struct api_state *);

/* api_admin.c: token sources, pre-warming, API keys. */
int	admin_tokens_list(struct http_request *, struct api_state *);
int	admin_tokens_create(struct http_request *, struct api_state *);
int	admin_token_get(struct http_request *, struct api_state *);
int	admin_token_patch(struct http_request *, struct api_state *);
int	admin_token_delete(struct http_request *, struct api_state *);
int	admin_token_refresh(struct http_request *, struct api_state *);
int	admin_token_events(struct http_request *, struct api_state *);
int	admin_prewarming_status(struct http_request *, struct api_state *);
int	admin_prewarming_refresh(struct http_request *, struct api_state *);
int	admin_prewarming_start(struct http_request *, struct api_state *);
int	admin_prewarming_stop(struct http_request *, struct api_state *);
int	admin_keys_list(struct http_request *, struct api_state *);
int	admin_keys_create(struct http_request *, struct api_state *);
int	admin_key_revoke(struct http_request *, struct api_state *);
struct api_pending	*admin_source_create(struct http_request *,
			    struct api_state *, yajl_val);
struct api_pending	*admin_source_patch(struct http_request *,
			    struct api_state *, yajl_val);
struct api_pending	*admin_key_create(struct http_request *,
			    struct api_state *, yajl_val);

/* dashboard.c: the live page, its WebSocket and its sessions. */
void	dash_init(void);
void	dash_changed(void);
void	dash_db_state(int);
void	dash_sessions_changed(void);
void	dash_shutdown(void);
int	dash_finish(struct http_request *, struct api_pending *);
int	dash_page(struct http_request *, struct api_state *);
int	dash_login_form(struct http_request *, struct api_state *);
int	dash_login(struct http_request *, struct api_state *);
int	dash_logout(struct http_request *, struct api_state *);
int	dash_ws(struct http_request *, struct api_state *);
int	dash_static(struct http_request *, struct api_state *);
int	dash_token_page(struct http_request *, struct api_state *);
void	dash_ws_connect(struct connection *);
void	dash_ws_message(struct connection *, u_int8_t, void *, size_t);
void	dash_ws_disconnect(struct connection *);
int	dash_viewer(struct http_request *, struct api_state *, int *);
void	dash_html_headers(struct http_request *);
void	dash_redirect(struct http_request *, const char *);

/* dash_views.c: the table's pages, the charts, the page of a token. */
void		dv_changed(void);
u_int64_t	dv_tokens(struct kore_buf *, int, const char *,
		    const struct dp_view *, u_int64_t);
void		dv_filter(struct kore_buf *, const struct dp_view *);
void		dv_charts(struct kore_buf *);
void		dv_token_timeline(struct api_pending *,
		    const struct store_rows *, int);
void		dv_token_history(struct api_pending *,
		    const struct store_rows *, int);
void		dv_webhooks(struct kore_buf *, const struct store_rows *);

/* reseal.c: secrets and tokens sealed again under the current key. */
#define RESEAL_PENDING		0
#define RESEAL_RUNNING		1
#define RESEAL_DONE		2

void	reseal_init(void);

struct reseal_tally {
	int		write;
	int64_t		rows;
	int64_t		values;		/* sealed values seen */
	int64_t		stale;		/* not under the key */
	int64_t		unopened;	/* open with no key held */
	int64_t		written;	/* swapped in the database */
};

int	reseal_sync(int, struct reseal_tally *, char *, size_t);
void	reseal_health(void *);
void	reseal_metrics(struct kore_buf *);

/* ops.c: health, readiness, metrics. */
void	ops_route_names(const char *(*)(int));
int	ops_health(struct http_request *, struct api_state *);
int	ops_health_detailed(struct http_request *, struct api_state *);
int	ops_metrics(struct http_request *, struct api_state *);

/* The audit log: store.c writes and lists it, api_audit.c serves it. */
void	store_audit_write(const struct audit_who *, const char *,
	    const char *, const char *, const char *, store_rows_cb, void *);
void	store_audit_list(const struct audit_query *, store_rows_cb, void *);
void	api_audit_who(struct http_request *, const struct principal *,
	    const char *, struct audit_who *);
int	api_audit_list(struct http_request *, struct api_state *);
struct api_pending	*dash_audit_start(struct http_request *,
			    struct api_state *);
struct api_pending	*dash_audit_refused(struct http_request *,
			    struct api_state *, const struct principal *,
			    const char *);
int	dash_audit(struct http_request *, struct api_state *);

/* Connections: store.c keeps them, api_conn.c serves them. */
struct conn_row {		/* store_conn_* */
	const char	*subject;
	const char	*state;
	int64_t		generation;	/* numbers: STORE_NULL when NULL */
	int64_t		expires_ms;
	const char	*fingerprint;
	int64_t		failures;
	const char	*last_error;
	int64_t		created_ms;
	int64_t		updated_ms;
};

void	store_conn_import(const char *, const char *, const char *,
	    const struct audit_who *, store_rows_cb, void *);
void	store_conn_list(const char *, const char *, const char *, int64_t,
	    store_rows_cb, void *);
void	store_conn_get(const char *, const char *, store_rows_cb, void *);
void	store_conn_events(const char *, const char *, int64_t,
	    store_rows_cb, void *);
void	store_conn_delete(const char *, const char *,
	    const struct audit_who *, store_rows_cb, void *);
struct cache_entry	*cache_lookup_conn(const char *, const char *);
struct cache_entry	*cache_any_first(void);
struct cache_entry	*cache_any_next(struct cache_entry *);
u_int32_t		cache_any_count(void);
int	api_conn_create(struct http_request *, struct api_state *);
int	api_conn_list(struct http_request *, struct api_state *);
int	api_conn_get(struct http_request *, struct api_state *);
int	api_conn_delete(struct http_request *, struct api_state *);
int	api_conn_current_token(struct http_request *, struct api_state *);
int	api_conn_rejected(struct http_request *, struct api_state *);
/* webhook.c: delivery of the webhooks' outbox, signed, retried. */
void	webhook_init(void);
void	webhook_kick(int64_t);

/* api_webhook.c: POST|GET /api/webhooks, DELETE, deliveries. */
int	admin_webhooks_list(struct http_request *, struct api_state *);
int	admin_webhooks_create(struct http_request *, struct api_state *);
int	admin_webhook_delete(struct http_request *, struct api_state *);
int	admin_webhook_deliveries(struct http_request *, struct api_state *);

/*
 * push.c: clients told of a new token as it comes: long-polls parked on
 * their cache entry (current-token?wait_for_change=true) and event
 * streams (GET /api/tokens/{name}/stream).
 */
void	push_init(void);
void	push_shutdown(void);
int	push_wait_parse(struct http_request *, struct api_state *);
int	push_wait(struct http_request *, struct api_state *,
	    struct cache_entry *, int64_t);
void	push_unpark(struct api_state *);
int	push_not_modified(struct http_request *, struct cache_entry *);
int	push_answer(struct http_request *, struct cache_entry *, int64_t);
int	push_stream_entry(struct http_request *, struct api_state *,
	    struct cache_entry *);

/* dash_manage.c: the dashboard's pages to manage sources and API keys. */
int	dm_sources_page(struct http_request *, struct api_state *);
int	dm_source_page(struct http_request *, struct api_state *);
int	dm_source_create(struct http_request *, struct api_state *);
int	dm_source_save(struct http_request *, struct api_state *);
int	dm_source_delete(struct http_request *, struct api_state *);
int	dm_keys_page(struct http_request *, struct api_state *);
int	dm_key_create(struct http_request *, struct api_state *);
int	dm_key_revoke(struct http_request *, struct api_state *);

/* api_jwks.c: a source's signing keys: jwks.json and their rotation. */
#define JWKS_MAX_AGE		60	/* seconds; < the default rollover */
int	api_jwks(struct http_request *, struct api_state *);
int	admin_key_rotate(struct http_request *, struct api_state *);
int	api_jwks_patch_origin(const struct source *, const char *, char *,
	    size_t);

/*
 * dash_conn.c: the dashboard's page of a source's connections. Its live
 * part rides the dashboard's WebSocket: dashboard.c hands the sockets
 * whose query names a page of dash_live's to it (open returns its state,
 * or NULL: not its page), tells it of news of the tokens (changed), and
 * sends what it renders (dash_live_send: 0 once the socket is gone).
 */
struct dash_live {
	void	*(*open)(const char *, const char *, u_int64_t);
	void	(*close)(void *);
	void	(*changed)(void);
};
void	dash_live(const struct dash_live *);
int	dash_live_send(u_int64_t, const char *, struct kore_buf *);
void	dconn_init(void);
int	dconn_page(struct http_request *, struct api_state *);
int	dconn_connect(struct http_request *, struct api_state *);
int	dconn_disconnect(struct http_request *, struct api_state *);
int	api_conn_create_form(struct http_request *, struct api_state *,
	    yajl_val);

/*
 * api_oauth.c: the authorization_code flow (c-authcode): a connection
 * started (POST .../connections), the browser's GET /oauth/callback,
 * and the revocation of a replaced or deleted connection's grant.
 * store.c keeps the flows (migration 013).
 */
struct flow_row {		/* store_flow_take, _done, _refresh */
	const char	*name;
	const char	*subject;
	const char	*verifier_sealed;
	const char	*return_to;	/* NULL: a page, no redirect */
	int		live;		/* not expired (take) */
	const char	*refresh_sealed;	/* the replaced one */
};

struct flow_commit {		/* store_flow_done */
	const char	*name;
	const char	*subject;
	const char	*sealed_token;
	const char	*token_type;
	const char	*fingerprint;
	int64_t		obtained_ms;
	int64_t		expires_ms;
	int64_t		refresh_ms;
	const char	*sealed_refresh;
	int64_t		started_ms;
	int64_t		duration_ms;
	int64_t		http_status;
};

void	store_flow_start(const char *, const char *, const char *,
	    const char *, const char *, int64_t, const struct audit_who *,
	    store_rows_cb, void *);
void	store_flow_take(const char *, store_rows_cb, void *);
void	store_flow_done(const struct flow_commit *, store_rows_cb, void *);
void	store_flow_failed(const char *, const char *, int64_t, int64_t,
	    int64_t, const char *, store_rows_cb, void *);
void	store_flow_refresh(const char *, const char *, store_rows_cb,
	    void *);
int64_t	store_code_sources_sync(char *, size_t);
int	api_oauth_start(struct http_request *, struct api_state *,
	    yajl_val);
int	api_oauth_callback(struct http_request *, struct api_state *);
int	api_oauth_delete(struct http_request *, struct api_state *);

/*
 * The device authorization grant (RFC 8628): api_device.c starts a flow
 * (POST .../connections of a device_code source), store.c keeps it,
 * device.c polls the token endpoint for it on a timer of every worker.
 */
struct device_row {			/* store_device_claim */
	int64_t		source_id;
	const char	*name;
	const char	*subject;
	const char	*device_code_sealed;
	int64_t		interval_s;
	int64_t		expires_ms;
};

void	store_device_start(const char *, const char *, const char *,
	    int64_t, int64_t, const struct audit_who *, store_rows_cb,
	    void *);
void	store_device_claim(int64_t, store_rows_cb, void *);
void	store_device_next(int64_t, const char *, int64_t, store_rows_cb,
	    void *);
void	store_device_end(const struct attempt *, store_rows_cb, void *);
void	store_device_success(const struct attempt *, store_rows_cb, void *);
void	device_init(void);
int	device_busy(void);
int	api_device_create(struct http_request *, struct api_state *,
	    const char *);

/*
 * The fast lane of changes (store.c for cache.c): reloads and announces
 * on the LISTEN connection, never queued behind the pool's jobs.
 */
#define STORE_LANE_RELOAD	1
#define STORE_LANE_ANNOUNCE	2
#define STORE_LANE_MAX		7900	/* a NOTIFY payload < 8000 bytes */
struct pg_conn;
struct pg_result;
int	store_lane_prepare(struct pg_conn *);
int	store_lane_send(struct pg_conn *, int, const char *, int);
void	store_lane_rows(struct pg_result *, struct store_rows *);
void	store_lane_free(struct store_rows *);
void	cache_announce(const char *);
u_int64_t	cache_changes(void);
void	store_load_page(int64_t, const char *, int, int, store_rows_cb,
	    void *);

#endif /* Kore */

#endif /* !__H_KILN_H */
