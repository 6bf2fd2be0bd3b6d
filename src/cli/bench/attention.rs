//! `polaris-tui bench attention`: the blockwise varlen attention op (model::flash_attention)
//! at training lengths, one row of T tokens: forward and forward+backward seconds, and the
//! op's extra memory (peak RSS above what was resident before the call, Linux).

use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};
use clap::Args;

use crate::model::flash_attention::varlen_attention;

#[derive(Args, Debug)]
pub struct AttentionBench {
    /// Row lengths (tokens) to measure.
    #[arg(long, value_delimiter = ',', default_value = "512,1024,2048,4096,8192")]
    pub lengths: Vec<usize>,
    /// Query heads, kv heads and head dim: the tiny model's attention by default.
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    #[arg(long, default_value_t = 2)]
    pub kv_heads: usize,
    #[arg(long, default_value_t = 64)]
    pub head_dim: usize,
    /// Measurements per cell; the table shows the fastest.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
}

pub fn run(args: AttentionBench) -> Result<()> {
    let (h, hkv, dh) = (args.heads, args.kv_heads, args.head_dim);
    let scale = 1.0 / (dh as f64).sqrt();
    eprintln!("H={h} Hkv={hkv} Dh={dh}, one row, f32, {} threads", rayon::current_num_threads());
    println!("\n| T | forward s | forward+backward s | extra memory MiB | dense scores [H, T, T] MiB |");
    println!("|---:|---:|---:|---:|---:|");
    for &t in &args.lengths {
        eprintln!("T = {t} ...");
        let dev = Device::Cpu;
        let q = Var::from_tensor(&Tensor::randn(0f32, 1.0, (t, h, dh), &dev)?)?;
        let k = Var::from_tensor(&Tensor::randn(0f32, 1.0, (t, hkv, dh), &dev)?)?;
        let v = Var::from_tensor(&Tensor::randn(0f32, 1.0, (t, hkv, dh), &dev)?)?;
        let d_o = Tensor::randn(0f32, 1.0, (t, h, dh), &dev)?;
        let cu = [0, t];
        let forward = best(args.repeats, || {
            let started = Instant::now();
            let o = varlen_attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), &cu, scale)?;
            Ok((started.elapsed().as_secs_f64(), o))
        })?;
        let mut extra = 0u64;
        let both = best(args.repeats, || {
            let before = super::rss::reset_peak().ok();
            let started = Instant::now();
            let o = varlen_attention(&q, &k, &v, &cu, scale)?;
            let grads = (o * &d_o)?.sum_all()?.backward()?;
            let secs = started.elapsed().as_secs_f64();
            if let (Some(before), Some(peak)) = (before, super::rss::peak().ok()) {
                extra = extra.max(peak.saturating_sub(before));
            }
            Ok((secs, grads))
        })?;
        let dense = (h * t * t * DType::F32.size_in_bytes()) as f64 / (1 << 20) as f64;
        println!("| {t} | {forward:.3} | {both:.3} | {:.1} | {dense:.0} |", extra as f64 / (1 << 20) as f64);
    }
    Ok(())
}

/// Fastest of `n` runs of `f` (seconds); what each run returns is dropped after its timing.
fn best<T>(n: usize, mut f: impl FnMut() -> Result<(f64, T)>) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..n.max(1) {
        best = best.min(f()?.0);
    }
    Ok(best)
}
