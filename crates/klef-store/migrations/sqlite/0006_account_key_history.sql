-- Earlier seals of each account's master key (SQLite). Never edit this file once it has
-- shipped. DESIGN.md §9.4.
--
-- account_key_history: the KDF parameters and both sealed master-key copies that a password
-- change or a recovery (`PUT /v1/me/keys`) replaced, newest `seq` last; the store keeps the
-- newest 10 per account. A bad write (a stolen session, a bug) cannot lock the owner out:
-- `klef recover` falls back to an earlier seal that the recovery code still opens. They are as
-- opaque to the server as the current seals.
CREATE TABLE account_key_history (
    account_id             TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    seq                    INTEGER NOT NULL CHECK (seq > 0),
    kdf_algorithm          TEXT NOT NULL,
    kdf_m_cost_kib         INTEGER NOT NULL,
    kdf_t_cost             INTEGER NOT NULL,
    kdf_p_cost             INTEGER NOT NULL,
    kdf_salt               BLOB NOT NULL,
    master_key_by_password BLOB NOT NULL,
    master_key_by_recovery BLOB NOT NULL,
    replaced_at            INTEGER NOT NULL,
    PRIMARY KEY (account_id, seq)
) STRICT;
