//! `polaris-tui bench plan`: the memory plan against measurement. For each length T a child
//! process loads the model, takes one training pass (forward, chunked log-probs, backward)
//! over a micro-batch of one T-token row and two AdamW updates (the second is a run's steady
//! state: moments already held), and reports its peak RSS
//! (VmHWM) for the pass and for the updates apart; beside each phase's growth of RSS over the
//! loaded model, what the plan predicts for it (training; the optimizer's state + update)
//! and, last, the larger of the two against the larger of the plan's.

use std::process::Command;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use clap::Args;
use rand::{Rng, SeedableRng};

use super::rss;
use crate::model::logprobs::{backward, BackwardOptions};
use crate::model::{all_trainable, LoadOptions};
use crate::plan::figures::Figures;
use crate::plan::{available, gib, model_config, Plan};
use crate::train::batch::spread;
use crate::train::config::TrainConfig;
use crate::train::optim::{AdamW, AdamWConfig};

#[derive(Args, Debug)]
pub struct PlanBench {
    /// A model directory, `tiny`, or `qwen35-50m` (bench qwen35's random Qwen3.5, written to
    /// a temporary directory).
    #[arg(long, default_value = "tiny")]
    pub model: String,
    /// Micro-batch lengths in tokens.
    #[arg(long, value_delimiter = ',', default_value = "512,1024,2048,4096")]
    pub lengths: Vec<usize>,
    /// Per-layer activation checkpointing in the measured pass.
    #[arg(long)]
    pub checkpoint_layers: bool,
    /// f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// (internal) measure one pass of this many tokens in this process and print JSON.
    #[arg(long, hide = true)]
    pub child: Option<usize>,
}

pub fn run(args: PlanBench) -> Result<()> {
    if let Some(t) = args.child {
        return child(&args, t);
    }
    let mut args = args;
    let tmp = super::tempdir()?;
    if args.model == "qwen35-50m" {
        let dir = tmp.join("qwen35-50m");
        super::lengths::write_qwen35_50m(&dir)?;
        args.model = dir.display().to_string();
    }
    let model = model_config(&args.model)?;
    println!(
        "| T | checkpoint | RSS after loading | training: measured / plan | update: measured / plan | \
         peak over loaded: measured | plan | plan / measured |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for &t in &args.lengths {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.args([
            "bench",
            "plan",
            "--model",
            &args.model,
            "--dtype",
            &args.dtype,
            "--child",
            &t.to_string(),
        ]);
        if args.checkpoint_layers {
            cmd.arg("--checkpoint-layers");
        }
        let out = cmd.output().context("cannot start the measuring child")?;
        if !out.status.success() {
            bail!("T = {t}: the child failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let m: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let field = |k: &str| m[k].as_u64().unwrap_or(0);
        let loaded = field("loaded");
        let (training, update) =
            (field("training").saturating_sub(loaded), field("update").saturating_sub(loaded));
        let measured = training.max(update);
        let (plan_training, plan_update) = predict(&args, &model, t)?;
        let predicted = plan_training.max(plan_update);
        println!(
            "| {t} | {} | {} | {} / {} | {} / {} | {} | {} | {:.2} |",
            if args.checkpoint_layers { "on" } else { "off" },
            gib(loaded),
            gib(training),
            gib(plan_training),
            gib(update),
            gib(plan_update),
            gib(measured),
            gib(predicted),
            predicted as f64 / measured.max(1) as f64
        );
    }
    Ok(())
}

/// What the plan adds to the loaded model for one worker training a micro-batch of exactly
/// `t` tokens and taking the update (no generation: the child generates nothing): (the
/// training phase, the optimizer state with the update).
fn predict(args: &PlanBench, model: &crate::model::ModelConfig, t: usize) -> Result<(u64, u64)> {
    let prompt = crate::plan::PROMPT_TOKENS as usize;
    let sets = vec![
        format!("model.path={:?}", args.model),
        format!("model.dtype={:?}", args.dtype),
        format!("step.checkpoint_layers={}", args.checkpoint_layers),
        "run.prompts_per_step=1".into(),
        "step.group_size=2".into(),
        format!("step.micro_batch_tokens={t}"),
        // a row of t tokens: the plan's prompt + response budget + the end token
        format!("step.sampling.max_new_tokens={}", t.saturating_sub(prompt + 1).max(1)),
    ];
    let cfg = TrainConfig::parse("", "bench plan", &sets)?;
    let plan = Plan::compute(&cfg, model, &|_| available::host())?;
    let p = &plan.pools[0];
    // The child runs one micro-batch: its gradients are the pass's own, with no running sum
    // beside them (GradSum takes the first micro-batch's as the sum), where the plan of a step
    // counts both sets.
    let one_pass = Figures { gradients: plan.worker.gradients / 2, ..plan.worker }.training();
    Ok((one_pass, plan.worker.optimizer + p.update))
}

fn child(args: &PlanBench, t: usize) -> Result<()> {
    let dtype = crate::device::parse_dtype(&args.dtype)?;
    let opts = LoadOptions::new(dtype, Device::Cpu).trainable(all_trainable());
    let lm = crate::lm::LanguageModel::open(&args.model, &opts)?;
    let model = &lm.model;
    let loaded = rss::status("VmRSS")?;
    let vocab = model.config().vocab_size as u32;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let ids: Vec<u32> = (0..=t).map(|_| rng.random_range(0..vocab)).collect();
    let inputs = Tensor::from_vec(ids[..t].to_vec(), (1, t), &Device::Cpu)?;
    let targets = Tensor::from_vec(ids[1..].to_vec(), (1, t), &Device::Cpu)?;
    let coeffs = vec![vec![-1.0 / t as f64; t]];
    let spans = vec![(0, t)];
    let opts = BackwardOptions { checkpoint_layers: args.checkpoint_layers, ..BackwardOptions::default() };
    let pass = backward(model, &inputs, &targets, opts, |_| spread(&coeffs, &spans, t, &Device::Cpu))?;
    let training = rss::peak()?;
    // as the trainer does before its update
    crate::train::host_memory::return_freed();
    // The update phase alone: the peak mark restarts at what the pass left (its gradients).
    rss::reset_peak()?;
    // Two updates: the first makes the moments; the second is every later step's, where the
    // old moments live until their replacements are written (ADAMW_TEMPS), the peak a run sees.
    let mut opt = AdamW::new(AdamWConfig::default());
    opt.apply(model.trainable(), &pass.grads, 1e-6)?;
    opt.apply(model.trainable(), &pass.grads, 1e-6)?;
    let update = rss::peak()?;
    println!("{}", serde_json::json!({ "training": training, "update": update, "loaded": loaded }));
    Ok(())
}
