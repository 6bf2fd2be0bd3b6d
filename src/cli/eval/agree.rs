//! `polaris-tui eval agree`: reward sources against the human verdicts of an annotate study.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use clap::Args;

use crate::cli::judge::JudgeAccessArgs;
use crate::durable::write_atomic;
use crate::eval::agree::{bootstrap, render, AgreeReport, Items, SourceRow, AGREE_JSON, AGREE_MD};
use crate::eval::human::agreement::{agreement, judge_label, judge_preferences, judged_pairs};
use crate::eval::stats::winrate::MIN_RESAMPLES;
use crate::reward::principles::{for_judge, Principles};
use crate::reward::{JudgeClient, JudgeSpec, Rubric};

#[derive(Args, Debug)]
pub struct AgreeArgs {
    /// An annotate study folder with human verdicts.
    #[arg(long)]
    pub study: PathBuf,
    /// A reward source, repeatable: a judge spec (offline, openai:MODEL, gemini:MODEL, rm:DIR),
    /// or SPEC@PRINCIPLES.toml for a judge reading principles (openai:gpt-4.1-mini@principles.toml).
    #[arg(long = "source", required = true)]
    pub sources: Vec<String>,
    /// Score the items `prefs build --heldout SHARE` held out (by prompt id): the ones a
    /// reward model trained on this study's pairs has not seen.
    #[arg(long, default_value_t = 0.1, conflicts_with = "all")]
    pub heldout: f64,
    /// Score every judged item (when no source was trained on this study).
    #[arg(long)]
    pub all: bool,
    /// Bootstrap resamples over items (at least 1000).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(MIN_RESAMPLES as u64..))]
    pub resamples: u64,
    /// Bootstrap seed: the same seed gives the same intervals.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory: agree.json, agree.md and judge-cache/ (a re-run asks only what is not cached).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub access: JudgeAccessArgs,
}

/// `SPEC` or `SPEC@PRINCIPLES`: the part after the last `@` is a principles file when it names
/// one (a spec never ends in a path to a .toml file).
fn split_source(source: &str) -> (&str, Option<&Path>) {
    match source.rsplit_once('@') {
        Some((spec, file)) if file.ends_with(".toml") || Path::new(file).is_file() => {
            (spec, Some(Path::new(file)))
        }
        _ => (source, None),
    }
}

pub fn run(args: AgreeArgs) -> Result<()> {
    if !(0.0..1.0).contains(&args.heldout) || (args.heldout == 0.0 && !args.all) {
        bail!(
            "--heldout {}: give a share above 0 and below 1 (as `prefs build --heldout`), or --all",
            args.heldout
        );
    }
    let selection = if args.all { Items::All } else { Items::Heldout(args.heldout) };
    let (systems, judged) = judged_pairs(&args.study)?;
    let total = judged.len();
    let pairs = selection.select(judged);
    if pairs.is_empty() {
        bail!(
            "{}: none of its {total} judged items is held out at share {} (by prompt id, as `prefs build`); \
             give --all when no source was trained on this study's pairs, or the share `prefs build` used",
            args.study.display(),
            args.heldout
        );
    }
    // every source is read and checked before any is asked
    let settings = args.access.settings(Some(args.out.join(crate::run::dir::JUDGE_CACHE)))?;
    let mut clients = Vec::new();
    for source in &args.sources {
        let (spec, file) = split_source(source);
        let spec = JudgeSpec::parse(spec).map_err(|e| anyhow!("--source {source:?}: {e}"))?;
        let principles =
            file.map(Principles::load).transpose().map_err(|e| anyhow!("--source {source:?}: {e:#}"))?;
        if principles.is_some() && matches!(spec, JudgeSpec::RewardModel(_)) {
            bail!("--source {source:?}: a reward model reads no principles; give it as {}", spec.label());
        }
        let (rubric, notice) = for_judge(&spec, Rubric::builtin()?, principles.as_ref());
        if let Some(n) = notice {
            eprintln!("note: --source {source}: {n}");
        }
        let mut s = settings.clone();
        if matches!(spec, JudgeSpec::Offline | JudgeSpec::RewardModel(_)) {
            s.cache_dir = None;
        }
        clients.push((source.clone(), Arc::new(JudgeClient::new(spec, rubric, s)?)));
    }
    eprintln!(
        "{}: {} of {total} judged items to score, with {} source(s)",
        args.study.display(),
        pairs.len(),
        clients.len()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut rows = Vec::new();
    for (source, client) in &clients {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(format!("{source}: judging {} stories", 2 * pairs.len()));
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        let machine = runtime.block_on(judge_preferences(client, &pairs));
        bar.finish_and_clear();
        for notice in client.take_notices() {
            eprintln!("note: {notice}");
        }
        let (raw_ci95, kappa_ci95, kappa_undefined) =
            bootstrap(&pairs, &machine, args.resamples as usize, args.seed);
        let t = client.totals();
        rows.push(SourceRow {
            agreement: agreement(source, &pairs, &machine),
            label: judge_label(client),
            raw_ci95,
            kappa_ci95,
            kappa_undefined,
            prompt_tokens: t.usage.prompt_tokens,
            completion_tokens: t.usage.completion_tokens,
            cost: t.usage.cost,
        });
    }
    let report = AgreeReport {
        study: args.study.display().to_string(),
        systems: [systems[0].clone(), systems[1].clone()],
        judged: total,
        selection,
        items: pairs.len(),
        resamples: args.resamples as usize,
        seed: args.seed,
        sources: rows,
    };
    std::fs::create_dir_all(&args.out)?;
    let json_path = args.out.join(AGREE_JSON);
    write_atomic(&json_path, format!("{}\n", serde_json::to_string_pretty(&report)?).as_bytes())?;
    let md_path = args.out.join(AGREE_MD);
    write_atomic(&md_path, render::markdown(&report).as_bytes())?;
    print!("{}", render::table(&report));
    eprintln!("wrote {} and {}", json_path.display(), md_path.display());
    if report.sources.iter().all(|s| s.agreement.unscored == s.agreement.items) {
        bail!("no source scored any item (every judgement failed); see the notes above and re-run");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_source;
    use std::path::Path;

    #[test]
    fn a_source_is_a_spec_with_an_optional_principles_file() {
        assert_eq!(split_source("openai:gpt-4.1-mini"), ("openai:gpt-4.1-mini", None));
        assert_eq!(
            split_source("openai:gpt-4.1-mini@rules/p.toml"),
            ("openai:gpt-4.1-mini", Some(Path::new("rules/p.toml")))
        );
        assert_eq!(split_source("rm:runs/rm@2"), ("rm:runs/rm@2", None));
    }
}
