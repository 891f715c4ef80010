-- Identity keys and the signed workspace roster (SQLite). Never edit this file once it has
-- shipped. DESIGN.md §9.1-§9.2; docs/crypto.md describes the bytes.
--
-- accounts.identity_key: the account's Ed25519 identity public key (32 bytes), derived by the
-- client from its master key. NULL for accounts made before identity keys; the client
-- publishes it once after its next unlock. Clients never trust this copy: they compare it
-- with the key they derive themselves.
ALTER TABLE accounts ADD COLUMN identity_key BLOB;

-- roster_entries: each workspace's append-only, hash-chained roster, as the exact signed bytes
-- (`body`) and the Ed25519 signature. The server checks only that sequences run on without a
-- gap (writers serialise on it); clients verify the chain and every signature.
CREATE TABLE roster_entries (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    sequence     INTEGER NOT NULL CHECK (sequence >= 0),
    body         BLOB NOT NULL,
    signature    BLOB NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, sequence)
);

-- account_states: each account's pins and heads, sealed by the client under a key derived from
-- its master key (opaque to the server); `revision` serialises writers.
CREATE TABLE account_states (
    account_id TEXT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    sealed     BLOB NOT NULL,
    revision   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- invitations.invite_mac: the invitee's MAC over their identity under the invite code's secret
-- (which the server never sees), checked by the confirming admin's client.
ALTER TABLE invitations ADD COLUMN invite_mac BLOB;
