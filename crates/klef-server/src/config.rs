//! The server's configuration: command-line flags (each with a `KLEF_SERVER_…` variable) and
//! the derived [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use klef_core::env::EnvVars;

use crate::password::PasswordGate;

/// The Klef team server: sign-in, sync and sharing of end-to-end encrypted secrets.
///
/// With no flags it listens on 127.0.0.1:8600 and keeps its data in a `SQLite` file
/// (`$KLEF_HOME/server/server.db`, else the user data directory). Put it behind a TLS proxy.
#[derive(Debug, Parser)]
#[command(name = "klef-server", version)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, env = "KLEF_SERVER_LISTEN", default_value = "127.0.0.1:8600")]
    pub listen: SocketAddr,

    /// Database URL: `sqlite:///path/server.db` or `postgres://user@host/db` (default: a
    /// `SQLite` file in the data directory). Several servers may share one `PostgreSQL`.
    #[arg(long, env = "KLEF_SERVER_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Let anyone sign up (default: only the first account and invited emails).
    #[arg(long, env = "KLEF_SERVER_OPEN_SIGNUP")]
    pub open_signup: bool,

    /// Directory for the default `SQLite` database.
    #[arg(long, env = "KLEF_SERVER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Take the client address for sign-in rate limits from the last `X-Forwarded-For` entry
    /// (set this only behind a proxy that overwrites or appends that header).
    #[arg(long, env = "KLEF_SERVER_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,

    /// Session lifetime, e.g. `30d` or `12h`.
    #[arg(long, env = "KLEF_SERVER_SESSION_TTL", default_value = "30d", value_parser = parse_duration)]
    pub session_ttl: Duration,

    /// Memory for cached secret lists, in MiB (`0`: off). Each answer is checked against the
    /// database's current revision of its environment before it is reused.
    #[arg(long, env = "KLEF_SERVER_SECRET_CACHE_MIB", default_value_t = DEFAULT_SECRET_CACHE_MIB, value_parser = clap::value_parser!(u32).range(0..=65_536))]
    pub secret_cache_mib: u32,

    /// Log format on stderr: `text` (coloured only on a terminal without `NO_COLOR`) or `json`
    /// (one object per line, for log shippers). The level comes from `RUST_LOG` (default
    /// `info`).
    #[arg(long, env = "KLEF_SERVER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Same as `--log-format json` (kept for existing deployments).
    #[arg(long, env = "KLEF_SERVER_LOG_JSON", hide = true)]
    pub log_json: bool,

    /// Password hashes and checks (Argon2id, 19 MiB each) that may run at once (default: one
    /// per core).
    #[arg(long, env = "KLEF_SERVER_PASSWORD_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub password_workers: Option<u16>,

    /// Requests that may wait for a password worker; beyond that the server answers 503 with
    /// `Retry-After` at once (default: eight per worker).
    #[arg(long, env = "KLEF_SERVER_PASSWORD_QUEUE", value_parser = clap::value_parser!(u16).range(0..=65_535))]
    pub password_queue: Option<u16>,

    /// Write the password gate's counts as JSON to this file when the server stops (for load
    /// tests: `cargo xtask flood`).
    #[arg(long, hide = true)]
    pub stats_file: Option<PathBuf>,
}

/// How the server writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Whether text logs are coloured: only on a terminal, and not when `NO_COLOR` is set to a
/// non-empty value (<https://no-color.org>).
#[must_use]
pub fn log_colour(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

impl Args {
    /// The log format the flags ask for (`--log-json` is `--log-format json`).
    #[must_use]
    pub fn log_format(&self) -> LogFormat {
        if self.log_json {
            LogFormat::Json
        } else {
            self.log_format
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: use e.g. 30d or 12h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" | "" => n * 86_400,
        _ => {
            return Err(format!(
                "invalid duration unit in {text:?}: use s, m, h or d"
            ));
        }
    };
    if secs == 0 {
        return Err("a session lifetime must be positive".into());
    }
    Ok(Duration::from_secs(secs))
}

/// Sign-in and sign-up rate limits within a sliding `window`. Each attempt is reserved in the
/// database before its password is hashed or checked, so parallel attempts never exceed them.
///
/// Sign-in: at most `max_failures` failures per email, and `address_max_failures` per client
/// address (ten times as many by default: one account's failures, at most `max_failures`, never
/// lock out a teammate behind the same address). Sign-up: at most `max_signups_per_email`
/// attempts per email and `max_signups_per_address` per address (successful ones included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimit {
    /// Failed sign-ins allowed per email in the window.
    pub max_failures: i64,
    /// Failed sign-ins allowed per client address in the window.
    pub address_max_failures: i64,
    /// Sign-up attempts allowed per email in the window.
    pub max_signups_per_email: i64,
    /// Sign-up attempts allowed per client address in the window.
    pub max_signups_per_address: i64,
    /// The sliding window.
    pub window: Duration,
}

impl Default for LoginLimit {
    fn default() -> Self {
        Self {
            max_failures: 5,
            address_max_failures: 50,
            max_signups_per_email: 5,
            max_signups_per_address: 50,
            window: Duration::from_mins(15),
        }
    }
}

/// Default `--secret-cache-mib`.
const DEFAULT_SECRET_CACHE_MIB: u32 = 64;

/// MiB to bytes (the flag's range keeps it far from overflowing).
fn mib(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX >> 20) << 20
}

/// The server's settings.
#[derive(Clone)]
pub struct Config {
    /// Bounds (and counts) the Argon2 work; shared by every request of this server.
    pub password_gate: Arc<PasswordGate>,
    /// Where to write the gate's counts when the server stops (`--stats-file`).
    pub stats_file: Option<PathBuf>,
    /// The database URL (`sqlite://…` or `postgres://…`).
    pub database_url: String,
    /// Whether anyone may sign up.
    pub open_signup: bool,
    /// Whether to trust `X-Forwarded-For`.
    pub trust_forwarded_for: bool,
    /// Session lifetime.
    pub session_ttl: Duration,
    /// Sign-in rate limit.
    pub login_limit: LoginLimit,
    /// Bytes of memory for cached secret lists (`0`: off).
    pub secret_cache_bytes: usize,
    /// Write the readiness line ([`klef_core::ready::ReadyLine`]) on stdout once serving (the
    /// binary does; tests that call the library do not need it).
    pub announce_ready: bool,
}

impl std::fmt::Debug for Config {
    // The database URL may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("open_signup", &self.open_signup)
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .field("session_ttl", &self.session_ttl)
            .field("login_limit", &self.login_limit)
            .field("secret_cache_bytes", &self.secret_cache_bytes)
            .field("password_gate", &self.password_gate.sizes())
            .field("stats_file", &self.stats_file)
            .field("announce_ready", &self.announce_ready)
            .finish()
    }
}

impl Config {
    /// Settings for `database_url` with the defaults (invitation-only sign-up, 30-day
    /// sessions, 5 failed sign-ins per 15 minutes).
    #[must_use]
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            password_gate: Arc::new(PasswordGate::for_this_machine()),
            stats_file: None,
            database_url: database_url.into(),
            open_signup: false,
            trust_forwarded_for: false,
            session_ttl: Duration::from_hours(30 * 24),
            login_limit: LoginLimit::default(),
            secret_cache_bytes: mib(DEFAULT_SECRET_CACHE_MIB),
            announce_ready: false,
        }
    }

    /// The configuration the flags describe; the default database is
    /// `<data dir>/server.db`, the data dir being `--data-dir`, `$KLEF_HOME/server`, or the
    /// user data directory's `klef/server`.
    pub fn from_args(args: &Args) -> anyhow::Result<Self> {
        let database_url = if let Some(url) = &args.database_url {
            url.clone()
        } else {
            let dir = match &args.data_dir {
                Some(dir) => dir.clone(),
                None => default_data_dir()?,
            };
            format!("sqlite://{}", dir.join("server.db").display())
        };
        let default_gate = PasswordGate::for_this_machine().sizes();
        let workers = args.password_workers.map_or(default_gate.0, usize::from);
        let queue = args.password_queue.map_or(
            workers * (default_gate.1 / default_gate.0.max(1)),
            usize::from,
        );
        Ok(Self {
            password_gate: Arc::new(PasswordGate::new(workers, queue)),
            stats_file: args.stats_file.clone(),
            database_url,
            open_signup: args.open_signup,
            trust_forwarded_for: args.trust_forwarded_for,
            session_ttl: args.session_ttl,
            login_limit: LoginLimit::default(),
            secret_cache_bytes: mib(args.secret_cache_mib),
            announce_ready: true,
        })
    }
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    use etcetera::BaseStrategy as _;
    if let Some(home) = std::env::var_os(EnvVars::KLEF_HOME).filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home).join("server"));
    }
    let strategy = etcetera::choose_base_strategy()
        .map_err(|e| anyhow::anyhow!("cannot find the user data directory: {e}"))?;
    Ok(strategy.data_dir().join("klef").join("server"))
}

/// A database URL with any password replaced by `***`, for logs.
#[must_use]
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    let user = userinfo.split(':').next().unwrap_or_default();
    format!("{scheme}://{user}:***@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(log_colour(true, None));
        assert!(log_colour(true, Some(OsStr::new(""))));
        assert!(!log_colour(true, Some(OsStr::new("1"))));
        assert!(!log_colour(false, None));
    }

    #[test]
    fn durations_and_redaction() {
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_hours(30 * 24)
        );
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_hours(12));
        assert!(parse_duration("0d").is_err());
        assert!(parse_duration("1w").is_err());
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("sqlite:///x/server.db"), "sqlite:///x/server.db");
        // (`secret` would also match the `secret_cache_bytes` field name.)
        let c = Config::new("postgres://u:hunter2@h/db");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
