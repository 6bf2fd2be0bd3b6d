//! `polaris-tui plan`: the memory plan of a run, with train's flags, without loading the model.
//! With --gpus, on that many CUDA devices (none needed here): the run's plan, and whether a
//! full fine-tune and LoRA fit and with which settings.

use anyhow::{bail, Result};
use clap::Args;

use super::train::{resolve, TrainArgs};
use crate::plan::fit::{self, Training};
use crate::plan::{advice, available, model_config, Place, Plan};

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub train: TrainArgs,
    /// Plan for this many bytes per device instead of what is available now (e.g. 8GiB,
    /// 512MiB, or a plain number of bytes).
    #[arg(long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Plan on N CUDA devices (cuda:0..cuda:N-1) instead of run.devices, one worker each,
    /// the optimizer state sharded over them (ZeRO-1); a list (1,2,4) prints only the table
    /// of which training fits each count. No GPU is needed to plan.
    #[arg(long, value_name = "N[,N...]")]
    pub gpus: Option<String>,
    /// Memory of each GPU: 80 (GiB, as an A100 80GB's 81920 MiB), 80GiB, 40GB (GB is read
    /// as GiB); else each device's total from NVML.
    #[arg(long, value_name = "GIB")]
    pub gpu_memory: Option<String>,
}

pub fn run(args: PlanArgs) -> Result<()> {
    let mut cfg = resolve(&args.train)?;
    let model = model_config(&cfg.model.path)?;
    let memory = args.memory.as_deref().map(parse_bytes).transpose()?;
    let gpu_memory = args.gpu_memory.as_deref().map(parse_gpu_memory).transpose()?;
    let available = |p: &Place| match (memory, gpu_memory, p) {
        (_, Some(g), Place::Cuda(_)) => Some(g),
        (Some(m), _, _) => Some(m),
        (None, _, Place::Host) => available::host(),
        (None, _, Place::Cuda(i)) => available::cuda(*i),
    };
    let counts = args.gpus.as_deref().map(parse_gpus).transpose()?;
    if let Some(counts) = &counts {
        if counts.len() > 1 {
            print!("{}", fits_table(&cfg, &model, &available, counts)?);
            return Ok(());
        }
        // set directly: a build without the cuda feature does not accept cuda devices
        cfg.run.devices = fit::devices(counts[0]);
    }
    let plan = Plan::compute(&cfg, &model, &available)?;
    print!("{}", plan.table());
    if let Some(counts) = &counts {
        print!("\n{}", fits_table(&cfg, &model, &available, counts)?);
    }
    if plan.fits() {
        println!("\nfits: {}", plan.summary());
        return Ok(());
    }
    println!("\n{}", advice::refusal(&plan, &advice::advise(&cfg, &model, &available)));
    std::process::exit(1)
}

/// Whether a full fine-tune and LoRA (the configuration's rank) fit each GPU count.
fn fits_table(
    cfg: &crate::train::config::TrainConfig,
    model: &crate::model::ModelConfig,
    available: &dyn Fn(&Place) -> Option<u64>,
    counts: &[u64],
) -> Result<String> {
    let mut fits = Vec::new();
    for &n in counts {
        for training in [Training::Full, Training::Lora] {
            fits.push(fit::search(cfg, model, available, training, n)?);
        }
    }
    Ok(format!(
        "which training fits ({}, rows of prompt + step.sampling.max_new_tokens = {} tokens):\n{}",
        cfg.model.path,
        fits.first().map_or(0, |f| f.plan.row_tokens),
        fit::table(&fits, cfg.model.lora.r)
    ))
}

/// `4` or `1,2,4`: GPU counts, each at least 1.
fn parse_gpus(text: &str) -> Result<Vec<u64>> {
    let counts: Option<Vec<u64>> = text
        .split(',')
        .map(|n| n.trim().parse::<u64>().ok().filter(|n| (1..=fit::MAX_GPUS).contains(n)))
        .collect();
    match counts {
        Some(c) if !c.is_empty() => Ok(c),
        _ => {
            bail!("--gpus {text:?}: expected a GPU count from 1 to {} or a list such as 1,2,4", fit::MAX_GPUS)
        }
    }
}

/// `80` (GiB), or a size with a unit as --memory takes.
fn parse_gpu_memory(text: &str) -> Result<u64> {
    let t = text.trim();
    if let Ok(gib) = t.parse::<f64>() {
        if gib > 0.0 {
            return Ok((gib * (1u64 << 30) as f64) as u64);
        }
    }
    parse_size("--gpu-memory", t)
}

/// `8GiB`, `512MiB`, `1.5GB`, `123456`.
pub fn parse_bytes(text: &str) -> Result<u64> {
    parse_size("--memory", text)
}

/// A size with a unit for `flag`.
fn parse_size(flag: &str, text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("{flag} {text:?}: expected a size such as 8GiB or 512MiB"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" | "kb" => 1024.0,
        "m" | "mib" | "mb" => 1024.0 * 1024.0,
        "g" | "gib" | "gb" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" | "tb" => 1024f64.powi(4),
        u => anyhow::bail!("{flag} {text:?}: unknown unit {u:?} (use KiB, MiB, GiB or TiB)"),
    };
    Ok((n * scale) as u64)
}
