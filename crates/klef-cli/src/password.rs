//! Where an encryption password comes from, in order: `--password-stdin` (the first line of
//! stdin), `KLEF_PASSWORD`, then a no-echo prompt on the terminal. With none of them available
//! the command fails with exit code 3 and says how to provide one.

use std::io::{IsTerminal as _, Read as _};

use anyhow::{Context as _, Result};
use klef_core::env::EnvVars;
use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

use klef_core::crypto::CryptoError;

use crate::cli::GlobalArgs;
use crate::diagnostics::Failure;

/// Whether a person can answer prompts (a terminal on stdin or stderr).
pub(crate) fn interactive() -> bool {
    std::io::stdin().is_terminal() || std::io::stderr().is_terminal()
}

/// Reads one line from stdin without reading past it, so the rest of stdin stays available to
/// the command or to a child process. The line ending is removed.
pub(crate) fn read_stdin_line() -> Result<Zeroizing<String>> {
    let mut stdin = raw_stdin()?;
    let mut bytes = Zeroizing::new(Vec::new());
    let mut byte = [0u8; 1];
    loop {
        // One byte at a time from the unbuffered descriptor: a buffered read could swallow
        // input meant for the command (`klef set KEY`) or for a child (`klef run`).
        match stdin.read(&mut byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => bytes.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("failed to read the password from stdin"),
        }
        if bytes.len() > 4096 {
            return Err(Failure::usage("the password on stdin is longer than 4096 bytes").into());
        }
    }
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Failure::usage("the password on stdin is not valid UTF-8"))?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// How many times a prompt asks for a password before giving up, as sudo and ssh do.
const PROMPT_TRIES: u32 = 3;

/// The password of an existing account, tried with `check`: `Ok(None)` when no source is
/// available. A password typed at a prompt that `check` refuses as wrong is asked again, up to
/// three tries; one from stdin or the environment is tried once.
pub(crate) fn try_current_password<T>(
    global: &GlobalArgs,
    prompt: &str,
    mut check: impl FnMut(&SecretString) -> Result<T, CryptoError>,
) -> Result<Option<T>> {
    let prompted =
        !global.password_stdin && env_password(EnvVars::KLEF_PASSWORD).is_none() && interactive();
    let tries = if prompted { PROMPT_TRIES } else { 1 };
    for attempt in 1..=tries {
        let Some(pw) = current_password(global, prompt)? else {
            return Ok(None);
        };
        match check(&pw) {
            Ok(v) => return Ok(Some(v)),
            Err(CryptoError::WrongPassword) if attempt < tries => {
                crate::printer::Printer::new(global).always("wrong password; try again");
            }
            Err(CryptoError::WrongPassword) => {
                let e = anyhow::Error::new(CryptoError::WrongPassword);
                return Err(if prompted {
                    e.context(format!("{tries} wrong passwords"))
                } else {
                    e
                });
            }
            Err(e) => return Err(anyhow::Error::new(e).context("failed to unlock the vault")),
        }
    }
    Ok(None)
}

/// Whether [`current_password`] has a source: `--password-stdin`, `KLEF_PASSWORD` or a person
/// at a terminal.
pub(crate) fn can_ask(global: &GlobalArgs) -> bool {
    global.password_stdin || env_password(EnvVars::KLEF_PASSWORD).is_some() || interactive()
}

/// The password of an existing account, or `None` when no source is available.
pub(crate) fn current_password(global: &GlobalArgs, prompt: &str) -> Result<Option<SecretString>> {
    if global.password_stdin {
        let line = read_stdin_line()?;
        if line.is_empty() {
            return Err(Failure::auth("--password-stdin was given but stdin had no password")
                .hint("pipe the password followed by a newline, e.g. `klef … --password-stdin < file`")
                .into());
        }
        return Ok(Some(SecretString::from(line.as_str())));
    }
    if let Some(pw) = env_password(EnvVars::KLEF_PASSWORD) {
        return Ok(Some(pw));
    }
    if interactive() {
        return prompt_password(prompt).map(Some);
    }
    Ok(None)
}

/// A new password: from `--password-stdin` or `var` as is, or asked twice on the terminal.
pub(crate) fn new_password(global: &GlobalArgs, var: &str) -> Result<SecretString> {
    let pw = if global.password_stdin {
        SecretString::from(read_stdin_line()?.as_str())
    } else if let Some(pw) = env_password(var) {
        pw
    } else if interactive() {
        let first = prompt_password("new encryption password: ")?;
        let second = prompt_password("repeat the new encryption password: ")?;
        if first.expose_secret() != second.expose_secret() {
            return Err(Failure::usage("the two passwords differ").into());
        }
        first
    } else {
        return Err(Failure::auth(
            "a new encryption password is needed and there is no terminal to ask for it",
        )
        .hint(format!(
            "pass it on stdin with --password-stdin, or set {var}"
        ))
        .into());
    };
    if pw.expose_secret().is_empty() {
        return Err(Failure::usage("the encryption password must not be empty").into());
    }
    Ok(pw)
}

/// The error for a locked vault with no password source.
pub(crate) fn locked_error() -> Failure {
    Failure::auth("the vault is locked and no password was given").hint(
        "pass the password with --password-stdin, set KLEF_PASSWORD, or run `klef unlock` in a terminal",
    )
}

/// An unbuffered reader over stdin (a duplicate of descriptor 0).
#[cfg(unix)]
fn raw_stdin() -> Result<std::fs::File> {
    use std::os::fd::AsFd as _;
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .context("failed to read the password from stdin")?;
    Ok(std::fs::File::from(fd))
}

#[cfg(not(unix))]
fn raw_stdin() -> Result<std::io::StdinLock<'static>> {
    Ok(std::io::stdin().lock())
}

pub(crate) fn env_password(var: &str) -> Option<SecretString> {
    let v = std::env::var_os(var)?;
    let s = v.into_string().ok()?;
    if s.is_empty() {
        None
    } else {
        Some(SecretString::from(s))
    }
}

/// Asks for a secret on the terminal without echo (the caller checked there is one).
pub(crate) fn prompt_hidden(prompt: &str) -> Result<SecretString> {
    prompt_password(prompt)
}

fn prompt_password(prompt: &str) -> Result<SecretString> {
    let pw = rpassword::prompt_password(prompt).map_err(|_| locked_error())?;
    Ok(SecretString::from(pw))
}

/// A secret value typed at the terminal for `name`: a hidden prompt, asked twice.
pub(crate) fn prompt_value_twice(name: &str) -> Result<Zeroizing<String>> {
    let ask = |prompt: String| {
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .context("failed to read the value from the terminal")
    };
    let first = ask(format!("value of {name} (hidden): "))?;
    let second = ask(format!("repeat the value of {name}: "))?;
    if *first != *second {
        return Err(Failure::usage(format!(
            "the two values of {name} differ; nothing was written"
        ))
        .hint("type the value again, or pipe it: `printf %s \"$VALUE\" | klef set NAME`")
        .into());
    }
    if first.is_empty() {
        return Err(Failure::usage(format!(
            "no value was typed for {name}; nothing was written"
        ))
        .into());
    }
    Ok(first)
}
