//! `polaris-tui report run RUN` (and `E` in the TUI): a run's record in files a paper or a
//! chat can take: `curves.png` / `curves.svg` (the step metrics, a panel each, drawn by
//! `eval::plot`), `steps.csv` (every field of every standing step event) and `summary.md`
//! (configuration, final and best values, alerts, time and cost). Read from the run
//! directory alone; written into `RUN/report/` (or a folder given), each file written then
//! renamed.

mod markdown;
pub mod table;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::eval::plot::{self, Panel, Series};
use crate::run::alerts::OpenAlerts;
use crate::run::RunDir;
use table::StepTable;

pub const CSV: &str = "steps.csv";
pub const SUMMARY: &str = "summary.md";

/// What a report wrote.
#[derive(Debug, Clone)]
pub struct Written {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
}

/// The report of `run_dir`, into `run_dir/report/`.
pub fn write(run_dir: &Path) -> Result<Written> {
    write_to(run_dir, &RunDir::at(run_dir).report())
}

/// The report of `run_dir`, into `out`.
pub fn write_to(run_dir: &Path, out: &Path) -> Result<Written> {
    let events_path = RunDir::at(run_dir).events();
    if !events_path.is_file() {
        bail!(
            "{}: not a run directory (no events.jsonl); give the folder `polaris-tui train --out` wrote",
            run_dir.display()
        );
    }
    let events = crate::run::log::read(&events_path)?.events;
    let table = StepTable::of(&events);
    if table.rows.is_empty() {
        bail!(
            "{}: no step logged yet, so there is nothing to report; try again after the first step",
            run_dir.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let name = run_dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| run_dir.display().to_string());

    let mut files = Vec::new();
    let csv = out.join(CSV);
    crate::durable::write_atomic(&csv, table.csv().as_bytes())?;
    files.push(csv);
    let title = format!("{name} · {} steps", table.rows.len());
    files.extend(plot::write_curves(title, panels(&table), out).context("drawing the curves")?);
    let config = std::fs::read_to_string(RunDir::at(run_dir).config()).ok();
    let alerts = OpenAlerts::of(&events);
    let summary = out.join(SUMMARY);
    let text = markdown::summary(&name, &events, &table, config.as_deref(), &alerts, &files);
    crate::durable::write_atomic(&summary, text.as_bytes())?;
    files.push(summary);
    Ok(Written { dir: out.to_path_buf(), files })
}

/// The panels of the curves: (title, [(column, label)]). A column no step has is left out;
/// a panel with none is left out.
const PANELS: &[(&str, &[(&str, &str)])] = &[
    (
        "reward",
        &[
            ("policy_reward_mean", "policy mean"),
            ("best_of_group_mean", "best of group"),
            ("reference_reward_mean", "reference"),
        ],
    ),
    ("policy reward std", &[("policy_reward_std", "std")]),
    (
        "reference rank (1 = best) and beats-all share",
        &[("reference_rank_mean", "rank"), ("reference_beats_all", "beats all")],
    ),
    ("length ratio (written / requested)", &[("length_ratio_mean", "length ratio")]),
    ("words", &[("words_mean", "mean words")]),
    ("loss", &[("loss", "loss")]),
    ("grad norm (before clipping)", &[("grad_norm", "grad norm")]),
    ("KL and entropy (nats)", &[("kl", "KL"), ("entropy", "entropy")]),
    ("clip fractions", &[("clip_frac_low", "low"), ("clip_frac_high", "high")]),
    ("zero-variance groups", &[("zero_variance_groups", "groups")]),
    ("judge failures", &[("judge_failures", "rows")]),
    ("judge cost (USD per step)", &[("judge_cost", "cost")]),
    ("tokens/s", &[("generate_tokens_per_second", "generate"), ("train_tokens_per_second", "train")]),
    (
        "seconds per step",
        &[("seconds_generate", "generate"), ("seconds_judge", "judge"), ("seconds_train", "train")],
    ),
    ("learning rate", &[("lr", "lr")]),
];

fn panels(t: &StepTable) -> Vec<Panel> {
    let steps = t.step_numbers();
    let line = |column: &str, label: String| {
        let values = t.column(column)?;
        values
            .iter()
            .any(Option::is_some)
            .then(|| Series { label, points: steps.iter().copied().zip(values).collect() })
    };
    let mut out: Vec<Panel> = PANELS
        .iter()
        .map(|(title, cols)| Panel {
            title: title.to_string(),
            series: cols.iter().filter_map(|(c, label)| line(c, label.to_string())).collect(),
        })
        .collect();
    // model FLOPs utilisation per device, where the step events carry it
    let mfu: Vec<Series> = t
        .columns
        .iter()
        .filter_map(|c| {
            let device = c.strip_prefix("devices.")?.strip_suffix(".mfu")?;
            let name = t
                .steps
                .iter()
                .find_map(|s| s.devices.get(device.parse::<usize>().ok()?))
                .map(|d| d.device.clone());
            line(c, name.unwrap_or_else(|| format!("device {device}")))
        })
        .collect();
    out.push(Panel { title: "model FLOPs utilisation".into(), series: mfu });
    out.retain(|p| !p.series.is_empty());
    out
}
