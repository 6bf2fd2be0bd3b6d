//! `polaris-tui bench generate`: decode speed of our llama against candle-transformers'
//! llama on the same weights, for one sequence and for a GRPO group.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::llama as reference;
use clap::Args;

use crate::generate::{self, sampler::argmax, Request, SamplingParams};
use crate::model::{Kernels, LoadOptions, Model, ModelConfig, Source};

#[derive(Args, Debug)]
pub struct GenerateBench {
    /// Tokens decoded per measurement.
    #[arg(long, default_value_t = 200)]
    pub tokens: usize,
    /// Rows decoded together for the group measurement.
    #[arg(long, default_value_t = 6)]
    pub group: usize,
    /// The stories260K checkpoint (skipped when absent).
    #[arg(long, default_value = "../shared/models/stories260K-hf")]
    pub stories260k: PathBuf,
    /// CPU threads for candle's matmuls (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Measurements per cell; the table shows the fastest (shared machines are noisy).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
}

struct Row {
    model: String,
    implementation: &'static str,
    batch: usize,
    tokens_per_s: f64,
    ms_per_step: f64,
}

pub fn run(args: GenerateBench) -> Result<()> {
    if let Some(t) = args.threads {
        std::env::set_var("RAYON_NUM_THREADS", t.to_string());
    }
    let mut models: Vec<(String, PathBuf)> = Vec::new();
    if args.stories260k.join("config.json").exists() {
        models.push(("stories260K".into(), args.stories260k.clone()));
    } else {
        eprintln!("note: {} not found; skipping stories260K", args.stories260k.display());
    }
    let tmp = super::tempdir()?;
    write_random_llama(&tmp)?;
    models.push(("llama-15M (random)".into(), tmp.clone()));

    let mut rows: Vec<Row> = Vec::new();
    for (name, dir) in &models {
        for &batch in &[1, args.group] {
            eprintln!("measuring {name}, batch {batch} ...");
            // interleaved repeats, keeping each implementation's fastest
            let mut best: [Option<Row>; 3] = [None, None, None];
            for _ in 0..args.repeats.max(1) {
                let runs = [
                    measure_ours(name, dir, batch, args.tokens)?,
                    measure_reference(name, dir, batch, args.tokens)?,
                    measure_engine(name, dir, batch, args.tokens)?,
                ];
                for (slot, run) in best.iter_mut().zip(runs) {
                    if slot.as_ref().is_none_or(|b| run.tokens_per_s > b.tokens_per_s) {
                        *slot = Some(run);
                    }
                }
            }
            rows.extend(best.into_iter().flatten());
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    print_table(&rows, args.group);
    Ok(())
}

fn print_table(rows: &[Row], group: usize) {
    println!();
    println!("| model | implementation | batch | tokens/s | ms/step |");
    println!("|---|---|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {:.0} | {:.2} |",
            r.model, r.implementation, r.batch, r.tokens_per_s, r.ms_per_step
        );
    }
    println!();
    let find = |m: &str, imp: &str, b: usize| {
        rows.iter().find(|r| r.model == m && r.implementation == imp && r.batch == b).map(|r| r.tokens_per_s)
    };
    let mut names: Vec<&str> = rows.iter().map(|r| r.model.as_str()).collect();
    names.dedup();
    for m in names {
        if let (Some(o1), Some(c1), Some(og)) = (
            find(m, "polaris decode", 1),
            find(m, "candle-transformers", 1),
            find(m, "polaris decode", group),
        ) {
            println!(
                "{m}: single stream polaris/candle = {:.2}x; group of {group} vs single = {:.2}x",
                o1 / c1,
                og / o1
            );
        }
    }
}

/// Our model's cached forward with greedy choice: the decode loop without the sampler.
fn measure_ours(name: &str, dir: &Path, batch: usize, tokens: usize) -> Result<Row> {
    let model = Model::load_dir(dir, &LoadOptions::new(DType::F32, Device::Cpu))?;
    let prompt = prompt_ids(&model);
    let ids = Tensor::new(prompt.as_slice(), &Device::Cpu)?.unsqueeze(0)?.repeat((batch, 1))?;
    let mut cache = model.new_cache(vec![0; batch]);
    let mut logits = model.forward_cached(&ids, &mut cache, Kernels::Fused)?;
    let started = Instant::now();
    for _ in 0..tokens {
        let next: Vec<u32> = logits.to_vec2::<f32>()?.iter().map(|l| argmax(l)).collect();
        let ids = Tensor::from_vec(next, (batch, 1), &Device::Cpu)?;
        logits = model.forward_cached(&ids, &mut cache, Kernels::Fused)?;
    }
    Ok(row(name, "polaris decode", batch, tokens, started.elapsed().as_secs_f64()))
}

/// The whole engine: sampler with top-k/top-p, penalties bookkeeping, streaming callback.
fn measure_engine(name: &str, dir: &Path, batch: usize, tokens: usize) -> Result<Row> {
    let model = Model::load_dir(dir, &LoadOptions::new(DType::F32, Device::Cpu))?;
    let params = SamplingParams {
        temperature: 1.0,
        max_new_tokens: tokens,
        thinking_budget: None,
        ..SamplingParams::default()
    };
    let req = Request::group(prompt_ids(&model), batch, params, vec![], None);
    let started = Instant::now();
    let out = generate::generate(&model, &req, &mut |_| {}, &AtomicBool::new(false))?;
    let secs = started.elapsed().as_secs_f64();
    let produced: usize = out.iter().map(|o| o.tokens.len()).sum();
    Ok(row(name, "polaris engine (sampling)", batch, produced / batch, secs))
}

/// candle-transformers' llama (fused kernels, its own KV cache) on the same files.
fn measure_reference(name: &str, dir: &Path, batch: usize, tokens: usize) -> Result<Row> {
    let text = std::fs::read_to_string(dir.join("config.json"))?;
    let cfg: reference::LlamaConfig =
        serde_json::from_str(&text).context("candle-transformers cannot read this config")?;
    let cfg = cfg.into_config(false);
    let files = [dir.join("model.safetensors")];
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, DType::F32, &Device::Cpu)? };
    let model = reference::Llama::load(vb, &cfg)?;
    let mut cache = reference::Cache::new(true, DType::F32, &cfg, &Device::Cpu)?;
    let prompt: Vec<u32> = vec![cfg.bos_token_id.unwrap_or(1), 10, 20];
    let ids = Tensor::new(prompt.as_slice(), &Device::Cpu)?.unsqueeze(0)?.repeat((batch, 1))?;
    let mut logits = model.forward(&ids, 0, &mut cache)?;
    let started = Instant::now();
    for pos in prompt.len()..prompt.len() + tokens {
        let next: Vec<u32> = logits.to_vec2::<f32>()?.iter().map(|l| argmax(l)).collect();
        let ids = Tensor::from_vec(next, (batch, 1), &Device::Cpu)?;
        logits = model.forward(&ids, pos, &mut cache)?;
    }
    Ok(row(name, "candle-transformers", batch, tokens, started.elapsed().as_secs_f64()))
}

fn prompt_ids(model: &Model) -> Vec<u32> {
    vec![model.config().bos_token_id.unwrap_or(1), 10, 20]
}

fn row(name: &str, implementation: &'static str, batch: usize, steps: usize, secs: f64) -> Row {
    Row {
        model: name.to_string(),
        implementation,
        batch,
        tokens_per_s: (batch * steps) as f64 / secs,
        ms_per_step: secs * 1000.0 / steps.max(1) as f64,
    }
}

/// A llama of ~15M parameters (dim 288, 6 layers, 6 heads, vocab 32000), random weights.
fn write_random_llama(dir: &Path) -> Result<()> {
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
