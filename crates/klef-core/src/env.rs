//! The registry of environment variables Klef reads. `cargo xtask codegen` generates
//! `docs/reference/env-vars.md` from the doc comments here.

/// Names of the environment variables Klef reads.
pub struct EnvVars;

impl EnvVars {
    /// Root directory for Klef's config, data and runtime files (tests isolate with it).
    pub const KLEF_HOME: &'static str = "KLEF_HOME";
    /// Namespaces every path, so several independent vaults can coexist for one user.
    pub const KLEF_PROFILE: &'static str = "KLEF_PROFILE";
    /// Overrides the config directory.
    pub const KLEF_CONFIG_DIR: &'static str = "KLEF_CONFIG_DIR";
    /// Overrides the data directory (where the local vault lives).
    pub const KLEF_DATA_DIR: &'static str = "KLEF_DATA_DIR";
    /// The environment slug to use, overriding `.klef`'s default (like `-e/--env`).
    pub const KLEF_ENV: &'static str = "KLEF_ENV";
    /// The project id or name to use when no `.klef` is found (like `-p/--project`).
    pub const KLEF_PROJECT: &'static str = "KLEF_PROJECT";
    /// The Klef server URL (server mode).
    pub const KLEF_SERVER: &'static str = "KLEF_SERVER";
    /// An API key (`klef_sys_…` or `klef_user_…`) for CI: no password, no agent.
    pub const KLEF_TOKEN: &'static str = "KLEF_TOKEN";
    /// Seconds to wait for a Klef server: to connect (at most 10 s) and for each request
    /// (default 30 s). A server that does not answer in time fails the command with exit 6.
    pub const KLEF_TIMEOUT: &'static str = "KLEF_TIMEOUT";
    /// The encryption password. A last resort for automation: prefer `--password-stdin`.
    pub const KLEF_PASSWORD: &'static str = "KLEF_PASSWORD";
    /// The new encryption password for `klef password change` and `klef recover`.
    pub const KLEF_NEW_PASSWORD: &'static str = "KLEF_NEW_PASSWORD";
    /// The account (sign-in) password for `klef signup`/`klef login`, and to approve
    /// `klef password change`/`klef recover` on a server.
    pub const KLEF_ACCOUNT_PASSWORD: &'static str = "KLEF_ACCOUNT_PASSWORD";
    /// Set to `1` to never contact or start the agent.
    pub const KLEF_NO_AGENT: &'static str = "KLEF_NO_AGENT";
    /// Set to `1` to allow plain `http://` to a server that is not on loopback.
    pub const KLEF_ALLOW_HTTP: &'static str = "KLEF_ALLOW_HTTP";
    /// The invite code for `klef workspace accept` (instead of `--code`).
    pub const KLEF_INVITE_CODE: &'static str = "KLEF_INVITE_CODE";
    /// Set to `1` to let a keyed command start the agent after a password unlock even in CI or
    /// without a terminal (where it otherwise starts none).
    pub const KLEF_AGENT_AUTOSTART: &'static str = "KLEF_AGENT_AUTOSTART";
    /// Set by CI systems; when set (and not `0`/`false`) klef starts no agent by itself.
    pub const CI: &'static str = "CI";
    /// Idle timeout of the agent's key cache (at most `1h`), read when the agent starts.
    pub const KLEF_AGENT_IDLE_TIMEOUT: &'static str = "KLEF_AGENT_IDLE_TIMEOUT";
    /// Hard cap on how long the agent keeps keys after an unlock (at most `8h`).
    pub const KLEF_AGENT_MAX_LIFETIME: &'static str = "KLEF_AGENT_MAX_LIFETIME";
    /// Path of the `klef-agent` binary to start (default: next to `klef`, then `PATH`).
    pub const KLEF_AGENT_BIN: &'static str = "KLEF_AGENT_BIN";
    /// Forces the session-token store: `file` (0600 file) or `keyring`.
    pub const KLEF_TOKEN_STORE: &'static str = "KLEF_TOKEN_STORE";
    /// Disables coloured output when set to any value.
    pub const NO_COLOR: &'static str = "NO_COLOR";
    /// How long the agent's copy of an environment is served without asking the server
    /// (default `5s`, at most `1h`; `0` asks every time).
    pub const KLEF_CACHE_FRESH: &'static str = "KLEF_CACHE_FRESH";
    /// Set to `1` to keep environments out of the agent (every read asks the server).
    pub const KLEF_NO_CACHE: &'static str = "KLEF_NO_CACHE";
    /// Set to `1` to also keep an encrypted copy of each environment read under the data
    /// directory, for reads while the server is away after the agent forgot it.
    pub const KLEF_OFFLINE_COPY: &'static str = "KLEF_OFFLINE_COPY";
}

/// The variables that carry a credential (a password or an API key). `klef run` removes them
/// from the command's environment and the agent is started without them.
pub const CREDENTIALS: &[&str] = &[
    EnvVars::KLEF_PASSWORD,
    EnvVars::KLEF_NEW_PASSWORD,
    EnvVars::KLEF_ACCOUNT_PASSWORD,
    EnvVars::KLEF_TOKEN,
    EnvVars::KLEF_INVITE_CODE,
];

/// Every variable with its documentation line, for generated docs.
pub const ALL: &[(&str, &str)] = &[
    (
        EnvVars::KLEF_HOME,
        "Root directory for Klef's config, data and runtime files.",
    ),
    (
        EnvVars::KLEF_PROFILE,
        "Namespaces every path so independent vaults can coexist.",
    ),
    (EnvVars::KLEF_CONFIG_DIR, "Overrides the config directory."),
    (
        EnvVars::KLEF_DATA_DIR,
        "Overrides the data directory (where the local vault lives).",
    ),
    (
        EnvVars::KLEF_ENV,
        "Environment slug to use, overriding `.klef` (like `-e`).",
    ),
    (
        EnvVars::KLEF_PROJECT,
        "Project id or name when no `.klef` is found (like `-p`).",
    ),
    (EnvVars::KLEF_SERVER, "The Klef server URL."),
    (
        EnvVars::KLEF_TOKEN,
        "An API key for CI: `klef_sys_…` or `klef_user_…`.",
    ),
    (
        EnvVars::KLEF_TIMEOUT,
        "Seconds to wait for a Klef server to connect (at most 10) and to answer (default 30).",
    ),
    (
        EnvVars::KLEF_PASSWORD,
        "The encryption password (last resort; prefer `--password-stdin`).",
    ),
    (
        EnvVars::KLEF_NEW_PASSWORD,
        "New encryption password for `password change` and `recover`.",
    ),
    (
        EnvVars::KLEF_ACCOUNT_PASSWORD,
        "Account (sign-in) password for `signup` and `login`; on a server also approves `password change` and `recover`.",
    ),
    (
        EnvVars::KLEF_NO_AGENT,
        "`1`: never contact or start the agent.",
    ),
    (
        EnvVars::KLEF_ALLOW_HTTP,
        "`1`: allow plain `http://` to a server that is not on loopback (refused by default: tokens and passwords would cross the network unencrypted).",
    ),
    (
        EnvVars::KLEF_INVITE_CODE,
        "Invite code for `workspace accept` (instead of `--code`).",
    ),
    (
        EnvVars::KLEF_AGENT_AUTOSTART,
        "`1`: start the agent after a password unlock even in CI or without a terminal.",
    ),
    (
        EnvVars::CI,
        "Set by CI systems: klef then starts no agent unless asked.",
    ),
    (
        EnvVars::KLEF_AGENT_IDLE_TIMEOUT,
        "Agent idle timeout, at most `1h`.",
    ),
    (
        EnvVars::KLEF_AGENT_MAX_LIFETIME,
        "Agent hard cap after unlock, at most `8h`.",
    ),
    (
        EnvVars::KLEF_AGENT_BIN,
        "Path of the `klef-agent` binary to start.",
    ),
    (
        EnvVars::KLEF_TOKEN_STORE,
        "Force the session-token store: `file` or `keyring`.",
    ),
    (EnvVars::NO_COLOR, "Disables coloured output."),
    (
        EnvVars::KLEF_CACHE_FRESH,
        "How long the agent serves an environment before asking the server again (default `5s`, at most `1h`, `0`: always ask).",
    ),
    (
        EnvVars::KLEF_NO_CACHE,
        "`1`: keep no environments in the agent; every read asks the server.",
    ),
    (
        EnvVars::KLEF_OFFLINE_COPY,
        "`1`: also keep a password-sealed copy of each environment read, for reads while the server is away.",
    ),
];
