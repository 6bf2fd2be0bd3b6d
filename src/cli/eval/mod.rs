//! `polaris-tui eval`: automatic evaluation.

mod elo;
mod length;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Story Quality and length ratio per requested-length bucket: generate (or read), judge, summarise.
    Length(Box<length::LengthArgs>),
    /// Pairwise Elo ladder: every pair of systems judged in both orders per prompt, Bradley-Terry fit, bootstrap CIs.
    Elo(Box<elo::EloArgs>),
}

pub fn run(cmd: EvalCommand) -> Result<()> {
    match cmd {
        EvalCommand::Length(args) => length::run(*args),
        EvalCommand::Elo(args) => elo::run(*args),
    }
}
