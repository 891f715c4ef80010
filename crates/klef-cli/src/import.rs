//! Reading files of names and values in the formats `klef push` imports and `klef pull`
//! checks before it overwrites: dotenv (klef's own parser), a JSON object of string values, and
//! a YAML mapping of string values, so exports of other tools can be imported.
//!
//! JSON goes through `serde_json` and YAML through `yaml-rust2`'s event parser (not its
//! document loader): the mapping is read event by event, so an alias is refused instead of
//! expanded (no "billion laughs"), a nested value is refused at its first event, and a plain
//! scalar that YAML resolves to something other than a string (`5432`, `true`, `~`) is refused
//! instead of being turned into a different text. Every refusal names the key and the kind of
//! value, never the value itself.

use std::fmt;
use std::path::Path;

use klef_core::dotenv::{self, Entry};
use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use zeroize::Zeroizing;

/// A file format of names and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `KEY=value` lines.
    Dotenv,
    /// One JSON object of string values.
    Json,
    /// One YAML mapping of string values.
    Yaml,
}

impl Format {
    /// `dotenv`, `JSON`, `YAML`, for messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Dotenv => "dotenv",
            Self::Json => "JSON",
            Self::Yaml => "YAML",
        }
    }

    /// The format a file name says (`.json`, `.yaml`, `.yml`), if any.
    pub(crate) fn from_extension(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "json" => Some(Self::Json),
            "yaml" | "yml" => Some(Self::Yaml),
            _ => None,
        }
    }

    /// The format of a file: from its extension, else from its first line that is neither
    /// blank nor a `#` comment (`{` starts JSON; `---`, `%YAML` or a quoted key starts YAML,
    /// since no dotenv name starts with a quote), else dotenv.
    pub(crate) fn detect(path: &Path, text: &str) -> Self {
        if let Some(f) = Self::from_extension(path) {
            return f;
        }
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let first = text
            .lines()
            .map(str::trim_start)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .unwrap_or_default();
        if first.starts_with('{') {
            Self::Json
        } else if first.starts_with("---")
            || first.starts_with("%YAML")
            || first.starts_with(['"', '\''])
        {
            Self::Yaml
        } else {
            Self::Dotenv
        }
    }
}

/// Why a file could not be read. The message never contains a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) struct ImportError {
    /// 1-based line, where known.
    pub(crate) line: Option<usize>,
    /// What is wrong, lower-case.
    pub(crate) message: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl ImportError {
    fn at(line: usize, message: impl Into<String>) -> Self {
        Self {
            line: Some(line),
            message: message.into(),
        }
    }
}

/// Parses `text` in `format`. Later duplicates win in dotenv (as node `dotenv` does); in JSON
/// and YAML a key given twice is an error.
pub(crate) fn parse(text: &str, format: Format) -> Result<Vec<Entry>, ImportError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format {
        Format::Dotenv => dotenv::parse(text).map_err(|e| ImportError {
            line: Some(e.line),
            message: e.message,
        }),
        Format::Json => json(text),
        Format::Yaml => yaml(text),
    }
}

/// A hint for a dotenv file that failed to parse but reads in another format.
pub(crate) fn other_format_hint(text: &str) -> Option<&'static str> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_start().starts_with('{') && json(text).is_ok() {
        Some("the file is a JSON object: pass --format json")
    } else if yaml(text).is_ok() {
        Some("the file reads as YAML: pass --format yaml")
    } else {
        None
    }
}

/// The names of a file `klef pull --format shell` wrote: `export NAME='…'` lines, where a
/// value's `'` is written `'\''`, and `#` comment lines. `None` for anything else. (The dotenv
/// parser reads these lines too, but not a value with a `'` in it.)
pub(crate) fn shell_names(text: &str) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(['\n', '\r', ' ', '\t']);
        if rest.is_empty() {
            return Some(names);
        }
        if rest.starts_with('#') {
            rest = rest.split_once('\n').map_or("", |(_, r)| r);
            continue;
        }
        rest = rest.strip_prefix("export ")?.trim_start_matches(' ');
        let (name, value) = rest.split_once('=')?;
        klef_core::names::validate_key_name(name).ok()?;
        rest = value;
        loop {
            if let Some(quoted) = rest.strip_prefix('\'') {
                rest = &quoted[quoted.find('\'')? + 1..];
            } else if let Some(r) = rest.strip_prefix("\\'") {
                rest = r;
            } else {
                break;
            }
        }
        if !(rest.is_empty() || rest.starts_with(['\n', '\r'])) {
            return None;
        }
        names.push(name.to_owned());
    }
}

/// Checks for a key given twice.
fn push_unique(
    entries: &mut Vec<Entry>,
    seen: &mut std::collections::HashSet<String>,
    entry: Entry,
    line: Option<usize>,
) -> Result<(), ImportError> {
    if !seen.insert(entry.name.clone()) {
        return Err(ImportError {
            line,
            message: format!("\"{}\" is given twice", entry.name),
        });
    }
    entries.push(entry);
    Ok(())
}

// ---- JSON ----

/// A JSON value as far as the import cares: a string, or the kind of anything else.
enum JsonValue {
    Text(Zeroizing<String>),
    Other(&'static str),
}

/// The object's members in file order.
struct JsonObject(Vec<(String, JsonValue)>);

fn json(text: &str) -> Result<Vec<Entry>, ImportError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let object = de
        .deserialize_any(ObjectVisitor)
        .and_then(|o| de.end().map(|()| o))
        .map_err(|e| ImportError {
            line: None,
            message: json_error(&e),
        })?;
    let mut entries = Vec::with_capacity(object.0.len());
    let mut seen = std::collections::HashSet::new();
    for (name, value) in object.0 {
        match value {
            JsonValue::Text(value) => {
                push_unique(&mut entries, &mut seen, Entry { name, value }, None)?;
            }
            JsonValue::Other(kind) => return Err(not_a_string(None, &name, kind)),
        }
    }
    Ok(entries)
}

/// `serde_json`'s message; its syntax errors name a position, never the text there.
fn json_error(e: &serde_json::Error) -> String {
    e.to_string()
}

fn not_a_string(line: Option<usize>, name: &str, kind: &str) -> ImportError {
    ImportError {
        line,
        message: format!(
            "the value of \"{name}\" is {kind}; only string values can be imported (quote it to import it as text)"
        ),
    }
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = JsonObject;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of names to string values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonObject, A::Error> {
        let mut members = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            let value = map.next_value_seed(ValueSeed)?;
            members.push((name, value));
        }
        Ok(JsonObject(members))
    }
}

struct ValueSeed;

impl<'de> de::DeserializeSeed<'de> for ValueSeed {
    type Value = JsonValue;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<JsonValue, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

/// Accepts every JSON value (so serde never puts one in an error message) and keeps only
/// strings.
struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = JsonValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<JsonValue, E> {
        Ok(JsonValue::Text(Zeroizing::new(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<JsonValue, E> {
        Ok(JsonValue::Text(Zeroizing::new(v)))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<JsonValue, E> {
        Ok(JsonValue::Other("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<JsonValue, E> {
        Ok(JsonValue::Other("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<JsonValue, E> {
        Ok(JsonValue::Other("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<JsonValue, E> {
        Ok(JsonValue::Other("a number"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<JsonValue, E> {
        Ok(JsonValue::Other("null"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonValue, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(JsonValue::Other("a nested object"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonValue, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(JsonValue::Other("a list"))
    }
}

// ---- YAML ----

fn yaml(text: &str) -> Result<Vec<Entry>, ImportError> {
    let mut events = YamlEvents(Parser::new_from_str(text));
    let mut entries = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let (ev, _) = events.next()?;
    if ev != Event::StreamStart {
        return Err(ImportError::at(1, "not a YAML stream"));
    }
    let (ev, mark) = events.next()?;
    match ev {
        Event::StreamEnd => return Ok(entries),
        Event::DocumentStart => {}
        _ => return Err(ImportError::at(line(mark), "not a YAML document")),
    }
    let (ev, mark) = events.next()?;
    match ev {
        Event::MappingStart(_, tag) if tag.is_none() => {}
        // An empty document (`---` alone).
        Event::Scalar(s, TScalarStyle::Plain, _, None) if s.is_empty() || s == "~" => {
            return finish(&mut events, entries);
        }
        _ => return Err(ImportError::at(line(mark), NOT_A_MAPPING)),
    }
    loop {
        let (ev, key_mark) = events.next()?;
        let name = match ev {
            Event::MappingEnd => break,
            Event::Scalar(name, _, _, None) => name,
            _ => {
                return Err(ImportError::at(
                    line(key_mark),
                    "a key must be a name (KEY: value)",
                ));
            }
        };
        // Errors name the key's line: a block list's first item is on the next one.
        let (ev, _) = events.next()?;
        let at = line(key_mark);
        let value = match ev {
            Event::Scalar(value, style, _, tag) => {
                let value = Zeroizing::new(value);
                if let Some(kind) = non_string(&value, style, tag.as_ref()) {
                    return Err(not_a_string(Some(at), &name, kind));
                }
                value
            }
            Event::MappingStart(..) => {
                return Err(not_a_string(Some(at), &name, "a nested mapping"));
            }
            Event::SequenceStart(..) => {
                return Err(not_a_string(Some(at), &name, "a list"));
            }
            Event::Alias(_) => {
                return Err(ImportError::at(
                    at,
                    format!(
                        "the value of \"{name}\" is an alias (*anchor); aliases are not supported"
                    ),
                ));
            }
            _ => return Err(ImportError::at(at, NOT_A_MAPPING)),
        };
        push_unique(
            &mut entries,
            &mut seen,
            Entry { name, value },
            Some(line(key_mark)),
        )?;
    }
    finish(&mut events, entries)
}

const NOT_A_MAPPING: &str = "expected a mapping of names to string values (KEY: value lines)";

/// After the mapping: the document's end, then the stream's (one document only).
fn finish(events: &mut YamlEvents<'_>, entries: Vec<Entry>) -> Result<Vec<Entry>, ImportError> {
    let (ev, mark) = events.next()?;
    if ev != Event::DocumentEnd {
        return Err(ImportError::at(line(mark), NOT_A_MAPPING));
    }
    let (ev, mark) = events.next()?;
    if ev != Event::StreamEnd {
        return Err(ImportError::at(
            line(mark),
            "the file holds more than one YAML document; import one at a time",
        ));
    }
    Ok(entries)
}

struct YamlEvents<'a>(Parser<std::str::Chars<'a>>);

impl YamlEvents<'_> {
    fn next(&mut self) -> Result<(Event, Marker), ImportError> {
        self.0.next_token().map_err(|e| {
            // The scanner's messages describe the syntax; the one that quotes a character
            // only ever quotes `%`, `@` or a backtick.
            ImportError::at(line(*e.marker()), e.info().to_owned())
        })
    }
}

/// yaml-rust2's lines start at 1, but an error at the very start may report 0.
fn line(mark: Marker) -> usize {
    mark.line().max(1)
}

/// What a scalar is when it is not a string: a plain scalar is resolved with YAML 1.2's core
/// schema (null, booleans, integers, floats); a quoted or block scalar, or one tagged `!!str`,
/// is a string.
fn non_string(value: &str, style: TScalarStyle, tag: Option<&Tag>) -> Option<&'static str> {
    if let Some(tag) = tag {
        let core = tag.handle == "!!" || tag.handle == "tag:yaml.org,2002:";
        return if core && tag.suffix == "str" {
            None
        } else {
            Some("a tagged value (only !!str is supported)")
        };
    }
    if style != TScalarStyle::Plain {
        return None;
    }
    match value {
        "" | "~" | "null" | "Null" | "NULL" => Some("empty (null; write \"\" for an empty text)"),
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => Some("a boolean"),
        _ if is_yaml_number(value) => Some("a number"),
        _ => None,
    }
}

/// YAML 1.2 core schema numbers: `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`,
/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, `[-+]?.inf` and `.nan` spellings.
fn is_yaml_number(v: &str) -> bool {
    let digits = |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    if let Some(h) = v.strip_prefix("0x") {
        return digits(h, 16);
    }
    if let Some(o) = v.strip_prefix("0o") {
        return digits(o, 8);
    }
    if matches!(v, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let unsigned = v.strip_prefix(['-', '+']).unwrap_or(v);
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    if let Some(exp) = exponent
        && !digits(exp.strip_prefix(['-', '+']).unwrap_or(exp), 10)
    {
        return false;
    }
    match mantissa.split_once('.') {
        None => digits(mantissa, 10),
        Some((int, frac)) => {
            (int.is_empty() && digits(frac, 10))
                || (digits(int, 10) && (frac.is_empty() || digits(frac, 10)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_values(entries: &[Entry]) -> Vec<(String, String)> {
        entries
            .iter()
            .map(|e| (e.name.clone(), e.value.to_string()))
            .collect()
    }

    #[test]
    fn detects_by_extension_then_content() {
        let p = Path::new;
        assert_eq!(Format::detect(p("x.JSON"), "A=1"), Format::Json);
        assert_eq!(Format::detect(p("x.yml"), "{}"), Format::Yaml);
        assert_eq!(Format::detect(p(".env"), " \n{\"A\":\"1\"}"), Format::Json);
        assert_eq!(Format::detect(p(".env"), "\u{feff}{}"), Format::Json);
        assert_eq!(Format::detect(p("x"), "---\nA: b\n"), Format::Yaml);
        assert_eq!(Format::detect(p("x"), "%YAML 1.2\n---\n"), Format::Yaml);
        assert_eq!(Format::detect(p("x"), "# c\n\"A\": \"1\"\n"), Format::Yaml);
        assert_eq!(Format::detect(p(".env"), "A=1\n"), Format::Dotenv);
        assert_eq!(Format::detect(p(".env"), "A: {x}\n"), Format::Dotenv);
    }

    #[test]
    fn json_object_of_strings() {
        let e = parse(
            "{\"A\": \"1\", \"B\": \"two\\nlines \\u00e9\", \"C\": \"\"}",
            Format::Json,
        )
        .unwrap();
        assert_eq!(
            names_values(&e),
            [
                ("A".into(), "1".into()),
                ("B".into(), "two\nlines é".into()),
                ("C".into(), String::new())
            ]
        );
        assert!(parse("{}", Format::Json).unwrap().is_empty());
    }

    #[test]
    fn json_refusals_name_the_key_never_the_value() {
        let cases = [
            ("{\"PORT\": 5432}", "\"PORT\" is a number"),
            ("{\"ON\": true}", "\"ON\" is a boolean"),
            ("{\"N\": null}", "\"N\" is null"),
            (
                "{\"DB\": {\"host\": \"secret-host\"}}",
                "\"DB\" is a nested object",
            ),
            ("{\"L\": [\"secret-item\"]}", "\"L\" is a list"),
            ("{\"A\": \"1\", \"A\": \"2\"}", "\"A\" is given twice"),
        ];
        for (text, want) in cases {
            let err = parse(text, Format::Json).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
            assert!(!err.contains("secret") && !err.contains("5432"), "{err}");
        }
        for bad in ["[\"A\"]", "\"A\"", "{\"A\": \"1\"", "{\"A\": \"1\"} x", ""] {
            let err = parse(bad, Format::Json).unwrap_err().to_string();
            assert!(!err.is_empty(), "{bad}");
        }
    }

    #[test]
    fn yaml_mapping_of_strings() {
        let text = "# exported\n---\nA: plain words\n\"B\": \"esc\\n\\x01\"\nC: 'it''s'\nD: |\n  two\n  lines\nE: !!str 5432\nF: \"\"\nG: 0123abc\n";
        let e = parse(text, Format::Yaml).unwrap();
        assert_eq!(
            names_values(&e),
            [
                ("A".into(), "plain words".into()),
                ("B".into(), "esc\n\u{1}".into()),
                ("C".into(), "it's".into()),
                ("D".into(), "two\nlines\n".into()),
                ("E".into(), "5432".into()),
                ("F".into(), String::new()),
                ("G".into(), "0123abc".into()),
            ]
        );
        for empty in ["", "---\n", "{}\n", "# nothing\n"] {
            assert!(parse(empty, Format::Yaml).unwrap().is_empty(), "{empty:?}");
        }
    }

    #[test]
    fn yaml_refusals_name_the_key_and_line_never_the_value() {
        let cases = [
            (
                "A: x\nPORT: 5432\n",
                "line 2: the value of \"PORT\" is a number",
            ),
            ("R: -1.5e3\n", "\"R\" is a number"),
            ("R: .inf\n", "\"R\" is a number"),
            ("H: 0x1F\n", "\"H\" is a number"),
            ("B: true\n", "\"B\" is a boolean"),
            ("N:\n", "\"N\" is empty"),
            ("N: ~\n", "\"N\" is empty"),
            ("DB:\n  host: secret-host\n", "\"DB\" is a nested mapping"),
            ("L: [secret-item]\n", "\"L\" is a list"),
            ("L:\n  - secret-item\n", "\"L\" is a list"),
            ("A: &x secret-anchor\nB: *x\n", "\"B\" is an alias"),
            ("T: !!binary c2VjcmV0\n", "\"T\" is a tagged value"),
            ("A: x\nA: y\n", "line 2: \"A\" is given twice"),
            ("A: x\n---\nB: y\n", "more than one YAML document"),
            ("- secret-item\n", "expected a mapping"),
            ("just-a-secret-scalar\n", "expected a mapping"),
            ("? [k]\n: v\n", "a key must be a name"),
        ];
        for (text, want) in cases {
            let err = parse(text, Format::Yaml).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(!err.contains("secret") && !err.contains("5432"), "{err}");
        }
        // Syntax errors carry a line.
        let err = parse("A: x\nB: \"unterminated\n", Format::Yaml).unwrap_err();
        assert!(err.line.is_some(), "{err}");
    }

    #[test]
    fn deep_nesting_and_alias_bombs_stop_at_the_first_event() {
        use std::fmt::Write as _;
        let deep = format!("A: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(&deep, Format::Yaml).is_err());
        let deep_json = format!("{{\"A\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(&deep_json, Format::Json).is_err());
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
        for i in 0..20 {
            let _ = writeln!(bomb, "b{i}: &b{i} [*a, *a, *a, *a, *a, *a, *a, *a, *a]");
        }
        assert!(parse(&bomb, Format::Yaml).is_err());
    }

    #[test]
    fn yaml_numbers() {
        for n in [
            "0", "-1", "+7", "1.5", ".5", "1.", "1e3", "1.5E-3", "0o17", "0xff", ".NaN", "-.inf",
        ] {
            assert!(is_yaml_number(n), "{n}");
        }
        for s in [
            "1.2.3", "e3", "1e", "0x", "1_000", "12:30", "v1", "-", ".", "1e+", "0b1",
        ] {
            assert!(!is_yaml_number(s), "{s}");
        }
    }

    #[test]
    fn what_pull_writes_push_reads_back() {
        let entries = vec![
            Entry::new("A", "x"),
            Entry::new("NO", "it's \"q\"\n\u{1}\u{2028}"),
            Entry::new("PORT", "5432"),
            Entry::new("EMPTY", ""),
            Entry::new("T", "true"),
            Entry::new("TAB", "\t lead and trail \u{7f}\u{85} "),
        ];
        for (render, format) in [
            (dotenv::Format::Json, Format::Json),
            (dotenv::Format::Yaml, Format::Yaml),
            (dotenv::Format::Dotenv, Format::Dotenv),
        ] {
            let text = dotenv::render(&entries, render);
            assert_eq!(parse(&text, format).unwrap(), entries, "{render:?}");
            assert_eq!(Format::detect(Path::new("out"), &text), format,);
        }
    }

    #[test]
    fn shell_export_names() {
        let entries = vec![
            Entry::new("A", "x"),
            Entry::new("Q", "it's '' \"q\"\n# not a comment\nexport B='"),
            Entry::new("EMPTY", ""),
        ];
        let text = dotenv::render(&entries, dotenv::Format::Shell);
        assert_eq!(
            shell_names(&format!("# a comment\n{}", text.as_str())).unwrap(),
            ["A", "Q", "EMPTY"]
        );
        assert_eq!(shell_names("").unwrap(), Vec::<String>::new());
        for bad in [
            "A=1\n",
            "export A='x' y\n",
            "export A='x\n",
            "export 1A='x'\n",
            "export A=x\n",
        ] {
            assert_eq!(shell_names(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn other_format_hints() {
        assert!(
            other_format_hint("{\"A\": \"1\"}")
                .unwrap()
                .contains("json")
        );
        assert!(
            other_format_hint("\"A\": \"1\"\n")
                .unwrap()
                .contains("yaml")
        );
        assert_eq!(other_format_hint("A B C\n: :\n- [\n"), None);
    }
}
