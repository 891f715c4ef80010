//! The server is an adversary (issue #18): whatever a server answers (numbers out of range,
//! missing fields, wrong types, huge or escape-laden strings, error statuses), no `klef` command
//! panics, every exit code is a documented one, and no terminal escape reaches stderr.
//!
//! A recording proxy in front of a real `klef-server` first captures honest answers to the
//! commands below; then, for each proptest case, a fake server replays them mutated from the
//! case's seed while the real `klef` binary runs every command again.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use klef_e2e::{PASSWORD, Server, TestContext};
use proptest::prelude::*;
use serde_json::{Value, json};

/// One recorded answer: status and body.
#[derive(Clone)]
struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// What the fake server does with a request.
enum Mode {
    /// Forward to the real server and keep its answer by route shape.
    Record(String),
    /// Answer the recorded answer, mutated by a generator seeded with the value.
    Replay(u64),
}

struct Fake {
    mode: Mutex<Mode>,
    recorded: Mutex<HashMap<String, Answer>>,
    requests: Mutex<u64>,
}

/// `GET /v1/projects/0f8f…/environments?x=1` → `GET /v1/projects/{id}/environments`.
fn shape(method: &str, path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let segs: Vec<String> = path
        .split('/')
        .map(|s| {
            if s.len() >= 16 && s.chars().any(|c| c.is_ascii_digit()) {
                "{id}".to_owned()
            } else {
                s.to_owned()
            }
        })
        .collect();
    format!("{method} {}", segs.join("/"))
}

/// Reads one HTTP/1.1 request: its head lines and body.
fn read_request(stream: &mut TcpStream) -> Option<(Vec<String>, Vec<u8>)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            break;
        }
        head.push(line);
    }
    let len = head
        .iter()
        .filter_map(|h| h.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// Forwards a request to `upstream` (`127.0.0.1:port`) and returns its answer.
fn forward(upstream: &str, head: &[String], body: &[u8]) -> Answer {
    let mut up = TcpStream::connect(upstream).expect("connect to the real server");
    let mut req = String::new();
    for h in head {
        let lower = h.to_ascii_lowercase();
        if !lower.starts_with("connection:") {
            req.push_str(h);
            req.push_str("\r\n");
        }
    }
    req.push_str("connection: close\r\n\r\n");
    up.write_all(req.as_bytes()).expect("write upstream");
    up.write_all(body).expect("write upstream");
    let mut raw = Vec::new();
    up.read_to_end(&mut raw).expect("read upstream");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Answer { status, body }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&raw[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 2 + size + 2..];
    }
    out
}

/// A small deterministic generator (xorshift64*), seeded by proptest.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A hostile number: out of every range a field might have.
fn number(rng: &mut Rng) -> Value {
    match rng.below(9) {
        0 => json!(i64::MAX),
        1 => json!(i64::MIN),
        2 => json!(u64::MAX),
        3 => json!(-1),
        4 => json!(0),
        5 => json!(1e308),
        6 => json!(9_007_199_254_740_993_u64),
        7 => json!(253_402_300_800_000_i64),
        _ => json!(rng.next()),
    }
}

/// A hostile string: huge, empty, with terminal escapes or newlines.
fn string(rng: &mut Rng) -> Value {
    match rng.below(5) {
        0 => json!("x".repeat(1 << 20)),
        1 => json!(""),
        2 => json!("\u{1b}[2J\u{1b}]0;owned\u{7}evil"),
        3 => json!("line one\nline two\r\u{0}"),
        _ => json!("ünïcødé ✓"),
    }
}

/// Mutates `v` in place: each value is, with probability 1/`rate`, replaced by a hostile one of
/// another or the same type; object fields may disappear, arrays may grow. The account's KDF
/// parameters are left alone: their bounds are checked by `validate_kdf_params` (tested in
/// klef-core), and a legal 4 GiB Argon2 run would only slow this shared machine down.
fn mutate(v: &mut Value, rng: &mut Rng, rate: u64) {
    if rng.below(rate) == 0 {
        *v = match rng.below(6) {
            0 => number(rng),
            1 => string(rng),
            2 => Value::Null,
            3 => json!(true),
            4 => json!([]),
            _ => json!({}),
        };
        return;
    }
    match v {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                if k == "kdf" {
                    continue;
                }
                if rng.below(rate * 2) == 0 {
                    map.remove(&k);
                } else if let Some(child) = map.get_mut(&k) {
                    mutate(child, rng, rate);
                }
            }
        }
        Value::Array(items) => {
            if let Some(first) = items.first().cloned()
                && rng.below(rate * 2) == 0
            {
                items.extend(std::iter::repeat_n(first, 2000));
            }
            for item in items.iter_mut().take(50) {
                mutate(item, rng, rate);
            }
        }
        Value::Number(_) if rng.below(2) == 0 => *v = number(rng),
        Value::String(_) if rng.below(3) == 0 => *v = string(rng),
        _ => {}
    }
}

/// The mutated form of `answer`; sometimes an error status with a hostile error body instead.
fn hostile(answer: Option<&Answer>, rng: &mut Rng) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut headers = Vec::new();
    if answer.is_none() || rng.below(6) == 0 {
        let status = [400, 401, 403, 404, 409, 429, 500, 503, 418][rng.below(9) as usize];
        let mut body = json!({"error": {"code": "rate_limited", "message": "no",
            "retry_after_secs": 30, "conflict": {"name": "K", "expected": 1, "actual": 2, "changed_by": "x"}}});
        mutate(&mut body, rng, 3);
        if rng.below(2) == 0 {
            headers.push(("retry-after".to_owned(), rng.next().to_string()));
        }
        let body = if rng.below(4) == 0 {
            b"<html>not klef</html>".to_vec()
        } else {
            body.to_string().into_bytes()
        };
        return (status, headers, body);
    }
    let answer = answer.expect("checked above");
    let Ok(mut v) = serde_json::from_slice::<Value>(&answer.body) else {
        return (answer.status, headers, answer.body.clone());
    };
    let rate = 2 + rng.below(8);
    mutate(&mut v, rng, rate);
    (answer.status, headers, v.to_string().into_bytes())
}

fn serve(fake: &Arc<Fake>, mut stream: TcpStream) {
    let Some((head, body)) = read_request(&mut stream) else {
        return;
    };
    let mut parts = head
        .first()
        .map(|l| l.split_whitespace())
        .into_iter()
        .flatten();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let key = shape(method, path);
    let seed = match &*fake.mode.lock().expect("mode") {
        Mode::Record(upstream) => {
            let answer = forward(upstream, &head, &body);
            let (status, bytes) = (answer.status, answer.body.clone());
            fake.recorded.lock().expect("recorded").insert(key, answer);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                bytes.len()
            );
            let _ = stream.write_all(&bytes);
            return;
        }
        Mode::Replay(seed) => *seed,
    };
    let n = {
        let mut n = fake.requests.lock().expect("count");
        *n += 1;
        *n
    };
    let mut rng = Rng(seed.wrapping_mul(31).wrapping_add(n) | 1);
    let recorded = fake.recorded.lock().expect("recorded").get(&key).cloned();
    let (status, headers, bytes) = hostile(recorded.as_ref(), &mut rng);
    let mut out = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        bytes.len()
    );
    for (k, v) in headers {
        out.push_str(&k);
        out.push_str(": ");
        out.push_str(&v);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.write_all(&bytes);
}

/// Starts the fake server; returns it and its URL.
fn start(upstream: &str) -> (Arc<Fake>, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let fake = Arc::new(Fake {
        mode: Mutex::new(Mode::Record(upstream.to_owned())),
        recorded: Mutex::new(HashMap::new()),
        requests: Mutex::new(0),
    });
    let f = Arc::clone(&fake);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let f = Arc::clone(&f);
            std::thread::spawn(move || serve(&f, stream));
        }
    });
    (fake, url)
}

/// The commands every case runs (those with `true` read the password from stdin).
const COMMANDS: &[(&[&str], bool)] = &[
    (&["whoami"], false),
    (&["whoami", "--json"], false),
    (&["projects", "list"], false),
    (&["-p", "my-app", "list"], false),
    (&["-p", "my-app", "list", "--reveal", "--json"], true),
    (&["-p", "my-app", "get", "DB"], true),
    (&["-p", "my-app", "pull", "-o", "-"], true),
    (&["-p", "my-app", "history", "DB"], false),
    (&["keys", "list"], false),
    (&["workspace", "members"], false),
    (&["audit"], false),
];

fn run_all(client: &TestContext) -> Vec<(String, i32, String)> {
    COMMANDS
        .iter()
        .map(|(args, pw)| {
            let run = if *pw {
                client.run_pw(*args)
            } else {
                client.run(*args)
            };
            (args.join(" "), run.code(), run.stderr())
        })
        .collect()
}

#[test]
fn no_server_answer_makes_klef_panic() {
    let mut owner = TestContext::new();
    owner.server = Some(Server::sqlite(&owner.root().join("server")));
    let real = owner.server.as_ref().expect("server").url.clone();
    owner.signup(&real, "owner@example.com");
    owner.run_pw(["workspace", "create", "Acme"]).success();
    owner.run(["workspace", "use", "Acme"]).success();
    owner.init();
    owner.run_pw(["set", "DB", "dev-value"]).success();
    let key = owner
        .run_pw(["keys", "create", "--type", "user", "--label", "fuzz"])
        .success()
        .stdout()
        .trim()
        .to_owned();

    let (fake, url) = start(real.trim_start_matches("http://"));
    // The client signs in through the fake server with the owner's user key, and works outside
    // any `.klef` (`-p my-app`), so every request goes to the fake server.
    let client = TestContext::new();
    client
        .run(["login", "--server", &url, "--key", &key])
        .success();
    client.run(["workspace", "use", "Acme"]).success();
    for (cmd, code, stderr) in run_all(&client) {
        assert_eq!(code, 0, "honest answers: klef {cmd} failed:\n{stderr}");
    }
    let _ = PASSWORD;

    let cases = std::env::var("KLEF_ADVERSARY_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&any::<u64>(), |seed| {
            *fake.mode.lock().expect("mode") = Mode::Replay(seed);
            for (cmd, code, stderr) in run_all(&client) {
                prop_assert!(
                    !stderr.contains("panicked") && code != 101,
                    "seed {seed}: klef {cmd} panicked:\n{stderr}"
                );
                prop_assert!(
                    (0..=7).contains(&code),
                    "seed {seed}: klef {cmd} exited {code}:\n{stderr}"
                );
                prop_assert!(
                    !stderr.contains('\u{1b}'),
                    "seed {seed}: klef {cmd} passed a terminal escape to stderr:\n{stderr:?}"
                );
                if code != 0 {
                    prop_assert!(
                        stderr.lines().any(|l| l.starts_with("error: ")),
                        "seed {seed}: klef {cmd} failed without an error line:\n{stderr}"
                    );
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
