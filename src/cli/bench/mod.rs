//! `polaris-tui bench ...`: measurements printed as tables. Shared machines are noisy, so
//! each cell is the fastest of several interleaved runs.

mod attention;
mod generate;
mod gpu_check;
mod lengths;
mod llama2c;
mod paired;
mod plan;
mod qwen35;
mod rss;
mod train;
mod tui;

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Blockwise varlen attention: forward and forward+backward seconds, extra memory, at T = 512..8192.
    Attention(attention::AttentionBench),
    /// Decode tokens/s, 1 sequence and a group, ours against candle-transformers' llama and run.c.
    Generate(generate::GenerateBench),
    /// What scripts/gpu-check measures: parity with the CPU, a GRPO step at T = 8192, decode vs
    /// bandwidth, collectives; one table, non-zero exit when a check fails.
    GpuCheck(gpu_check::GpuCheck),
    /// The memory plan against measured peak RSS: one training pass per length, each in a fresh process.
    Plan(plan::PlanBench),
    /// Qwen3.5 (~50M random weights, real layer pattern): prefill chunked vs recurrent, decode 1 and 6.
    Qwen35(qwen35::Qwen35Bench),
    /// GRPO step time split (generate / judge / train), and training tokens/s against PyTorch.
    Train(train::TrainBench),
    /// One measured training update in this process (a `train --lengths` cell; hidden).
    #[command(hide = true)]
    TrainPass(lengths::PassArgs),
    /// TUI: dashboard draw with 100k steps of history, groups with 64 groups, idle CPU.
    Tui(tui::TuiBench),
    /// Writes one of the benchmarks' random-weight models to a directory (for profiling; hidden).
    #[command(hide = true)]
    WriteModel(WriteModel),
}

#[derive(clap::Args, Debug)]
pub struct WriteModel {
    /// qwen3-15m (bench train), qwen3_5-50m (bench train --lengths), llama-15m (bench generate)
    pub name: String,
    pub out: PathBuf,
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Attention(args) => attention::run(args),
        BenchCommand::Generate(args) => generate::run(args),
        BenchCommand::GpuCheck(args) => gpu_check::run(args),
        BenchCommand::Plan(args) => plan::run(args),
        BenchCommand::Qwen35(args) => qwen35::run(args),
        BenchCommand::Train(args) => train::run(args),
        BenchCommand::TrainPass(args) => lengths::run_pass(args),
        BenchCommand::Tui(args) => tui::run(args),
        BenchCommand::WriteModel(w) => match w.name.as_str() {
            "qwen3-15m" => train::write_qwen3_15m(&w.out),
            "qwen3_5-50m" => lengths::write_qwen35_50m(&w.out),
            "llama-15m" => {
                std::fs::create_dir_all(&w.out)?;
                generate::write_random_llama(&w.out)
            }
            other => anyhow::bail!(
                "bench write-model: no model named {other:?}; qwen3-15m, qwen3_5-50m or llama-15m"
            ),
        },
    }
}

/// A bench's scratch directory, removed when dropped: on success, on an error's early
/// return and on a panic's unwind alike.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> Result<Scratch> {
    let dir = std::env::temp_dir().join(format!("polaris-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(Scratch(dir))
}
