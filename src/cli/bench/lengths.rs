//! `polaris-tui bench train --lengths 512,1024,...`: peak memory and seconds of a training
//! update (packed forward + backward + AdamW) at each row length, for the tiny model and a
//! ~50M-parameter Qwen3.5 (random weights, the real layer pattern), with and without
//! activation checkpointing, beside PyTorch (transformers, sdpa attention) on the same
//! shapes, and the memory plan's prediction beside each measurement.
//!
//! Peak memory is a process's high-water mark (VmHWM), so every cell runs in a fresh child
//! process: `polaris-tui bench train-pass ...` for ours, scripts/bench_lengths_torch.py for
//! PyTorch.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use clap::Args;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::model::logprobs::{backward_packed, BackwardOptions, DEFAULT_CHUNK};
use crate::model::{all_trainable, tiny, LoadOptions, Model, ModelConfig, Source};
use crate::train::batch::{micro_batches, pack, spread};
use crate::train::optim::{AdamW, AdamWConfig, GradSum};

/// One measured training update in a child process.
#[derive(Args, Debug, Clone)]
pub struct PassArgs {
    /// A model directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Tokens per row.
    #[arg(long)]
    pub len: usize,
    /// Rows per update (packed into micro-batches of --micro-batch-tokens).
    #[arg(long, default_value_t = 1)]
    pub rows: usize,
    #[arg(long, default_value_t = 16384)]
    pub micro_batch_tokens: usize,
    #[arg(long)]
    pub checkpoint_layers: bool,
    /// Updates measured after one warm-up; the fastest counts.
    #[arg(long, default_value_t = 1)]
    pub repeats: usize,
}

/// What a child reports on stdout.
#[derive(Debug, Serialize, Deserialize)]
pub struct PassResult {
    pub seconds: f64,
    pub peak_rss_bytes: u64,
}

/// `bench train-pass` (hidden): one model, one shape; prints a PassResult as JSON.
pub fn run_pass(args: PassArgs) -> Result<()> {
    let cfg = ModelConfig::from_file(&args.model.join("config.json"))?;
    let model =
        Model::load_dir(&args.model, &LoadOptions::new(DType::F32, Device::Cpu).trainable(all_trainable()))?;
    let rows = random_rows(args.rows, args.len + 1, cfg.vocab_size);
    let mut opt = AdamW::new(AdamWConfig::default());
    let mut best = f64::INFINITY;
    for i in 0..=args.repeats.max(1) {
        let started = Instant::now();
        update(&model, &rows, &args, &mut opt)?;
        if i > 0 {
            best = best.min(started.elapsed().as_secs_f64());
        }
    }
    let result = PassResult { seconds: best, peak_rss_bytes: super::rss::peak()? };
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// One update as the trainer takes it: rows packed into micro-batches by the token budget,
/// gradients of a token-mean NLL summed over them, one AdamW step.
fn update(model: &Model, rows: &[Vec<u32>], args: &PassArgs, opt: &mut AdamW) -> Result<()> {
    let lengths: Vec<usize> = rows.iter().map(|r| r.len() - 1).collect();
    let total: usize = lengths.iter().sum();
    let mut sum = GradSum::default();
    for micro in micro_batches(&lengths, args.micro_batch_tokens, 0) {
        let seqs: Vec<(&[u32], &[u32])> = micro.iter().map(|&i| (&rows[i][..1], &rows[i][1..])).collect();
        let p = pack(&seqs, &Device::Cpu)?;
        let coeffs: Vec<Vec<f64>> = p.spans.iter().map(|&(_, n)| vec![-1.0 / total as f64; n]).collect();
        let opts = BackwardOptions {
            chunk: DEFAULT_CHUNK,
            entropy: false,
            checkpoint_layers: args.checkpoint_layers,
        };
        let out = backward_packed(model, &p.inputs, &p.targets, &p.cu_seqlens, opts, |_| {
            spread(&coeffs, &p.spans, p.len(), &Device::Cpu)
        })?;
        sum.add(out.grads)?;
    }
    opt.apply(model.trainable(), &sum.take(), 1e-6)
}

fn random_rows(rows: usize, len: usize, vocab: usize) -> Vec<Vec<u32>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    (0..rows).map(|_| (0..len).map(|_| rng.random_range(0..vocab as u32)).collect()).collect()
}

/// The lengths table.
pub struct LengthsBench<'a> {
    pub lengths: &'a [usize],
    pub rows: usize,
    pub micro_batch_tokens: usize,
    pub python: &'a str,
    pub repeats: usize,
}

struct Cell {
    model: String,
    len: usize,
    checkpoint: bool,
    ours: Option<PassResult>,
    torch: Option<PassResult>,
    planned: Option<u64>,
}

pub fn run(b: LengthsBench, tmp: &Path) -> Result<()> {
    let qwen = tmp.join("qwen3_5-50m");
    write_qwen35_50m(&qwen)?;
    let models = [("tiny (qwen3)", tiny::ensure()?), ("qwen3.5-50M", qwen)];
    let exe = std::env::current_exe()?;
    let mut cells = Vec::new();
    for (name, dir) in &models {
        for checkpoint in [false, true] {
            for &len in b.lengths {
                eprintln!("{name}, T = {len}, checkpoint_layers = {checkpoint} ...");
                let mut ours = Command::new(&exe);
                ours.args(["bench", "train-pass", "--model"]).arg(dir);
                ours.args(["--len", &len.to_string(), "--rows", &b.rows.to_string()]);
                ours.args(["--micro-batch-tokens", &b.micro_batch_tokens.to_string()]);
                ours.args(["--repeats", &b.repeats.to_string()]);
                if checkpoint {
                    ours.arg("--checkpoint-layers");
                }
                let ours = child_result(ours, "polaris")?;
                let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_lengths_torch.py");
                let mut torch = Command::new(b.python);
                // its idle OpenMP threads sleep rather than spin on cores other work shares
                torch.env("OMP_WAIT_POLICY", "PASSIVE");
                torch.arg(&script).arg("--model").arg(dir);
                torch.args(["--len", &len.to_string(), "--rows", &b.rows.to_string()]);
                torch.args(["--repeats", &b.repeats.to_string()]);
                if checkpoint {
                    torch.arg("--checkpoint-layers");
                }
                let torch = child_result(torch, "PyTorch")?;
                let planned = planned_peak(dir, len, b.rows, b.micro_batch_tokens, checkpoint)?;
                cells.push(Cell { model: name.to_string(), len, checkpoint, ours, torch, planned });
            }
        }
    }
    println!(
        "\ntraining update (packed forward + backward + AdamW), {} row(s) of T tokens, f32, micro-batches of {} tokens\n",
        b.rows, b.micro_batch_tokens
    );
    println!(
        "| model | ckpt | T | polaris s | PyTorch s | polaris peak | PyTorch peak | plan | plan / measured |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let gib = |x: u64| format!("{:.2} GiB", x as f64 / (1u64 << 30) as f64);
    for c in &cells {
        let (os, op) = match &c.ours {
            Some(r) => (format!("{:.2}", r.seconds), gib(r.peak_rss_bytes)),
            None => ("failed".into(), "-".into()),
        };
        let (ts, tp) = match &c.torch {
            Some(r) => (format!("{:.2}", r.seconds), gib(r.peak_rss_bytes)),
            None => ("-".into(), "-".into()),
        };
        let (plan, ratio) = match (c.planned, &c.ours) {
            (Some(p), Some(r)) => (gib(p), format!("{:.2}", p as f64 / r.peak_rss_bytes as f64)),
            (Some(p), None) => (gib(p), "-".into()),
            _ => ("-".into(), "-".into()),
        };
        println!(
            "| {} | {} | {} | {os} | {ts} | {op} | {tp} | {plan} | {ratio} |",
            c.model,
            if c.checkpoint { "on" } else { "off" },
            c.len
        );
    }
    Ok(())
}

/// Runs a measuring child; None (with a note) when it fails.
fn child_result(mut cmd: Command, who: &str) -> Result<Option<PassResult>> {
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("note: {who} measurement skipped: {e}");
            return Ok(None);
        }
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        eprintln!("note: {who} measurement failed: {}", err.lines().last().unwrap_or("(no output)"));
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("");
    match serde_json::from_str(line) {
        Ok(r) => Ok(Some(r)),
        Err(e) => bail!("{who} printed {line:?}, not a measurement: {e}"),
    }
}

/// The memory plan's predicted peak for this shape: runtime + weights + optimizer state +
/// the larger of the training pass and the update (the child generates nothing, so the
/// generation phase is left out).
fn planned_peak(dir: &Path, len: usize, rows: usize, budget: usize, checkpoint: bool) -> Result<Option<u64>> {
    let model = crate::plan::model_config(&dir.display().to_string())?;
    let prompt = crate::plan::PROMPT_TOKENS as usize;
    let sets = vec![
        format!("model.path={:?}", dir.display().to_string()),
        format!("step.checkpoint_layers={checkpoint}"),
        "run.prompts_per_step=1".into(),
        format!("step.group_size={}", rows.max(2)),
        format!("step.micro_batch_tokens={budget}"),
        // the group is at least 2 rows; with one measured row, one row per micro-batch
        format!("step.micro_batch_rows={}", if rows == 1 { 1 } else { 0 }),
        // a row of len tokens: the plan's prompt + response budget + the end token
        format!("step.sampling.max_new_tokens={}", len.saturating_sub(prompt + 1).max(1)),
    ];
    let cfg = crate::train::config::TrainConfig::parse("", "bench train --lengths", &sets)?;
    let plan = crate::plan::Plan::compute(&cfg, &model, &|_| None)?;
    let p = &plan.pools[0];
    Ok(Some(p.runtime + p.resident + p.training.max(p.update)))
}

/// The ~50M Qwen3.5 of `bench qwen35` as a model directory (random weights, the tiny
/// model's tokenizer), so that both sides load the same weights.
pub(super) fn write_qwen35_50m(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    crate::model::merge::copy_model_files(&tiny::ensure()?, dir)?;
    let cfg = super::qwen35::config()?;
    let mut json = super::qwen35::config_json();
    json["architectures"] = serde_json::json!(["Qwen3_5ForCausalLM"]);
    json["torch_dtype"] = "float32".into();
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&json)?)?;
    let model = Model::build(&cfg, Source::random(3, 0.02, 0.1), &LoadOptions::new(DType::F32, Device::Cpu))?;
    let tensors: std::collections::HashMap<String, Tensor> = model.tensors().iter().cloned().collect();
    crate::model::weights::save_safetensors(&tensors, &dir.join("model.safetensors"))
}
