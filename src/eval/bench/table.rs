//! The paper-style table: several systems' benchmark results side by side, one column per
//! reported value (LongBench-Write gives three: S, S_q, S_l), each cell a mean with its
//! bootstrap CI; the Elo ladder and the length buckets beside it when the folders hold them.
//! Built from the summaries alone (`bench.json`, `elo.json`, `length.json`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::aggregate::{BenchReport, Metric};
use super::{longbench_write, story_quality, Task, BENCH_JSON};
use crate::eval::report::{EloReport, LengthReport, ELO_JSON, LENGTH_JSON};
use crate::eval::stats::winrate::Interval;
use crate::eval::summary;

/// Format version of `bench_table.json`.
pub const TABLE_VERSION: u32 = 1;
pub const TABLE_STEM: &str = "bench_table";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub task: Task,
    /// The value's name in the task's `bench.json`.
    pub metric: String,
    /// The heading (`Story Quality`, `LongBench-Write S_l`, ...).
    pub title: String,
    pub judge: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub mean: f64,
    pub ci: Option<Interval>,
    /// Stories behind the mean.
    pub n: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub system: String,
    /// One per column; None where the system has no value.
    pub cells: Vec<Option<Cell>>,
    /// Its Elo rating and CI, when an Elo ladder was given.
    pub elo: Option<Cell>,
}

/// Story Quality's overall mean per requested-length bucket, one row per (system, bucket).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketRow {
    pub system: String,
    pub bucket: String,
    pub stories: usize,
    pub overall: Option<Cell>,
    pub length_score: Option<Cell>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaperTable {
    pub v: u32,
    pub confidence: f64,
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
    pub elo: Option<EloReport>,
    pub story_quality_buckets: Vec<BucketRow>,
    /// `eval length` summaries found (Story Quality by the training judge per bucket).
    pub length: Vec<LengthReport>,
    /// The folders read.
    pub sources: Vec<String>,
}

fn cell(m: Option<&Metric>) -> Option<Cell> {
    let m = m?;
    Some(Cell { mean: m.mean?, ci: m.ci, n: m.count })
}

/// The summaries in `dir` and its immediate subfolders.
fn summaries(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![dir.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut subs: Vec<PathBuf> =
            entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
        subs.sort();
        found.extend(subs);
    }
    found
        .into_iter()
        .filter(|d| {
            d.join(BENCH_JSON).is_file() || d.join(ELO_JSON).is_file() || d.join(LENGTH_JSON).is_file()
        })
        .collect()
}

/// Reads every folder (each one a benchmark's `--out`, an `eval elo` or `eval length`
/// folder, or a folder holding such folders) into one table.
pub fn build(dirs: &[PathBuf]) -> Result<PaperTable> {
    let mut benches: Vec<BenchReport> = vec![];
    let mut elo: Option<(EloReport, PathBuf)> = None;
    let mut length = vec![];
    let mut sources = vec![];
    for dir in dirs {
        if !dir.is_dir() {
            bail!("{}: not a folder; give folders written by `polaris-tui eval bench --out DIR` (or eval elo / eval length)", dir.display());
        }
        let found = summaries(dir);
        if found.is_empty() {
            bail!(
                "{}: no {BENCH_JSON}, {ELO_JSON} or {LENGTH_JSON} in it or its subfolders; give folders written by \
                 `polaris-tui eval bench --out DIR`",
                dir.display()
            );
        }
        for d in found {
            sources.push(d.display().to_string());
            if d.join(BENCH_JSON).is_file() {
                let r: BenchReport = read_bench(&d.join(BENCH_JSON))?;
                for s in &r.systems {
                    if let Some(other) = benches
                        .iter()
                        .find(|b| b.task == r.task && b.systems.iter().any(|o| o.system == s.system))
                    {
                        bail!(
                            "{}: system `{}` has {} results twice (also judged by {}); give each system's {} folder once",
                            d.display(),
                            s.system,
                            r.task.title(),
                            other.judge,
                            r.task.name()
                        );
                    }
                }
                benches.push(r);
            }
            if d.join(ELO_JSON).is_file() {
                let r: EloReport = summary::read(&d.join(ELO_JSON))?;
                if let Some((_, first)) = &elo {
                    bail!("two Elo ladders ({} and {}): give one", first.display(), d.display());
                }
                elo = Some((r, d.clone()));
            }
            if d.join(LENGTH_JSON).is_file() {
                length.push(summary::read::<LengthReport>(&d.join(LENGTH_JSON))?);
            }
        }
    }
    Ok(assemble(&benches, elo.map(|(r, _)| r), length, sources))
}

/// The table from summaries already read; a system given twice for one task counts once (the
/// first).
pub fn assemble(
    benches: &[BenchReport],
    elo: Option<EloReport>,
    length: Vec<LengthReport>,
    sources: Vec<String>,
) -> PaperTable {
    let mut columns = vec![];
    for task in Task::ALL {
        let Some(judge) = benches.iter().find(|b| b.task == task).map(|b| b.judge.clone()) else { continue };
        let metrics: Vec<(&str, String)> = match task {
            Task::LongbenchWrite => vec![
                (longbench_write::S, "LongBench-Write S".into()),
                (longbench_write::S_Q, "LongBench-Write S_q".into()),
                (longbench_write::S_L, "LongBench-Write S_l".into()),
            ],
            t => vec![(super::aggregate::headline(t), t.title().to_string())],
        };
        for (metric, title) in metrics {
            columns.push(Column { task, metric: metric.into(), title, judge: judge.clone() });
        }
    }
    let mut systems: Vec<String> = vec![];
    for s in benches.iter().flat_map(|b| b.systems.iter().map(|s| s.system.clone())) {
        if !systems.contains(&s) {
            systems.push(s);
        }
    }
    if let Some(r) = &elo {
        for e in &r.ratings {
            if !systems.contains(&e.system) {
                systems.push(e.system.clone());
            }
        }
    }
    let rows = systems
        .iter()
        .map(|sys| Row {
            system: sys.clone(),
            cells: columns
                .iter()
                .map(|c| {
                    let b = benches
                        .iter()
                        .find(|b| b.task == c.task && b.systems.iter().any(|s| &s.system == sys))?;
                    cell(b.systems.iter().find(|s| &s.system == sys)?.value(&c.metric))
                })
                .collect(),
            elo: elo.as_ref().and_then(|r| {
                let e = r.ratings.iter().find(|e| &e.system == sys)?;
                Some(Cell { mean: e.rating, ci: Some(e.ci), n: e.wins + e.losses + e.ties })
            }),
        })
        .collect();
    let mut story_quality_buckets = vec![];
    for b in benches.iter().filter(|b| b.task == Task::StoryQuality) {
        for s in &b.systems {
            for bucket in &s.buckets {
                story_quality_buckets.push(BucketRow {
                    system: s.system.clone(),
                    bucket: bucket.bucket.clone(),
                    stories: bucket.stories,
                    overall: cell(bucket.values.iter().find(|m| m.name == story_quality::OVERALL)),
                    length_score: cell(bucket.values.iter().find(|m| m.name == story_quality::LENGTH)),
                });
            }
        }
    }
    let confidence = benches.first().map_or(0.95, |b| b.confidence);
    PaperTable { v: TABLE_VERSION, confidence, columns, rows, elo, story_quality_buckets, length, sources }
}

/// `bench.json`, its version checked first.
pub fn read_bench(path: &Path) -> Result<BenchReport> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!("{}: not JSON ({e}); write it again with `polaris-tui eval bench`", path.display())
    })?;
    let version = v.get("v").and_then(serde_json::Value::as_u64);
    if version != Some(super::aggregate::BENCH_VERSION as u64) {
        bail!(
            "{}: field `v` is {}, this build reads version {}; write it again with `polaris-tui eval bench` of this build",
            path.display(),
            version.map_or_else(|| "missing".into(), |v| v.to_string()),
            super::aggregate::BENCH_VERSION
        );
    }
    serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a benchmark summary ({e}); write it again with `polaris-tui eval bench`",
            path.display()
        )
    })
}
