//! klef-server's API tests: a real server bound to 127.0.0.1:0 in process, real HTTP, on `SQLite`
//! and `PostgreSQL` (`KLEF_TEST_DATABASE_URL`, required when `CI=true`).

mod account_keys;
mod backup;
mod bad_input;
mod cache;
mod common;
mod concurrency;
mod keys;
mod limits;
mod logging;
mod matrix;
mod openapi;
mod story;
mod team_audit;
