//! Generation and judging off the UI thread. Each job runs on its own thread and reports
//! back as `Action::Playground(Msg::..)` on the app's channel; stop sets the pane's cancel
//! flag, which the generator reads between tokens.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};

use super::msg::{Msg, Shared};
use super::state::Choice;
use crate::device::{parse_dtype, preferred_device};
use crate::generate::{GenerationRecord, SamplingParams};
use crate::lm::LanguageModel;
use crate::model::LoadOptions;
use crate::reward::breakdown::{score_batch, Candidate, Response};
use crate::tokenize::TokenStream;
use crate::train::checkpoint;
use crate::train::config::TrainConfig;
use crate::train::trained::Weights;
use crate::tui::Action;

/// What one generation needs, fixed when it starts.
pub struct Job {
    pub pane: usize,
    pub generation: u64,
    pub choice: Choice,
    /// The user message (instruction and length sentence).
    pub text: String,
    pub thinking: bool,
    pub target_words: usize,
    pub params: SamplingParams,
}

/// Each pane's last model, by what was loaded: opening a real model takes seconds, so it is
/// kept, but only one per pane, so cycling through checkpoints holds at most two in memory.
type Models = Arc<Mutex<[Option<(String, Arc<LanguageModel>)>; 2]>>;

/// The playground's side of the app that is not state: the channel back, the cancel flags
/// and the models opened.
pub struct Workers {
    pub run_dir: PathBuf,
    tx: Option<Sender<Action>>,
    cancel: [Arc<AtomicBool>; 2],
    models: Models,
}

impl Workers {
    pub fn new(run_dir: &Path) -> Self {
        Self { run_dir: run_dir.to_path_buf(), tx: None, cancel: Default::default(), models: Arc::default() }
    }

    pub fn connect(&mut self, tx: Sender<Action>) {
        self.tx = Some(tx);
    }

    fn sender(&self) -> Result<Sender<Action>> {
        self.tx.clone().ok_or_else(|| anyhow!("the playground has no channel to report on"))
    }

    /// The run's config.toml, or the defaults (tiny model, offline judge) when it has none.
    pub fn config(&self) -> Result<TrainConfig> {
        let path = crate::run::RunDir::at(&self.run_dir).config();
        match std::fs::read_to_string(&path) {
            Ok(text) => TrainConfig::parse(&text, &path.display().to_string(), &[]),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TrainConfig::default()),
            Err(e) => Err(anyhow!("cannot read {}: {e}", path.display())),
        }
    }

    /// Latest, base, then every complete checkpoint of the run, oldest first.
    pub fn choices(&self) -> Vec<Choice> {
        let mut steps: Vec<PathBuf> = std::fs::read_dir(crate::run::RunDir::at(&self.run_dir).checkpoints())
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| {
                        crate::run::RunDir::checkpoint_step(p).is_some() && p.join(checkpoint::STATE).exists()
                    })
                    .collect()
            })
            .unwrap_or_default();
        steps.sort();
        let mut out = vec![Choice::Latest, Choice::Base];
        out.extend(steps.into_iter().map(Choice::Checkpoint));
        out
    }

    pub fn stop(&self, pane: usize) {
        self.cancel[pane].store(true, Ordering::Relaxed);
    }

    /// Starts a generation; its tokens, end or failure come back as messages.
    pub fn generate(&self, job: Job) -> Result<()> {
        let tx = self.sender()?;
        let cancel = self.cancel[job.pane].clone();
        cancel.store(false, Ordering::Relaxed);
        let models = self.models.clone();
        let cfg = self.config()?;
        let run_dir = self.run_dir.clone();
        std::thread::spawn(move || {
            let (pane, generation) = (job.pane, job.generation);
            let send = |m: Msg| tx.send(Action::Playground(m)).is_ok();
            if let Err(e) = stream(&job, &cfg, &run_dir, &models, &cancel, &send) {
                send(Msg::Failed { pane, generation, error: format!("{e:#}") });
            }
        });
        Ok(())
    }

    /// Judges a finished story with the run's judge and rubric; the breakdown comes back.
    pub fn judge(
        &self,
        pane: usize,
        generation: u64,
        record: Arc<GenerationRecord>,
        user_text: String,
    ) -> Result<()> {
        let tx = self.sender()?;
        let cfg = self.config()?;
        let cache = crate::run::RunDir::at(&self.run_dir).judge_cache();
        std::thread::spawn(move || {
            let msg = match judge(&cfg, cache, &record, user_text) {
                Ok(b) => Msg::Judged { pane, generation, breakdown: Shared(Arc::new(b)) },
                Err(e) => Msg::Failed { pane, generation, error: format!("judge: {e:#}") },
            };
            let _ = tx.send(Action::Playground(msg));
        });
        Ok(())
    }
}

/// Opens (or reuses) the model for a choice; returns it and what was loaded.
fn open(
    pane: usize,
    choice: &Choice,
    cfg: &TrainConfig,
    run_dir: &Path,
    models: &Models,
) -> Result<(Arc<LanguageModel>, String)> {
    let dir = match choice {
        Choice::Base => None,
        Choice::Checkpoint(dir) => Some(dir.clone()),
        Choice::Latest => Some(checkpoint::latest(run_dir).ok_or_else(|| {
            anyhow!("{}: the run has no checkpoint yet; choose the base model (m)", run_dir.display())
        })?),
    };
    let label = match &dir {
        Some(d) => d.strip_prefix(run_dir).unwrap_or(d).display().to_string(),
        None => format!("base {}", cfg.model.path),
    };
    {
        let mut kept = models.lock().expect("model cache lock");
        let found = kept.iter().flatten().find(|(l, _)| *l == label).map(|(_, lm)| lm.clone());
        if let Some(lm) = found {
            kept[pane] = Some((label.clone(), lm.clone()));
            return Ok((lm, label));
        }
        // the pane's previous model is let go before the next one is read
        kept[pane] = None;
    }
    let dtype = parse_dtype(&cfg.model.dtype).context("model.dtype in the run's config.toml")?;
    let opts = LoadOptions::new(dtype, preferred_device());
    let weights = match &dir {
        None => Weights::base(&cfg.model.path),
        Some(d) => Weights::checkpoint(&cfg.model.path, d)?,
    };
    let lm = Arc::new(weights.open(&opts)?);
    models.lock().expect("model cache lock")[pane] = Some((label.clone(), lm.clone()));
    Ok((lm, label))
}

fn stream(
    job: &Job,
    cfg: &TrainConfig,
    run_dir: &Path,
    models: &Models,
    cancel: &AtomicBool,
    send: &dyn Fn(Msg) -> bool,
) -> Result<()> {
    let (pane, generation) = (job.pane, job.generation);
    let (lm, label) = open(pane, &job.choice, cfg, run_dir, models)?;
    let (prompt, ids) = lm.prompt(&job.text, false, job.thinking)?;
    send(Msg::Loaded { pane, generation, label, prompt: prompt.clone() });
    let mut streamer = TokenStream::new(&lm.tokenizer);
    let started = Instant::now();
    let outputs = lm.generate(
        &ids,
        1,
        &job.params,
        &mut |ev| {
            let piece = streamer.push(ev.id).ok().flatten().unwrap_or_default();
            // a closed channel means the app is gone: stop generating
            if !send(Msg::Piece { pane, generation, text: piece }) {
                cancel.store(true, Ordering::Relaxed);
            }
        },
        cancel,
    )?;
    let secs = started.elapsed().as_secs_f64();
    let record = GenerationRecord::new(&lm, &prompt, &ids, &outputs[0], Some(job.target_words), secs)?;
    send(Msg::Finished { pane, generation, record: Shared(Arc::new(record)) });
    Ok(())
}

fn judge(
    cfg: &TrainConfig,
    cache: PathBuf,
    record: &GenerationRecord,
    user_text: String,
) -> Result<crate::reward::Breakdown> {
    let settings = cfg.judge.clone().with_default_cache(cache);
    let client = Arc::new(cfg.reward.judge_client(cfg.reward.rubric()?, settings)?);
    let candidate = Candidate {
        prompt: user_text,
        story: record.story.clone(),
        // scored by the composite, which reads only the length and the end
        response: Some(Response {
            tokens: record.token_ids.len(),
            thinking_tokens: record.thinking_tokens,
            ended: record.finish == crate::generate::Finish::Stop,
            is_reference: false,
        }),
        reference: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut out = runtime.block_on(score_batch(&client, &[candidate], cfg.reward.weights));
    out.pop().ok_or_else(|| anyhow!("the judge returned nothing"))
}
