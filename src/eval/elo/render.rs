//! The Elo report as a terminal ladder and as Markdown (JSON is serde's).

use std::fmt::Write;

use crate::eval::report::{EloReport, HeadToHead};

fn method(r: &EloReport) -> String {
    format!(
        "Bradley-Terry maximum likelihood on the combined verdicts of pairs judged in both orders (a tie counts \
         as half a win for each side), on the Elo scale (400 log10 strength) with `{}` fixed at {}; {:.0}% CI: \
         percentile bootstrap over prompts, {} resamples",
        r.anchor,
        r.anchor_rating,
        r.confidence * 100.0,
        r.resamples
    )
}

fn judged_pairs(r: &EloReport) -> usize {
    r.pairs.iter().map(|h| h.a_wins + h.b_wins + h.ties).sum()
}

/// The ladder for a terminal.
pub fn table(r: &EloReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Elo ladder: judge {}, {} prompts, {} pairs judged in both orders",
        r.judge,
        r.prompts,
        judged_pairs(r)
    );
    let _ = writeln!(out, "{}\n", method(r));
    let _ = writeln!(
        out,
        "{:>4}  {:<24} {:>7}  {:<17} {:>5} {:>5} {:>5}",
        "rank", "system", "Elo", "95% CI", "W", "L", "T"
    );
    for (i, e) in r.ratings.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:>4}  {:<24} {:>7.1}  {:<17} {:>5} {:>5} {:>5}",
            i + 1,
            e.system,
            e.rating,
            format!("[{:.1}, {:.1}]", e.ci.low, e.ci.high),
            e.wins,
            e.losses,
            e.ties
        );
    }
    let _ = writeln!(out, "\n{}", position_sentence(r));
    out
}

/// GitHub-flavoured Markdown: the ladder, the head-to-head matrix, the position bias.
pub fn markdown(r: &EloReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Elo ladder\n");
    let _ = writeln!(
        out,
        "Judge `{}`, {} prompts, {} pairs judged in both orders. {}. The anchor's interval is a point by \
         construction: the others' intervals are relative to it.\n",
        r.judge,
        r.prompts,
        judged_pairs(r),
        method(r)
    );
    let _ = writeln!(out, "| rank | system | Elo | 95% CI | W | L | T |");
    let _ = writeln!(out, "|---:|---|---:|---|---:|---:|---:|");
    for (i, e) in r.ratings.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | [{:.1}, {:.1}] | {} | {} | {} |",
            i + 1,
            e.system,
            e.rating,
            e.ci.low,
            e.ci.high,
            e.wins,
            e.losses,
            e.ties
        );
    }
    let _ = writeln!(out, "\n## Head to head\n");
    let _ = writeln!(
        out,
        "Each cell is the row system's wins-losses-ties against the column system (combined verdicts).\n"
    );
    let systems: Vec<&str> = r.ratings.iter().map(|e| e.system.as_str()).collect();
    let _ = writeln!(out, "| | {} |", systems.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(systems.len()));
    for row in &systems {
        let cells: Vec<String> = systems
            .iter()
            .map(|col| if row == col { "—".into() } else { cell(&r.pairs, row, col) })
            .collect();
        let _ = writeln!(out, "| {row} | {} |", cells.join(" | "));
    }
    let _ = writeln!(out, "\n## Position bias\n");
    let _ = writeln!(out, "{}", position_sentence(r));
    out
}

/// `row`'s W-L-T against `col`, or `-` when they never met.
pub fn cell(pairs: &[HeadToHead], row: &str, col: &str) -> String {
    for h in pairs {
        if h.a == row && h.b == col {
            return format!("{}-{}-{}", h.a_wins, h.b_wins, h.ties);
        }
        if h.b == row && h.a == col {
            return format!("{}-{}-{}", h.b_wins, h.a_wins, h.ties);
        }
    }
    "-".into()
}

fn position_sentence(r: &EloReport) -> String {
    let p = &r.position;
    let rate = match (p.first_win_rate, p.first_win_rate_ci) {
        (Some(x), Some(ci)) => format!("a first-position win rate of {x:.3} [{:.3}, {:.3}]", ci.low, ci.high),
        (Some(x), None) => format!("a first-position win rate of {x:.3}"),
        _ => "no decisive verdict, so no first-position win rate".into(),
    };
    let share = if p.pairs > 0 { 100.0 * p.inconsistent_pairs as f64 / p.pairs as f64 } else { 0.0 };
    format!(
        "Position: of {} single-order judgements the story shown first won {}, the one shown second {}, \
         {} were ties: {rate} (0.5 is no preference for a position). {} of {} pairs ({share:.1}%) picked \
         different stories in the two orders; the combined verdict averages the two orders' margins, which \
         cancels a preference for a position.",
        p.judgements, p.first_wins, p.second_wins, p.ties, p.inconsistent_pairs, p.pairs
    )
}
