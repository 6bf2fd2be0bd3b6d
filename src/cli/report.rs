//! `polaris-tui report`: evaluation reports, and a run's report (`run::report`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};

use crate::annotate::pairs::pair_studies;
use crate::annotate::Study;
use crate::eval::human::report::HumanReport;
use crate::eval::report::{EloReport, LengthReport, ELO_JSON, LENGTH_JSON};
use crate::eval::stats::winrate::MIN_RESAMPLES;
use crate::eval::{elo, human, length};
use crate::eval::{plot, summary};

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Win rate with a 95% bootstrap CI, per annotator, and annotator agreement, from a study folder.
    Human(HumanArgs),
    /// Draws the plots again (PNG and SVG) and prints the tables from an evaluation folder's
    /// `length.json` and / or `elo.json` (written by `eval length` / `eval elo --out DIR`).
    Eval(EvalArgs),
    /// The paper-style table: several systems' benchmark results side by side (folders written
    /// by `eval bench --out`, with an `eval elo` ladder and `eval length` buckets when given).
    Bench(BenchArgs),
    /// A run's curves (PNG and SVG), a Markdown summary (configuration, final and best
    /// values, alerts, time and cost) and a CSV of every step metric, from its directory.
    Run(RunArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The run directory (`polaris-tui train --out`).
    pub run: PathBuf,
    /// Where to write (default RUN/report/).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Folders written by `eval bench --out DIR` (or `eval elo` / `eval length`), or folders
    /// holding such folders (e.g. RUN_DIR/eval).
    #[arg(required = true, num_args = 1..)]
    pub dirs: Vec<PathBuf>,
    /// What is printed.
    #[arg(long, value_enum, default_value = "markdown")]
    pub format: Format,
    /// Also write bench_table.md, bench_table.json, bench_table.png and bench_table.svg here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn bench(args: &BenchArgs) -> Result<()> {
    use crate::eval::bench::{render, table};
    let t = table::build(&args.dirs)?;
    let md = render::table_markdown(&t);
    let json = format!("{}\n", serde_json::to_string_pretty(&t)?);
    match args.format {
        Format::Json => print!("{json}"),
        Format::Markdown | Format::Table => print!("{md}"),
    }
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let md_path = out.join(format!("{}.md", table::TABLE_STEM));
        let json_path = out.join(format!("{}.json", table::TABLE_STEM));
        crate::durable::write_atomic(&md_path, md.as_bytes())?;
        crate::durable::write_atomic(&json_path, json.as_bytes())?;
        let plots = plot::write_bench_plot(&t, out)?;
        eprintln!("wrote {}, {}", md_path.display(), json_path.display());
        for p in plots {
            eprintln!("wrote {}", p.display());
        }
    }
    Ok(())
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

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The evaluation folder; the plots are written into it beside the summaries.
    pub dir: PathBuf,
}

/// The plots and tables of an evaluation folder, from its summaries alone.
fn eval(args: &EvalArgs) -> Result<()> {
    let (length, elo) = (args.dir.join(LENGTH_JSON), args.dir.join(ELO_JSON));
    if !length.is_file() && !elo.is_file() {
        bail!(
            "{}: no {LENGTH_JSON} or {ELO_JSON}; give a folder written by `polaris-tui eval length --out DIR` or `polaris-tui eval elo --out DIR`",
            args.dir.display()
        );
    }
    let mut written = vec![];
    if length.is_file() {
        let r: LengthReport = summary::read(&length)?;
        print!("{}", length::cells::length_text(&r));
        written.extend(
            plot::write_length_plots(&r, &args.dir)
                .with_context(|| format!("plotting {}", length.display()))?,
        );
    }
    if elo.is_file() {
        let r: EloReport = summary::read(&elo)?;
        if !written.is_empty() {
            println!();
        }
        print!("{}", elo::cells::elo_text(&r));
        written.extend(
            plot::write_elo_plot(&r, &args.dir).with_context(|| format!("plotting {}", elo.display()))?,
        );
    }
    println!();
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

pub fn run(cmd: ReportCommand) -> Result<()> {
    match cmd {
        ReportCommand::Eval(args) => eval(&args),
        ReportCommand::Bench(args) => bench(&args),
        ReportCommand::Run(args) => {
            let out = args.out.clone().unwrap_or_else(|| crate::run::RunDir::at(&args.run).report());
            let written = crate::run::report::write_to(&args.run, &out)?;
            for path in written.files {
                println!("wrote {}", path.display());
            }
            Ok(())
        }
        ReportCommand::Human(args) => {
            let pairs = pair_studies(&args.study)?;
            if Study::exists(&args.study) || pairs.is_empty() {
                let report = HumanReport::from_study(&args.study, args.resamples as usize, args.seed)?;
                match args.format {
                    Format::Table => print!("{}", human::render::table(&report)),
                    Format::Markdown => print!("{}", human::render::markdown(&report)),
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
                    print!("{}", reports.iter().map(human::render::table).collect::<Vec<_>>().join("\n"))
                }
                Format::Markdown => {
                    print!("{}", reports.iter().map(human::render::markdown).collect::<Vec<_>>().join("\n"))
                }
                Format::Json => println!("{}", serde_json::to_string_pretty(&reports)?),
            }
            Ok(())
        }
    }
}
