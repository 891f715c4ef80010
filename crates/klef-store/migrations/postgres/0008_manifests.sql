-- Signed environment manifests (PostgreSQL). Never edit this file once it has shipped.
-- DESIGN.md §9.3; docs/crypto.md describes the bytes.
--
-- manifests: each environment's hash-chained, signed states, as the exact signed bytes
-- (`body`) and the Ed25519 signature. The store checks only that revisions run on without a
-- gap (every write carries the next one, so writers serialise on it); clients verify the
-- chain, every signature and every value against it. `anchor` marks the manifests that set
-- the key or the names (first, rotation, rename), where a client with no head starts.
-- Environments made before manifests have none until an owner or admin seals them.
CREATE TABLE manifests (
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    revision       BIGINT NOT NULL CHECK (revision >= 1),
    anchor         BOOLEAN NOT NULL,
    body           BYTEA NOT NULL,
    signature      BYTEA NOT NULL,
    created_by     TEXT,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (environment_id, revision)
);
