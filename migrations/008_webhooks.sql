-- Webhooks: operators' systems hear of trouble. A delivery row (the
-- outbox) is written in the same statement as the change of a token that
-- causes it, one per subscribed webhook; any worker of any instance
-- claims due rows (FOR UPDATE SKIP LOCKED) and posts them, signed with
-- the webhook's secret, which is stored only sealed (seal.c).

CREATE TABLE webhooks (
	id			bigserial PRIMARY KEY,
	url			text NOT NULL CHECK (url ~* '^https?://'),
	events			text[] NOT NULL CHECK (cardinality(events) >= 1
				    AND events <@ ARRAY['token.failing',
				    'token.recovered', 'token.expired',
				    'token.refreshed',
				    'connection.needs_reauth']::text[]),
	secret_sealed		text NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhooks_events_idx ON webhooks USING gin (events);

-- One event for one webhook. event_id is shared by the rows of one event
-- (the Kiln-Event-Id a receiver deduplicates on). status: pending until
-- a 2xx (delivered) or 24 h of failed attempts (failed). While an
-- attempt is out, next_attempt_at is its lease: a worker that dies
-- leaves the row due again once it has passed.
CREATE TABLE webhook_deliveries (
	id			bigserial PRIMARY KEY,
	webhook_id		bigint NOT NULL
				    REFERENCES webhooks(id) ON DELETE CASCADE,
	event_id		uuid NOT NULL,
	type			text NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT now(),
	source			text NOT NULL,
	subject			text NOT NULL DEFAULT 'default',
	state			text NOT NULL,
	generation		bigint,
	fingerprint		text,
	failures		integer NOT NULL DEFAULT 0,
	error			text,
	status			text NOT NULL DEFAULT 'pending'
				    CHECK (status IN ('pending', 'delivered',
				    'failed')),
	attempts		integer NOT NULL DEFAULT 0,
	next_attempt_at		timestamptz NOT NULL DEFAULT now(),
	lease_owner		text,
	last_status		integer,
	last_error		text,
	finished_at		timestamptz
);

CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries
    (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_hook_idx ON webhook_deliveries
    (webhook_id, id DESC);

-- Every attempt of a delivery: what the receiver answered, how long it
-- took, what went wrong. Never a body or a secret.
CREATE TABLE webhook_attempts (
	id			bigserial PRIMARY KEY,
	delivery_id		bigint NOT NULL REFERENCES webhook_deliveries(id)
				    ON DELETE CASCADE,
	attempt			integer NOT NULL,
	started_at		timestamptz NOT NULL,
	duration_ms		integer NOT NULL,
	http_status		integer,
	error			text,
	owner			text
);

CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts
    (delivery_id, id);

-- The generation whose expiry was announced (token.expired, once).
ALTER TABLE tokens ADD COLUMN expired_generation bigint;

-- The outbox rows of one event: one per webhook that wants its type.
CREATE FUNCTION kiln_webhook_event(text, text, text, bigint, text, integer,
    text) RETURNS integer
    LANGUAGE sql VOLATILE
    AS $$
	WITH e AS (SELECT gen_random_uuid() AS id),
	i AS (INSERT INTO webhook_deliveries (webhook_id, event_id, type,
	    source, state, generation, fingerprint, failures, error)
	    SELECT w.id, e.id, $1, $2, $3, $4, $5, $6, $7
	    FROM webhooks w, e WHERE $1 = ANY (w.events) RETURNING id)
	SELECT count(*)::integer FROM i
    $$;
