//! The processes the soak drives: the `klef-server` child on loopback, its memory, and the
//! machine's `PostgreSQL` (reachability, cluster version, `psql`).

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};

use super::START_TIMEOUT;

/// A `klef-server` child on loopback, killed on drop; its log goes to `target/soak-server.log`.
pub(super) struct ServerProcess {
    child: Child,
    pub(super) pid: u32,
    pub(super) url: String,
}

impl ServerProcess {
    pub(super) fn start(
        bin_dir: &Path,
        database_url: &str,
        work: &Path,
        target: &Path,
    ) -> Result<Self> {
        let mut cmd = Command::new(bin_dir.join("klef-server"));
        klef_testkit::scrub_inherited(&mut cmd);
        cmd.args(["--listen", "127.0.0.1:0", "--database-url", database_url])
            .env("RUST_LOG", "info")
            .env("KLEF_HOME", work.join("server"))
            .current_dir(work);
        let log_path: PathBuf = target.join("soak-server.log");
        let started = klef_testkit::spawn_until_ready_logging(cmd, START_TIMEOUT, Some(&log_path))
            .map_err(|e| anyhow::anyhow!("klef-server did not start: {e}"))?;
        let addr = started.addr();
        let child = started.child;
        let server = Self {
            pid: child.id(),
            child,
            url: format!("http://{addr}"),
        };
        // The soak only ever talks to loopback (dropping `server` kills it).
        ensure!(
            addr.ip().is_loopback(),
            "klef-server announced {addr}, not a loopback address"
        );
        Ok(server)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub(super) fn postgres_reachable() -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], 5432));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// The version of the machine's cluster `main` (`/etc/postgresql/<version>/main`).
pub(super) fn pg_cluster_version() -> Result<String> {
    let entries = std::fs::read_dir("/etc/postgresql")
        .context("no /etc/postgresql: the soak restarts the machine's PostgreSQL cluster")?;
    entries
        .flatten()
        .filter(|e| e.path().join("main").is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max()
        .context("no PostgreSQL cluster `main` under /etc/postgresql")
}

pub(super) fn psql(url: &str, sql: &str) -> Result<()> {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .context("failed to run psql")?;
    ensure!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

pub(super) fn hex_id() -> String {
    let mut b = [0u8; 6];
    klef_core::crypto::fill_random(&mut b);
    b.iter().fold(String::new(), |mut s, x| {
        use std::fmt::Write as _;
        let _ = write!(s, "{x:02x}");
        s
    })
}
