//! `polaris-tui report`: evaluation reports.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};

use crate::annotate::pairs::pair_studies;
use crate::annotate::Study;
use crate::eval::human::HumanReport;
use crate::eval::human_render;
use crate::eval::winrate::MIN_RESAMPLES;

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Win rate with a 95% bootstrap CI, per annotator, and annotator agreement, from a study folder.
    Human(HumanArgs),
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum Format {
    Table,
    Json,
    Markdown,
}

#[derive(Args, Debug)]
pub struct HumanArgs {
    /// The study folder `polaris-tui annotate --out` wrote (with several systems, every pair's
    /// study in it is reported).
    pub study: PathBuf,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Bootstrap resamples (at least 1000).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(MIN_RESAMPLES as u64..))]
    pub resamples: u64,
    /// Bootstrap seed: the same seed gives the same intervals.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(cmd: ReportCommand) -> Result<()> {
    match cmd {
        ReportCommand::Human(args) => {
            let pairs = pair_studies(&args.study)?;
            if Study::exists(&args.study) || pairs.is_empty() {
                let report = HumanReport::from_study(&args.study, args.resamples as usize, args.seed)?;
                match args.format {
                    Format::Table => print!("{}", human_render::table(&report)),
                    Format::Markdown => print!("{}", human_render::markdown(&report)),
                    Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                }
                return Ok(());
            }
            // one report per system pair, in folder order; JSON is their array
            let reports = pairs
                .iter()
                .map(|dir| HumanReport::from_study(dir, args.resamples as usize, args.seed))
                .collect::<Result<Vec<_>>>()?;
            match args.format {
                Format::Table => {
                    print!("{}", reports.iter().map(human_render::table).collect::<Vec<_>>().join("\n"))
                }
                Format::Markdown => {
                    print!("{}", reports.iter().map(human_render::markdown).collect::<Vec<_>>().join("\n"))
                }
                Format::Json => println!("{}", serde_json::to_string_pretty(&reports)?),
            }
            Ok(())
        }
    }
}
