//! `klef run --mask`: the child's stdout and stderr with every secret value replaced by `****`,
//! streamed (forwarded as written, a secret split across writes still masked, binary output
//! byte-exact), with stdin, exit codes and signals passed through as `klef run` does without it.
//! The same masking on a server is in `references.rs` (`run_mask_masks_output`).

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::Stdio;
use std::time::{Duration, Instant};

use klef_e2e::{PASSWORD, TestContext};

const SECRET: &str = "s3cr3t-value";

fn ctx_with_secret() -> TestContext {
    let mut ctx = TestContext::new();
    ctx.init();
    ctx.run_pw(["set", "SECRET_TOKEN", SECRET]).success();
    ctx.set_env("KLEF_PASSWORD", PASSWORD);
    ctx
}

#[test]
fn a_secret_split_across_two_writes_is_masked() {
    let ctx = ctx_with_secret();
    let out = ctx
        .run([
            "run",
            "--mask",
            "--",
            "sh",
            "-c",
            "printf 'a=s3cr'; sleep 0.3; printf '3t-value b=s3cr3t-valu\\n'; printf 's3cr3t' >&2; sleep 0.2; printf -- '-value\\n' >&2",
        ])
        .success();
    assert_eq!(out.stdout(), "a=**** b=s3cr3t-valu\n");
    assert_eq!(out.stderr(), "****\n");
}

#[test]
fn output_is_forwarded_as_it_is_written() {
    let ctx = ctx_with_secret();
    let started = Instant::now();
    let mut child = ctx
        .klef([
            "run",
            "--mask",
            "--",
            "sh",
            "-c",
            "echo \"ready $SECRET_TOKEN\"; printf 'prompt> '; sleep 3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("read");
    assert_eq!(line, "ready ****\n");
    // A prompt without a newline is not held back either.
    let mut prompt = [0u8; 8];
    reader.read_exact(&mut prompt).expect("read");
    assert_eq!(&prompt, b"prompt> ");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "output waited for the command to end"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn binary_output_passes_through_byte_exact() {
    let ctx = ctx_with_secret();
    let mut bytes: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let mut expected = bytes.clone();
    bytes.extend_from_slice(SECRET.as_bytes());
    bytes.extend([0xff, 0x00, 0xfe]);
    expected.extend_from_slice(b"****");
    expected.extend([0xff, 0x00, 0xfe]);
    std::fs::write(ctx.cwd().join("blob.bin"), &bytes).expect("write");
    let out = ctx
        .run(["run", "--mask", "--", "cat", "blob.bin"])
        .success();
    assert!(out.output.stdout == expected, "binary output changed");
}

#[test]
fn a_hundred_megabytes_go_through_the_mask() {
    let ctx = ctx_with_secret();
    // 13-byte lines, every one a secret: the densest output for the matcher.
    let total: usize = 100_000_000;
    let line = format!("{SECRET}\n");
    let started = Instant::now();
    let out = ctx
        .run([
            "run",
            "--mask",
            "--",
            "sh",
            "-c",
            &format!("yes \"$SECRET_TOKEN\" | head -c {total}"),
        ])
        .success();
    let elapsed = started.elapsed();
    let whole = total / line.len();
    let tail = &line.as_bytes()[..total % line.len()];
    let stdout = &out.output.stdout;
    assert_eq!(stdout.len(), whole * "****\n".len() + tail.len());
    assert!(
        stdout
            .chunks("****\n".len())
            .take(whole)
            .all(|c| c == b"****\n"),
        "every line masked"
    );
    assert_eq!(
        &stdout[whole * 5..],
        tail,
        "a partial secret at the end is kept"
    );
    eprintln!("100 MB through klef run --mask (debug build): {elapsed:?}");
}

#[test]
fn stdin_and_exit_codes_pass_through() {
    use std::os::unix::process::ExitStatusExt as _;
    let ctx = ctx_with_secret();
    let out = klef_e2e::run_with_stdin(
        ctx.klef(["run", "--mask", "--", "cat"]),
        Some(format!("piped {SECRET}\n").as_bytes()),
    )
    .success();
    assert_eq!(out.stdout(), "piped ****\n");
    ctx.run(["run", "--mask", "--", "sh", "-c", "exit 42"])
        .code_is(42);
    // Death by a signal is reported as 128+N (klef is the parent here, not the command).
    let out = ctx.run(["run", "--mask", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.code(), 143, "{:?}", out.output.status);
    assert_eq!(out.output.status.signal(), None);
    ctx.run(["run", "--mask", "--", "definitely-not-a-command-klef"])
        .code_is(127)
        .clean_error(&[SECRET]);
}

fn signal_is_forwarded(signal: &str, number: i32) {
    let ctx = ctx_with_secret();
    let script = format!(
        "trap 'echo \"got-{signal} $SECRET_TOKEN\"; exit 40' {signal}; echo ready; while :; do sleep 0.05; done"
    );
    let mut child = ctx
        .klef(["run", "--mask", "--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("read");
    assert_eq!(line, "ready\n");
    let status = std::process::Command::new("kill")
        .arg(format!("-{number}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "klef run --mask did not exit after SIG{signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut rest = String::new();
    reader.read_to_string(&mut rest).expect("read");
    assert_eq!(rest, format!("got-{signal} ****\n"));
    assert_eq!(
        exit.code(),
        Some(40),
        "the child's exit code after SIG{signal}"
    );
}

#[test]
fn sigterm_and_sigint_are_forwarded() {
    signal_is_forwarded("TERM", 15);
    signal_is_forwarded("INT", 2);
}

#[test]
fn the_klef_file_turns_masking_on_and_no_mask_off() {
    let ctx = ctx_with_secret();
    let path = ctx.cwd().join(".klef");
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    file["mask"] = serde_json::Value::Bool(true);
    std::fs::write(&path, file.to_string()).expect("write");
    let script = "printf %s \"$SECRET_TOKEN\"";
    let out = ctx.run(["run", "--", "sh", "-c", script]).success();
    assert_eq!(out.stdout(), "****");
    let out = ctx
        .run(["run", "--no-mask", "--", "sh", "-c", script])
        .success();
    assert_eq!(out.stdout(), SECRET);
    // Other commands still read the file.
    assert_eq!(
        ctx.run(["get", "SECRET_TOKEN", "--plain"])
            .success()
            .stdout(),
        SECRET
    );
}
