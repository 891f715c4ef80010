//! `.env` parsing and rendering.
//!
//! The parser accepts the de-facto grammar of npm `dotenv` (v16+) / `dotenvx`: `KEY=value` and
//! `KEY: value` lines, optional `export `, unquoted values trimmed (inner spaces kept), single,
//! double and backtick quotes, multi-line quoted values, `\n`/`\r` expanded in double quotes,
//! whole-line and inline comments, CRLF line endings. Unlike node's lenient parser, lines that
//! are not assignments, unterminated quotes and other input that node reads in surprising ways
//! are reported with their line number instead of being skipped or guessed at. The full grammar
//! and every difference from node are in `docs/dotenv.md`.
//!
//! Renderers: [`Format::Dotenv`] (read back exactly by node `dotenv`, the `dotenvy` crate and
//! [`parse`] whenever the value allows it; see [`portability`]), [`Format::Json`],
//! [`Format::Yaml`] and [`Format::Shell`] (safe to `eval`).
//!
//! ```
//! use klef_core::dotenv::{Entry, Format, parse, render};
//! let entries = parse("export A=1\nB='two words' # comment\n").unwrap();
//! assert_eq!(entries[1].name, "B");
//! assert_eq!(entries[1].value.as_str(), "two words");
//! let text = render(&entries, Format::Dotenv);
//! assert_eq!(parse(&text).unwrap(), entries);
//! ```

mod buf;
mod parser;
mod renderer;

use zeroize::Zeroizing;

pub use renderer::{Portability, portability};

/// One `KEY=value` pair. The value is zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key name.
    pub name: String,
    /// The value.
    pub value: Zeroizing<String>,
}

impl Entry {
    /// Builds an entry from a name and a value.
    #[must_use]
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: Zeroizing::new(value.into()),
        }
    }
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
    /// `KEY='value'` lines, quoted per value (see [`portability`]).
    Dotenv,
    /// A JSON object.
    Json,
    /// A YAML mapping.
    Yaml,
    /// `export KEY='value'` lines, safe to `eval` in POSIX shells.
    Shell,
}

/// Parses a `.env` file. Later duplicates of a key win (as in node `dotenv` with `override`);
/// the entry keeps the position of the key's first appearance, as node's object does.
pub fn parse(input: &str) -> Result<Vec<Entry>, ParseError> {
    parser::parse(input)
}

/// Renders entries in the given format, in the given order.
///
/// For [`Format::Dotenv`], values whose [`portability`] is not [`Portability::Portable`] are
/// still rendered so that [`parse`] reads them back exactly, but other parsers may not.
#[must_use]
pub fn render(entries: &[Entry], format: Format) -> Zeroizing<String> {
    match format {
        Format::Dotenv => renderer::dotenv(entries),
        Format::Json => renderer::json(entries),
        Format::Yaml => renderer::yaml(entries),
        Format::Shell => renderer::shell(entries),
    }
}
