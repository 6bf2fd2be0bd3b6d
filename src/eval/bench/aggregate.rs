//! From scored items to the release's aggregates, per system: each value's mean, median,
//! spread (the release's: numpy's population std for the EQ tasks, `statistics.stdev` for
//! WritingBench and LongBench-Write; population for Story Quality, which prints none), min,
//! max and count over the items that have it, with a 95% percentile-bootstrap CI of the mean
//! over prompts (`length::bootstrap_mean_ci`: a prompt's samples move together). Story
//! Quality adds the same per requested-length bucket.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{Item, Scored, Task};
use crate::eval::length::stats::bootstrap_mean_ci;
use crate::eval::stats::winrate::Interval;
use crate::reward::judge::http::Usage;

/// Format version of `bench.json`.
pub const BENCH_VERSION: u32 = 1;
pub const CONFIDENCE: f64 = 0.95;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    pub mean: Option<f64>,
    pub median: Option<f64>,
    pub std: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Items with a value.
    pub count: usize,
    pub ci: Option<Interval>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketResult {
    pub bucket: String,
    pub stories: usize,
    pub values: Vec<Metric>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemResult {
    pub system: String,
    /// Stories read (the release's `num_records`, per story).
    pub stories: usize,
    /// Stories with the headline value.
    pub scored: usize,
    /// Stories with a judge request that failed (asked again on the next run).
    pub failed: usize,
    /// Stories no request could score (WritingBench without a checklist).
    pub unscorable: usize,
    /// The task's values, the headline first.
    pub values: Vec<Metric>,
    /// Per dimension / criterion.
    pub dims: Vec<Metric>,
    /// Story Quality per requested-length bucket.
    #[serde(default)]
    pub buckets: Vec<BucketResult>,
    /// What judging this system's stories cost, over every run.
    pub usage: Usage,
}

impl SystemResult {
    pub fn value(&self, name: &str) -> Option<&Metric> {
        self.values.iter().find(|m| m.name == name)
    }
}

/// `bench.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub v: u32,
    pub task: Task,
    pub judge: String,
    /// The value the paper's table reports.
    pub headline: String,
    pub confidence: f64,
    pub resamples: usize,
    /// `population` or `sample`: which standard deviation `std` is.
    pub spread: String,
    /// Whether the judgements came through the Batch API.
    pub batch: bool,
    pub systems: Vec<SystemResult>,
    pub notes: Vec<String>,
}

/// What a task reports first (the paper's column).
pub fn headline(task: Task) -> &'static str {
    match task {
        Task::StoryQuality => super::story_quality::OVERALL,
        Task::EqBenchLongform => super::eq_longform::SCORE,
        Task::EqBenchCreative => super::eq_creative::SCORE,
        Task::WritingBench => super::writingbench::SCORE,
        Task::LongbenchWrite => super::longbench_write::S,
    }
}

fn sample_spread(task: Task) -> bool {
    matches!(task, Task::WritingBench | Task::LongbenchWrite)
}

/// One value's statistics over (prompt uid, value) pairs.
pub fn metric(
    name: &str,
    values: &[(String, f64)],
    sample: bool,
    resamples: usize,
    seed: u64,
) -> Result<Metric> {
    let mut v: Vec<f64> = values.iter().map(|(_, x)| *x).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let mean = (n > 0).then(|| v.iter().sum::<f64>() / n as f64);
    let median = (n > 0).then(|| if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 });
    let std = mean.map(|m| {
        let ss: f64 = v.iter().map(|x| (x - m).powi(2)).sum();
        match (sample, n) {
            // statistics.stdev of one value: the release writes 0
            (true, 1) => 0.0,
            (true, _) => (ss / (n - 1) as f64).sqrt(),
            (false, _) => (ss / n as f64).sqrt(),
        }
    });
    let mut by_prompt: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (p, x) in values {
        by_prompt.entry(p).or_default().push(*x);
    }
    let groups: Vec<Vec<f64>> = by_prompt.into_values().collect();
    Ok(Metric {
        name: name.to_string(),
        mean,
        median,
        std,
        min: v.first().copied(),
        max: v.last().copied(),
        count: n,
        ci: bootstrap_mean_ci(&groups, resamples, seed)?,
    })
}

/// Metrics for every name, in first-seen order, over (item, scored) pairs.
fn metrics<'a>(
    rows: impl Iterator<Item = (&'a Item, &'a [(String, Option<f64>)])>,
    sample: bool,
    resamples: usize,
    seed: u64,
) -> Result<Vec<Metric>> {
    let mut order: Vec<String> = vec![];
    let mut values: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for (item, named) in rows {
        for (name, v) in named {
            if !order.contains(name) {
                order.push(name.clone());
            }
            let slot = values.entry(name.clone()).or_default();
            if let Some(v) = v.filter(|v| v.is_finite()) {
                slot.push((item.prompt_uid.clone(), v));
            }
        }
    }
    order.iter().map(|n| metric(n, &values[n], sample, resamples, seed)).collect()
}

/// Per system, what `bench.json` holds. `failed[i]`: item i has a failed request.
pub struct Inputs<'a> {
    pub task: Task,
    pub systems: &'a [String],
    pub items: &'a [Item],
    pub scored: &'a [Scored],
    pub failed: &'a [bool],
    pub usage: &'a [Usage],
    pub resamples: usize,
    pub seed: u64,
}

pub fn systems(i: &Inputs) -> Result<Vec<SystemResult>> {
    let sample = sample_spread(i.task);
    let head = headline(i.task);
    let mut out = vec![];
    for system in i.systems {
        let idx: Vec<usize> = (0..i.items.len()).filter(|&k| &i.items[k].system == system).collect();
        let rows = || idx.iter().map(|&k| (&i.items[k], &i.scored[k]));
        let mut values =
            metrics(rows().map(|(it, s)| (it, s.values.as_slice())), sample, i.resamples, i.seed)?;
        let mut dims = metrics(rows().map(|(it, s)| (it, s.dims.as_slice())), sample, i.resamples, i.seed)?;
        if i.task == Task::WritingBench {
            // the release lists criteria sorted by name
            dims.sort_by(|a, b| a.name.cmp(&b.name));
        }
        values.sort_by_key(|m| m.name != head);
        let mut buckets = vec![];
        if i.task == Task::StoryQuality {
            for b in super::story_quality::BUCKETS {
                let inside: Vec<usize> =
                    idx.iter().copied().filter(|&k| i.scored[k].bucket.as_deref() == Some(b)).collect();
                if inside.is_empty() {
                    continue;
                }
                let rows = inside.iter().map(|&k| (&i.items[k], i.scored[k].values.as_slice()));
                buckets.push(BucketResult {
                    bucket: b.to_string(),
                    stories: inside.len(),
                    values: metrics(rows, sample, i.resamples, i.seed)?,
                });
            }
        }
        let mut usage = Usage::default();
        for &k in &idx {
            usage.add(&i.usage[k]);
        }
        let has_head = |k: &usize| i.scored[*k].values.iter().any(|(n, v)| n == head && v.is_some());
        out.push(SystemResult {
            system: system.clone(),
            stories: idx.len(),
            scored: idx.iter().filter(|k| has_head(k)).count(),
            failed: idx.iter().filter(|&&k| i.failed[k]).count(),
            unscorable: idx
                .iter()
                .filter(|&&k| i.task == Task::WritingBench && i.items[k].checklist.is_empty())
                .count(),
            values,
            dims,
            buckets,
            usage,
        });
    }
    Ok(out)
}

pub fn spread_name(task: Task) -> &'static str {
    if sample_spread(task) {
        "sample"
    } else {
        "population"
    }
}
