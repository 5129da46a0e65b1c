-- A client key may be scoped to some token sources: it reads only their
-- tokens. NULL is every source, what a client key has always meant.

ALTER TABLE api_keys ADD COLUMN sources text[]
    CHECK (sources IS NULL OR (role = 'client' AND
    cardinality(sources) BETWEEN 1 AND 256));
