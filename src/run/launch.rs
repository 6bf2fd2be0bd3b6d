//! Starting a run from a resolved configuration: the workers' replicas, the dataset, the
//! reward stack, the run directory, an optional resume, the supervised warm start, then the
//! GRPO driver. Shared by `polaris-tui train` (foreground or detached) and the demo run, so
//! every way of starting a run writes the same run directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};

use anyhow::{bail, Context, Result};
use tokio::sync::broadcast;

use super::alerts::Watch;
use super::claim::Claim;
use super::dir::RunDir;
use super::driver::{Driver, Ending, RunOptions, Validation, Work};
use super::event::{Control, Event, EventKind, Level};
use super::exit::{self, Exit, ExitKind};
use super::remote;
use super::status::Summary;
use super::{log, process, registry};
use crate::device::parse_dtype;
use crate::model::{adapters_only, all_trainable, LoadOptions, LoraInit, LoraSpec};
use crate::reward::JudgeSettings;
use crate::train::checkpoint;
use crate::train::config::TrainConfig;
use crate::train::data;
use crate::train::sft::sft;
use crate::train::step::{StackRewarder, Trainer};
use crate::train::workers::{parse_devices, Workers};
use candle_core::Device;

/// The run directory a configuration writes to.
pub fn run_dir(cfg: &TrainConfig) -> PathBuf {
    PathBuf::from(cfg.run.out.clone().unwrap_or_else(|| format!("runs/{}", cfg.run.name)))
}

/// How to begin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// A new run; an existing checkpoint in the directory is an error.
    No,
    /// The run directory's newest checkpoint, or a new run when there is none.
    Auto,
    /// A checkpoint folder.
    From(PathBuf),
}

/// A new run (`Resume::No`) may not start over a directory that has checkpoints, and no run
/// over one that another live trainer is writing.
pub fn check_fresh(cfg: &TrainConfig, resume: &Resume) -> Result<()> {
    let out = run_dir(cfg);
    if let Some(pid) = process::read_pid(&out)?.filter(|p| *p != std::process::id()) {
        // a process whose exit.json is written has let the run go (the demo hands its run on
        // to a daemon this way), though the process itself may live on
        let let_go = exit::read(&out).ok().flatten().is_some_and(|e| e.pid == pid);
        if !let_go && process::check_trainer(&out, pid).is_ok() {
            bail!(
                "{dir} is being trained by process {pid}: watch it with `polaris-tui attach {dir}`, or stop \
                 it first with `polaris-tui stop {dir}` (if that process is no trainer, delete {dir}/daemon.pid)",
                dir = out.display()
            );
        }
    }
    if *resume == Resume::No && checkpoint::latest(&out).is_some() {
        bail!(
            "{} already has checkpoints: pass --resume auto to continue it, or choose another --out",
            out.display()
        );
    }
    Ok(())
}

/// Opens everything and runs to the end. `watch` gets a live receiver of the run's events
/// (and where the run directory is) before anything is logged.
///
/// The directory is claimed first (`trainer.lock`, claim.rs): a second start on it is
/// refused before it writes anything. Then (this process in `daemon.pid`, a previous
/// `exit.json` removed, what a killed writer left removed, the run registered) the run's
/// ending is written to `exit.json` whatever it is: finished, stopped (a Stop control,
/// SIGINT / SIGTERM) or failed with the error.
pub fn launch(
    cfg: &TrainConfig,
    resume: Resume,
    controls: Receiver<Control>,
    interrupt: &AtomicBool,
    watch: impl FnOnce(&Path, broadcast::Receiver<Event>),
) -> Result<Ending> {
    let out = run_dir(cfg);
    // held until the ending is written
    let _claim = Claim::acquire(&out)?;
    check_fresh(cfg, &resume)?;
    RunDir::create(&out)?;
    let pid = std::process::id();
    process::write_pid(&out, pid)?;
    exit::clear(&out)?;
    let mut warnings = leftovers(&out)?;
    // a run that cannot be registered still runs: `runs` will not list it, and its log says so
    if let Err(e) = registry::register(&out) {
        warnings.push(format!("this run is not registered, so `polaris-tui runs` will not list it: {e:#}"));
    }
    if let Some(notice) = cfg.reward.principles_notice() {
        warnings.push(notice.to_string());
    }
    let (plan, advice) = memory_notes(cfg);
    let resume_hint = format!(
        "Then continue from the last checkpoint: polaris-tui train --config {}/config.toml --resume auto (with those --set flags).",
        out.display()
    );
    super::work::begin(&out, plan, advice, resume_hint);
    let ending = open_and_run(cfg, resume, controls, interrupt, watch, warnings);
    super::work::end();
    let (kind, message) = match &ending {
        Ok(Ending::Finished) => (ExitKind::Finished, String::new()),
        Ok(Ending::Stopped) => (ExitKind::Stopped, "a stop control".to_string()),
        Ok(Ending::Interrupted) => (ExitKind::Stopped, "interrupted (SIGINT or SIGTERM)".to_string()),
        Err(e) => (ExitKind::Failed, format!("{e:#}")),
    };
    let last_step = log::read(&RunDir::at(&out).events()).ok().and_then(|l| Summary::of(&l.events).last_step);
    let written = exit::write(&out, &Exit::new(kind, pid, last_step, message));
    match (ending, written) {
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(e.context("the run ended, but its exit status could not be saved")),
        (Ok(ending), Ok(())) => Ok(ending),
    }
}

/// Removes what writers killed mid-write left in a claimed run directory (a checkpoint's
/// temporary folder, a temporary of a file written whole); returns a note naming them.
fn leftovers(out: &Path) -> Result<Vec<String>> {
    let mut removed = checkpoint::clean_temporaries(out)?;
    removed.extend(crate::durable::clean_temporaries(out)?);
    if removed.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
    Ok(vec![format!(
        "removed {} temporary file(s) left by a process killed while writing: {}",
        names.len(),
        names.join(", ")
    )])
}

/// The memory plan's line and what would lower the peak by a quarter (or bring it under what
/// is available), for a failure record: the plan said the run fits, so if memory runs out
/// anyway, less is needed than it predicted.
fn memory_notes(cfg: &TrainConfig) -> (String, String) {
    use crate::plan::{advice, available, model_config, Place, Plan};
    let Ok(model) = model_config(&cfg.model.path) else {
        return ("unavailable (the model's config.json cannot be read)".into(), String::new());
    };
    let real = |p: &Place| match p {
        Place::Host => available::host(),
        Place::Cuda(i) => available::cuda(*i),
    };
    let Ok(plan) = Plan::compute(cfg, &model, &real) else {
        return ("unavailable".into(), String::new());
    };
    let peak = plan.tightest().peak();
    let target = plan.tightest().available.map_or(peak, |a| a.min(peak)) / 4 * 3;
    let changes = advice::advise(cfg, &model, &|_: &Place| Some(target));
    let text = match changes.iter().take(3).map(|c| c.flags()).collect::<Vec<_>>() {
        v if v.is_empty() => {
            "Use a smaller model, shorter rows (step.sampling.max_new_tokens) or a device with more memory."
                .to_string()
        }
        v => format!("To use less memory: {}.", v.join(", or ")),
    };
    (plan.summary(), text)
}

/// `launch` after the directory is claimed.
fn open_and_run(
    cfg: &TrainConfig,
    resume: Resume,
    controls: Receiver<Control>,
    interrupt: &AtomicBool,
    watch: impl FnOnce(&Path, broadcast::Receiver<Event>),
    warnings: Vec<String>,
) -> Result<Ending> {
    let out = run_dir(cfg);
    // a directory without a log is being made a run directory now: its mode may be tightened
    let new_run = !RunDir::at(&out).events().exists();
    let devices = parse_devices(&cfg.run.devices).context("run.devices")?;
    let examples = data::load(Path::new(&cfg.data.train))?;
    let val_examples = match &cfg.data.val {
        Some(path) => Some(data::load(Path::new(path)).context("data.val")?),
        None => None,
    };
    let data_sha256 = data::file_sha256(Path::new(&cfg.data.train))?;
    let opts = LoadOptions::new(parse_dtype(&cfg.model.dtype).context("model.dtype")?, Device::Cpu);
    // with LoRA only the adapters train; they start as PEFT initialises them, seeded by the run
    let opts = match cfg.model.lora.config() {
        Some(config) => opts
            .lora(LoraSpec { config, init: LoraInit::Fresh { seed: cfg.run.seed } })
            .trainable(adapters_only()),
        None => opts.trainable(all_trainable()),
    };
    let workers = Workers::open_with(&cfg.model.path, &devices, &opts, cfg.step.loss.kl_coef != 0.0)?;
    let rubric = cfg.reward.rubric()?;
    let judge = cfg.judge.clone().with_default_cache(RunDir::at(&out).judge_cache());
    let rules = cfg.reward.row_rules(&rubric)?;
    // validation judges with its own concurrency (one pass at a time, between steps)
    let val_judge = JudgeSettings { concurrency: cfg.validation.judge_concurrency, ..judge.clone() };
    let val_rewarder = match &val_examples {
        Some(_) => Some(StackRewarder::new(
            cfg.reward.judge_client(rubric.clone(), val_judge)?,
            cfg.validation.weights,
        )?),
        None => None,
    };
    // a reward model judge (`rm:DIR`) scores on the first worker's device
    let client = cfg.reward.judge_client(rubric, judge)?.on_device(&devices[0])?;
    let rewarder = StackRewarder::with_rules(client, rules)?;

    let mut trainer = Trainer::new(cfg.step.clone(), cfg.run.seed);
    trainer.devices = crate::train::throughput::DeviceInfo::of_run(&cfg.run.devices, &cfg.model.dtype);
    let opts = RunOptions {
        steps: cfg.run.steps,
        prompts_per_step: cfg.run.prompts_per_step,
        checkpoint_every: cfg.run.checkpoint_every,
    };
    let validation = match (&val_examples, &val_rewarder) {
        (Some(data), Some(rewarder)) => {
            Some(Validation { data, rewarder, cfg: &cfg.validation, every: cfg.run.val_every })
        }
        _ => None,
    };
    let work = Work { workers: &workers, data: &examples, rewarder: &rewarder, validation };
    // the driver hears the caller's controls and those of the viewer holding the socket's lease
    let (to_driver, driver_controls) = mpsc::channel();
    forward(controls, to_driver.clone());
    let mut driver =
        Driver::new(RunDir::create(&out)?, &cfg.to_toml()?, work, trainer, opts, driver_controls)?;
    driver.data_sha256 = Some(data_sha256);
    driver.alerts = Watch::new(
        cfg.alerts.clone(),
        cfg.run.prompts_per_step,
        cfg.run.prompts_per_step * cfg.step.group_size,
    )
    .with_probe(crate::gpu::memory_probe(&cfg.run.devices));
    // served until this function returns; the socket file goes with it
    let _serving = remote::serve(&out, driver.log.live(), to_driver, new_run)?;
    let resumed = match resume {
        Resume::No => None,
        Resume::Auto => driver.resume_latest()?,
        Resume::From(path) => Some(driver.restore(&path)?),
    };
    watch(&out, driver.log.subscribe());
    for text in warnings {
        driver.log.append(EventKind::Message { level: Level::Warn, text })?;
    }

    // the warm start belongs to a new run only: a resumed run's weights already have it
    if cfg.sft.epochs > 0 && resumed.is_none() {
        let stories = examples.iter().filter(|e| e.story.is_some()).count();
        driver.log.append(EventKind::Message {
            level: Level::Info,
            text: format!(
                "warm start: {} epochs of supervised training on {stories} stories",
                cfg.sft.epochs
            ),
        })?;
        let log = &mut driver.log;
        let steps = sft(workers.primary(), &examples, &cfg.sft, interrupt, |s| {
            log.append(EventKind::Sft(Box::new(s.clone())))?;
            Ok(())
        })?;
        if interrupt.load(Ordering::Relaxed) {
            // a warm start cut short is not kept: a checkpoint of it would be resumed as if it
            // were whole (a resumed run skips the warm start), so the run starts over instead
            driver.log.append(EventKind::Message {
                level: Level::Warn,
                text: format!(
                    "the warm start was stopped after {} updates; nothing is saved, and `--resume auto` \
                     starts the run over",
                    steps.len()
                ),
            })?;
            return Ok(Ending::Interrupted);
        }
        workers.broadcast()?;
    }
    driver.run(serde_json::to_value(cfg)?, resumed, interrupt)
}

/// Passes the caller's controls on until the caller drops its sender or the driver is gone.
/// The thread may outlive the run while the caller keeps an idle sender; it holds nothing.
fn forward(from: Receiver<Control>, to: Sender<Control>) {
    let _ = std::thread::Builder::new().name("controls".into()).spawn(move || {
        while let Ok(c) = from.recv() {
            if to.send(c).is_err() {
                return;
            }
        }
    });
}
