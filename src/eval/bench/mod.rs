//! `eval bench`: the POLARIS paper's benchmarks, judged and scored as the release's
//! `eval/tasks/*.py` score them: Story Quality (the training rubric), EQ-Bench Longform,
//! EQ-Bench Creative, WritingBench (English D4) and LongBench-Write (S_q, S_l, S).
//!
//! One file per task holds its judge request(s) and its per-record scoring; `aggregate.rs`
//! turns records into the release's aggregates with bootstrap CIs over prompts; `store.rs`
//! keeps every judgement as it arrives (`judgements.jsonl`, resumable); `runner.rs` judges
//! what is missing, online (`online.rs`) or through the OpenAI Batch API (`batch.rs`);
//! `config.rs` reads the release's JSON configs; `table.rs` and `render.rs` make the
//! paper-style table of several systems.

pub mod aggregate;
pub mod batch;
pub mod config;
pub mod eq_creative;
pub mod eq_longform;
pub mod eq_scores;
pub mod input;
pub mod longbench_write;
pub mod online;
pub mod render;
pub mod runner;
pub mod store;
pub mod story_quality;
pub mod table;
pub mod writingbench;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::reward::judge::http::Request;
use crate::reward::judge::JUDGE_MODELS;
use crate::reward::JudgeSpec;

/// File names inside a benchmark's output folder.
pub const BENCH_JSON: &str = "bench.json";
pub const BENCH_MD: &str = "bench.md";
pub const JUDGEMENTS: &str = "judgements.jsonl";
pub const BATCH_JSON: &str = "batch.json";

/// The five benchmarks, named as the release's task registry names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    StoryQuality,
    EqBenchLongform,
    EqBenchCreative,
    #[serde(rename = "writingbench")]
    WritingBench,
    LongbenchWrite,
}

impl Task {
    pub const ALL: [Task; 5] = [
        Task::StoryQuality,
        Task::EqBenchLongform,
        Task::EqBenchCreative,
        Task::WritingBench,
        Task::LongbenchWrite,
    ];

    /// The release's task name (`story_quality`, `eq_bench_longform`, ...); `-` reads as `_`.
    pub fn parse(name: &str) -> Result<Self> {
        let n = name.trim().to_ascii_lowercase().replace('-', "_");
        match Self::ALL.into_iter().find(|t| t.name() == n) {
            Some(t) => Ok(t),
            None => bail!(
                "task {name:?}: not one of the paper's benchmarks; give one of {}",
                Self::ALL.map(Task::name).join(", ")
            ),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Task::StoryQuality => "story_quality",
            Task::EqBenchLongform => "eq_bench_longform",
            Task::EqBenchCreative => "eq_bench_creative",
            Task::WritingBench => "writingbench",
            Task::LongbenchWrite => "longbench_write",
        }
    }

    /// As the paper's table heads it.
    pub fn title(self) -> &'static str {
        match self {
            Task::StoryQuality => "Story Quality",
            Task::EqBenchLongform => "EQ-Bench Longform",
            Task::EqBenchCreative => "EQ-Bench Creative",
            Task::WritingBench => "WritingBench",
            Task::LongbenchWrite => "LongBench-Write",
        }
    }
}

/// The judge's provider and model, which decide the response format the release asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Family {
    OpenAi(String),
    Gemini(String),
}

impl Family {
    pub fn of(spec: &JudgeSpec) -> Result<Self> {
        match spec {
            JudgeSpec::OpenAi(m) => Ok(Family::OpenAi(m.clone())),
            JudgeSpec::Gemini(m) => Ok(Family::Gemini(m.clone())),
            JudgeSpec::Offline => bail!(
                "--judge offline: the benchmarks need a judge model ({JUDGE_MODELS}); the offline judge \
                 measures only the training rubric"
            ),
            JudgeSpec::RewardModel(_) => bail!(
                "--judge {}: the benchmarks need a judge model that answers their prompts (openai:MODEL \
                 or gemini:MODEL); a reward model gives one score per story",
                spec.label()
            ),
        }
    }
}

/// One story to score: a system's answer to one prompt of the benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub system: String,
    pub prompt_uid: String,
    /// Which of the system's stories for this prompt (0, 1, ... in reading order).
    pub sample: usize,
    /// The request as the generation file holds it.
    pub prompt: String,
    pub story: String,
    /// LongBench-Write's requested length (the prompt set's `target_length`).
    pub target_length: Option<f64>,
    /// WritingBench's per-query criteria (the prompt set's `checklist`), as given.
    pub checklist: Vec<Value>,
}

impl Item {
    pub fn key(&self) -> ItemKey {
        (self.system.clone(), self.prompt_uid.clone(), self.sample)
    }
}

/// (system, prompt uid, sample)
pub type ItemKey = (String, String, usize);

/// The judge prompts and the Story Quality schema: the release's files (embedded copies of
/// `../shared/data/polaris/eval/`, MIT; a config may name others).
#[derive(Debug, Clone)]
pub struct Templates {
    pub story_quality_system: String,
    pub story_quality_schema: Value,
    /// Story Quality's overall from the totals (`override_overall_from_totals`, which the
    /// release's config sets), else the judge's own overall.
    pub story_quality_override: bool,
    pub eq_creative: String,
    pub eq_longform: String,
    pub writingbench: String,
    pub longbench_write: String,
}

impl Templates {
    pub fn builtin() -> Self {
        Self {
            story_quality_system: include_str!("../../../rubrics/bench/story_quality_seq.txt").to_string(),
            story_quality_schema: serde_json::from_str(include_str!(
                "../../../rubrics/bench/story_quality_seq.json"
            ))
            .expect("the embedded release schema is JSON"),
            story_quality_override: true,
            eq_creative: include_str!("../../../rubrics/bench/eq_bench_creative_judge.txt").to_string(),
            eq_longform: include_str!("../../../rubrics/bench/eq_bench_longform_judge.txt").to_string(),
            writingbench: include_str!("../../../rubrics/bench/writingbench_judge.txt").to_string(),
            longbench_write: include_str!("../../../rubrics/bench/longbench_write_judge.txt").to_string(),
        }
    }
}

/// The judge requests one item needs, in part order (one, except WritingBench's one per
/// criterion).
pub fn requests(task: Task, item: &Item, t: &Templates, family: &Family) -> Vec<Request> {
    match task {
        Task::StoryQuality => vec![story_quality::request(item, t, family)],
        Task::EqBenchLongform => vec![eq_longform::request(item, t)],
        Task::EqBenchCreative => vec![eq_creative::request(item, t)],
        Task::WritingBench => writingbench::requests(item, t, family),
        Task::LongbenchWrite => vec![longbench_write::request(item, t, family)],
    }
}

/// One item's scores, as the release's `parse_response` makes its record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// The release's record fields for this item (scores, justifications, derived values).
    pub record: Map<String, Value>,
    /// The task's aggregate values for this item, by name (None: not scored).
    pub values: Vec<(String, Option<f64>)>,
    /// Per-dimension values (adjusted as the release adjusts them), by dimension name.
    pub dims: Vec<(String, Option<f64>)>,
    /// Story Quality's requested-length bucket (`1k` ... `8k`, `>8k`), None elsewhere.
    #[serde(default)]
    pub bucket: Option<String>,
}

/// Scores one item from its parts' answers (None: the part has no answer).
pub fn score(task: Task, item: &Item, answers: &[Option<&str>], t: &Templates) -> Scored {
    let first = answers.first().copied().flatten();
    match task {
        Task::StoryQuality => {
            story_quality::score(item, first, &t.story_quality_schema, t.story_quality_override)
        }
        Task::EqBenchLongform => eq_longform::score(first),
        Task::EqBenchCreative => eq_creative::score(first),
        Task::WritingBench => writingbench::score(item, answers),
        Task::LongbenchWrite => longbench_write::score(item, first),
    }
}

/// Python's `round(x, digits)`: the nearest decimal with `digits` places, ties to even on the
/// exact binary value (Rust's formatting rounds the same way), read back as the nearest f64.
pub fn py_round(x: f64, digits: usize) -> f64 {
    if !x.is_finite() {
        return x;
    }
    format!("{x:.digits$}").parse().unwrap_or(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_are_the_releases() {
        for t in Task::ALL {
            assert_eq!(Task::parse(t.name()).unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), Value::String(t.name().into()));
        }
        assert_eq!(Task::parse("EQ-Bench-Longform").unwrap(), Task::EqBenchLongform);
        let e = Task::parse("mmlu").unwrap_err().to_string();
        assert!(e.contains("longbench_write"), "{e}");
    }

    #[test]
    fn rounding_is_pythons() {
        // exact binary ties go to even, as Python's round does: round(0.125, 2) == 0.12
        assert_eq!(py_round(0.125, 2), 0.12);
        assert_eq!(py_round(0.375, 2), 0.38);
        assert_eq!(py_round(2.5, 0), 2.0);
        // 2.675 is stored as 2.67499999...: Python gives 2.67
        assert_eq!(py_round(2.675, 2), 2.67);
        assert_eq!(py_round(66.666666, 2), 66.67);
    }
}
