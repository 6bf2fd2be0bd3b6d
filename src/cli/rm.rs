//! `polaris-tui rm train` / `rm eval`: a reward model from preference pairs (`prefs build`),
//! and its held-out pair accuracy. The library side is `crate::rm`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::device::{parse_device, parse_dtype};
use crate::durable::write_atomic;
use crate::model::{adapters_only, all_trainable, LoadOptions, LoraConfig, LoraInit, LoraSpec};
use crate::prefs::{read_pairs, Pair, Split};
use crate::rm::eval::{accuracy, pair_scores};
use crate::rm::manifest::{Accuracy, Training, FORMAT};
use crate::rm::train::{train, Checkpoints, RmTrainConfig};
use crate::rm::{Manifest, RewardModel};
use crate::run::RunDir;
use crate::train::optim::{AdamW, AdamWConfig};
use crate::train::trained::Weights;

#[derive(Subcommand, Debug)]
pub enum RmCommand {
    /// Train a reward model (a scalar head on a language model, Bradley-Terry pair loss) on a pairs file.
    Train(TrainArgs),
    /// Pair accuracy of a reward model with a bootstrap 95% CI over prompts.
    Eval(EvalArgs),
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Pairs JSONL (`prefs build`); pairs with split = heldout are kept out of training and measured at the end.
    #[arg(long)]
    pub pairs: PathBuf,
    /// The base model: a Hugging Face model directory or `tiny`.
    #[arg(long, default_value = "tiny")]
    pub model: String,
    /// Output folder: rm.json (manifest), train.json, checkpoints/step-N/ (head, weights or adapter).
    #[arg(long)]
    pub out: PathBuf,
    /// Train LoRA adapters (and the head) instead of every weight.
    #[arg(long)]
    pub lora: bool,
    #[arg(long, default_value_t = 16)]
    pub lora_r: usize,
    #[arg(long, default_value_t = 32.0)]
    pub lora_alpha: f64,
    /// Module names (q_proj, ...) or all-linear.
    #[arg(long, default_value = "all-linear", value_delimiter = ',')]
    pub lora_targets: Vec<String>,
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Pairs per optimizer step.
    #[arg(long, default_value_t = 8)]
    pub batch_pairs: usize,
    #[arg(long, default_value_t = 1e-5)]
    pub lr: f64,
    /// Tokens a row keeps at most (prompt + story + end token); longer stories are cut.
    #[arg(long, default_value_t = 2048)]
    pub max_tokens: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Steps between checkpoints (0: only at the end and when stopped).
    #[arg(long, default_value_t = 50)]
    pub checkpoint_every: usize,
    /// Weight and compute precision: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// cpu, or cuda:N (in a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Continue the unfinished training in --out from its latest checkpoint.
    #[arg(long)]
    pub resume: bool,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A reward model folder (`rm train --out`).
    #[arg(long)]
    pub rm: PathBuf,
    #[arg(long)]
    pub pairs: PathBuf,
    /// Which pairs to measure: heldout, train or all.
    #[arg(long, default_value = "heldout")]
    pub split: String,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Bootstrap seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(cmd: RmCommand) -> Result<()> {
    match cmd {
        RmCommand::Train(args) => run_train(args),
        RmCommand::Eval(args) => run_eval(args),
    }
}

/// What `RM/train.json` holds: every choice that shapes the model, so a resume trains the same.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Plan {
    base_model: String,
    dtype: String,
    lora: Option<LoraConfig>,
    pairs_file: String,
    pairs_sha256: String,
    train: RmTrainConfig,
}

const PLAN: &str = "train.json";

fn run_train(args: TrainArgs) -> Result<()> {
    if Manifest::path(&args.out).exists() {
        bail!("--out {}: a finished reward model is there already; choose a new folder", args.out.display());
    }
    if args.epochs == 0 || args.batch_pairs == 0 {
        bail!("--epochs and --batch-pairs must be at least 1");
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        bail!("--lr {}: give a positive learning rate", args.lr);
    }
    let pairs = read_pairs(&args.pairs)?;
    let (train_pairs, heldout): (Vec<Pair>, Vec<Pair>) =
        pairs.into_iter().partition(|p| p.split == Split::Train);
    let lora = args.lora.then(|| LoraConfig {
        r: args.lora_r,
        alpha: args.lora_alpha,
        dropout: 0.0,
        target_modules: args.lora_targets.clone(),
        use_rslora: false,
    });
    if let Some(l) = &lora {
        l.validate()?;
    }
    // the manifest names the base model wherever `rm:DIR` is used from: an absolute path
    let base_model = match args.model.as_str() {
        "tiny" => "tiny".to_string(),
        dir => std::fs::canonicalize(dir)
            .with_context(|| {
                format!(
                    "--model {dir}: no such model directory (give a Hugging Face model directory or `tiny`)"
                )
            })?
            .display()
            .to_string(),
    };
    let plan = Plan {
        base_model: base_model.clone(),
        dtype: args.dtype.clone(),
        lora: lora.clone(),
        // absolute, so a --resume from another directory names the same file
        pairs_file: std::fs::canonicalize(&args.pairs)
            .unwrap_or_else(|_| args.pairs.clone())
            .display()
            .to_string(),
        pairs_sha256: crate::train::data::file_sha256(&args.pairs)?,
        train: RmTrainConfig {
            epochs: args.epochs,
            batch_pairs: args.batch_pairs,
            lr: args.lr,
            max_grad_norm: 1.0,
            max_tokens: args.max_tokens,
            seed: args.seed,
            checkpoint_every: args.checkpoint_every,
        },
    };
    let plan_path = args.out.join(PLAN);
    let started = plan_path.exists() || RunDir::at(&args.out).checkpoints().exists();
    match (started, args.resume) {
        (true, false) => bail!(
            "--out {} holds an unfinished training; continue it with --resume, or choose a new folder",
            args.out.display()
        ),
        (true, true) => {
            let text = std::fs::read_to_string(&plan_path)
                .with_context(|| format!("cannot read {}", plan_path.display()))?;
            let saved: Plan = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a training plan", plan_path.display()))?;
            if saved != plan {
                bail!(
                    "{} was started with other settings:\n{}\ngive the same flags to --resume it",
                    args.out.display(),
                    serde_json::to_string_pretty(&saved)?
                );
            }
        }
        (false, true) => bail!("--resume: {} holds no training to continue", args.out.display()),
        (false, false) => {
            std::fs::create_dir_all(&args.out)
                .with_context(|| format!("cannot create {}", args.out.display()))?;
            write_atomic(&plan_path, format!("{}\n", serde_json::to_string_pretty(&plan)?).as_bytes())?;
        }
    }
    if train_pairs.is_empty() {
        bail!("{}: every pair is held out; nothing to train on", args.pairs.display());
    }
    let device = parse_device(&args.device)?;
    let opts = LoadOptions::new(parse_dtype(&args.dtype)?, device);
    let opts = match &lora {
        Some(config) => opts
            .lora(LoraSpec { config: config.clone(), init: LoraInit::Fresh { seed: args.seed } })
            .trainable(adapters_only()),
        None => opts.trainable(all_trainable()),
    };
    let lm = Weights::base(&base_model).open(&opts)?;
    let rm = RewardModel::new(lm, args.max_tokens, args.seed)?;
    let mut opt = AdamW::new(AdamWConfig::default());
    let checkpoints = Checkpoints { out: &args.out, pairs_sha256: &plan.pairs_sha256 };
    if args.resume {
        match checkpoints.resume(&rm, &mut opt)? {
            Some(step) => eprintln!("resumed at step {step}"),
            None => eprintln!("no checkpoint yet in {}; starting from step 0", args.out.display()),
        }
    }
    let cfg = &plan.train;
    let steps = cfg.total_steps(train_pairs.len());
    eprintln!(
        "reward model on {} ({}): {} training pairs, {} held out; {steps} step{} of up to {} pairs",
        args.model,
        if lora.is_some() { "LoRA" } else { "full" },
        train_pairs.len(),
        heldout.len(),
        if steps == 1 { "" } else { "s" },
        cfg.batch_pairs.min(train_pairs.len())
    );
    let interrupt = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupt.clone())?;
    }
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} step {pos}/{len} [{bar:30}] {elapsed_precise} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_position(opt.step as u64);
    bar.enable_steady_tick(Duration::from_millis(250));
    let last = train(&rm, &train_pairs, cfg, &mut opt, &checkpoints, &interrupt, |s| {
        bar.set_position(s.step as u64);
        bar.set_message(format!("loss {:.3}", s.loss));
        bar.suspend(|| {
            eprintln!(
                "rm {:>4}/{}  epoch {}  loss {:.4}  batch acc {:.2}  grad {:.3}  {} tokens  {:.1}s",
                s.step, s.steps, s.epoch, s.loss, s.accuracy, s.grad_norm, s.tokens, s.seconds
            )
        });
        Ok(())
    });
    bar.finish_and_clear();
    let last = last?;
    let folder = checkpoints.save(&rm, &opt, cfg.seed)?;
    if interrupt.load(Ordering::Relaxed) && opt.step < steps {
        bail!(
            "stopped after step {}; checkpointed in {}; continue with the same flags and --resume",
            opt.step,
            folder.display()
        );
    }
    let (heldout_acc, center) = measure(&rm, &train_pairs, &heldout, cfg.seed)?;
    let weights = folder.strip_prefix(&args.out).unwrap_or(&folder).display().to_string();
    let manifest = Manifest {
        format: FORMAT.into(),
        base_model,
        dtype: args.dtype.clone(),
        weights,
        training: Training {
            method: if lora.is_some() { "lora" } else { "full" }.into(),
            lora,
            pairs_file: plan.pairs_file.clone(),
            pairs_sha256: plan.pairs_sha256.clone(),
            train_pairs: train_pairs.len(),
            epochs: cfg.epochs,
            batch_pairs: cfg.batch_pairs,
            lr: cfg.lr,
            seed: cfg.seed,
            steps: opt.step,
            final_loss: last.unwrap_or(f64::NAN),
        },
        max_tokens: cfg.max_tokens,
        center,
        heldout: heldout_acc.clone(),
    };
    manifest.save(&args.out)?;
    match &heldout_acc {
        Some(a) => println!("{}", accuracy_table(a)),
        None => println!("no held-out pairs: accuracy not measured (build pairs with --heldout > 0)"),
    }
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// Held-out accuracy, and the centre of scores (the mean over the held-out pairs' stories,
/// or the first 64 training pairs' when none are held out).
fn measure(rm: &RewardModel, train: &[Pair], heldout: &[Pair], seed: u64) -> Result<(Option<Accuracy>, f64)> {
    let (sample, acc) = if heldout.is_empty() {
        (pair_scores(rm, &train[..train.len().min(64)])?, None)
    } else {
        let s = pair_scores(rm, heldout)?;
        let a = accuracy(heldout, &s, seed)?;
        (s, Some(a))
    };
    let center = sample.iter().map(|(c, r)| c + r).sum::<f64>() / (2 * sample.len()) as f64;
    Ok((acc, center))
}

fn accuracy_table(a: &Accuracy) -> String {
    format!(
        "pairs  prompts  correct  ties  accuracy  95% CI\n{:>5}  {:>7}  {:>7}  {:>4}  {:>8.3}  [{:.3}, {:.3}]",
        a.pairs, a.prompts, a.correct, a.ties, a.accuracy, a.ci95.low, a.ci95.high
    )
}

fn run_eval(args: EvalArgs) -> Result<()> {
    let split = match args.split.as_str() {
        "heldout" => Some(Split::Heldout),
        "train" => Some(Split::Train),
        "all" => None,
        other => bail!("--split {other:?}: expected heldout, train or all"),
    };
    let pairs: Vec<Pair> =
        read_pairs(&args.pairs)?.into_iter().filter(|p| split.is_none_or(|s| p.split == s)).collect();
    if pairs.is_empty() {
        bail!("{}: no {} pairs to measure", args.pairs.display(), args.split);
    }
    let rm = RewardModel::open(&args.rm, &parse_device(&args.device)?)?;
    let scores = pair_scores(&rm, &pairs)?;
    let a = accuracy(&pairs, &scores, args.seed)?;
    println!("reward model {} on {} ({} pairs)", args.rm.display(), args.pairs.display(), args.split);
    println!("{}", accuracy_table(&a));
    Ok(())
}
