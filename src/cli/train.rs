//! `polaris-tui train`: a headless GRPO + HRI run, one line per step.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::progress;
use crate::run::driver::Ending;
use crate::run::launch::{launch, run_dir, Resume};
use crate::run::Control;
use crate::train::config::TrainConfig;

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// A run configuration (see `init-config`); without it, the recipe's defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// model.path: a Hugging Face model directory, or `tiny`.
    #[arg(long)]
    pub model: Option<String>,
    /// data.train: the dataset JSONL.
    #[arg(long)]
    pub data: Option<String>,
    /// reward.judge: offline, openai:MODEL or gemini:MODEL.
    #[arg(long)]
    pub judge: Option<String>,
    /// reward.rubric: builtin or a rubric TOML.
    #[arg(long)]
    pub rubric: Option<String>,
    /// run.steps
    #[arg(long)]
    pub steps: Option<usize>,
    /// step.group_size
    #[arg(long)]
    pub group_size: Option<usize>,
    /// run.devices: cpu, cpu:N (N workers) or cuda:0,cuda:1,... (cuda feature)
    #[arg(long)]
    pub devices: Option<String>,
    /// run.out: the run directory (default runs/<run.name>).
    #[arg(long)]
    pub out: Option<String>,
    /// `auto` (the run directory's newest checkpoint) or a checkpoint folder.
    #[arg(long)]
    pub resume: Option<String>,
    /// Override any config key: --set step.loss.clip_high=0.3 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let (text, origin) = match &args.config {
        Some(p) => (
            std::fs::read_to_string(p).with_context(|| format!("cannot read --config {}", p.display()))?,
            p.display().to_string(),
        ),
        None => (String::new(), "the defaults".to_string()),
    };
    let quote = |s: &str| format!("{:?}", s);
    let mut sets: Vec<String> = Vec::new();
    if let Some(v) = &args.model {
        sets.push(format!("model.path={}", quote(v)));
    }
    if let Some(v) = &args.data {
        sets.push(format!("data.train={}", quote(v)));
    }
    if let Some(v) = &args.judge {
        sets.push(format!("reward.judge={}", quote(v)));
    }
    if let Some(v) = &args.rubric {
        sets.push(format!("reward.rubric={}", quote(v)));
    }
    if let Some(v) = args.steps {
        sets.push(format!("run.steps={v}"));
    }
    if let Some(v) = args.group_size {
        sets.push(format!("step.group_size={v}"));
    }
    if let Some(v) = &args.devices {
        sets.push(format!("run.devices={}", quote(v)));
    }
    if let Some(v) = &args.out {
        sets.push(format!("run.out={}", quote(v)));
    }
    sets.extend(args.set.iter().cloned());
    let cfg = TrainConfig::parse(&text, &origin, &sets)?;
    let resume = match args.resume.as_deref() {
        None => Resume::No,
        Some("auto") => Resume::Auto,
        Some(path) => Resume::From(PathBuf::from(path)),
    };
    let (_controls, rx) = mpsc::channel();
    run_headless(&cfg, resume, rx)
}

/// Runs a configuration in this process with a progress bar and one line per step, until
/// it ends or SIGINT / SIGTERM (which end it between steps, with a final checkpoint).
pub fn run_headless(cfg: &TrainConfig, resume: Resume, controls: mpsc::Receiver<Control>) -> Result<()> {
    let interrupt = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupt.clone())?;
    }
    let mut printer = None;
    let steps = cfg.run.steps;
    let ending = launch(cfg, resume, controls, &interrupt, |dir, events| {
        eprintln!("training {} on {} -> {}", cfg.model.path, cfg.data.train, dir.display());
        printer = Some(std::thread::spawn(move || progress::follow(events, steps)));
    });
    if let Some(p) = printer {
        let _ = p.join();
    }
    match ending? {
        Ending::Finished | Ending::Stopped => Ok(()),
        Ending::Interrupted => bail!(
            "interrupted; the run is saved: continue it with --resume auto --out {}",
            run_dir(cfg).display()
        ),
    }
}
