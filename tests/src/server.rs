//! A real `klef-server` process for end-to-end tests, killed when the guard drops.
//!
//! The server binds `127.0.0.1:0` and announces the address it got in its readiness line
//! (`klef_testkit::spawn_until_ready`), so no port is guessed, nothing sleeps while it starts and
//! no log is scraped. Each server gets
//! its own `SQLite` file, or its own `PostgreSQL` schema (`KLEF_TEST_DATABASE_URL`), dropped after.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::bin;

/// How long a server may take to start (a cold debug build migrating `PostgreSQL`).
const START_TIMEOUT: Duration = Duration::from_mins(1);

/// Which database a server uses.
#[derive(Debug, Clone)]
pub enum Database {
    /// A `SQLite` file.
    Sqlite(PathBuf),
    /// A `PostgreSQL` URL (with its own schema) and the schema's name.
    Postgres {
        /// The URL the server connects with.
        url: String,
        /// The admin URL (`KLEF_TEST_DATABASE_URL`), to drop the schema.
        admin: String,
        /// The schema.
        schema: String,
    },
}

/// A running `klef-server`, killed (and its `PostgreSQL` schema dropped) on drop.
pub struct Server {
    child: Child,
    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// Its database.
    pub database: Database,
    log: Arc<Mutex<String>>,
    dir: PathBuf,
}

impl Server {
    /// A server on a fresh `SQLite` file in `dir`.
    #[must_use]
    pub fn sqlite(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("create the server's directory");
        let db = dir.join("server.db");
        Self::start(Database::Sqlite(db), dir)
    }

    /// A server on a fresh `PostgreSQL` schema, or `None` (with a visible note) when
    /// `KLEF_TEST_DATABASE_URL` is unset; with `CI=true` that is a failure instead.
    #[must_use]
    pub fn postgres(dir: &Path) -> Option<Self> {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        let Ok(admin) = std::env::var("KLEF_TEST_DATABASE_URL") else {
            assert!(
                !ci,
                "CI=true but KLEF_TEST_DATABASE_URL is not set: the PostgreSQL e2e tests must run in CI"
            );
            eprintln!(
                "SKIPPED PostgreSQL e2e test: set KLEF_TEST_DATABASE_URL=postgres://… to run it"
            );
            return None;
        };
        let mut suffix = [0u8; 8];
        getrandom_bytes(&mut suffix);
        let schema = format!(
            "klef_e2e_{}",
            suffix.iter().fold(String::new(), |mut s, b| {
                use std::fmt::Write as _;
                let _ = write!(s, "{b:02x}");
                s
            })
        );
        psql(&admin, &format!("CREATE SCHEMA {schema}"));
        let sep = if admin.contains('?') { '&' } else { '?' };
        let url = format!("{admin}{sep}options=-c%20search_path%3D{schema}");
        std::fs::create_dir_all(dir).expect("create the server's directory");
        Some(Self::start(Database::Postgres { url, admin, schema }, dir))
    }

    fn start(database: Database, dir: &Path) -> Self {
        let started = spawn(&database, dir, "127.0.0.1:0");
        Self {
            url: format!("http://{}", started.addr()),
            log: started.log_handle(),
            child: started.child,
            database,
            dir: dir.to_owned(),
        }
    }

    /// Stops the server process (its database stays); [`Server::restart`] starts it again.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server and starts this build again on the same database and address, as an
    /// upgrade would: the new process runs its migrations, and clients keep their URL.
    pub fn restart(&mut self) {
        self.stop();
        let addr = self
            .url
            .strip_prefix("http://")
            .expect("an http:// URL")
            .to_owned();
        let started = spawn(&self.database, &self.dir, &addr);
        self.log = started.log_handle();
        self.child = started.child;
    }

    /// What the server logged so far.
    #[must_use]
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Runs `sql` on the server's database behind its back (a malicious operator, or an
    /// attacker with the database) and returns what it printed, trimmed: `sqlite3` or `psql`.
    /// Write it in the SQL both share; [`Server::hex`] and [`Server::bytes`] cover byte columns.
    pub fn sql(&self, sql: &str) -> String {
        let out = match &self.database {
            Database::Sqlite(db) => Command::new("sqlite3")
                .arg(db)
                .arg(sql)
                .output()
                .expect("run sqlite3 (needed to edit a server database in the e2e tests)"),
            Database::Postgres { url, .. } => Command::new("psql")
                .args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
                .output()
                .expect("run psql (needed for the PostgreSQL e2e tests)"),
        };
        assert!(
            out.status.success(),
            "{sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The SQL expression of a byte column as lower-case hex.
    #[must_use]
    pub fn hex(&self, column: &str) -> String {
        match &self.database {
            Database::Sqlite(_) => format!("lower(hex({column}))"),
            Database::Postgres { .. } => format!("encode({column}, 'hex')"),
        }
    }

    /// The SQL literal of bytes given as hex.
    #[must_use]
    pub fn bytes(&self, hex: &str) -> String {
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "not hex: {hex}");
        match &self.database {
            Database::Sqlite(_) => format!("X'{hex}'"),
            Database::Postgres { .. } => format!("decode('{hex}', 'hex')"),
        }
    }

    /// The `SQLite` file, for tests that read the database behind the server's back.
    #[must_use]
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.database {
            Database::Sqlite(p) => Some(p),
            Database::Postgres { .. } => None,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Database::Postgres { admin, schema, .. } = &self.database {
            psql(admin, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
    }
}

/// Starts `klef-server` on `database`, listening on `listen`, and waits until it is ready.
fn spawn(database: &Database, dir: &Path, listen: &str) -> klef_testkit::Started {
    let url_arg = match database {
        Database::Sqlite(p) => format!("sqlite://{}", p.display()),
        Database::Postgres { url, .. } => url.clone(),
    };
    let mut cmd = Command::new(bin("klef-server"));
    klef_testkit::scrub_inherited(&mut cmd);
    cmd.args(["--listen", listen, "--database-url", &url_arg])
        .env("RUST_LOG", "info")
        .env("KLEF_HOME", dir)
        .current_dir(dir);
    klef_testkit::spawn_until_ready(cmd, START_TIMEOUT)
        .unwrap_or_else(|e| panic!("klef-server did not start: {e}"))
}

/// Runs one SQL statement with `psql` (the test machine's client).
fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .expect("run psql (needed for the PostgreSQL e2e tests)");
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Random bytes from the OS (for unique schema names), without a crate.
fn getrandom_bytes(buf: &mut [u8]) {
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("read /dev/urandom");
}
