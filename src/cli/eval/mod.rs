//! `polaris-tui eval`: automatic evaluation of generations.

mod elo;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Pairwise Elo ladder: every pair of systems judged in both orders per prompt, Bradley-Terry fit, bootstrap CIs.
    Elo(elo::EloArgs),
}

pub fn run(cmd: EvalCommand) -> Result<()> {
    match cmd {
        EvalCommand::Elo(args) => elo::run(args),
    }
}
