//! The human-evaluation report as a terminal table and as Markdown (JSON is serde's).

use std::fmt::Write;

use super::report::{HumanReport, ALL};

fn ratio(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{v:.3}"))
}

fn scope_name(scope: &str) -> String {
    if scope == ALL {
        "all annotators".into()
    } else {
        scope.into()
    }
}

fn method(r: &HumanReport) -> String {
    format!(
        "win rate = {a} over {b}, ties count as half; 95% CI: percentile bootstrap over prompts, {n} resamples, seed {s}",
        a = r.system_a,
        b = r.system_b,
        n = r.resamples,
        s = r.seed
    )
}

/// Fixed-width columns for a terminal.
pub fn table(r: &HumanReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Human evaluation: {} ({} prompts)", r.study, r.prompts);
    let _ = writeln!(out, "A = {}   B = {}", r.system_a, r.system_b);
    let _ = writeln!(out, "{}\n", method(r));
    let _ = writeln!(
        out,
        "{:<16} {:>7} {:>7} {:>6} {:>6} {:>5} {:>8}  {:<16}",
        "annotators", "judged", "prompts", "A wins", "B wins", "ties", "win rate", "95% CI"
    );
    for w in &r.win_rates {
        let _ = writeln!(
            out,
            "{:<16} {:>7} {:>7} {:>6} {:>6} {:>5} {:>8.3}  [{:.3}, {:.3}]",
            scope_name(&w.scope),
            w.judgments,
            w.prompts,
            w.a_wins,
            w.b_wins,
            w.ties,
            w.win_rate,
            w.ci95.low,
            w.ci95.high
        );
    }
    let _ = writeln!(out);
    for p in &r.annotators {
        let _ = writeln!(out, "{:<16} judged {} of {}", p.annotator, p.judged, p.total);
    }
    if !r.agreement.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<28} {:>6} {:>10} {:>14} {:>8}",
            "agreement", "shared", "raw", "raw, no ties", "kappa"
        );
        for a in &r.agreement {
            let _ = writeln!(
                out,
                "{:<28} {:>6} {:>10} {:>14} {:>8}",
                format!("{} vs {}", a.annotators[0], a.annotators[1]),
                a.shared,
                ratio(a.raw_with_ties),
                format!("{} (n={})", ratio(a.raw_without_ties), a.shared_without_ties),
                ratio(a.cohens_kappa)
            );
        }
    }
    out
}

/// GitHub-flavoured Markdown.
pub fn markdown(r: &HumanReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Human evaluation: `{}`\n", r.study);
    let _ =
        writeln!(out, "A = `{}`, B = `{}`, {} prompts. {}.\n", r.system_a, r.system_b, r.prompts, method(r));
    let _ = writeln!(out, "| annotators | judged | prompts | A wins | B wins | ties | win rate | 95% CI |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|");
    for w in &r.win_rates {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.3} | [{:.3}, {:.3}] |",
            scope_name(&w.scope),
            w.judgments,
            w.prompts,
            w.a_wins,
            w.b_wins,
            w.ties,
            w.win_rate,
            w.ci95.low,
            w.ci95.high
        );
    }
    let _ = writeln!(out, "\n| annotator | judged | of |");
    let _ = writeln!(out, "|---|---:|---:|");
    for p in &r.annotators {
        let _ = writeln!(out, "| {} | {} | {} |", p.annotator, p.judged, p.total);
    }
    if !r.agreement.is_empty() {
        let _ = writeln!(out, "\n| agreement | shared | raw | raw, no ties | n, no ties | Cohen's kappa |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
        for a in &r.agreement {
            let _ = writeln!(
                out,
                "| {} vs {} | {} | {} | {} | {} | {} |",
                a.annotators[0],
                a.annotators[1],
                a.shared,
                ratio(a.raw_with_ties),
                ratio(a.raw_without_ties),
                a.shared_without_ties,
                ratio(a.cohens_kappa)
            );
        }
    }
    out
}
