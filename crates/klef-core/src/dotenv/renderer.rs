//! Renderers for `klef pull`: `.env` (quoted per value), JSON, YAML and POSIX shell.
//!
//! The `.env` quoting rules come from reading both target parsers (npm `dotenv` 17's `LINE`
//! regex and `dotenvy` 0.15's line parser); `docs/dotenv.md` explains each choice:
//! - single quotes are raw in both, but node turns a raw `\r` into `\n`, and a backslash right
//!   before the closing quote pairs with it (in node's regex, and in dotenvy for an odd run);
//! - double quotes expand only `\n`/`\r` in node, while dotenvy also unescapes `\\ \" \' \$ \ `,
//!   substitutes `$VAR` and rejects `\r`; so they agree only on text without `"`, `\`, `$`, CR;
//! - backticks and inner-space unquoted values are node-only.

use super::Entry;
use super::buf::SecretBuf;
use super::parser::{ESCAPED_PRAGMA, is_js_space};
use zeroize::Zeroizing;

/// How faithfully [`Format::Dotenv`](super::Format::Dotenv) output carries a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Portability {
    /// node `dotenv`, the `dotenvy` crate and [`parse`](super::parse) all read it back exactly.
    Portable,
    /// node `dotenv` and [`parse`](super::parse) read it back exactly; `dotenvy` reads something
    /// else or fails (a carriage return, `'` together with `"`, `\` or `$`, or a value ending in
    /// an odd number of backslashes).
    NodeOnly,
    /// No `.env` form carries it to node `dotenv`; it is written after a `# klef:escaped` line
    /// that only [`parse`](super::parse) understands. Node reads an approximation; `dotenvy`
    /// reads it exactly unless it holds a carriage return.
    KlefOnly,
}

/// How a value is quoted in `.env` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// `'value'`, raw.
    Single,
    /// `"value"` with line feeds as `\n` (and, node-only, carriage returns as `\r`).
    Double,
    /// `` `value` ``, raw (node only).
    Backtick,
    /// `value` as is (node only).
    Unquoted,
    /// `"value"` with `\\ \" \$ \n \r` escapes after [`ESCAPED_PRAGMA`].
    Escaped,
}

/// The guard comment written after a value whose closing quote follows a backslash. Node's
/// regex first tries to read the backslash and quote as an escaped quote and go on to the next
/// quote character in the file; the first `'`, `"` and `` ` `` here are each followed by text,
/// so that attempt fails on this line and node settles on the real closing quote.
const GUARD: &str = "# guard ('x \"x `x): the value above ends with a backslash";

fn trailing_backslashes(value: &str) -> usize {
    value.len() - value.trim_end_matches('\\').len()
}

/// Whether `value` has a backslash followed by `n` or `r`, which node's double quotes expand.
fn has_node_escape(value: &str) -> bool {
    value
        .as_bytes()
        .windows(2)
        .any(|w| w[0] == b'\\' && matches!(w[1], b'n' | b'r'))
}

fn choose(value: &str) -> (Style, Portability) {
    let has = |c: char| value.contains(c);
    let cr = has('\r');
    if !has('\'') && !cr && trailing_backslashes(value).is_multiple_of(2) {
        return (Style::Single, Portability::Portable);
    }
    if !has('"') && !has('\\') && !has('$') && !cr {
        return (Style::Double, Portability::Portable);
    }
    if !has('\'') && !cr {
        return (Style::Single, Portability::NodeOnly);
    }
    if !has('"') && !has_node_escape(value) {
        return (Style::Double, Portability::NodeOnly);
    }
    if !has('`') && !cr {
        return (Style::Backtick, Portability::NodeOnly);
    }
    let unquoted_ok = !value.is_empty()
        && !value.contains(['#', '\n', '\r', '\u{2028}', '\u{2029}'])
        && !value.starts_with(['\'', '"', '`'])
        && !value.starts_with(is_js_space)
        && !value.ends_with(is_js_space);
    if unquoted_ok {
        return (Style::Unquoted, Portability::NodeOnly);
    }
    (Style::Escaped, Portability::KlefOnly)
}

/// How faithfully [`Format::Dotenv`](super::Format::Dotenv) output carries `value` to other
/// parsers; `klef pull` warns about keys whose value is not [`Portability::Portable`].
#[must_use]
pub fn portability(value: &str) -> Portability {
    choose(value).1
}

/// A value's `.env` form (without `KEY=`), and whether it needs the guard line after it.
fn push_dotenv_value(out: &mut SecretBuf, value: &str) {
    let (style, _) = choose(value);
    let quote = match style {
        Style::Single => '\'',
        Style::Backtick => '`',
        Style::Double | Style::Escaped => '"',
        Style::Unquoted => {
            out.push_str(value);
            return;
        }
    };
    out.push(quote);
    for c in value.chars() {
        match (style, c) {
            (Style::Double | Style::Escaped, '\n') => out.push_str("\\n"),
            (Style::Double | Style::Escaped, '\r') => out.push_str("\\r"),
            (Style::Escaped, '\\' | '"' | '$') => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out.push(quote);
}

pub(super) fn dotenv(entries: &[Entry]) -> Zeroizing<String> {
    let mut out = SecretBuf::with_capacity(capacity(entries, 2, 16));
    for entry in entries {
        if choose(&entry.value).0 == Style::Escaped {
            out.push_str(ESCAPED_PRAGMA);
            out.push('\n');
        }
        out.push_str(&entry.name);
        out.push('=');
        push_dotenv_value(&mut out, &entry.value);
        out.push('\n');
        // The character before the closing quote (the final newline is the last character).
        let text = out.as_str();
        if text[..text.len() - 1].chars().rev().nth(1) == Some('\\') {
            out.push_str(GUARD);
            out.push('\n');
        }
    }
    out.into_inner()
}

/// A capacity guess: every value byte may grow `factor` times, plus `overhead` per entry.
fn capacity(entries: &[Entry], factor: usize, overhead: usize) -> usize {
    entries
        .iter()
        .map(|e| e.value.len() * factor + e.name.len() + overhead)
        .sum::<usize>()
        + 4
}

/// Appends `s` as a JSON string literal.
fn push_json_string(out: &mut SecretBuf, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => push_hex_escape(out, "\\u", 4, c),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_hex_escape(out: &mut SecretBuf, prefix: &str, digits: usize, c: char) {
    out.push_str(prefix);
    let code = u32::from(c);
    for shift in (0..digits).rev() {
        let nibble = (code >> (shift * 4)) & 0xf;
        out.push(char::from_digit(nibble, 16).map_or('0', |d| d.to_ascii_uppercase()));
    }
}

pub(super) fn json(entries: &[Entry]) -> Zeroizing<String> {
    if entries.is_empty() {
        return Zeroizing::new("{}\n".to_owned());
    }
    let mut out = SecretBuf::with_capacity(capacity(entries, 2, 16));
    out.push_str("{\n");
    for (i, entry) in entries.iter().enumerate() {
        out.push_str("  ");
        push_json_string(&mut out, &entry.name);
        out.push_str(": ");
        push_json_string(&mut out, &entry.value);
        out.push_str(if i + 1 == entries.len() { "\n" } else { ",\n" });
    }
    out.push_str("}\n");
    out.into_inner()
}

/// Appends `s` as a YAML double-quoted scalar on one line. Everything outside YAML's printable
/// set, and the characters YAML 1.1 readers take as line breaks or a byte-order mark, is escaped.
fn push_yaml_string(out: &mut SecretBuf, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => push_hex_escape(out, "\\x", 2, c),
            '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}' => {
                push_hex_escape(out, "\\u", 4, c);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

pub(super) fn yaml(entries: &[Entry]) -> Zeroizing<String> {
    if entries.is_empty() {
        return Zeroizing::new("{}\n".to_owned());
    }
    let mut out = SecretBuf::with_capacity(capacity(entries, 2, 16));
    for entry in entries {
        // Keys are quoted too: YAML 1.1 reads a bare `NO` or `ON` as a boolean.
        push_yaml_string(&mut out, &entry.name);
        out.push_str(": ");
        push_yaml_string(&mut out, &entry.value);
        out.push('\n');
    }
    out.into_inner()
}

pub(super) fn shell(entries: &[Entry]) -> Zeroizing<String> {
    let mut out = SecretBuf::with_capacity(capacity(entries, 4, 16));
    for entry in entries {
        out.push_str("export ");
        out.push_str(&entry.name);
        out.push_str("='");
        for c in entry.value.chars() {
            if c == '\'' {
                out.push_str("'\\''");
            } else {
                out.push(c);
            }
        }
        out.push_str("'\n");
    }
    out.into_inner()
}

#[cfg(test)]
mod tests {
    use super::{Portability, choose, portability};
    use crate::dotenv::{Entry, Format, parse, render};

    fn one(value: &str, format: Format) -> String {
        render(&[Entry::new("K", value)], format).to_string()
    }

    #[test]
    fn dotenv_quoting_per_value() {
        let cases: &[(&str, &str, Portability)] = &[
            ("", "K=''\n", Portability::Portable),
            ("plain", "K='plain'\n", Portability::Portable),
            (
                "a $X \"q\" # `b`",
                "K='a $X \"q\" # `b`'\n",
                Portability::Portable,
            ),
            ("two\nlines", "K='two\nlines'\n", Portability::Portable),
            ("it's", "K=\"it's\"\n", Portability::Portable),
            ("it's\nmulti", "K=\"it's\\nmulti\"\n", Portability::Portable),
            (
                "C:\\dir\\\\",
                "K='C:\\dir\\\\'\n# guard",
                Portability::Portable,
            ),
            ("odd\\", "K='odd\\'\n# guard", Portability::NodeOnly),
            ("crlf\r\n", "K=\"crlf\\r\\n\"\n", Portability::NodeOnly),
            ("it's $HOME", "K=\"it's $HOME\"\n", Portability::NodeOnly),
            (
                "it's \\ \\",
                "K=\"it's \\ \\\"\n# guard",
                Portability::NodeOnly,
            ),
            ("it's \"x\"", "K=`it's \"x\"`\n", Portability::NodeOnly),
            ("a'\"`", "K=a'\"`\n", Portability::NodeOnly),
            (
                "'\"`",
                "# klef:escaped\nK=\"'\\\"`\"\n",
                Portability::KlefOnly,
            ),
            (
                " '\"` ",
                "# klef:escaped\nK=\" '\\\"` \"\n",
                Portability::KlefOnly,
            ),
            (
                "\r\"",
                "# klef:escaped\nK=\"\\r\\\"\"\n",
                Portability::KlefOnly,
            ),
            (
                "'\"`\\n\\",
                "# klef:escaped\nK=\"'\\\"`\\\\n\\\\\"\n# guard",
                Portability::KlefOnly,
            ),
        ];
        for (value, expected, level) in cases {
            let text = one(value, Format::Dotenv);
            assert!(text.starts_with(expected), "{value:?}: {text:?}");
            assert_eq!(portability(value), *level, "{value:?}");
            let back = parse(&text).map(|e| e[0].value.to_string());
            assert_eq!(
                back.as_deref(),
                Ok(*value),
                "{value:?} via {text:?} ({:?})",
                choose(value)
            );
        }
    }

    #[test]
    fn guard_keeps_following_keys() {
        let entries = [
            Entry::new("A", "ends\\\\"),
            Entry::new("B", "#starts with hash"),
            Entry::new("C", "it' #x"),
            Entry::new("D", "odd\\"),
            Entry::new("E", "\nlead"),
        ];
        let text = render(&entries, Format::Dotenv);
        assert_eq!(parse(&text), Ok(entries.to_vec()));
    }

    #[test]
    fn json_yaml_shell_shapes() {
        let entries = [
            Entry::new("A", "x"),
            Entry::new("NO", "it's \"q\"\n\u{1}\u{2028}"),
        ];
        assert_eq!(
            render(&entries, Format::Json).as_str(),
            "{\n  \"A\": \"x\",\n  \"NO\": \"it's \\\"q\\\"\\n\\u0001\u{2028}\"\n}\n"
        );
        assert_eq!(
            render(&entries, Format::Yaml).as_str(),
            "\"A\": \"x\"\n\"NO\": \"it's \\\"q\\\"\\n\\x01\\u2028\"\n"
        );
        assert_eq!(
            render(&entries, Format::Shell).as_str(),
            "export A='x'\nexport NO='it'\\''s \"q\"\n\u{1}\u{2028}'\n"
        );
        for format in [Format::Json, Format::Yaml] {
            assert_eq!(render(&[], format).as_str(), "{}\n");
        }
        assert_eq!(render(&[], Format::Shell).as_str(), "");
        assert_eq!(render(&[], Format::Dotenv).as_str(), "");
    }
}
