-- Connections: a source holds one token per subject. The token a source
-- always had is its connection 'default'; every other subject has its
-- own refresh token (sealed, bound to the source, subject and origin).
-- state is what cannot be derived: needs_reauth (the upstream refused
-- the refresh token; kiln stops refreshing it) and revoked; pending,
-- active and failing follow from the token and failures.

ALTER TABLE tokens ADD COLUMN subject text NOT NULL DEFAULT 'default'
    CHECK (subject ~ '^[A-Za-z0-9._@:-]{1,128}$');
ALTER TABLE tokens ADD COLUMN state text NOT NULL DEFAULT 'active'
    CHECK (state IN ('pending', 'active', 'failing', 'needs_reauth',
    'revoked'));
ALTER TABLE tokens ADD COLUMN refresh_token_sealed text;
ALTER TABLE tokens ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();

ALTER TABLE tokens DROP CONSTRAINT tokens_pkey;
ALTER TABLE tokens ADD PRIMARY KEY (source_id, subject);

-- NULL: the default connection, as every event before this migration.
ALTER TABLE refresh_events ADD COLUMN subject text;
CREATE INDEX refresh_events_subject_idx ON refresh_events
    (source_id, subject, id DESC) WHERE subject IS NOT NULL;
