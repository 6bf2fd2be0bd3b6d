//! `polaris-tui bench gpu-check`: what `scripts/gpu-check` measures on a GPU, as one table.
//!
//! 1. Parity: each reference checkpoint (`--models`, ../shared/models) scored (the training
//!    path: packed log-probs) and generated from (prefill + greedy decode steps, the logits
//!    of each) on the device in f32 and bf16, against the CPU in f32.
//! 2. GRPO: one step (old log-probs, the clipped surrogate's backward with per-layer
//!    checkpointing, gradient clipping, AdamW) of a random-weight Qwen3.5 with 9B's layer
//!    pattern (3 DeltaNet : 1 attention) and vocabulary, ~0.78B parameters: first at a small
//!    size on the CPU (f32) and on the device (f32, and bf16 mixed precision), loss and
//!    gradient norm compared; then on the device alone at T = 8192 in bf16 mixed precision.
//! 3. Decode tokens/s of that model in bf16, one sequence and a group of 6, against the
//!    bandwidth ceiling: a decode step reads every weight once, so tokens/s ≤ rows ×
//!    (bandwidth / weight bytes), the bandwidth measured here by device-to-device copies.
//! 4. Collectives: all-reduce, reduce-scatter and all-gather over world size 1, and 2 when a
//!    second device opens (NCCL on GPUs, the in-process collective on the CPU), results
//!    checked and a 256 MiB all-reduce timed.
//!
//! With `--device cpu` the device side runs the device-generic path on the CPU
//! (`fused::generic_only`), so the whole check runs, at `--size tiny`, in a test here.
//! Exits non-zero when any check fails its bound.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use clap::{Args, ValueEnum};

use crate::device::parse_device;
use crate::generate::sampler::argmax;
use crate::model::fused::generic_only;
use crate::model::logprobs::{backward_packed, logprobs_packed, BackwardOptions, DEFAULT_CHUNK};
use crate::model::{all_trainable, Kernels, LoadOptions, Model, ModelConfig, Source};
use crate::train::batch::{micro_batches, pack, response_rows, spread};
use crate::train::collective;
use crate::train::loss::{grpo_loss_part, BatchTotals, LossConfig, RowTerms};
use crate::train::optim::{clip_grad_norm, AdamW, AdamWConfig, GradSum};

#[derive(Args, Debug, Clone)]
pub struct GpuCheck {
    /// The device checked against the CPU: cuda:N, or cpu (the device-generic path on the host).
    #[arg(long, default_value = "cuda:0")]
    pub device: String,
    /// full: the ~0.78B model at T = 8192 (what scripts/gpu-check runs); tiny: a small model
    /// and short rows (seconds on a CPU).
    #[arg(long, value_enum, default_value = "full")]
    pub size: Size,
    /// The reference checkpoints, one model directory each.
    #[arg(long, default_value = "../shared/models")]
    pub models: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Size {
    Full,
    Tiny,
}

/// Shapes of one run.
struct Shapes {
    model: serde_json::Value,
    /// Rows x tokens of the small step (CPU and device) and of the long one (device).
    short: (usize, usize),
    long: (usize, usize),
    decode_tokens: usize,
    /// Bytes copied per bandwidth measurement.
    copy_bytes: usize,
}

impl Size {
    fn shapes(self) -> Shapes {
        match self {
            // 9B's vocabulary, layer pattern and head dims; hidden 1536, 12 layers: 0.78B
            Size::Full => Shapes {
                model: qwen35_json(248_320, 1536, 4608, 12, (8, 2, 256), (8, 16, 128)),
                short: (2, 128),
                long: (2, 8192),
                decode_tokens: 64,
                copy_bytes: 1 << 30,
            },
            Size::Tiny => Shapes {
                model: qwen35_json(512, 64, 128, 4, (4, 2, 16), (2, 4, 16)),
                short: (2, 40),
                long: (2, 160),
                decode_tokens: 6,
                copy_bytes: 16 << 20,
            },
        }
    }
}

/// A Qwen3.5 text config with 9B's layer pattern (every 4th layer full attention), its
/// partial rotary factor, conv kernel and rope theta; attention (heads, kv heads, head dim),
/// DeltaNet (key heads, value heads, head dim); untied like 9B.
fn qwen35_json(
    vocab: usize,
    hidden: usize,
    mlp: usize,
    layers: usize,
    attention: (usize, usize, usize),
    linear: (usize, usize, usize),
) -> serde_json::Value {
    serde_json::json!({
        "model_type": "qwen3_5_text", "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": mlp,
        "num_hidden_layers": layers, "full_attention_interval": 4,
        "num_attention_heads": attention.0, "num_key_value_heads": attention.1, "head_dim": attention.2,
        "partial_rotary_factor": 0.25,
        "linear_num_key_heads": linear.0, "linear_num_value_heads": linear.1,
        "linear_key_head_dim": linear.2, "linear_value_head_dim": linear.2,
        "linear_conv_kernel_dim": 4, "rms_norm_eps": 1e-6, "rope_parameters": {"rope_theta": 10000000.0},
        "tie_word_embeddings": false, "max_position_embeddings": 262144
    })
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Line {
    pub check: String,
    pub setting: String,
    pub result: String,
    pub bound: String,
    /// None: a measurement with no bound.
    pub pass: Option<bool>,
}

impl Line {
    fn new(check: &str, setting: impl Into<String>, result: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            setting: setting.into(),
            result: result.into(),
            bound: String::new(),
            pass: None,
        }
    }

    fn bounded(mut self, bound: impl Into<String>, pass: bool) -> Self {
        self.bound = bound.into();
        self.pass = Some(pass);
        self
    }
}

pub fn run(args: GpuCheck) -> Result<()> {
    let lines = check(&args)?;
    println!("{}", table(&lines));
    let failed: Vec<&Line> = lines.iter().filter(|l| l.pass == Some(false)).collect();
    if !failed.is_empty() {
        bail!(
            "gpu-check: {} of {} checks failed: {}",
            failed.len(),
            lines.iter().filter(|l| l.pass.is_some()).count(),
            failed.iter().map(|l| format!("{} ({})", l.check, l.setting)).collect::<Vec<_>>().join("; ")
        );
    }
    Ok(())
}

/// Runs every check; progress on stderr.
pub fn check(args: &GpuCheck) -> Result<Vec<Line>> {
    let device = parse_device(&args.device)?;
    let on = Target { device: device.clone() };
    let shapes = args.size.shapes();
    let mut lines = vec![Line::new("device", args.device.clone(), on.describe())];
    lines.extend(parity(&on, &args.models)?);
    lines.extend(grpo(&on, &shapes)?);
    lines.extend(collectives(&on)?);
    Ok(lines)
}

/// The device under check. On the CPU its work runs on the device-generic path.
struct Target {
    device: Device,
}

impl Target {
    fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.device.is_cpu() {
            generic_only(f)
        } else {
            f()
        }
    }

    fn sync(&self) -> Result<()> {
        Ok(self.device.synchronize()?)
    }

    fn describe(&self) -> String {
        if self.device.is_cpu() {
            return "the CPU, on the device-generic path (no CPU-only kernel)".into();
        }
        match crate::gpu::nvml_devices() {
            Some(d) => d.iter().map(|d| format!("{}: {}", d.index, d.name)).collect::<Vec<_>>().join(", "),
            None => "a GPU (NVML unavailable)".into(),
        }
    }
}

fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Model> {
    Model::load_dir(dir, &LoadOptions::new(dtype, device.clone()))
}

/// Tolerances of the parity checks, against the CPU in f32. f32: the same arithmetic in
/// another order (cuBLAS, candle's CUDA kernels, the chunked forms): ~1e-5 relative;
/// bound 1e-3 on log-probs (absolute, nats) and on logits (relative to the largest).
/// bf16: 8 significant bits per weight and activation (2^-9 relative rounding each); on the
/// CPU the device-generic path in bf16 differs from f32 by up to 0.08 nats on these
/// checkpoints' log-probs and 3% of the largest logit; bounds 0.25 and 0.1.
fn parity_bounds(dtype: DType) -> (f64, f64) {
    if dtype == DType::F32 {
        (1e-3, 1e-3)
    } else {
        (0.25, 0.1)
    }
}

fn parity(on: &Target, models: &Path) -> Result<Vec<Line>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(models)
        .with_context(|| format!("cannot list the reference checkpoints in {}", models.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("config.json").exists())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        bail!("{} holds no model directory (config.json)", models.display());
    }
    let mut lines = Vec::new();
    for dir in dirs {
        let name = dir.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        eprintln!("parity: {name} ...");
        let cpu = load(&dir, DType::F32, &Device::Cpu)?;
        let vocab = cpu.config().vocab_size;
        let want = parity_outputs(&cpu, vocab)?;
        for dtype in [DType::F32, DType::BF16] {
            let got = on.run(|| -> Result<(Vec<f32>, Vec<Vec<f32>>)> {
                parity_outputs(&load(&dir, dtype, &on.device)?, vocab)
            })?;
            let (lp_bound, logit_bound) = parity_bounds(dtype);
            let lp = max_diff(&got.0, &want.0);
            let logits = want
                .1
                .iter()
                .zip(&got.1)
                .map(|(w, g)| max_diff(g, w) / max_abs(w).max(1.0))
                .fold(0.0, f64::max);
            let setting = format!("{name}, {}", dtype_name(dtype));
            lines.push(
                Line::new("parity: scoring log-probs", setting.clone(), format!("max abs Δ {lp:.2e} nats"))
                    .bounded(format!("< {lp_bound:e}"), lp < lp_bound),
            );
            lines.push(
                Line::new(
                    "parity: generation logits",
                    setting,
                    format!("max abs Δ / max abs logit {logits:.2e}"),
                )
                .bounded(format!("< {logit_bound:e}"), logits < logit_bound),
            );
        }
    }
    Ok(lines)
}

/// (log-probs of a 64-token row, the logits of a 16-token prefill and 8 decode steps over a
/// fixed token sequence) of `model` on its device, as f32 on the host.
fn parity_outputs(model: &Model, vocab: usize) -> Result<(Vec<f32>, Vec<Vec<f32>>)> {
    let device = model.device().clone();
    let tokens: Vec<u32> = (0..65).map(|i| ((i * 7919 + 13) % vocab) as u32).collect();
    let ids = Tensor::new(&tokens[..64], &device)?;
    let targets = Tensor::new(&tokens[1..], &device)?;
    let lp =
        logprobs_packed(model, &ids, &targets, &[0, 64], DEFAULT_CHUNK)?.to_dtype(DType::F32)?.to_vec1()?;
    let mut cache = model.new_cache(vec![0]);
    let mut logits = Vec::new();
    let prompt = Tensor::new(&tokens[..16], &device)?.unsqueeze(0)?;
    let mut last = model.forward_cached(&prompt, &mut cache, Kernels::Fused)?;
    for &token in &tokens[16..24] {
        logits.push(last.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?);
        let next = Tensor::new(&[token], &device)?.unsqueeze(0)?;
        last = model.forward_cached(&next, &mut cache, Kernels::Fused)?;
    }
    logits.push(last.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?);
    Ok((lp, logits))
}

fn max_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs()).fold(0.0, f64::max)
}

fn max_abs(a: &[f32]) -> f64 {
    a.iter().map(|x| (*x as f64).abs()).fold(0.0, f64::max)
}

fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "f32",
        DType::BF16 => "bf16 (mixed precision)",
        _ => "other",
    }
}

/// What one GRPO step reports.
struct StepOutcome {
    loss: f64,
    grad_norm: f64,
    seconds: f64,
}

/// Rows of `len` tokens, a prompt of 16 and the rest response, deterministic.
fn rows(n: usize, len: usize, vocab: usize) -> Vec<Vec<u32>> {
    (0..n).map(|r| (0..=len).map(|i| ((i * 7919 + r * 104_729 + 11) % vocab) as u32).collect()).collect()
}

/// One GRPO step as the trainer takes it, on `model`'s device: old log-probs under the
/// current weights (first epoch: ratio 1), advantages ±1 (a group of two, rewards 1 and 0),
/// row 0 the human reference with behaviour cloning 0.1, the clipped surrogate (token mean)
/// as per-token coefficients of a checkpointed backward,
/// micro-batches of at most 8192 tokens, global norm clipping at 1, AdamW at lr 1e-6.
fn grpo_step(model: &Model, rows: &[Vec<u32>]) -> Result<StepOutcome> {
    const PROMPT: usize = 16;
    let device = model.device().clone();
    let started = Instant::now();
    let lengths: Vec<usize> = rows.iter().map(|r| r.len() - 1).collect();
    let micros = micro_batches(&lengths, 8192, 0);
    let packed = |micro: &[usize]| {
        let seqs: Vec<(&[u32], &[u32])> =
            micro.iter().map(|&i| (&rows[i][..PROMPT], &rows[i][PROMPT..])).collect();
        pack(&seqs, &device)
    };
    let mut old: Vec<Vec<f64>> = vec![Vec::new(); rows.len()];
    for micro in &micros {
        let p = packed(micro)?;
        let lp = logprobs_packed(model, &p.inputs, &p.targets, &p.cu_seqlens, DEFAULT_CHUNK)?;
        for (&i, r) in micro.iter().zip(response_rows(&lp, &p.spans)?) {
            old[i] = r;
        }
    }
    // row 0 is the group's human reference (HRI) with behaviour cloning, so the loss holds
    // the model's own log-probs (at ratio 1 the surrogate alone is −mean advantage)
    let all: Vec<RowTerms> = old
        .iter()
        .enumerate()
        .map(|(i, o)| match i {
            0 => RowTerms { reference: true, bc_coef: 0.1, ..RowTerms::policy(o, 1.0) },
            _ => RowTerms::policy(o, if i % 2 == 0 { 1.0 } else { -1.0 }),
        })
        .collect();
    let totals = BatchTotals::of(&all);
    let cfg = LossConfig::default();
    let (mut sum, mut loss) = (GradSum::default(), 0.0);
    for micro in &micros {
        let p = packed(micro)?;
        let terms: Vec<RowTerms> = micro.iter().map(|&i| all[i].clone()).collect();
        let opts = BackwardOptions { chunk: DEFAULT_CHUNK, entropy: false, checkpoint_layers: true };
        let out = backward_packed(model, &p.inputs, &p.targets, &p.cu_seqlens, opts, |lp| {
            let part = grpo_loss_part(&cfg, &terms, &response_rows(lp, &p.spans)?, totals);
            loss += part.loss;
            spread(&part.coefficients, &p.spans, p.len(), &device)
        })?;
        sum.add(out.grads)?;
    }
    let mut grads = sum.take();
    let grad_norm = clip_grad_norm(&mut grads, 1.0)?;
    AdamW::new(AdamWConfig::default()).apply(model.trainable(), &grads, 1e-6)?;
    device.synchronize()?;
    Ok(StepOutcome { loss, grad_norm, seconds: started.elapsed().as_secs_f64() })
}

fn build(cfg: &ModelConfig, dtype: DType, device: &Device) -> Result<Model> {
    Model::build(
        cfg,
        Source::random(7, 0.02, 0.1),
        &LoadOptions::new(dtype, device.clone()).trainable(all_trainable()),
    )
}

/// Bounds of the small step against the CPU's f32 step: f32 on the device, the same sums in
/// another order (~1e-5 relative); bound 1e-3 relative on loss and gradient norm. bf16 mixed
/// precision: the loss is a mean of ratios (1 at the first epoch) times advantages, so it
/// agrees closely (bound 1e-2 absolute); the gradient norm carries bf16's rounding through
/// every layer (a random DeltaNet model amplifies it: tests/generic_path.rs), bound 25%.
fn grpo(on: &Target, shapes: &Shapes) -> Result<Vec<Line>> {
    let cfg = ModelConfig::from_json(&shapes.model)?;
    let (short_rows, short_len) = shapes.short;
    let short = rows(short_rows, short_len, cfg.vocab_size);
    eprintln!("GRPO step: CPU, f32, {short_rows} x {short_len} tokens ...");
    let cpu_model = build(&cfg, DType::F32, &Device::Cpu)?;
    let params = cpu_model.parameter_count();
    let want = grpo_step(&cpu_model, &short)?;
    drop(cpu_model);
    let mut lines = vec![Line::new(
        "GRPO step, CPU",
        format!(
            "{:.1}M-parameter random Qwen3.5, f32, {short_rows} x {short_len} tokens",
            params as f64 / 1e6
        ),
        format!("loss {:.6}, grad norm {:.6}, {:.1} s", want.loss, want.grad_norm, want.seconds),
    )];
    for dtype in [DType::F32, DType::BF16] {
        eprintln!("GRPO step: device, {}, {short_rows} x {short_len} tokens ...", dtype_name(dtype));
        let got = on.run(|| grpo_step(&build(&cfg, dtype, &on.device)?, &short))?;
        let loss_d = (got.loss - want.loss).abs();
        let norm_rel = (got.grad_norm - want.grad_norm).abs() / want.grad_norm.max(1e-30);
        let (loss_ok, norm_ok, bound) = if dtype == DType::F32 {
            let loss_rel = loss_d / want.loss.abs().max(1e-30);
            (loss_rel < 1e-3, norm_rel < 1e-3, "loss and grad norm within 1e-3 relative")
        } else {
            (loss_d < 1e-2, norm_rel < 0.25, "loss within 1e-2, grad norm within 25%")
        };
        lines.push(
            Line::new(
                "GRPO step vs CPU",
                format!("{}, {short_rows} x {short_len} tokens", dtype_name(dtype)),
                format!(
                    "loss {:.6} (Δ {loss_d:.1e}), grad norm {:.6} (Δ {:.1}%), {:.2} s",
                    got.loss,
                    got.grad_norm,
                    100.0 * norm_rel,
                    got.seconds
                ),
            )
            .bounded(bound, loss_ok && norm_ok),
        );
    }

    // the long step and decoding, bf16 mixed precision on the device
    let (long_rows, long_len) = shapes.long;
    eprintln!("GRPO step: device, bf16, {long_rows} x {long_len} tokens ...");
    let model = on.run(|| build(&cfg, DType::BF16, &on.device))?;
    let long = rows(long_rows, long_len, cfg.vocab_size);
    let got = on.run(|| grpo_step(&model, &long))?;
    let finite = got.loss.is_finite() && got.grad_norm.is_finite() && got.grad_norm > 0.0;
    let tokens = long_rows * long_len;
    lines.push(
        Line::new(
            "GRPO step",
            format!("bf16 mixed precision, {long_rows} x T = {long_len}, checkpointed layers"),
            format!(
                "loss {:.6}, grad norm {:.6}, {:.2} s, {:.0} tokens/s{}",
                got.loss,
                got.grad_norm,
                got.seconds,
                tokens as f64 / got.seconds,
                memory_note(on)
            ),
        )
        .bounded("finite loss, finite nonzero grad norm", finite),
    );
    lines.extend(on.run(|| decode(on, &model, shapes))?);
    Ok(lines)
}

/// Device memory this process holds (NVML), when known.
fn memory_note(on: &Target) -> String {
    if on.device.is_cpu() {
        return String::new();
    }
    let me = std::process::id();
    let held: u64 = crate::gpu::nvml_devices()
        .unwrap_or_default()
        .iter()
        .flat_map(|d| d.processes.iter().filter(|p| p.pid == me).map(|p| p.gpu_mem_bytes.unwrap_or(0)))
        .sum();
    if held == 0 {
        String::new()
    } else {
        format!(", device memory held after it {:.1} GiB", held as f64 / (1u64 << 30) as f64)
    }
}

/// Bytes per second of device-to-device copies (each reads and writes `bytes`).
fn copy_bandwidth(on: &Target, bytes: usize) -> Result<f64> {
    let x = Tensor::zeros(bytes / 2, DType::BF16, &on.device)?;
    let _warm = x.copy()?;
    on.sync()?;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let started = Instant::now();
        let y = x.copy()?;
        on.sync()?;
        best = best.min(started.elapsed().as_secs_f64());
        drop(y);
    }
    Ok(2.0 * bytes as f64 / best)
}

fn decode(on: &Target, model: &Model, shapes: &Shapes) -> Result<Vec<Line>> {
    let weight_bytes: usize =
        model.tensors().iter().map(|(_, t)| t.elem_count() * t.dtype().size_in_bytes()).sum();
    let bandwidth = copy_bandwidth(on, shapes.copy_bytes)?;
    let mut lines = vec![Line::new(
        "bandwidth",
        "device-to-device copy (read + write)",
        format!(
            "{:.0} GB/s; weights {:.2} GB: floor {:.2} ms a decode step",
            bandwidth / 1e9,
            weight_bytes as f64 / 1e9,
            1e3 * weight_bytes as f64 / bandwidth
        ),
    )];
    let vocab = model.config().vocab_size;
    for batch in [1usize, 6] {
        eprintln!("decode: {batch} sequence(s) ...");
        let prompt: Vec<u32> = (0..16 * batch).map(|i| ((i * 7919 + 3) % vocab) as u32).collect();
        let mut cache = model.new_cache(vec![0; batch]);
        let ids = Tensor::from_vec(prompt, (batch, 16), &on.device)?;
        let mut logits = model.forward_cached(&ids, &mut cache, Kernels::Fused)?;
        on.sync()?;
        let started = Instant::now();
        for _ in 0..shapes.decode_tokens {
            let next: Vec<u32> =
                logits.to_dtype(DType::F32)?.to_vec2::<f32>()?.iter().map(|l| argmax(l)).collect();
            logits = model.forward_cached(
                &Tensor::from_vec(next, (batch, 1), &on.device)?,
                &mut cache,
                Kernels::Fused,
            )?;
        }
        on.sync()?;
        let secs = started.elapsed().as_secs_f64();
        let rate = (batch * shapes.decode_tokens) as f64 / secs;
        let ceiling = batch as f64 * bandwidth / weight_bytes as f64;
        lines.push(Line::new(
            "decode",
            format!(
                "bf16, {batch} sequence{}, {} steps",
                if batch > 1 { "s" } else { "" },
                shapes.decode_tokens
            ),
            format!(
                "{rate:.1} tokens/s = {:.0}% of the bandwidth ceiling {ceiling:.1}",
                100.0 * rate / ceiling
            ),
        ));
    }
    Ok(lines)
}

/// The devices of a group of `world`: the device under check, then the next ordinals.
fn group_devices(on: &Target, world: usize) -> Option<Vec<Device>> {
    match on.device.location() {
        candle_core::DeviceLocation::Cpu => Some(vec![Device::Cpu; world]),
        candle_core::DeviceLocation::Cuda { gpu_id } => {
            let mut out = vec![on.device.clone()];
            for k in 1..world {
                out.push(parse_device(&format!("cuda:{}", gpu_id + k)).ok()?);
            }
            Some(out)
        }
        _ => None,
    }
}

fn collectives(on: &Target) -> Result<Vec<Line>> {
    let mut lines = Vec::new();
    let transport = if on.device.is_cpu() { "in-process" } else { "NCCL" };
    for world in [1usize, 2] {
        let Some(devices) = group_devices(on, world) else {
            lines.push(Line::new(
                "collectives",
                format!("{transport}, world size {world}"),
                "not run: one device",
            ));
            continue;
        };
        eprintln!("collectives: {transport}, world size {world} ...");
        let group = collective::group_for(&devices, Duration::from_secs(120))?;
        let results: Vec<Result<(bool, f64)>> = std::thread::scope(|s| {
            let handles: Vec<_> = group
                .iter()
                .zip(&devices)
                .map(|(c, d)| s.spawn(move || collective_round(c.as_ref(), d)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| bail!("a rank panicked"))).collect()
        });
        let mut ok = true;
        let mut secs = 0f64;
        for r in results {
            let (good, s) = r?;
            ok &= good;
            secs = secs.max(s);
        }
        let bytes = (ALL_REDUCE_ELEMS * 4) as f64;
        lines.push(
            Line::new(
                "collectives",
                format!("{transport}, world size {world}"),
                format!(
                    "all-reduce, reduce-scatter, all-gather {}; 256 MiB all-reduce {:.1} ms{}",
                    if ok { "exact" } else { "WRONG" },
                    secs * 1e3,
                    // bus bandwidth as nccl-tests count it: algorithm bandwidth x 2(n-1)/n
                    if world > 1 {
                        format!(
                            " ({:.0} GB/s bus)",
                            bytes * 2.0 * (world - 1) as f64 / world as f64 / secs / 1e9
                        )
                    } else {
                        String::new()
                    }
                ),
            )
            .bounded("sums exact (small integers in f32)", ok),
        );
    }
    Ok(lines)
}

/// f32 elements of the timed all-reduce (256 MiB).
const ALL_REDUCE_ELEMS: usize = 64 << 20;

/// One rank's round: small integer tensors whose sums are exact in f32, then a timed
/// all-reduce. Returns (every result exact, seconds of the timed call).
fn collective_round(c: &dyn collective::Collective, device: &Device) -> Result<(bool, f64)> {
    let (rank, world) = (c.rank(), c.world_size());
    let n = 4 * world;
    let mine: Vec<f32> = (0..n).map(|i| (i + 10 * rank) as f32).collect();
    let x = Tensor::from_vec(mine, n, device)?;
    // Σ_r (i + 10 r) = world·i + 10·world(world-1)/2
    let base = 10.0 * (world * (world - 1) / 2) as f32;
    let want: Vec<f32> = (0..n).map(|i| world as f32 * i as f32 + base).collect();
    let sum: Vec<f32> = c.all_reduce_sum(&x)?.to_vec1()?;
    let shard: Vec<f32> = c.reduce_scatter_sum(&x)?.to_vec1()?;
    let gathered: Vec<f32> = c.all_gather(&Tensor::from_vec(vec![rank as f32; 3], 3, device)?)?.to_vec1()?;
    let s = n / world;
    let ok = sum == want
        && shard == want[rank * s..(rank + 1) * s]
        && gathered == (0..world).flat_map(|r| [r as f32; 3]).collect::<Vec<_>>();
    let big = Tensor::ones(ALL_REDUCE_ELEMS, DType::F32, device)?;
    let _warm = c.all_reduce_sum(&big.narrow(0, 0, 1024)?.contiguous()?)?;
    device.synchronize()?;
    let started = Instant::now();
    let out = c.all_reduce_sum(&big)?;
    device.synchronize()?;
    let secs = started.elapsed().as_secs_f64();
    let first: Vec<f32> = out.narrow(0, 0, 4)?.to_vec1()?;
    Ok((ok && first == vec![world as f32; 4], secs))
}

/// The table, Markdown.
pub fn table(lines: &[Line]) -> String {
    let mut out = String::from("| check | setting | result | bound | status |\n|---|---|---|---|---|\n");
    for l in lines {
        let status = match l.pass {
            Some(true) => "ok",
            Some(false) => "FAIL",
            None => "",
        };
        out.push_str(&format!("| {} | {} | {} | {} | {status} |\n", l.check, l.setting, l.result, l.bound));
    }
    out
}
