//! The `.env` parser: npm `dotenv`'s grammar (its `LINE` regular expression in `lib/main.js`),
//! read line by line, reporting an error wherever node would skip a line or read it in a way
//! that is almost certainly not what the author meant.
//!
//! How node reads a value, and how this mirrors it:
//! - Line breaks `\r\n` and `\r` become `\n` before anything else.
//! - "Whitespace" is JavaScript's `\s` (see [`is_js_space`]), not Rust's.
//! - A quoted value's closing quote is found as node's backtracking regex finds it: first the
//!   first quote not preceded by a backslash (a backslash-quote pair is content and kept as is),
//!   then, walking back, the quote of each backslash-quote pair; the first whose line continues
//!   with only whitespace and an optional `#` comment wins.
//! - In double quotes `\n` and `\r` become line feed and carriage return; nothing else is an
//!   escape. Single and backtick quotes are raw.
//! - Unquoted values end at `#` and are trimmed.

use std::collections::HashMap;

use zeroize::Zeroizing;

use super::buf::SecretBuf;
use super::{Entry, ParseError};
use crate::names::{MAX_VALUE_LEN, validate_key_name};

/// The comment line that makes the next line's double-quoted value use backslash escapes
/// (`\\`, `\"`, `\$`, `\n`, `\r`). The renderer writes it only for values node cannot carry.
pub(super) const ESCAPED_PRAGMA: &str = "# klef:escaped";

/// JavaScript's `\s` class (and `String.prototype.trim`'s set): ASCII whitespace, Unicode
/// `Zs`, U+2028/U+2029 and U+FEFF. Unlike `char::is_whitespace` it excludes U+0085.
pub(super) fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// Whitespace inside one line (everything in [`is_js_space`] but the line feed).
fn is_inline_space(c: char) -> bool {
    c != '\n' && is_js_space(c)
}

fn quote_name(quote: char) -> &'static str {
    match quote {
        '\'' => "single",
        '"' => "double",
        _ => "backtick",
    }
}

/// Replaces `\r\n` and lone `\r` with `\n`, as node does before parsing.
fn normalize_newlines(input: &str) -> Zeroizing<String> {
    let mut out = SecretBuf::with_capacity(input.len());
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' {
            if chars.peek() == Some(&'\n') {
                chars.next();
            }
            out.push('\n');
        } else {
            out.push(c);
        }
    }
    out.into_inner()
}

pub(super) fn parse(input: &str) -> Result<Vec<Entry>, ParseError> {
    let text = normalize_newlines(input);
    let mut parser = Parser {
        text: &text,
        pos: 0,
        line: 1,
    };
    let mut entries: Vec<Entry> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut pragma_line: Option<usize> = None;

    while parser.pos < parser.text.len() {
        let trimmed = parser.current_line().trim_matches(is_js_space);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            if let Some(line) = pragma_line {
                return Err(pragma_error(line));
            }
            reject_js_line_breaks(trimmed, parser.line)?;
            if trimmed == ESCAPED_PRAGMA {
                pragma_line = Some(parser.line);
            }
            parser.next_line();
            continue;
        }
        let escaped = pragma_line.take().is_some();
        let (name, value) = parser.assignment(escaped)?;
        if let Some(&at) = index.get(&name) {
            entries[at].value = value;
        } else {
            index.insert(name.clone(), entries.len());
            entries.push(Entry { name, value });
        }
    }
    if let Some(line) = pragma_line {
        return Err(pragma_error(line));
    }
    Ok(entries)
}

/// Node's regex treats U+2028 and U+2029 as line breaks outside quoted and unquoted values, so
/// text after one in a comment would be read as a new line there but not here.
fn reject_js_line_breaks(comment: &str, line: usize) -> Result<(), ParseError> {
    if comment.contains(['\u{2028}', '\u{2029}']) {
        return Err(ParseError {
            line,
            message: "line separator U+2028/U+2029 in a comment (node dotenv reads it as a line \
                      break)"
                .to_owned(),
        });
    }
    Ok(())
}

fn error(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

fn pragma_error(line: usize) -> ParseError {
    ParseError {
        line,
        message: format!("'{ESCAPED_PRAGMA}' must be followed directly by a KEY=\"value\" line"),
    }
}

struct Parser<'a> {
    /// The whole input, line breaks normalized to `\n`.
    text: &'a str,
    /// Byte offset of the start of the current line.
    pos: usize,
    /// 1-based number of the current line.
    line: usize,
}

impl Parser<'_> {
    /// Byte offset of the end of the line containing `at` (its `\n`, or the end of input).
    fn line_end(&self, at: usize) -> usize {
        self.text[at..]
            .find('\n')
            .map_or(self.text.len(), |i| at + i)
    }

    fn current_line(&self) -> &str {
        &self.text[self.pos..self.line_end(self.pos)]
    }

    fn next_line(&mut self) {
        self.advance_to(self.line_end(self.pos));
    }

    /// Moves to the start of the line after the one ending at byte `end`.
    fn advance_to(&mut self, end: usize) {
        self.line += self.text[self.pos..end].matches('\n').count() + 1;
        self.pos = (end + 1).min(self.text.len());
    }

    /// Parses the assignment starting on the current line and moves past its last line.
    fn assignment(&mut self, escaped: bool) -> Result<(String, Zeroizing<String>), ParseError> {
        let line_no = self.line;
        let end = self.line_end(self.pos);
        let line = &self.text[self.pos..end];
        let mut rest = line.trim_start_matches(is_js_space);

        // `export KEY=…`; `export=…` and `export: …` assign the key `export`.
        if let Some(after) = rest.strip_prefix("export")
            && after.starts_with(is_inline_space)
        {
            let after = after.trim_start_matches(is_inline_space);
            if !after.starts_with(['=', ':']) {
                rest = after;
            }
        }

        let key_len = rest
            .find(|c: char| is_js_space(c) || c == '=' || c == ':')
            .unwrap_or(rest.len());
        let (key, after_key) = rest.split_at(key_len);
        let value_part = if let Some(v) = after_key
            .trim_start_matches(is_inline_space)
            .strip_prefix('=')
        {
            v
        } else if let Some(v) = after_key.strip_prefix(':') {
            // Node allows no space before the colon.
            if !v.starts_with(is_inline_space) {
                return Err(error(line_no, "expected a space and a value after ':'"));
            }
            v
        } else {
            return Err(error(line_no, "expected KEY=VALUE"));
        };
        if key.is_empty() {
            return Err(error(line_no, "expected a key name before '='"));
        }
        if let Err(invalid) = validate_key_name(key) {
            // The reason only: a "key" that fails validation may be a pasted secret.
            return Err(error(
                line_no,
                format!("invalid key name: {}", invalid.reason),
            ));
        }
        let name = key.to_owned();

        let value_part = value_part.trim_start_matches(is_inline_space);
        let value_start = end - value_part.len();
        let (value, last_line_end) = match value_part.chars().next() {
            Some(quote @ ('\'' | '"' | '`')) => {
                if escaped && quote != '"' {
                    return Err(pragma_error(line_no - 1));
                }
                self.quoted(quote, value_start, escaped)?
            }
            _ if escaped => return Err(pragma_error(line_no - 1)),
            _ => (Self::unquoted(value_part, line_no)?, end),
        };
        if value.len() > MAX_VALUE_LEN {
            return Err(error(line_no, "value is larger than the 1 MiB limit"));
        }
        self.advance_to(last_line_end);
        Ok((name, value))
    }

    fn unquoted(text: &str, line_no: usize) -> Result<Zeroizing<String>, ParseError> {
        let text = match text.find('#') {
            Some(hash) if hash == 0 || text[..hash].ends_with(is_js_space) => {
                reject_js_line_breaks(&text[hash..], line_no)?;
                &text[..hash]
            }
            Some(_) => {
                return Err(error(
                    line_no,
                    "'#' inside an unquoted value: quote the value (node dotenv would cut it \
                     there, other parsers keep it)",
                ));
            }
            None => text,
        };
        let text = text.trim_matches(is_js_space);
        if text.contains(['\u{2028}', '\u{2029}']) {
            // Node's quote-stripping regex treats them as line starts inside the value.
            return Err(error(
                line_no,
                "line separator U+2028/U+2029 in an unquoted value: quote the value",
            ));
        }
        let mut value = SecretBuf::with_capacity(text.len());
        value.push_str(text);
        Ok(value.into_inner())
    }

    /// Whether the line containing byte `after` continues from there with only whitespace and
    /// an optional `#` comment (node's `\s*(?:#.*)?$`).
    fn closes_cleanly(&self, after: usize) -> bool {
        for c in self.text[after..].chars() {
            if c == '\n' || c == '#' {
                return true;
            }
            if !is_js_space(c) {
                return false;
            }
        }
        true
    }

    /// Checks the rest of the closing quote's line and returns its end.
    fn after_close(&self, close: usize) -> Result<usize, ParseError> {
        let end = self.line_end(close);
        reject_js_line_breaks(&self.text[close + 1..end], self.line_of(close))?;
        Ok(end)
    }

    fn line_of(&self, at: usize) -> usize {
        self.line + self.text[self.pos..at].matches('\n').count()
    }

    /// Parses a quoted value whose opening quote is at byte `open`. Returns the value and the
    /// end of the line holding the closing quote.
    fn quoted(
        &self,
        quote: char,
        open: usize,
        escaped: bool,
    ) -> Result<(Zeroizing<String>, usize), ParseError> {
        if escaped {
            return self.escaped_double(open);
        }
        let start = open + 1;
        let bytes = self.text.as_bytes();
        let q = quote as u8;
        // Node's candidates for the closing quote: the first quote not paired with a preceding
        // backslash, then each paired quote before it, last first.
        let mut paired = Vec::new();
        let mut first_free = None;
        let mut i = start;
        while i < bytes.len() {
            if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&q) {
                paired.push(i + 1);
                i += 2;
            } else if bytes[i] == q {
                first_free = Some(i);
                break;
            } else {
                i += 1;
            }
        }
        let close = first_free
            .into_iter()
            .chain(paired.into_iter().rev())
            .find(|&at| self.closes_cleanly(at + 1));
        let Some(close) = close else {
            let kind = quote_name(quote);
            return Err(match first_free {
                Some(at) if self.line_of(at) == self.line => error(
                    self.line,
                    format!("unexpected text after the closing {kind} quote"),
                ),
                _ => error(
                    self.line,
                    format!("unterminated {kind} quote starting here"),
                ),
            });
        };
        let content = &self.text[start..close];
        let mut value = SecretBuf::with_capacity(content.len());
        if quote == '"' {
            let mut chars = content.chars().peekable();
            while let Some(c) = chars.next() {
                match (c, chars.peek()) {
                    ('\\', Some('n')) => {
                        chars.next();
                        value.push('\n');
                    }
                    ('\\', Some('r')) => {
                        chars.next();
                        value.push('\r');
                    }
                    _ => value.push(c),
                }
            }
        } else {
            value.push_str(content);
        }
        Ok((value.into_inner(), self.after_close(close)?))
    }

    /// A double-quoted value after [`ESCAPED_PRAGMA`]: `\\`, `\"`, `\$`, `\n`, `\r` escapes.
    fn escaped_double(&self, open: usize) -> Result<(Zeroizing<String>, usize), ParseError> {
        let mut value = SecretBuf::with_capacity(64);
        let mut chars = self.text[open + 1..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    let close = open + 1 + i;
                    if !self.closes_cleanly(close + 1) {
                        return Err(error(
                            self.line_of(close),
                            "unexpected text after the closing double quote",
                        ));
                    }
                    return Ok((value.into_inner(), self.after_close(close)?));
                }
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('$') => value.push('$'),
                    Some('n') => value.push('\n'),
                    Some('r') => value.push('\r'),
                    _ => {
                        return Err(error(
                            self.line_of(open + 1 + i),
                            "unknown escape sequence in a double-quoted value (after \
                             '# klef:escaped' only \\\\, \\\", \\$, \\n and \\r are allowed)",
                        ));
                    }
                },
                _ => value.push(c),
            }
        }
        Err(error(self.line, "unterminated double quote starting here"))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use crate::dotenv::ParseError;

    fn pairs(input: &str) -> Vec<(String, String)> {
        match parse(input) {
            Ok(entries) => entries
                .into_iter()
                .map(|e| (e.name, e.value.to_string()))
                .collect(),
            Err(e) => panic!("{input:?} failed: {e}"),
        }
    }

    fn kv(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// (what, input, expected key/value pairs).
    type GrammarCase<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

    #[test]
    fn grammar() {
        let cases: &[GrammarCase] = &[
            ("empty file", "", &[]),
            ("blank lines", "\n  \n\t\n", &[]),
            ("simple", "A=1\nB=two", &[("A", "1"), ("B", "two")]),
            (
                "export prefix",
                "export A=1\nexport\tB = 2",
                &[("A", "1"), ("B", "2")],
            ),
            ("export as key", "export=1\nexport = 2", &[("export", "2")]),
            ("colon form", "A: 1\nB:\tx y", &[("A", "1"), ("B", "x y")]),
            ("spaces around =", "  A  =  value  ", &[("A", "value")]),
            ("unquoted inner spaces", "A=a b  c", &[("A", "a b  c")]),
            (
                "empty values",
                "A=\nB=   \nC= # c\nD=#c",
                &[("A", ""), ("B", ""), ("C", ""), ("D", "")],
            ),
            ("full-line comments", "# c\n  # d\nA=1 # e", &[("A", "1")]),
            (
                "inline comment after quote",
                "A='x' # c\nB=\"y\"#c",
                &[("A", "x"), ("B", "y")],
            ),
            (
                "unquoted keeps quotes inside",
                "A=it's\nB=a\"b\"",
                &[("A", "it's"), ("B", "a\"b\"")],
            ),
            (
                "unquoted keeps backslashes",
                r"A=a\nb\\c",
                &[("A", r"a\nb\\c")],
            ),
            (
                "single quotes are raw",
                r"A='a\nb $X \\'",
                &[("A", r"a\nb $X \\")],
            ),
            (
                "backticks are raw",
                r"A=`it's a \n`",
                &[("A", r"it's a \n")],
            ),
            (
                "double quotes expand \\n \\r",
                r#"A="a\nb\rc\td""#,
                &[("A", "a\nb\rc\\td")],
            ),
            (
                "double keeps escaped quote",
                r#"A="x\"y""#,
                &[("A", r#"x\"y"#)],
            ),
            (
                "quoted spaces kept",
                "A='  x  '\nB=\"\"",
                &[("A", "  x  "), ("B", "")],
            ),
            (
                "hash inside quotes",
                "A='a#b' #c\nB=\"#\"",
                &[("A", "a#b"), ("B", "#")],
            ),
            (
                "multi-line single",
                "A='line1\nline2'\nB=1",
                &[("A", "line1\nline2"), ("B", "1")],
            ),
            (
                "multi-line double",
                "A=\"l1\n# not a comment\nl3\"",
                &[("A", "l1\n# not a comment\nl3")],
            ),
            ("multi-line backtick", "A=`x\ny`", &[("A", "x\ny")]),
            (
                "crlf",
                "A=1\r\nB='x\r\ny'\r\n",
                &[("A", "1"), ("B", "x\ny")],
            ),
            ("lone cr", "A=1\rB=2", &[("A", "1"), ("B", "2")]),
            (
                "later duplicate wins in place",
                "A=1\nB=2\nA=3",
                &[("A", "3"), ("B", "2")],
            ),
            ("bom", "\u{feff}A=1", &[("A", "1")]),
            ("js whitespace trimmed", "A=\u{a0}x\u{3000}", &[("A", "x")]),
            ("nel is not whitespace", "A=\u{85}x", &[("A", "\u{85}x")]),
            ("non-ascii", "A=héllo wörld ✓", &[("A", "héllo wörld ✓")]),
            ("pair then clean close", r"A='a\'b'", &[("A", r"a\'b")]),
            (
                "backslash before close",
                "A='a\\' # c\nB='x'",
                &[("A", "a\\"), ("B", "x")],
            ),
            (
                "escaped pragma",
                "# klef:escaped\nA=\"a\\\\n\\\"b\\$\\r\\n\"",
                &[("A", "a\\n\"b$\r\n")],
            ),
        ];
        for (what, input, expected) in cases {
            assert_eq!(pairs(input), kv(expected), "{what}");
        }
    }

    #[test]
    fn errors() {
        let cases: &[(&str, &str, usize, &str)] = &[
            ("no separator", "A=1\nJUSTTEXT\n", 2, "expected KEY=VALUE"),
            ("space in key", "MY KEY=1", 1, "expected KEY=VALUE"),
            (
                "colon without space",
                "A=1\n\nB:x",
                3,
                "expected a space and a value after ':'",
            ),
            (
                "colon at end of line",
                "B:\nC=1",
                1,
                "expected a space and a value after ':'",
            ),
            ("empty key", "=1", 1, "expected a key name"),
            (
                "dash in key",
                "A=1\nMY-KEY=1",
                2,
                "invalid key name: only letters",
            ),
            ("dot in key", "APP.NAME=1", 1, "invalid key name"),
            ("digit first", "1A=1", 1, "invalid key name: it must start"),
            ("export alone", "export", 1, "expected KEY=VALUE"),
            ("export without =", "export A", 1, "expected KEY=VALUE"),
            (
                "unterminated double",
                "A=1\nB=\"abc\nC=2\n",
                2,
                "unterminated double quote starting here",
            ),
            (
                "unterminated single",
                "A='abc",
                1,
                "unterminated single quote starting here",
            ),
            (
                "unterminated backtick",
                "A=`abc",
                1,
                "unterminated backtick quote starting here",
            ),
            (
                "text after quote",
                "A='it's'",
                1,
                "unexpected text after the closing single quote",
            ),
            (
                "two quoted parts",
                "A=\"a\" \"b\"",
                1,
                "unexpected text after the closing double quote",
            ),
            (
                "close on later line then junk",
                "A=\"x\nB=\"y\"",
                1,
                "unterminated double quote",
            ),
            (
                "hash glued to value",
                "A=abc#def",
                1,
                "'#' inside an unquoted value",
            ),
            (
                "pragma then blank",
                "# klef:escaped\n\nA=\"x\"",
                1,
                "must be followed directly",
            ),
            (
                "pragma then unquoted",
                "# klef:escaped\nA=x",
                1,
                "must be followed directly",
            ),
            (
                "pragma then single",
                "# klef:escaped\nA='x'",
                1,
                "must be followed directly",
            ),
            (
                "pragma at end",
                "A=1\n# klef:escaped",
                2,
                "must be followed directly",
            ),
            (
                "pragma bad escape",
                "# klef:escaped\nA=\"\\t\"",
                2,
                "unknown escape sequence",
            ),
            (
                "pragma unterminated",
                "# klef:escaped\nA=\"\\\"",
                2,
                "unterminated double quote",
            ),
            (
                "pragma junk after",
                "# klef:escaped\nA=\"x\"y",
                2,
                "unexpected text after",
            ),
            (
                "line numbers count crlf",
                "A=1\r\n\r\nB",
                3,
                "expected KEY=VALUE",
            ),
            (
                "line numbers after multi-line",
                "A='x\ny'\nB",
                3,
                "expected KEY=VALUE",
            ),
            ("space before colon", "A : 1", 1, "expected KEY=VALUE"),
            ("u2028 in comment", "# c\u{2028}B=1", 1, "U+2028"),
            (
                "u2028 after quote",
                "A='x'\n'y' #\u{2029}B=1",
                2,
                "expected KEY=VALUE",
            ),
            ("u2028 after closing", "A='x\ny' #\u{2029}B=1", 2, "U+2028"),
            ("u2028 in inline comment", "A=x #\u{2028}B=1", 1, "U+2028"),
            ("u2028 in unquoted", "A=x\u{2028}'y'", 1, "U+2028"),
        ];
        for (what, input, line, message) in cases {
            match parse(input) {
                Err(ParseError {
                    line: got_line,
                    message: got,
                }) => {
                    assert_eq!(got_line, *line, "{what}: {got}");
                    assert!(got.contains(message), "{what}: {got:?} lacks {message:?}");
                }
                Ok(entries) => panic!("{what}: parsed {entries:?}"),
            }
        }
    }

    #[test]
    fn errors_never_contain_values() {
        let secret = "hunter2-SECRET";
        for input in [
            format!("{secret}\n"),
            format!("{secret}=x"),
            format!("A=\"{secret}"),
            format!("A='{secret}' junk"),
            format!("A={secret}#x"),
            format!("sk-{secret}=1"),
            format!("# klef:escaped\nA=\"{secret}\\q\""),
        ] {
            let err = parse(&input).expect_err(&input);
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn value_size_limit() {
        let max = crate::names::MAX_VALUE_LEN;
        let ok = format!("A='{}'", "x".repeat(max));
        assert_eq!(parse(&ok).map(|e| e[0].value.len()), Ok(max));
        let too_big = format!("A=1\nB='{}'", "x".repeat(max + 1));
        let err = parse(&too_big).expect_err("too big");
        assert_eq!(err.line, 2);
        assert!(err.message.contains("1 MiB"), "{err}");
        let unquoted = format!("B={}", "y".repeat(max + 1));
        assert_eq!(parse(&unquoted).map_err(|e| e.line), Err(1));
    }

    #[test]
    fn many_backslash_quotes_are_linear() {
        // Each `\'` is a closing candidate; this must not take quadratic time.
        let input = format!("A='{}x", "\\'".repeat(200_000));
        let err = parse(&input).expect_err("no clean close");
        assert_eq!(err.line, 1);
        let input = format!("A='{}", "\\'".repeat(200_000));
        let value = parse(&input).map(|e| e[0].value.len());
        assert_eq!(value, Ok(400_000 - 1));
    }
}
