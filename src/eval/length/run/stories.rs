//! Generating the stories an evaluation still lacks: per model, per prompt, the missing
//! samples in one batch, each sample on its own random stream of the prompt's seed, so a
//! story comes out the same whether it is generated in a full run or a resumed one.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::prompts::EvalPrompt;
use super::records::StoryRecord;
use super::settings::ModelSpec;
use super::Progress;
use crate::durable::records::RecordLog;
use crate::generate::{generate_streams, GenerationRecord, Request, SamplingParams};
use crate::model::LoadOptions;

/// How every model generates.
#[derive(Debug, Clone)]
pub struct GenerationSettings {
    pub samples: usize,
    pub thinking: bool,
    pub dtype: String,
    pub device: String,
    /// For requests under 8000 words, and for 8000 and more (a longer token budget).
    pub sampling: SamplingParams,
    pub sampling_long: SamplingParams,
}

impl GenerationSettings {
    fn params(&self, requested_words: Option<usize>) -> &SamplingParams {
        if requested_words.is_some_and(|w| w >= 8000) {
            &self.sampling_long
        } else {
            &self.sampling
        }
    }
}

/// The seed of one prompt's samples: the run's seed mixed with the prompt uid, so prompts
/// do not share random draws and a prompt's stories do not depend on which others run.
pub fn prompt_seed(seed: u64, uid: &str) -> u64 {
    let d = Sha256::digest(format!("{seed}:{uid}").as_bytes());
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

/// The stories of `model` for `prompts`: those already in `path`, and the missing ones
/// generated and appended (fsynced) one by one. Returns them with the number generated.
pub fn complete(
    path: &Path,
    model: &ModelSpec,
    prompts: &[&EvalPrompt],
    settings: &GenerationSettings,
    progress: &dyn Progress,
) -> Result<(Vec<StoryRecord>, usize)> {
    let (mut log, existing, note) = RecordLog::<StoryRecord>::open(path, "eval length")?;
    if let Some(n) = note {
        progress.note(&n);
    }
    let wanted: HashSet<(&str, usize)> =
        prompts.iter().flat_map(|p| (0..settings.samples).map(move |s| (p.uid.as_str(), s))).collect();
    let mut stories: Vec<StoryRecord> = Vec::new();
    let mut have: HashSet<(String, usize)> = HashSet::new();
    for r in existing {
        if r.system == model.label
            && wanted.contains(&(r.prompt_uid.as_str(), r.sample))
            && have.insert((r.prompt_uid.clone(), r.sample))
        {
            stories.push(r);
        }
    }
    let todo: Vec<(&EvalPrompt, Vec<usize>)> = prompts
        .iter()
        .map(|p| {
            (*p, (0..settings.samples).filter(|&s| !have.contains(&(p.uid.clone(), s))).collect::<Vec<_>>())
        })
        .filter(|(_, missing)| !missing.is_empty())
        .collect();
    let missing: usize = todo.iter().map(|(_, m)| m.len()).sum();
    if missing == 0 {
        return Ok((stories, 0));
    }
    let opts = LoadOptions::new(
        crate::device::parse_dtype(&settings.dtype)?,
        crate::device::parse_device(&settings.device)?,
    );
    let lm = super::models::open(model, opts)?;
    progress.begin(&format!("generating {}", model.label), missing);
    let never = AtomicBool::new(false);
    for (prompt, samples) in todo {
        let (rendered, ids) = lm.prompt(&prompt.prompt, false, settings.thinking)?;
        let mut params = settings.params(prompt.requested_words).clone();
        params.seed = prompt_seed(params.seed, &prompt.uid);
        let req = Request::group(ids.clone(), samples.len(), params.clone(), lm.stop_ids.clone(), lm.think);
        let streams: Vec<u64> = samples.iter().map(|&s| s as u64).collect();
        let started = Instant::now();
        let outputs = generate_streams(&lm.model, &req, &streams, &mut |_| {}, &never)
            .with_context(|| format!("{}: generating for prompt {}", model.label, prompt.uid))?;
        let secs = started.elapsed().as_secs_f64();
        for (&sample, out) in samples.iter().zip(&outputs) {
            let g = GenerationRecord::new(&lm, &rendered, &ids, out, prompt.requested_words, secs)?;
            let record = StoryRecord {
                prompt_uid: prompt.uid.clone(),
                prompt: prompt.prompt.clone(),
                system: model.label.clone(),
                story: g.story,
                thinking: g.thinking,
                requested_words: prompt.requested_words,
                sample,
                words: g.words,
                length_ratio: g.length_ratio,
                finish: Some(g.finish),
                tokens: g.token_ids.len(),
                thinking_tokens: g.thinking_tokens,
                forced_think_close: g.forced_think_close,
                seed: Some(params.seed),
                seconds: secs,
            };
            log.append(&record)?;
            stories.push(record);
            progress.advance();
        }
    }
    progress.end();
    Ok((stories, missing))
}
