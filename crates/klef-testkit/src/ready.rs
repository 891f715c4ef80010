//! Start a daemon and wait until it says it is ready.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use klef_core::ready::ReadyLine;

/// A started daemon: its process, its readiness line, and what it has written on stderr.
pub struct Started {
    /// The process (not killed on drop: the caller decides).
    pub child: Child,
    /// The readiness line it wrote.
    pub ready: ReadyLine,
    log: Arc<Mutex<String>>,
    stderr_done: Option<std::thread::JoinHandle<()>>,
}

impl Started {
    /// The address of a server (its readiness line's `listen`).
    ///
    /// # Panics
    /// If the line has no valid address (the process is not a server).
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.ready
            .listen_addr()
            .expect("the readiness line names an address")
    }

    /// Everything the process wrote on stderr so far (its log).
    #[must_use]
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Kills the process, waits for it, and returns its whole stderr.
    #[must_use]
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(done) = self.stderr_done.take() {
            let _ = done.join();
        }
        self.log()
    }

    /// A handle on the log that stays valid after `self` is taken apart.
    #[must_use]
    pub fn log_handle(&self) -> Arc<Mutex<String>> {
        Arc::clone(&self.log)
    }
}

/// Spawns `cmd` with stdin null and stdout and stderr on pipes, and waits up to `timeout` for
/// its readiness line on stdout. Stderr is collected (see [`Started::log`]); stdout is drained
/// so the process never blocks on it. On a timeout or an exit before the line, the process is
/// killed and the error holds its stderr.
pub fn spawn_until_ready(cmd: Command, timeout: Duration) -> Result<Started, String> {
    spawn_until_ready_logging(cmd, timeout, None)
}

/// [`spawn_until_ready`], also writing every line of the process's stderr and stdout to
/// `log_file` (created, or truncated) as it comes, for a run to look at afterwards.
pub fn spawn_until_ready_logging(
    mut cmd: Command,
    timeout: Duration,
    log_file: Option<&Path>,
) -> Result<Started, String> {
    let file = match log_file {
        None => None,
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            let file = std::fs::File::create(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            Some(Arc::new(Mutex::new(file)))
        }
    };
    let tee = move |line: &str| {
        if let Some(file) = &file
            && let Ok(mut f) = file.lock()
        {
            let _ = writeln!(f, "{}", line.trim_end());
        }
    };
    let tee_out = tee.clone();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("stderr is piped");
    let sink = Arc::clone(&log);
    let stderr_done = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            tee(&line);
            if let Ok(mut l) = sink.lock() {
                l.push_str(&line);
                l.push('\n');
            }
        }
    });
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut tx = Some(tx);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            tee_out(&line);
            if let Some(ready) = ReadyLine::parse(&line)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(ready);
            }
            line.clear();
        }
        // Not UTF-8: still drain it, so the child never blocks on a full pipe.
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    if let Ok(ready) = rx.recv_timeout(timeout) {
        return Ok(Started {
            child,
            ready,
            log,
            stderr_done: Some(stderr_done),
        });
    }
    let _ = child.kill();
    let status = child.wait().ok();
    let _ = stderr_done.join();
    let log = log.lock().map(|l| l.clone()).unwrap_or_default();
    let how = match status {
        Some(s) if s.code().is_some() => format!("exited with {s}"),
        _ => format!("was not ready within {}s", timeout.as_secs()),
    };
    Err(format!("{program} {how} before its readiness line:\n{log}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn waits_for_the_readiness_line_and_keeps_the_log() {
        let dir = std::env::temp_dir().join(format!("klef-testkit-ready-{}", std::process::id()));
        let file = dir.join("daemon.log");
        let started = spawn_until_ready_logging(
            sh(r#"echo starting >&2; echo 'not yet'; echo '{"event":"ready","listen":"127.0.0.1:4100"}'; echo serving >&2; exec sleep 30"#),
            Duration::from_secs(30),
            Some(&file),
        )
        .unwrap();
        assert_eq!(started.addr(), "127.0.0.1:4100".parse().unwrap());
        // "serving" is written after the readiness line, by a process that keeps running:
        // wait until the reader thread has it (a stop before then would race it).
        let handle = started.log_handle();
        for _ in 0..1000 {
            if handle.lock().is_ok_and(|l| l.contains("serving")) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let log = started.stop();
        assert!(log.contains("starting") && log.contains("serving"), "{log}");
        let written = std::fs::read_to_string(&file).unwrap();
        assert!(
            written.contains("not yet") && written.contains("serving"),
            "{written}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_exit_before_the_line_is_an_error_with_the_log() {
        let Err(e) = spawn_until_ready(
            sh("echo 'no database' >&2; exit 3"),
            Duration::from_secs(30),
        ) else {
            panic!("a process that exits is not ready");
        };
        assert!(e.contains("exited") && e.contains("no database"), "{e}");
    }
}
