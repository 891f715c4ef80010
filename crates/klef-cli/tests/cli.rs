//! Runs the real `klef` binary in a hermetic environment (temporary `HOME`, `KLEF_HOME` and
//! working directory, no inherited `KLEF_*`/`XDG_*`, `KLEF_NO_AGENT=1`) through the local-vault
//! walkthrough, and checks `--help`, exit codes and error rendering.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use klef_testkit::Hermetic;

const PASSWORD: &str = "a long and unguessable test password";

struct Env {
    root: tempfile::TempDir,
    cwd: PathBuf,
}

impl Env {
    fn new() -> Self {
        let root = tempfile::Builder::new()
            .prefix("klef-cli-test-")
            .tempdir()
            .expect("tempdir");
        let cwd = root.path().join("demo-app");
        std::fs::create_dir_all(&cwd).expect("mkdir");
        std::fs::create_dir_all(root.path().join("home")).expect("mkdir");
        Self { root, cwd }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_klef"));
        Hermetic::new(self.root.path().join("home")).apply(&mut cmd);
        cmd.args(args)
            .current_dir(&self.cwd)
            .env("KLEF_HOME", self.root.path().join("klef-home"))
            .env("KLEF_NO_AGENT", "1");
        cmd
    }

    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        run(self.cmd(args), stdin)
    }

    /// With the password in `KLEF_PASSWORD`.
    fn run_pw(&self, args: &[&str]) -> Output {
        let mut cmd = self.cmd(args);
        cmd.env("KLEF_PASSWORD", PASSWORD);
        run(cmd, None)
    }
}

fn run(mut cmd: Command, stdin: Option<&[u8]>) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn klef");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    child.wait_with_output().expect("wait")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(o: Output) -> Output {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        out(&o),
        err(&o)
    );
    o
}

#[track_caller]
fn fails_with(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        out(o),
        err(o)
    );
    let stderr = err(o);
    assert!(
        stderr.starts_with("error: "),
        "first line is `error: …`: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "password leaked: {stderr}");
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

fn init(env: &Env) -> Output {
    let line = format!("{PASSWORD}\n");
    ok(env.run(
        &[
            "init",
            "--password-stdin",
            "--recovery-file",
            "../recovery.txt",
        ],
        Some(line.as_bytes()),
    ))
}

#[test]
fn walkthrough() {
    let env = Env::new();

    // init: account + project named after the directory, .klef, recovery code once.
    let o = init(&env);
    let stderr = err(&o);
    assert!(stderr.contains("write this down"), "{stderr}");
    assert!(
        out(&o).is_empty(),
        "init prints nothing on stdout without --json"
    );
    let recovery = env.root.path().join("recovery.txt");
    assert_eq!(mode(&recovery), 0o600);
    let code = std::fs::read_to_string(&recovery).expect("recovery file");
    let code_line = code.lines().nth(1).expect("code line").trim().to_owned();
    assert!(
        code_line.len() > 20 && stderr.contains(&code_line),
        "the same code is shown and saved"
    );
    let klef: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.cwd.join(".klef")).expect(".klef"))
            .expect("json");
    assert_eq!(klef["environment"], "development");
    let projects = ok(env.run(&["projects", "list", "--json"], None));
    assert!(
        out(&projects).contains("\"demo-app\""),
        "{}",
        out(&projects)
    );
    // A second init here refuses to replace .klef.
    fails_with(&env.run_pw(&["init"]), 1);

    // set (three forms) / get.
    ok(env.run_pw(&["set", "API_KEY", "sk-test-1"]));
    ok(env.run_pw(&["set", "A=1", "B=two words"]));
    let mut piped = env.cmd(&["set", "MULTI"]);
    piped.env("KLEF_PASSWORD", PASSWORD);
    ok(run(piped, Some(b"x\ny\n")));
    assert_eq!(out(&ok(env.run_pw(&["get", "API_KEY"]))), "sk-test-1\n");
    assert_eq!(out(&ok(env.run_pw(&["get", "B", "--plain"]))), "two words");
    assert_eq!(out(&ok(env.run_pw(&["get", "MULTI", "--plain"]))), "x\ny\n");
    // The password can also come first on stdin, before the value.
    let stdin = format!("{PASSWORD}\nfrom stdin");
    ok(env.run(
        &["set", "PIPED", "--password-stdin"],
        Some(stdin.as_bytes()),
    ));
    assert_eq!(
        out(&ok(env.run_pw(&["get", "PIPED", "--plain"]))),
        "from stdin"
    );

    // list: names without the password, values only with --reveal.
    let list = ok(env.run(&["list", "--json"], None));
    let names: Vec<String> = serde_json::from_str::<serde_json::Value>(&out(&list))
        .expect("json")
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(names, ["A", "API_KEY", "B", "MULTI", "PIPED"]);
    assert!(!out(&list).contains("sk-test-1"));
    assert!(out(&ok(env.run_pw(&["list", "--reveal", "--json"]))).contains("sk-test-1"));

    // run: secrets in the child's environment, exit code passed through.
    let ran = ok(env.run_pw(&[
        "run",
        "--",
        "sh",
        "-c",
        "printf '%s|%s' \"$API_KEY\" \"$B\"",
    ]));
    assert_eq!(out(&ran), "sk-test-1|two words");
    assert_eq!(
        env.run_pw(&["run", "--", "sh", "-c", "exit 9"])
            .status
            .code(),
        Some(9)
    );
    fails_with(
        &env.run_pw(&["run", "--", "klef-no-such-command-here"]),
        127,
    );

    // pull: .env, 0600, atomically; -o - prints.
    ok(env.run_pw(&["pull"]));
    assert_eq!(mode(&env.cwd.join(".env")), 0o600);
    let json = ok(env.run_pw(&["pull", "-o", "-", "--format", "json"]));
    let obj: serde_json::Value = serde_json::from_str(&out(&json)).expect("json");
    assert_eq!(obj["MULTI"], "x\ny\n");

    // push: summary and one transaction; a bad line writes nothing.
    std::fs::write(
        env.cwd.join("in.env"),
        "API_KEY=sk-test-1\nB=changed\nNEW=yes\n",
    )
    .expect("write");
    let pushed = ok(env.run_pw(&["push", "in.env"]));
    assert!(
        err(&pushed).contains("1 added, 1 changed, 1 unchanged, 0 removed"),
        "{}",
        err(&pushed)
    );
    std::fs::write(env.cwd.join("bad.env"), "OK2=1\nnot an assignment\n").expect("write");
    let bad = env.run_pw(&["push", "bad.env"]);
    fails_with(&bad, 1);
    assert!(err(&bad).contains("line 2"), "{}", err(&bad));
    fails_with(&env.run_pw(&["get", "OK2"]), 5);

    // unset keeps history; rollback restores an old version as a new one.
    ok(env.run_pw(&["unset", "B"]));
    let missing = env.run_pw(&["get", "B"]);
    fails_with(&missing, 5);
    assert!(err(&missing).contains("development"));
    let hist = ok(env.run(&["history", "B", "--json"], None));
    let versions: serde_json::Value = serde_json::from_str(&out(&hist)).expect("json");
    assert_eq!(versions.as_array().expect("array").len(), 3);
    assert_eq!(versions[2]["deleted"], true);
    ok(env.run_pw(&["rollback", "B", "1"]));
    assert_eq!(out(&ok(env.run_pw(&["get", "B", "--plain"]))), "two words");
    fails_with(&env.run_pw(&["rollback", "B", "42"]), 5);
}

#[test]
fn exit_codes_and_errors() {
    let env = Env::new();
    init(&env);
    ok(env.run_pw(&["set", "TOKEN", "hunter2-secret"]));

    // Locked with no way to ask → 3, naming the ways to give a password.
    let locked = env.run(&["get", "TOKEN"], None);
    fails_with(&locked, 3);
    assert!(
        err(&locked).contains("--password-stdin") && err(&locked).contains("hint: "),
        "{}",
        err(&locked)
    );
    // Wrong password → 3 "wrong password", no secret anywhere.
    let wrong = env.run(&["get", "TOKEN", "--password-stdin"], Some(b"not it\n"));
    fails_with(&wrong, 3);
    assert!(err(&wrong).contains("wrong password") && !err(&wrong).contains("not it"));
    assert!(!err(&wrong).contains("hunter2-secret") && out(&wrong).is_empty());
    // Unknown environment → 5, with the available ones in a hint.
    let unknown = env.run_pw(&["get", "TOKEN", "-e", "nowhere"]);
    fails_with(&unknown, 5);
    assert!(
        err(&unknown).contains("nowhere")
            && err(&unknown).contains("available environments: development")
    );
    // Invalid name and bad usage → 2.
    fails_with(&env.run_pw(&["set", "1BAD", "x"]), 2);
    assert_eq!(
        env.run(&["ge", "TOKEN"], None).status.code(),
        Some(2),
        "no prefix matching"
    );
    assert_eq!(
        env.run(&["pull", "--format", "toml"], None).status.code(),
        Some(2)
    );
    // --replace without a terminal and without --yes refuses, changing nothing.
    std::fs::write(env.cwd.join("empty.env"), "").expect("write");
    fails_with(&env.run_pw(&["push", "empty.env", "--replace"]), 1);
    assert_eq!(
        out(&ok(env.run_pw(&["get", "TOKEN", "--plain"]))),
        "hunter2-secret"
    );
    // Outside any project → 5, mentioning .klef.
    let mut elsewhere = env.cmd(&["list"]);
    elsewhere.current_dir(env.root.path());
    let o = run(elsewhere, None);
    fails_with(&o, 5);
    assert!(err(&o).contains(".klef"));
}

#[test]
fn env_and_workspace_commands() {
    let env = Env::new();
    init(&env);
    ok(env.run_pw(&["env", "create", "qa", "--name", "QA"]));
    fails_with(&env.run_pw(&["env", "create", "qa"]), 1);
    ok(env.run_pw(&["set", "WHERE", "qa", "-e", "qa"]));
    ok(env.run(&["env", "use", "qa"], None));
    assert_eq!(out(&ok(env.run_pw(&["get", "WHERE", "--plain"]))), "qa");
    let envs = ok(env.run(&["env", "list", "--json"], None));
    let v: serde_json::Value = serde_json::from_str(&out(&envs)).expect("json");
    let current: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .filter(|e| e["current"] == true)
        .map(|e| e["slug"].as_str().expect("slug"))
        .collect();
    assert_eq!(current, ["qa"]);
    fails_with(&env.run(&["env", "use", "nope"], None), 5);

    ok(env.run(&["workspace", "create", "Acme Inc"], None));
    ok(env.run(&["workspace", "use", "Acme Inc"], None));
    assert!(!out(&ok(env.run(&["projects", "list", "--json"], None))).contains("demo-app"));
    fails_with(&env.run(&["workspace", "use", "Nope Corp"], None), 5);
    // -p finds a project of another workspace by name.
    let mut by_name = env.cmd(&["list", "-p", "demo-app", "-e", "qa", "--json"]);
    by_name.current_dir(env.root.path());
    assert!(out(&ok(run(by_name, None))).contains("WHERE"));
}

#[test]
fn help_and_generated_docs() {
    let env = Env::new();
    let help = ok(env.run(&["--help"], None));
    let text = out(&help);
    for cmd in [
        "init",
        "link",
        "projects",
        "workspace",
        "env",
        "set",
        "get",
        "list",
        "unset",
        "pull",
        "push",
        "run",
        "history",
        "rollback",
        "completions",
    ] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(cmd)),
            "--help lists {cmd}:\n{text}"
        );
    }
    assert!(
        !text.lines().any(|l| l.trim_start().starts_with("man ")),
        "man is hidden"
    );
    for flag in [
        "--env",
        "--project",
        "--json",
        "--quiet",
        "--verbose",
        "--no-color",
        "--password-stdin",
    ] {
        assert!(text.contains(flag), "--help shows {flag}");
    }
    assert!(out(&ok(env.run(&["run", "--help"], None))).contains("--preserve-env"));
    assert!(out(&ok(env.run(&["set", "--help"], None))).contains("stdin"));
    let bash = ok(env.run(&["completions", "bash"], None));
    assert!(out(&bash).contains("klef"));
    assert!(out(&ok(env.run(&["man"], None))).contains(".TH klef"));
    assert!(klef_cli::man_page().contains("encrypted"));
}
