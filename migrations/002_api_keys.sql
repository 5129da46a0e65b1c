-- API keys for the admin API and for key-protected sources. Only the
-- SHA-256 of a key is stored; the key itself is shown once at creation.

CREATE TABLE api_keys (
	id			bigserial PRIMARY KEY,
	name			text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
	role			text NOT NULL CHECK (role IN ('admin', 'operator',
				    'viewer', 'client')),
	key_hash		text NOT NULL UNIQUE,
	created_at		timestamptz NOT NULL DEFAULT now(),
	revoked_at		timestamptz
);
