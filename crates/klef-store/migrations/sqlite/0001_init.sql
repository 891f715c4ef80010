-- Klef vault schema, format version 1 (SQLite). Never edit this file once it has shipped: add a
-- new numbered migration instead. The store keeps metadata and sealed bytes only.
-- Ids are the client's UUID strings, timestamps unix milliseconds, sealed data BLOBs.

-- Marks the file as a Klef vault (0x4B4C4546, "KLEF"); checked before anything else on open.
PRAGMA application_id = 1263289670;

-- Format of the whole vault; a binary refuses files whose format_version is above its own.
CREATE TABLE klef_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

INSERT INTO klef_meta (key, value) VALUES ('format_version', '1');

-- People (server) or the single owner of a local vault. Only sealed and public key material.
CREATE TABLE accounts (
    id                     TEXT PRIMARY KEY NOT NULL,
    email                  TEXT UNIQUE,
    -- Sign-in password hash (server accounts only); never the encryption password.
    password_hash          TEXT,
    kdf_algorithm          TEXT NOT NULL,
    kdf_m_cost_kib         INTEGER NOT NULL,
    kdf_t_cost             INTEGER NOT NULL,
    kdf_p_cost             INTEGER NOT NULL,
    kdf_salt               BLOB NOT NULL,
    master_key_by_password BLOB NOT NULL,
    master_key_by_recovery BLOB NOT NULL,
    public_key             BLOB NOT NULL,
    private_key_sealed     BLOB NOT NULL,
    created_at             INTEGER NOT NULL
) STRICT;

CREATE TABLE workspaces (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    personal   INTEGER NOT NULL CHECK (personal IN (0, 1)),
    created_by TEXT NOT NULL REFERENCES accounts (id),
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE workspace_members (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    account_id   TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role         TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, account_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX workspace_members_by_account ON workspace_members (account_id);

CREATE TABLE projects (
    id           TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    UNIQUE (workspace_id, name)
) STRICT;

-- The project key wrapped (HPKE) to each member's public key.
CREATE TABLE project_keys (
    project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    account_id  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    wrapped_key BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (project_id, account_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX project_keys_by_account ON project_keys (account_id);

-- sealed_key: the environment key sealed under the project key.
CREATE TABLE environments (
    id          TEXT PRIMARY KEY NOT NULL,
    project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    slug        TEXT NOT NULL,
    name        TEXT NOT NULL,
    sealed_key  BLOB NOT NULL,
    key_version INTEGER NOT NULL DEFAULT 1 CHECK (key_version >= 1),
    created_at  INTEGER NOT NULL,
    UNIQUE (project_id, slug)
) STRICT;

-- Direct access: the environment key wrapped to an account (restricted member) or to a system
-- API key's public key. grantee_id is an account id or an API-key id, by grantee_kind.
CREATE TABLE environment_grants (
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    grantee_kind   TEXT NOT NULL CHECK (grantee_kind IN ('account', 'api_key')),
    grantee_id     TEXT NOT NULL,
    wrapped_key    BLOB NOT NULL,
    key_version    INTEGER NOT NULL CHECK (key_version >= 1),
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (environment_id, grantee_kind, grantee_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX environment_grants_by_grantee ON environment_grants (grantee_kind, grantee_id);

-- Append-only history of every value: a write inserts version + 1; a delete inserts a row
-- with a NULL ciphertext (a tombstone). No row is ever updated or deleted.
CREATE TABLE secrets (
    environment_id TEXT NOT NULL REFERENCES environments (id),
    name           TEXT NOT NULL,
    version        INTEGER NOT NULL CHECK (version >= 1),
    ciphertext     BLOB,
    key_version    INTEGER NOT NULL CHECK (key_version >= 1),
    created_at     INTEGER NOT NULL,
    author         TEXT,
    PRIMARY KEY (environment_id, name, version)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER secrets_no_update BEFORE UPDATE ON secrets
BEGIN
    SELECT RAISE(ABORT, 'secrets are append-only');
END;

CREATE TRIGGER secrets_no_delete BEFORE DELETE ON secrets
BEGIN
    SELECT RAISE(ABORT, 'secrets are append-only');
END;
