//! klef-agent: caches unlocked account keys in hardened memory so a person unlocks once per
//! session. See `docs/agent.md`.
