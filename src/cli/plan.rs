//! `polaris-tui plan`: the memory plan of a run, with train's flags, without loading the model.

use anyhow::Result;
use clap::Args;

use super::train::{resolve, TrainArgs};
use crate::plan::{advice, available, model_config, Place, Plan};

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub train: TrainArgs,
    /// Plan for this many bytes per device instead of what is available now (e.g. 8GiB,
    /// 512MiB, or a plain number of bytes).
    #[arg(long, value_name = "BYTES")]
    pub memory: Option<String>,
}

pub fn run(args: PlanArgs) -> Result<()> {
    let cfg = resolve(&args.train)?;
    let model = model_config(&cfg.model.path)?;
    let memory = args.memory.as_deref().map(parse_bytes).transpose()?;
    let available = |p: &Place| match (memory, p) {
        (Some(m), _) => Some(m),
        (None, Place::Host) => available::host(),
        (None, Place::Cuda(i)) => available::cuda(*i),
    };
    let plan = Plan::compute(&cfg, &model, &available)?;
    print!("{}", plan.table());
    if plan.fits() {
        println!("\nfits: {}", plan.summary());
        return Ok(());
    }
    println!("\n{}", advice::refusal(&plan, &advice::advise(&cfg, &model, &available)));
    std::process::exit(1)
}

/// `8GiB`, `512MiB`, `1.5GB`, `123456`.
pub fn parse_bytes(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("--memory {text:?}: expected a size such as 8GiB or 512MiB"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" | "kb" => 1024.0,
        "m" | "mib" | "mb" => 1024.0 * 1024.0,
        "g" | "gib" | "gb" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" | "tb" => 1024f64.powi(4),
        u => anyhow::bail!("--memory {text:?}: unknown unit {u:?} (use KiB, MiB, GiB or TiB)"),
    };
    Ok((n * scale) as u64)
}
