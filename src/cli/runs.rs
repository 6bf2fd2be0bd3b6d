//! `polaris-tui runs`: every registered run, most recent first, with its status; in a
//! terminal, choose one to attach to.

use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::process::CommandExt;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::run::registry;
use crate::run::status::RunStatus;

#[derive(Args, Debug)]
pub struct RunsArgs {
    /// Print the list as JSON (for scripts) and do not ask for a choice.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: RunsArgs) -> Result<()> {
    let (runs, problems) = registry::list()?;
    for p in problems {
        eprintln!("note: {p}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(());
    }
    if runs.is_empty() {
        println!(
            "no runs yet (the registry is {}); start one with `polaris-tui train --detach`",
            registry::dir()?.display()
        );
        return Ok(());
    }
    let now = crate::run::exit::now();
    println!(
        "{:>3}  {:<22} {:>6} {:>8} {:>9} {:>9} {:>6}  PATH",
        "#", "STATUS", "STEP", "REWARD", "STARTED", "LAST", "ALERTS"
    );
    for (i, r) in runs.iter().enumerate() {
        println!(
            "{:>3}  {:<22} {:>6} {:>8} {:>9} {:>9} {:>6}  {}",
            i + 1,
            short_status(r),
            r.steps,
            r.last_reward.map_or("-".into(), |x| format!("{x:+.3}")),
            r.started.map_or("-".into(), |t| ago(now - t)),
            r.last_event.map_or("-".into(), |t| ago(now - t)),
            if r.alerts.is_empty() { "-".to_string() } else { r.alerts.len().to_string() },
            r.path.display()
        );
        // each open alert under its run, so a NaN or a stall is seen without opening it
        for a in &r.alerts {
            println!("{:>3}  ! {}", "", a.line());
        }
    }
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return Ok(());
    }
    print!("attach to which run? [1-{}, Enter: none] ", runs.len());
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let line = line.trim();
    if line.is_empty() {
        return Ok(());
    }
    let chosen = match line.parse::<usize>() {
        Ok(n) if (1..=runs.len()).contains(&n) => &runs[n - 1],
        _ => bail!("{line:?} is not a run number from 1 to {}", runs.len()),
    };
    let exe = std::env::current_exe().context("cannot find this program to attach with")?;
    // exec only returns on failure
    let err = std::process::Command::new(exe).arg("attach").arg(&chosen.path).exec();
    Err(err).with_context(|| format!("cannot attach to {}", chosen.path.display()))
}

/// `crashed (signal 9)`, `failed (code 1)`, `running`.
fn short_status(r: &RunStatus) -> String {
    let own = r.exit.as_ref().filter(|e| r.pid.is_none_or(|p| p == e.pid));
    match own.map(|e| (e.signal, e.code)) {
        Some((Some(s), _)) if !r.status.is_live() => format!("{} (signal {s})", r.status.name()),
        Some((None, Some(c))) if c != 0 && !r.status.is_live() => format!("{} (code {c})", r.status.name()),
        _ => r.status.name().to_string(),
    }
}

/// `42s ago`, `5m ago`, `3h ago`, `2d ago`.
fn ago(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}
