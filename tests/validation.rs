//! Validation during training: passes before the first step, every `val_every` steps and
//! after the last, before the step's checkpoint; one sample per held-out prompt scored by the
//! validation rewarder and logged as rows of kind `val` and a `val` event; a resumed run
//! validates exactly as an uninterrupted one and never redoes a pass that was logged.

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;

use common::WordsReward;
use polaris::model::tiny;
use polaris::reward::breakdown::{Breakdown, Candidate, Weights};
use polaris::run::driver::{Driver, Ending, RunOptions, Validation, Work};
use polaris::run::log::read;
use polaris::run::rollout::{RolloutKind, ScoredRollout};
use polaris::run::stats::ValStats;
use polaris::run::EventKind;
use polaris::run::RunDir;
use polaris::train::config::TrainConfig;
use polaris::train::data::Example;
use polaris::train::validation::ValidationConfig;

/// The validation rewarder: the rules with the validation weights, and a reward that says
/// it came from here (1 - words / 100).
struct ValReward;

impl polaris::train::step::Rewarder for ValReward {
    fn score(&self, candidates: &[Candidate]) -> anyhow::Result<Vec<Breakdown>> {
        Ok(candidates
            .iter()
            .map(|c| {
                let mut b = Breakdown::rules(c, Weights::validation());
                b.reward = 1.0 - b.words as f64 / 100.0;
                b
            })
            .collect())
    }
}

fn kinds(dir: &Path) -> Vec<String> {
    read(&dir.join("events.jsonl"))
        .unwrap()
        .events
        .iter()
        .map(|e| match &e.kind {
            EventKind::Val(v) => format!("val {}", v.step),
            EventKind::Step(s) => format!("step {}", s.step),
            EventKind::Checkpoint { step, .. } => format!("checkpoint {step}"),
            k => serde_json::to_value(k).unwrap()["event"].as_str().unwrap().to_string(),
        })
        .collect()
}

fn passes(dir: &Path) -> Vec<ValStats> {
    read(&dir.join("events.jsonl"))
        .unwrap()
        .events
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Val(v) => Some(*v),
            _ => None,
        })
        .collect()
}

fn rows(dir: &Path) -> Vec<ScoredRollout> {
    std::fs::read_to_string(dir.join("rollouts.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn val_rows(dir: &Path, step: usize) -> Vec<ScoredRollout> {
    rows(dir).into_iter().filter(|r| r.kind == RolloutKind::Val && r.step == step).collect()
}

struct Setup {
    model: tempfile::TempDir,
    train: Vec<Example>,
    val: Vec<Example>,
    cfg: ValidationConfig,
}

fn setup() -> Setup {
    let model = tempfile::tempdir().unwrap();
    tiny::write(model.path()).unwrap();
    Setup {
        model,
        train: common::story_examples("lamp", 3),
        val: common::story_examples("fox", 2),
        cfg: ValidationConfig::default(),
    }
}

/// Runs `steps` steps (2 prompts each, a checkpoint every 2) in `dir` with the model as
/// written (or the directory's newest checkpoint, resumed), validating every `every` steps
/// (None: no validation set).
fn run(s: &Setup, dir: &Path, steps: usize, every: Option<usize>) -> Ending {
    let workers = common::tiny_workers(s.model.path());
    let reward = WordsReward(16.0);
    let validation = every.map(|every| Validation { data: &s.val, rewarder: &ValReward, cfg: &s.cfg, every });
    let work = Work { workers: &workers, data: &s.train, rewarder: &reward, validation };
    let opts = RunOptions { steps, prompts_per_step: 2, checkpoint_every: 2 };
    let (_tx, rx) = mpsc::channel();
    let mut d =
        Driver::new(RunDir::create(dir).unwrap(), "", work, common::driver_trainer(), opts, rx).unwrap();
    let resumed = d.resume_latest().unwrap();
    d.run(serde_json::json!({}), resumed, &AtomicBool::new(false)).unwrap()
}

#[test]
fn passes_come_before_training_every_k_steps_and_before_the_checkpoint() {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run(&s, dir.path(), 5, Some(2)), Ending::Finished);
    assert_eq!(
        kinds(dir.path()),
        [
            "started",
            "val 0",
            "step 1",
            "step 2",
            "val 2",
            "checkpoint 2",
            "step 3",
            "step 4",
            "val 4",
            "checkpoint 4",
            "step 5",
            "val 5", // after the last step too
            "checkpoint 5",
            "finished"
        ]
    );
    // one sample per held-out prompt, scored by the validation rewarder, trained on by nothing
    let pass = val_rows(dir.path(), 2);
    assert_eq!(pass.len(), 2);
    for (i, r) in pass.iter().enumerate() {
        assert_eq!((r.rollout.group, r.rollout.is_reference, r.advantage), (i, false, 0.0));
        assert_eq!(r.prompt, s.val[i].prompt);
        assert_eq!(r.reward, 1.0 - r.breakdown.words as f64 / 100.0);
        assert_eq!(r.breakdown.weights, Weights::validation());
        assert!(!r.rollout.response_ids.is_empty() && r.rollout.response_ids.len() <= 9);
    }
    // the event sums the pass up: means over its prompts
    let v = passes(dir.path()).into_iter().find(|v| v.step == 2).unwrap();
    let mean = pass.iter().map(|r| r.reward).sum::<f64>() / 2.0;
    assert!((v.reward_mean - mean).abs() < 1e-12 && v.prompts == 2, "{v:?}");
    assert_eq!(v.tokens, pass.iter().map(|r| r.rollout.response_ids.len()).sum::<usize>());
    // training rows are unchanged: 5 steps x 2 groups x 3 rows, kind train
    assert_eq!(rows(dir.path()).iter().filter(|r| r.kind == RolloutKind::Train).count(), 30);
}

#[test]
fn a_resumed_run_validates_as_an_uninterrupted_one_and_never_twice() {
    let s = setup();
    let straight = tempfile::tempdir().unwrap();
    run(&s, straight.path(), 4, Some(2));

    // the same run stopped at step 2 (its pass at 2 logged before the checkpoint), resumed
    let resumed = tempfile::tempdir().unwrap();
    run(&s, resumed.path(), 2, Some(2));
    run(&s, resumed.path(), 4, Some(2));
    let after_resume: Vec<String> = kinds(resumed.path()).into_iter().skip(7).collect();
    assert_eq!(
        after_resume,
        ["started", "step 3", "step 4", "val 4", "checkpoint 4", "finished"],
        "no second pass at 2"
    );
    for step in [0, 2, 4] {
        let (a, b) = (val_rows(straight.path(), step), val_rows(resumed.path(), step));
        let stories =
            |rows: &[ScoredRollout]| rows.iter().map(|r| r.rollout.response_ids.clone()).collect::<Vec<_>>();
        assert_eq!(stories(&a), stories(&b), "pass at {step}: the same samples");
    }

    // a run checkpointed at 2 without validation, then given a validation set: the pass due
    // at its step was never logged, so it is taken before training goes on
    let late = tempfile::tempdir().unwrap();
    run(&s, late.path(), 2, None);
    run(&s, late.path(), 4, Some(2));
    let after_resume: Vec<String> = kinds(late.path()).into_iter().skip(5).collect();
    assert_eq!(after_resume, ["started", "val 2", "step 3", "step 4", "val 4", "checkpoint 4", "finished"]);
    let ids = |rows: Vec<ScoredRollout>| rows.into_iter().map(|r| r.rollout.response_ids).collect::<Vec<_>>();
    assert_eq!(ids(val_rows(late.path(), 2)), ids(val_rows(straight.path(), 2)));
}

#[test]
fn the_settings_exist_with_the_releases_defaults_and_bad_values_are_named() {
    let cfg = TrainConfig::parse("", "t.toml", &[]).unwrap();
    assert_eq!((cfg.run.val_every, cfg.data.val.as_deref()), (20, None), "no validation without data.val");
    assert_eq!(cfg.validation, ValidationConfig::default());
    let cfg = TrainConfig::parse(
        "[data]\nval = \"v.jsonl\"\n[validation.sampling]\ntemperature = 0.6\n",
        "t.toml",
        &["run.val_every=5".into()],
    )
    .unwrap();
    assert_eq!((cfg.run.val_every, cfg.data.val.as_deref()), (5, Some("v.jsonl")));
    // a partial table keeps the release's other values
    assert_eq!((cfg.validation.sampling.temperature, cfg.validation.sampling.top_p), (0.6, 0.95));
    let e =
        TrainConfig::parse("", "t.toml", &["validation.sampling.top_p=0".into()]).unwrap_err().to_string();
    assert!(e.contains("--set validation.sampling.top_p=0") && e.contains("top_p must be in (0, 1]"), "{e}");
    let e =
        TrainConfig::parse("", "t.toml", &["validation.judge_concurrency=0".into()]).unwrap_err().to_string();
    assert!(e.contains("validation.judge_concurrency"), "{e}");
}
