-- Mutual TLS client authentication to upstreams (RFC 8705): the client
-- certificate chain and an optional private CA are public PEM text; the
-- client key is stored only sealed. Subject and notAfter of the leaf are
-- read once, when the source is written, for views and the expiry alert.

ALTER TABLE token_sources
    ADD COLUMN tls_client_cert		text,
    ADD COLUMN tls_client_key_sealed	text,
    ADD COLUMN tls_ca			text,
    ADD COLUMN tls_cert_subject		text,
    ADD COLUMN tls_cert_not_after	timestamptz;

-- Token exchange (RFC 8693): the subject (and actor) token comes from
-- another source; the exchanged token remembers the subject generation
-- it was made from, so that a new subject token is exchanged once.
-- The kind list is restated whole (jwt_bearer included, issue 13).

ALTER TABLE token_sources DROP CONSTRAINT IF EXISTS token_sources_kind_check;
ALTER TABLE token_sources ADD CONSTRAINT token_sources_kind_check
    CHECK (kind IN ('client_credentials', 'refresh_token', 'password',
    'json_login', 'jwt_bearer', 'token_exchange'));

ALTER TABLE token_sources
    ADD COLUMN subject_source		text,
    ADD COLUMN subject_token_type	text,
    ADD COLUMN requested_token_type	text,
    ADD COLUMN actor_source		text,
    ADD COLUMN actor_token_type		text;

ALTER TABLE tokens ADD COLUMN subject_generation bigint;
