-- A dashboard session dies with the credential it was made from: the API
-- key (revoking the key deletes its sessions), or the JWT (its id,
-- subject and exp; the session ends no later than the JWT does).

ALTER TABLE dashboard_sessions
	ADD COLUMN key_id bigint REFERENCES api_keys (id) ON DELETE CASCADE,
	ADD COLUMN jwt_id text,
	ADD COLUMN jwt_subject text,
	ADD COLUMN credential_expires_at timestamptz;

UPDATE dashboard_sessions s SET key_id = k.id FROM api_keys k
    WHERE s.principal = 'key:' || k.id;

-- Sessions older than this record: of a revoked or unknown key, or of a
-- JWT whose exp is not known, sign in again.
DELETE FROM dashboard_sessions s
    WHERE s.key_id IS NULL
    OR s.key_id IN (SELECT id FROM api_keys WHERE revoked_at IS NOT NULL);

CREATE INDEX dashboard_sessions_key_idx ON dashboard_sessions (key_id);
