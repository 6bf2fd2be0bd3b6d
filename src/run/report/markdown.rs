//! `summary.md`: the run in one page: configuration, final and best values, alerts, time and
//! cost, and the files beside it.

use std::fmt::Write;
use std::path::PathBuf;

use super::table::StepTable;
use crate::run::alerts::OpenAlerts;
use crate::run::event::{Event, EventKind};

/// Which way a metric is better, for its "best" column.
#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
    /// Nearest to 1 (the length ratio: as many words as asked for).
    NearOne,
    /// No way is better in itself (the loss of GRPO, entropy, a length in words): the final
    /// value only.
    Neither,
}

/// (column, what it is, which way is better).
const METRICS: &[(&str, &str, Better)] = &[
    ("policy_reward_mean", "policy reward (mean)", Better::Higher),
    ("best_of_group_mean", "best of group (mean)", Better::Higher),
    ("reference_reward_mean", "reference reward (mean)", Better::Neither),
    // the policy catching the human reference: its rank falls behind the policy's rows
    ("reference_rank_mean", "reference rank (1 = best)", Better::Higher),
    ("reference_beats_all", "reference beats all (share)", Better::Lower),
    ("length_ratio_mean", "length ratio (written / requested)", Better::NearOne),
    ("words_mean", "words (mean)", Better::Neither),
    ("loss", "loss", Better::Neither),
    ("kl", "KL", Better::Lower),
    ("entropy", "entropy (nats)", Better::Neither),
    ("grad_norm", "grad norm", Better::Neither),
    ("zero_variance_groups", "zero-variance groups", Better::Lower),
    ("judge_failures", "judge failures", Better::Lower),
    ("train_tokens_per_second", "train tokens/s", Better::Higher),
    ("generate_tokens_per_second", "generate tokens/s", Better::Higher),
];

pub(super) fn summary(
    name: &str,
    events: &[Event],
    t: &StepTable,
    config: Option<&str>,
    alerts: &OpenAlerts,
    files: &[PathBuf],
) -> String {
    let mut out = String::new();
    let last = t.steps.last().map_or(0, |s| s.step);
    let ended = events.iter().rev().find_map(|e| match &e.kind {
        EventKind::Finished { step, reason } => Some(format!("{reason} at step {step}")),
        _ => None,
    });
    let _ = writeln!(out, "# Run {name}\n");
    let _ = writeln!(
        out,
        "{} steps logged (last: step {last}); {}.\n",
        t.rows.len(),
        ended.unwrap_or_else(|| "not ended (running, or stopped without a word)".into())
    );

    let _ = writeln!(out, "## Final and best values\n");
    let _ = writeln!(out, "| metric | final | best | at step |\n|---|---:|---:|---:|");
    let steps = t.step_numbers();
    for (column, what, better) in METRICS {
        let Some(values) = t.column(column) else { continue };
        let Some(last) = values.iter().rev().flatten().next() else { continue };
        let points = values.iter().zip(&steps).filter_map(|(v, s)| v.map(|v| (v, *s)));
        let best = points.filter(|_| !matches!(better, Better::Neither)).reduce(|a, b| {
            let b_wins = match better {
                Better::Higher => b.0 > a.0,
                Better::Lower => b.0 < a.0,
                Better::NearOne => (b.0 - 1.0).abs() < (a.0 - 1.0).abs(),
                Better::Neither => false,
            };
            if b_wins {
                b
            } else {
                a
            }
        });
        let (best, at) = best.map_or(("–".into(), "–".into()), |(v, s)| (fmt(v), format!("{s}")));
        let _ = writeln!(out, "| {what} | {} | {best} | {at} |", fmt(*last));
    }

    let _ = writeln!(out, "\n## Alerts\n");
    if alerts.history.is_empty() {
        let _ = writeln!(out, "No alert was raised.");
    } else {
        let open: Vec<String> = alerts.open().map(|a| a.line()).collect();
        if open.is_empty() {
            let _ = writeln!(out, "None open at the end.\n");
        } else {
            let _ = writeln!(out, "Open at the end:\n");
            for a in open {
                let _ = writeln!(out, "- **{a}**");
            }
            out.push('\n');
        }
        let _ = writeln!(out, "| step | alert | raised / cleared | what |\n|---:|---|---|---|");
        for a in &alerts.history {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                a.step.map_or("–".into(), |s| s.to_string()),
                a.title(),
                if a.raised { "raised" } else { "cleared" },
                a.text.replace('|', "\\|")
            );
        }
    }

    let _ = writeln!(out, "\n## Time and cost\n");
    let (first, end) = (events.first().map(|e| e.time), events.last().map(|e| e.time));
    let wall = match (first, end) {
        (Some(a), Some(b)) => hours(b - a),
        _ => "–".into(),
    };
    // folded from +0: f64's Sum of nothing is -0.0, which prints as "-0.0000"
    let sum = |f: fn(&crate::run::stats::StepStats) -> f64| t.steps.iter().map(f).fold(0.0, |a, x| a + x);
    let val_cost: f64 = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Val(v) => Some(v.judge_cost),
            _ => None,
        })
        .fold(0.0, |a, x| a + x);
    let _ = writeln!(out, "| | |\n|---|---:|");
    let _ = writeln!(out, "| wall time, first to last event | {wall} |");
    let _ = writeln!(out, "| sampling | {} |", hours(sum(|s| s.seconds_generate)));
    let _ = writeln!(out, "| judging (not hidden behind sampling) | {} |", hours(sum(|s| s.seconds_judge)));
    let _ = writeln!(out, "| training | {} |", hours(sum(|s| s.seconds_train)));
    let _ =
        writeln!(out, "| response tokens trained on | {} |", t.steps.iter().map(|s| s.tokens).sum::<usize>());
    let _ = writeln!(out, "| judge cost, steps (USD) | {:.4} |", sum(|s| s.judge_cost));
    let _ = writeln!(out, "| judge cost, validation (USD) | {val_cost:.4} |");

    let _ = writeln!(out, "\n## Files\n");
    for f in files {
        let shown =
            f.file_name().map_or_else(|| f.display().to_string(), |n| n.to_string_lossy().into_owned());
        let _ = writeln!(out, "- [{shown}]({shown})");
    }

    let _ = writeln!(out, "\n## Configuration\n");
    match config {
        Some(c) => {
            let _ = writeln!(out, "```toml\n{}\n```", c.trim_end());
        }
        None => {
            let _ = writeln!(out, "No config.toml in the run directory.");
        }
    }
    out
}

fn fmt(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

/// `1 h 02 min 05 s`, `3 min 20 s`, `12.3 s`.
fn hours(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 60.0 {
        return format!("{s:.1} s");
    }
    let whole = s.round() as u64;
    let (h, m, sec) = (whole / 3600, whole / 60 % 60, whole % 60);
    if h > 0 {
        format!("{h} h {m:02} min {sec:02} s")
    } else {
        format!("{m} min {sec:02} s")
    }
}
