//! Text cells of the summaries' tables, shared by every evaluation's `cells.rs` and the
//! benchmark table: a missing value is `–`, never 0.

use std::fmt::Write;

use super::winrate::Interval;

/// Shown for a value the summary does not have.
pub const MISSING: &str = "–";

pub fn fixed(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite()).map_or_else(|| MISSING.into(), |x| format!("{x:.digits$}"))
}

pub fn interval(ci: Option<Interval>, digits: usize) -> String {
    ci.map_or_else(|| MISSING.into(), |c| format!("{:.digits$}–{:.digits$}", c.low, c.high))
}

/// A percent label for a confidence level: 0.95 -> "95%".
pub fn percent(level: f64) -> String {
    format!("{}%", (level * 100.0 * 10.0).round() / 10.0)
}

pub fn share(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite()).map_or_else(|| MISSING.into(), |x| format!("{:.0}%", 100.0 * x))
}

/// Fixed-width columns, the first two left-aligned and the rest right-aligned.
pub fn text_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut width = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            let pad = width[i] - cell.chars().count();
            let gap = if i == 0 { "" } else { "  " };
            if i < 2 {
                let _ = write!(text, "{gap}{cell}{}", " ".repeat(pad));
            } else {
                let _ = write!(text, "{gap}{}{cell}", " ".repeat(pad));
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}
