//! `polaris-tui prefs`: preference pairs for a reward model.

mod curate;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum PrefsCommand {
    /// Pairs written and checked by agents: per prompt, retrieved human stories, a positive and a
    /// negative agent's candidates, a judge in both orders and a reflector; kept when they agree.
    Curate(Box<curate::CurateArgs>),
}

pub fn run(cmd: PrefsCommand) -> Result<()> {
    match cmd {
        PrefsCommand::Curate(args) => curate::run(*args),
    }
}
