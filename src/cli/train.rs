//! `polaris-tui train`: a headless GRPO + HRI run, one line per step.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::progress;
use crate::run::daemon;
use crate::run::driver::Ending;
use crate::run::launch::{check_fresh, launch, run_dir, Resume};
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
    /// data.val: held-out prompts (`data build` writes val.jsonl), validated on before the
    /// first step and every run.val_every steps.
    #[arg(long)]
    pub val: Option<String>,
    #[arg(long, help = concat!("reward.judge: ", crate::reward::judge::judge_specs!()))]
    pub judge: Option<String>,
    /// reward.rubric: builtin or a rubric TOML.
    #[arg(long)]
    pub rubric: Option<String>,
    /// reward.principles: a principles file the judge scores with (not the offline judge).
    #[arg(long)]
    pub principles: Option<String>,
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
    /// Run in the background, in a session of its own that outlives this terminal and the
    /// ssh connection (output in RUN_DIR/daemon.log); prints how to attach to it and stop it.
    #[arg(long)]
    pub detach: bool,
    /// Start even when the memory plan predicts the run will not fit (see `polaris-tui plan`).
    #[arg(long)]
    pub ignore_plan: bool,
    /// The detached trainer itself (started by --detach): no progress bar, and SIGTERM is an
    /// ordinary stop (exit 0, with a final checkpoint).
    #[arg(long, hide = true)]
    pub daemon: bool,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let mut cfg = resolve(&args)?;
    // before any model is loaded or any directory claimed: a run that cannot fit says so now
    check_plan(&mut cfg, args.ignore_plan)?;
    let resume = match args.resume.as_deref() {
        None => Resume::No,
        Some("auto") => Resume::Auto,
        Some(path) => Resume::From(PathBuf::from(path)),
    };
    if args.detach {
        return detach(&cfg, &resume);
    }
    let (_controls, rx) = mpsc::channel();
    run_headless_as(&cfg, resume, rx, args.daemon)
}

/// The memory plan of a run: decides checkpoint_layers = "auto" (the decision is what the
/// run's config.toml records), and refuses a run that cannot fit unless `ignore`, saying
/// what to change. A model whose config.json cannot be read is left to the loading, which
/// says why in the run's own record (exit.json), as it always has: no plan then.
pub fn check_plan(cfg: &mut TrainConfig, ignore: bool) -> Result<Option<crate::plan::Plan>> {
    use crate::plan::{advice, available, model_config, Place, Plan};
    let Ok(model) = model_config(&cfg.model.path) else { return Ok(None) };
    let real = |p: &Place| match p {
        Place::Host => available::host(),
        Place::Cuda(i) => available::cuda(*i),
    };
    let plan = Plan::compute(cfg, &model, &real)?;
    if cfg.step.checkpoint_layers.fixed().is_none() {
        cfg.step.checkpoint_layers = plan.checkpoint_layers.into();
    }
    if !plan.fits() {
        if !ignore {
            bail!("{}", advice::refusal(&plan, &advice::advise(cfg, &model, &real)));
        }
        eprintln!("warning: {} (--ignore-plan: starting anyway)", plan.summary());
    }
    Ok(Some(plan))
}

/// The run configuration the flags describe: --config (or the defaults), the shorthand flags,
/// then every --set in order.
pub fn resolve(args: &TrainArgs) -> Result<TrainConfig> {
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
    if let Some(v) = &args.val {
        sets.push(format!("data.val={}", quote(v)));
    }
    if let Some(v) = &args.judge {
        sets.push(format!("reward.judge={}", quote(v)));
    }
    if let Some(v) = &args.rubric {
        sets.push(format!("reward.rubric={}", quote(v)));
    }
    if let Some(v) = &args.principles {
        sets.push(format!("reward.principles={}", quote(v)));
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
    TrainConfig::parse(&text, &origin, &sets)
}

/// `train --detach`: the same command line, minus `--detach`, started in the background.
fn detach(cfg: &TrainConfig, resume: &Resume) -> Result<()> {
    // what would fail at once is told here, not in a log
    check_fresh(cfg, resume)?;
    // argv is `polaris-tui train ARGS`: the daemon gets ARGS
    let args: Vec<OsString> = std::env::args_os().skip(2).filter(|a| a != "--detach").collect();
    let d = daemon::detach(&run_dir(cfg), &args)?;
    print_detached(&d);
    Ok(())
}

/// Where a detached run is and what to do with it.
fn print_detached(d: &daemon::Detached) {
    let dir = d.dir.display();
    let state = if d.logging { "training" } else { "starting (loading the model)" };
    println!("{state} in the background, pid {}: {dir}", d.pid);
    println!("  watch it:   polaris-tui attach {dir}");
    println!("  its output: {}", crate::run::RunDir::at(&d.dir).daemon_log().display());
    println!("  stop it:    polaris-tui stop {dir}   (checkpoints first)");
    println!("  all runs:   polaris-tui runs");
}

/// Continues a run directory's configuration from its latest checkpoint as a detached run
/// (the demo's `d`: the run moves from the TUI's process to a daemon of its own).
pub fn continue_detached(dir: &std::path::Path) -> Result<()> {
    let config = crate::run::RunDir::at(dir).config();
    let args: Vec<OsString> = vec!["--config".into(), config.into(), "--resume".into(), "auto".into()];
    let d = daemon::detach(dir, &args)?;
    print_detached(&d);
    Ok(())
}

/// Runs a configuration in this process with a progress bar and one line per step, until
/// it ends or SIGINT / SIGTERM (which end it between steps, with a final checkpoint).
pub fn run_headless(cfg: &TrainConfig, resume: Resume, controls: mpsc::Receiver<Control>) -> Result<()> {
    run_headless_as(cfg, resume, controls, false)
}

/// `run_headless`, or as a detached trainer (`daemon`): lines without a bar, and SIGINT /
/// SIGTERM a stop like any other.
fn run_headless_as(
    cfg: &TrainConfig,
    resume: Resume,
    controls: mpsc::Receiver<Control>,
    daemon: bool,
) -> Result<()> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let ctrl_c = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupt.clone())?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGINT, ctrl_c.clone())?;
    let mut printer = None;
    let steps = cfg.run.steps;
    let ending = launch(cfg, resume, controls, &interrupt, |dir, events| {
        eprintln!("training {} on {} -> {}", cfg.model.path, cfg.data.train, dir.display());
        printer = Some(std::thread::spawn(move || progress::follow(events, steps, !daemon)));
    });
    if let Some(p) = printer {
        let _ = p.join();
    }
    // a stop (SIGTERM, `polaris-tui stop`, a Stop control) is a clean ending: exit 0. Ctrl-C
    // (SIGINT) exits 130, as an interrupted command does in a shell, so `train && next` stops
    match ending? {
        Ending::Finished | Ending::Stopped => Ok(()),
        Ending::Interrupted if daemon => Ok(()),
        Ending::Interrupted => {
            eprintln!(
                "stopped; the run is saved: continue it with --resume auto --out {}",
                run_dir(cfg).display()
            );
            if ctrl_c.load(std::sync::atomic::Ordering::Relaxed) {
                std::process::exit(130);
            }
            Ok(())
        }
    }
}
