//! A delaying TCP proxy for the remote section of `cargo xtask bench`: a server "50 ms away"
//! on a machine whose kernel has no netem qdisc.
//!
//! It listens on `127.0.0.1:0` and connects each accepted connection to the upstream. Each
//! direction is forwarded with a fixed delay as pure latency: a reader thread stamps every chunk
//! with its arrival time and a writer thread writes it at arrival + delay, in order, with no
//! throughput cap. With 25 ms each way, a request and its answer cost 50 ms more than on
//! loopback.
//!
//! What it does not delay: the TCP handshake between the client and the proxy is local, so a
//! new connection costs no extra round trip here, where a real network adds one (two with TLS).
//! The connection count is reported beside the round trips for that reason.
//!
//! It counts connections and request "turns": a client→server burst that starts a connection or
//! follows server→client data. Turns that start within one one-way delay of each other belong to
//! one round (parallel requests); [`Counters::rounds`] is the number of round trips a command
//! waited for, measured rather than assumed.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

/// What the proxy saw since it started or was last reset.
#[derive(Debug, Default, Clone)]
pub(super) struct Counters {
    /// Connections accepted.
    pub(super) connections: u64,
    /// When each request turn started (client→server data after server→client data, or the
    /// first data of a connection).
    pub(super) turns: Vec<Instant>,
}

impl Counters {
    /// Sequential round trips: turns grouped into rounds, a new round starting when a turn
    /// begins more than `window` after the first turn of the current round.
    pub(super) fn rounds(&self, window: Duration) -> usize {
        let mut turns = self.turns.clone();
        turns.sort();
        let mut rounds = 0;
        let mut start: Option<Instant> = None;
        for t in turns {
            if start.is_none_or(|s| t.duration_since(s) > window) {
                rounds += 1;
                start = Some(t);
            }
        }
        rounds
    }
}

/// A running proxy; the listener thread lives as long as the process (the bench is short).
pub(super) struct Proxy {
    pub(super) addr: SocketAddr,
    counters: Arc<Mutex<Counters>>,
}

impl Proxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `upstream`, each direction held
    /// `delay`.
    pub(super) fn start(upstream: SocketAddr, delay: Duration) -> Result<Self> {
        let listener =
            TcpListener::bind("127.0.0.1:0").context("failed to bind the delaying proxy")?;
        let addr = listener
            .local_addr()
            .context("failed to read the proxy's address")?;
        let counters = Arc::new(Mutex::new(Counters::default()));
        let shared = Arc::clone(&counters);
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let counters = Arc::clone(&shared);
                thread::spawn(move || {
                    let _ = connection(client, upstream, delay, &counters);
                });
            }
        });
        Ok(Self { addr, counters })
    }

    /// Takes the counters and starts again from zero.
    pub(super) fn take(&self) -> Counters {
        std::mem::take(&mut *self.counters.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// One proxied connection: two delayed pipes, one per direction.
fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    delay: Duration,
    counters: &Arc<Mutex<Counters>>,
) -> Result<()> {
    counters
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .connections += 1;
    let server = TcpStream::connect(upstream).context("failed to reach the upstream")?;
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    // `true` while the server spoke last (or nobody has yet): the next client data is a turn.
    let server_spoke = Arc::new(AtomicBool::new(true));
    let up = {
        let (from, to) = (client.try_clone()?, server.try_clone()?);
        let (spoke, counters) = (Arc::clone(&server_spoke), Arc::clone(counters));
        thread::spawn(move || {
            pipe(from, to, delay, |at| {
                if spoke.swap(false, Ordering::SeqCst) {
                    counters
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .turns
                        .push(at);
                }
            });
        })
    };
    pipe(server, client, delay, |_| {
        server_spoke.store(true, Ordering::SeqCst);
    });
    let _ = up.join();
    Ok(())
}

/// Reads `from` and writes each chunk to `to` at its arrival time + `delay`, in order; `seen` is
/// told each chunk's arrival. Closes `to`'s write side when `from` ends.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration, mut seen: impl FnMut(Instant)) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = thread::spawn(move || {
        for (arrived, chunk) in rx {
            let due = arrived + delay;
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let at = Instant::now();
                seen(at);
                if tx.send((at, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.join();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback: writes back whatever it reads.
    fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for s in listener.incoming().flatten() {
                thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let mut w = s;
                    let _ = std::io::copy(&mut r, &mut w);
                });
            }
        });
        addr
    }

    #[test]
    fn a_round_trip_takes_twice_the_delay_and_is_counted() {
        let proxy = Proxy::start(echo(), Duration::from_millis(25)).unwrap();
        let mut s = TcpStream::connect(proxy.addr).unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = [0u8; 4];
        for _ in 0..3 {
            let start = Instant::now();
            s.write_all(b"ping").unwrap();
            s.read_exact(&mut buf).unwrap();
            assert!(start.elapsed() >= Duration::from_millis(50));
            assert_eq!(&buf, b"ping");
        }
        drop(s);
        let c = proxy.take();
        assert_eq!(c.connections, 1);
        assert_eq!(c.turns.len(), 3);
        assert_eq!(c.rounds(Duration::from_millis(25)), 3);
        assert_eq!(proxy.take().connections, 0);
    }

    #[test]
    fn bytes_arrive_intact_and_in_order() {
        let proxy = Proxy::start(echo(), Duration::from_millis(5)).unwrap();
        let s = TcpStream::connect(proxy.addr).unwrap();
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = s.try_clone().unwrap();
        let sent = data.clone();
        let writer = thread::spawn(move || {
            for chunk in sent.chunks(7919) {
                w.write_all(chunk).unwrap();
            }
            w.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = Vec::new();
        let mut r = s;
        r.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert_eq!(got, data);
    }

    #[test]
    fn parallel_requests_are_one_round() {
        let proxy = Proxy::start(echo(), Duration::from_millis(25)).unwrap();
        let clients: Vec<_> = (0..3)
            .map(|_| {
                let addr = proxy.addr;
                thread::spawn(move || {
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.write_all(b"x").unwrap();
                    let mut b = [0u8; 1];
                    s.read_exact(&mut b).unwrap();
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        let c = proxy.take();
        assert_eq!(c.connections, 3);
        assert_eq!(c.turns.len(), 3);
        assert_eq!(c.rounds(Duration::from_millis(25)), 1);
    }
}
