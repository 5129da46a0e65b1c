-- The device authorization grant (RFC 8628): a source of kind
-- device_code names its device authorization endpoint; each pending
-- flow of a subject waits here while kiln polls the token endpoint.
-- The device code is stored only sealed (bound to the source, the
-- subject and the token URL's origin) and goes when the flow ends.
-- The kind list is restated whole (authorization_code of issue 12 too).

ALTER TABLE token_sources DROP CONSTRAINT IF EXISTS token_sources_kind_check;
ALTER TABLE token_sources ADD CONSTRAINT token_sources_kind_check
    CHECK (kind IN ('client_credentials', 'refresh_token', 'password',
    'json_login', 'jwt_bearer', 'token_exchange', 'authorization_code',
    'device_code'));

ALTER TABLE token_sources ADD COLUMN device_authorization_url text;

-- next_poll_at is set a whole interval ahead by whoever claims a poll,
-- and the lease covers the call itself: one poll per interval, across
-- the workers of every instance.
CREATE TABLE device_flows (
	source_id		bigint NOT NULL
				    REFERENCES token_sources(id) ON DELETE CASCADE,
	subject			text NOT NULL,
	device_code_sealed	text NOT NULL,
	interval_s		integer NOT NULL CHECK (interval_s > 0),
	expires_at		timestamptz NOT NULL,
	next_poll_at		timestamptz NOT NULL,
	lease_owner		text,
	lease_until		timestamptz,
	polls			integer NOT NULL DEFAULT 0,
	created_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (source_id, subject)
);

CREATE INDEX device_flows_next_poll_idx ON device_flows (next_poll_at);
