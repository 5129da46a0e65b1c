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
