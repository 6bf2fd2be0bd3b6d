//! `polaris-tui eval`: automatic evaluation.

mod agree;
mod bench;
mod elo;
pub(super) mod length;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Story Quality and length ratio per requested-length bucket: generate (or read), judge, summarise.
    Length(Box<length::LengthArgs>),
    /// Pairwise Elo ladder: every pair of systems judged in both orders per prompt, Bradley-Terry fit, bootstrap CIs.
    Elo(Box<elo::EloArgs>),
    /// The paper's benchmarks (story_quality, eq_bench_longform, eq_bench_creative, writingbench,
    /// longbench_write) judged and scored as the POLARIS release scores them, with bootstrap CIs.
    Bench(Box<bench::BenchArgs>),
    /// Reward sources (judges, judges reading principles, reward models) against the human verdicts
    /// of an annotate study: raw agreement and Cohen's kappa with bootstrap CIs, and cost.
    Agree(Box<agree::AgreeArgs>),
}

pub fn run(cmd: EvalCommand) -> Result<()> {
    match cmd {
        EvalCommand::Length(args) => length::run(*args),
        EvalCommand::Elo(args) => elo::run(*args),
        EvalCommand::Bench(args) => bench::run(*args),
        EvalCommand::Agree(args) => agree::run(*args),
    }
}
