-- Dashboard sessions: the cookie holds a random id, the table its SHA-256.

CREATE TABLE dashboard_sessions (
	id_hash			text PRIMARY KEY,
	role			text NOT NULL,
	principal		text NOT NULL,
	csrf			text NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT now(),
	expires_at		timestamptz NOT NULL
);

CREATE INDEX dashboard_sessions_expires_idx ON dashboard_sessions (expires_at);
