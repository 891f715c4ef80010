-- The CI anchor of a system key (postgres). Never edit this file once it has shipped. DESIGN.md
-- §9.4; docs/crypto.md ("API keys and the CI anchor") describes the bytes.
--
-- api_keys.anchor: (workspace id, roster genesis hash, roster head) sealed by the creating
-- admin's client under a key derived from the token's secret, which the server never sees.
-- A CI job holding the token opens it and verifies the served roster from it before it uses
-- anything. NULL for user keys and for system keys made before anchors.
ALTER TABLE api_keys ADD COLUMN anchor BYTEA;
