-- kiln schema: token sources, their current tokens, and refresh history.
-- Secrets and tokens are stored only sealed (AES-256-GCM, see seal.c).

CREATE TABLE token_sources (
	id			bigserial PRIMARY KEY,
	name			text NOT NULL UNIQUE
				    CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
	kind			text NOT NULL CHECK (kind IN ('client_credentials',
				    'refresh_token', 'password', 'json_login')),
	token_url		text NOT NULL,
	client_id		text,
	client_secret_sealed	text,
	auth_method		text NOT NULL DEFAULT 'client_secret_post',
	scope			text,
	audience		text,
	resource		text,
	refresh_token_sealed	text,
	username		text,
	password_sealed		text,
	token_path		text NOT NULL DEFAULT 'access_token',
	expires_at_path		text,
	expires_in_path		text NOT NULL DEFAULT 'expires_in',
	refresh_buffer		integer,
	fallback_lifetime	integer NOT NULL DEFAULT 900,
	access			text NOT NULL DEFAULT 'open',
	require_header		boolean NOT NULL DEFAULT false,
	enabled			boolean NOT NULL DEFAULT true,
	paused			boolean NOT NULL DEFAULT false,
	config_version		bigint NOT NULL DEFAULT 1,
	config_digest		text,		-- HMAC of the settings
	refresh_seed_digest	text,		-- HMAC of the seeded refresh token
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tokens (
	source_id		bigint PRIMARY KEY
				    REFERENCES token_sources(id) ON DELETE CASCADE,
	token_sealed		text,
	token_type		text,
	generation		bigint NOT NULL DEFAULT 0,
	fingerprint		text,
	obtained_at		timestamptz,
	expires_at		timestamptz,
	refresh_at		timestamptz,
	next_attempt_at		timestamptz NOT NULL DEFAULT now(),
	lease_owner		text,
	lease_until		timestamptz,
	failures		integer NOT NULL DEFAULT 0,
	last_error		text,
	last_duration_ms	integer,
	rejected_generation	bigint,
	updated_at		timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX tokens_next_attempt_idx ON tokens (next_attempt_at);

CREATE TABLE refresh_events (
	id			bigserial PRIMARY KEY,
	source_id		bigint NOT NULL
				    REFERENCES token_sources(id) ON DELETE CASCADE,
	trigger			text NOT NULL,
	started_at		timestamptz NOT NULL,
	finished_at		timestamptz NOT NULL DEFAULT now(),
	outcome			text NOT NULL CHECK (outcome IN ('success',
				    'failure')),
	duration_ms		integer NOT NULL,
	http_status		integer,
	error			text,
	generation		bigint,
	fingerprint		text,
	owner			text
);

CREATE INDEX refresh_events_source_idx ON refresh_events (source_id, id DESC);

CREATE TABLE settings (
	key			text PRIMARY KEY,
	value			text NOT NULL,
	updated_at		timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION kiln_ms(timestamptz) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT (extract(epoch FROM $1) * 1000)::bigint $$;

CREATE FUNCTION kiln_ts(bigint) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT to_timestamp($1 / 1000.0) $$;
