-- Klef team-server tables (PostgreSQL). Never edit this file once it has shipped: add a new numbered
-- migration instead. Like 0001, only metadata, hashes and sealed bytes: no token, password,
-- unwrapped key or plaintext value is ever stored. Timestamps are unix milliseconds.

-- Sign-in sessions. id is the SHA-256 (hex) of the whole session token; the token itself is
-- only ever known to the client.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);

CREATE INDEX sessions_by_account ON sessions (account_id);

-- Failed sign-ins, counted per subject in a sliding window for rate limiting. scope is
-- 'account' (subject = the normalised email, whether or not such an account exists) or
-- 'address' (subject = the client address).
CREATE TABLE login_attempts (
    id           BIGSERIAL PRIMARY KEY,
    scope        TEXT NOT NULL CHECK (scope IN ('account', 'address')),
    subject      TEXT NOT NULL,
    attempted_at BIGINT NOT NULL
);

CREATE INDEX login_attempts_by_subject ON login_attempts (scope, subject, attempted_at);

-- Invitations to a workspace. environments is NULL for full access, else a JSON array of the
-- environment ids the invitee is restricted to. An invitation is pending until accepted
-- (accepted_by/accepted_at set), and is closed (closed_at) when an admin confirms the member,
-- or when it is revoked by removing the member.
CREATE TABLE invitations (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    email        TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    environments TEXT,
    invited_by   TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    accepted_by  TEXT REFERENCES accounts (id) ON DELETE CASCADE,
    accepted_at  BIGINT,
    closed_at    BIGINT
);

CREATE INDEX invitations_by_email ON invitations (email);
CREATE INDEX invitations_by_workspace ON invitations (workspace_id);

-- Who did what, when: written in the same transaction as the change it records.
-- actor_kind 'account' (actor_id = account id, actor_label = email), 'api_key' (key id, label)
-- or 'anonymous' (a failed sign-in). workspace_id is NULL for account-level events.
CREATE TABLE audit_log (
    id           BIGSERIAL PRIMARY KEY,
    workspace_id TEXT,
    actor_kind   TEXT NOT NULL CHECK (actor_kind IN ('account', 'api_key', 'anonymous')),
    actor_id     TEXT,
    actor_label  TEXT,
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE INDEX audit_log_by_workspace ON audit_log (workspace_id, id);

-- API keys (user and system). secret_hash is the SHA-256 (hex) of the key's secret part;
-- public_key is set for system keys (derived from the secret client-side).
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('user', 'system')),
    label       TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    public_key  BYTEA,
    permission  TEXT NOT NULL CHECK (permission IN ('read', 'readwrite')),
    created_by  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE INDEX api_keys_by_creator ON api_keys (created_by);

-- The environments a system key may reach. environment_id NULL means every environment of the
-- project (`proj:*`).
CREATE TABLE api_key_scopes (
    api_key_id     TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    project_id     TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    environment_id TEXT REFERENCES environments (id) ON DELETE CASCADE
);

CREATE UNIQUE INDEX api_key_scopes_unique
    ON api_key_scopes (api_key_id, project_id, COALESCE(environment_id, ''));
