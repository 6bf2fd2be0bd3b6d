//! `eval length`: generate (or read) stories for every model and prompt, judge them, keep a
//! record of each as it is made, and summarise Story Quality and length per requested-length
//! bucket. Records live in the output directory, so a re-run with the same settings only
//! generates and judges what is missing:
//!
//! - `eval.json`: the settings (a re-run with other ones is refused, naming them);
//! - `generations/<model>.jsonl`: one story per (prompt, sample), generation-file format;
//! - `judgements.jsonl`: one judgement per story;
//! - `length.json` (`LengthReport`) and `length.md`, rewritten whole at the end.

pub mod judging;
pub mod models;
pub mod prompts;
pub mod records;
pub mod settings;
pub mod stories;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use self::prompts::{read_prompts, EvalPrompt};
use self::records::StoryRecord;
use self::settings::{ModelSpec, Settings, SETTINGS_VERSION};
use self::stories::GenerationSettings;
use crate::durable::write_atomic;
use crate::eval::length::render;
use crate::eval::length::stats::{bucket_of, summarise, ScoredStory, SummaryOptions};
use crate::eval::report::{Bucket, LengthReport, LENGTH_JSON};
use crate::generate::file::read_generations;
use crate::generate::{count_words, length_ratio};
use crate::reward::rubric::hex;
use crate::reward::JudgeClient;

pub const LENGTH_MD: &str = "length.md";
pub const JUDGEMENTS: &str = "judgements.jsonl";
pub const GENERATIONS: &str = "generations";
/// Prompts named at most in the outside-the-buckets note.
const LISTED: usize = 20;

/// Where the stories come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Generate `samples` stories per prompt of the --prompts file with each model.
    Models { models: Vec<ModelSpec>, prompts: PathBuf, generation: Box<GenerationSettings> },
    /// Judge the stories of these generation files (`system` is the model label).
    Gens(Vec<PathBuf>),
}

#[derive(Debug, Clone)]
pub struct LengthEval {
    pub out: PathBuf,
    pub source: Source,
    pub buckets: Vec<Bucket>,
    pub resamples: usize,
    pub bootstrap_seed: u64,
    /// Judge again the stories whose judgement failed.
    pub retry_failed: bool,
}

/// What a run did, besides writing its files.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub report: LengthReport,
    /// Stories generated / judged by this run (not found in the records).
    pub generated: usize,
    pub judged: usize,
    /// Stories whose standing judgement failed.
    pub failed: usize,
    pub notes: Vec<String>,
}

/// How a run reports as it goes; the command line draws bars, tests stay quiet.
pub trait Progress {
    fn note(&self, text: &str);
    fn begin(&self, what: &str, total: usize);
    fn advance(&self);
    fn end(&self);
}

/// Collects notes and draws nothing.
#[derive(Default)]
pub struct Quiet {
    pub notes: std::sync::Mutex<Vec<String>>,
}

impl Progress for Quiet {
    fn note(&self, text: &str) {
        self.notes.lock().expect("notes lock").push(text.to_string());
    }
    fn begin(&self, _: &str, _: usize) {}
    fn advance(&self) {}
    fn end(&self) {}
}

/// A model label as a file name: characters other than letters, digits, `.`, `-` and `_`
/// become `_` (`run/step-000040` -> `run_step-000040`).
pub fn file_stem(label: &str) -> String {
    label.chars().map(|c| if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect()
}

pub fn run(eval: &LengthEval, client: Arc<JudgeClient>, progress: &dyn Progress) -> Result<Outcome> {
    let notes = Quiet::default();
    let both = Tee(progress, &notes);
    // everything given is checked before the settings are written, so a mistake fixed
    // and run again is not refused as other settings
    let settings = settings(eval, &client)?;
    let keep = |settings: Settings| -> Result<()> {
        std::fs::create_dir_all(&eval.out)
            .with_context(|| format!("cannot create {}", eval.out.display()))?;
        settings.check_or_write(&eval.out)
    };
    let (models, mut stories, outside, samples, generated) = match &eval.source {
        Source::Models { models, prompts, generation } => {
            check_labels(models.iter().map(|m| m.label.as_str()))?;
            if generation.samples == 0 {
                bail!("--samples 0: generate at least one story per prompt");
            }
            let prompts = read_prompts(prompts)?;
            keep(settings)?;
            generate(eval, models, &prompts, generation, &both)?
        }
        Source::Gens(files) => {
            let read = read_gens(eval, files, &both)?;
            keep(settings)?;
            read
        }
    };
    // one order, so sums (and the report) do not depend on the order records were written in
    stories.sort_by_key(StoryRecord::key);
    let (judgements, judged) =
        judging::complete(&eval.out.join(JUDGEMENTS), &stories, &client, eval.retry_failed, &both)?;
    // every story here is in a bucket, so it has a requested length
    let scored: Vec<ScoredStory> = stories
        .iter()
        .filter_map(|s| {
            Some(ScoredStory {
                model: s.system.clone(),
                prompt_uid: s.prompt_uid.clone(),
                requested_words: s.requested_words?,
                words: s.words,
                sq: judgements.get(&s.key()).and_then(|j| j.sq),
            })
        })
        .collect();
    let failed = scored.iter().filter(|s| s.sq.is_none()).count();
    let opts = SummaryOptions {
        judge: client.spec.label(),
        samples,
        resamples: eval.resamples,
        seed: eval.bootstrap_seed,
    };
    let report = summarise(&scored, &models, &eval.buckets, outside.len(), &opts)?;
    write_atomic(&eval.out.join(LENGTH_JSON), serde_json::to_string_pretty(&report)?.as_bytes())?;
    write_atomic(&eval.out.join(LENGTH_MD), render::markdown(&report).as_bytes())?;
    let notes = notes.notes.into_inner().expect("notes lock");
    Ok(Outcome { report, generated, judged, failed, notes })
}

/// Progress to two observers.
struct Tee<'a>(&'a dyn Progress, &'a Quiet);

impl Progress for Tee<'_> {
    fn note(&self, text: &str) {
        self.0.note(text);
        self.1.note(text);
    }
    fn begin(&self, what: &str, total: usize) {
        self.0.begin(what, total)
    }
    fn advance(&self) {
        self.0.advance()
    }
    fn end(&self) {
        self.0.end()
    }
}

fn settings(eval: &LengthEval, client: &JudgeClient) -> Result<Settings> {
    let mut s = Settings {
        v: SETTINGS_VERSION,
        models: None,
        gens: None,
        prompts_sha256: None,
        samples: None,
        thinking: None,
        dtype: None,
        sampling: None,
        sampling_long: None,
        judge: client.spec.label(),
        rubric: client.rubric.id.clone(),
    };
    match &eval.source {
        Source::Models { models, prompts, generation: g } => {
            let bytes = std::fs::read(prompts).with_context(|| {
                format!(
                    "--prompts {}: cannot read it; give a dataset JSONL (uid, prompt, target_word_count) \
                     or a generation file",
                    prompts.display()
                )
            })?;
            s.models = Some(models.clone());
            s.prompts_sha256 = Some(hex(&Sha256::digest(&bytes)));
            s.samples = Some(g.samples);
            s.thinking = Some(g.thinking);
            s.dtype = Some(g.dtype.clone());
            s.sampling = Some(g.sampling.clone());
            s.sampling_long = Some(g.sampling_long.clone());
        }
        Source::Gens(files) => s.gens = Some(files.iter().map(|f| f.display().to_string()).collect()),
    }
    Ok(s)
}

/// (models, stories in a bucket, prompts outside, samples per prompt, stories generated)
type Stories = (Vec<String>, Vec<StoryRecord>, Vec<(String, Option<usize>)>, usize, usize);

fn generate(
    eval: &LengthEval,
    models: &[ModelSpec],
    prompts: &[EvalPrompt],
    generation: &GenerationSettings,
    progress: &dyn Progress,
) -> Result<Stories> {
    let (inside, outside): (Vec<&EvalPrompt>, Vec<&EvalPrompt>) =
        prompts.iter().partition(|p| p.requested_words.and_then(|w| bucket_of(&eval.buckets, w)).is_some());
    let outside: Vec<(String, Option<usize>)> =
        outside.iter().map(|p| (p.uid.clone(), p.requested_words)).collect();
    note_outside(&outside, &eval.buckets, progress);
    let dir = eval.out.join(GENERATIONS);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (mut stories, mut generated) = (Vec::new(), 0);
    for m in models {
        let path = dir.join(format!("{}.jsonl", file_stem(&m.label)));
        let (mine, n) = stories::complete(&path, m, &inside, generation, progress)?;
        stories.extend(mine);
        generated += n;
    }
    let labels = models.iter().map(|m| m.label.clone()).collect();
    Ok((labels, stories, outside, generation.samples, generated))
}

/// Labels must be unique, also as file names.
fn check_labels<'a>(labels: impl Iterator<Item = &'a str>) -> Result<()> {
    let mut seen: HashMap<String, &str> = HashMap::new();
    for l in labels {
        if l.trim().is_empty() {
            bail!("a model label is empty; name every model (--name)");
        }
        if let Some(other) = seen.insert(file_stem(l), l) {
            bail!(
                "two models are labelled `{other}` and `{l}`, which name the same record file; \
                 give each model its own --name"
            );
        }
    }
    Ok(())
}

fn read_gens(eval: &LengthEval, files: &[PathBuf], progress: &dyn Progress) -> Result<Stories> {
    let mut models: Vec<String> = Vec::new();
    let mut stories = Vec::new();
    let mut outside: Vec<(String, Option<usize>)> = Vec::new();
    let mut outside_seen = BTreeSet::new();
    // samples so far per (system, prompt uid)
    let mut count: HashMap<(String, String), usize> = HashMap::new();
    for file in files {
        for g in read_generations(file)? {
            if !models.contains(&g.system) {
                models.push(g.system.clone());
            }
            if g.requested_words.and_then(|w| bucket_of(&eval.buckets, w)).is_none() {
                if outside_seen.insert(g.prompt_uid.clone()) {
                    outside.push((g.prompt_uid.clone(), g.requested_words));
                }
                continue;
            }
            let n = count.entry((g.system.clone(), g.prompt_uid.clone())).or_default();
            let words = count_words(&g.story);
            stories.push(StoryRecord {
                length_ratio: g.requested_words.and_then(|r| length_ratio(words, r)),
                prompt_uid: g.prompt_uid,
                prompt: g.prompt,
                system: g.system,
                story: g.story,
                thinking: g.thinking,
                requested_words: g.requested_words,
                sample: *n,
                words,
                finish: None,
                tokens: 0,
                thinking_tokens: 0,
                forced_think_close: false,
                seed: None,
                seconds: 0.0,
            });
            *n += 1;
        }
    }
    check_labels(models.iter().map(String::as_str))?;
    note_outside(&outside, &eval.buckets, progress);
    let samples = count.values().copied().max().unwrap_or(0);
    Ok((models, stories, outside, samples, 0))
}

fn note_outside(outside: &[(String, Option<usize>)], buckets: &[Bucket], progress: &dyn Progress) {
    if outside.is_empty() {
        return;
    }
    let labels: Vec<&str> = buckets.iter().map(|b| b.label.as_str()).collect();
    let mut named: Vec<String> = outside
        .iter()
        .take(LISTED)
        .map(|(uid, w)| match w {
            Some(w) => format!("{uid} ({w} words)"),
            None => format!("{uid} (no `N words long`)"),
        })
        .collect();
    if outside.len() > LISTED {
        named.push(format!("and {} more", outside.len() - LISTED));
    }
    progress.note(&format!(
        "warning: {} prompt(s) fall in no bucket ({}) and are left out: {}",
        outside.len(),
        labels.join(", "),
        named.join(", ")
    ));
}
