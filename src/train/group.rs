//! A GRPO group with human-reference injection: G−1 rollouts sampled from the policy for one
//! prompt, plus one reference row whose response is the human story, teacher-forced
//! (RECIPE.md: `<think>\n{reasoning}\n</think>\n{story}` + end token when thinking is on).

use std::sync::atomic::AtomicBool;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::chat::{opens_thinking, split_thinking};
use crate::generate::{Finish, SamplingParams};
use crate::lm::LanguageModel;
use crate::reward::breakdown::Candidate;

/// One row of a group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rollout {
    pub group: usize,
    pub is_reference: bool,
    pub prompt_ids: Vec<u32>,
    /// Response token ids (the end token included when one closed the response).
    pub response_ids: Vec<u32>,
    pub thinking: Option<String>,
    pub story: String,
    /// Whether an end token closed the response (false: cut off at max_new_tokens).
    pub ended: bool,
}

impl Rollout {
    pub fn candidate(&self, prompt: &str) -> Candidate {
        Candidate {
            prompt: prompt.to_string(),
            story: self.story.clone(),
            response: if self.is_reference { None } else { Some((self.response_ids.len(), self.ended)) },
        }
    }
}

/// What a group is made from.
pub struct GroupSpec<'a> {
    pub index: usize,
    pub prompt: &'a str,
    pub reference: Option<(&'a str, Option<&'a str>)>,
    /// Rows in the group, the reference included when there is one.
    pub size: usize,
    pub thinking: bool,
}

/// Samples the policy rows and builds the reference row.
pub fn build_group(
    lm: &LanguageModel,
    spec: &GroupSpec,
    params: &SamplingParams,
    cancel: &AtomicBool,
) -> Result<Vec<Rollout>> {
    let (rendered, prompt_ids) = lm.prompt(spec.prompt, false, spec.thinking)?;
    let opened = opens_thinking(&rendered);
    let n_policy = if spec.reference.is_some() { spec.size.saturating_sub(1).max(1) } else { spec.size };
    let outputs = lm.generate(&prompt_ids, n_policy, params, &mut |_| {}, cancel)?;
    let mut rows = Vec::with_capacity(spec.size);
    for out in outputs {
        let text = lm.tokenizer.decode(&out.tokens, true)?;
        let split = split_thinking(&text, opened);
        let ended = out.finish == Finish::Stop;
        let mut response_ids = out.tokens.clone();
        // the end token is part of what the policy chose; it gets its log-prob too
        response_ids.extend(out.stop_token);
        rows.push(Rollout {
            group: spec.index,
            is_reference: false,
            prompt_ids: prompt_ids.clone(),
            response_ids,
            thinking: split.thinking,
            story: split.story,
            ended,
        });
    }
    if let Some((story, reasoning)) = spec.reference {
        let response_ids = lm.response_ids(&rendered, spec.thinking, reasoning, story)?;
        rows.push(Rollout {
            group: spec.index,
            is_reference: true,
            prompt_ids,
            response_ids,
            thinking: spec.thinking.then(|| reasoning.unwrap_or("").to_string()),
            story: story.to_string(),
            ended: true,
        });
    }
    Ok(rows)
}
