//! NaN never trains: a non-finite loss, gradient norm or weight ends the run as failed at
//! that step, with nothing of it logged as a step or checkpointed; the event log never writes
//! a record its own reader rejects; a checkpoint or model holding NaN or an infinity is
//! refused on load, naming the tensor.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use candle_core::{DType, Device, Tensor};
use common::WordsReward;
use polaris::lm::LanguageModel;
use polaris::model::{tiny, LoadOptions};
use polaris::reward::breakdown::Candidate;
use polaris::reward::Breakdown;
use polaris::run::driver::{Driver, RunOptions, Work};
use polaris::run::event::Level;
use polaris::run::stats::StepStats;
use polaris::run::RunDir;
use polaris::run::{EventKind, EventLog};
use polaris::train::checkpoint;
use polaris::train::data::Example;
use polaris::train::optim::AdamWConfig;
use polaris::train::step::{NonFinite, Rewarder, StepConfig, TrainPrompt, Trainer};
use polaris::train::workers::Workers;

fn config() -> StepConfig {
    common::step_config(3, 8, 1e-3)
}

fn open(dir: &std::path::Path) -> Workers {
    common::tiny_workers(dir)
}

/// WordsReward, but every reward is NaN from the `from`-th call on (a judge gone wrong).
struct NanFrom(usize, AtomicUsize);

impl Rewarder for NanFrom {
    fn score(&self, candidates: &[Candidate]) -> anyhow::Result<Vec<Breakdown>> {
        let call = self.1.fetch_add(1, Ordering::Relaxed) + 1;
        let mut scored = WordsReward(16.0).score(candidates)?;
        if call >= self.0 {
            scored.iter_mut().for_each(|b| b.reward = f64::NAN);
        }
        Ok(scored)
    }
}

#[test]
fn a_nan_loss_fails_the_run_at_that_step_without_logging_or_checkpointing_it() {
    let model_dir = tempfile::tempdir().unwrap();
    tiny::write(model_dir.path()).unwrap();
    let workers = open(model_dir.path());
    let data: Vec<Example> = (0..2)
        .map(|i| Example {
            uid: format!("p{i}"),
            prompt: format!("Write a story about lamp {i}. The story should be 100 words long."),
            target_word_count: 100,
            story: Some(format!("The lamp {i} burned all night by the sea.")),
            reasoning: None,
        })
        .collect();
    let reward = NanFrom(2, AtomicUsize::new(0));
    let run = tempfile::tempdir().unwrap();
    let (_tx, rx) = mpsc::channel();
    let mut d = Driver::new(
        RunDir::create(run.path()).unwrap(),
        "",
        Work { workers: &workers, data: &data, rewarder: &reward, validation: None },
        Trainer::new(config(), 3),
        RunOptions { steps: 4, prompts_per_step: 1, checkpoint_every: 1 },
        rx,
    )
    .unwrap();
    let e = d.run(serde_json::json!({}), None, &AtomicBool::new(false)).unwrap_err();
    let nf = e.downcast_ref::<NonFinite>().unwrap_or_else(|| panic!("{e:#}"));
    assert_eq!(nf.step, 2);
    assert!(nf.what.contains("the loss is NaN"), "{}", nf.what);
    drop(d);

    // the log reads back whole: step 1, its checkpoint, and the error; nothing of step 2
    let events = polaris::run::log::read(&run.path().join("events.jsonl")).unwrap().events;
    let steps: Vec<usize> = common::logged_steps(run.path()).iter().map(|s| s.step).collect();
    assert_eq!(steps, vec![1]);
    let last = &events.last().unwrap().kind;
    assert!(
        matches!(last, EventKind::Message { level: Level::Error, text } if text.contains("step 2: the loss is NaN")),
        "{last:?}"
    );
    // the NaN is raised as an alert (`runs` and the viewers show it), just before the error
    let alert = &events[events.len() - 2].kind;
    assert!(
        matches!(alert, EventKind::Alert(a) if a.rule == polaris::run::alerts::Rule::NonFinite
            && a.raised && a.step == Some(2) && a.text.contains("the loss is NaN")),
        "{alert:?}"
    );
    assert_eq!(checkpoint::latest(run.path()), Some(checkpoint::step_dir(run.path(), 1)));
    let rows = std::fs::read_to_string(run.path().join("rollouts.jsonl")).unwrap();
    assert!(rows.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"] == 1));
}

#[test]
fn weights_made_non_finite_by_an_update_end_the_step_with_the_tensor_named() {
    let model_dir = tempfile::tempdir().unwrap();
    tiny::write(model_dir.path()).unwrap();
    let workers = open(model_dir.path());
    // beta2 = 2 is refused by the configuration; built directly it makes the second moment
    // negative, so the update takes a square root of it: finite loss and gradients, NaN weights
    let cfg = StepConfig { adamw: AdamWConfig { beta2: 2.0, ..AdamWConfig::default() }, ..config() };
    let mut t = Trainer::new(cfg, 3);
    let batch = [TrainPrompt {
        prompt: "Write a story about a fox. The story should be 100 words long.",
        story: Some("The fox ran home."),
        reasoning: None,
    }];
    let e = t.step(&workers, &batch, &WordsReward(16.0), &AtomicBool::new(false)).unwrap_err();
    let nf = e.downcast_ref::<NonFinite>().unwrap_or_else(|| panic!("{e:#}"));
    assert_eq!(nf.step, 1);
    assert!(
        nf.what.starts_with("weight model.") && nf.what.contains("NaN or infinite after the update"),
        "{}",
        nf.what
    );
    assert_eq!(t.step, 0, "the failed step is not counted");
    assert!(format!("{e}").contains("not checkpointed"), "{e}");
}

#[test]
fn the_event_log_refuses_a_record_its_reader_would_reject() {
    let run = tempfile::tempdir().unwrap();
    let path = run.path().join("events.jsonl");
    let mut log = EventLog::open(&path).unwrap();
    log.append(EventKind::Started { config: serde_json::json!({}), resumed_from_step: None }).unwrap();
    let bad = StepStats { step: 1, loss: f64::NAN, ..Default::default() };
    let e = log.append(EventKind::Step(Box::new(bad))).unwrap_err().to_string();
    assert!(e.contains("refusing to append") && e.contains("events.jsonl"), "{e}");
    // the log is as it was, and numbering goes on after the last event written
    let read = polaris::run::log::read(&path).unwrap();
    assert_eq!(read.events.len(), 1);
    let next = log.append(EventKind::Step(Box::new(StepStats { step: 1, ..Default::default() }))).unwrap();
    assert_eq!(next.seq, 2);
    assert_eq!(polaris::run::log::read(&path).unwrap().events.len(), 2);
}

/// Rewrites a safetensors file with tensor `name`'s first element set to `value`.
fn poison(file: &std::path::Path, name: &str, value: f32) {
    let mut tensors: HashMap<String, Tensor> = candle_core::safetensors::load(file, &Device::Cpu).unwrap();
    let t = &tensors[name];
    let mut v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    v[0] = value;
    let poisoned = Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap();
    tensors.insert(name.to_string(), poisoned);
    candle_core::safetensors::save(&tensors, file).unwrap();
}

#[test]
fn a_checkpoint_or_model_with_non_finite_weights_is_refused_naming_the_tensor() {
    let model_dir = tempfile::tempdir().unwrap();
    tiny::write(model_dir.path()).unwrap();
    let workers = open(model_dir.path());
    let run = tempfile::tempdir().unwrap();
    let t = Trainer::new(config(), 3);
    let saved = checkpoint::save(run.path(), &workers.primary().model, &t, 0).unwrap();
    poison(&saved.join(checkpoint::WEIGHTS), "model.norm.weight", f32::NAN);
    let before =
        workers.primary().model.trainable()[0].1.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let e = format!(
        "{:#}",
        checkpoint::load(&saved, &workers.primary().model, &mut Trainer::new(config(), 0)).unwrap_err()
    );
    assert!(e.contains("weights.safetensors") && e.contains("model.norm.weight") && e.contains("NaN"), "{e}");
    let after =
        workers.primary().model.trainable()[0].1.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(before == after, "a refused checkpoint changes no weight");

    poison(&model_dir.path().join("model.safetensors"), "model.layers.0.mlp.up_proj.weight", f32::INFINITY);
    let e = format!(
        "{:#}",
        LanguageModel::from_dir(model_dir.path(), &LoadOptions::new(DType::F32, Device::Cpu)).err().unwrap()
    );
    assert!(e.contains("model.safetensors") && e.contains("model.layers.0.mlp.up_proj.weight"), "{e}");
    assert!(e.contains("NaN or infinite"), "{e}");
}
