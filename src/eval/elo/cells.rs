//! The Elo summary's table as text cells, one row per `EloRating`, and the judge's position
//! statistics as two lines: the TUI's Eval view lays them out as widgets and `report eval`
//! as fixed-width columns.

use std::fmt::Write;

use crate::eval::report::{EloReport, PositionBias};
use crate::eval::stats::cells::{fixed, interval, percent, text_table};

pub const ELO_HEADER: [&str; 7] = ["#", "system", "Elo", "CI", "W", "L", "T"];

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

/// The Elo summary for a terminal: a heading, the ladder and the position statistics.
pub fn elo_text(r: &EloReport) -> String {
    let mut out = format!(
        "Elo (Bradley-Terry, dual-position) · judge {} · {} prompts · {} CIs ({} bootstrap resamples over prompts) · anchor {} = {}\n\n",
        r.judge,
        r.prompts,
        percent(r.confidence),
        r.resamples,
        r.anchor,
        r.anchor_rating
    );
    out += &text_table(ELO_HEADER, &elo_rows(r));
    let [rate, counts] = position_lines(&r.position);
    let _ = writeln!(out, "\nposition: {rate}\n          {counts}");
    out
}
