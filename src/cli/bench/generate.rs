//! `polaris-tui bench generate`: greedy decode speed of our llama, one stream and a GRPO
//! group, against candle-transformers' llama and llama2.c's run.c on the same weights.
//! Cells are measured in interleaved rounds (each implementation once per round), and the
//! table gives each cell's median and best round: shared machines are noisy.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::llama as reference;
use clap::{Args, ValueEnum};

use super::llama2c;
use super::paired::Stream;
use crate::eval::stats::winrate::percentile;
use crate::generate::{self, sampler::argmax_rows, Request, SamplingParams};
use crate::model::{Kernels, LoadOptions, Model, ModelConfig, Source};

#[derive(Args, Debug)]
pub struct GenerateBench {
    /// Tokens decoded per measurement (run.c's 15M checkpoint holds 256 positions).
    #[arg(long, default_value_t = 200)]
    pub tokens: usize,
    /// Rows decoded together for the group measurement.
    #[arg(long, default_value_t = 6)]
    pub group: usize,
    /// The stories260K checkpoint (skipped when absent).
    #[arg(long, default_value = "../shared/models/stories260K-hf")]
    pub stories260k: PathBuf,
    /// CPU threads for our kernels and candle's matmuls (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Interleaved rounds; each cell shows the median and the best.
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// llama2.c's run.c, built with `gcc -Ofast -o run run.c -lm`, timed on the same
    /// weights (default: $POLARIS_RUNC); its rows are skipped when there is none.
    #[arg(long)]
    pub runc: Option<PathBuf>,
    /// Keep the benchmark's models (Hugging Face folders, run.c checkpoints) in this folder
    /// and reuse them on later calls (default: a temporary folder, removed at the end).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// Time one implementation once and print its tokens/s, nothing else (to time whole
    /// processes side by side).
    #[arg(long, value_enum)]
    pub only: Option<Implementation>,
    /// With --only or --paired: which model ("stories260K" or "llama-15M").
    #[arg(long, default_value = "llama-15M")]
    pub model: String,
    /// With --only: rows decoded together.
    #[arg(long, default_value_t = 1)]
    pub rows: usize,
    /// Our decode only: one stream and a group (--group rows) of --model by turns in one
    /// process, so both see the same memory phases of a shared machine; prints the group's
    /// speed over one stream's per window, and in the windows where one stream ran fastest.
    #[arg(long, conflicts_with = "only")]
    pub paired: bool,
    /// With --paired: windows measured (each one sequence of --tokens of each kind).
    #[arg(long, default_value_t = 20)]
    pub windows: usize,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Implementation {
    /// our cached forward with greedy choice: the decode loop without the sampler
    Ours,
    /// the whole engine with the training sampler (top-k 20, top-p 0.95, repetition penalty
    /// 1.10), penalty bookkeeping, streaming callback
    Engine,
    /// candle-transformers' llama with its own KV cache
    Candle,
    /// llama2.c's run.c (one stream only)
    Runc,
}

impl Implementation {
    fn label(self) -> &'static str {
        match self {
            Implementation::Ours => "polaris decode",
            Implementation::Engine => "polaris engine (sampling)",
            Implementation::Candle => "candle-transformers",
            Implementation::Runc => "llama2.c run.c (1 thread)",
        }
    }
}

/// A model under test: its Hugging Face folder and, beside it, its run.c files.
struct Bench {
    name: &'static str,
    dir: PathBuf,
    runc_checkpoint: PathBuf,
    runc_tokenizer: PathBuf,
}

const STORIES260K: &str = "stories260K";
const LLAMA15M: &str = "llama-15M";

pub fn run(args: GenerateBench) -> Result<()> {
    if let Some(t) = args.threads {
        std::env::set_var("RAYON_NUM_THREADS", t.to_string());
    }
    let runc = args.runc.clone().or_else(|| std::env::var_os("POLARIS_RUNC").map(PathBuf::from));
    // the models are written to a scratch directory (removed on return) unless one is given
    let scratch;
    let root: &Path = match &args.models_dir {
        Some(d) => d,
        None => {
            scratch = super::tempdir()?;
            &scratch
        }
    };
    let models = prepare_models(&args, root)?;
    let chosen = || {
        models
            .iter()
            .find(|m| m.name == args.model)
            .with_context(|| format!("no model {:?} here (try {STORIES260K} or {LLAMA15M})", args.model))
    };
    if args.paired {
        let bench = chosen()?;
        return super::paired::run(&bench.dir, bench.name, args.group, args.tokens, args.windows);
    }
    if let Some(only) = args.only {
        let bench = chosen()?;
        let tps = measure(only, bench, args.rows, args.tokens, runc.as_deref())?;
        println!("{} {} rows {}: {tps:.1} tokens/s", bench.name, only.label(), args.rows);
        return Ok(());
    }
    match &runc {
        Some(p) if p.exists() => {}
        Some(p) => bail!("run.c binary {} does not exist", p.display()),
        None => eprintln!(
            "note: no run.c given (--runc or $POLARIS_RUNC; build it with gcc -Ofast -o run run.c -lm); its rows are skipped"
        ),
    }
    // whether our decode's weights got the huge pages it counts on (see `model::huge_pages`)
    let mut pages = Vec::new();
    for bench in &models {
        let model = Model::load_dir(&bench.dir, &LoadOptions::new(DType::F32, Device::Cpu))?;
        let bos = Tensor::new(&[bos(model.config())], &Device::Cpu)?; // [1, 1]
        model.forward_cached(&bos, &mut model.new_cache(vec![0]), Kernels::Fused)?;
        let backing =
            model.huge_pages().map_or("not on 2 MiB pages (no host decode step)".into(), |b| b.describe());
        pages.push(format!("{}: our weights {backing}", bench.name));
    }
    let mut cells: Vec<Cell> = Vec::new();
    for bench in &models {
        for round in 0..args.repeats.max(1) {
            eprintln!("measuring {}, round {} of {} ...", bench.name, round + 1, args.repeats.max(1));
            for rows in [1, args.group] {
                for imp in [
                    Implementation::Ours,
                    Implementation::Candle,
                    Implementation::Engine,
                    Implementation::Runc,
                ] {
                    if imp == Implementation::Runc && (rows != 1 || runc.is_none()) {
                        continue;
                    }
                    let tps = measure(imp, bench, rows, args.tokens, runc.as_deref())?;
                    match cells.iter_mut().find(|c| c.model == bench.name && c.imp == imp && c.rows == rows) {
                        Some(c) => c.tokens_per_s.push(tps),
                        None => cells.push(Cell { model: bench.name, imp, rows, tokens_per_s: vec![tps] }),
                    }
                }
            }
        }
    }
    print_table(&cells, args.group);
    pages.iter().for_each(|p| println!("{p}"));
    Ok(())
}

/// One cell's measurements, tokens/s of every round.
struct Cell {
    model: &'static str,
    imp: Implementation,
    rows: usize,
    tokens_per_s: Vec<f64>,
}

impl Cell {
    fn median(&self) -> f64 {
        let mut v = self.tokens_per_s.clone();
        v.sort_by(f64::total_cmp);
        percentile(&v, 50.0)
    }
    fn best(&self) -> f64 {
        self.tokens_per_s.iter().copied().fold(0.0, f64::max)
    }
}

fn print_table(cells: &[Cell], group: usize) {
    println!();
    println!("| model | implementation | rows | tokens/s median | tokens/s best | ms/step median |");
    println!("|---|---|---:|---:|---:|---:|");
    for c in cells {
        let median = c.median();
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.2} |",
            c.model,
            c.imp.label(),
            c.rows,
            median,
            c.best(),
            1000.0 * c.rows as f64 / median
        );
    }
    println!();
    let find = |m: &str, imp: Implementation, rows: usize| {
        cells.iter().find(|c| c.model == m && c.imp == imp && c.rows == rows).map(Cell::median)
    };
    let mut names: Vec<&str> = cells.iter().map(|c| c.model).collect();
    names.dedup();
    for m in names {
        let ours1 = find(m, Implementation::Ours, 1);
        let mut parts = Vec::new();
        if let (Some(o), Some(r)) = (ours1, find(m, Implementation::Runc, 1)) {
            parts.push(format!("single stream ours/run.c = {:.2}x", o / r));
        }
        if let (Some(o), Some(c)) = (ours1, find(m, Implementation::Candle, 1)) {
            parts.push(format!("ours/candle = {:.2}x", o / c));
        }
        if let (Some(o), Some(g)) = (ours1, find(m, Implementation::Ours, group)) {
            parts.push(format!("group of {group} vs single = {:.2}x", g / o));
        }
        println!("{m} (medians): {}", parts.join("; "));
    }
}

/// The models: stories260K when its folder is there, and a llama of llama2.c's stories15M
/// shape with random weights; each with its run.c checkpoint and tokenizer beside it.
fn prepare_models(args: &GenerateBench, root: &Path) -> Result<Vec<Bench>> {
    let mut models = Vec::new();
    if args.stories260k.join("config.json").exists() {
        let own = root.join(STORIES260K);
        std::fs::create_dir_all(&own)?;
        let bench = Bench {
            name: STORIES260K,
            dir: args.stories260k.clone(),
            runc_checkpoint: own.join("run.c.bin"),
            runc_tokenizer: own.join("run.c-tokenizer.bin"),
        };
        write_runc_files(&bench, 512)?;
        models.push(bench);
    } else {
        eprintln!("note: {} not found; skipping stories260K", args.stories260k.display());
    }
    let dir = root.join(LLAMA15M);
    if !dir.join("model.safetensors").exists() {
        std::fs::create_dir_all(&dir)?;
        write_random_llama(&dir)?;
    }
    let bench = Bench {
        name: LLAMA15M,
        runc_checkpoint: dir.join("run.c.bin"),
        runc_tokenizer: dir.join("run.c-tokenizer.bin"),
        dir,
    };
    write_runc_files(&bench, 256)?;
    models.push(bench);
    Ok(models)
}

fn write_runc_files(bench: &Bench, seq_len: usize) -> Result<()> {
    if bench.runc_checkpoint.exists() && bench.runc_tokenizer.exists() {
        return Ok(());
    }
    let model = Model::load_dir(&bench.dir, &LoadOptions::new(DType::F32, Device::Cpu))?;
    llama2c::write_checkpoint(&model, seq_len, &bench.runc_checkpoint)?;
    llama2c::write_tokenizer(model.config().vocab_size, &bench.runc_tokenizer)
}

/// Tokens/s of one measurement: `tokens` greedy steps from BOS for `rows` rows.
fn measure(
    imp: Implementation,
    bench: &Bench,
    rows: usize,
    tokens: usize,
    runc: Option<&Path>,
) -> Result<f64> {
    match imp {
        Implementation::Ours => measure_ours(&bench.dir, rows, tokens),
        Implementation::Engine => measure_engine(&bench.dir, rows, tokens),
        Implementation::Candle => measure_reference(&bench.dir, rows, tokens),
        Implementation::Runc => {
            if rows != 1 {
                bail!("run.c decodes one stream");
            }
            let binary = runc.context("no run.c binary given (--runc or $POLARIS_RUNC)")?;
            llama2c::run_c(binary, &bench.runc_checkpoint, &bench.runc_tokenizer, tokens)
        }
    }
}

/// Our model's cached forward with greedy choice. Like run.c, the clock starts after the
/// first step (BOS).
fn measure_ours(dir: &Path, rows: usize, tokens: usize) -> Result<f64> {
    let model = Model::load_dir(dir, &LoadOptions::new(DType::F32, Device::Cpu))?;
    let secs = Stream::new(&model, rows, tokens)?.run(tokens)?;
    Ok((rows * tokens) as f64 / secs)
}

/// The whole engine, its clock around the whole call (prefill of BOS included).
fn measure_engine(dir: &Path, rows: usize, tokens: usize) -> Result<f64> {
    let model = Model::load_dir(dir, &LoadOptions::new(DType::F32, Device::Cpu))?;
    // the sampler GRPO's rollouts use: top-k 20, top-p 0.95, repetition penalty 1.10
    let params =
        SamplingParams { max_new_tokens: tokens, thinking_budget: None, ..SamplingParams::training() };
    let req = Request::group(bos(model.config()).to_vec(), rows, params, vec![], None);
    let started = Instant::now();
    let out = generate::generate(&model, &req, &mut |_| {}, &AtomicBool::new(false))?;
    let secs = started.elapsed().as_secs_f64();
    let produced: usize = out.iter().map(|o| o.tokens.len()).sum();
    Ok(produced as f64 / secs)
}

/// candle-transformers' llama (fused kernels, its own KV cache) on the same files.
fn measure_reference(dir: &Path, rows: usize, tokens: usize) -> Result<f64> {
    let text = std::fs::read_to_string(dir.join("config.json"))?;
    let cfg: reference::LlamaConfig =
        serde_json::from_str(&text).context("candle-transformers cannot read this config")?;
    let cfg = cfg.into_config(false);
    let files = [dir.join("model.safetensors")];
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, DType::F32, &Device::Cpu)? };
    let model = reference::Llama::load(vb, &cfg)?;
    let mut cache = reference::Cache::new(true, DType::F32, &cfg, &Device::Cpu)?;
    let ids = Tensor::new(&[cfg.bos_token_id.unwrap_or(1)], &Device::Cpu)?.unsqueeze(0)?.repeat((rows, 1))?;
    let mut logits = model.forward(&ids, 0, &mut cache)?;
    let started = Instant::now();
    for pos in 1..=tokens {
        let next = argmax_rows(&logits)?;
        let ids = Tensor::from_vec(next, (rows, 1), &Device::Cpu)?;
        logits = model.forward(&ids, pos, &mut cache)?;
    }
    Ok((rows * tokens) as f64 / started.elapsed().as_secs_f64())
}

/// The one-token prompt every implementation starts from, as run.c does.
pub(super) fn bos(cfg: &ModelConfig) -> [u32; 1] {
    [cfg.bos_token_id.unwrap_or(1)]
}

/// A llama of llama2.c's stories15M shape (dim 288, 6 layers, 6 heads, hidden 768, vocab
/// 32000), random weights: the speed of a 15M model without its download.
pub(super) fn write_random_llama(dir: &Path) -> Result<()> {
    let config = serde_json::json!({
        "model_type": "llama", "hidden_size": 288, "intermediate_size": 768, "num_hidden_layers": 6,
        "num_attention_heads": 6, "num_key_value_heads": 6, "vocab_size": 32000, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "max_position_embeddings": 1024, "tie_word_embeddings": true,
        "bos_token_id": 1, "eos_token_id": 2
    });
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config)?)?;
    let cfg = ModelConfig::from_json(&config)?;
    let model = Model::build(&cfg, Source::random(7, 0.02, 0.1), &LoadOptions::new(DType::F32, Device::Cpu))?;
    let tensors: std::collections::HashMap<String, Tensor> = model.tensors().iter().cloned().collect();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
    Ok(())
}
