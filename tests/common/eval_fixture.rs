//! Evaluation summaries built from the report types with fixed numbers: two models over
//! three buckets (one cell without a judged story, so its SQ is missing) and a three-system
//! Elo ladder anchored at its middle system.

use std::path::{Path, PathBuf};

use polaris::eval::report::{
    Bucket, EloRating, EloReport, HeadToHead, LengthReport, LengthRow, PositionBias, ELO_JSON, LENGTH_JSON,
    REPORT_VERSION,
};
use polaris::eval::stats::winrate::Interval;

pub const MODELS: [&str; 2] = ["base", "grpo-hri"];
pub const BUCKETS: [(&str, usize, usize); 3] =
    [("1000-4000", 1000, 4000), ("4000-8000", 4000, 8000), ("8000-12000", 8000, 12000)];

fn ci(low: f64, high: f64) -> Option<Interval> {
    Some(Interval { low, high })
}

/// `base` has no judged story in 8000-12000 (SQ and its CI missing, the ratio present).
pub fn length_report() -> LengthReport {
    let mut rows = vec![];
    let sq = [[0.52, 0.44, f64::NAN], [0.71, 0.66, 0.58]];
    let ratio = [[0.93, 0.71, 0.48], [1.01, 0.97, 0.88]];
    for (m, model) in MODELS.iter().enumerate() {
        for (b, (label, ..)) in BUCKETS.iter().enumerate() {
            let missing = sq[m][b].is_nan();
            rows.push(LengthRow {
                model: model.to_string(),
                bucket: label.to_string(),
                prompts: 8,
                stories: 16,
                judged: if missing { 0 } else { 16 },
                sq_mean: (!missing).then_some(sq[m][b]),
                sq_ci: if missing { None } else { ci(sq[m][b] - 0.04, sq[m][b] + 0.05) },
                length_ratio_mean: Some(ratio[m][b]),
                length_ratio_ci: ci(ratio[m][b] - 0.06, ratio[m][b] + 0.05),
                under_share: Some(((1.0 - ratio[m][b]) * 1.5).clamp(0.0, 1.0)),
                over_share: Some(if ratio[m][b] > 1.0 { 0.12 } else { 0.0 }),
            });
        }
    }
    LengthReport {
        v: REPORT_VERSION,
        judge: "offline".into(),
        samples: 2,
        confidence: 0.95,
        resamples: 1000,
        buckets: BUCKETS
            .iter()
            .map(|(l, lo, hi)| Bucket { label: l.to_string(), lo: *lo, hi: *hi })
            .collect(),
        models: MODELS.iter().map(|m| m.to_string()).collect(),
        rows,
        prompts_outside_buckets: 0,
    }
}

pub fn elo_report() -> EloReport {
    let rating = |system: &str, rating: f64, low: f64, high: f64, w: usize, l: usize, t: usize| EloRating {
        system: system.into(),
        rating,
        ci: Interval { low, high },
        wins: w,
        losses: l,
        ties: t,
    };
    EloReport {
        v: REPORT_VERSION,
        judge: "offline".into(),
        anchor: "base".into(),
        anchor_rating: 1000.0,
        confidence: 0.95,
        resamples: 1000,
        prompts: 24,
        ratings: vec![
            rating("grpo-hri", 1087.0, 1041.0, 1139.0, 30, 14, 4),
            rating("base", 1000.0, 1000.0, 1000.0, 22, 22, 4),
            rating("sft", 931.0, 880.0, 975.0, 14, 30, 4),
        ],
        pairs: vec![
            HeadToHead { a: "grpo-hri".into(), b: "base".into(), a_wins: 15, b_wins: 7, ties: 2 },
            HeadToHead { a: "grpo-hri".into(), b: "sft".into(), a_wins: 15, b_wins: 7, ties: 2 },
            HeadToHead { a: "base".into(), b: "sft".into(), a_wins: 15, b_wins: 7, ties: 2 },
        ],
        position: PositionBias {
            judgements: 144,
            first_wins: 70,
            second_wins: 62,
            ties: 12,
            first_win_rate: Some(70.0 / 132.0),
            first_win_rate_ci: ci(0.45, 0.61),
            inconsistent_pairs: 9,
            pairs: 72,
        },
    }
}

pub fn write_json(path: &Path, value: &impl serde::Serialize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
}

/// `dir/length.json` and `dir/elo.json`.
pub fn write_both(dir: &Path) -> PathBuf {
    write_json(&dir.join(LENGTH_JSON), &length_report());
    write_json(&dir.join(ELO_JSON), &elo_report());
    dir.to_path_buf()
}

fn bench_metric(name: &str, mean: f64, half: f64, count: usize) -> polaris::eval::bench::aggregate::Metric {
    polaris::eval::bench::aggregate::Metric {
        name: name.into(),
        mean: Some(mean),
        median: Some(mean),
        std: Some(2.0 * half),
        min: Some(mean - 3.0 * half),
        max: Some(mean + 3.0 * half),
        count,
        ci: Some(Interval { low: mean - half, high: mean + half }),
    }
}

/// A benchmark summary of systems `base` and `tuned`: `(system, headline mean)`, the rest
/// fixed; LongBench-Write also has S_q and S_l.
pub fn bench_report(
    task: polaris::eval::bench::Task,
    means: &[(&str, f64)],
) -> polaris::eval::bench::aggregate::BenchReport {
    use polaris::eval::bench::aggregate::{headline, BenchReport, SystemResult, BENCH_VERSION};
    let systems = means
        .iter()
        .map(|(system, m)| {
            let mut values = vec![bench_metric(headline(task), *m, 1.5, 24)];
            if task == polaris::eval::bench::Task::LongbenchWrite {
                values.push(bench_metric("quality_score_sq", m + 10.0, 1.0, 24));
                values.push(bench_metric("length_score_sl", 90.0, 2.0, 24));
            }
            SystemResult {
                system: system.to_string(),
                stories: 24,
                scored: 23,
                failed: 1,
                unscorable: 0,
                values,
                dims: vec![bench_metric("Coherent", 14.0, 0.5, 23)],
                buckets: vec![],
                usage: Default::default(),
            }
        })
        .collect();
    BenchReport {
        v: BENCH_VERSION,
        task,
        judge: "openai:gpt-5.4".into(),
        headline: headline(task).into(),
        confidence: 0.95,
        resamples: 2000,
        spread: "population".into(),
        batch: task == polaris::eval::bench::Task::LongbenchWrite,
        systems,
        notes: vec![],
    }
}
