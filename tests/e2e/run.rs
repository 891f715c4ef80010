//! `klef run`: only the environment changes — arguments, exit codes, signals and stdin pass
//! through.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use klef_e2e::{PASSWORD, TestContext};

fn ctx_with_secret() -> TestContext {
    let mut ctx = TestContext::new();
    ctx.init();
    ctx.run_pw(["set", "SECRET_TOKEN", "s3cr3t-value"])
        .success();
    ctx.set_env("KLEF_PASSWORD", PASSWORD);
    ctx
}

#[test]
fn arguments_pass_through_untouched() {
    let ctx = ctx_with_secret();
    let args = ["a b", "", "--env", "-e", "$HOME", "*", "--", "é"];
    let mut full = vec![
        "run",
        "--",
        "sh",
        "-c",
        "for a in \"$@\"; do printf '[%s]' \"$a\"; done",
        "sh",
    ];
    full.extend(args);
    let out = ctx.run(full).success();
    assert_eq!(out.stdout(), "[a b][][--env][-e][$HOME][*][--][é]");
}

#[test]
fn exit_status_is_the_commands() {
    use std::os::unix::process::ExitStatusExt as _;

    let ctx = ctx_with_secret();
    ctx.run(["run", "--", "sh", "-c", "exit 42"]).code_is(42);
    ctx.run(["run", "--", "true"]).success();
    // A command killed by a signal: klef's process is that command, so it ends the same way…
    let out = ctx.run(["run", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(
        out.output.status.signal(),
        Some(15),
        "{:?}",
        out.output.status
    );
    // …and a shell reports 128+N, as for the command itself.
    let klef = ctx.klef(["run", "--", "sh", "-c", "kill -TERM $$"]);
    let line = format!(
        "{} \"$@\"; echo \"status=$?\"",
        klef.get_program().to_string_lossy()
    );
    let mut sh = std::process::Command::new("sh");
    sh.args(["-c", &line, "sh"]).args(klef.get_args());
    for (k, v) in klef.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    if let Some(dir) = klef.get_current_dir() {
        sh.current_dir(dir);
    }
    let out = sh.output().expect("sh");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "status=143\n");
}

#[test]
fn the_command_takes_klefs_place() {
    let ctx = ctx_with_secret();
    // Same process id: whoever started klef (a shell, systemd, a container runtime) signals
    // and waits for the command itself.
    let child = ctx
        .klef(["run", "--", "sh", "-c", "echo $$"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{pid}\n"));
    // Only the standard streams come along: not the vault, not the agent's socket.
    let out = ctx
        .run([
            "run",
            "--",
            "sh",
            "-c",
            "for f in /proc/$$/fd/*; do printf '%s %s\\n' \"${f##*/}\" \"$(readlink \"$f\")\"; done",
        ])
        .success();
    let fds: Vec<String> = out.stdout().lines().map(str::to_owned).collect();
    assert!(
        fds.iter()
            .all(|l| !l.contains("vault") && !l.contains("socket:") && !l.contains("klef-home")),
        "descriptors inherited by the command: {fds:?}"
    );
    for fd in ["0", "1", "2"] {
        assert!(
            fds.iter().any(|l| l.split(' ').next() == Some(fd)),
            "fd {fd} missing: {fds:?}"
        );
    }
}

#[test]
fn missing_command_exits_127() {
    let ctx = ctx_with_secret();
    ctx.run(["run", "--", "definitely-not-a-command-klef"])
        .code_is(127)
        .clean_error(&["s3cr3t-value"])
        .stderr_has("definitely-not-a-command-klef");
}

#[test]
fn secrets_win_unless_preserve_env() {
    let mut ctx = ctx_with_secret();
    ctx.set_env("SECRET_TOKEN", "from-parent");
    let out = ctx
        .run(["run", "--", "sh", "-c", "printf %s \"$SECRET_TOKEN\""])
        .success();
    assert_eq!(out.stdout(), "s3cr3t-value");
    let out = ctx
        .run([
            "run",
            "--preserve-env",
            "--",
            "sh",
            "-c",
            "printf %s \"$SECRET_TOKEN\"",
        ])
        .success();
    assert_eq!(out.stdout(), "from-parent");
    // The rest of the parent environment is kept.
    ctx.set_env("UNRELATED", "kept");
    let out = ctx
        .run(["run", "--", "sh", "-c", "printf %s \"$UNRELATED\""])
        .success();
    assert_eq!(out.stdout(), "kept");
}

#[test]
fn stdin_stays_usable() {
    let ctx = ctx_with_secret();
    let out =
        klef_e2e::run_with_stdin(ctx.klef(["run", "--", "cat"]), Some(b"piped input\n")).success();
    assert_eq!(out.stdout(), "piped input\n");
}

#[test]
fn secret_is_not_in_any_cmdline() {
    // A value no other test uses, set through stdin so it is never in any argv.
    let secret = format!("cmdline-probe-{}", std::process::id());
    let mut ctx = TestContext::new();
    ctx.init();
    ctx.set_env("KLEF_PASSWORD", PASSWORD);
    klef_e2e::run_with_stdin(ctx.klef(["set", "PROBE"]), Some(secret.as_bytes())).success();
    let mut child = ctx
        .klef(["run", "--", "sh", "-c", "echo ready; sleep 5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    assert_eq!(line, "ready\n");
    for entry in std::fs::read_dir("/proc").expect("proc").flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            assert!(
                !String::from_utf8_lossy(&cmdline).contains(&secret),
                "secret in {:?}",
                entry.path()
            );
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn signal_reaches_child(signal: &str, number: i32) {
    let ctx = ctx_with_secret();
    let script = format!(
        "trap 'echo got-{signal}; exit 40' {signal}; echo ready; while :; do sleep 0.05; done"
    );
    let mut child = ctx
        .klef(["run", "--", "sh", "-c", &script])
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
            "klef run did not exit after SIG{signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).expect("read");
    assert_eq!(rest, format!("got-{signal}\n"));
    assert_eq!(
        exit.code(),
        Some(40),
        "the child's exit code after handling SIG{signal}"
    );
}

#[test]
fn sigterm_reaches_child() {
    signal_reaches_child("TERM", 15);
}

#[test]
fn sigint_reaches_child() {
    signal_reaches_child("INT", 2);
}

#[test]
fn any_signal_reaches_child() {
    // Not only the usual four: the command is the process that receives them.
    signal_reaches_child("USR1", 10);
}
