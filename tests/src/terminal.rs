//! `klef` at a terminal: the command runs on the slave side of a pseudo-terminal that is its
//! controlling terminal (so `/dev/tty` prompts work), and the test types on the master side.
//!
//! The child is started through util-linux `setsid -c` (a new session whose controlling
//! terminal is stdin): the workspace forbids `unsafe`, so no `pre_exec` here.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
use rustix::termios::{LocalModes, tcgetattr};

use crate::{TestContext, bin};

/// How long a test waits for text before it fails (a hang guard, not a timing assertion).
const PATIENCE: Duration = Duration::from_mins(2);

/// A running `klef` at a terminal.
pub struct Terminal {
    desc: String,
    master: File,
    output: Arc<Mutex<Vec<u8>>>,
    /// Where the next [`Terminal::expect`] starts looking.
    seen: usize,
    reader: Option<JoinHandle<()>>,
    child: Child,
}

impl TestContext {
    /// Starts `klef ARGS` with a terminal as stdin, stdout, stderr and controlling terminal.
    #[must_use]
    pub fn terminal<I, S>(&self, args: I) -> Terminal
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let hermetic = self.command("klef");
        let mut cmd = Command::new("setsid");
        cmd.arg("-c").arg("-w").arg(bin("klef")).args(args);
        for (k, v) in hermetic.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.env("TERM", "dumb");
        if let Some(dir) = hermetic.get_current_dir() {
            cmd.current_dir(dir);
        }
        Terminal::spawn(cmd)
    }
}

impl Terminal {
    fn spawn(mut cmd: Command) -> Self {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("open a pty");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let name = ptsname(&master, Vec::new()).expect("ptsname");
        let slave = File::options()
            .read(true)
            .write(true)
            .open(name.to_str().expect("pty name"))
            .expect("open the pty slave");
        cmd.stdin(Stdio::from(slave.try_clone().expect("dup")))
            .stdout(Stdio::from(slave.try_clone().expect("dup")))
            .stderr(Stdio::from(slave));
        let desc = format!("{cmd:?}");
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {desc}: {e}"));
        // The parent's copies of the slave go with `cmd`, so the master reads EOF (EIO) once
        // the child is gone.
        drop(cmd);
        let master = File::from(master);
        let output = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let mut master = master.try_clone().expect("dup master");
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match master.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => output.lock().expect("lock").extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        // EIO: every slave descriptor is closed.
                        Err(_) => break,
                    }
                }
            })
        };
        Self {
            desc,
            master,
            output,
            seen: 0,
            reader: Some(reader),
            child,
        }
    }

    /// Everything the terminal showed so far, lossily decoded.
    #[must_use]
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().expect("lock")).into_owned()
    }

    /// Whether `text` shows after what earlier calls matched; if so, marks it matched.
    fn find(&mut self, text: &str) -> bool {
        let rest = {
            let out = self.output.lock().expect("lock");
            String::from_utf8_lossy(&out[self.seen.min(out.len())..]).into_owned()
        };
        // Lossy decoding could change lengths; matched text is ASCII-safe in these tests.
        rest.find(text).is_some_and(|at| {
            self.seen += rest[..at + text.len()].len();
            true
        })
    }

    /// Waits until the terminal shows `text` after what earlier calls matched.
    #[track_caller]
    pub fn expect(&mut self, text: &str) -> &mut Self {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if self.find(text) {
                return self;
            }
            let exited = self.child.try_wait().ok().flatten().is_some();
            if exited || Instant::now() > deadline {
                // One last look once everything the child wrote has been read.
                if exited && let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                if self.find(text) {
                    return self;
                }
                panic!(
                    "{}: the terminal never showed {text:?}; it showed:\n{}",
                    self.desc,
                    self.screen()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the terminal stops echoing (a hidden prompt is reading), then types `line`.
    #[track_caller]
    pub fn type_hidden(&mut self, line: &str) -> &mut Self {
        let deadline = Instant::now() + PATIENCE;
        while tcgetattr(&self.master)
            .expect("tcgetattr")
            .local_modes
            .contains(LocalModes::ECHO)
        {
            assert!(
                Instant::now() < deadline,
                "{}: the terminal never turned echo off; it showed:\n{}",
                self.desc,
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.type_line(line)
    }

    /// Types `line` and Enter.
    pub fn type_line(&mut self, line: &str) -> &mut Self {
        self.master
            .write_all(format!("{line}\n").as_bytes())
            .expect("type on the terminal");
        self
    }

    /// Waits for the command to exit; its exit code and everything the terminal showed.
    #[must_use]
    pub fn finish(mut self) -> (i32, String) {
        let status = self.child.wait().expect("wait for klef");
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        (status.code().unwrap_or(-1), self.screen())
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if self.reader.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
