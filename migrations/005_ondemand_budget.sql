-- On-demand refreshes (min_ttl, rejected) have a budget per token, and an
-- upstream host whose circuit is open gets no attempts but one probe per
-- open period. Both are checked in the lease statement, so they hold
-- across the workers and instances that share this database.

ALTER TABLE tokens ADD COLUMN last_ondemand_at timestamptz;

-- The host (and port) of a token URL, lower case: the circuit's key.
CREATE FUNCTION kiln_host(text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT lower(substring($1 from '://(?:[^/?#@]*@)?([^/?#]*)')) $$;

-- Consecutive failures of a host (no answer or 5xx). open_until set:
-- open until then, half-open after; probe_until: a probe is out.
CREATE TABLE upstream_hosts (
	host			text PRIMARY KEY,
	failures		integer NOT NULL DEFAULT 0,
	open_until		timestamptz,
	probe_until		timestamptz,
	updated_at		timestamptz NOT NULL DEFAULT now()
);
