//! Split API-key secrets (DESIGN.md §9.4, docs/decisions/0016-split-api-key-secrets.md) with the
//! real binaries: every request the CI `klef` makes goes through a recording proxy, so the test
//! sees exactly what a header-logging proxy (or the server) sees. What it records, and what the
//! server stores, authenticate the key but open nothing: the test plays that attacker with the
//! logged bearer credential and the server's database, and fails to unwrap the grant the real
//! token opens. The CI flow still reads, runs and writes end to end; a token of the first format
//! is refused before anything is sent, and a key row from before the split is refused by the
//! server with the advice to re-create the key.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex};

use klef_core::crypto::token::{ApiToken, PresentedBearer};
use klef_core::crypto::{Aad, PrivateKey, WrappedKey, unwrap_key};
use klef_core::ids::EnvironmentId;
use klef_e2e::{PASSWORD, Server, TestContext};

const OWNER: &str = "owner@example.com";

/// A TCP proxy in front of `upstream` that records every byte clients send through it.
struct RecordingProxy {
    url: String,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl RecordingProxy {
    fn start(upstream: &str) -> Self {
        let upstream = upstream
            .strip_prefix("http://")
            .expect("an http:// server")
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&sent);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    return;
                };
                let (c2, s2) = (
                    client.try_clone().expect("clone client"),
                    server.try_clone().expect("clone server"),
                );
                let log = Arc::clone(&log);
                std::thread::spawn(move || pipe(client, server, Some(&log)));
                std::thread::spawn(move || pipe(s2, c2, None));
            }
        });
        Self { url, sent }
    }

    /// Everything clients sent so far, as text.
    fn recorded(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().expect("proxy log")).into_owned()
    }

    /// The `Authorization` values clients sent so far.
    fn bearers(&self) -> Vec<String> {
        self.recorded()
            .lines()
            .filter_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("authorization")
                    .then(|| value.trim().to_owned())
            })
            .collect()
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, log: Option<&Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(log) = log {
            log.lock().expect("proxy log").extend_from_slice(&buf[..n]);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// The owner on a fresh `SQLite` server: project `my-app` with a value in production.
fn owner() -> TestContext {
    let mut ctx = TestContext::new();
    ctx.server = Some(Server::sqlite(&ctx.root().join("server")));
    let url = ctx.server.as_ref().expect("a server").url.clone();
    ctx.signup(&url, OWNER);
    ctx.init();
    ctx.run_pw(["set", "DB", "prod-value", "-e", "production"])
        .success();
    ctx
}

fn sqlite(ctx: &TestContext, sql: &str) -> String {
    let db = ctx
        .server
        .as_ref()
        .and_then(|s| s.sqlite_path())
        .expect("a SQLite server");
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("run sqlite3");
    assert!(
        out.status.success(),
        "sqlite3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Lower-case Crockford base32 of 32 bytes (52 symbols, 4 zero bits at the end), decoded.
fn base32_32(text: &str) -> [u8; 32] {
    const ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
    assert_eq!(text.len(), 52, "{text}");
    let mut bits: u128 = 0;
    let mut n = 0;
    let mut out = Vec::with_capacity(32);
    for c in text.bytes() {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .expect("a base32 symbol");
        bits = (bits << 5) | v as u128;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push(u8::try_from((bits >> n) & 0xff).expect("a byte"));
        }
    }
    out.try_into().expect("32 bytes")
}

fn create_readwrite(owner: &TestContext) -> String {
    let out = owner
        .run_pw([
            "keys",
            "create",
            "--type",
            "system",
            "--label",
            "deployer",
            "--scope",
            "my-app:production",
            "--permission",
            "readwrite",
        ])
        .success()
        .stdout();
    out.trim_end_matches('\n').to_owned()
}

#[test]
fn the_server_and_a_logging_proxy_get_a_credential_that_opens_nothing() {
    let owner = owner();
    let server_url = owner.server.as_ref().expect("a server").url.clone();
    let key = create_readwrite(&owner);
    let token = ApiToken::parse(&key).expect("keys create prints a token of this format");
    let (prefix, secret_field) = key.rsplit_once('_').expect("klef_sys_<id>_<secret>");
    assert!(
        prefix.starts_with("klef_sys_") && secret_field.starts_with('2'),
        "{key}"
    );

    // (b) CI through the proxy: get, run, set with the readwrite key; the owner reads it back.
    let proxy = RecordingProxy::start(&server_url);
    let mut ci = TestContext::new();
    ci.set_env("KLEF_TOKEN", &key);
    ci.set_env("KLEF_SERVER", &proxy.url);
    assert_eq!(ci.run(["get", "DB"]).success().stdout(), "prod-value\n");
    let ran = ci
        .run(["run", "--", "sh", "-c", "printf '%s' \"$DB\""])
        .success()
        .stdout();
    assert_eq!(ran, "prod-value");
    ci.run(["set", "FROM_CI=built-7"]).success();
    assert_eq!(
        owner
            .run_pw(["get", "FROM_CI", "-e", "production"])
            .success()
            .stdout(),
        "built-7\n"
    );

    // (a) What the proxy saw: only the bearer credential, never the token or its secret.
    let recorded = proxy.recorded();
    assert!(
        !recorded.contains(&secret_field[1..]),
        "the secret crossed the wire"
    );
    let bearers = proxy.bearers();
    assert!(!bearers.is_empty(), "no Authorization header recorded");
    let id_part = &prefix["klef_sys_".len()..];
    for b in &bearers {
        let b = b.strip_prefix("Bearer ").expect("a bearer token");
        assert!(b.starts_with(&format!("klef_bearer_sys_{id_part}_")), "{b}");
    }
    let logged = bearers[0].strip_prefix("Bearer ").expect("a bearer token");
    let credential = base32_32(&logged[logged.len() - 52..]);

    // What the server stored: SHA-256 of the bearer credential, not of the secret; the key's
    // derived public keys; the format of split secrets.
    let key_id = token.id().to_string();
    let row = sqlite(
        &owner,
        &format!(
            "SELECT secret_hash, format, hex(public_key), hex(signing_key) FROM api_keys \
             WHERE id = '{key_id}'"
        ),
    );
    let fields: Vec<&str> = row.split('|').collect();
    assert_eq!(fields.len(), 4, "{row}");
    let stored_hash = fields[0];
    assert_eq!(stored_hash, token.bearer_hash());
    assert_eq!(fields[1], "split");
    let (real_private, real_public) = token.keypair().expect("a system key pair");
    assert_eq!(fields[2].to_ascii_lowercase(), hex(&real_public.0));
    assert_eq!(
        fields[3].to_ascii_lowercase(),
        hex(&token.signing_public_key().expect("a signing key"))
    );
    let logged_presented = PresentedBearer::parse(logged).expect("the logged credential");
    assert!(logged_presented.matches_hash(stored_hash));
    // SHA-256 of the secret itself (the first format's hash) is not what is stored.
    let secret_as_credential =
        PresentedBearer::parse(&format!("klef_bearer_sys_{id_part}_{}", &secret_field[1..]))
            .expect("the secret in a credential's shape");
    assert!(!secret_as_credential.matches_hash(stored_hash));
    assert!(!row.contains(&secret_field[1..]));

    // The attacker's try: open the grant the server holds with what it was sent.
    let grant = sqlite(
        &owner,
        &format!(
            "SELECT environment_id, hex(wrapped_key) FROM environment_grants \
             WHERE grantee_kind = 'api_key' AND grantee_id = '{key_id}'"
        ),
    );
    let (env, wrapped_hex) = grant.split_once('|').expect("one grant");
    let env = EnvironmentId::from_str(env).expect("an environment id");
    let wrapped = WrappedKey::from_bytes(unhex(wrapped_hex));
    let aad = Aad::EnvironmentKey(&env);
    // The credential as an X25519 private key, and as if it were a token's secret.
    let as_scalar = PrivateKey::from_bytes(Box::new(credential));
    assert!(unwrap_key(&as_scalar, &wrapped, &aad, "grant").is_err());
    let as_secret = ApiToken::parse(&format!("{prefix}_2{}", &logged[logged.len() - 52..]))
        .expect("the credential in a token's shape");
    let (derived, _) = as_secret.keypair().expect("a key pair");
    assert!(unwrap_key(&derived, &wrapped, &aad, "grant").is_err());
    // The token itself opens it (the check above is not vacuous).
    assert!(unwrap_key(&real_private, &wrapped, &aad, "grant").is_ok());
}

#[test]
fn old_format_tokens_and_rows_are_refused_with_the_advice_to_re_create() {
    let owner = owner();
    let server_url = owner.server.as_ref().expect("a server").url.clone();
    let key = create_readwrite(&owner);
    let (prefix, secret_field) = key.rsplit_once('_').expect("klef_sys_<id>_<secret>");

    // A token of the first format (no format symbol): refused here, nothing is sent.
    let old = format!("{prefix}_{}", &secret_field[1..]);
    let proxy = RecordingProxy::start(&server_url);
    let mut ci = TestContext::new();
    ci.set_env("KLEF_TOKEN", &old);
    ci.set_env("KLEF_SERVER", &proxy.url);
    ci.run(["get", "DB"])
        .code_is(3)
        .stderr_has("old format")
        .stderr_has("re-create it with `klef keys create`")
        .stderr_has("rotate the environments it could read")
        .clean_error(&[&old, &secret_field[1..], PASSWORD]);
    assert!(
        !proxy.recorded().contains(&secret_field[1..]),
        "an old-format secret was sent"
    );

    // A row from before the split (migration 0005 marks every older row so): the server
    // refuses the key with its own code, which the CLI turns into the advice.
    let id = ApiToken::parse(&key).expect("token").id().to_string();
    sqlite(
        &owner,
        &format!("UPDATE api_keys SET format = 'whole-secret' WHERE id = '{id}'"),
    );
    ci.set_env("KLEF_TOKEN", &key);
    let refused = ci
        .run(["get", "DB"])
        .code_is(3)
        .stderr_has("re-create it with `klef keys create`")
        .stderr_has("rotate the environments it could read")
        .clean_error(&[&key, PASSWORD]);
    // This build's words, said once (not the server's message relayed).
    assert_eq!(
        refused.stderr().matches("klef keys create").count(),
        1,
        "{}",
        refused.stderr()
    );
    assert!(
        !refused.stderr().contains("this klef sent"),
        "{}",
        refused.stderr()
    );
    // Nothing more is wrapped to it: keys put is refused.
    owner
        .run_pw([
            "keys",
            "put",
            prefix,
            "--scope",
            "my-app:*",
            "--permission",
            "read",
        ])
        .code_is(1)
        .stderr_has("re-create it with `klef keys create`");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}
