//! `polaris-tui train`: a headless GRPO + HRI run, one line per step.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::device::{parse_device, parse_dtype};
use crate::lm::LanguageModel;
use crate::model::{adapters_only, all_trainable, LoadOptions, LoraInit, LoraSpec};
use crate::reward::{JudgeClient, JudgeSpec, Rubric};
use crate::run::driver::{Driver, Ending, RunDir, RunOptions, Work};
use crate::run::EventKind;
use crate::train::config::TrainConfig;
use crate::train::data;
use crate::train::step::{StackRewarder, Trainer};

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
    /// run.devices (this build trains on `cpu`)
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
    if cfg.run.devices != "cpu" {
        bail!("run.devices = {:?}: this build trains on one CPU worker (`cpu`); multi-worker and CUDA training are not in it yet", cfg.run.devices);
    }

    let examples = data::load(std::path::Path::new(&cfg.data.train))?;
    let opts = LoadOptions::new(parse_dtype(&cfg.model.dtype)?, parse_device("cpu")?);
    // with LoRA only the adapters train; they start as PEFT initialises them, seeded by the run
    let opts = match cfg.model.lora.config() {
        Some(config) => opts
            .lora(LoraSpec { config, init: LoraInit::Fresh { seed: cfg.run.seed } })
            .trainable(adapters_only()),
        None => opts.trainable(all_trainable()),
    };
    let lm = LanguageModel::open(&cfg.model.path, &opts)?;
    lm.model.set_training(true);
    let rubric = match (&cfg.reward.rubric_prompt, &cfg.reward.rubric_schema) {
        (Some(p), Some(s)) => Rubric::from_prompt_and_schema(p.as_ref(), s.as_ref())?,
        _ => Rubric::load(&cfg.reward.rubric)?,
    };
    let out = PathBuf::from(cfg.run.out.clone().unwrap_or_else(|| format!("runs/{}", cfg.run.name)));
    let mut judge = cfg.judge.clone();
    if judge.cache_dir.is_none() {
        judge.cache_dir = Some(out.join("judge-cache"));
    }
    let client = JudgeClient::new(JudgeSpec::parse(&cfg.reward.judge)?, rubric, judge)?;
    let rewarder = StackRewarder::new(client, cfg.reward.weights)?;

    let has_checkpoints = crate::train::checkpoint::latest(&out).is_some();
    if has_checkpoints && args.resume.is_none() {
        bail!(
            "{} already has checkpoints: pass --resume auto to continue it, or choose another --out",
            out.display()
        );
    }
    let (_controls, rx) = mpsc::channel();
    let trainer = Trainer::new(cfg.step.clone(), cfg.run.seed);
    let run_opts = RunOptions {
        steps: cfg.run.steps,
        prompts_per_step: cfg.run.prompts_per_step,
        checkpoint_every: cfg.run.checkpoint_every,
    };
    let work = Work { lm: &lm, data: &examples, rewarder: &rewarder };
    let mut driver = Driver::new(RunDir::create(&out)?, &cfg.to_toml()?, work, trainer, run_opts, rx)?;
    let resumed = match args.resume.as_deref() {
        None => None,
        Some("auto") => driver.resume_latest()?,
        Some(path) => {
            let state =
                crate::train::checkpoint::load(std::path::Path::new(path), &lm.model, &mut driver.trainer)?;
            driver.cursor = state.data_cursor;
            Some(state.step)
        }
    };

    // SIGINT / SIGTERM end the run between steps, with a final checkpoint
    let interrupt = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupt.clone())?;
    }
    let mut events = driver.log.subscribe();
    let printer = std::thread::spawn(move || {
        while let Ok(ev) = events.blocking_recv() {
            match ev.kind {
                EventKind::Step(s) => eprintln!(
                    "step {:>4}  reward {:+.3} ± {:.3}  ref {}  loss {:+.4}  grad {:.3}  words {:.0}  gen {:.1}s judge {:.1}s train {:.1}s",
                    s.step,
                    s.policy_reward_mean,
                    s.policy_reward_std,
                    s.reference_reward_mean.map_or("-".into(), |r| format!("{r:+.3}")),
                    s.loss,
                    s.grad_norm,
                    s.words_mean,
                    s.seconds_generate,
                    s.seconds_judge,
                    s.seconds_train
                ),
                EventKind::Checkpoint { step, path } => eprintln!("checkpoint at step {step}: {path}"),
                EventKind::Finished { step, reason } => {
                    eprintln!("run {reason} at step {step}");
                    break;
                }
                _ => {}
            }
        }
    });
    eprintln!("training {} on {} prompts -> {}", cfg.model.path, examples.len(), out.display());
    let config_json = serde_json::to_value(&cfg)?;
    let ending = driver.run(config_json, resumed, &interrupt);
    drop(driver);
    let _ = printer.join();
    match ending? {
        Ending::Finished | Ending::Stopped => Ok(()),
        Ending::Interrupted => {
            bail!("interrupted; the run is saved: continue it with --resume auto --out {}", out.display())
        }
    }
}
