/*
 * store.c: every SQL statement of kiln, always with parameters.
 *
 * The parent runs the migrations and upserts the sources file with a
 * plain blocking libpq connection before any worker exists. Workers only
 * use asynchronous kore_pgsql jobs: one job is one statement whose
 * callback runs exactly once, with the result or with an error. Writes
 * that belong together are one statement (data-modifying CTEs) so they
 * commit together and a NOTIFY in them is sent on commit.
 */

#include <sys/types.h>

#include <dirent.h>
#include <poll.h>
#include <stddef.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <yajl/yajl_gen.h>

#include <kore/kore.h>
#include <kore/http.h>
#include <kore/pgsql.h>
#include <kore/curl.h>

#include "kiln.h"

#define STORE_DB		"db"
#define STORE_PARAMS_MAX	56
#define STORE_MIGRATE_LOCK	"7163021"
#define STORE_CONNECT_TRIES	60
#define STORE_BATCH_MAX		7900

/*
 * Source names sent as one statement ($1, comma-separated): while one
 * batch is in flight the next one gathers, so the statements per second
 * stay bounded however many names come.
 */
struct store_batch {
	const char		*query;
	store_names_cb		cb;
	struct kore_buf		*pending;
	char			*inflight;
};

struct store_job {
	struct kore_pgsql	sql;
	const char		*query;
	int			nparams;
	char			*values[STORE_PARAMS_MAX];
	int			lengths[STORE_PARAMS_MAX];
	int			formats[STORE_PARAMS_MAX];
	store_rows_cb		cb;
	void			*arg;
	int			done;
	int			releasing;
};

typedef void	(*store_decode)(PGresult *, struct store_job *,
		    struct store_rows *);

/*
 * The signing settings of a source s2 (jwt_bearer, private_key_jwt), and
 * its key k that signs now: the newest active one, else (all of them
 * waiting to become active) the oldest.
 */
#define Q_SIGNING_COLS							\
    "SELECT s2.assertion_issuer, s2.assertion_subject, "		\
    "s2.assertion_audience, s2.target_audience, s2.key_generate"
#define Q_SIGNING_KEY							\
    "LEFT JOIN LATERAL (SELECT kid, alg, private_key_sealed, "		\
    "activate_after FROM source_signing_keys k0 "			\
    "WHERE k0.source_id = s2.id ORDER BY k0.activate_after > now(), "	\
    "CASE WHEN k0.activate_after <= now() THEN k0.activate_after END "	\
    "DESC NULLS LAST, k0.activate_after LIMIT 1) k ON true"

/*
 * A token row's columns (dec_tokens) up to its host, subject, state and
 * signing key id, which each statement finds its own way.
 */
#define TOKEN_ROW_COLS							\
    "SELECT s.id, s.name, s.kind, s.access, s.require_header, s.enabled, " \
    "s.paused, t.token_sealed, t.token_type, t.generation, t.fingerprint, " \
    "kiln_ms(t.expires_at), kiln_ms(t.refresh_at), " \
    "kiln_ms(t.next_attempt_at), t.failures, t.last_error, " \
    "COALESCE((SELECT value = 'true' FROM settings " \
    "WHERE key = 'prewarming_paused'), false), t.last_duration_ms, " \
    "COALESCE(t.lease_until > now(), false), " \
    "kiln_ms(t.expires_at) - kiln_ms(t.obtained_at), " \
    "kiln_ms(s.tls_cert_not_after), s.subject_source, s.actor_source, " \
    "t.subject_generation, s.auth_method, s.tls_cert_subject, "

static const char q_load[] =
    TOKEN_ROW_COLS
    "kiln_host(s.token_url), t.subject, t.state, "
    "(SELECT k.kid FROM token_sources s2 "
    Q_SIGNING_KEY " WHERE s2.id = s.id) "
    "FROM token_sources s JOIN tokens t ON t.source_id = s.id "
    "WHERE $1::text IS NULL OR s.name = ANY(string_to_array($1, ','))";

/*
 * The lease, with why it was refused when it was. c decides from this
 * statement's snapshot: a scheduled attempt must be due; an on-demand one
 * (min_ttl, rejected) must be needed, and is refused while the source or
 * pre-warming is paused, during the failure backoff, within
 * $6 seconds of the last one (the budget), and like a scheduled one while
 * the host's circuit is open; once the open period is over, h lets one
 * attempt through as the probe. The operator's (admin) is only
 * single-flight. l re-checks on the locked row what a concurrent lease
 * may have changed. One row always: the lease columns (0-21, the last
 * the refresh seed digest) are NULL when refused, then "why" (22) and
 * the time worth retrying at (23).
 */
static const char q_lease[] =
    "WITH p AS (SELECT COALESCE((SELECT value = 'true' FROM settings "
    "WHERE key = 'prewarming_paused'), false) AS paused), "
    "c AS (SELECT t.source_id, u.host, CASE "
    "WHEN NOT s.enabled THEN 'disabled' "
    "WHEN t.state IN ('needs_reauth', 'revoked') THEN 'reauth' "
    "WHEN $4 = 'schedule' AND (t.next_attempt_at > now() OR s.paused "
    "OR p.paused) THEN 'not_due' "
    "WHEN $4 = 'min_ttl' AND t.expires_at >= now() + "
    "$5::bigint * interval '1 second' THEN 'fresh' "
    "WHEN $4 = 'rejected' AND (t.generation <> $5::bigint OR "
    "t.rejected_generation IS NOT DISTINCT FROM $5::bigint) THEN 'fresh' "
    "WHEN $4 = 'subject' AND (s.paused OR p.paused OR "
    "t.subject_generation >= $5::bigint) THEN 'fresh' "
    "WHEN $4 NOT IN ('schedule', 'min_ttl', 'rejected') THEN 'ok' "
    "WHEN s.paused OR p.paused THEN 'paused' "
    "WHEN $4 <> 'schedule' AND t.failures > 0 AND "
    "t.next_attempt_at > now() THEN 'backoff' "
    "WHEN $4 <> 'schedule' AND t.last_ondemand_at > now() - "
    "$6::bigint * interval '1 second' THEN 'budget' "
    "WHEN u.open_until > now() OR u.probe_until > now() THEN 'circuit' "
    "WHEN u.open_until IS NOT NULL THEN 'probe' "
    "ELSE 'ok' END AS why, "
    "kiln_ms(t.next_attempt_at) AS backoff_ms, "
    "kiln_ms(t.last_ondemand_at) + $6::bigint * 1000 AS budget_ms, "
    "CASE WHEN u.open_until > now() THEN kiln_ms(u.open_until) "
    "ELSE kiln_ms(now()) + 1000 END AS circuit_ms "
    "FROM token_sources s JOIN tokens t ON t.source_id = s.id "
    "CROSS JOIN p LEFT JOIN upstream_hosts u "
    "ON u.host = kiln_host(s.token_url) WHERE s.name = $1 "
    "AND t.subject = $7), "
    "h AS (UPDATE upstream_hosts u SET probe_until = now() + "
    "$3::bigint * interval '1 millisecond' FROM c "
    "WHERE c.why = 'probe' AND u.host = c.host "
    "AND u.open_until <= now() "
    "AND (u.probe_until IS NULL OR u.probe_until <= now()) "
    "RETURNING u.host), "
    "l AS (UPDATE tokens t SET lease_owner = $2, "
    "lease_until = now() + $3::bigint * interval '1 millisecond', "
    "rejected_generation = CASE WHEN $4 = 'rejected' THEN $5::bigint "
    "ELSE t.rejected_generation END, "
    "last_ondemand_at = CASE WHEN $4 IN ('min_ttl', 'rejected') "
    "THEN now() ELSE t.last_ondemand_at END "
    "FROM token_sources s, c "
    "WHERE t.source_id = s.id AND s.id = c.source_id AND t.subject = $7 "
    "AND (c.why = 'ok' OR (c.why = 'probe' AND EXISTS (SELECT 1 FROM h))) "
    "AND (t.lease_until IS NULL OR t.lease_until < now()) "
    "AND CASE $4 "
    "WHEN 'schedule' THEN t.next_attempt_at <= now() "
    "WHEN 'min_ttl' THEN t.expires_at IS NULL OR "
    "t.expires_at < now() + $5::bigint * interval '1 second' "
    "WHEN 'rejected' THEN t.generation = $5::bigint AND "
    "t.rejected_generation IS DISTINCT FROM $5::bigint "
    "WHEN 'subject' THEN t.subject_generation IS NULL OR "
    "t.subject_generation < $5::bigint "
    "ELSE true END "
    "AND ($4 NOT IN ('min_ttl', 'rejected') OR t.last_ondemand_at IS NULL "
    "OR t.last_ondemand_at <= now() - $6::bigint * interval '1 second') "
    "RETURNING s.id, s.kind, s.token_url, s.client_id, "
    "s.client_secret_sealed, s.auth_method, s.scope, s.audience, "
    "s.resource, CASE WHEN t.subject = 'default' THEN "
    "s.refresh_token_sealed ELSE t.refresh_token_sealed END, "
    "s.username, s.password_sealed, "
    "s.token_path, s.expires_at_path, s.expires_in_path, "
    "s.refresh_buffer, s.fallback_lifetime, t.generation, "
    "kiln_ms(t.expires_at), t.failures, "
    "set_config('synchronous_commit', 'off', true), "
    "s.refresh_seed_digest) "
    "SELECT l.*, w.why, CASE w.why WHEN 'backoff' THEN c.backoff_ms "
    "WHEN 'budget' THEN c.budget_ms WHEN 'circuit' THEN c.circuit_ms "
    "END, x.tls_client_cert, x.tls_client_key_sealed, x.tls_ca, "
    "x.subject_source, x.subject_token_type, x.requested_token_type, "
    "x.actor_source, x.actor_token_type, j.* "
    "FROM c LEFT JOIN l ON true "
    "LEFT JOIN token_sources x ON x.id = l.id "
    "CROSS JOIN LATERAL (SELECT CASE "
    "WHEN l.id IS NOT NULL THEN 'leased' "
    "WHEN c.why = 'probe' AND NOT EXISTS (SELECT 1 FROM h) "
    "THEN 'circuit' WHEN c.why IN ('ok', 'probe') THEN 'busy' "
    "ELSE c.why END AS why) w "
    "LEFT JOIN LATERAL (" Q_SIGNING_COLS ", k.kid, k.alg, "
    "k.private_key_sealed FROM token_sources s2 " Q_SIGNING_KEY
    " WHERE s2.id = l.id) j ON true";

static const char q_success[] =
    "WITH t AS (UPDATE tokens SET token_sealed = $3, token_type = $4, "
    "generation = generation + 1, fingerprint = $5, "
    "obtained_at = kiln_ts($6), expires_at = kiln_ts($7), "
    "refresh_at = kiln_ts($8), next_attempt_at = kiln_ts($8), "
    "lease_owner = NULL, lease_until = NULL, failures = 0, "
    "last_error = NULL, last_duration_ms = $9, updated_at = now(), "
    "subject_generation = COALESCE($15::bigint, subject_generation), "
    "state = 'active', refresh_token_sealed = CASE WHEN $16 <> 'default' "
    "AND $10::text IS NOT NULL THEN $10 ELSE refresh_token_sealed END "
    "WHERE source_id = $1 AND lease_owner = $2 AND subject = $16 "
    "RETURNING generation), "
    "r AS (UPDATE token_sources SET refresh_token_sealed = $10 "
    "WHERE id = $1 AND $10::text IS NOT NULL AND $16 = 'default' "
    "AND refresh_seed_digest IS NOT DISTINCT FROM $14 RETURNING id), "
    "e AS (INSERT INTO refresh_events (source_id, trigger, started_at, "
    "outcome, duration_ms, http_status, error, generation, fingerprint, "
    "owner, subject, attempt) SELECT $1, $11, kiln_ts($12), "
    "CASE WHEN g.gen IS NULL THEN 'failure' ELSE 'success' END, $9, $13, "
    "CASE WHEN g.gen IS NULL THEN 'lease lost before commit' END, "
    "g.gen, $5, $2, NULLIF($16, 'default'), $17 "
    "FROM (SELECT (SELECT generation FROM t) AS gen) g "
    "ON CONFLICT (attempt) WHERE attempt IS NOT NULL DO NOTHING "
    "RETURNING id), "
    "u AS (UPDATE upstream_hosts SET failures = 0, open_until = NULL, "
    "probe_until = NULL, updated_at = now() "
    "WHERE host = (SELECT kiln_host(token_url) FROM token_sources "
    "WHERE id = $1) AND (failures > 0 OR open_until IS NOT NULL) "
    "RETURNING host), "
    /* The webhooks' outbox, in this commit: o is the row before it. */
    "o AS (SELECT failures FROM tokens WHERE source_id = $1 "
    "AND subject = $16), "
    "v AS MATERIALIZED (SELECT x.type, gen_random_uuid() AS eid "
    "FROM t, o, (VALUES ('token.recovered'), ('token.refreshed')) "
    "x(type) WHERE x.type = 'token.refreshed' OR o.failures > 0), "
    "w AS (INSERT INTO webhook_deliveries (webhook_id, event_id, type, "
    "source, subject, state, generation, fingerprint, failures) "
    "SELECT h.id, v.eid, v.type, s.name, $16, 'valid', t.generation, "
    "$5, 0 "
    "FROM v, t, webhooks h, token_sources s WHERE s.id = $1 "
    "AND v.type = ANY (h.events) RETURNING id) "
    "SELECT (SELECT generation FROM t), (SELECT count(*) FROM r), "
    "(SELECT count(*) FROM e)";

/*
 * $9 is what the attempt says about the host: "down" (no answer, 5xx)
 * counts towards opening its circuit, "up" (any other answer) closes it,
 * "none" (never sent) says nothing.
 */
static const char q_failure[] =
    "WITH t AS (UPDATE tokens SET lease_owner = NULL, lease_until = NULL, "
    "failures = failures + 1, last_error = $3, last_duration_ms = $4, "
    "next_attempt_at = CASE WHEN $13 THEN now() + interval '100 years' "
    "ELSE kiln_ts($5) END, updated_at = now(), "
    "state = CASE WHEN $13 THEN 'needs_reauth' ELSE state END "
    "WHERE source_id = $1 AND lease_owner = $2 AND subject = $12 "
    "RETURNING generation, failures, fingerprint), "
    "e AS (INSERT INTO refresh_events (source_id, trigger, started_at, "
    "outcome, duration_ms, http_status, error, owner, subject, attempt) "
    "VALUES ($1, $6, kiln_ts($7), 'failure', $4, $8, $3, $2, "
    "NULLIF($12, 'default'), $14) "
    "ON CONFLICT (attempt) WHERE attempt IS NOT NULL DO NOTHING "
    "RETURNING id), "
    "d AS (INSERT INTO upstream_hosts AS u (host, failures, open_until) "
    "SELECT kiln_host(token_url), 1, CASE WHEN $10::int <= 1 THEN now() + "
    "$11::bigint * interval '1 millisecond' END "
    "FROM token_sources WHERE id = $1 AND $9 = 'down' "
    "ON CONFLICT (host) DO UPDATE SET failures = u.failures + 1, "
    "open_until = CASE WHEN u.failures + 1 >= $10::int THEN now() + "
    "$11::bigint * interval '1 millisecond' ELSE u.open_until END, "
    "probe_until = NULL, updated_at = now() RETURNING host), "
    "a AS (UPDATE upstream_hosts SET failures = 0, open_until = NULL, "
    "probe_until = NULL, updated_at = now() WHERE $9 = 'up' "
    "AND host = (SELECT kiln_host(token_url) FROM token_sources "
    "WHERE id = $1) AND (failures > 0 OR open_until IS NOT NULL) "
    "RETURNING host), "
    /* token.failing on the first failure only, in this commit. */
    "g AS MATERIALIZED (SELECT gen_random_uuid() AS eid), "
    "f AS (INSERT INTO webhook_deliveries (webhook_id, event_id, type, "
    "source, subject, state, generation, fingerprint, failures, error) "
    "SELECT h.id, g.eid, 'token.failing', s.name, $12, 'failing', "
    "t.generation, t.fingerprint, t.failures, $3 "
    "FROM t, g, webhooks h, token_sources s WHERE t.failures = 1 "
    "AND s.id = $1 AND 'token.failing' = ANY (h.events) RETURNING id), "
    /* connection.needs_reauth as it enters it (q: the row before). */
    "n AS MATERIALIZED (SELECT gen_random_uuid() AS eid), "
    "q AS (SELECT state FROM tokens WHERE source_id = $1 "
    "AND subject = $12), "
    "r AS (INSERT INTO webhook_deliveries (webhook_id, event_id, type, "
    "source, subject, state, generation, fingerprint, failures, error) "
    "SELECT h.id, n.eid, 'connection.needs_reauth', s.name, $12, "
    "'needs_reauth', t.generation, t.fingerprint, t.failures, $3 "
    "FROM t, n, q, webhooks h, token_sources s WHERE $13 AND s.id = $1 "
    "AND q.state <> 'needs_reauth' "
    "AND 'connection.needs_reauth' = ANY (h.events) RETURNING id) "
    "SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM e)";

/*
 * Changes of tokens are announced after their commit, in batches, and
 * without waiting for the WAL flush: PostgreSQL serializes the commits of
 * notifying transactions (flush included) under one lock, which capped
 * refreshes at a few hundred per second when every commit notified.
 */
static const char q_announce[] =
    "SELECT set_config('synchronous_commit', 'off', true), "
    "pg_notify('kiln_tokens', $1)";

static const char q_renew[] =
    "UPDATE tokens SET lease_until = now() + $3::bigint * "
    "interval '1 millisecond' WHERE source_id = $1 AND lease_owner = $2 "
    "AND subject = $4";

static const char q_release[] =
    "UPDATE tokens SET lease_owner = NULL, lease_until = NULL "
    "WHERE lease_owner = $1";

static const char q_migration_seen[] =
    "SELECT 1 FROM schema_migrations WHERE version = $1";

static const char q_migration_done[] =
    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)";

static const char q_source_digests[] =
    "SELECT name, config_digest, refresh_seed_digest, token_url, "
    "refresh_token_sealed IS NOT NULL FROM token_sources "
    "ORDER BY name COLLATE \"C\"";

/* Who takes a token from whom: the admin API refuses cycles. */
static const char q_exchange_edges[] =
    "SELECT name, subject_source, actor_source FROM token_sources "
    "WHERE kind = 'token_exchange'";

/*
 * A new signing key (kid $k, NULL: none; alg, sealed key, public JWK,
 * generated) of a created or changed source s: a given key is added, or
 * sealed again when held (for the origin it now goes to); a generated
 * one only when the source holds no generated key (a sources file says
 * "generate" at every start). The update drops the others (d) when a
 * key is given.
 */
#define Q_KEY_ADD(k, a, p, j, g)					\
    "k AS (INSERT INTO source_signing_keys (source_id, kid, alg, "	\
    "private_key_sealed, public_jwk, generated) "			\
    "SELECT s.id, $" k ", $" a ", $" p ", $" j ", $" g "::boolean "	\
    "FROM s WHERE $" k "::text IS NOT NULL AND NOT ($" g "::boolean "	\
    "AND EXISTS (SELECT 1 FROM source_signing_keys x "			\
    "WHERE x.source_id = s.id AND x.generated)) "			\
    "ON CONFLICT (source_id, kid) DO UPDATE SET alg = EXCLUDED.alg, "	\
    "private_key_sealed = EXCLUDED.private_key_sealed, "		\
    "public_jwk = EXCLUDED.public_jwk, generated = EXCLUDED.generated), "

/* A sources file moved the source: its generated keys cannot follow. */
static const char q_signing_keys_moved[] =
    "DELETE FROM source_signing_keys k USING token_sources s "
    "WHERE s.name = $1 AND k.source_id = s.id AND k.generated";

/*
 * The 22 parameters of a source row, $1..$22 of insert and update, then
 * the 5 of mutual TLS and 5 of token exchange ($23..$32 of insert,
 * $25..$34 of update), then the 5 signing settings and the 5 of a new
 * signing key ($33..$42 of insert, $35..$44 of update); the audit's last.
 */
#define SOURCE_TLS_PARAMS	10	/* and the 5 of token exchange */
#define SOURCE_JWS_PARAMS	10	/* settings, then a new key */
#define SOURCE_CODE_PARAMS	3	/* authorization_code, after audit */
#define SOURCE_DEVICE_PARAMS	1	/* device_code, last */
#define SOURCE_CREATE_PARAMS						\
	(22 + SOURCE_TLS_PARAMS + SOURCE_JWS_PARAMS + 5 + SOURCE_CODE_PARAMS + \
	SOURCE_DEVICE_PARAMS)
#define SOURCE_PATCH_PARAMS	(SOURCE_CREATE_PARAMS + 2)
struct source_params {
	const char	*v[22];
	const char	*tls[SOURCE_TLS_PARAMS];
	const char	*jws[SOURCE_JWS_PARAMS];
	char		*tls_key;
	char		not_after[24];
	char		subject[MTLS_SUBJECT_MAX];
	char		*secret;
	char		*refresh;
	char		*password;
	char		*digest;
	char		*seed;
	char		rb[24];
	char		fl[24];
	char		*key_sealed;
	char		*key_jwk;
	char		*key_kid;
	const char	*code[SOURCE_CODE_PARAMS];	/* c-authcode */
};

/*
 * The audit row of an admin change, in the change's own statement (so
 * in its transaction: both or neither): a row for each row of the CTE
 * from, none when nothing changed. k is the first of the four
 * parameters of struct audit_who (audit_params): kind, principal,
 * address, request id; p, a and r are the next three. A NULL kind (the
 * sources file, applied at start) writes no row.
 */
#define AUDIT_CTE(k, p, a, r, action, target, fields, from)		\
    "au AS (INSERT INTO audit_events (principal_kind, principal, "	\
    "action, target, fields, address, request_id) SELECT $" k ", "	\
    "kiln_audit_principal($" k ", $" p "), " action ", " target ", "	\
    "COALESCE(string_to_array(" fields ", ','), '{}'), $" a "::inet, "	\
    "$" r " FROM " from " WHERE $" k " IS NOT NULL RETURNING id) "

/*
 * The audit log (migration 009). A change writes its row in its own
 * statement (AUDIT_CTE); what changes nothing (a forced refresh, a
 * refused login) writes one row here.
 */
static const char q_audit_write[] =
    "INSERT INTO audit_events (principal_kind, principal, address, "
    "request_id, action, target, fields, outcome) VALUES ($1, "
    "kiln_audit_principal($1, $2), $3::inet, $4, $5, $6, "
    "COALESCE(string_to_array($7, ','), '{}'), $8) RETURNING id";

static const char q_audit_list[] =
    "SELECT id, kiln_ms(at), principal_kind, principal, action, target, "
    "array_to_string(fields, ','), host(address), request_id, outcome "
    "FROM audit_events WHERE ($1::bigint IS NULL OR id < $1::bigint) "
    "AND ($2::text IS NULL OR action = $2) "
    "AND ($3::text IS NULL OR principal = $3) "
    "AND ($4::text IS NULL OR target = $4) "
    "AND ($5::bigint IS NULL OR at >= kiln_ts($5::bigint)) "
    "AND ($6::bigint IS NULL OR at < kiln_ts($6::bigint)) "
    "ORDER BY id DESC LIMIT $7::integer";

static const char q_keys_load[] =
    "SELECT id, role, key_hash, array_to_string(sources, ',') "
    "FROM api_keys WHERE revoked_at IS NULL";

static const char q_key_bootstrap[] =
    "INSERT INTO api_keys (name, role, key_hash) "
    "VALUES ('bootstrap', 'admin', $1) ON CONFLICT (key_hash) DO NOTHING";

static const char q_key_create[] =
    "WITH k AS (INSERT INTO api_keys (name, role, key_hash, sources) "
    "VALUES ($1, $2, $3, string_to_array($4, ',')) "
    "RETURNING id, name, role, created_at, sources), "
    AUDIT_CTE("5", "6", "7", "8", "'key.create'", "k.id::text", "$9", "k")
    "SELECT k.id, k.name, k.role, kiln_ms(k.created_at), "
    "pg_notify('kiln_keys', ''), array_to_string(k.sources, ',') FROM k";

static const char q_keys_list[] =
    "SELECT id, name, role, kiln_ms(created_at), kiln_ms(revoked_at), "
    "array_to_string(sources, ',') FROM api_keys ORDER BY id";

/* The key's sessions die with it; every worker learns the id at once. */
static const char q_key_revoke[] =
    "WITH k AS (UPDATE api_keys SET revoked_at = now() "
    "WHERE id = $1 AND revoked_at IS NULL RETURNING id), "
    "s AS (DELETE FROM dashboard_sessions WHERE key_id IN "
    "(SELECT id FROM k) OR principal IN (SELECT 'key:' || id FROM k) "
    "RETURNING id_hash), "
    AUDIT_CTE("2", "3", "4", "5", "'key.revoke'", "k.id::text", "NULL",
    "k")
    "SELECT k.id, pg_notify('kiln_keys', k.id::text), "
    "(SELECT count(*) FROM s) FROM k";

/* A source as the API shows it: q_sources_view, q_sources_page. */
#define SOURCE_VIEW_COLS							\
    "SELECT s.name, s.kind, s.token_url, s.client_id, " \
    "s.client_secret_sealed IS NOT NULL, s.auth_method, s.scope, " \
    "s.audience, s.resource, s.refresh_token_sealed IS NOT NULL, " \
    "s.username, s.password_sealed IS NOT NULL, s.token_path, " \
    "s.expires_at_path, s.expires_in_path, s.refresh_buffer, " \
    "s.fallback_lifetime, s.access, s.require_header, s.enabled, " \
    "s.paused, kiln_ms(s.created_at), kiln_ms(s.updated_at), " \
    "t.generation, t.fingerprint, kiln_ms(t.obtained_at), " \
    "kiln_ms(t.expires_at), kiln_ms(t.refresh_at), " \
    "kiln_ms(t.next_attempt_at), t.failures, t.last_error, " \
    "t.last_duration_ms, COALESCE(t.lease_until > now(), false), " \
    "s.tls_cert_subject, kiln_ms(s.tls_cert_not_after), " \
    "s.tls_client_key_sealed IS NOT NULL, s.tls_ca IS NOT NULL, " \
    "s.subject_source, s.subject_token_type, s.requested_token_type, " \
    "s.actor_source, s.actor_token_type, s.kind = 'token_exchange' AND " \
    "NOT EXISTS (SELECT 1 FROM token_sources s2 JOIN tokens t2 " \
    "ON t2.source_id = s2.id AND t2.subject = 'default' " \
    "WHERE s2.name = s.subject_source " \
    "AND s2.enabled AND t2.expires_at > now()), " \
    "s.assertion_issuer, s.assertion_subject, s.assertion_audience, " \
    "s.target_audience, s.key_generate, (SELECT string_agg(k1.kid, ',' " \
    "ORDER BY k1.activate_after) FROM source_signing_keys k1 " \
    "WHERE k1.source_id = s.id), (SELECT k.kid FROM token_sources s2 " \
    Q_SIGNING_KEY " WHERE s2.id = s.id), " \
    "s.authorize_url, s.revocation_url, s.extra_authorize_params, " \
    "s.device_authorization_url " \
    "FROM token_sources s JOIN tokens t ON t.source_id = s.id " \
    "AND t.subject = 'default' "

static const char q_sources_view[] =
    SOURCE_VIEW_COLS
    "WHERE $1::text IS NULL OR s.name = $1 ORDER BY s.name";

/* A page of q_sources_view's rows after a name (the dashboard's list). */
static const char q_sources_page[] =
    SOURCE_VIEW_COLS
    "WHERE s.name > $2 ORDER BY s.name LIMIT $1::integer";

static const char q_source_full[] =
    "SELECT id, kind, token_url, client_id, client_secret_sealed, "
    "auth_method, scope, audience, resource, refresh_token_sealed, "
    "username, password_sealed, token_path, expires_at_path, "
    "expires_in_path, refresh_buffer, fallback_lifetime, access, "
    "require_header, enabled, config_version, tls_client_cert, "
    "tls_client_key_sealed, tls_ca, subject_source, subject_token_type, "
    "requested_token_type, actor_source, actor_token_type, "
    "assertion_issuer, assertion_subject, assertion_audience, "
    "target_audience, key_generate, EXISTS (SELECT 1 "
    "FROM source_signing_keys k WHERE k.source_id = token_sources.id), "
    "authorize_url, revocation_url, extra_authorize_params, "
    "device_authorization_url "		/* device_code: 38 */
    "FROM token_sources WHERE name = $1";

static const char q_source_create[] =
    "WITH s AS (INSERT INTO token_sources (name, kind, token_url, "
    "client_id, client_secret_sealed, auth_method, scope, audience, "
    "resource, refresh_token_sealed, username, password_sealed, "
    "token_path, expires_at_path, expires_in_path, refresh_buffer, "
    "fallback_lifetime, access, require_header, enabled, config_digest, "
    "refresh_seed_digest, tls_client_cert, tls_client_key_sealed, tls_ca, "
    "tls_cert_not_after, tls_cert_subject, subject_source, "
    "subject_token_type, requested_token_type, actor_source, "
    "actor_token_type, assertion_issuer, assertion_subject, "
    "assertion_audience, target_audience, key_generate, "
    /* authorization_code (c-authcode): $48-$50; device_code: $51 */
    "authorize_url, revocation_url, extra_authorize_params, "
    "device_authorization_url) "
    "VALUES ($1, $2, $3, $4, $5, "
    "$6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, "
    "$20, $21, $22, $23, $24, $25, kiln_ts($26), $27, $28, $29, $30, "
    "$31, $32, $33, $34, $35, $36, $37, $48, $49, $50, $51) "
    "ON CONFLICT (name) DO NOTHING RETURNING id), "
    Q_KEY_ADD("38", "39", "40", "41", "42")
    "t AS (INSERT INTO tokens (source_id) SELECT id FROM s "
    "RETURNING source_id), "
    AUDIT_CTE("43", "44", "45", "46", "'source.create'", "$1", "$47", "t")
    "SELECT t.source_id, pg_notify('kiln_tokens', $1) FROM t";

/* The keys of a source for jwks.json: one row with kid NULL if none. */
static const char q_signing_keys[] =
    "SELECT s.id, k.kid, k.alg, k.public_jwk, kiln_ms(k.activate_after), "
    "k.generated, s.key_generate, s.config_version, s.token_url "
    "FROM token_sources s LEFT JOIN source_signing_keys k "
    "ON k.source_id = s.id WHERE s.name = $1 ORDER BY k.activate_after";

/* A rotation: a new key that signs from $6 seconds on. */
static const char q_signing_key_rotate[] =
    "INSERT INTO source_signing_keys (source_id, kid, alg, "
    "private_key_sealed, public_jwk, generated, activate_after) "
    "SELECT id, $2, $3, $4, $5, true, now() + $6::bigint * "
    "interval '1 second' FROM token_sources WHERE name = $1 "
    "AND config_version = $7::bigint AND token_url = $8 "
    "RETURNING kiln_ms(activate_after)";

/* A token obtained with key $2 drops the keys it replaced. */
static const char q_signing_keys_settle[] =
    "DELETE FROM source_signing_keys o USING source_signing_keys k "
    "WHERE k.source_id = $1::bigint AND k.kid = $2 "
    "AND k.activate_after <= now() AND o.source_id = k.source_id "
    "AND o.activate_after < k.activate_after";

static const char q_source_patch[] =
    "WITH s AS (UPDATE token_sources SET kind = $2, token_url = $3, "
    "client_id = $4, client_secret_sealed = $5, auth_method = $6, "
    "scope = $7, audience = $8, resource = $9, "
    "refresh_token_sealed = COALESCE($10, refresh_token_sealed), "
    "username = $11, password_sealed = $12, token_path = $13, "
    "expires_at_path = $14, expires_in_path = $15, refresh_buffer = $16, "
    "fallback_lifetime = $17, access = $18, require_header = $19, "
    "enabled = $20, config_digest = $21, "
    "refresh_seed_digest = COALESCE($22, refresh_seed_digest), "
    "config_version = config_version + 1, updated_at = now(), "
    "tls_client_cert = $25, tls_client_key_sealed = $26, tls_ca = $27, "
    "tls_cert_not_after = kiln_ts($28), tls_cert_subject = $29, "
    "subject_source = $30, subject_token_type = $31, "
    "requested_token_type = $32, actor_source = $33, "
    "actor_token_type = $34, "
    "assertion_issuer = $35, assertion_subject = $36, "
    "assertion_audience = $37, target_audience = $38, key_generate = $39, "
    /* authorization_code (c-authcode): $50-$52; device_code: $53 */
    "authorize_url = $50, revocation_url = $51, "
    "extra_authorize_params = $52, device_authorization_url = $53 "
    "WHERE name = $1 AND ($23::bigint IS NULL OR "
    "config_version = $23::bigint) RETURNING id), "
    Q_KEY_ADD("40", "41", "42", "43", "44")
    "d AS (DELETE FROM source_signing_keys x USING s "
    "WHERE x.source_id = s.id AND $40::text IS NOT NULL "
    "AND x.kid <> $40 AND (NOT $44::boolean OR NOT x.generated)), "
    "t AS (UPDATE tokens SET "
    "next_attempt_at = CASE WHEN $24 THEN now() ELSE next_attempt_at END, "
    "failures = CASE WHEN $24 THEN 0 ELSE failures END "
    "FROM s WHERE tokens.source_id = s.id AND tokens.subject = 'default' "
    "RETURNING source_id), "
    AUDIT_CTE("45", "46", "47", "48", "'source.update'", "$1", "$49", "t")
    "SELECT t.source_id, pg_notify('kiln_tokens', $1) FROM t";

static const char q_source_delete[] =
    "WITH s AS (DELETE FROM token_sources WHERE name = $1 RETURNING id), "
    AUDIT_CTE("2", "3", "4", "5", "'source.delete'", "$1", "NULL", "s")
    "SELECT s.id, pg_notify('kiln_tokens', $1) FROM s";

static const char q_source_pause[] =
    "WITH s AS (UPDATE token_sources SET paused = $2, updated_at = now() "
    "WHERE name = $1 RETURNING id), "
    AUDIT_CTE("3", "4", "5", "6", "CASE WHEN $2 THEN 'source.pause' "
    "ELSE 'source.resume' END", "$1", "NULL", "s")
    "SELECT s.id, pg_notify('kiln_tokens', $1) FROM s";

static const char q_prewarming_pause[] =
    "WITH u AS (INSERT INTO settings (key, value) "
    "VALUES ('prewarming_paused', $1) ON CONFLICT (key) DO UPDATE "
    "SET value = $1, updated_at = now() RETURNING key), "
    AUDIT_CTE("2", "3", "4", "5", "CASE WHEN $1 = 'true' THEN "
    "'prewarming.pause' ELSE 'prewarming.resume' END", "NULL", "NULL", "u")
    "SELECT pg_notify('kiln_tokens', '*') FROM u";

static const char q_events[] =
    "SELECT e.id, e.trigger, kiln_ms(e.started_at), "
    "kiln_ms(e.finished_at), e.outcome, e.duration_ms, e.http_status, "
    "e.error, e.generation, e.fingerprint FROM refresh_events e "
    "JOIN token_sources s ON s.id = e.source_id WHERE s.name = $1 "
    "AND e.subject IS NULL "
    "AND ($3::bigint IS NULL OR e.id < $3::bigint) "
    "ORDER BY e.id DESC LIMIT $2::integer";

/*
 * The attempts of one source over the last 24 h, newest first, and the
 * last success before them, which obtained the token held when the day
 * began: the rows of its timeline, as store_events. Read from its 2000
 * newest attempts (refresh_events_source_idx), so that a long history
 * costs no more than that; a day of more attempts shows their newest.
 */
static const char q_timeline[] =
    "WITH e AS (SELECT e.id, e.trigger, kiln_ms(e.started_at) AS s, "
    "kiln_ms(e.finished_at) AS f, e.outcome, e.duration_ms, "
    "e.http_status, e.error, e.generation, e.fingerprint, "
    "e.finished_at AS at FROM refresh_events e "
    "JOIN token_sources s ON s.id = e.source_id WHERE s.name = $1 "
    "ORDER BY e.id DESC LIMIT 2000), "
    "o AS (SELECT id FROM e WHERE outcome = 'success' "
    "AND at <= now() - interval '24 hours' ORDER BY id DESC LIMIT 1) "
    "SELECT id, trigger, s, f, outcome, duration_ms, http_status, error, "
    "generation, fingerprint FROM e "
    "WHERE at > now() - interval '24 hours' OR id IN (SELECT id FROM o) "
    "ORDER BY id DESC";

static const char q_ping[] = "SELECT 1";

/*
 * Connections (migration 012). A reload names tokens: "source" is the
 * default one, "source/subject" a connection (see conn.c).
 */
#define STORE_LANE_STMT		"kiln_lane_reload"
static const char q_reload[] =
    "WITH k AS (SELECT split_part(x, '/', 1) AS name, CASE WHEN "
    "strpos(x, '/') > 0 THEN substr(x, strpos(x, '/') + 1) "
    "ELSE 'default' END AS subject "
    "FROM unnest(string_to_array($1, ',')) x) "
    TOKEN_ROW_COLS
    "kiln_host(s.token_url), t.subject, t.state, "
    "(SELECT k.kid FROM token_sources s2 "
    Q_SIGNING_KEY " WHERE s2.id = s.id) "
    "FROM k JOIN token_sources s ON s.name = k.name "
    "JOIN tokens t ON t.source_id = s.id AND t.subject = k.subject";

/* What a connection shows; its state as the API names it. */
#define CONN_STATE							\
    "CASE WHEN t.state IN ('needs_reauth', 'revoked') THEN t.state "	\
    "WHEN t.failures > 0 THEN 'failing' "				\
    "WHEN t.token_sealed IS NULL THEN 'pending' ELSE 'active' END"
#define CONN_COLS							\
    "t.subject, " CONN_STATE ", t.generation, kiln_ms(t.expires_at), "	\
    "t.fingerprint, t.failures, t.last_error, kiln_ms(t.created_at), "	\
    "kiln_ms(t.updated_at) "

/*
 * An import (re)starts a connection: its refresh token replaces any
 * other, the lease of an attempt under way is taken from it (so that
 * attempt cannot store the refresh token it rotated from the old one),
 * and the token it holds is served until the new one comes.
 */
static const char q_conn_import[] =
    "WITH s AS (SELECT id FROM token_sources WHERE name = $1), "
    "t AS (INSERT INTO tokens AS t (source_id, subject, "
    "refresh_token_sealed, next_attempt_at) SELECT id, $2, $3, now() "
    "FROM s ON CONFLICT (source_id, subject) DO UPDATE SET "
    "refresh_token_sealed = $3, state = 'active', failures = 0, "
    "last_error = NULL, next_attempt_at = now(), lease_owner = NULL, "
    "lease_until = NULL, updated_at = now() RETURNING t.*), "
    AUDIT_CTE("4", "5", "6", "7", "'connection.import'",
    "$1 || '/' || $2", "'subject,refresh_token'", "t")
    "SELECT " CONN_COLS ", pg_notify('kiln_tokens', $1 || '/' || $2) "
    "FROM t";

static const char q_conn_list[] =
    "SELECT " CONN_COLS "FROM token_sources s JOIN tokens t "
    "ON t.source_id = s.id WHERE s.name = $1 "
    "AND ($2::text IS NULL OR t.subject > $2) "
    "AND ($3::text IS NULL OR " CONN_STATE " = $3) "
    "ORDER BY t.subject LIMIT $4::integer";

static const char q_conn_get[] =
    "SELECT " CONN_COLS "FROM token_sources s JOIN tokens t "
    "ON t.source_id = s.id WHERE s.name = $1 AND t.subject = $2";

static const char q_conn_events[] =
    "SELECT e.id, e.trigger, kiln_ms(e.started_at), "
    "kiln_ms(e.finished_at), e.outcome, e.duration_ms, e.http_status, "
    "e.error, e.generation, e.fingerprint FROM refresh_events e "
    "JOIN token_sources s ON s.id = e.source_id WHERE s.name = $1 "
    "AND e.subject IS NOT DISTINCT FROM NULLIF($2, 'default') "
    "ORDER BY e.id DESC LIMIT $3::integer";

static const char q_conn_delete[] =
    "WITH s AS (SELECT id FROM token_sources WHERE name = $1), "
    "t AS (DELETE FROM tokens t USING s WHERE t.source_id = s.id "
    "AND t.subject = $2 AND $2 <> 'default' RETURNING t.subject), "
    /* A device flow under way for it ends too (migration 014). */
    "f AS (DELETE FROM device_flows f USING s WHERE f.source_id = s.id "
    "AND f.subject = $2 AND EXISTS (SELECT 1 FROM t)), "
    AUDIT_CTE("3", "4", "5", "6", "'connection.delete'",
    "$1 || '/' || $2", "NULL", "t")
    "SELECT t.subject, pg_notify('kiln_tokens', $1 || '/' || $2) FROM t";

static void	dec_conns(PGresult *, struct store_job *,
		    struct store_rows *);
static int	dec_device_rows(struct store_job *, struct store_rows *);
static int	dec_page_rows(struct store_job *, struct store_rows *);

static int	sync_tries = STORE_CONNECT_TRIES;

static PGconn	*sync_connect(char *, size_t);
static PGresult	*sync_query(PGconn *, const char *, int, const char **);
static const char	*sync_error(PGconn *);
static int	sync_exec(PGconn *, const char *, int, const char **,
		    char *, size_t);
static int	migrate_file(PGconn *, const char *, const char *,
		    char *, size_t);
static int	migrate_filter(const struct dirent *);
static char	*file_read(const char *, size_t *);
static int	upsert_one(PGconn *, PGresult *, struct source *, char *,
		    size_t);
static int	stored_row(PGresult *, const char *);
static int	file_origin_same(PGresult *, int, const struct source *);
static int	file_origin_kept(PGresult *, int, const struct source *,
		    char *, size_t);
static void	source_params(const struct source *, int,
		    struct source_params *);
static void	source_params_free(struct source_params *);
static void	source_params_tls(const struct source *,
		    struct source_params *);
static void	dec_tls(PGresult *, int, struct source_row *);
static void	dec_edges(PGresult *, struct store_job *,
		    struct store_rows *);
static void	source_params_jws(const struct source *,
		    struct source_params *);
static void	source_params_key(const struct source *,
		    struct source_params *);
static void	source_digest_jws(const struct source *, yajl_gen);
static void	dec_source_jws(PGresult *, struct source_row *, int, int);
static void	dec_signing_keys(PGresult *, struct store_job *,
		    struct store_rows *);
static char	*source_digest(const struct source *, int);
static void	digest_append(void *, const char *, size_t);
static char	*seal_opt(const struct source *, const char *,
		    const char *);
static void	batch_add(struct store_batch *, const char *);
static int	batch_has(struct kore_buf *, const char *);
static void	batch_send(struct store_batch *);
static void	batch_done(const struct store_rows *, void *, int);
static void	store_job(const char *, store_rows_cb, void *, int, ...);
static void	store_job_a(const char *, store_rows_cb, void *, int,
		    const char **);
static void	store_job_send(struct store_job *);
static int	store_hot(const char *);
static void	store_job_cb(struct kore_pgsql *, void *);
static void	store_job_finish(struct store_job *, int);
static void	store_job_free(struct store_job *);
static char	*i64(int64_t);
static char	*col_dup(PGresult *, int);
static const char	*col_str(PGresult *, int, int);
static int64_t	col_num(PGresult *, int, int);
static int64_t	col_numn(PGresult *, int, int);
static int	col_bool(PGresult *, int, int);
static struct source_row	*dec_source(PGresult *, const char *,
				    const char *);
static void	audit_params(const struct audit_who *, const char **);
static void	dec_audit(PGresult *, struct store_job *,
		    struct store_rows *);
static void	store_decode_rows(struct store_job *, struct store_rows *);
static void	store_rows_free(struct store_rows *);
static int	dec_webhook_rows(struct store_job *, struct store_rows *);
static int	dec_flow_rows(struct store_job *, struct store_rows *);
static void	source_digest_code(const struct source *, yajl_gen);
static void	webhook_rows_free(struct store_rows *);

/* Parent: make the database known to kore_pgsql before the fork. */
void
store_register(void)
{
	if (!kore_pgsql_register(STORE_DB, kiln_config.database_url))
		fatal("kore_pgsql_register failed");

	/* Kore's pgsql layer keeps the deadlines of the workers. */
	pgsql_connect_timeout = kiln_config.db_connect_ms;
	pgsql_query_timeout = kiln_config.db_answer_ms;
	/* Planned once per connection (every statement is a constant). */
	pgsql_prepared_max = kiln_config.db_prepared ? KORE_PGSQL_STMT_MAX : 0;
}

int
store_migrate(char *err, size_t errlen)
{
	struct dirent	**list;
	PGconn		*db;
	int		i, n, ret;

	if ((db = sync_connect(err, errlen)) == NULL)
		return (KORE_RESULT_ERROR);

	ret = KORE_RESULT_ERROR;
	n = -1;
	list = NULL;

	if (!sync_exec(db, "SELECT pg_advisory_lock(" STORE_MIGRATE_LOCK ")",
	    0, NULL, err, errlen))
		goto cleanup;
	if (!sync_exec(db, "CREATE TABLE IF NOT EXISTS schema_migrations ("
	    "version integer PRIMARY KEY, name text NOT NULL, "
	    "applied_at timestamptz NOT NULL DEFAULT now())", 0, NULL,
	    err, errlen))
		goto cleanup;

	n = scandir(kiln_config.migrations_dir, &list, migrate_filter,
	    alphasort);
	if (n == -1) {
		(void)snprintf(err, errlen, "KILN_MIGRATIONS_DIR: %s: %s",
		    kiln_config.migrations_dir, strerror(errno));
		goto cleanup;
	}
	if (n == 0) {
		(void)snprintf(err, errlen, "KILN_MIGRATIONS_DIR: %s: no "
		    "migrations", kiln_config.migrations_dir);
		goto cleanup;
	}

	for (i = 0; i < n; i++) {
		if (!migrate_file(db, kiln_config.migrations_dir,
		    list[i]->d_name, err, errlen))
			goto cleanup;
	}

	ret = KORE_RESULT_OK;

cleanup:
	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
	(void)sync_exec(db, "SELECT pg_advisory_unlock(" STORE_MIGRATE_LOCK
	    ")", 0, NULL, NULL, 0);
	PQfinish(db);

	return (ret);
}

int
store_upsert_sources(struct source *src, size_t n, char *err, size_t errlen)
{
	PGresult	*res;
	PGconn		*db;
	size_t		i;
	int		ret;

	if ((db = sync_connect(err, errlen)) == NULL)
		return (KORE_RESULT_ERROR);

	/*
	 * All or nothing, one WAL flush for the whole file, and the stored
	 * digests read once: a restart with an unchanged file of thousands
	 * of sources writes nothing and costs one query.
	 */
	ret = sync_exec(db, "SELECT pg_advisory_lock(" STORE_MIGRATE_LOCK ")",
	    0, NULL, err, errlen) && sync_exec(db, "BEGIN", 0, NULL, err, errlen);
	res = NULL;
	if (ret) {
		res = sync_query(db, q_source_digests, 0, NULL);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			(void)snprintf(err, errlen, "database: %s",
			    sync_error(db));
			ret = KORE_RESULT_ERROR;
		}
	}
	for (i = 0; ret && i < n; i++)
		ret = upsert_one(db, res, &src[i], err, errlen);
	PQclear(res);
	if (ret)
		ret = sync_exec(db, "COMMIT", 0, NULL, err, errlen);
	else
		(void)sync_exec(db, "ROLLBACK", 0, NULL, NULL, 0);

	(void)sync_exec(db, "SELECT pg_advisory_unlock(" STORE_MIGRATE_LOCK
	    ")", 0, NULL, NULL, 0);
	PQfinish(db);

	return (ret);
}

static int			sync_timed_out;
static void			(*db_watch)(int);
static struct store_batch	reloads = { q_reload, NULL, NULL, NULL };
static struct store_batch	announces = { q_announce, NULL, NULL, NULL };

/* Worker: a whole snapshot for the cache. */
void
store_load(store_rows_cb cb, void *arg)
{
	store_job(q_load, cb, arg, 1, NULL);
}

/* Worker: a snapshot of name, batched with other names to reload. */
void
store_reload(const char *name, store_names_cb cb)
{
	reloads.cb = cb;
	batch_add(&reloads, name);
}

/* Tell every worker of every instance that name changed. */
void
store_announce(const char *name)
{
	batch_add(&announces, name);
}

static void
batch_add(struct store_batch *b, const char *name)
{
	if (b->pending == NULL)
		b->pending = kore_buf_alloc(1024);
	if (batch_has(b->pending, name))
		return;

	if (b->pending->offset > 0)
		kore_buf_append(b->pending, ",", 1);
	kore_buf_append(b->pending, name, strlen(name));

	if (b->inflight == NULL)
		batch_send(b);
}

static int
batch_has(struct kore_buf *buf, const char *name)
{
	size_t		len, i, end;

	len = strlen(name);
	for (i = 0; i < buf->offset; i = end + 1) {
		for (end = i; end < buf->offset && buf->data[end] != ','; end++)
			;
		if (end - i == len && !memcmp(buf->data + i, name, len))
			return (1);
	}

	return (0);
}

static void
batch_send(struct store_batch *b)
{
	size_t		cut, len;

	if (b->pending == NULL || b->pending->offset == 0)
		return;

	/* Whole names, and a NOTIFY payload stays under 8000 bytes. */
	len = b->pending->offset;
	cut = len;
	if (cut > STORE_BATCH_MAX) {
		for (cut = STORE_BATCH_MAX; b->pending->data[cut] != ','; cut--)
			;
	}

	b->inflight = kore_malloc(cut + 1);
	memcpy(b->inflight, b->pending->data, cut);
	b->inflight[cut] = '\0';

	if (cut < len) {
		memmove(b->pending->data, b->pending->data + cut + 1,
		    len - cut - 1);
		b->pending->offset = len - cut - 1;
	} else {
		b->pending->offset = 0;
	}

	store_job(b->query, batch_done, b, 1, b->inflight);
}

static void
batch_done(const struct store_rows *rows, void *arg, int ok)
{
	struct store_batch	*b = arg;

	/* Names not announced or reloaded now are the reconcile's. */
	if (b->cb != NULL)
		b->cb(rows, b->inflight, ok);
	kore_free(b->inflight);
	b->inflight = NULL;

	batch_send(b);
}

void
store_lease(const char *name, const char *subject, const char *trigger,
    int64_t arg, store_rows_cb cb, void *cbarg)
{
	char		*lease, *a, *budget;

	lease = i64(kiln_config.lease_ms);
	a = i64(arg);
	budget = i64(kiln_config.ondemand_ms / 1000);
	store_job(q_lease, cb, cbarg, 7, name, kiln_config.owner, lease,
	    trigger, a, budget, subject);
	kore_free(lease);
	kore_free(a);
	kore_free(budget);
}

void
store_commit_success(struct attempt *at, store_rows_cb cb, void *arg)
{
	char	*id, *obtained, *expires, *refresh, *dur, *started, *status;
	char	*subject;

	id = i64(at->source_id);
	obtained = i64(at->sent_ms);
	expires = i64(at->ans.expires_ms);
	refresh = i64(at->refresh_ms);
	dur = i64(at->duration_ms);
	started = i64(at->started_ms);
	status = i64(at->http_status);
	subject = at->subject_generation > 0 ?
	    i64(at->subject_generation) : NULL;

	store_job(q_success, cb, arg, 17, id, kiln_config.owner,
	    at->sealed_token, at->ans.token_type, at->fpr, obtained, expires,
	    refresh, dur, at->sealed_refresh, at->trigger, started, status,
	    at->seed_digest, subject, at->subject, at->id);
	kore_free(subject);

	kore_free(id);
	kore_free(obtained);
	kore_free(expires);
	kore_free(refresh);
	kore_free(dur);
	kore_free(started);
	kore_free(status);
}

void
store_commit_failure(struct attempt *at, store_rows_cb cb, void *arg)
{
	char	*id, *dur, *next, *started, *status, *n, *open;

	id = i64(at->source_id);
	dur = i64(at->duration_ms);
	next = i64(at->next_ms);
	started = i64(at->started_ms);
	status = at->http_status > 0 ? i64(at->http_status) : NULL;
	n = i64(kiln_config.circuit_failures);
	open = i64(kiln_config.circuit_open_ms);

	store_job(q_failure, cb, arg, 14, id, kiln_config.owner, at->error,
	    dur, next, at->trigger, started, status, at->verdict, n, open,
	    at->subject, at->reauth ? "true" : "false", at->id);
	kore_free(n);
	kore_free(open);

	kore_free(id);
	kore_free(dur);
	kore_free(next);
	kore_free(started);
	kore_free(status);
}

void
store_lease_renew(int64_t source_id, const char *subject, store_rows_cb cb,
    void *arg)
{
	char		*id, *lease;

	id = i64(source_id);
	lease = i64(kiln_config.lease_ms);
	store_job(q_renew, cb, arg, 4, id, kiln_config.owner, lease, subject);
	kore_free(id);
	kore_free(lease);
}

/*
 * Worker teardown: give back the leases this worker holds so another
 * worker or instance can refresh at once. Blocking is fine here.
 */
void
store_release_leases(void)
{
	PGconn		*db;
	const char	*values[1];
	char		err[KILN_ERR_MAX];

	if ((db = PQconnectdb(kiln_config.database_url)) == NULL)
		return;
	if (PQstatus(db) == CONNECTION_OK) {
		values[0] = kiln_config.owner;
		(void)sync_exec(db, q_release, 1, values, err, sizeof(err));
	}
	PQfinish(db);
}

/*
 * The start waits STORE_CONNECT_TRIES * 500 ms for its database, however
 * long each try takes (a black hole makes each a connect_timeout); a
 * subcommand tries once (sync_tries).
 */
static PGconn *
sync_connect(char *err, size_t errlen)
{
	PGconn		*db;
	int64_t		deadline;
	int		i;

	deadline = isotime_now() + sync_tries * 500;
	for (i = 0; i < sync_tries && (i == 0 || isotime_now() < deadline);
	    i++) {
		db = PQconnectdb(kiln_config.database_url);
		if (db != NULL && PQstatus(db) == CONNECTION_OK)
			return (db);
		if (i == 0) {
			log_kv(LOG_LVL_WARN, "database not reachable, retrying",
			    "error", db ? PQerrorMessage(db) : "out of memory",
			    NULL);
		}
		PQfinish(db);
		if (i + 1 < sync_tries)
			usleep(500 * 1000);
	}

	(void)snprintf(err, errlen, "KILN_DATABASE_URL: cannot connect");
	return (NULL);
}

static int
sync_exec(PGconn *db, const char *query, int n, const char **values,
    char *err, size_t errlen)
{
	PGresult	*res;
	int		ret;

	res = sync_query(db, query, n, values);
	ret = PQresultStatus(res) == PGRES_COMMAND_OK ||
	    PQresultStatus(res) == PGRES_TUPLES_OK;
	if (!ret && err != NULL)
		(void)snprintf(err, errlen, "database: %s", sync_error(db));
	PQclear(res);

	return (ret ? KORE_RESULT_OK : KORE_RESULT_ERROR);
}

/*
 * PQexecParams() (PQexec() without parameters: a script) that waits
 * for the answer no longer than db_answer_ms: no statement_timeout
 * comes back through a black hole. The last result, or NULL.
 */
static PGresult *
sync_query(PGconn *db, const char *query, int n, const char **values)
{
	struct pollfd	pfd;
	PGresult	*res, *last;
	int64_t		deadline, left;
	int		sent;

	sent = n == 0 ? PQsendQuery(db, query) :
	    PQsendQueryParams(db, query, n, NULL, values, NULL, NULL, 0);
	if (!sent)
		return (NULL);

	deadline = isotime_now() + kiln_config.db_answer_ms;
	last = NULL;
	for (;;) {
		while (!PQisBusy(db)) {
			if ((res = PQgetResult(db)) == NULL)
				return (last);
			PQclear(last);
			last = res;
		}

		left = deadline - isotime_now();
		if (kiln_config.db_answer_ms == 0) {
			left = -1;
		} else if (left <= 0) {
			sync_timed_out = 1;
			break;
		}
		pfd.fd = PQsocket(db);
		pfd.events = POLLIN;
		if (poll(&pfd, 1, (int)left) == -1 && errno != EINTR)
			break;
		if (!PQconsumeInput(db))
			break;
	}

	PQclear(last);
	return (NULL);
}

static const char *
sync_error(PGconn *db)
{
	if (sync_timed_out)
		return ("no answer in time (KILN_DATABASE_URL)");
	return (PQerrorMessage(db));
}

static int
migrate_filter(const struct dirent *dp)
{
	size_t		len;

	len = strlen(dp->d_name);
	if (len < 8 || strcmp(dp->d_name + len - 4, ".sql"))
		return (0);
	if (dp->d_name[0] < '0' || dp->d_name[0] > '9' ||
	    dp->d_name[1] < '0' || dp->d_name[1] > '9' ||
	    dp->d_name[2] < '0' || dp->d_name[2] > '9' ||
	    dp->d_name[3] != '_')
		return (0);

	return (1);
}

static int
migrate_file(PGconn *db, const char *dir, const char *file, char *err,
    size_t errlen)
{
	PGresult	*res;
	const char	*values[2];
	char		*sql, path[1024], version[4];
	int		seen;

	(void)kore_strlcpy(version, file, sizeof(version));
	values[0] = version;
	values[1] = file;

	res = sync_query(db, q_migration_seen, 1, values);
	seen = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0;
	PQclear(res);
	if (seen)
		return (KORE_RESULT_OK);

	(void)snprintf(path, sizeof(path), "%s/%s", dir, file);
	if ((sql = file_read(path, NULL)) == NULL) {
		(void)snprintf(err, errlen, "migration %s: %s", file,
		    strerror(errno));
		return (KORE_RESULT_ERROR);
	}

	if (!sync_exec(db, "BEGIN", 0, NULL, err, errlen))
		goto fail;

	/* A migration file is a script of our own, not data: no params. */
	res = sync_query(db, sql, 0, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK) {
		(void)snprintf(err, errlen, "migration %s: %s", file,
		    sync_error(db));
		PQclear(res);
		(void)sync_exec(db, "ROLLBACK", 0, NULL, NULL, 0);
		goto fail;
	}
	PQclear(res);

	if (!sync_exec(db, q_migration_done, 2, values, err, errlen) ||
	    !sync_exec(db, "COMMIT", 0, NULL, err, errlen)) {
		(void)sync_exec(db, "ROLLBACK", 0, NULL, NULL, 0);
		goto fail;
	}

	log_kv(LOG_LVL_INFO, "migration applied", "file", file, NULL);
	free(sql);
	return (KORE_RESULT_OK);

fail:
	free(sql);
	return (KORE_RESULT_ERROR);
}

static char *
file_read(const char *path, size_t *lenp)
{
	FILE		*fp;
	char		*data;
	long		len;

	if ((fp = fopen(path, "r")) == NULL)
		return (NULL);
	if (fseek(fp, 0, SEEK_END) == -1 || (len = ftell(fp)) < 0 ||
	    fseek(fp, 0, SEEK_SET) == -1) {
		(void)fclose(fp);
		return (NULL);
	}

	if ((data = malloc(len + 1)) == NULL)
		fatal("malloc");
	if (fread(data, 1, len, fp) != (size_t)len) {
		free(data);
		(void)fclose(fp);
		return (NULL);
	}
	data[len] = '\0';
	(void)fclose(fp);

	if (lenp != NULL)
		*lenp = len;

	return (data);
}

/*
 * Insert a source of the sources file, or update it when its settings
 * changed (compared by keyed digest, secrets included). A refresh token
 * in the file is a seed: it replaces the stored one only when the seed
 * itself changed, since the stored one may have been rotated since.
 */
static int
upsert_one(PGconn *db, PGresult *stored, struct source *src, char *err,
    size_t errlen)
{
	struct source_params	sp;
	const char		*v[SOURCE_PATCH_PARAMS];
	int			ret, n, row, exists, same, same_seed;

	source_params(src, 1, &sp);

	row = stored_row(stored, src->name);
	exists = row != -1;
	same = exists && !PQgetisnull(stored, row, 1) && CRYPTO_memcmp(
	    PQgetvalue(stored, row, 1), sp.digest, SEAL_MAC_LEN) == 0;
	same_seed = exists && (sp.seed == NULL ||
	    (!PQgetisnull(stored, row, 2) && CRYPTO_memcmp(
	    PQgetvalue(stored, row, 2), sp.seed, SEAL_MAC_LEN) == 0));

	ret = KORE_RESULT_OK;
	if (same && same_seed)
		goto cleanup;

	if (exists && same_seed && !file_origin_kept(stored, row, src, err,
	    errlen)) {
		ret = KORE_RESULT_ERROR;
		goto cleanup;
	}

	/* Keep the stored (maybe rotated) refresh token: NULL keeps it. */
	if (same_seed) {
		sp.v[9] = NULL;
		sp.v[21] = NULL;
	}

	/* Generated keys were sealed for the old origin: make a new one. */
	if (exists && src->key_generate != 0 && !file_origin_same(stored,
	    row, src)) {
		v[0] = src->name;
		if (!(ret = sync_exec(db, q_signing_keys_moved, 1, v, err,
		    errlen)))
			goto cleanup;
	}

	/*
	 * An update is unconditional and asks for a refresh at once. The
	 * file is the operator's configuration, applied at start by no
	 * principal: no audit row (its parameters are NULL).
	 */
	source_params_key(src, &sp);
	memset(v, 0, sizeof(v));
	memcpy(v, sp.v, sizeof(sp.v));
	if (exists)
		v[23] = "true";
	n = exists ? 24 : 22;
	memcpy(v + n, sp.tls, sizeof(sp.tls));
	n += SOURCE_TLS_PARAMS;
	memcpy(v + n, sp.jws, sizeof(sp.jws));
	n += SOURCE_JWS_PARAMS + 5;	/* the audit's, NULL: no row */
	memcpy(v + n, sp.code, sizeof(sp.code));
	n += SOURCE_CODE_PARAMS;
	v[n++] = src->device_authorization_url;
	if ((ret = sync_exec(db, exists ? q_source_patch : q_source_create, n,
	    v, err, errlen))) {
		log_kv(LOG_LVL_INFO, exists ? "source updated from file" :
		    "source created from file", "token", src->name, NULL);
	}

cleanup:
	source_params_free(&sp);
	return (ret);
}

/*
 * A stored refresh token that the file keeps (its seed unchanged or
 * absent) was given for the stored origin: it goes nowhere else. A file
 * that moves such a source stops the start until it gives a new seed.
 */
static int
file_origin_kept(PGresult *stored, int row, const struct source *src,
    char *err, size_t errlen)
{
	char		was[SOURCE_ORIGIN_MAX], now[SOURCE_ORIGIN_MAX];

	if (PQgetvalue(stored, row, 4)[0] != 't')
		return (KORE_RESULT_OK);

	source_origin(PQgetvalue(stored, row, 3), was, sizeof(was));
	source_origin(src->token_url, now, sizeof(now));
	if (!strcmp(was, now))
		return (KORE_RESULT_OK);

	(void)snprintf(err, errlen, "KILN_SOURCES_FILE: source %s: "
	    "refresh_token: required anew, token_url moves to another origin "
	    "(%s); the stored refresh token was given for %s", src->name,
	    now, was);

	return (KORE_RESULT_ERROR);
}

/* The row of name in the stored digests (sorted by name), or -1. */
static int
stored_row(PGresult *stored, const char *name)
{
	int		lo, hi, mid, c;

	lo = 0;
	hi = PQntuples(stored) - 1;
	while (lo <= hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = strcmp(PQgetvalue(stored, mid, 0), name)) == 0)
			return (mid);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}

	return (-1);
}

/*
 * Seal the secrets of src and lay out its row as parameters; the
 * refresh token only when with_refresh (it is a seed, see upsert_one).
 */
static void
source_params(const struct source *src, int with_refresh,
    struct source_params *p)
{
	memset(p, 0, sizeof(*p));

	p->secret = seal_opt(src, "client_secret", src->client_secret);
	p->refresh = with_refresh ?
	    seal_opt(src, "refresh_token", src->refresh_token) : NULL;
	p->password = seal_opt(src, "password", src->password);
	p->digest = source_digest(src, 0);

	/*
	 * The seed's digest must survive a master key rotation (else the
	 * stale seed would overwrite a rotated refresh token): a plain
	 * SHA-256, fine for a high-entropy refresh token.
	 */
	if (with_refresh && src->refresh_token != NULL) {
		p->seed = kore_malloc(SEAL_MAC_LEN + 1);
		if (!seal_sha256_hex(src->refresh_token,
		    strlen(src->refresh_token), p->seed))
			fatal("EVP_Digest");
	}
	(void)snprintf(p->rb, sizeof(p->rb), "%lld",
	    (long long)src->refresh_buffer);
	(void)snprintf(p->fl, sizeof(p->fl), "%lld",
	    (long long)src->fallback_lifetime);

	p->v[0] = src->name;
	p->v[1] = source_kind_name(src->kind);
	p->v[2] = src->token_url;
	p->v[3] = src->client_id;
	p->v[4] = p->secret;
	p->v[5] = source_auth_name(src->auth_method);
	p->v[6] = src->scope;
	p->v[7] = src->audience;
	p->v[8] = src->resource;
	p->v[9] = p->refresh;
	p->v[10] = src->username;
	p->v[11] = p->password;
	p->v[12] = src->token_path ? src->token_path : "access_token";
	p->v[13] = src->expires_at_path;
	p->v[14] = src->expires_in_path ? src->expires_in_path : "expires_in";
	p->v[15] = src->refresh_buffer < 0 ? NULL : p->rb;
	p->v[16] = p->fl;
	p->v[17] = src->access == ACCESS_KEY ? "key" : "open";
	p->v[18] = src->require_header ? "true" : "false";
	p->v[19] = src->enabled ? "true" : "false";
	p->v[20] = p->digest;
	p->v[21] = p->seed;
	source_params_tls(src, p);
	source_params_jws(src, p);
	p->code[0] = src->authorize_url;
	p->code[1] = src->revocation_url;
	p->code[2] = src->extra_authorize_params;
}

/* The client certificate's subject and notAfter are kept for views. */
static void
source_params_tls(const struct source *src, struct source_params *p)
{
	int64_t		not_after;

	if (src->kind == KIND_TOKEN_EXCHANGE) {
		p->tls[5] = src->subject_source;
		p->tls[6] = src->subject_token_type != NULL ?
		    src->subject_token_type : TX_ACCESS_TOKEN;
		p->tls[7] = src->requested_token_type;
		p->tls[8] = src->actor_source;
		p->tls[9] = src->actor_source == NULL ? NULL :
		    src->actor_token_type != NULL ? src->actor_token_type :
		    TX_ACCESS_TOKEN;
	}

	p->tls[2] = src->tls_ca;
	if (!mtls_method(src->auth_method))
		return;

	p->tls_key = seal_opt(src, "tls_client_key", src->tls_client_key);
	p->tls[0] = src->tls_client_cert;
	p->tls[1] = p->tls_key;
	if (mtls_cert_info(src->tls_client_cert, p->subject,
	    sizeof(p->subject), &not_after)) {
		(void)snprintf(p->not_after, sizeof(p->not_after), "%lld",
		    (long long)not_after);
		p->tls[3] = p->not_after;
		p->tls[4] = p->subject;
	}
}

static void
source_params_free(struct source_params *p)
{
	free(p->secret);
	free(p->refresh);
	free(p->password);
	free(p->tls_key);
	kore_free(p->digest);
	kore_free(p->seed);
	free(p->key_sealed);
	free(p->key_jwk);
	kore_free(p->key_kid);
}

static char *
seal_opt(const struct source *src, const char *field, const char *value)
{
	char		*out, origin[SOURCE_ORIGIN_MAX];

	if (value == NULL)
		return (NULL);
	source_origin(src->token_url, origin, sizeof(origin));
	if (!seal_seal_for(src->name, field, origin, value, strlen(value),
	    &out))
		fatal("seal_seal failed for %s", field);

	return (out);
}

/*
 * A keyed digest over every setting but the rotating refresh token, or
 * (upstream) over only those that change how the token is obtained.
 */
static char *
source_digest(const struct source *src, int upstream)
{
	struct kore_buf		text;
	yajl_gen		g;
	const char		*s[13], *t;
	size_t			i;
	char			*out;

	s[0] = src->name;
	s[1] = source_kind_name(src->kind);
	s[2] = src->token_url;
	s[3] = src->client_id;
	s[4] = src->client_secret;
	s[5] = src->auth_method == AUTH_SECRET_BASIC ? "basic" :
	    src->auth_method == AUTH_PRIVATE_KEY_JWT ? "private_key_jwt" :
	    "post";
	s[6] = src->scope;
	s[7] = src->audience;
	s[8] = src->resource;
	s[9] = src->username;
	s[10] = src->password;
	s[11] = src->token_path;
	s[12] = src->expires_at_path;

	/* Generate into a buffer of ours so the secrets can be wiped. */
	kore_buf_init(&text, 1024);
	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatal("yajl_gen_alloc");
	yajl_gen_config(g, yajl_gen_print_callback, digest_append, &text);
	yajl_gen_array_open(g);
	for (i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
		if (s[i] == NULL)
			yajl_gen_null(g);
		else
			yajl_gen_string(g, (const unsigned char *)s[i],
			    strlen(s[i]));
	}
	if (src->expires_in_path == NULL)
		yajl_gen_null(g);
	else
		yajl_gen_string(g, (const unsigned char *)src->expires_in_path,
		    strlen(src->expires_in_path));
	/* Only when set: the digests of other sources stay as they were. */
	if (mtls_method(src->auth_method) || src->tls_ca != NULL ||
	    src->kind == KIND_TOKEN_EXCHANGE) {
		yajl_gen_integer(g, src->auth_method);
		for (i = 0; i < 8; i++) {
			t = i == 0 ? src->tls_client_cert : i == 1 ?
			    src->tls_client_key : i == 2 ? src->tls_ca :
			    i == 3 ? src->subject_source : i == 4 ?
			    src->subject_token_type : i == 5 ?
			    src->requested_token_type : i == 6 ?
			    src->actor_source : src->actor_token_type;
			if (t == NULL)
				yajl_gen_null(g);
			else
				yajl_gen_string(g, (const unsigned char *)t,
				    strlen(t));
		}
	}
	source_digest_jws(src, g);
	source_digest_code(src, g);
	if (src->device_authorization_url != NULL)
		yajl_gen_string(g, (const unsigned char *)
		    src->device_authorization_url,
		    strlen(src->device_authorization_url));
	if (!upstream) {
		yajl_gen_integer(g, src->refresh_buffer);
		yajl_gen_integer(g, src->fallback_lifetime);
		yajl_gen_integer(g, src->access);
		yajl_gen_bool(g, src->require_header);
		yajl_gen_bool(g, src->enabled);
	}
	yajl_gen_array_close(g);

	out = kore_malloc(SEAL_MAC_LEN + 1);
	seal_mac(text.data, text.offset, out);
	OPENSSL_cleanse(text.data, text.length);
	kore_buf_cleanup(&text);
	yajl_gen_free(g);

	return (out);
}

static void
digest_append(void *arg, const char *data, size_t len)
{
	kore_buf_append(arg, data, len);
}

/*
 * The asynchronous job machinery. Values are copied so callers may pass
 * stack buffers; NULL is SQL NULL.
 */
static void
store_job(const char *query, store_rows_cb cb, void *arg, int n, ...)
{
	va_list			args;
	const char		*v[STORE_PARAMS_MAX];
	int			i;

	if (n > STORE_PARAMS_MAX)
		fatal("store_job: too many parameters");

	va_start(args, n);
	for (i = 0; i < n; i++)
		v[i] = va_arg(args, const char *);
	va_end(args);

	store_job_a(query, cb, arg, n, v);
}

static void
store_job_a(const char *query, store_rows_cb cb, void *arg, int n,
    const char **v)
{
	struct store_job	*job;
	int			i;

	if (n > STORE_PARAMS_MAX)
		fatal("store_job: too many parameters");

	job = kore_calloc(1, sizeof(*job));
	job->query = query;
	job->nparams = n;
	job->cb = cb;
	job->arg = arg;

	for (i = 0; i < n; i++) {
		job->values[i] = v[i] ? kore_strdup(v[i]) : NULL;
		job->lengths[i] = v[i] ? (int)strlen(v[i]) : 0;
		job->formats[i] = 0;
	}

	kore_pgsql_init(&job->sql);
	kore_pgsql_bind_callback(&job->sql, store_job_cb, job);
	store_job_send(job);
}

static void
store_job_send(struct store_job *job)
{
	const char	*values[STORE_PARAMS_MAX];
	int		i;

	for (i = 0; i < job->nparams; i++)
		values[i] = job->values[i];

	if (!kore_pgsql_setup(&job->sql, STORE_DB, KORE_PGSQL_ASYNC)) {
		/* Queued until a connection is free: we'll be called. */
		if (job->sql.state == KORE_PGSQL_STATE_INIT &&
		    job->sql.error == NULL)
			return;
		store_job_finish(job, 0);
		kore_pgsql_cleanup(&job->sql);
		store_job_free(job);
		return;
	}

	if (!(store_hot(job->query) ? kore_pgsql_query_prepared :
	    kore_pgsql_query_param_fields)(&job->sql, job->query, 0,
	    job->nparams, values, job->lengths, job->formats)) {
		store_job_finish(job, 0);
		/* Releasing the connection calls us back with COMPLETE. */
		job->releasing = 1;
		kore_pgsql_cleanup(&job->sql);
		store_job_free(job);
	}
}

static void
store_job_cb(struct kore_pgsql *sql, void *arg)
{
	struct store_job	*job = arg;

	switch (sql->state) {
	case KORE_PGSQL_STATE_INIT:
		store_job_send(job);
		break;
	case KORE_PGSQL_STATE_WAIT:
		break;
	case KORE_PGSQL_STATE_RESULT:
		store_job_finish(job, 1);
		kore_pgsql_continue(sql);
		break;
	case KORE_PGSQL_STATE_ERROR:
		store_job_finish(job, 0);
		kore_pgsql_continue(sql);
		break;
	case KORE_PGSQL_STATE_DONE:
		kore_pgsql_continue(sql);
		break;
	case KORE_PGSQL_STATE_COMPLETE:
		if (job->releasing)
			break;
		store_job_finish(job, 1);
		kore_pgsql_cleanup(sql);
		store_job_free(job);
		break;
	default:
		break;
	}
}

static void
store_job_finish(struct store_job *job, int ok)
{
	struct store_rows	rows;

	if (job->done)
		return;
	job->done = 1;

	if (db_watch != NULL)
		db_watch(ok);
	if (!ok) {
		shared_pg_error();
		log_kv(LOG_LVL_ERROR, "database query failed", "error",
		    job->sql.error && *job->sql.error ? job->sql.error :
		    "connection lost", NULL);
	}
	if (job->cb == NULL)
		return;

	memset(&rows, 0, sizeof(rows));
	rows.num[0] = rows.num[1] = rows.num[2] = STORE_NULL;
	if (ok && job->sql.result != NULL)
		store_decode_rows(job, &rows);
	job->cb(&rows, job->arg, ok);
	store_rows_free(&rows);
}

static void
store_job_free(struct store_job *job)
{
	int		i;

	for (i = 0; i < job->nparams; i++) {
		if (job->values[i] != NULL) {
			OPENSSL_cleanse(job->values[i], job->lengths[i]);
			kore_free(job->values[i]);
		}
	}
	kore_free(job);
}

static char *
i64(int64_t v)
{
	char		buf[24];

	(void)snprintf(buf, sizeof(buf), "%lld", (long long)v);
	return (kore_strdup(buf));
}

/*
 * The source in columns 0-16 of row 0 of a lease or q_source_full (they
 * share that layout), secrets opened. Strings are malloc'd (source_free).
 */
static struct source_row *
dec_source(PGresult *res, const char *name, const char *subject)
{
	static const struct {
		int		col;
		const char	*field;
		size_t		off;
	} secrets[] = {
		{ 4, "client_secret", offsetof(struct source, client_secret) },
		{ 9, "refresh_token", offsetof(struct source, refresh_token) },
		{ 11, "password", offsetof(struct source, password) },
	};
	struct source_row	*row;
	struct source		*s;
	size_t			i, len;
	char			**out, origin[SOURCE_ORIGIN_MAX];
	char			field[64 + KILN_SUBJECT_MAX];

	row = kore_calloc(1, sizeof(*row));
	s = &row->src;
	(void)kore_strlcpy(s->name, name, sizeof(s->name));
	s->kind = source_kind_parse(PQgetvalue(res, 0, 1));
	s->token_url = col_dup(res, 2);
	s->client_id = col_dup(res, 3);
	s->auth_method = source_auth_parse(PQgetvalue(res, 0, 5));
	s->scope = col_dup(res, 6);
	s->audience = col_dup(res, 7);
	s->resource = col_dup(res, 8);
	s->username = col_dup(res, 10);
	s->token_path = col_dup(res, 12);
	s->expires_at_path = col_dup(res, 13);
	s->expires_in_path = col_dup(res, 14);
	s->refresh_buffer = PQgetlength(res, 0, 15) == 0 ? -1 :
	    col_num(res, 0, 15);
	s->fallback_lifetime = col_num(res, 0, 16);
	s->access = ACCESS_OPEN;
	s->enabled = 1;

	/* A secret opens only for the origin it was sealed for. */
	row->opened = 1;
	source_origin(s->token_url, origin, sizeof(origin));
	for (i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
		out = (char **)((u_int8_t *)s + secrets[i].off);
		if (PQgetlength(res, 0, secrets[i].col) == 0)
			continue;
		/* A connection's refresh token is bound to its subject. */
		if (!conn_field(secrets[i].field, secrets[i].col == 9 ?
		    subject : NULL, field, sizeof(field)) ||
		    !seal_open_for(name, field, origin,
		    PQgetvalue(res, 0, secrets[i].col), out, &len)) {
			(void)snprintf(row->error, sizeof(row->error),
			    "stored %s cannot be opened (wrong master key, "
			    "or sealed for another origin)", secrets[i].field);
			row->opened = 0;
			break;
		}
	}

	return (row);
}

int
store_key_bootstrap(const char *hash, char *err, size_t errlen)
{
	PGconn		*db;
	const char	*v[1];
	int		ret;

	if ((db = sync_connect(err, errlen)) == NULL)
		return (KORE_RESULT_ERROR);
	v[0] = hash;
	ret = sync_exec(db, q_key_bootstrap, 1, v, err, errlen);
	PQfinish(db);

	return (ret);
}

void
store_keys_load(store_rows_cb cb, void *arg)
{
	store_job(q_keys_load, cb, arg, 0);
}

void
store_key_create(const char *name, const char *role, const char *hash,
    const char *sources, const struct audit_who *who, const char *fields,
    store_rows_cb cb, void *arg)
{
	const char	*v[9];

	v[0] = name;
	v[1] = role;
	v[2] = hash;
	v[3] = sources;
	audit_params(who, v + 4);
	v[8] = fields;
	store_job_a(q_key_create, cb, arg, 9, v);
}

void
store_keys_list(store_rows_cb cb, void *arg)
{
	store_job(q_keys_list, cb, arg, 0);
}

void
store_key_revoke(const char *id, const struct audit_who *who,
    store_rows_cb cb, void *arg)
{
	const char	*v[5];

	v[0] = id;
	audit_params(who, v + 1);
	store_job_a(q_key_revoke, cb, arg, 5, v);
}

void
store_sources_view(const char *name, store_rows_cb cb, void *arg)
{
	store_job(q_sources_view, cb, arg, 1, name);
}

void
store_source_full(const char *name, store_rows_cb cb, void *arg)
{
	store_job(q_source_full, cb, arg, 1, name);
}

void
store_source_create(const struct source *src, const struct audit_who *who,
    const char *fields, store_rows_cb cb, void *arg)
{
	struct source_params	sp;
	const char		*v[SOURCE_CREATE_PARAMS];

	source_params(src, 1, &sp);
	source_params_key(src, &sp);
	memcpy(v, sp.v, sizeof(sp.v));
	memcpy(v + 22, sp.tls, sizeof(sp.tls));
	memcpy(v + 22 + SOURCE_TLS_PARAMS, sp.jws, sizeof(sp.jws));
	audit_params(who, v + 22 + SOURCE_TLS_PARAMS + SOURCE_JWS_PARAMS);
	v[22 + SOURCE_TLS_PARAMS + SOURCE_JWS_PARAMS + 4] = fields;
	memcpy(v + 22 + SOURCE_TLS_PARAMS + SOURCE_JWS_PARAMS + 5, sp.code,
	    sizeof(sp.code));
	v[22 + SOURCE_TLS_PARAMS + SOURCE_JWS_PARAMS + 5 + SOURCE_CODE_PARAMS] =
	    src->device_authorization_url;
	store_job_a(q_source_create, cb, arg, SOURCE_CREATE_PARAMS, v);
	source_params_free(&sp);
}

/*
 * Write a changed source if nobody changed it since version; with_refresh
 * when the change carries a new refresh token; upstream when the change
 * touches how the token is obtained (a refresh is then due at once).
 */
void
store_source_patch(const struct source *src, int64_t version,
    int with_refresh, int upstream, const struct audit_who *who,
    const char *fields, store_rows_cb cb, void *arg)
{
	struct source_params	sp;
	const char		*v[SOURCE_PATCH_PARAMS];
	char			*ver;

	source_params(src, with_refresh, &sp);
	source_params_key(src, &sp);
	memcpy(v, sp.v, sizeof(sp.v));
	ver = i64(version);
	v[22] = ver;
	v[23] = upstream ? "true" : "false";
	memcpy(v + 24, sp.tls, sizeof(sp.tls));
	memcpy(v + 24 + SOURCE_TLS_PARAMS, sp.jws, sizeof(sp.jws));
	audit_params(who, v + 24 + SOURCE_TLS_PARAMS + SOURCE_JWS_PARAMS);
	v[24 + SOURCE_TLS_PARAMS + SOURCE_JWS_PARAMS + 4] = fields;
	memcpy(v + 24 + SOURCE_TLS_PARAMS + SOURCE_JWS_PARAMS + 5, sp.code,
	    sizeof(sp.code));
	v[24 + SOURCE_TLS_PARAMS + SOURCE_JWS_PARAMS + 5 + SOURCE_CODE_PARAMS] =
	    src->device_authorization_url;
	store_job_a(q_source_patch, cb, arg, SOURCE_PATCH_PARAMS, v);
	kore_free(ver);
	source_params_free(&sp);
}

/* The keyed digest of how a source gets its token, to tell a change. */
char *
store_upstream_digest(const struct source *src)
{
	return (source_digest(src, 1));
}

void
store_source_delete(const char *name, const struct audit_who *who,
    store_rows_cb cb, void *arg)
{
	const char	*v[5];

	v[0] = name;
	audit_params(who, v + 1);
	store_job_a(q_source_delete, cb, arg, 5, v);
}

void
store_source_pause(const char *name, int paused, const struct audit_who *who,
    store_rows_cb cb, void *arg)
{
	const char	*v[6];

	v[0] = name;
	v[1] = paused ? "true" : "false";
	audit_params(who, v + 2);
	store_job_a(q_source_pause, cb, arg, 6, v);
}

void
store_prewarming_pause(int paused, const struct audit_who *who,
    store_rows_cb cb, void *arg)
{
	const char	*v[5];

	v[0] = paused ? "true" : "false";
	audit_params(who, v + 1);
	store_job_a(q_prewarming_pause, cb, arg, 5, v);
}

void
store_events(const char *name, int64_t limit, int64_t before,
    store_rows_cb cb, void *arg)
{
	char		*l, *b;

	l = i64(limit);
	b = before > 0 ? i64(before) : NULL;
	store_job(q_events, cb, arg, 3, name, l, b);
	kore_free(l);
	kore_free(b);
}

void
store_ping(store_rows_cb cb, void *arg)
{
	store_job(q_ping, cb, arg, 0);
}

static char *
col_dup(PGresult *res, int col)
{
	char		*s;

	if (PQgetlength(res, 0, col) == 0)
		return (NULL);
	if ((s = strdup(PQgetvalue(res, 0, col))) == NULL)
		fatal("strdup");

	return (s);
}

/* The key of a session written without key_id is read from principal. */
static const char q_sessions_load[] =
    "SELECT id_hash, role, csrf, kiln_ms(expires_at), "
    "coalesce(key_id, CASE WHEN principal ~ '^key:[0-9]{1,18}$' "
    "THEN substr(principal, 5)::bigint END) FROM dashboard_sessions "
    "WHERE expires_at > now()";

/* A session made from a JWT ends no later than the JWT ($9, ms). */
static const char q_session_create[] =
    "WITH d AS (DELETE FROM dashboard_sessions WHERE expires_at < now()), "
    "s AS (INSERT INTO dashboard_sessions (id_hash, role, principal, csrf, "
    "expires_at, key_id, jwt_id, jwt_subject, credential_expires_at) "
    "VALUES ($1, $2, $3, $4, least(now() + $5::bigint * interval "
    "'1 second', kiln_ts($9::bigint)), $6, $7, $8, kiln_ts($9::bigint)) "
    "RETURNING id_hash, expires_at), "
    AUDIT_CTE("10", "11", "12", "13", "'login'", "NULL", "NULL", "s")
    "SELECT kiln_ms(s.expires_at), pg_notify('kiln_sessions', '') FROM s";

/* The payload names the session, so that others drop it at once. */
static const char q_session_delete[] =
    "WITH s AS (DELETE FROM dashboard_sessions WHERE id_hash = $1 "
    "RETURNING id_hash), "
    AUDIT_CTE("2", "3", "4", "5", "'logout'", "NULL", "NULL", "s")
    "SELECT pg_notify('kiln_sessions', s.id_hash) "
    "FROM s";

static const char q_recent_events[] =
    "SELECT s.name, e.trigger, kiln_ms(e.finished_at), e.outcome, "
    "e.duration_ms, e.http_status, e.error, e.generation, e.fingerprint "
    "FROM refresh_events e JOIN token_sources s ON s.id = e.source_id "
    "ORDER BY e.id DESC LIMIT 50";

void
store_sessions_load(store_rows_cb cb, void *arg)
{
	store_job(q_sessions_load, cb, arg, 0);
}

/* A session of p (a key or a JWT) that lives at most lifetime s. */
void
store_session_create(const char *hash, const char *csrf,
    const struct principal *p, int64_t lifetime, const struct audit_who *who,
    store_rows_cb cb, void *arg)
{
	const char	*v[13];
	char		*life, *key, *exp;
	int		jwt;

	jwt = p->kind == PRINCIPAL_JWT;
	life = i64(lifetime);
	key = p->kind == PRINCIPAL_KEY ? i64(p->key_id) : NULL;
	exp = jwt ? i64(p->expires_ms) : NULL;
	v[0] = hash;
	v[1] = jwt_role_name(p->role);
	v[2] = p->id;
	v[3] = csrf;
	v[4] = life;
	v[5] = key;
	v[6] = jwt && p->jti[0] ? p->jti : NULL;
	v[7] = jwt ? p->subject : NULL;
	v[8] = exp;
	audit_params(who, v + 9);
	store_job_a(q_session_create, cb, arg, 13, v);
	kore_free(life);
	kore_free(key);
	kore_free(exp);
}

void
store_session_delete(const char *hash, const struct audit_who *who,
    store_rows_cb cb, void *arg)
{
	const char	*v[5];

	v[0] = hash;
	audit_params(who, v + 1);
	store_job_a(q_session_delete, cb, arg, 5, v);
}

void
store_recent_events(store_rows_cb cb, void *arg)
{
	store_job(q_recent_events, cb, arg, 0);
}

/*
 * The re-seal pass (reseal.c): rows with a blob not under the current key
 * (secrets also not yet bound to their origin), a batch at a time in
 * (source, subject) order: a source's own row, its secrets with its
 * default token, and each connection's row, its token and refresh token
 * (the same five columns, NULL where a kind of row has none). Each write
 * swaps a blob only if it is still the one read, so a refresh or a
 * change that wrote the row meanwhile wins; an origin-bound blob only
 * while the source still has the URL it was sealed for. The write
 * answers the values it swapped, in the source and in the token row.
 */
static const char q_reseal_scan[] =
    "SELECT s.id, s.name, s.token_url, "
    "CASE WHEN t.subject = 'default' THEN s.client_secret_sealed END, "
    "CASE WHEN t.subject = 'default' THEN s.refresh_token_sealed "
    "ELSE t.refresh_token_sealed END, "
    "CASE WHEN t.subject = 'default' THEN s.password_sealed END, "
    "t.token_sealed, "
    "CASE WHEN t.subject = 'default' THEN s.tls_client_key_sealed END, "
    "t.subject "
    "FROM token_sources s JOIN tokens t ON t.source_id = s.id "
    "WHERE (s.id, t.subject) > ($1::bigint, $4) AND "
    "((t.subject = 'default' AND (left(s.client_secret_sealed, 12) <> $2 "
    "OR left(s.refresh_token_sealed, 12) <> $2 "
    "OR left(s.password_sealed, 12) <> $2 "
    "OR left(s.tls_client_key_sealed, 12) <> $2)) "
    "OR (t.subject <> 'default' AND "
    "left(t.refresh_token_sealed, 12) <> $2) "
    "OR left(t.token_sealed, 12) <> $3) "
    "ORDER BY s.id, t.subject LIMIT 64";

static const char q_reseal_write[] =
    "WITH s AS (UPDATE token_sources SET client_secret_sealed = CASE "
    "WHEN client_secret_sealed = $3 THEN $4 ELSE client_secret_sealed END, "
    "refresh_token_sealed = CASE WHEN refresh_token_sealed = $5 THEN $6 "
    "ELSE refresh_token_sealed END, password_sealed = CASE "
    "WHEN password_sealed = $7 THEN $8 ELSE password_sealed END, "
    "tls_client_key_sealed = CASE WHEN tls_client_key_sealed = $11 "
    "THEN $12 ELSE tls_client_key_sealed END "
    "WHERE id = $1 AND token_url = $2 AND $13 = 'default' AND "
    "(client_secret_sealed = $3 OR refresh_token_sealed = $5 OR "
    "password_sealed = $7 OR tls_client_key_sealed = $11) "
    "RETURNING (client_secret_sealed = $4 IS TRUE)::int + "
    "(refresh_token_sealed = $6 IS TRUE)::int + "
    "(password_sealed = $8 IS TRUE)::int + "
    "(tls_client_key_sealed = $12 IS TRUE)::int AS n), "
    "t AS (UPDATE tokens SET token_sealed = CASE WHEN token_sealed = $9 "
    "THEN $10 ELSE token_sealed END, refresh_token_sealed = CASE "
    "WHEN subject <> 'default' AND refresh_token_sealed = $5 THEN $6 "
    "ELSE refresh_token_sealed END "
    "WHERE source_id = $1 AND subject = $13 AND (token_sealed = $9 OR "
    "(subject <> 'default' AND refresh_token_sealed = $5 AND EXISTS "
    "(SELECT 1 FROM token_sources WHERE id = $1 AND token_url = $2))) "
    "RETURNING (token_sealed = $10 IS TRUE)::int + "
    "(subject <> 'default' AND refresh_token_sealed = $6 IS TRUE)::int "
    "AS n) "
    "SELECT (SELECT coalesce(sum(n), 0) FROM s), "
    "(SELECT coalesce(sum(n), 0) FROM t)";

/* Rows (a source with its default token, or a connection) left. */
static const char q_reseal_count[] =
    "SELECT count(*) FILTER (WHERE (t.subject = 'default' AND "
    "(substr(s.client_secret_sealed, 4, 8) <> $1 OR "
    "substr(s.refresh_token_sealed, 4, 8) <> $1 OR "
    "substr(s.password_sealed, 4, 8) <> $1 OR "
    "substr(s.tls_client_key_sealed, 4, 8) <> $1)) OR "
    "(t.subject <> 'default' AND "
    "substr(t.refresh_token_sealed, 4, 8) <> $1) OR "
    "substr(t.token_sealed, 4, 8) <> $1), "
    "count(*) FILTER (WHERE t.subject = 'default' AND "
    "(left(s.client_secret_sealed, 3) = 'v1.' OR "
    "left(s.refresh_token_sealed, 3) = 'v1.' OR "
    "left(s.password_sealed, 3) = 'v1.')) "
    "FROM token_sources s JOIN tokens t ON t.source_id = s.id";

/* The rows after (after, subject); "" before every subject. */
void
store_reseal_scan(int64_t after, const char *subject, store_rows_cb cb,
    void *arg)
{
	char		*a, bound[16], plain[16];

	a = i64(after);
	(void)snprintf(bound, sizeof(bound), "v2.%s.", seal_key_id());
	(void)snprintf(plain, sizeof(plain), "v1.%s.", seal_key_id());
	store_job(q_reseal_scan, cb, arg, 4, a, bound, plain, subject);
	kore_free(a);
}

/*
 * old and new: client secret, refresh token, password, token, TLS
 * client key (or NULL), of the row (id, subject).
 */
void
store_reseal_write(int64_t id, const char *subject, const char *url,
    char *const *old, char *const *new, store_rows_cb cb, void *arg)
{
	char		*i;

	i = i64(id);
	store_job(q_reseal_write, cb, arg, 13, i, url, old[0], new[0],
	    old[1], new[1], old[2], new[2], old[3], new[3], old[4], new[4],
	    subject);
	kore_free(i);
}

void
store_reseal_count(store_rows_cb cb, void *arg)
{
	store_job(q_reseal_count, cb, arg, 1, seal_key_id());
}

/*
 * The operator's subcommands (ship.c) run in the parent before Kore
 * starts, with blocking libpq: one connection attempt, bounded by
 * PGCONNECT_TIMEOUT, so that an unreachable database fails at once.
 */
void
store_sync_once(void)
{
	sync_tries = 1;
}

/* How many migration files are not yet recorded as applied. */
int
store_migrations_pending(int *pending, int *total, char *err, size_t errlen)
{
	struct dirent	**list;
	PGresult	*res;
	PGconn		*db;
	const char	*values[1];
	char		version[4];
	int		i, n, ret, table;

	*pending = *total = 0;
	n = scandir(kiln_config.migrations_dir, &list, migrate_filter,
	    alphasort);
	if (n == -1) {
		(void)snprintf(err, errlen, "KILN_MIGRATIONS_DIR: %s: %s",
		    kiln_config.migrations_dir, strerror(errno));
		return (KORE_RESULT_ERROR);
	}
	if ((db = sync_connect(err, errlen)) == NULL) {
		ret = KORE_RESULT_ERROR;
		goto cleanup;
	}

	res = PQexec(db, "SELECT to_regclass('schema_migrations') IS NOT NULL");
	ret = PQresultStatus(res) == PGRES_TUPLES_OK;
	table = ret && PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!ret)
		(void)snprintf(err, errlen, "database: %s", PQerrorMessage(db));

	for (i = 0; ret && i < n; i++) {
		(*total)++;
		if (!table) {
			(*pending)++;
			continue;
		}
		(void)kore_strlcpy(version, list[i]->d_name, sizeof(version));
		values[0] = version;
		res = PQexecParams(db, q_migration_seen, 1, NULL, values,
		    NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			(void)snprintf(err, errlen, "database: %s",
			    PQerrorMessage(db));
			ret = KORE_RESULT_ERROR;
		} else if (PQntuples(res) == 0) {
			(*pending)++;
		}
		PQclear(res);
	}
	PQfinish(db);
	ret = ret ? KORE_RESULT_OK : KORE_RESULT_ERROR;

cleanup:
	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);

	return (ret);
}

/*
 * The re-seal queries, driven synchronously (kiln reseal, kiln check):
 * every row whose blobs are not all under the current key, or every row
 * at all when every is set, is handed to fn, which may give a new blob
 * for each column; those are written with the same compare-and-swap as
 * the background pass. *written counts the blobs swapped.
 */
int
store_reseal_sync(int every, store_reseal_fn fn, void *arg,
    int64_t *written, char *err, size_t errlen)
{
	PGresult	*res, *w;
	PGconn		*db;
	const char	*v[3 + 2 * STORE_SEALED], *blobs[STORE_SEALED];
	char		*after, *fresh[STORE_SEALED], bound[16], plain[16];
	char		id[24], subject[KILN_SUBJECT_MAX + 1];
	int		i, n, c, any, ret;

	*written = 0;
	if ((db = sync_connect(err, errlen)) == NULL)
		return (KORE_RESULT_ERROR);

	if (every) {
		bound[0] = plain[0] = '\0';
	} else {
		(void)snprintf(bound, sizeof(bound), "v2.%s.", seal_key_id());
		(void)snprintf(plain, sizeof(plain), "v1.%s.", seal_key_id());
	}

	ret = KORE_RESULT_OK;
	after = kore_strdup("0");
	subject[0] = '\0';
	for (;;) {
		v[0] = after;
		v[1] = bound;
		v[2] = plain;
		v[3] = subject;
		res = PQexecParams(db, q_reseal_scan, 4, NULL, v, NULL, NULL,
		    0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			(void)snprintf(err, errlen, "database: %s",
			    PQerrorMessage(db));
			PQclear(res);
			ret = KORE_RESULT_ERROR;
			break;
		}
		if ((n = PQntuples(res)) == 0) {
			PQclear(res);
			break;
		}

		for (i = 0; ret && i < n; i++) {
			for (c = 0; c < STORE_SEALED; c++) {
				blobs[c] = PQgetisnull(res, i, 3 + c) ? NULL :
				    PQgetvalue(res, i, 3 + c);
				fresh[c] = NULL;
			}
			fn(arg, PQgetvalue(res, i, 1),
			    PQgetvalue(res, i, 3 + STORE_SEALED),
			    PQgetvalue(res, i, 2), blobs, fresh);
			for (any = 0, c = 0; c < STORE_SEALED; c++)
				any |= fresh[c] != NULL;
			if (!any)
				continue;

			(void)kore_strlcpy(id, PQgetvalue(res, i, 0),
			    sizeof(id));
			v[0] = id;
			v[1] = PQgetvalue(res, i, 2);
			for (c = 0; c < STORE_SEALED; c++) {
				v[2 + 2 * c] = fresh[c] ? blobs[c] : NULL;
				v[3 + 2 * c] = fresh[c];
			}
			v[2 + 2 * STORE_SEALED] = PQgetvalue(res, i,
			    3 + STORE_SEALED);
			w = PQexecParams(db, q_reseal_write,
			    3 + 2 * STORE_SEALED, NULL, v, NULL, NULL, 0);
			if (PQresultStatus(w) != PGRES_TUPLES_OK) {
				(void)snprintf(err, errlen, "database: %s",
				    PQerrorMessage(db));
				ret = KORE_RESULT_ERROR;
			} else {
				*written += strtoll(PQgetvalue(w, 0, 0),
				    NULL, 10) + strtoll(PQgetvalue(w, 0, 1),
				    NULL, 10);
			}
			PQclear(w);
			for (c = 0; c < STORE_SEALED; c++)
				seal_wipe(fresh[c]);
		}

		kore_free(after);
		after = kore_strdup(PQgetvalue(res, n - 1, 0));
		(void)kore_strlcpy(subject, PQgetvalue(res, n - 1,
		    3 + STORE_SEALED), sizeof(subject));
		PQclear(res);
		if (!ret)
			break;
	}
	kore_free(after);
	PQfinish(db);

	return (ret);
}

/*
 * Decoding: each statement that answers rows has its decoder, found by
 * the statement; the callback gets the rows as structs.
 */
static const char *
col_str(PGresult *res, int r, int c)
{
	return (PQgetisnull(res, r, c) ? NULL : PQgetvalue(res, r, c));
}

/* A number, 0 when NULL. */
static int64_t
col_num(PGresult *res, int r, int c)
{
	if (PQgetlength(res, r, c) == 0)
		return (0);
	return (strtoll(PQgetvalue(res, r, c), NULL, 10));
}

/* A number, STORE_NULL when NULL. */
static int64_t
col_numn(PGresult *res, int r, int c)
{
	if (PQgetlength(res, r, c) == 0)
		return (STORE_NULL);
	return (strtoll(PQgetvalue(res, r, c), NULL, 10));
}

static int
col_bool(PGresult *res, int r, int c)
{
	return (PQgetvalue(res, r, c)[0] == 't');
}

static void
dec_tokens(PGresult *res, struct store_job *job, struct store_rows *rows)
{
	struct token_row	*t;
	size_t			i;

	rows->tokens = t = kore_calloc(rows->n + 1, sizeof(*t));
	for (i = 0; i < rows->n; i++, t++) {
		t->id = col_num(res, i, 0);
		t->name = PQgetvalue(res, i, 1);
		t->kind = PQgetvalue(res, i, 2);
		t->access = PQgetvalue(res, i, 3);
		t->require_header = col_bool(res, i, 4);
		t->enabled = col_bool(res, i, 5);
		t->paused = col_bool(res, i, 6);
		t->token_sealed = col_str(res, i, 7);
		t->token_type = col_str(res, i, 8);
		t->generation = col_num(res, i, 9);
		t->fingerprint = col_str(res, i, 10);
		t->expires_ms = col_num(res, i, 11);
		t->refresh_ms = col_num(res, i, 12);
		t->next_ms = col_num(res, i, 13);
		t->failures = col_num(res, i, 14);
		t->last_error = col_str(res, i, 15);
		t->prewarming_paused = col_bool(res, i, 16);
		t->last_duration_ms = col_numn(res, i, 17);
		t->leased = col_bool(res, i, 18);
		t->lifetime_ms = col_num(res, i, 19);
		t->cert_not_after_ms = col_numn(res, i, 20);
		t->subject_source = col_str(res, i, 21);
		t->actor_source = col_str(res, i, 22);
		t->subject_generation = col_num(res, i, 23);
		t->auth_method = PQgetvalue(res, i, 24);
		t->cert_subject = col_str(res, i, 25);
		t->host = col_str(res, i, 26);
		t->subject = PQgetvalue(res, i, 27);
		t->state = PQgetvalue(res, i, 28);
		t->signing_key_id = col_str(res, i, 29);
	}
}

static void
dec_views(PGresult *res, struct store_job *job, struct store_rows *rows)
{
	struct source_view	*v;
	size_t			i;

	rows->views = v = kore_calloc(rows->n + 1, sizeof(*v));
	for (i = 0; i < rows->n; i++, v++) {
		v->name = col_str(res, i, 0);
		v->kind = col_str(res, i, 1);
		v->token_url = col_str(res, i, 2);
		v->client_id = col_str(res, i, 3);
		v->client_secret_set = col_bool(res, i, 4);
		v->auth_method = col_str(res, i, 5);
		v->scope = col_str(res, i, 6);
		v->audience = col_str(res, i, 7);
		v->resource = col_str(res, i, 8);
		v->refresh_token_set = col_bool(res, i, 9);
		v->username = col_str(res, i, 10);
		v->password_set = col_bool(res, i, 11);
		v->token_path = col_str(res, i, 12);
		v->expires_at_path = col_str(res, i, 13);
		v->expires_in_path = col_str(res, i, 14);
		v->refresh_buffer = col_numn(res, i, 15);
		v->fallback_lifetime = col_numn(res, i, 16);
		v->access = col_str(res, i, 17);
		v->require_header = col_bool(res, i, 18);
		v->enabled = col_bool(res, i, 19);
		v->paused = col_bool(res, i, 20);
		v->created_ms = col_numn(res, i, 21);
		v->updated_ms = col_numn(res, i, 22);
		v->generation = col_numn(res, i, 23);
		v->fingerprint = col_str(res, i, 24);
		v->obtained_ms = col_numn(res, i, 25);
		v->expires_ms = col_numn(res, i, 26);
		v->refresh_ms = col_numn(res, i, 27);
		v->next_ms = col_numn(res, i, 28);
		v->failures = col_numn(res, i, 29);
		v->last_error = col_str(res, i, 30);
		v->last_duration_ms = col_numn(res, i, 31);
		v->leased = col_bool(res, i, 32);
		v->tls_cert_subject = col_str(res, i, 33);
		v->tls_cert_not_after_ms = col_numn(res, i, 34);
		v->tls_client_key_set = col_bool(res, i, 35);
		v->tls_ca_set = col_bool(res, i, 36);
		v->subject_source = col_str(res, i, 37);
		v->subject_token_type = col_str(res, i, 38);
		v->requested_token_type = col_str(res, i, 39);
		v->actor_source = col_str(res, i, 40);
		v->actor_token_type = col_str(res, i, 41);
		v->waiting = col_bool(res, i, 42);
		v->issuer = col_str(res, i, 43);
		v->subject = col_str(res, i, 44);
		v->assertion_audience = col_str(res, i, 45);
		v->target_audience = col_str(res, i, 46);
		v->key_generate = col_str(res, i, 47);
		v->key_ids = col_str(res, i, 48);
		v->signing_key_id = col_str(res, i, 49);
		v->authorize_url = col_str(res, i, 50);	/* c-authcode */
		v->revocation_url = col_str(res, i, 51);
		v->extra_authorize_params = col_str(res, i, 52);
		v->device_authorization_url = col_str(res, i, 53);
	}
}

/* q_source_full: the source, then access, flags and config_version. */
static void
dec_source_full(PGresult *res, struct store_job *job,
    struct store_rows *rows)
{
	struct source_row	*row;

	if (rows->n == 0)
		return;
	rows->source = row = dec_source(res, job->values[0], NULL);
	row->src.access = strcmp(PQgetvalue(res, 0, 17), "key") ?
	    ACCESS_OPEN : ACCESS_KEY;
	row->src.require_header = col_bool(res, 0, 18);
	row->src.enabled = col_bool(res, 0, 19);
	row->version = col_num(res, 0, 20);
	dec_tls(res, 21, row);
	dec_source_jws(res, row, 29, 0);
	if (PQnfields(res) >= 39) {	/* authorization_code, device_code */
		row->src.authorize_url = col_dup(res, 35);
		row->src.revocation_url = col_dup(res, 36);
		row->src.extra_authorize_params = col_dup(res, 37);
		row->src.device_authorization_url = col_dup(res, 38);
	}
}

/*
 * Mutual TLS columns from col: certificate, sealed key, CA, then the
 * five of token exchange (subject_source ... actor_token_type). The key
 * opens like every secret, for the origin it was sealed for.
 */
static void
dec_tls(PGresult *res, int col, struct source_row *row)
{
	struct source	*s;
	size_t		len;
	char		origin[SOURCE_ORIGIN_MAX];

	s = &row->src;
	if (PQnfields(res) < col + 8)
		return;

	s->subject_source = col_dup(res, col + 3);
	s->subject_token_type = col_dup(res, col + 4);
	s->requested_token_type = col_dup(res, col + 5);
	s->actor_source = col_dup(res, col + 6);
	s->actor_token_type = col_dup(res, col + 7);

	if (PQgetlength(res, 0, col + 2) > 0)
		s->tls_ca = col_dup(res, col + 2);
	if (PQgetlength(res, 0, col) == 0)
		return;
	s->tls_client_cert = col_dup(res, col);
	if (PQgetlength(res, 0, col + 1) == 0 || !row->opened)
		return;

	source_origin(s->token_url, origin, sizeof(origin));
	if (!seal_open_for(s->name, "tls_client_key", origin,
	    PQgetvalue(res, 0, col + 1), &s->tls_client_key, &len)) {
		(void)snprintf(row->error, sizeof(row->error),
		    "stored tls_client_key cannot be opened (wrong master "
		    "key, or sealed for another origin)");
		row->opened = 0;
	}
}

/* q_lease: the lease (columns 0-21, NULL when refused), why, until. */
static void
dec_lease(PGresult *res, struct store_job *job, struct store_rows *rows)
{
	struct lease_row	*l;
	struct source_row	*row;

	if (rows->n == 0)
		return;
	rows->lease = l = kore_calloc(1, sizeof(*l));
	l->why = PQgetvalue(res, 0, 22);
	l->why_until = col_num(res, 0, 23);
	if (PQgetlength(res, 0, 0) == 0)
		return;

	l->source = rows->source = row = dec_source(res, job->values[0],
	    job->values[6]);
	row->id = col_num(res, 0, 0);
	row->generation = col_num(res, 0, 17);
	row->expires_ms = col_num(res, 0, 18);
	row->failures = col_num(res, 0, 19);
	row->seed_digest = PQgetlength(res, 0, 21) > 0 ?
	    PQgetvalue(res, 0, 21) : NULL;
	dec_tls(res, 24, row);
	dec_source_jws(res, row, 32, 1);
}

static void
dec_events(PGresult *res, struct store_job *job, struct store_rows *rows)
{
	struct event_row	*e;
	size_t			i;

	rows->events = e = kore_calloc(rows->n + 1, sizeof(*e));
	for (i = 0; i < rows->n; i++, e++) {
		e->id = col_numn(res, i, 0);
		e->trigger = col_str(res, i, 1);
		e->started_ms = col_numn(res, i, 2);
		e->finished_ms = col_numn(res, i, 3);
		e->outcome = col_str(res, i, 4);
		e->duration_ms = col_numn(res, i, 5);
		e->http_status = col_numn(res, i, 6);
		e->error = col_str(res, i, 7);
		e->generation = col_numn(res, i, 8);
		e->fingerprint = col_str(res, i, 9);
	}
}

static void
dec_recent_events(PGresult *res, struct store_job *job,
    struct store_rows *rows)
{
	struct event_row	*e;
	size_t			i;

	rows->events = e = kore_calloc(rows->n + 1, sizeof(*e));
	for (i = 0; i < rows->n; i++, e++) {
		e->id = STORE_NULL;
		e->started_ms = STORE_NULL;
		e->source = col_str(res, i, 0);
		e->trigger = col_str(res, i, 1);
		e->finished_ms = col_numn(res, i, 2);
		e->outcome = col_str(res, i, 3);
		e->duration_ms = col_numn(res, i, 4);
		e->http_status = col_numn(res, i, 5);
		e->error = col_str(res, i, 6);
		e->generation = col_numn(res, i, 7);
		e->fingerprint = col_str(res, i, 8);
	}
}

/* The key statements share id, then differ: cols says where each is. */
static void
dec_keys_at(PGresult *res, struct store_rows *rows, const int *cols)
{
	struct key_row		*k;
	size_t			i;

	rows->keys = k = kore_calloc(rows->n + 1, sizeof(*k));
	for (i = 0; i < rows->n; i++, k++) {
		k->id = col_num(res, i, 0);
		k->name = cols[0] < 0 ? NULL : col_str(res, i, cols[0]);
		k->role = col_str(res, i, cols[1]);
		k->hash = cols[2] < 0 ? NULL : col_str(res, i, cols[2]);
		k->created_ms = cols[3] < 0 ? STORE_NULL :
		    col_numn(res, i, cols[3]);
		k->revoked_ms = cols[4] < 0 ? STORE_NULL :
		    col_numn(res, i, cols[4]);
		k->sources = col_str(res, i, cols[5]);
	}
}

static void
dec_keys_load(PGresult *res, struct store_job *job, struct store_rows *rows)
{
	static const int	cols[] = { -1, 1, 2, -1, -1, 3 };

	dec_keys_at(res, rows, cols);
}

static void
dec_key_create(PGresult *res, struct store_job *job,
    struct store_rows *rows)
{
	static const int	cols[] = { 1, 2, -1, 3, -1, 5 };

	dec_keys_at(res, rows, cols);
}

static void
dec_keys_list(PGresult *res, struct store_job *job, struct store_rows *rows)
{
	static const int	cols[] = { 1, 2, -1, 3, 4, 5 };

	dec_keys_at(res, rows, cols);
}

static void
dec_sessions(PGresult *res, struct store_job *job, struct store_rows *rows)
{
	struct session_row	*s;
	size_t			i;

	rows->sessions = s = kore_calloc(rows->n + 1, sizeof(*s));
	for (i = 0; i < rows->n; i++, s++) {
		s->hash = PQgetvalue(res, i, 0);
		s->role = PQgetvalue(res, i, 1);
		s->csrf = PQgetvalue(res, i, 2);
		s->expires_ms = col_num(res, i, 3);
		s->key_id = col_num(res, i, 4);
	}
}

static void
dec_sealed(PGresult *res, struct store_job *job, struct store_rows *rows)
{
	struct sealed_row	*r;
	size_t			i;
	int			c;

	rows->sealed = r = kore_calloc(rows->n + 1, sizeof(*r));
	for (i = 0; i < rows->n; i++, r++) {
		r->id = col_num(res, i, 0);
		r->name = PQgetvalue(res, i, 1);
		r->url = PQgetvalue(res, i, 2);
		for (c = 0; c < STORE_SEALED; c++)
			r->blob[c] = PQgetlength(res, i, 3 + c) > 0 ?
			    PQgetvalue(res, i, 3 + c) : NULL;
		r->subject = PQgetvalue(res, i, 3 + STORE_SEALED);
	}
}

static void
store_decode_rows(struct store_job *job, struct store_rows *rows)
{
	static const struct {
		const char	*query;
		store_decode	decode;
	} decoders[] = {
		{ q_load, dec_tokens },
		{ q_sources_view, dec_views },
		{ q_sources_page, dec_views },
		{ q_source_full, dec_source_full },
		{ q_lease, dec_lease },
		{ q_events, dec_events },
		{ q_recent_events, dec_recent_events },
		{ q_keys_load, dec_keys_load },
		{ q_key_create, dec_key_create },
		{ q_keys_list, dec_keys_list },
		{ q_sessions_load, dec_sessions },
		{ q_reseal_scan, dec_sealed },
		{ q_audit_list, dec_audit },
		{ q_exchange_edges, dec_edges },
		{ q_timeline, dec_events },
		{ q_signing_keys, dec_signing_keys },
		{ q_reload, dec_tokens },
		{ q_conn_import, dec_conns },
		{ q_conn_list, dec_conns },
		{ q_conn_get, dec_conns },
		{ q_conn_events, dec_events },
	};
	PGresult	*res = job->sql.result;
	size_t		i;
	int		c;

	rows->n = PQntuples(res);
	for (c = 0; c < 3; c++) {
		rows->num[c] = rows->n > 0 && c < PQnfields(res) ?
		    col_numn(res, 0, c) : STORE_NULL;
	}
	if (dec_webhook_rows(job, rows) || dec_flow_rows(job, rows) ||
	    dec_device_rows(job, rows) || dec_page_rows(job, rows))
		return;
	for (i = 0; i < sizeof(decoders) / sizeof(decoders[0]); i++) {
		if (decoders[i].query == job->query) {
			decoders[i].decode(res, job, rows);
			break;
		}
	}
}

static void
store_rows_free(struct store_rows *rows)
{
	kore_free(rows->tokens);
	kore_free(rows->views);
	if (rows->source != NULL)
		source_free(&rows->source->src);	/* unless taken */
	kore_free(rows->source);
	kore_free(rows->lease);
	kore_free(rows->events);
	kore_free(rows->keys);
	kore_free(rows->sessions);
	kore_free(rows->sealed);
	kore_free(rows->audit);
	webhook_rows_free(rows);
	kore_free(rows->edges);
	kore_free(rows->signing_keys);
	kore_free(rows->conns);
	kore_free(rows->flows);
	kore_free(rows->devices);
}

/* Told of the outcome (1: answered, 0: failed) of every async query. */
void
store_db_watch(void (*cb)(int))
{
	db_watch = cb;
}

void
store_audit_write(const struct audit_who *who, const char *action,
    const char *target, const char *fields, const char *outcome,
    store_rows_cb cb, void *arg)
{
	const char	*v[8];

	audit_params(who, v);
	v[4] = action;
	v[5] = target;
	v[6] = fields;
	v[7] = outcome;
	store_job_a(q_audit_write, cb, arg, 8, v);
}

void
store_audit_list(const struct audit_query *q, store_rows_cb cb, void *arg)
{
	char		*before, *since, *until, *limit;

	before = q->before > 0 ? i64(q->before) : NULL;
	since = q->since_ms != AUDIT_NONE ? i64(q->since_ms) : NULL;
	until = q->until_ms != AUDIT_NONE ? i64(q->until_ms) : NULL;
	limit = i64(q->limit);
	store_job(q_audit_list, cb, arg, 7, before,
	    q->action[0] ? q->action : NULL,
	    q->principal[0] ? q->principal : NULL,
	    q->target[0] ? q->target : NULL, since, until, limit);
	kore_free(before);
	kore_free(since);
	kore_free(until);
	kore_free(limit);
}

/* Kind, principal, address, request id: $k..$k+3 of AUDIT_CTE. */
static void
audit_params(const struct audit_who *who, const char **v)
{
	v[0] = who->kind != NULL ? who->kind : "anonymous";
	v[1] = who->principal[0] ? who->principal : NULL;
	v[2] = who->address[0] ? who->address : NULL;
	v[3] = who->request_id[0] ? who->request_id : NULL;
}

static void
dec_audit(PGresult *res, struct store_job *job, struct store_rows *rows)
{
	struct audit_row	*a;
	size_t			i;

	rows->audit = a = kore_calloc(rows->n + 1, sizeof(*a));
	for (i = 0; i < rows->n; i++, a++) {
		a->id = col_num(res, i, 0);
		a->at_ms = col_num(res, i, 1);
		a->principal_kind = col_str(res, i, 2);
		a->principal = col_str(res, i, 3);
		a->action = col_str(res, i, 4);
		a->target = col_str(res, i, 5);
		a->fields = col_str(res, i, 6);
		a->address = col_str(res, i, 7);
		a->request_id = col_str(res, i, 8);
		a->outcome = col_str(res, i, 9);
	}
}
/*
 * Webhooks (migration 008). A delivery row is the outbox: written by the
 * refresh commits above (q_success, q_failure) and by q_webhook_expired,
 * claimed by one worker of one instance at a time (q_webhook_claim: FOR
 * UPDATE SKIP LOCKED, and next_attempt_at pushed past the attempt as its
 * lease, so a worker that dies leaves the row due again), and finished
 * by q_webhook_done. The secret is sealed for the origin of the URL.
 */
#define WH_SEAL_NAME	"webhook"
#define WH_SEAL_FIELD	"secret"
#define WH_DCOLS							\
    "d.id, d.event_id, d.type, kiln_ms(d.created_at), d.source, "	\
    "d.subject, d.state, d.generation, d.fingerprint, d.failures, "	\
    "d.error, d.status, d.attempts, kiln_ms(d.next_attempt_at), "	\
    "d.last_status, d.last_error, kiln_ms(d.finished_at), "
#define WH_NO_ATTEMPT							\
    "NULL::integer, NULL::bigint, NULL::integer, NULL::integer, "	\
    "NULL::text, "

static const char q_webhook_create[] =
    "WITH w AS (INSERT INTO webhooks (url, events, secret_sealed) "
    "VALUES ($1, string_to_array($2, ','), $3) "
    "RETURNING id, created_at), "
    AUDIT_CTE("4", "5", "6", "7", "'webhook.create'", "w.id::text",
    "'url,events,secret'", "w")
    "SELECT w.id, kiln_ms(w.created_at) FROM w";

static const char q_webhooks_list[] =
    "SELECT w.id, w.url, array_to_string(w.events, ','), "
    "kiln_ms(w.created_at), "
    "count(d.id) FILTER (WHERE d.status = 'pending'), "
    "count(d.id) FILTER (WHERE d.status = 'delivered'), "
    "count(d.id) FILTER (WHERE d.status = 'failed') "
    "FROM webhooks w LEFT JOIN webhook_deliveries d "
    "ON d.webhook_id = w.id GROUP BY w.id ORDER BY w.id";

static const char q_webhook_delete[] =
    "WITH w AS (DELETE FROM webhooks WHERE id = $1 RETURNING id), "
    AUDIT_CTE("2", "3", "4", "5", "'webhook.delete'", "w.id::text",
    "NULL", "w")
    "SELECT w.id FROM w";

/* One row per attempt, newest delivery first; none: no such webhook. */
static const char q_webhook_deliveries[] =
    "WITH h AS (SELECT id, url FROM webhooks WHERE id = $1), "
    "d AS (SELECT x.* FROM webhook_deliveries x, h "
    "WHERE x.webhook_id = h.id AND ($3::bigint IS NULL "
    "OR x.id < $3::bigint) ORDER BY x.id DESC LIMIT $2::integer) "
    "SELECT h.id, h.url, " WH_DCOLS
    "a.attempt, kiln_ms(a.started_at), a.duration_ms, a.http_status, "
    "a.error, NULL FROM h LEFT JOIN d ON true "
    "LEFT JOIN webhook_attempts a ON a.delivery_id = d.id "
    "ORDER BY d.id DESC, a.id";

/*
 * Due rows, oldest first, at most $4 out at once per webhook (counted
 * over every worker and instance: rows under a live lease), so that a
 * receiver that never answers holds $4 attempts, not every worker's.
 */
static const char q_webhook_claim[] =
    "WITH c AS (SELECT s.id FROM (SELECT x.id, x.next_attempt_at, "
    "row_number() OVER (PARTITION BY w.id ORDER BY x.next_attempt_at) "
    "AS rn, b.busy FROM webhooks w "
    "CROSS JOIN LATERAL (SELECT count(*) AS busy FROM webhook_deliveries o "
    "WHERE o.webhook_id = w.id AND o.status = 'pending' "
    "AND o.lease_owner IS NOT NULL AND o.next_attempt_at > now()) b "
    "CROSS JOIN LATERAL (SELECT id, next_attempt_at "
    "FROM webhook_deliveries d WHERE d.webhook_id = w.id "
    "AND d.status = 'pending' AND d.next_attempt_at <= now() "
    "ORDER BY d.next_attempt_at LIMIT $4::integer "
    "FOR UPDATE SKIP LOCKED) x WHERE b.busy < $4::integer) s "
    "WHERE s.rn <= $4::integer - s.busy "
    "ORDER BY s.next_attempt_at LIMIT $2::integer), "
    "d AS (UPDATE webhook_deliveries x SET attempts = x.attempts + 1, "
    "lease_owner = $1, next_attempt_at = now() + "
    "$3::bigint * interval '1 millisecond' FROM c WHERE x.id = c.id "
    "RETURNING x.*) "
    "SELECT w.id, w.url, " WH_DCOLS WH_NO_ATTEMPT "w.secret_sealed "
    "FROM d JOIN webhooks w ON w.id = d.webhook_id ORDER BY d.id";

/*
 * An attempt's outcome, if the lease is still ours ($3: the attempt it
 * was claimed for); the attempt is recorded either way. A failure is
 * retried at $9 ms from now unless that is past $10 ms of the event's
 * age: then the delivery has failed.
 */
static const char q_webhook_done[] =
    "WITH d AS (UPDATE webhook_deliveries SET "
    "status = CASE WHEN $4::boolean THEN 'delivered' "
    "WHEN now() + $9::bigint * interval '1 millisecond' > "
    "created_at + $10::bigint * interval '1 millisecond' THEN 'failed' "
    "ELSE 'pending' END, "
    "finished_at = CASE WHEN $4::boolean OR now() + $9::bigint * "
    "interval '1 millisecond' > created_at + $10::bigint * "
    "interval '1 millisecond' THEN now() END, "
    "next_attempt_at = now() + CASE WHEN $4::boolean THEN interval '0' "
    "ELSE $9::bigint * interval '1 millisecond' END, "
    "lease_owner = NULL, last_status = $5::integer, last_error = $6 "
    "WHERE id = $1 AND lease_owner = $2 AND attempts = $3::integer "
    "RETURNING status), "
    "a AS (INSERT INTO webhook_attempts (delivery_id, attempt, "
    "started_at, duration_ms, http_status, error, owner) "
    "SELECT id, $3::integer, kiln_ts($8::bigint), $7::integer, "
    "$5::integer, $6, $2 FROM webhook_deliveries WHERE id = $1 "
    "RETURNING id) "
    "SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM a), "
    "(SELECT (status = 'failed')::integer FROM d)";

/*
 * token.expired, once per generation: the expiry is recorded on the
 * token (expired_generation) in the statement that writes the outbox.
 */
static const char q_webhook_expired[] =
    "WITH x AS (UPDATE tokens t SET expired_generation = t.generation "
    "FROM token_sources s WHERE s.id = t.source_id AND t.generation > 0 "
    "AND t.subject = 'default' "
    "AND t.expires_at <= now() "
    "AND t.expired_generation IS DISTINCT FROM t.generation "
    "AND EXISTS (SELECT 1 FROM webhooks "
    "WHERE 'token.expired' = ANY (events)) "
    "RETURNING s.name, t.generation, t.fingerprint, t.failures, "
    "t.last_error), "
    "y AS MATERIALIZED (SELECT x.*, gen_random_uuid() AS eid FROM x), "
    "w AS (INSERT INTO webhook_deliveries (webhook_id, event_id, type, "
    "source, state, generation, fingerprint, failures, error) "
    "SELECT h.id, y.eid, 'token.expired', y.name, 'expired', "
    "y.generation, y.fingerprint, y.failures, y.last_error "
    "FROM y, webhooks h WHERE 'token.expired' = ANY (h.events) "
    "RETURNING id) "
    "SELECT count(*) FROM w";

/* The dashboard: every webhook with its last three deliveries. */
static const char q_webhooks_recent[] =
    "SELECT w.id, w.url, " WH_DCOLS WH_NO_ATTEMPT "NULL "
    "FROM webhooks w LEFT JOIN LATERAL (SELECT * FROM webhook_deliveries "
    "x WHERE x.webhook_id = w.id ORDER BY x.id DESC LIMIT 3) d ON true "
    "ORDER BY w.id, d.id DESC LIMIT 300";

/* A token page: the deliveries of the events of one source, newest first. */
static const char q_webhooks_source[] =
    "SELECT w.id, w.url, " WH_DCOLS WH_NO_ATTEMPT "NULL "
    "FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id "
    "WHERE d.source = $1 ORDER BY d.id DESC LIMIT 20";

/* The secret is sealed here, for the origin of url; never stored bare. */
void
store_webhook_create(const char *url, const char *events,
    const char *secret, const struct audit_who *who, store_rows_cb cb,
    void *arg)
{
	struct store_rows	none;
	const char		*v[7];
	char			*sealed, origin[SOURCE_ORIGIN_MAX];

	source_origin(url, origin, sizeof(origin));
	if (!seal_seal_for(WH_SEAL_NAME, WH_SEAL_FIELD, origin, secret,
	    strlen(secret), &sealed)) {
		memset(&none, 0, sizeof(none));
		none.num[0] = none.num[1] = none.num[2] = STORE_NULL;
		cb(&none, arg, 0);
		return;
	}
	v[0] = url;
	v[1] = events;
	v[2] = sealed;
	audit_params(who, v + 3);
	store_job_a(q_webhook_create, cb, arg, 7, v);
	free(sealed);
}

void
store_webhooks_list(store_rows_cb cb, void *arg)
{
	store_job(q_webhooks_list, cb, arg, 0);
}

void
store_webhook_delete(const char *id, const struct audit_who *who,
    store_rows_cb cb, void *arg)
{
	const char	*v[5];

	v[0] = id;
	audit_params(who, v + 1);
	store_job_a(q_webhook_delete, cb, arg, 5, v);
}

void
store_webhook_deliveries(const char *id, int64_t limit, int64_t before,
    store_rows_cb cb, void *arg)
{
	char		*l, *b;

	l = i64(limit);
	b = before > 0 ? i64(before) : NULL;
	store_job(q_webhook_deliveries, cb, arg, 3, id, l, b);
	kore_free(l);
	kore_free(b);
}

void
store_webhook_claim(int64_t max, int64_t lease_ms, int64_t per_hook,
    store_rows_cb cb, void *arg)
{
	char		*n, *lease, *per;

	n = i64(max);
	lease = i64(lease_ms);
	per = i64(per_hook);
	store_job(q_webhook_claim, cb, arg, 4, kiln_config.owner, n, lease,
	    per);
	kore_free(n);
	kore_free(lease);
	kore_free(per);
}

void
store_webhook_done(int64_t id, int64_t attempt, int ok, int64_t status,
    const char *error, int64_t duration_ms, int64_t started_ms,
    int64_t retry_ms, int64_t give_up_ms, store_rows_cb cb, void *arg)
{
	const char	*cv[10];
	char		*v[10];
	int		i;

	v[0] = i64(id);
	v[1] = kore_strdup(kiln_config.owner);
	v[2] = i64(attempt);
	v[3] = kore_strdup(ok ? "true" : "false");
	v[4] = status > 0 ? i64(status) : NULL;
	v[5] = error != NULL ? kore_strdup(error) : NULL;
	v[6] = i64(duration_ms);
	v[7] = i64(started_ms);
	v[8] = i64(retry_ms);
	v[9] = i64(give_up_ms);
	for (i = 0; i < 10; i++)
		cv[i] = v[i];
	store_job_a(q_webhook_done, cb, arg, 10, cv);
	for (i = 0; i < 10; i++)
		kore_free(v[i]);
}

void
store_webhook_expired(store_rows_cb cb, void *arg)
{
	store_job(q_webhook_expired, cb, arg, 0);
}

void
store_webhooks_recent(store_rows_cb cb, void *arg)
{
	store_job(q_webhooks_recent, cb, arg, 0);
}

void
store_webhooks_source(const char *name, store_rows_cb cb, void *arg)
{
	store_job(q_webhooks_source, cb, arg, 1, name);
}

static void
dec_webhooks(PGresult *res, struct store_rows *rows)
{
	struct webhook_row	*w;
	size_t			i;

	rows->webhooks = w = kore_calloc(rows->n + 1, sizeof(*w));
	for (i = 0; i < rows->n; i++, w++) {
		w->id = col_num(res, i, 0);
		w->url = col_str(res, i, 1);
		w->events = col_str(res, i, 2);
		w->created_ms = col_numn(res, i, 3);
		w->pending = col_num(res, i, 4);
		w->delivered = col_num(res, i, 5);
		w->failed = col_num(res, i, 6);
	}
}

/* Columns 0-23 of the delivery statements; 24: the sealed secret. */
static void
dec_deliveries(PGresult *res, struct store_rows *rows, int open)
{
	struct delivery_row	*d;
	size_t			i, len;
	char			origin[SOURCE_ORIGIN_MAX];

	rows->deliveries = d = kore_calloc(rows->n + 1, sizeof(*d));
	for (i = 0; i < rows->n; i++, d++) {
		d->webhook_id = col_num(res, i, 0);
		d->url = col_str(res, i, 1);
		d->id = col_numn(res, i, 2);
		d->event_id = col_str(res, i, 3);
		d->type = col_str(res, i, 4);
		d->created_ms = col_numn(res, i, 5);
		d->source = col_str(res, i, 6);
		d->subject = col_str(res, i, 7);
		d->state = col_str(res, i, 8);
		d->generation = col_numn(res, i, 9);
		d->fingerprint = col_str(res, i, 10);
		d->failures = col_numn(res, i, 11);
		d->error = col_str(res, i, 12);
		d->status = col_str(res, i, 13);
		d->attempts = col_numn(res, i, 14);
		d->next_ms = col_numn(res, i, 15);
		d->last_status = col_numn(res, i, 16);
		d->last_error = col_str(res, i, 17);
		d->finished_ms = col_numn(res, i, 18);
		d->attempt = col_numn(res, i, 19);
		d->a_started_ms = col_numn(res, i, 20);
		d->a_duration_ms = col_numn(res, i, 21);
		d->a_status = col_numn(res, i, 22);
		d->a_error = col_str(res, i, 23);
		if (!open || d->url == NULL || PQgetisnull(res, i, 24))
			continue;
		source_origin(d->url, origin, sizeof(origin));
		if (!seal_open_for(WH_SEAL_NAME, WH_SEAL_FIELD, origin,
		    PQgetvalue(res, i, 24), &d->secret, &len))
			d->secret = NULL;
	}
}

/* The decoders of the webhook statements; 0 when query is none. */
static int
dec_webhook_rows(struct store_job *job, struct store_rows *rows)
{
	PGresult	*res = job->sql.result;

	if (job->query == q_webhooks_list)
		dec_webhooks(res, rows);
	else if (job->query == q_webhook_claim)
		dec_deliveries(res, rows, 1);
	else if (job->query == q_webhook_deliveries ||
	    job->query == q_webhooks_recent || job->query == q_webhooks_source)
		dec_deliveries(res, rows, 0);
	else
		return (0);

	return (1);
}

static void
webhook_rows_free(struct store_rows *rows)
{
	size_t		i;

	for (i = 0; rows->deliveries != NULL && i < rows->n; i++)
		seal_wipe(rows->deliveries[i].secret);
	kore_free(rows->deliveries);
	kore_free(rows->webhooks);
}
/* Worker: the token exchange sources and the sources they take from. */
void
store_exchange_edges(store_rows_cb cb, void *arg)
{
	store_job(q_exchange_edges, cb, arg, 0);
}

static void
dec_edges(PGresult *res, struct store_job *job, struct store_rows *rows)
{
	struct edge_row		*e;
	size_t			i;

	rows->edges = e = kore_calloc(rows->n + 1, sizeof(*e));
	for (i = 0; i < rows->n; i++, e++) {
		e->name = col_str(res, i, 0);
		e->subject = col_str(res, i, 1);
		e->actor = col_str(res, i, 2);
	}
}

void
store_timeline(const char *name, store_rows_cb cb, void *arg)
{
	store_job(q_timeline, cb, arg, 1, name);
}

/* limit sources named after after ("": from the first), by name. */
void
store_sources_page(int64_t limit, const char *after, store_rows_cb cb,
    void *arg)
{
	char		l[24];

	(void)snprintf(l, sizeof(l), "%lld", (long long)limit);
	store_job(q_sources_page, cb, arg, 2, l, after);
}

/*
 * Connections (migration 012): import, list, detail, events, delete.
 * A change announces "source/subject" in its own statement.
 */
void
store_conn_import(const char *name, const char *subject, const char *sealed,
    const struct audit_who *who, store_rows_cb cb, void *arg)
{
	const char	*v[7];

	v[0] = name;
	v[1] = subject;
	v[2] = sealed;
	audit_params(who, v + 3);
	store_job_a(q_conn_import, cb, arg, 7, v);
}

void
store_conn_list(const char *name, const char *after, const char *state,
    int64_t limit, store_rows_cb cb, void *arg)
{
	char		*l;

	l = i64(limit);
	store_job(q_conn_list, cb, arg, 4, name, after, state, l);
	kore_free(l);
}

void
store_conn_get(const char *name, const char *subject, store_rows_cb cb,
    void *arg)
{
	store_job(q_conn_get, cb, arg, 2, name, subject);
}

void
store_conn_events(const char *name, const char *subject, int64_t limit,
    store_rows_cb cb, void *arg)
{
	char		*l;

	l = i64(limit);
	store_job(q_conn_events, cb, arg, 3, name, subject, l);
	kore_free(l);
}

void
store_conn_delete(const char *name, const char *subject,
    const struct audit_who *who, store_rows_cb cb, void *arg)
{
	const char	*v[6];

	v[0] = name;
	v[1] = subject;
	audit_params(who, v + 2);
	store_job_a(q_conn_delete, cb, arg, 6, v);
}

static void
dec_conns(PGresult *res, struct store_job *job, struct store_rows *rows)
{
	struct conn_row		*c;
	size_t			i;

	rows->conns = c = kore_calloc(rows->n + 1, sizeof(*c));
	for (i = 0; i < rows->n; i++, c++) {
		c->subject = col_str(res, i, 0);
		c->state = col_str(res, i, 1);
		c->generation = col_numn(res, i, 2);
		c->expires_ms = col_numn(res, i, 3);
		c->fingerprint = col_str(res, i, 4);
		c->failures = col_numn(res, i, 5);
		c->last_error = col_str(res, i, 6);
		c->created_ms = col_numn(res, i, 7);
		c->updated_ms = col_numn(res, i, 8);
	}
}

/* The signing settings of src: jws[0..4]. */
static void
source_params_jws(const struct source *src, struct source_params *p)
{
	p->jws[0] = src->issuer;
	p->jws[1] = src->subject;
	p->jws[2] = src->assertion_audience;
	p->jws[3] = src->target_audience;
	p->jws[4] = src->key_generate != 0 ?
	    jws_alg_name(src->key_generate) : NULL;
}

/*
 * The new signing key of src as jws[5..9], made or read only when it is
 * written (an RSA key takes a tenth of a second to make).
 */
static void
source_params_key(const struct source *src, struct source_params *p)
{
	struct jws_key	key;
	char		*pem, err[KILN_ERR_MAX];

	if (!src->key_new)
		return;

	pem = NULL;
	if (src->key_generate != 0) {
		if (!jws_key_generate(src->key_generate, &key, err,
		    sizeof(err)) || !jws_key_pem(&key, &pem))
			fatal("%s", err);
	} else if (src->private_key == NULL ||
	    !jws_key_load(src->private_key, src->key_alg, &key, err,
	    sizeof(err))) {
		/* source_from_json checked it: not reached. */
		return;
	}

	p->key_kid = kore_strdup(src->key_id != NULL && pem == NULL ?
	    src->key_id : key.thumbprint);
	if (!jws_jwk(&key, p->key_kid, &p->key_jwk))
		fatal("jws_jwk");
	p->key_sealed = seal_opt(src, "private_key",
	    pem != NULL ? pem : src->private_key);
	seal_wipe(pem);

	p->jws[5] = p->key_kid;
	p->jws[6] = jws_alg_name(key.alg);
	p->jws[7] = p->key_sealed;
	p->jws[8] = p->key_jwk;
	p->jws[9] = src->key_generate != 0 ? "true" : "false";
	jws_key_free(&key);
}

/*
 * The signing settings in the digest; left out when none is used, so
 * the digests of sources without them stay what they were.
 */
static void
source_digest_jws(const struct source *src, yajl_gen g)
{
	const char	*s[7];
	size_t		i;

	if (src->private_key == NULL && src->key_generate == 0 &&
	    src->issuer == NULL && src->subject == NULL &&
	    src->assertion_audience == NULL && src->target_audience == NULL &&
	    src->key_id == NULL && src->key_alg == 0)
		return;

	s[0] = src->key_generate != 0 ?
	    jws_alg_name(src->key_generate) : NULL;
	s[1] = src->key_generate == 0 ? src->private_key : NULL;
	s[2] = src->key_alg != 0 ? jws_alg_name(src->key_alg) : NULL;
	s[3] = src->key_id;
	s[4] = src->issuer;
	s[5] = src->subject;
	s[6] = src->assertion_audience;

	for (i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
		if (s[i] == NULL)
			yajl_gen_null(g);
		else
			yajl_gen_string(g, (const unsigned char *)s[i],
			    strlen(s[i]));
	}
	if (src->target_audience == NULL)
		yajl_gen_null(g);
	else
		yajl_gen_string(g, (const unsigned char *)src->target_audience,
		    strlen(src->target_audience));
}

/*
 * The signing settings from column base on; for a lease (key) the key
 * that signs now, opened, else whether a key is stored.
 */
static void
dec_source_jws(PGresult *res, struct source_row *row, int base, int key)
{
	struct source	*s;
	size_t		len;
	char		origin[SOURCE_ORIGIN_MAX];

	s = &row->src;
	s->issuer = col_dup(res, base);
	s->subject = col_dup(res, base + 1);
	s->assertion_audience = col_dup(res, base + 2);
	s->target_audience = col_dup(res, base + 3);
	s->key_generate = jws_alg_parse(col_str(res, 0, base + 4));

	if (!key) {
		s->key_stored = col_bool(res, 0, base + 5);
		return;
	}

	if (PQgetlength(res, 0, base + 5) == 0)
		return;
	s->key_stored = 1;
	s->key_id = col_dup(res, base + 5);
	s->key_alg = jws_alg_parse(PQgetvalue(res, 0, base + 6));
	if (!row->opened)
		return;

	source_origin(s->token_url, origin, sizeof(origin));
	if (!seal_open_for(s->name, "private_key", origin,
	    PQgetvalue(res, 0, base + 7), &s->private_key, &len)) {
		(void)snprintf(row->error, sizeof(row->error), "stored "
		    "private_key cannot be opened (wrong master key, or "
		    "sealed for another origin)");
		row->opened = 0;
	}
}

static void
dec_signing_keys(PGresult *res, struct store_job *job,
    struct store_rows *rows)
{
	struct signing_key_row	*r;
	size_t			i;

	rows->signing_keys = r = kore_calloc(rows->n + 1, sizeof(*r));
	for (i = 0; i < rows->n; i++, r++) {
		r->source_id = col_num(res, i, 0);
		r->kid = col_str(res, i, 1);
		r->alg = col_str(res, i, 2);
		r->public_jwk = col_str(res, i, 3);
		r->activate_ms = col_numn(res, i, 4);
		r->generated = col_bool(res, i, 5);
		r->generate = col_str(res, i, 6);
		r->version = col_num(res, i, 7);
		r->token_url = col_str(res, i, 8);
	}
}

void
store_signing_keys(const char *name, store_rows_cb cb, void *arg)
{
	store_job(q_signing_keys, cb, arg, 1, name);
}

/*
 * A new key for name, generated by alg, sealed for token_url, signing
 * after rollover seconds; only if the source is still at version with
 * that token URL. num[0] is when it signs, STORE_NULL if not added.
 */
int
store_signing_key_rotate(const char *name, int alg, const char *token_url,
    int64_t version, int64_t rollover, store_rows_cb cb, void *arg)
{
	struct source	src;
	struct jws_key	key;
	char		*pem, *jwk, *sealed, *ver, *roll, err[KILN_ERR_MAX];

	if (!jws_key_generate(alg, &key, err, sizeof(err)))
		return (KORE_RESULT_ERROR);
	if (!jws_key_pem(&key, &pem) || !jws_jwk(&key, NULL, &jwk)) {
		jws_key_free(&key);
		return (KORE_RESULT_ERROR);
	}

	memset(&src, 0, sizeof(src));
	(void)kore_strlcpy(src.name, name, sizeof(src.name));
	src.token_url = kore_strdup(token_url);
	sealed = seal_opt(&src, "private_key", pem);
	seal_wipe(pem);
	kore_free(src.token_url);

	ver = i64(version);
	roll = i64(rollover);
	store_job(q_signing_key_rotate, cb, arg, 8, name, key.thumbprint,
	    jws_alg_name(alg), sealed, jwk, roll, ver, token_url);
	kore_free(ver);
	kore_free(roll);
	free(sealed);
	free(jwk);
	jws_key_free(&key);

	return (KORE_RESULT_OK);
}

void
store_signing_keys_settle(int64_t source_id, const char *kid)
{
	char		*id;

	id = i64(source_id);
	store_job(q_signing_keys_settle, NULL, NULL, 2, id, kid);
	kore_free(id);
}

/* The stored source at row goes to the origin src names. */
static int
file_origin_same(PGresult *stored, int row, const struct source *src)
{
	char		was[SOURCE_ORIGIN_MAX], now[SOURCE_ORIGIN_MAX];

	source_origin(PQgetvalue(stored, row, 3), was, sizeof(was));
	source_origin(src->token_url, now, sizeof(now));

	return (!strcmp(was, now));
}

/*
 * authorization_code (c-authcode, migration 013): the flows under way,
 * one row per state, stored as its SHA-256. A start sweeps the rows
 * expired for an hour (kept that long to tell "expired" from "unknown").
 * A new subject's connection row exists from the start, without a
 * token (pending, never scheduled), like a device flow's; a subject
 * with a token keeps its row and state. The start also sweeps the
 * pending rows (never had a token) whose flows all expired unanswered.
 */
static const char q_flow_start[] =
    "WITH s AS (SELECT id FROM token_sources WHERE name = $1 "
    "AND kind = 'authorization_code'), "
    "x AS (DELETE FROM oauth_flows "
    "WHERE expires_at < now() - interval '1 hour'), "
    "p AS (DELETE FROM tokens t USING token_sources ts "
    "WHERE ts.id = t.source_id AND ts.kind = 'authorization_code' "
    "AND t.subject <> 'default' AND t.token_sealed IS NULL "
    "AND t.generation = 0 AND (t.subject <> $3 OR "
    "t.source_id NOT IN (SELECT id FROM s)) AND NOT EXISTS "
    "(SELECT 1 FROM oauth_flows o WHERE o.source_id = t.source_id "
    "AND o.subject = t.subject AND o.expires_at > now()) "
    "RETURNING ts.name, t.subject), "
    "f AS (INSERT INTO oauth_flows (state_hash, source_id, subject, "
    "verifier_sealed, return_to, expires_at) SELECT $2, id, $3, $4, $5, "
    "kiln_ts($6) FROM s RETURNING source_id), "
    "t AS (INSERT INTO tokens (source_id, subject, next_attempt_at) "
    "SELECT source_id, $3, now() + interval '100 years' FROM f "
    "ON CONFLICT (source_id, subject) DO NOTHING RETURNING subject), "
    AUDIT_CTE("7", "8", "9", "10", "'connection.start'",
    "$1 || '/' || $3", "'subject,return_to'", "f")
    "SELECT source_id, "
    "(SELECT count(pg_notify('kiln_tokens', name || '/' || subject)) "
    "FROM p), (SELECT count(pg_notify('kiln_tokens', $1 || '/' || "
    "subject)) FROM t) FROM f";

/* A state is taken once, on whichever instance the browser comes to. */
static const char q_flow_take[] =
    "WITH f AS (DELETE FROM oauth_flows WHERE state_hash = $1 "
    "RETURNING *) "
    "SELECT s.name, f.subject, f.verifier_sealed, f.return_to, "
    "f.expires_at > now(), NULL FROM f "
    "JOIN token_sources s ON s.id = f.source_id";

/*
 * A consent's token becomes the subject's connection, replacing any
 * (the refresh token it had is answered, sealed, to be revoked), with
 * its event; every worker hears of it.
 */
static const char q_flow_done[] =
    "WITH s AS (SELECT id FROM token_sources WHERE name = $1), "
    "o AS (SELECT t.refresh_token_sealed FROM tokens t, s "
    "WHERE t.source_id = s.id AND t.subject = $2), "
    "t AS (INSERT INTO tokens AS t (source_id, subject, token_sealed, "
    "token_type, generation, fingerprint, obtained_at, expires_at, "
    "refresh_at, next_attempt_at, refresh_token_sealed, state) "
    "SELECT id, $2, $3, $4, 1, $5, kiln_ts($6), kiln_ts($7), kiln_ts($8), "
    "kiln_ts($8), $9, 'active' FROM s "
    "ON CONFLICT (source_id, subject) DO UPDATE SET token_sealed = $3, "
    "token_type = $4, generation = t.generation + 1, fingerprint = $5, "
    "obtained_at = kiln_ts($6), expires_at = kiln_ts($7), "
    "refresh_at = kiln_ts($8), next_attempt_at = kiln_ts($8), "
    "refresh_token_sealed = $9, state = 'active', failures = 0, "
    "last_error = NULL, lease_owner = NULL, lease_until = NULL, "
    "updated_at = now() RETURNING t.source_id, t.generation), "
    "e AS (INSERT INTO refresh_events (source_id, trigger, started_at, "
    "outcome, duration_ms, http_status, generation, fingerprint, owner, "
    "subject) SELECT t.source_id, 'consent', kiln_ts($10), 'success', "
    "$11, $12, t.generation, $5, $13, $2 FROM t RETURNING id), "
    /* The new token is news for token.refreshed, in this commit. */
    "v AS MATERIALIZED (SELECT gen_random_uuid() AS eid), "
    "w AS (INSERT INTO webhook_deliveries (webhook_id, event_id, type, "
    "source, subject, state, generation, fingerprint, failures) "
    "SELECT h.id, v.eid, 'token.refreshed', $1, $2, 'valid', "
    "t.generation, $5, 0 FROM t, v, webhooks h "
    "WHERE 'token.refreshed' = ANY (h.events) RETURNING id) "
    "SELECT $1, $2, NULL, NULL, (SELECT count(*) FROM e) > 0, "
    "(SELECT refresh_token_sealed FROM o), "
    "pg_notify('kiln_tokens', $1 || '/' || $2) FROM t";

/*
 * A consent that failed, on the subject's events (stores no token); a
 * connection that never had a token goes, unless another consent of
 * the subject is still under way.
 */
static const char q_flow_failed[] =
    "WITH s AS (SELECT id FROM token_sources WHERE name = $1), "
    "d AS (DELETE FROM tokens t USING s WHERE t.source_id = s.id "
    "AND t.subject = $2 AND t.subject <> 'default' "
    "AND t.token_sealed IS NULL AND t.generation = 0 AND NOT EXISTS "
    "(SELECT 1 FROM oauth_flows o WHERE o.source_id = s.id "
    "AND o.subject = $2 AND o.expires_at > now()) RETURNING t.subject), "
    "e AS (INSERT INTO refresh_events (source_id, trigger, started_at, "
    "outcome, duration_ms, http_status, error, owner, subject) "
    "SELECT id, 'consent', kiln_ts($3), 'failure', $4, $5, $6, $7, $2 "
    "FROM s RETURNING id) "
    "SELECT e.id, (SELECT count(pg_notify('kiln_tokens', $1 || '/' || "
    "subject)) FROM d) FROM e";

/* The sealed refresh token of a connection, to revoke before delete. */
static const char q_flow_refresh[] =
    "SELECT s.name, t.subject, NULL, NULL, true, t.refresh_token_sealed "
    "FROM tokens t JOIN token_sources s ON s.id = t.source_id "
    "WHERE s.name = $1 AND t.subject = $2 AND t.subject <> 'default'";

void
store_flow_start(const char *name, const char *state_hash,
    const char *subject, const char *verifier_sealed, const char *return_to,
    int64_t expires_ms, const struct audit_who *who, store_rows_cb cb,
    void *arg)
{
	const char	*v[10];
	char		*exp;

	exp = i64(expires_ms);
	v[0] = name;
	v[1] = state_hash;
	v[2] = subject;
	v[3] = verifier_sealed;
	v[4] = return_to;
	v[5] = exp;
	audit_params(who, v + 6);
	store_job_a(q_flow_start, cb, arg, 10, v);
	kore_free(exp);
}

void
store_flow_take(const char *state_hash, store_rows_cb cb, void *arg)
{
	store_job(q_flow_take, cb, arg, 1, state_hash);
}

void
store_flow_done(const struct flow_commit *c, store_rows_cb cb, void *arg)
{
	const char	*v[13];
	char		*n[6];
	int		i;

	n[0] = i64(c->obtained_ms);
	n[1] = i64(c->expires_ms);
	n[2] = i64(c->refresh_ms);
	n[3] = i64(c->started_ms);
	n[4] = i64(c->duration_ms);
	n[5] = i64(c->http_status);
	v[0] = c->name;
	v[1] = c->subject;
	v[2] = c->sealed_token;
	v[3] = c->token_type;
	v[4] = c->fingerprint;
	v[5] = n[0];
	v[6] = n[1];
	v[7] = n[2];
	v[8] = c->sealed_refresh;
	v[9] = n[3];
	v[10] = n[4];
	v[11] = n[5];
	v[12] = kiln_config.owner;
	store_job_a(q_flow_done, cb, arg, 13, v);
	for (i = 0; i < 6; i++)
		kore_free(n[i]);
}

void
store_flow_failed(const char *name, const char *subject, int64_t started_ms,
    int64_t duration_ms, int64_t http_status, const char *error,
    store_rows_cb cb, void *arg)
{
	char		*st, *du, *hs;

	st = i64(started_ms);
	du = i64(duration_ms);
	hs = http_status > 0 ? i64(http_status) : NULL;
	store_job(q_flow_failed, cb, arg, 7, name, subject, st, du, hs, error,
	    kiln_config.owner);
	kore_free(st);
	kore_free(du);
	kore_free(hs);
}

void
store_flow_refresh(const char *name, const char *subject, store_rows_cb cb,
    void *arg)
{
	store_job(q_flow_refresh, cb, arg, 2, name, subject);
}

/* The rows of q_flow_take, _done and _refresh: struct flow_row. */
static int
dec_flow_rows(struct store_job *job, struct store_rows *rows)
{
	PGresult		*res = job->sql.result;
	struct flow_row		*f;
	size_t			i;

	if (job->query != q_flow_take && job->query != q_flow_done &&
	    job->query != q_flow_refresh)
		return (0);

	rows->flows = f = kore_calloc(rows->n + 1, sizeof(*f));
	for (i = 0; i < rows->n; i++, f++) {
		f->name = col_str(res, i, 0);
		f->subject = col_str(res, i, 1);
		f->verifier_sealed = col_str(res, i, 2);
		f->return_to = col_str(res, i, 3);
		f->live = col_bool(res, i, 4);
		f->refresh_sealed = col_str(res, i, 5);
	}

	return (1);
}

/*
 * The device authorization grant (RFC 8628, migration 014). A flow is a
 * row of device_flows per (source, subject) while kiln polls the token
 * endpoint; the subject's connection row exists from its start (a new
 * subject's without a token: pending), and an old token is served
 * until the flow brings a new one.
 */
static const char q_device_start[] =
    "WITH s AS (SELECT id FROM token_sources WHERE name = $1 "
    "AND kind = 'device_code'), "
    "f AS (INSERT INTO device_flows AS f (source_id, subject, "
    "device_code_sealed, interval_s, expires_at, next_poll_at) "
    "SELECT id, $2, $3, $4::integer, kiln_ts($5::bigint), "
    "now() + $4::integer * interval '1 second' "
    "FROM s ON CONFLICT (source_id, subject) DO UPDATE SET "
    "device_code_sealed = $3, interval_s = $4::integer, "
    "expires_at = excluded.expires_at, "
    "next_poll_at = excluded.next_poll_at, lease_owner = NULL, "
    "lease_until = NULL, polls = 0, created_at = now() "
    "RETURNING f.source_id, f.expires_at), "
    "t AS (INSERT INTO tokens (source_id, subject, next_attempt_at) "
    "SELECT source_id, $2, now() + interval '100 years' FROM f "
    "ON CONFLICT (source_id, subject) DO NOTHING RETURNING subject), "
    AUDIT_CTE("6", "7", "8", "9", "'connection.device'",
    "$1 || '/' || $2", "'subject'", "f")
    "SELECT kiln_ms(f.expires_at), (SELECT count(*) FROM t), "
    "pg_notify('kiln_tokens', $1 || '/' || $2) FROM f";

/*
 * The polls due, claimed: next_poll_at moves a whole interval on and the
 * lease covers the call, so that whichever worker of whichever instance
 * claims first polls, once. SKIP LOCKED: claims never wait on another.
 */
static const char q_device_claim[] =
    "WITH c AS (SELECT f.source_id, f.subject FROM device_flows f "
    "WHERE f.next_poll_at <= now() AND (f.lease_until IS NULL OR "
    "f.lease_until < now()) ORDER BY f.next_poll_at "
    "LIMIT $3::integer FOR UPDATE SKIP LOCKED) "
    "UPDATE device_flows f SET lease_owner = $1, lease_until = now() + "
    "$2::bigint * interval '1 millisecond', next_poll_at = now() + "
    "f.interval_s * interval '1 second', polls = f.polls + 1 "
    "FROM c, token_sources s WHERE f.source_id = c.source_id "
    "AND f.subject = c.subject AND s.id = f.source_id "
    "RETURNING f.source_id, s.name, f.subject, f.device_code_sealed, "
    "f.interval_s, kiln_ms(f.expires_at)";

/* Not yet (authorization_pending), or slower ($4 s more: slow_down). */
static const char q_device_next[] =
    "UPDATE device_flows SET lease_owner = NULL, lease_until = NULL, "
    "interval_s = interval_s + $4::integer, next_poll_at = now() + "
    "(interval_s + $4::integer) * interval '1 second' "
    "WHERE source_id = $1::bigint AND subject = $2 AND lease_owner = $3 "
    "RETURNING interval_s";

/*
 * The flow ends without a token (expired_token, access_denied, another
 * error): its event, and the connection as it was, or gone if it never
 * had a token.
 */
static const char q_device_end[] =
    "WITH f AS (DELETE FROM device_flows WHERE source_id = $1::bigint "
    "AND subject = $2 AND lease_owner = $3 RETURNING source_id), "
    "d AS (DELETE FROM tokens t USING f WHERE t.source_id = f.source_id "
    "AND t.subject = $2 AND t.subject <> 'default' "
    "AND t.token_sealed IS NULL AND t.generation = 0 "
    "RETURNING t.subject), "
    "e AS (INSERT INTO refresh_events (source_id, trigger, started_at, "
    "outcome, duration_ms, http_status, error, owner, subject) "
    "SELECT f.source_id, 'device', kiln_ts($4::bigint), 'failure', "
    "$5::integer, $6::integer, $7, $3, $2 FROM f RETURNING id) "
    "SELECT (SELECT count(*) FROM e), (SELECT count(*) FROM d), "
    "pg_notify('kiln_tokens', s.name || '/' || $2) FROM token_sources s "
    "WHERE s.id = $1::bigint AND EXISTS (SELECT 1 FROM e)";

/*
 * The consent is given: the connection's token and refresh token, in
 * the statement that ends the flow (so a flow stores at most once). An
 * attempt under way on the old token loses its lease, like an import.
 */
static const char q_device_success[] =
    "WITH f AS (DELETE FROM device_flows WHERE source_id = $1::bigint "
    "AND subject = $2 AND lease_owner = $3 RETURNING source_id), "
    "t AS (INSERT INTO tokens AS t (source_id, subject, token_sealed, "
    "token_type, generation, fingerprint, obtained_at, expires_at, "
    "refresh_at, next_attempt_at, refresh_token_sealed) "
    "SELECT f.source_id, $2, $4, $5, 1, $6, kiln_ts($7::bigint), "
    "kiln_ts($8::bigint), kiln_ts($9::bigint), kiln_ts($9::bigint), $10 "
    "FROM f ON CONFLICT (source_id, subject) DO UPDATE SET "
    "token_sealed = $4, token_type = $5, generation = t.generation + 1, "
    "fingerprint = $6, obtained_at = kiln_ts($7::bigint), "
    "expires_at = kiln_ts($8::bigint), refresh_at = kiln_ts($9::bigint), "
    "next_attempt_at = kiln_ts($9::bigint), refresh_token_sealed = $10, "
    "state = 'active', failures = 0, last_error = NULL, "
    "lease_owner = NULL, lease_until = NULL, updated_at = now() "
    "RETURNING t.generation), "
    "e AS (INSERT INTO refresh_events (source_id, trigger, started_at, "
    "outcome, duration_ms, http_status, generation, fingerprint, owner, "
    "subject) SELECT $1::bigint, 'device', kiln_ts($11::bigint), "
    "'success', $12::integer, $13::integer, t.generation, $6, $3, $2 "
    "FROM t RETURNING id), "
    /* The new token is news for token.refreshed, in this commit. */
    "v AS MATERIALIZED (SELECT gen_random_uuid() AS eid), "
    "w AS (INSERT INTO webhook_deliveries (webhook_id, event_id, type, "
    "source, subject, state, generation, fingerprint, failures) "
    "SELECT h.id, v.eid, 'token.refreshed', s.name, $2, 'valid', "
    "t.generation, $6, 0 FROM t, v, webhooks h, token_sources s "
    "WHERE s.id = $1::bigint AND 'token.refreshed' = ANY (h.events) "
    "RETURNING id) "
    "SELECT (SELECT generation FROM t), (SELECT count(*) FROM e), "
    "pg_notify('kiln_tokens', s.name || '/' || $2) FROM token_sources s "
    "WHERE s.id = $1::bigint AND EXISTS (SELECT 1 FROM t)";

/* expires_ms: the flow's end; num[1]: 1 when the subject is new. */
void
store_device_start(const char *name, const char *subject,
    const char *sealed, int64_t interval, int64_t expires_ms,
    const struct audit_who *who, store_rows_cb cb, void *arg)
{
	const char	*v[9];
	char		*i, *e;

	i = i64(interval);
	e = i64(expires_ms);
	v[0] = name;
	v[1] = subject;
	v[2] = sealed;
	v[3] = i;
	v[4] = e;
	audit_params(who, v + 5);
	store_job_a(q_device_start, cb, arg, 9, v);
	kore_free(i);
	kore_free(e);
}

void
store_device_claim(int64_t max, store_rows_cb cb, void *arg)
{
	char		*lease, *n;

	lease = i64(kiln_config.lease_ms);
	n = i64(max);
	store_job(q_device_claim, cb, arg, 3, kiln_config.owner, lease, n);
	kore_free(lease);
	kore_free(n);
}

void
store_device_next(int64_t source_id, const char *subject, int64_t add,
    store_rows_cb cb, void *arg)
{
	char		*id, *a;

	id = i64(source_id);
	a = i64(add);
	store_job(q_device_next, cb, arg, 4, id, subject, kiln_config.owner,
	    a);
	kore_free(id);
	kore_free(a);
}

void
store_device_end(const struct attempt *at, store_rows_cb cb, void *arg)
{
	char		*id, *started, *dur, *status;

	id = i64(at->source_id);
	started = i64(at->started_ms);
	dur = i64(at->duration_ms);
	status = at->http_status > 0 ? i64(at->http_status) : NULL;
	store_job(q_device_end, cb, arg, 7, id, at->subject,
	    kiln_config.owner, started, dur, status, at->error);
	kore_free(id);
	kore_free(started);
	kore_free(dur);
	kore_free(status);
}

void
store_device_success(const struct attempt *at, store_rows_cb cb, void *arg)
{
	char	*id, *obtained, *expires, *refresh, *started, *dur, *status;

	id = i64(at->source_id);
	obtained = i64(at->sent_ms);
	expires = i64(at->ans.expires_ms);
	refresh = i64(at->refresh_ms);
	started = i64(at->started_ms);
	dur = i64(at->duration_ms);
	status = i64(at->http_status);
	store_job(q_device_success, cb, arg, 13, id, at->subject,
	    kiln_config.owner, at->sealed_token, at->ans.token_type, at->fpr,
	    obtained, expires, refresh, at->sealed_refresh, started, dur,
	    status);
	kore_free(id);
	kore_free(obtained);
	kore_free(expires);
	kore_free(refresh);
	kore_free(started);
	kore_free(dur);
	kore_free(status);
}

static int
dec_device_rows(struct store_job *job, struct store_rows *rows)
{
	PGresult		*res = job->sql.result;
	struct device_row	*d;
	size_t			i;

	if (job->query != q_device_claim)
		return (0);

	rows->devices = d = kore_calloc(rows->n + 1, sizeof(*d));
	for (i = 0; i < rows->n; i++, d++) {
		d->source_id = col_num(res, i, 0);
		d->name = col_str(res, i, 1);
		d->subject = col_str(res, i, 2);
		d->device_code_sealed = col_str(res, i, 3);
		d->interval_s = col_num(res, i, 4);
		d->expires_ms = col_num(res, i, 5);
	}

	return (1);
}

/*
 * How many authorization_code sources exist (the parent, at start:
 * KILN_PUBLIC_URL is then required). -1 on error, err says why.
 */
int64_t
store_code_sources_sync(char *err, size_t errlen)
{
	PGresult	*res;
	PGconn		*db;
	int64_t		n;

	if ((db = sync_connect(err, errlen)) == NULL)
		return (-1);
	res = PQexec(db, "SELECT count(*) FROM token_sources "
	    "WHERE kind = 'authorization_code'");
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	} else {
		(void)snprintf(err, errlen, "database: %s",
		    PQerrorMessage(db));
		n = -1;
	}
	PQclear(res);
	PQfinish(db);

	return (n);
}

/* authorization_code's settings, in the digest when the kind is it. */
static void
source_digest_code(const struct source *src, yajl_gen g)
{
	const char	*s[3];
	size_t		i;

	if (src->kind != KIND_AUTHORIZATION_CODE)
		return;

	s[0] = src->authorize_url;
	s[1] = src->revocation_url;
	s[2] = src->extra_authorize_params;
	for (i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
		if (s[i] == NULL)
			yajl_gen_null(g);
		else
			yajl_gen_string(g, (const unsigned char *)s[i],
			    strlen(s[i]));
	}
}

/*
 * The fast lane (cache.c): reloads and announces sent on the caller's
 * own connection (the LISTEN one), so that a change does not wait in
 * the pool's queue behind background queries. Non-blocking: the caller
 * flushes and reads the answer from its event loop.
 */
int
store_lane_send(PGconn *db, int what, const char *names, int prepared)
{
	const char	*values[1];

	values[0] = names;
	if (what == STORE_LANE_RELOAD && prepared)
		return (PQsendQueryPrepared(db, STORE_LANE_STMT, 1, values,
		    NULL, NULL, 0));
	return (PQsendQueryParams(db, what == STORE_LANE_RELOAD ? q_reload :
	    q_announce, 1, NULL, values, NULL, NULL, 0));
}

/*
 * The lane's reload prepared on its connection, once: planning it cost
 * PostgreSQL 6 ms a batch, three times running it (a batch is one
 * refresh's row, or a few dozen in a burst).
 */
int
store_lane_prepare(PGconn *db)
{
	return (PQsendPrepare(db, STORE_LANE_STMT, q_reload, 1, NULL));
}

/* The rows of a reload answered on the lane; store_lane_free() them. */
void
store_lane_rows(PGresult *res, struct store_rows *rows)
{
	memset(rows, 0, sizeof(*rows));
	rows->num[0] = rows->num[1] = rows->num[2] = STORE_NULL;
	rows->n = PQntuples(res);
	dec_tokens(res, NULL, rows);
}

void
store_lane_free(struct store_rows *rows)
{
	store_rows_free(rows);
}

/*
 * The whole table in pages, in key order (the primary key's): a page
 * costs the worker one bounded step of its event loop and libpq one
 * page of memory, where one result of 100 000 rows cost hundreds of
 * MB and seconds. The signing kid and the host are found once per
 * source, not per row (kiln_host is a regular expression).
 * The columns are q_load's.
 */
static const char q_load_page[] =
    "WITH ks AS MATERIALIZED (SELECT s2.id, k.kid, "
    "kiln_host(s2.token_url) AS host FROM token_sources s2 "
    Q_SIGNING_KEY " WHERE s2.id >= $1::bigint) "
    TOKEN_ROW_COLS
    "ks.host, t.subject, t.state, ks.kid "
    "FROM tokens t JOIN token_sources s ON s.id = t.source_id "
    "LEFT JOIN ks ON ks.id = s.id "
    "WHERE (t.source_id, t.subject) > ($1::bigint, $2::text) "
    "AND ($4::boolean OR t.subject = 'default') "
    "ORDER BY t.source_id, t.subject LIMIT $3::integer";

/*
 * Worker: the page of tokens after (source id, subject), "" first; all
 * of them, or (conns 0) only the sources' own.
 */
void
store_load_page(int64_t after_id, const char *after_subject, int limit,
    int conns, store_rows_cb cb, void *arg)
{
	char		*id, *lim;

	id = i64(after_id);
	lim = i64(limit);
	store_job(q_load_page, cb, arg, 4, id, after_subject, lim,
	    conns ? "true" : "false");
	kore_free(id);
	kore_free(lim);
}

static int
dec_page_rows(struct store_job *job, struct store_rows *rows)
{
	if (job->query != q_load_page)
		return (0);
	dec_tokens(job->sql.result, job, rows);
	return (1);
}

/*
 * The statements of every refresh, and the paged load, prepared once
 * per connection (kore_pgsql_query_prepared): planning them cost more
 * than running them. The others are rare and go unnamed: a first use on
 * a connection would cost them a round trip more (the PREPARE's).
 */
static int
store_hot(const char *query)
{
	static const char	*hot[] = {
		q_lease, q_success, q_failure, q_renew, q_load_page,
	};
	size_t			i;

	for (i = 0; i < sizeof(hot) / sizeof(hot[0]); i++) {
		if (hot[i] == query)
			return (1);
	}

	return (0);
}
