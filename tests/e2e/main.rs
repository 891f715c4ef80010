//! End-to-end tests: the real `klef`, `klef-agent` and `klef-server` binaries in hermetic temp
//! directories. One test binary (`autotests = false`), one module per area.

mod account_keys;
mod account_safety;
mod adversary;
mod agent;
mod agent_cache;
mod api_key_split;
mod attack_table;
mod backup_server;
mod bad_input;
mod crash;
mod diff_promote;
mod env_choice;
mod hardening;
mod hygiene;
mod keys;
mod lifecycle;
mod manifest_attacks;
mod manifest_backup;
mod mask;
mod messages;
mod personal;
mod pull_push;
mod references;
mod removal;
mod roster_attacks;
mod run;
mod team;
mod teams;
mod terminal;
mod token_destination;
mod workflow;
