//! `polaris-tui bench train`: a GRPO step's time split (generate / judge / train) on the
//! tiny model and a ~15M-parameter qwen3, group 6 x 4 prompts with the offline judge; and
//! training forward+backward tokens/s against PyTorch on the same weights and batch
//! (scripts/bench_train_torch.py, when the given Python has torch and transformers).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use clap::Args;
use rand::{Rng, SeedableRng};

use crate::model::logprobs::{backward, BackwardOptions};
use crate::model::{all_trainable, tiny, LoadOptions, Model, ModelConfig, Source};
use crate::reward::breakdown::Weights;
use crate::reward::{JudgeClient, JudgeSettings, JudgeSpec, Rubric};
use crate::train::batch::spread;
use crate::train::data::Example;
use crate::train::step::{StackRewarder, StepConfig, TrainPrompt, Trainer};
use crate::train::workers::Workers;

#[derive(Args, Debug)]
pub struct TrainBench {
    /// GRPO steps measured per model (after one warm-up step).
    #[arg(long, default_value_t = 2)]
    pub steps: usize,
    #[arg(long, default_value_t = 4)]
    pub prompts: usize,
    #[arg(long, default_value_t = 6)]
    pub group: usize,
    /// Tokens sampled per rollout at most.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Rows x positions of the forward+backward comparison.
    #[arg(long, default_value_t = 8)]
    pub rows: usize,
    #[arg(long, default_value_t = 256)]
    pub seq: usize,
    /// Measurements of forward+backward; the fastest counts (shared machines are noisy).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Python with torch + transformers for the comparison (skipped when it has none).
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Per-layer activation checkpointing in the measured passes.
    #[arg(long)]
    pub checkpoint_layers: bool,
    /// Instead of the tables above: peak memory and seconds of a training update at each of
    /// these row lengths (tokens), ours beside PyTorch's and the memory plan's.
    #[arg(long, value_delimiter = ',')]
    pub lengths: Vec<usize>,
    /// With --lengths: rows of T tokens per update.
    #[arg(long, default_value_t = 1)]
    pub rows_per_length: usize,
    /// With --lengths: tokens per packed micro-batch.
    #[arg(long, default_value_t = 16384)]
    pub micro_batch_tokens: usize,
}

struct StepRow {
    model: String,
    params: usize,
    generate: f64,
    judge: f64,
    train: f64,
    sampled: f64,
}

struct PassRow {
    model: String,
    ours: f64,
    torch: Option<f64>,
}

pub fn run(args: TrainBench) -> Result<()> {
    let tmp = super::tempdir()?;
    if !args.lengths.is_empty() {
        let bench = super::lengths::LengthsBench {
            lengths: &args.lengths,
            rows: args.rows_per_length,
            micro_batch_tokens: args.micro_batch_tokens,
            python: &args.python,
            repeats: args.repeats,
        };
        return super::lengths::run(bench, &tmp);
    }
    let big = tmp.join("qwen3-15m");
    write_qwen3_15m(&big)?;
    let models = [("tiny (qwen3)".to_string(), tiny::ensure()?), ("qwen3-15M (random)".to_string(), big)];
    let data: Vec<Example> = tiny::DEMO_PROMPTS
        .lines()
        .map(serde_json::from_str)
        .collect::<std::result::Result<_, _>>()
        .context("the demo prompts")?;
    let batch: Vec<TrainPrompt> = data.iter().take(args.prompts).map(TrainPrompt::from).collect();
    let client =
        JudgeClient::new(JudgeSpec::parse("offline")?, Rubric::load("builtin")?, JudgeSettings::default())?;
    let rewarder = StackRewarder::new(client, Weights::training())?;

    let (mut steps, mut passes) = (Vec::new(), Vec::new());
    for (name, dir) in &models {
        eprintln!("{name}: GRPO steps ...");
        let workers = Workers::open(
            dir.to_str().unwrap_or_default(),
            &[Device::Cpu],
            DType::F32,
            all_trainable(),
            false,
        )?;
        let mut cfg = StepConfig { group_size: args.group, thinking: false, ..StepConfig::default() };
        cfg.sampling.max_new_tokens = args.max_new_tokens;
        cfg.checkpoint_layers = args.checkpoint_layers.into();
        let mut trainer = Trainer::new(cfg, 1);
        let cancel = AtomicBool::new(false);
        trainer.step(&workers, &batch, &rewarder, &cancel)?; // warm-up
        let mut acc = [0f64; 4];
        for _ in 0..args.steps.max(1) {
            let (s, _) = trainer.step(&workers, &batch, &rewarder, &cancel)?;
            for (a, v) in
                acc.iter_mut().zip([s.seconds_generate, s.seconds_judge, s.seconds_train, s.words_mean])
            {
                *a += v / args.steps.max(1) as f64;
            }
        }
        steps.push(StepRow {
            model: name.clone(),
            params: workers.primary().model.parameter_count(),
            generate: acc[0],
            judge: acc[1],
            train: acc[2],
            sampled: acc[3],
        });

        eprintln!("{name}: forward+backward ...");
        let ids = random_ids(args.rows, args.seq + 1, workers.primary().model.config().vocab_size);
        let ours = measure_ours(&workers.primary().model, &ids, args.repeats, args.checkpoint_layers)?;
        let torch = measure_torch(&args.python, dir, &ids, args.repeats, &tmp)?;
        passes.push(PassRow { model: name.clone(), ours, torch });
    }
    drop(tmp);

    println!(
        "\nGRPO step, {} prompts x group {}, up to {} new tokens, offline judge (mean of {} steps)\n",
        args.prompts, args.group, args.max_new_tokens, args.steps
    );
    println!("| model | params | generate s | judge s | train s | step s | words/row |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &steps {
        println!(
            "| {} | {:.1}M | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |",
            r.model,
            r.params as f64 / 1e6,
            r.generate,
            r.judge,
            r.train,
            r.generate + r.judge + r.train,
            r.sampled
        );
    }
    println!(
        "\nforward + backward of a token-mean NLL, {} rows x {} positions, f32, fastest of {}, {} threads each \
         (PyTorch: sdpa, OMP_WAIT_POLICY=PASSIVE)\n",
        args.rows,
        args.seq,
        args.repeats,
        rayon::current_num_threads()
    );
    println!("| model | polaris tok/s | PyTorch tok/s | polaris / PyTorch |");
    println!("|---|---:|---:|---:|");
    for r in &passes {
        match r.torch {
            Some(t) => println!("| {} | {:.0} | {:.0} | {:.2} |", r.model, r.ours, t, r.ours / t),
            None => println!("| {} | {:.0} | (no torch) | - |", r.model, r.ours),
        }
    }
    Ok(())
}

fn random_ids(rows: usize, len: usize, vocab: usize) -> Vec<Vec<u32>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    (0..rows).map(|_| (0..len).map(|_| rng.random_range(0..vocab as u32)).collect()).collect()
}

/// Tokens/s of one forward+backward over `ids` (each row: inputs = all but last).
fn measure_ours(model: &Model, ids: &[Vec<u32>], repeats: usize, checkpoint_layers: bool) -> Result<f64> {
    let (r, t) = (ids.len(), ids[0].len() - 1);
    let flat = |f: &dyn Fn(&Vec<u32>) -> &[u32]| -> Vec<u32> {
        ids.iter().flat_map(|row| f(row).to_vec()).collect()
    };
    let inputs = Tensor::from_vec(flat(&|row| &row[..t]), (r, t), &Device::Cpu)?;
    let targets = Tensor::from_vec(flat(&|row| &row[1..]), (r, t), &Device::Cpu)?;
    let spans: Vec<(usize, usize)> = (0..r).map(|k| (k * t, t)).collect();
    let coeffs = vec![vec![-1.0 / (r * t) as f64; t]; r];
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let started = Instant::now();
        let opts = BackwardOptions { checkpoint_layers, ..BackwardOptions::default() };
        backward(model, &inputs, &targets, opts, |_| {
            Ok(spread(&coeffs, &spans, r * t, &Device::Cpu)?.reshape((r, t))?)
        })?;
        best = best.min(started.elapsed().as_secs_f64());
    }
    Ok((r * t) as f64 / best)
}

/// The same pass in PyTorch, or None when the Python has no torch/transformers.
fn measure_torch(
    python: &str,
    dir: &Path,
    ids: &[Vec<u32>],
    repeats: usize,
    tmp: &Path,
) -> Result<Option<f64>> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_train_torch.py");
    let ids_file = tmp.join("ids.json");
    std::fs::write(&ids_file, serde_json::to_string(ids)?)?;
    // the threads our pass used; PASSIVE: OpenMP's idle threads sleep instead of spinning on
    // cores that other work shares (spinning made its pass ~20x slower on a loaded machine)
    let threads = rayon::current_num_threads();
    let out = std::process::Command::new(python)
        .arg(&script)
        .args(["--model", &dir.display().to_string(), "--ids", &ids_file.display().to_string()])
        .args(["--repeats", &repeats.to_string(), "--threads", &threads.to_string()])
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!(
                "note: PyTorch comparison skipped: {}",
                String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
            );
            return Ok(None);
        }
        Err(e) => {
            eprintln!("note: PyTorch comparison skipped: cannot run {python}: {e}");
            return Ok(None);
        }
    };
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("bench_train_torch.py output")?;
    Ok(v["tokens_per_second"].as_f64())
}

/// A qwen3 of about 15M parameters with the tiny model's tokenizer and random weights.
pub(super) fn write_qwen3_15m(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    // the tiny model's tokenizer and template; config.json is replaced below
    crate::model::merge::copy_model_files(&tiny::ensure()?, dir)?;
    let mut config: serde_json::Value = serde_json::from_str(tiny::CONFIG_JSON)?;
    for (k, v) in [
        ("hidden_size", 512),
        ("intermediate_size", 1408),
        ("num_hidden_layers", 5),
        ("num_attention_heads", 8),
        ("num_key_value_heads", 4),
        ("head_dim", 64),
    ] {
        config[k] = v.into();
    }
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config)?)?;
    let cfg = ModelConfig::from_json(&config)?;
    let model = Model::build(&cfg, Source::random(7, 0.02, 0.1), &LoadOptions::new(DType::F32, Device::Cpu))?;
    let tensors: std::collections::HashMap<String, Tensor> = model.tensors().iter().cloned().collect();
    crate::model::weights::save_safetensors(&tensors, &dir.join("model.safetensors"))
}
