//! `polaris-tui prefs`: preference pairs for a reward model.

mod build;
mod curate;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum PrefsCommand {
    /// Gather preference pairs into one JSONL (prompt, chosen, rejected, source, weight, split).
    Build(Box<build::BuildArgs>),
    /// Pairs written and checked by agents: per prompt, retrieved human stories, a positive and a
    /// negative agent's candidates, a judge in both orders and a reflector; kept when they agree.
    Curate(Box<curate::CurateArgs>),
}

pub fn run(cmd: PrefsCommand) -> Result<()> {
    match cmd {
        PrefsCommand::Build(args) => build::build(*args),
        PrefsCommand::Curate(args) => curate::run(*args),
    }
}
