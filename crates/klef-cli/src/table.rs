//! Plain, aligned text tables for listings (the `--json` forms carry the same data) and the
//! timestamp format they use.

use std::time::{Duration, UNIX_EPOCH};

use klef_core::model::Timestamp;

/// Renders rows under a header, columns separated by two spaces, no trailing spaces.
pub(crate) fn render(header: &[&str], rows: &[Vec<String>]) -> String {
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

/// RFC 3339 in UTC with second precision, e.g. `2026-11-27T15:49:56Z`.
pub(crate) fn time(ts: Timestamp) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ts).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
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
    }
}
