-- Environment incarnations (PostgreSQL). Never edit this file once it has shipped.
--
-- An environment's secrets are append-only, so within one environment row the number of
-- secret rows identifies one state of its secrets exactly. Only a backup restore deletes
-- secrets, and it deletes and re-inserts the environment row itself. `incarnation` is a
-- random value given to every environment row when it is inserted, so (incarnation, number of
-- secret rows) names one state of an environment's secrets across restores: the team server
-- validates its cached secret lists against it (docs/decisions/0009-secret-list-cache.md).
-- It is not a secret and carries no meaning beyond "this row, not an earlier one".

ALTER TABLE environments
    ADD COLUMN incarnation TEXT NOT NULL DEFAULT md5(random()::text || clock_timestamp()::text);
