-- Split API-key secrets (PostgreSQL). Never edit this file once it has shipped. DESIGN.md §9.4,
-- docs/decisions/0016-split-api-key-secrets.md; docs/crypto.md describes the bytes.
--
-- api_keys.format: what secret_hash is the hash of.
--   'whole-secret': a key registered before this migration. Its client sent the token's whole
--     secret as the bearer token, so the server (and any proxy logging headers) could derive
--     the key pair its environment keys are wrapped to. Every row that exists now is one; the
--     server refuses them on use (401 `api_key_outdated`): re-create the key and rotate the
--     environments it could read.
--   'split': secret_hash is SHA-256 of the bearer credential HKDF(secret,
--     "klef/v1/api-key/bearer"), the only part of the token a client sends.
ALTER TABLE api_keys ADD COLUMN format TEXT NOT NULL DEFAULT 'whole-secret'
    CHECK (format IN ('whole-secret', 'split'));

-- api_keys.signing_key: a system key's Ed25519 public key (32 bytes), derived by the client
-- from the token's secret (info "klef/v1/api-key/ed25519"). NULL for user keys and for rows
-- of the 'whole-secret' format.
ALTER TABLE api_keys ADD COLUMN signing_key BYTEA;

-- The environment keys wrapped to 'whole-secret' keys: the server could have derived the
-- private key they are wrapped to, so they are dropped, and from here on nothing is wrapped to
-- such a key (new environments and rotations leave them out; PUT refuses them). Dropping them
-- undoes nothing already exposed: the environments they covered must be rotated.
DELETE FROM environment_grants WHERE grantee_kind = 'api_key';
