-- Earlier seals of each account's master key (PostgreSQL). Never edit this file once it has
-- shipped. DESIGN.md §9.4.
--
-- account_key_history: the KDF parameters and both sealed master-key copies that a password
-- change or a recovery (`PUT /v1/me/keys`) replaced, newest `seq` last; the store keeps the
-- newest 10 per account. A bad write (a stolen session, a bug) cannot lock the owner out:
-- `klef recover` falls back to an earlier seal that the recovery code still opens. They are as
-- opaque to the server as the current seals.
CREATE TABLE account_key_history (
    account_id             TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    seq                    BIGINT NOT NULL CHECK (seq > 0),
    kdf_algorithm          TEXT NOT NULL,
    kdf_m_cost_kib         BIGINT NOT NULL,
    kdf_t_cost             BIGINT NOT NULL,
    kdf_p_cost             BIGINT NOT NULL,
    kdf_salt               BYTEA NOT NULL,
    master_key_by_password BYTEA NOT NULL,
    master_key_by_recovery BYTEA NOT NULL,
    replaced_at            BIGINT NOT NULL,
    PRIMARY KEY (account_id, seq)
);
