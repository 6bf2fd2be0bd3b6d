//! `polaris-tui prefs curate`: preference pairs written and checked by agents.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Args;

use crate::cli::judge::JudgeAccessArgs;
use crate::durable::write_atomic;
use crate::eval::elo::store::pairwise_prompt_id;
use crate::prefs::curate::agents::Standard;
use crate::prefs::curate::store::{Manifest, Role};
use crate::prefs::curate::summary::{summarise, table};
use crate::prefs::curate::{self, Agents, Curation, Outcome};
use crate::reward::pairwise::PairwisePrompt;
use crate::reward::principles::Principles;
use crate::reward::{JudgeClient, JudgeSpec, Rubric};

#[derive(Args, Debug)]
pub struct CurateArgs {
    /// The dataset (JSONL from `data build`: uid, prompt, story); its human stories are what
    /// retrieval offers.
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder: agents.jsonl (every agent's output, kept across re-runs), pairs.jsonl
    /// (the kept pairs), curate.json (the settings), summary.json, judge-cache/.
    #[arg(long)]
    pub out: PathBuf,
    /// The model that plays every agent not named on its own (openai:MODEL or gemini:MODEL; a
    /// reward model, rm:DIR, cannot play one).
    #[arg(long)]
    pub agent: Option<String>,
    /// The positive agent: picks a retrieved human story or writes a good one [default: --agent].
    #[arg(long)]
    pub positive: Option<String>,
    /// The negative agent: rewrites the good story with flaws built in [default: --agent].
    #[arg(long)]
    pub negative: Option<String>,
    /// The judge agent: compares the two in both orders, with the pairwise prompt
    /// (`offline` compares the offline judge's measurements) [default: --agent].
    #[arg(long)]
    pub judge: Option<String>,
    /// The reflect agent: checks a verdict for the positive against the principles [default: --agent].
    #[arg(long)]
    pub reflect: Option<String>,
    /// Principles (TOML) the positive agent meets, the negative breaks and the reflector
    /// checks [default: the pairwise prompt's criteria].
    #[arg(long)]
    pub principles: Option<PathBuf>,
    /// Human stories retrieved per prompt (by TF-IDF cosine of the prompts).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=20))]
    pub retrieve: u64,
    /// Share of prompts whose pairs are held out (split by prompt id).
    #[arg(long, default_value_t = 0.1)]
    pub heldout: f64,
    /// The judge agent's pairwise prompt TOML [default: the built-in rubrics/pairwise.toml].
    #[arg(long)]
    pub pairwise_prompt: Option<PathBuf>,
    /// Work on at most this many open prompts now (the rest on a re-run).
    #[arg(long)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub access: JudgeAccessArgs,
}

pub fn run(args: CurateArgs) -> Result<()> {
    if !(0.0..1.0).contains(&args.heldout) {
        bail!("--heldout {}: give a share from 0 up to (not including) 1", args.heldout);
    }
    let examples = crate::train::data::load(&args.data)?;
    let pairwise = match &args.pairwise_prompt {
        Some(path) => PairwisePrompt::from_toml_file(path)?,
        None => PairwisePrompt::builtin()?,
    };
    let principles = args.principles.as_deref().map(Principles::load).transpose()?;
    let settings = args.access.settings(Some(args.out.join(crate::run::dir::JUDGE_CACHE)))?;
    let spec_of = |flag: &str, own: &Option<String>| -> Result<JudgeSpec> {
        match own.as_ref().or(args.agent.as_ref()) {
            Some(s) => JudgeSpec::parse(s).map_err(|e| anyhow::anyhow!("--{flag}: {e}")),
            None => {
                bail!("no model for the {flag} agent: give --{flag} SPEC or --agent SPEC (openai:MODEL or gemini:MODEL)")
            }
        }
    };
    // every agent's spec is checked before any client is made (a missing key is said after)
    let chosen = [
        (Role::Positive, spec_of("positive", &args.positive)?),
        (Role::Negative, spec_of("negative", &args.negative)?),
        (Role::Judge, spec_of("judge", &args.judge)?),
        (Role::Reflect, spec_of("reflect", &args.reflect)?),
    ];
    for (role, spec) in &chosen {
        if let JudgeSpec::RewardModel(_) = spec {
            bail!(
                "--{} {}: a reward model scores one story at a time; the {} agent needs a judge model \
                 (openai:MODEL or gemini:MODEL{})",
                role.name(),
                spec.label(),
                role.name(),
                if *role == Role::Judge { ", or offline" } else { "" }
            );
        }
        if *spec == JudgeSpec::Offline && *role != Role::Judge {
            bail!(
                "--{} offline: the offline judge measures stories and cannot write or check one; \
                 give a model (openai:MODEL or gemini:MODEL)",
                role.name()
            );
        }
    }
    let mut clients: HashMap<String, Arc<JudgeClient>> = HashMap::new();
    for (_, spec) in &chosen {
        if let std::collections::hash_map::Entry::Vacant(e) = clients.entry(spec.label()) {
            let mut s = settings.clone();
            if *spec == JudgeSpec::Offline {
                s.cache_dir = None;
            }
            e.insert(Arc::new(JudgeClient::new(spec.clone(), Rubric::builtin()?, s)?));
        }
    }
    let client = |role: Role| {
        let spec = &chosen.iter().find(|(r, _)| *r == role).expect("every role").1;
        clients[&spec.label()].clone()
    };
    let agents = Agents {
        positive: client(Role::Positive),
        negative: client(Role::Negative),
        judge: client(Role::Judge),
        reflect: client(Role::Reflect),
    };
    let specs: Vec<(Role, String)> = chosen.iter().map(|(r, s)| (*r, s.label())).collect();
    let label = |r: Role| specs.iter().find(|(x, _)| *x == r).map(|(_, s)| s.clone()).unwrap_or_default();
    let manifest = Manifest {
        positive: label(Role::Positive),
        negative: label(Role::Negative),
        judge: label(Role::Judge),
        reflect: label(Role::Reflect),
        principles: principles.as_ref().map(Principles::hash),
        pairwise_prompt: pairwise_prompt_id(&pairwise),
        retrieve: args.retrieve as usize,
    };
    std::fs::create_dir_all(&args.out)?;
    manifest.check_or_write(&args.out)?;
    let curation = Curation {
        standard: Standard::new(principles.as_ref(), &pairwise),
        agents,
        pairwise,
        retrieve: args.retrieve as usize,
        heldout: args.heldout,
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} prompts  {msg}  {elapsed} elapsed, {eta} left",
        )
        .expect("valid template"),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (mut kept, mut rejected, mut failed) = (0, 0, 0);
    let finished = runtime.block_on(async {
        let start = |todo: usize| bar.set_length(todo as u64);
        curate::run(curation, &examples, &args.out, args.limit, start, |o| {
            match o {
                Outcome::Decided(crate::prefs::curate::store::Decision::Kept) => kept += 1,
                Outcome::Decided(_) => rejected += 1,
                Outcome::Failed(_) => failed += 1,
            }
            bar.set_message(format!("kept {kept}, rejected {rejected}, failed {failed}"));
            bar.inc(1);
        })
        .await
    })?;
    bar.finish_and_clear();
    for note in &finished.notes {
        eprintln!("{note}");
    }
    for c in clients.values() {
        for notice in c.take_notices() {
            eprintln!("note: {notice}");
        }
    }
    eprintln!(
        "{} prompts decided before (skipped); worked on {} now: kept {kept}, rejected {rejected}, \
         failed {failed} (asked again on a re-run)",
        finished.skipped,
        finished.now.len()
    );
    let uids: Vec<String> = examples.iter().map(|e| e.uid.clone()).collect();
    let summary = summarise(&finished.existing.records, &uids, &specs);
    let summary_path = args.out.join("summary.json");
    write_atomic(&summary_path, format!("{}\n", serde_json::to_string_pretty(&summary)?).as_bytes())?;
    print!("{}", table(&summary));
    eprintln!(
        "wrote {} ({} pairs), {} and {}",
        finished.pairs_path.display(),
        summary.kept,
        args.out.join(crate::prefs::curate::store::AGENTS).display(),
        summary_path.display()
    );
    if failed > 0 && failed == finished.now.len() {
        bail!(
            "every prompt worked on now failed at an agent (see the `open: failed` column and {}); \
             re-run the same command once the agents answer",
            args.out.join(crate::prefs::curate::store::AGENTS).display()
        );
    }
    Ok(())
}
