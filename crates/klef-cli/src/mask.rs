//! `klef run --mask`: the command runs as a child whose stdout and stderr pass through a
//! streaming [`Masker`], which replaces every secret value of at least [`MIN_LEN`] bytes with
//! `****`.
//!
//! Streaming: what the child writes is forwarded as soon as it arrives, except the last bytes
//! that could still be the start of a secret (at most the longest secret's length minus one),
//! which wait for the next write or the end of the stream. A secret split across two writes is
//! therefore still masked, nothing is added or removed around a mask (lines stay whole), and
//! bytes that are not part of a secret, binary ones included, pass through unchanged. Matching
//! is one Aho-Corasick automaton over all values (leftmost-longest: where one secret contains
//! another, the longer one is masked whole).
//!
//! The child keeps klef's stdin; SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and
//! SIGWINCH sent to klef are forwarded to it (SIGINT and SIGQUIT only when klef is not in the
//! terminal's foreground process group: from a terminal, Ctrl-C already reached the child
//! directly, and a second one would look like an impatient user). klef exits with the child's
//! code, or 128+N when it died of signal N, after forwarding everything it wrote.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use aho_corasick::{AhoCorasick, MatchKind};
use anyhow::{Context as _, Result};
use zeroize::Zeroizing;

use crate::diagnostics::ExitStatus;

/// What replaces a secret.
pub(crate) const MASK: &[u8] = b"****";
/// Values shorter than this are not masked: `1`, `on` or `dev` would turn every occurrence of
/// common text into `****` and hide nothing worth hiding.
pub(crate) const MIN_LEN: usize = 4;
/// Bytes read from the child at a time.
const CHUNK: usize = 64 * 1024;

/// Replaces secret values in a byte stream (see the module documentation).
#[derive(Clone)]
pub(crate) struct Masker {
    matcher: AhoCorasick,
    /// The secrets, sorted and without duplicates, to tell whether bytes could start one.
    sorted: std::sync::Arc<Vec<Zeroizing<Vec<u8>>>>,
    /// Which bytes start a secret.
    first: [bool; 256],
    longest: usize,
    /// Bytes held back: they could be the start of a secret.
    pending: Zeroizing<Vec<u8>>,
}

impl Masker {
    /// A masker for `values` (those shorter than [`MIN_LEN`] are left out); `None` when there
    /// is nothing to mask.
    pub(crate) fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Option<Self>> {
        let mut sorted: Vec<Zeroizing<Vec<u8>>> = values
            .into_iter()
            .filter(|v| v.len() >= MIN_LEN)
            .map(|v| Zeroizing::new(v.as_bytes().to_vec()))
            .collect();
        sorted.sort_unstable_by(|a, b| a.as_slice().cmp(b.as_slice()));
        sorted.dedup_by(|a, b| a.as_slice() == b.as_slice());
        if sorted.is_empty() {
            return Ok(None);
        }
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(sorted.iter().map(|s| s.as_slice()))
            .context("failed to prepare the masking of secret values")?;
        let mut first = [false; 256];
        for s in &sorted {
            first[usize::from(s[0])] = true;
        }
        let longest = sorted.iter().map(|s| s.len()).max().unwrap_or(0);
        Ok(Some(Self {
            matcher,
            sorted: std::sync::Arc::new(sorted),
            first,
            longest,
            pending: Zeroizing::new(Vec::new()),
        }))
    }

    /// Whether `bytes` is the start of a secret longer than `bytes`.
    fn could_grow(&self, bytes: &[u8]) -> bool {
        let from = self.sorted.partition_point(|s| s.as_slice() < bytes);
        self.sorted[from..]
            .iter()
            .take_while(|s| s.starts_with(bytes))
            .any(|s| s.len() > bytes.len())
    }

    /// The first position at or after `from` from which the held bytes could still grow into
    /// a secret (the end when there is none).
    fn partial_from(&self, buf: &[u8], from: usize) -> usize {
        let start = from.max(buf.len().saturating_sub(self.longest.saturating_sub(1)));
        (start..buf.len())
            .find(|&s| self.first[usize::from(buf[s])] && self.could_grow(&buf[s..]))
            .unwrap_or(buf.len())
    }

    /// Appends to `out` what of `input` can be written now, masked.
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(input);
        let buf = self.pending.as_slice();
        let mut written = 0;
        let mut partial = self.partial_from(buf, 0);
        for m in self.matcher.find_iter(buf) {
            if m.start() >= partial {
                break;
            }
            out.extend_from_slice(&buf[written..m.start()]);
            out.extend_from_slice(MASK);
            written = m.end();
            if written > partial {
                partial = self.partial_from(buf, written);
            }
        }
        out.extend_from_slice(&buf[written..partial]);
        self.pending.drain(..partial);
    }

    /// Appends to `out` what is still held, masked: the stream has ended.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        let buf = self.pending.as_slice();
        let mut written = 0;
        for m in self.matcher.find_iter(buf) {
            out.extend_from_slice(&buf[written..m.start()]);
            out.extend_from_slice(MASK);
            written = m.end();
        }
        out.extend_from_slice(&buf[written..]);
        self.pending.clear();
    }
}

/// Copies `from` to `to` through `masker` until the end of `from`; stops early (dropping
/// `from`, so the child gets `EPIPE` as it would writing to a closed pipe) when `to` is closed.
fn pump(mut from: impl Read, mut to: impl Write, mut masker: Masker) {
    let mut chunk = vec![0u8; CHUNK];
    let mut out = Vec::with_capacity(CHUNK + MASK.len());
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        out.clear();
        masker.feed(&chunk[..n], &mut out);
        if !out.is_empty() && to.write_all(&out).and_then(|()| to.flush()).is_err() {
            return;
        }
    }
    out.clear();
    masker.finish(&mut out);
    let _ = to.write_all(&out).and_then(|()| to.flush());
}

/// Runs `cmd` as a child with its stdout and stderr masked, forwarding signals, and returns its
/// exit status (128+N for signal N). A failure to start it is returned as the `io::Error`.
pub(crate) async fn run_masked(
    mut cmd: Command,
    masker: Masker,
) -> std::result::Result<ExitStatus, std::io::Error> {
    use tokio::signal::unix::{SignalKind, signal};

    cmd.stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Handlers first: a signal that arrives while the child starts is forwarded, not fatal.
    let kinds = [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
        SignalKind::quit(),
        SignalKind::user_defined1(),
        SignalKind::user_defined2(),
        SignalKind::window_change(),
    ];
    let mut streams = Vec::with_capacity(kinds.len());
    for kind in kinds {
        streams.push((kind, signal(kind)?));
    }
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(std::io::Error::other(
            "the child's output pipes are missing",
        ));
    };
    let pumps = [
        {
            let m = masker.clone();
            std::thread::spawn(move || pump(stdout, std::io::stdout(), m))
        },
        std::thread::spawn(move || pump(stderr, std::io::stderr(), masker)),
    ];
    let mut waited = tokio::task::spawn_blocking(move || child.wait());
    let status = loop {
        let received = next_signal(&mut streams);
        tokio::select! {
            status = &mut waited => break status.map_err(std::io::Error::other)??,
            kind = received => forward(pid, kind),
        }
    };
    for p in pumps {
        let _ = p.join();
    }
    Ok(exit_status(status))
}

/// The next signal received on any of `streams`.
async fn next_signal(
    streams: &mut [(tokio::signal::unix::SignalKind, tokio::signal::unix::Signal)],
) -> tokio::signal::unix::SignalKind {
    std::future::poll_fn(|cx| {
        for (kind, s) in streams.iter_mut() {
            if let std::task::Poll::Ready(Some(())) = s.poll_recv(cx) {
                return std::task::Poll::Ready(*kind);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Sends `kind` on to the child `pid` (see the module documentation for SIGINT and SIGQUIT).
fn forward(pid: u32, kind: tokio::signal::unix::SignalKind) {
    use rustix::process::{Pid, Signal, kill_process};
    let raw = kind.as_raw_value();
    let Some(sig) = Signal::from_named_raw(raw) else {
        return;
    };
    if matches!(sig, Signal::INT | Signal::QUIT) && in_terminal_foreground() {
        return;
    }
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    tracing::debug!(signal = raw, "forwarding a signal to the command");
    let _ = kill_process(pid, sig);
}

/// Whether klef is in the foreground process group of its controlling terminal (a terminal's
/// Ctrl-C then reaches the child, which shares klef's group, by itself).
fn in_terminal_foreground() -> bool {
    let Ok(tty) = fs_err::File::open("/dev/tty") else {
        return false;
    };
    rustix::termios::tcgetpgrp(&tty).is_ok_and(|g| g == rustix::process::getpgrp())
}

/// The child's status as klef's exit status: its code, or 128+N for signal N.
fn exit_status(status: std::process::ExitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitStatus::from_code(code),
        (None, Some(sig)) => ExitStatus::from_code(128 + sig),
        (None, None) => ExitStatus::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn masker(values: &[&str]) -> Masker {
        Masker::new(values.iter().copied()).unwrap().unwrap()
    }

    /// Feeds `chunks` one by one, checking that nothing is held back that could not be a
    /// secret's start, and returns the whole output.
    fn stream(m: &mut Masker, chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in chunks {
            m.feed(c, &mut out);
            assert!(m.pending.len() < m.longest.max(1), "held back too much");
        }
        m.finish(&mut out);
        out
    }

    fn mask_at_once(values: &[&str], input: &[u8]) -> Vec<u8> {
        stream(&mut masker(values), &[input])
    }

    #[test]
    fn masks_whole_values_and_keeps_everything_else() {
        assert_eq!(
            mask_at_once(
                &["s3cr3t-value"],
                b"token=s3cr3t-value\nnext s3cr3t-valu line\n"
            ),
            b"token=****\nnext s3cr3t-valu line\n"
        );
        // The longer of two overlapping secrets is masked whole.
        assert_eq!(
            mask_at_once(&["abcd", "abcdefgh"], b"xabcdefghy abcdz"),
            b"x****y ****z"
        );
        // Short values are not masked.
        assert!(Masker::new(["abc", "on"]).unwrap().is_none());
    }

    #[test]
    fn a_secret_split_across_writes_is_masked() {
        let mut m = masker(&["s3cr3t-value"]);
        let mut out = Vec::new();
        m.feed(b"before s3cr", &mut out);
        // Everything before the possible start is written at once.
        assert_eq!(out, b"before ");
        m.feed(b"3t-val", &mut out);
        m.feed(b"ue after\n", &mut out);
        assert_eq!(out, b"before **** after\n");
        // Bytes that turn out not to be the secret are written as they were.
        m.feed(b"s3cr3t-valX", &mut out);
        m.finish(&mut out);
        assert_eq!(out, b"before **** after\ns3cr3t-valX");
    }

    #[test]
    fn a_shorter_secret_waits_while_a_longer_one_may_follow() {
        let mut m = masker(&["abcd", "abcdefgh", "cdef"]);
        let mut out = Vec::new();
        m.feed(b"..abcdef", &mut out);
        assert_eq!(out, b"..");
        m.feed(b"gh..", &mut out);
        m.finish(&mut out);
        assert_eq!(out, b"..****..");
    }

    #[test]
    fn binary_output_passes_through() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        assert_eq!(mask_at_once(&["\u{7f}secret"], &bytes), bytes);
    }

    proptest! {
        /// However the output is cut into writes, the result is the same as masking it at once.
        #[test]
        fn chunking_does_not_change_the_result(
            secrets in prop::collection::vec("[ab]{4,7}", 1..4),
            input in prop::collection::vec(prop::sample::select(b"abc\n".to_vec()), 0..200),
            cuts in prop::collection::vec(0usize..200, 0..10),
        ) {
            let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
            let whole = mask_at_once(&refs, &input);
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= input.len()).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut at = 0;
            for c in cuts {
                chunks.push(&input[at..c]);
                at = c;
            }
            chunks.push(&input[at..]);
            let mut m = masker(&refs);
            prop_assert_eq!(stream(&mut m, &chunks), whole.clone());
            // And no secret survives.
            for s in &secrets {
                let found = whole.windows(s.len()).any(|w| w == s.as_bytes());
                prop_assert!(!found, "{} left in {:?}", s, String::from_utf8_lossy(&whole));
            }
        }
    }
}
