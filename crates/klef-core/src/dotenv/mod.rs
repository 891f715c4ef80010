//! `.env` parsing and rendering.
//!
//! The parser accepts the de-facto grammar of npm `dotenv` (v16+) / `dotenvx`: `KEY=value`
//! lines, optional `export `, unquoted values trimmed (inner spaces kept), single, double and
//! backtick quotes, multi-line quoted values, `\n`/`\r` expanded in double quotes, whole-line and
//! inline ` #` comments. Unlike node's lenient parser, lines that are not assignments are
//! reported with their line number instead of being skipped silently.
//!
//! Renderers: [`Format::Dotenv`] (read back exactly by node `dotenv` and the `dotenvy` crate),
//! [`Format::Json`], [`Format::Yaml`] and [`Format::Shell`] (safe to `eval`).

use zeroize::Zeroizing;

/// One `KEY=value` pair. The value is zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key name.
    pub name: String,
    /// The value.
    pub value: Zeroizing<String>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Entry({} = <redacted>)", self.name)
    }
}

/// A `.env` syntax error. The message never contains a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number where the problem starts.
    pub line: usize,
    /// What is wrong, lower-case.
    pub message: String,
}

/// Output formats of `klef pull`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `KEY="value"` lines.
    Dotenv,
    /// A JSON object.
    Json,
    /// A YAML mapping.
    Yaml,
    /// `export KEY='value'` lines, safe to `eval` in POSIX shells.
    Shell,
}

/// Parses a `.env` file. Later duplicates of a key win (as in node `dotenv` with `override`).
pub fn parse(input: &str) -> Result<Vec<Entry>, ParseError> {
    let _ = input;
    todo!("dotenv helper")
}

/// Renders entries in the given format, in the given order.
#[must_use]
pub fn render(entries: &[Entry], format: Format) -> Zeroizing<String> {
    let _ = (entries, format);
    todo!("dotenv helper")
}
