-- Personal overrides (PostgreSQL). Never edit this file once it has shipped.
-- Issue #19 item 4; docs/decisions/0021-personal-overrides.md, docs/crypto.md describe the bytes.
--
-- personal_overrides: one member's own values for some names of a shared environment, one
-- sealed record per (environment, account): the whole map of names and values, sealed under a
-- key derived from that account's master key, so the store (and the server) sees neither the
-- names nor the values, and no copy is wrapped to anyone else. `revision` counts the account's
-- writes (compare-and-swap: a write carries the revision it read); the client binds it in the
-- sealed bytes and refuses one lower than it has seen.
CREATE TABLE personal_overrides (
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    account_id     TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    revision       BIGINT NOT NULL CHECK (revision >= 1),
    blob           BYTEA NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (environment_id, account_id)
);
