-- Signed JWTs (issue 13): private_key_jwt client authentication and the
-- jwt_bearer grant. A source's signing keys live in their own table so a
-- rotation can publish two at once: the private key sealed like every
-- secret (bound to the source's name and token origin), the public JWK
-- in clear for jwks.json. A key signs from activate_after on; the older
-- ones are dropped after the first token obtained with a newer one.

ALTER TABLE token_sources DROP CONSTRAINT IF EXISTS token_sources_kind_check;
ALTER TABLE token_sources ADD CONSTRAINT token_sources_kind_check
    CHECK (kind IN ('client_credentials', 'refresh_token', 'password',
    'json_login', 'jwt_bearer', 'token_exchange'));

ALTER TABLE token_sources
	ADD COLUMN assertion_issuer text,
	ADD COLUMN assertion_subject text,
	ADD COLUMN assertion_audience text,
	ADD COLUMN target_audience text,
	ADD COLUMN key_generate text
	    CHECK (key_generate IN ('RS256', 'PS256', 'ES256'));

CREATE TABLE source_signing_keys (
	source_id		bigint NOT NULL
				    REFERENCES token_sources(id) ON DELETE CASCADE,
	kid			text NOT NULL,
	alg			text NOT NULL
				    CHECK (alg IN ('RS256', 'PS256', 'ES256')),
	private_key_sealed	text NOT NULL,
	public_jwk		text NOT NULL,
	generated		boolean NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT now(),
	activate_after		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (source_id, kid)
);
