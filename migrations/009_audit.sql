-- The audit log: one row for each admin action (a change of a source, a
-- forced refresh, a pause, an API key created or revoked, a dashboard
-- login or logout, a refused login). A change writes its row in the
-- statement, so the transaction, that makes the change: both or neither.
-- Who acted is a principal id ("key:7", "jwt:<sub>"), never a credential;
-- fields holds the names of the fields a change set, never their values.

CREATE TABLE audit_events (
	id			bigserial PRIMARY KEY,
	at			timestamptz NOT NULL DEFAULT now(),
	principal_kind		text NOT NULL CHECK (principal_kind IN
				    ('key', 'jwt', 'session', 'anonymous')),
	principal		text,
	action			text NOT NULL,
	target			text,
	fields			text[] NOT NULL DEFAULT '{}',
	address			inet,
	request_id		text,
	outcome			text NOT NULL DEFAULT 'ok'
				    CHECK (outcome IN ('ok', 'refused'))
);

-- Pages go by id, newest first; each filter walks its own index.
CREATE INDEX audit_events_action_idx ON audit_events (action, id);
CREATE INDEX audit_events_principal_idx ON audit_events (principal, id);
CREATE INDEX audit_events_target_idx ON audit_events (target, id);
CREATE INDEX audit_events_at_idx ON audit_events (at);

-- The principal of an action: a dashboard session is named by the hash
-- of its cookie, and recorded as the key or JWT subject it was made from.
CREATE FUNCTION kiln_audit_principal(text, text) RETURNS text
    LANGUAGE sql STABLE
    AS $$ SELECT CASE WHEN $1 = 'session' THEN COALESCE((SELECT principal
	FROM dashboard_sessions WHERE id_hash = $2), 'unknown')
	ELSE $2 END $$;
