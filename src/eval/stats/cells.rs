//! The summaries' tables as text cells, one row per `LengthRow` / `EloRating`: the TUI's Eval
//! view lays them out as widgets and `report eval` as fixed-width columns. A missing value
//! is `–`, never 0.

use std::fmt::Write;

use super::winrate::Interval;
use crate::eval::report::{EloReport, LengthReport, PositionBias};

pub const LENGTH_HEADER: [&str; 9] =
    ["model", "bucket", "stories", "SQ", "CI", "ratio", "CI", "under", "over"];
pub const ELO_HEADER: [&str; 7] = ["#", "system", "Elo", "CI", "W", "L", "T"];

/// Shown for a value the summary does not have.
pub const MISSING: &str = "–";

pub fn fixed(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite()).map_or_else(|| MISSING.into(), |x| format!("{x:.digits$}"))
}

pub fn interval(ci: Option<Interval>, digits: usize) -> String {
    ci.map_or_else(|| MISSING.into(), |c| format!("{:.digits$}–{:.digits$}", c.low, c.high))
}

pub fn share(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite()).map_or_else(|| MISSING.into(), |x| format!("{:.0}%", 100.0 * x))
}

/// Per (model, bucket): the model, the bucket, judged / generated stories, SQ and its
/// interval, length ratio and its interval, under- and over-length shares.
pub fn length_rows(r: &LengthReport) -> Vec<[String; 9]> {
    r.rows
        .iter()
        .map(|row| {
            [
                row.model.clone(),
                row.bucket.clone(),
                if row.judged == row.stories {
                    row.stories.to_string()
                } else {
                    format!("{}/{}", row.judged, row.stories)
                },
                fixed(row.sq_mean, 3),
                interval(row.sq_ci, 3),
                fixed(row.length_ratio_mean, 2),
                interval(row.length_ratio_ci, 2),
                share(row.under_share),
                share(row.over_share),
            ]
        })
        .collect()
}

/// Per system, best first: rank, system (the anchor marked), Elo, its interval, W / L / T.
pub fn elo_rows(r: &EloReport) -> Vec<[String; 7]> {
    r.ratings
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let system =
                if e.system == r.anchor { format!("{} (anchor)", e.system) } else { e.system.clone() };
            [
                (i + 1).to_string(),
                system,
                fixed(Some(e.rating), 0),
                interval(Some(e.ci), 0),
                e.wins.to_string(),
                e.losses.to_string(),
                e.ties.to_string(),
            ]
        })
        .collect()
}

/// Two lines on the judge's position preference: the rate, then the counts behind it (an
/// inconsistent pair is one whose two orders picked different stories).
pub fn position_lines(p: &PositionBias) -> [String; 2] {
    [
        format!(
            "first position wins {} (CI {}; 0.50 = no preference)",
            fixed(p.first_win_rate, 2),
            interval(p.first_win_rate_ci, 2)
        ),
        format!(
            "{} judgements: {} first, {} second, {} ties · {} of {} pairs inconsistent",
            p.judgements, p.first_wins, p.second_wins, p.ties, p.inconsistent_pairs, p.pairs
        ),
    ]
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

/// The length summary for a terminal: a heading and the table.
pub fn length_text(r: &LengthReport) -> String {
    let mut out = format!(
        "Story Quality and length ratio by requested length · judge {} · {} samples per prompt · {} CIs ({} bootstrap resamples over prompts)\n",
        r.judge,
        r.samples,
        crate::eval::plot::percent(r.confidence),
        r.resamples
    );
    if r.prompts_outside_buckets > 0 {
        let _ =
            writeln!(out, "{} prompts asked for a length outside every bucket", r.prompts_outside_buckets);
    }
    out.push('\n');
    out + &text_table(LENGTH_HEADER, &length_rows(r))
}

/// The Elo summary for a terminal: a heading, the ladder and the position statistics.
pub fn elo_text(r: &EloReport) -> String {
    let mut out = format!(
        "Elo (Bradley-Terry, dual-position) · judge {} · {} prompts · {} CIs ({} bootstrap resamples over prompts) · anchor {} = {}\n\n",
        r.judge,
        r.prompts,
        crate::eval::plot::percent(r.confidence),
        r.resamples,
        r.anchor,
        r.anchor_rating
    );
    out += &text_table(ELO_HEADER, &elo_rows(r));
    let [rate, counts] = position_lines(&r.position);
    let _ = writeln!(out, "\nposition: {rate}\n          {counts}");
    out
}
