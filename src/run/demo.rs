//! The demo run behind `polaris-tui` with no arguments: the built-in tiny model, warm-started
//! by a short supervised pass on the demo stories, then GRPO + HRI with the offline judge on
//! the demo prompts (each with its human reference). Small enough to show progress within
//! a minute on two CPU cores; every file it writes is a normal run directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use tokio::sync::broadcast;

use super::driver::Ending;
use super::event::{Control, Event};
use super::launch::{launch, Resume};
use crate::model::tiny;
use crate::train::config::TrainConfig;

/// The demo's settings over the recipe's defaults. Sized for the tiny model: short stories,
/// a high learning rate (the tiny model starts from random weights), no thinking.
pub const DEMO_SETS: &[&str] = &[
    "model.path = \"tiny\"",
    "run.name = \"demo\"",
    "run.steps = 60",
    "run.prompts_per_step = 2",
    "run.checkpoint_every = 10",
    "reward.judge = \"offline\"",
    "sft.epochs = 3",
    "sft.batch_size = 4",
    "sft.lr = 2e-3",
    "sft.max_response_tokens = 384",
    "sft.thinking = false",
    "step.group_size = 6",
    "step.thinking = false",
    "step.sampling.max_new_tokens = 384",
    "step.lr = { kind = \"constant\", lr = 3e-4 }",
    "step.hri_schedule.warmup_steps = 5",
];

/// The demo configuration writing to `dir` (its dataset is written there as `data.jsonl`).
pub fn config(dir: &Path) -> Result<TrainConfig> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let data = super::RunDir::at(dir).demo_data();
    if !data.exists() {
        std::fs::write(&data, tiny::DEMO_PROMPTS)
            .with_context(|| format!("cannot write {}", data.display()))?;
    }
    let mut sets: Vec<String> = DEMO_SETS.iter().map(|s| s.to_string()).collect();
    sets.push(format!("data.train = {:?}", data.display().to_string()));
    sets.push(format!("run.out = {:?}", dir.display().to_string()));
    TrainConfig::parse("", "the demo configuration", &sets)
}

/// A fresh folder for a demo run: `runs/demo-<unix seconds>`.
pub fn fresh_dir() -> PathBuf {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    PathBuf::from(format!("runs/demo-{secs}"))
}

/// A run going on in a thread of this process.
pub struct LiveRun {
    pub dir: PathBuf,
    /// Pause, resume, checkpoint now, stop: acted on between steps.
    pub controls: Sender<Control>,
    /// Set to end the run between steps (with a final checkpoint), as SIGINT does.
    pub interrupt: Arc<AtomicBool>,
    /// The live event stream (the run log has them all, from seq 1).
    pub events: broadcast::Receiver<Event>,
    pub thread: JoinHandle<Result<Ending>>,
}

/// Starts the demo run in `dir` on a background thread; returns once it is logging.
pub fn start(dir: &Path) -> Result<LiveRun> {
    let cfg = config(dir)?;
    let (controls, rx) = mpsc::channel();
    let interrupt = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let flag = interrupt.clone();
    let thread = std::thread::Builder::new().name("demo-run".into()).spawn(move || {
        launch(&cfg, Resume::Auto, rx, &flag, |_, events| {
            let _ = ready_tx.send(events);
        })
    })?;
    let events = match ready_rx.recv() {
        Ok(events) => events,
        // the thread ended before it could log: its error says why
        Err(_) => {
            return Err(match thread.join() {
                Ok(Err(e)) => e,
                _ => anyhow::anyhow!("the demo run ended before it started"),
            })
        }
    };
    Ok(LiveRun { dir: dir.to_path_buf(), controls, interrupt, events, thread })
}
