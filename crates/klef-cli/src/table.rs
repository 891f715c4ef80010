//! Plain, aligned text tables for listings (the `--json` forms carry the same data) and the
//! timestamp format they use.

use std::time::{Duration, UNIX_EPOCH};

use klef_core::model::Timestamp;

/// Renders rows under a header, columns separated by two spaces, no trailing spaces. Control
/// characters in cells (a server's names could carry terminal escapes or newlines) are shown
/// escaped, so every row is one line of plain text.
pub(crate) fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| printable(c)).collect())
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            l.push_str(cell);
            let pad = widths
                .get(i)
                .copied()
                .unwrap_or(0)
                .saturating_sub(cell.chars().count());
            l.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// `text` with every control character escaped (`\u{1b}`, `\n`).
pub(crate) fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The last instant RFC 3339 can write, `9999-12-31T23:59:59.999Z`, in unix milliseconds.
/// `humantime` panics on anything later.
const LAST_RFC3339_MS: Timestamp = 253_402_300_799_999;

/// RFC 3339 in UTC with second precision, e.g. `2026-11-27T15:49:56Z`. Timestamps come from
/// the server, an adversary: one before 1970 or after 9999 is shown as `-`, never a panic.
pub(crate) fn time(ts: Timestamp) -> String {
    match u64::try_from(ts) {
        Ok(ms) if ts <= LAST_RFC3339_MS => {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        }
        _ => "-".to_owned(),
    }
}

/// An expiry time: [`time`], or `None` for "never" (the server sends `i64::MAX` for API keys,
/// which do not expire; anything past year 9999 is taken the same way).
pub(crate) fn expiry(ts: Timestamp) -> Option<String> {
    (ts <= LAST_RFC3339_MS).then(|| time(ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let t = render(
            &["NAME", "VERSION"],
            &[
                vec!["A".into(), "1".into()],
                vec!["LONGER".into(), "12".into()],
            ],
        );
        assert_eq!(t, "NAME    VERSION\nA       1\nLONGER  12\n");
    }

    #[test]
    fn formats_time() {
        assert_eq!(time(0), "1970-01-01T00:00:00Z");
        assert_eq!(time(1_500), "1970-01-01T00:00:01Z");
        assert_eq!(time(LAST_RFC3339_MS), "9999-12-31T23:59:59Z");
        assert_eq!(time(LAST_RFC3339_MS + 1), "-");
        assert_eq!(time(i64::MAX), "-");
        assert_eq!(time(-1), "-");
        assert_eq!(expiry(i64::MAX), None);
        assert_eq!(expiry(0).as_deref(), Some("1970-01-01T00:00:00Z"));
    }

    proptest::proptest! {
        /// Any timestamp a server sends formats without a panic, as RFC 3339 or `-`.
        #[test]
        fn any_timestamp_formats(ts in proptest::num::i64::ANY) {
            let s = time(ts);
            proptest::prop_assert!(s == "-" || s.ends_with('Z'), "{}", s);
            let _ = expiry(ts);
        }

        /// Any table of server-supplied text renders, one line per row plus the header.
        #[test]
        fn any_table_renders(rows in proptest::collection::vec(
            proptest::collection::vec(".{0,40}", 0..6), 0..8)) {
            let out = render(&["A", "B", "C"], &rows);
            proptest::prop_assert_eq!(out.split('\n').count(), rows.len() + 2);
            proptest::prop_assert!(!out.chars().any(|c| c.is_control() && c != '\n'));
        }
    }
}
