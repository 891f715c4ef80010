//! Templates for `klef inject`: text with `{{klef:REF}}` placeholders, where `REF` is a
//! reference as in [`crate::refs`] (`KEY`, `staging.KEY`, `other-project/production.KEY`).
//! Spaces are allowed inside the braces (`{{ klef:KEY }}`). Every other `{{ … }}` is text, so
//! Go templates, Helm, Jinja, Handlebars and GitHub Actions' `${{ … }}` pass through untouched;
//! why this syntax: docs/decisions/0019-template-syntax.md.
//!
//! Values are inserted as they are (no quoting); the text around them is kept byte for byte.
//!
//! ```
//! use klef_core::template::{Part, parse, render};
//! let parts = parse("url: {{ klef:DB_URL }}\nreplicas: {{ .Values.n }}\n").unwrap();
//! let out = render(&parts, |r| if r.key == "DB_URL" { "postgres://db" } else { "?" });
//! assert_eq!(out.as_str(), "url: postgres://db\nreplicas: {{ .Values.n }}\n");
//! ```

use zeroize::Zeroizing;

use crate::refs::Reference;

/// What opens a placeholder after `{{` and optional spaces.
pub const TAG: &str = "klef:";

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part<'a> {
    /// Text kept as it is.
    Text(&'a str),
    /// A placeholder, replaced by the resolved value of its reference.
    Placeholder {
        /// What it refers to.
        reference: Reference,
        /// Its line (1-based), for messages.
        line: usize,
    },
}

/// A malformed placeholder. The message never quotes the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct TemplateError {
    /// The line (1-based) of the placeholder.
    pub line: usize,
    /// What is wrong.
    pub problem: &'static str,
}

/// Splits a template into text and placeholders.
pub fn parse(template: &str) -> Result<Vec<Part<'_>>, TemplateError> {
    let mut parts = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    while let Some(off) = template[i..].find("{{") {
        let open = i + off;
        let inner = open + 2;
        let after_spaces = inner + template[inner..].len()
            - template[inner..].trim_start_matches([' ', '\t']).len();
        if !template[after_spaces..].starts_with(TAG) {
            i = inner;
            continue;
        }
        let line = 1 + template[..open].matches('\n').count();
        let body_start = after_spaces + TAG.len();
        let Some(len) = template[body_start..].find("}}") else {
            return Err(TemplateError {
                line,
                problem: "`{{klef:` is not closed by `}}`",
            });
        };
        let body = template[body_start..body_start + len].trim_matches([' ', '\t']);
        let reference =
            Reference::parse(body).map_err(|problem| TemplateError { line, problem })?;
        if text_start < open {
            parts.push(Part::Text(&template[text_start..open]));
        }
        parts.push(Part::Placeholder { reference, line });
        i = body_start + len + 2;
        text_start = i;
    }
    if text_start < template.len() {
        parts.push(Part::Text(&template[text_start..]));
    }
    Ok(parts)
}

/// The template with every placeholder replaced by `value(reference)`.
pub fn render<'v>(
    parts: &[Part<'_>],
    mut value: impl FnMut(&Reference) -> &'v str,
) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::new());
    for p in parts {
        match p {
            Part::Text(t) => out.push_str(t),
            Part::Placeholder { reference, .. } => out.push_str(value(reference)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn placeholders_and_foreign_syntax() {
        let t = "a: {{klef:A}}\nb: {{ klef:staging.B }}\nc: {{\tklef:p q/prod.C\t}}\n\
                 go: {{ .Values.x }} {{ klef \"X\" }} ${{ secrets.Y }} {{{raw}}} {{#if a}}{{/if}}\n";
        let parts = parse(t).unwrap();
        let refs: Vec<(String, usize)> = parts
            .iter()
            .filter_map(|p| match p {
                Part::Placeholder { reference, line } => Some((reference.to_string(), *line)),
                Part::Text(_) => None,
            })
            .collect();
        assert_eq!(
            refs,
            [
                ("A".to_owned(), 1),
                ("staging.B".to_owned(), 2),
                ("p q/prod.C".to_owned(), 3)
            ]
        );
        let out = render(&parts, |r| match r.key.as_str() {
            "A" => "1",
            "B" => "2",
            _ => "3",
        });
        assert_eq!(
            out.as_str(),
            "a: 1\nb: 2\nc: 3\ngo: {{ .Values.x }} {{ klef \"X\" }} ${{ secrets.Y }} {{{raw}}} {{#if a}}{{/if}}\n"
        );
    }

    #[test]
    fn malformed_placeholders_name_the_line() {
        assert_eq!(parse("x\n{{klef:A").unwrap_err().line, 2);
        assert_eq!(parse("\n\n{{ klef: }}").unwrap_err().line, 3);
        assert_eq!(parse("{{klef:a-b}}").unwrap_err().line, 1);
        assert_eq!(parse("{{klef:p/A}}").unwrap_err().line, 1);
    }

    proptest! {
        /// Rendering inserts each value exactly where its placeholder was: the output, split
        /// at the known text around the placeholders, gives the values back.
        #[test]
        fn rendered_output_gives_the_values_back(
            texts in prop::collection::vec("[a-z {}:\n]{0,8}", 1..6),
            values in prop::collection::vec(any::<String>(), 6),
        ) {
            let mut template = String::new();
            for (i, t) in texts.iter().enumerate() {
                // Keep the text from forming a placeholder with what follows it.
                let t = t.replace('{', "(");
                template.push_str(&t);
                template.push_str("{{klef:K");
                template.push_str(&i.to_string());
                template.push_str("}}");
            }
            let parts = parse(&template).unwrap();
            let out = render(&parts, |r| {
                let i: usize = r.key[1..].parse().unwrap();
                values[i].as_str()
            });
            let mut rest = out.as_str();
            for (i, t) in texts.iter().enumerate() {
                let t = t.replace('{', "(");
                rest = rest.strip_prefix(t.as_str()).expect("text kept");
                rest = rest.strip_prefix(values[i].as_str()).expect("value inserted");
            }
            prop_assert_eq!(rest, "");
        }

        /// Any text at all parses or fails with a line number, never panics.
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            if let Err(e) = parse(&s) {
                prop_assert!(e.line >= 1);
            }
        }
    }
}
