//! `polaris-tui bench qwen35`: a ~50M-parameter Qwen3.5 with random weights and the real
//! layer pattern (three Gated DeltaNet layers per gated attention layer).

use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use clap::Args;

use crate::generate::sampler::argmax_rows;
use crate::model::deltanet::DeltaForm;
use crate::model::{Kernels, LoadOptions, Model, ModelConfig, Source};

#[derive(Args, Debug)]
pub struct Qwen35Bench {
    /// Prompt lengths to prefill.
    #[arg(long, value_delimiter = ',', default_value = "512,2048")]
    pub prefill: Vec<usize>,
    /// Tokens decoded per decode measurement.
    #[arg(long, default_value_t = 100)]
    pub tokens: usize,
    /// Measurements per cell; the table shows the fastest.
    #[arg(long, default_value_t = 2)]
    pub repeats: usize,
}

/// hidden 512, 8 layers (6 DeltaNet + 2 attention), MLP 2048, vocab 32000, tied.
pub fn config() -> Result<ModelConfig> {
    ModelConfig::from_json(&config_json())
}

/// `config()` as config.json holds it.
pub fn config_json() -> serde_json::Value {
    serde_json::json!({
        "model_type": "qwen3_5_text", "vocab_size": 32000, "hidden_size": 512, "intermediate_size": 2048,
        "num_hidden_layers": 8, "full_attention_interval": 4,
        "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 64, "partial_rotary_factor": 0.25,
        "linear_num_key_heads": 4, "linear_num_value_heads": 8, "linear_key_head_dim": 64, "linear_value_head_dim": 64,
        "linear_conv_kernel_dim": 4, "rms_norm_eps": 1e-6, "rope_parameters": {"rope_theta": 10000000.0},
        "tie_word_embeddings": true, "max_position_embeddings": 8192
    })
}

pub fn run(args: Qwen35Bench) -> Result<()> {
    let cfg = config()?;
    let mut model =
        Model::build(&cfg, Source::random(3, 0.02, 0.1), &LoadOptions::new(DType::F32, Device::Cpu))?;
    eprintln!(
        "qwen3_5 random model: {:.1}M parameters, layers {:?}",
        model.parameter_count() as f64 / 1e6,
        cfg.layer_types
    );
    let repeats = args.repeats.max(1);
    println!("\n| measurement | tokens | tokens/s | seconds |");
    println!("|---|---:|---:|---:|");
    for &n in &args.prefill {
        let prompt: Vec<u32> = (0..n).map(|i| (i * 7919 % 31_000) as u32 + 100).collect();
        for form in [DeltaForm::Chunked, DeltaForm::Recurrent] {
            eprintln!("prefill {n} tokens, {form:?} ...");
            model.set_delta_form(form);
            let secs = best(repeats, || {
                let ids = Tensor::new(prompt.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
                let mut cache = model.new_cache(vec![0]);
                let started = Instant::now();
                model.forward_cached(&ids, &mut cache, Kernels::Fused)?;
                Ok(started.elapsed().as_secs_f64())
            })?;
            println!("| prefill, {} form | {n} | {:.0} | {secs:.2} |", form_name(form), n as f64 / secs);
        }
    }
    model.set_delta_form(DeltaForm::Chunked);
    for batch in [1usize, 6] {
        eprintln!("decode, batch {batch} ...");
        let secs = best(repeats, || {
            let ids = Tensor::new(&[1u32, 200, 300, 400], &Device::Cpu)?.unsqueeze(0)?.repeat((batch, 1))?;
            let mut cache = model.new_cache(vec![0; batch]);
            let mut logits = model.forward_cached(&ids, &mut cache, Kernels::Fused)?;
            let started = Instant::now();
            for _ in 0..args.tokens {
                let next = argmax_rows(&logits)?;
                logits = model.forward_cached(
                    &Tensor::from_vec(next, (batch, 1), &Device::Cpu)?,
                    &mut cache,
                    Kernels::Fused,
                )?;
            }
            Ok(started.elapsed().as_secs_f64())
        })?;
        let total = batch * args.tokens;
        println!(
            "| decode, {batch} sequence{} | {total} | {:.0} | {secs:.2} |",
            if batch > 1 { "s" } else { "" },
            total as f64 / secs
        );
    }
    Ok(())
}

fn form_name(form: DeltaForm) -> &'static str {
    match form {
        DeltaForm::Chunked => "chunked",
        DeltaForm::Recurrent => "recurrent",
    }
}

/// Fastest of `n` runs of `f` (seconds).
fn best(n: usize, mut f: impl FnMut() -> Result<f64>) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..n {
        best = best.min(f()?);
    }
    Ok(best)
}
