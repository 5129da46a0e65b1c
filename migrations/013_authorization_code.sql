-- authorization_code sources (issue 12): a person consents in a browser
-- and kiln keeps that person's token as a connection. The kind list is
-- restated whole. A flow under way is a row of oauth_flows, so that any
-- instance completes it: its state is stored only as its SHA-256 and
-- is taken once (DELETE ... RETURNING); the PKCE verifier is sealed.
-- Rows expired for an hour are swept when a flow starts.

ALTER TABLE token_sources DROP CONSTRAINT IF EXISTS token_sources_kind_check;
ALTER TABLE token_sources ADD CONSTRAINT token_sources_kind_check
    CHECK (kind IN ('client_credentials', 'refresh_token', 'password',
    'json_login', 'jwt_bearer', 'token_exchange', 'authorization_code'));

ALTER TABLE token_sources
    ADD COLUMN authorize_url		text,
    ADD COLUMN revocation_url		text,
    ADD COLUMN extra_authorize_params	text;

CREATE TABLE oauth_flows (
	state_hash		text PRIMARY KEY
				    CHECK (state_hash ~ '^[0-9a-f]{64}$'),
	source_id		bigint NOT NULL
				    REFERENCES token_sources(id) ON DELETE CASCADE,
	subject			text NOT NULL
				    CHECK (subject ~ '^[A-Za-z0-9._@:-]{1,128}$'),
	verifier_sealed		text NOT NULL,
	return_to		text,
	expires_at		timestamptz NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX oauth_flows_expires_idx ON oauth_flows (expires_at);
