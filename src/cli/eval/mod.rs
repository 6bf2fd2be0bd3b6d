//! `polaris-tui eval`: automatic evaluation.

mod length;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Story Quality and length ratio per requested-length bucket: generate (or read), judge, summarise.
    Length(Box<length::LengthArgs>),
}

pub fn run(cmd: EvalCommand) -> Result<()> {
    match cmd {
        EvalCommand::Length(args) => length::run(*args),
    }
}
