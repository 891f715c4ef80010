-- The signed revision that wrote each secret version (postgres). Never edit this file once it has shipped.
--
-- A reader that verified an environment at revision N asks what changed after N
-- (`GET …/secrets?changes_since=N`): the latest versions written by a later revision. Rows
-- written before this column, by a write without a manifest, or restored from a backup have
-- none (NULL) and are never "changed"; a reader that misses one sees its signed state not
-- match and reads everything (the answer is an optimisation, never trusted).
ALTER TABLE secrets ADD COLUMN revision BIGINT;
