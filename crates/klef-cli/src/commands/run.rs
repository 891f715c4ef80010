//! `klef run [--preserve-env] -- CMD [ARGS…]`: runs CMD with the environment's secrets added
//! to its environment. klef replaces itself with CMD (`execve`), so CMD keeps klef's process id,
//! its stdin, stdout, stderr and controlling terminal, receives every signal sent to that
//! process directly, and its exit status is klef's: its exit code, or death by the same signal
//! (which a shell reports as 128+N). 127 when CMD does not exist and 126 when it cannot be
//! executed, both with a one-line error from klef. Values go only into CMD's environment, never
//! into any argv; no file descriptor of klef's (the vault, the agent's socket) is inherited.
//! Every argument after CMD is CMD's, even one that looks like a klef flag: put
//! `--password-stdin` before `run`. Why `execve` rather than a child process:
//! docs/decisions/0010-run-execs-the-command.md.
//!
//! What CMD does not get (docs/security.md, "What `klef run` withholds"): klef's credentials
//! (`klef_core::env::CREDENTIALS`), removed from the inherited environment; stored variables
//! that change how programs are found or loaded (`crate::env_policy::changes_loading`), unless
//! allowed with `--allow-loader-vars NAME,…` or `--allow-all-loader-vars`, named in one warning
//! otherwise. CMD is found through klef's own `PATH` whatever is stored. A stored value no
//! program could receive (a NUL byte, over 128 KiB) fails the command naming its key.
//!
//! References in values (`${KEY}`, `${env.KEY}`, `${project/env.KEY}`) are resolved before
//! anything is passed (`crate::references`); `--raw` passes the stored text.
//!
//! `--mask` (or `"mask": true` in `.klef`, unless `--no-mask`) is the one exception to
//! `execve`: CMD then runs as a child whose stdout and stderr klef reads and forwards with every
//! secret value replaced by `****` (`crate::mask`); signals sent to klef are forwarded and klef
//! exits with the child's code, or 128+N when it died of signal N.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use anyhow::Result;
use klef_core::dotenv::Entry;

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::references::References;
use crate::{env_policy, mask, secrets};

/// Run a command with the environment's secrets in its environment
///
/// Secrets replace variables of the same name unless `--preserve-env` is given. klef becomes
/// the command (same process id, signals and exit status). klef's own credentials
/// (`KLEF_PASSWORD`, `KLEF_TOKEN`, …) never reach the command. Stored variables that change
/// how programs are found or loaded (`PATH`, `LD_*`, `NODE_OPTIONS`, every `KLEF_*`, …; see
/// docs/security.md) are withheld, with a warning naming them, unless allowed by name; the
/// command itself is always found through klef's own `PATH`.
#[derive(Debug, clap::Args)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "each bool is one independent command-line switch"
)]
pub(crate) struct Args {
    /// Keep variables already set in the environment instead of overriding them with secrets
    #[arg(long)]
    pub(crate) preserve_env: bool,

    /// Apply these stored variables although they change how programs are found or loaded
    /// (comma-separated or repeated, e.g. `--allow-loader-vars PATH,NODE_OPTIONS`)
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub(crate) allow_loader_vars: Vec<String>,

    /// Apply every stored variable, including those that change how programs are found or
    /// loaded (only if you trust everyone who can write this environment)
    #[arg(long, conflicts_with = "allow_loader_vars")]
    pub(crate) allow_all_loader_vars: bool,

    /// Start the program without the values that cannot be decrypted (named on stderr) instead
    /// of refusing to start it
    #[arg(long)]
    pub(crate) skip_unreadable: bool,

    /// Pass the stored text of values, without resolving their references (`${KEY}`,
    /// `${env.KEY}`, `${project/env.KEY}`)
    #[arg(long)]
    pub(crate) raw: bool,

    /// Replace every secret value (of 4 bytes or more) in the command's stdout and stderr with
    /// `****`; the command then runs as klef's child, which forwards signals and its exit code
    /// (the default when `.klef` has `"mask": true`)
    #[arg(long, overrides_with = "no_mask")]
    pub(crate) mask: bool,

    /// Do not mask the command's output, even where `.klef` asks for it
    #[arg(long, overrides_with = "mask")]
    pub(crate) no_mask: bool,

    /// The command and its arguments (put them after `--`)
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub(crate) command: Vec<OsString>,
}

pub(crate) async fn run(args: Args, ctx: &Context) -> Result<ExitStatus> {
    let Some((program, rest)) = args.command.split_first() else {
        return Err(Failure::usage("no command given")
            .hint("usage: klef run -- CMD [ARGS…]")
            .into());
    };
    // Found with klef's own PATH, never a stored one, and before anything is decrypted.
    let path = resolve_program(program, std::env::var_os("PATH").as_deref())?;
    let b = ctx.backend_and_agent().await?;
    let purpose = if args.skip_unreadable {
        crate::signed::Purpose::ReadSkipping
    } else {
        crate::signed::Purpose::Read
    };
    let crate::snapshot::Current {
        target: t,
        key,
        secrets: current,
        skipped: unmatched,
        ..
    } = crate::snapshot::current(ctx, &b, purpose).await?;
    let entries = if args.skip_unreadable {
        let (entries, mut skipped) = secrets::decrypt_readable(&key, &t, &current);
        skipped.extend(unmatched);
        skipped.sort();
        skipped.dedup();
        if !skipped.is_empty() {
            ctx.printer.warn(&format!(
                "started without {}: {} cannot be decrypted or do not match the signed state (altered, or written by a broken client); `klef set` writes a new value",
                skipped.join(", "),
                if skipped.len() == 1 { "it" } else { "they" }
            ));
        }
        entries
    } else {
        secrets::decrypt_all(&key, &t, &current).map_err(|e| {
            e.context(
                Failure::other(format!(
                    "refusing to start the program without every value of {}",
                    t.describe()
                ))
                .hint("`klef run --skip-unreadable -- …` starts it without the values that cannot be decrypted"),
            )
        })?
    };
    drop(key);
    let entries = crate::personal::layer(ctx, &t, entries);
    let entries = if args.raw {
        entries
    } else {
        References::new(ctx, &b, &t, &entries).all(&entries).await?
    };
    let masker = if masked(&args)? {
        mask::Masker::new(entries.iter().map(|e| e.value.as_str()))?
    } else {
        None
    };

    let plan = plan(&entries, &args, |name| std::env::var_os(name).is_some());
    if !plan.withheld.is_empty() {
        ctx.printer.warn(&format!(
            "not applied: {} (stored variables that change how programs are found or loaded)",
            plan.withheld.join(", ")
        ));
        ctx.printer.hint(&format!(
            "if you trust everyone who can write this environment, pass `klef run --allow-loader-vars {} -- …`",
            plan.withheld.join(",")
        ));
    }
    unpassable(&entries, &plan.applied, program)?;

    let mut cmd = std::process::Command::new(&path);
    set_arg0(&mut cmd, program);
    cmd.args(rest);
    for name in klef_core::env::CREDENTIALS {
        cmd.env_remove(name);
    }
    let sizes = largest(&entries, &plan.applied);
    for &i in &plan.applied {
        let e = &entries[i];
        cmd.env(&e.name, e.value.as_str());
    }
    drop(entries);
    tracing::debug!(
        injected = plan.applied.len(),
        withheld = plan.withheld.len(),
        masked = masker.is_some(),
        "starting the command"
    );
    match masker {
        Some(masker) => mask::run_masked(cmd, masker)
            .await
            .map_err(|e| spawn_error(&e, program, &sizes)),
        None => Err(exec(cmd, program, &sizes)),
    }
}

/// Whether the output is masked: `--mask`/`--no-mask`, else `"mask"` in the nearest `.klef`.
fn masked(args: &Args) -> Result<bool> {
    if args.mask || args.no_mask {
        return Ok(args.mask);
    }
    Ok(Context::find_klef_file()?.is_some_and(|k| k.file.mask == Some(true)))
}

/// Which stored variables `klef run` applies (indices into the entries) and which it withholds.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    applied: Vec<usize>,
    withheld: Vec<String>,
}

/// Decides per stored variable: kept from the parent (`--preserve-env`), withheld (it changes
/// how programs are found or loaded and was not allowed), or applied.
fn plan(entries: &[Entry], args: &Args, in_parent: impl Fn(&str) -> bool) -> Plan {
    let mut out = Plan::default();
    for (i, e) in entries.iter().enumerate() {
        if env_policy::changes_loading(&e.name)
            && !args.allow_all_loader_vars
            && !args.allow_loader_vars.iter().any(|a| a == &e.name)
        {
            out.withheld.push(e.name.clone());
            continue;
        }
        if args.preserve_env && in_parent(&e.name) {
            continue;
        }
        out.applied.push(i);
    }
    out
}

/// Fails, naming the keys, when an applied value cannot be passed to a program at all: a NUL
/// byte (stored before `klef set` refused them) or longer than one environment variable may be.
fn unpassable(entries: &[Entry], applied: &[usize], program: &OsStr) -> Result<()> {
    let mut nul = Vec::new();
    let mut long = Vec::new();
    for &i in applied {
        let e = &entries[i];
        if e.value.contains('\0') {
            nul.push(e.name.as_str());
        } else if env_policy::too_long_for_env(&e.name, &e.value) {
            long.push(format!("{} ({} KiB)", e.name, e.value.len().div_ceil(1024)));
        }
    }
    let name = program.to_string_lossy();
    if !nul.is_empty() {
        return Err(Failure::other(format!(
            "cannot pass {} to {name}: a value with a NUL byte cannot be an environment variable",
            nul.join(", ")
        ))
        .hint("store it again without the NUL byte (`klef set KEY`)")
        .into());
    }
    if !long.is_empty() {
        return Err(Failure::other(format!(
            "cannot pass {} to {name}: over the {} KiB one environment variable can hold",
            long.join(", "),
            env_policy::MAX_ENV_STRING / 1024
        ))
        .hint("read it from a file instead: `klef pull` writes the environment to .env, `klef get KEY` prints one value")
        .into());
    }
    Ok(())
}

/// The three largest applied values (name, bytes), for the message when the whole environment
/// is too large.
fn largest(entries: &[Entry], applied: &[usize]) -> Vec<(String, usize)> {
    let mut sizes: Vec<(String, usize)> = applied
        .iter()
        .map(|&i| (entries[i].name.clone(), entries[i].value.len()))
        .collect();
    sizes.sort_by_key(|s| std::cmp::Reverse(s.1));
    sizes.truncate(3);
    sizes
}

/// Finds `program` as `execvp` would, but in `path` (klef's own `PATH`) so that a stored `PATH`
/// the user allowed still cannot choose which program runs. A name with a `/` is used as given.
fn resolve_program(program: &OsStr, path: Option<&OsStr>) -> Result<PathBuf> {
    let as_path = Path::new(program);
    if program.as_encoded_bytes().contains(&b'/') {
        return Ok(as_path.to_owned());
    }
    let name = program.to_string_lossy();
    if program.is_empty() {
        return Err(not_found(&name));
    }
    let default = OsStr::new("/usr/local/bin:/usr/bin:/bin");
    let mut denied = false;
    for dir in std::env::split_paths(path.unwrap_or(default)) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(program);
        match fs_err::metadata(&candidate) {
            Ok(m) if m.is_file() && is_executable(&m) => return Ok(candidate),
            Ok(_) => denied = true,
            Err(_) => {}
        }
    }
    if denied {
        return Err(Failure::new(
            ExitStatus::NOT_EXECUTABLE,
            format!("cannot execute {name}: permission denied"),
        )
        .hint("is it a directory, or missing its executable bit?")
        .into());
    }
    Err(not_found(&name))
}

#[cfg(unix)]
fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    m.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &std::fs::Metadata) -> bool {
    true
}

/// The command sees the name it was given as `argv[0]`, not the path klef found.
#[cfg(unix)]
fn set_arg0(cmd: &mut std::process::Command, program: &OsStr) {
    use std::os::unix::process::CommandExt as _;
    cmd.arg0(program);
}

#[cfg(not(unix))]
fn set_arg0(_: &mut std::process::Command, _: &OsStr) {}

fn not_found(name: &str) -> anyhow::Error {
    Failure::new(
        ExitStatus::COMMAND_NOT_FOUND,
        format!("command not found: {name}"),
    )
    .hint("check the spelling, or give the full path of the program")
    .into()
}

/// Replaces this process with `cmd`; returns only when that fails. Nothing is written to the
/// vault by `run`, so nothing needs closing: every descriptor klef opened is close-on-exec
/// (Rust's standard library and `SQLite` open them so), and the vault is left as after any
/// reader, its write-ahead log intact.
#[cfg(unix)]
fn exec(
    mut cmd: std::process::Command,
    program: &OsStr,
    sizes: &[(String, usize)],
) -> anyhow::Error {
    use std::io::Write as _;
    use std::os::unix::process::CommandExt as _;

    // Nothing of klef's may be left in a buffer that `execve` would discard.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let err = cmd.exec();
    spawn_error(&err, program, sizes)
}

/// Without `execve`: runs `cmd` as a child and exits with its code (klef is Unix-only today,
/// docs/decisions/0008; this keeps the crate building elsewhere).
#[cfg(not(unix))]
#[allow(
    clippy::exit,
    reason = "the child's exit code is klef's, as execve would make it"
)]
fn exec(
    mut cmd: std::process::Command,
    program: &OsStr,
    sizes: &[(String, usize)],
) -> anyhow::Error {
    let status = match cmd.status() {
        Ok(s) => s,
        Err(e) => return spawn_error(&e, program, sizes),
    };
    std::process::exit(status.code().unwrap_or(1))
}

fn spawn_error(e: &std::io::Error, program: &OsStr, sizes: &[(String, usize)]) -> anyhow::Error {
    let name = program.to_string_lossy();
    if e.kind() == std::io::ErrorKind::ArgumentListTooLong {
        let largest: Vec<String> = sizes
            .iter()
            .map(|(n, len)| format!("{n} ({} KiB)", len.div_ceil(1024)))
            .collect();
        return Failure::new(
            ExitStatus::NOT_EXECUTABLE,
            format!(
                "cannot start {name}: its environment and arguments together are over the system's limit; the largest stored values are {}",
                largest.join(", ")
            ),
        )
        .hint("read large values from a file instead: `klef pull` writes the environment to .env, `klef get KEY` prints one value")
        .into();
    }
    match e.kind() {
        std::io::ErrorKind::NotFound => not_found(&name),
        std::io::ErrorKind::PermissionDenied => Failure::new(
            ExitStatus::NOT_EXECUTABLE,
            format!("cannot execute {name}: permission denied"),
        )
        .hint("is it a directory, or missing its executable bit?")
        .into(),
        _ => Failure::new(
            ExitStatus::NOT_EXECUTABLE,
            format!("cannot execute {name}: {e}"),
        )
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;
    use zeroize::Zeroizing;

    use super::*;

    fn entries(names: &[&str]) -> Vec<Entry> {
        names
            .iter()
            .map(|n| Entry {
                name: (*n).to_owned(),
                value: Zeroizing::new(format!("value of {n}")),
            })
            .collect()
    }

    fn args(flags: &[&str]) -> Args {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            args: Args,
        }
        let mut argv = vec!["run"];
        argv.extend(flags);
        argv.extend(["--", "true"]);
        Wrap::try_parse_from(argv).unwrap().args
    }

    fn applied<'a>(e: &'a [Entry], p: &Plan) -> Vec<&'a str> {
        p.applied.iter().map(|&i| e[i].name.as_str()).collect()
    }

    #[test]
    fn loader_variables_are_withheld_unless_allowed() {
        let e = entries(&["API_KEY", "LD_PRELOAD", "NODE_OPTIONS", "PATH"]);
        let p = plan(&e, &args(&[]), |_| false);
        assert_eq!(applied(&e, &p), ["API_KEY"]);
        assert_eq!(p.withheld, ["LD_PRELOAD", "NODE_OPTIONS", "PATH"]);

        let p = plan(
            &e,
            &args(&["--allow-loader-vars", "PATH,NODE_OPTIONS"]),
            |_| false,
        );
        assert_eq!(applied(&e, &p), ["API_KEY", "NODE_OPTIONS", "PATH"]);
        assert_eq!(p.withheld, ["LD_PRELOAD"]);

        let p = plan(&e, &args(&["--allow-all-loader-vars"]), |_| false);
        assert_eq!(applied(&e, &p).len(), 4);
        assert!(p.withheld.is_empty());
    }

    #[test]
    fn preserve_env_keeps_the_parents_value() {
        let e = entries(&["API_KEY", "OTHER"]);
        let p = plan(&e, &args(&["--preserve-env"]), |n| n == "API_KEY");
        assert_eq!(applied(&e, &p), ["OTHER"]);
    }

    #[test]
    fn the_command_is_found_in_the_given_path_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().unwrap();
        let good = tmp.path().join("good");
        let bad = tmp.path().join("bad");
        fs_err::create_dir_all(&good).unwrap();
        fs_err::create_dir_all(&bad).unwrap();
        let tool = good.join("tool");
        fs_err::write(&tool, "#!/bin/sh\n").unwrap();
        fs_err::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = bad.join("tool");
        fs_err::write(&plain, "not executable").unwrap();
        let path = std::env::join_paths([&bad, &good]).unwrap();
        // A non-executable file earlier in PATH is passed over, as execvp does.
        assert_eq!(
            resolve_program(OsStr::new("tool"), Some(&path)).unwrap(),
            tool
        );
        let only_bad = std::env::join_paths([&bad]).unwrap();
        let err = resolve_program(OsStr::new("tool"), Some(&only_bad)).unwrap_err();
        assert_eq!(
            crate::diagnostics::exit_status(&err),
            ExitStatus::NOT_EXECUTABLE
        );
        let err = resolve_program(OsStr::new("nope-klef"), Some(&path)).unwrap_err();
        assert_eq!(
            crate::diagnostics::exit_status(&err),
            ExitStatus::COMMAND_NOT_FOUND
        );
        assert_eq!(
            resolve_program(OsStr::new("./x"), Some(&path)).unwrap(),
            PathBuf::from("./x")
        );
    }

    #[test]
    fn unpassable_values_are_named() {
        let mut e = entries(&["BIG", "OK"]);
        e[0].value = Zeroizing::new("x".repeat(200 * 1024));
        let err = unpassable(&e, &[0, 1], OsStr::new("app")).unwrap_err();
        let lines = crate::diagnostics::render(&err);
        assert!(lines[0].1.contains("BIG (200 KiB)"), "{lines:?}");
        assert!(
            lines
                .iter()
                .any(|(l, t)| *l == "hint" && t.contains("klef pull"))
        );
        assert!(unpassable(&e, &[1], OsStr::new("app")).is_ok());
    }
}
