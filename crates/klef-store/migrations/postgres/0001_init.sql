-- Klef schema, format version 1 (PostgreSQL). Never edit this file once it has shipped: add a
-- new numbered migration instead. The store keeps metadata and sealed bytes only.
-- Ids are the client's UUID strings, timestamps unix milliseconds, sealed data BYTEA.
-- Tables are created unqualified, in the first schema of the connection's search_path.

-- Format of the whole database; a binary refuses databases whose format_version is above its own.
CREATE TABLE klef_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

INSERT INTO klef_meta (key, value) VALUES ('format_version', '1');

-- People (server) or the single owner of a local vault. Only sealed and public key material.
CREATE TABLE accounts (
    id                     TEXT PRIMARY KEY,
    email                  TEXT UNIQUE,
    -- Sign-in password hash (server accounts only); never the encryption password.
    password_hash          TEXT,
    kdf_algorithm          TEXT NOT NULL,
    kdf_m_cost_kib         BIGINT NOT NULL,
    kdf_t_cost             BIGINT NOT NULL,
    kdf_p_cost             BIGINT NOT NULL,
    kdf_salt               BYTEA NOT NULL,
    master_key_by_password BYTEA NOT NULL,
    master_key_by_recovery BYTEA NOT NULL,
    public_key             BYTEA NOT NULL,
    private_key_sealed     BYTEA NOT NULL,
    created_at             BIGINT NOT NULL
);

CREATE TABLE workspaces (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    personal   BOOLEAN NOT NULL,
    created_by TEXT NOT NULL REFERENCES accounts (id),
    created_at BIGINT NOT NULL
);

CREATE TABLE workspace_members (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    account_id   TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role         TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, account_id)
);

CREATE INDEX workspace_members_by_account ON workspace_members (account_id);

CREATE TABLE projects (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (workspace_id, name)
);

-- The project key wrapped (HPKE) to each member's public key.
CREATE TABLE project_keys (
    project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    account_id  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    wrapped_key BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (project_id, account_id)
);

CREATE INDEX project_keys_by_account ON project_keys (account_id);

-- sealed_key: the environment key sealed under the project key.
CREATE TABLE environments (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    slug        TEXT NOT NULL,
    name        TEXT NOT NULL,
    sealed_key  BYTEA NOT NULL,
    key_version BIGINT NOT NULL DEFAULT 1 CHECK (key_version >= 1),
    created_at  BIGINT NOT NULL,
    UNIQUE (project_id, slug)
);

-- Direct access: the environment key wrapped to an account (restricted member) or to a system
-- API key's public key. grantee_id is an account id or an API-key id, by grantee_kind.
CREATE TABLE environment_grants (
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    grantee_kind   TEXT NOT NULL CHECK (grantee_kind IN ('account', 'api_key')),
    grantee_id     TEXT NOT NULL,
    wrapped_key    BYTEA NOT NULL,
    key_version    BIGINT NOT NULL CHECK (key_version >= 1),
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (environment_id, grantee_kind, grantee_id)
);

CREATE INDEX environment_grants_by_grantee ON environment_grants (grantee_kind, grantee_id);

-- Append-only history of every value: a write inserts version + 1; a delete inserts a row
-- with a NULL ciphertext (a tombstone). No row is ever updated or deleted.
CREATE TABLE secrets (
    environment_id TEXT NOT NULL REFERENCES environments (id),
    name           TEXT NOT NULL,
    version        BIGINT NOT NULL CHECK (version >= 1),
    ciphertext     BYTEA,
    key_version    BIGINT NOT NULL CHECK (key_version >= 1),
    created_at     BIGINT NOT NULL,
    author         TEXT,
    PRIMARY KEY (environment_id, name, version)
);

CREATE FUNCTION klef_secrets_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'secrets are append-only';
END;
$$;

CREATE TRIGGER secrets_append_only BEFORE UPDATE OR DELETE ON secrets
    FOR EACH ROW EXECUTE FUNCTION klef_secrets_append_only();
