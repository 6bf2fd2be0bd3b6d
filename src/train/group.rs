//! A GRPO group with human-reference injection: G−1 rollouts sampled from the policy for one
//! prompt, plus one reference row whose response is the human story, teacher-forced
//! (RECIPE.md: `<think>\n{reasoning}\n</think>\n{story}` + end token when thinking is on).

use std::sync::atomic::AtomicBool;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::chat::{opens_thinking, split_thinking, Split, THINK_CLOSE};
use crate::generate::{Finish, SamplingParams};
use crate::lm::LanguageModel;
use crate::reward::breakdown::{Candidate, Response};

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
    /// Reference rows only: response tokens dropped to fit the budget (`max_new_tokens`),
    /// the end token included; 0 when the whole reference fitted. Absent in older logs.
    #[serde(default)]
    pub cut_tokens: usize,
    /// The leading response tokens up to and including `</think>` (all of them when the
    /// thinking never closed; 0 without thinking); the rest are story tokens. Absent in
    /// older logs: 0.
    #[serde(default)]
    pub thinking_tokens: usize,
}

impl Rollout {
    /// What the reward scores; `reference` is the prompt's human story, when the data has one
    /// (HRI on or off: it sets the length target of a prompt that asks for no length).
    pub fn candidate(&self, prompt: &str, reference: Option<&str>) -> Candidate {
        Candidate {
            prompt: prompt.to_string(),
            story: self.story.clone(),
            response: Some(Response {
                tokens: self.response_ids.len(),
                thinking_tokens: self.thinking_tokens,
                ended: self.ended,
                is_reference: self.is_reference,
            }),
            reference: reference.map(str::to_string),
        }
    }
}

/// The leading tokens of `ids` up to and including `</think>`, given how the decoded text
/// split: all of them when the thinking never closed, 0 when there was none.
fn thinking_tokens(lm: &LanguageModel, ids: &[u32], split: &Split) -> Result<usize> {
    if split.thinking.is_none() {
        return Ok(0);
    }
    if !split.thinking_closed {
        return Ok(ids.len());
    }
    if let Some(at) = lm.think.and_then(|t| ids.iter().position(|&id| id == t.close)) {
        return Ok(at + 1);
    }
    // `</think>` spelt by several tokens: the shortest prefix whose text holds it (the text
    // of a longer prefix still holds it, so bisect)
    let (mut lo, mut hi) = (0, ids.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if lm.tokenizer.decode(&ids[..mid], false)?.contains(THINK_CLOSE) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
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
    let outputs =
        lm.generate(&prompt_ids, n_policy, params, &mut |_| crate::run::work::token_sampled(), cancel)?;
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
            thinking_tokens: thinking_tokens(lm, &response_ids, &split)?,
            response_ids,
            thinking: split.thinking,
            story: split.story,
            ended,
            cut_tokens: 0,
        });
    }
    if let Some((story, reasoning)) = spec.reference {
        let reference = Reference { story, reasoning, thinking: spec.thinking };
        rows.push(reference_row(lm, spec.index, &rendered, prompt_ids, &reference, params.max_new_tokens)?);
    }
    Ok(rows)
}

/// A human reference to teacher-force.
pub struct Reference<'a> {
    pub story: &'a str,
    pub reasoning: Option<&'a str>,
    /// The chat template's thinking mode (the response opens with a think block).
    pub thinking: bool,
}

/// The reference row after `prompt` (as rendered), its response cut to `budget` tokens as a
/// rollout would be (RECIPE.md: "truncated ... to the response budget like any rollout"): a
/// response that fits is kept whole with its end token (`ended`); a longer one keeps its
/// first `budget` ids, with no end token, and reads as truncated (`ended` false,
/// `cut_tokens` the ids dropped).
///
/// What the reward stack judges for a cut reference: the kept tokens decoded and split as a
/// policy row's are (thinking stripped), as the release judges the truncated response, so
/// the judge, the length and repetition rules see exactly the text that is trained on. A
/// cut inside the think block leaves no story (the blank penalty then applies). The
/// reference still gets no overlong penalty (`Rollout::candidate`): its length is the data's,
/// not a choice the policy made.
pub fn reference_row(
    lm: &LanguageModel,
    group: usize,
    rendered: &str,
    prompt_ids: Vec<u32>,
    reference: &Reference,
    budget: usize,
) -> Result<Rollout> {
    let Reference { story, reasoning, thinking } = *reference;
    let mut response_ids = lm.response_ids(rendered, thinking, reasoning, story)?;
    if response_ids.len() <= budget {
        let thinking = thinking.then(|| reasoning.unwrap_or("").to_string());
        let split = Split { thinking: thinking.clone(), story: story.to_string(), thinking_closed: true };
        return Ok(Rollout {
            group,
            is_reference: true,
            prompt_ids,
            thinking_tokens: thinking_tokens(lm, &response_ids, &split)?,
            response_ids,
            thinking,
            story: story.to_string(),
            ended: true,
            cut_tokens: 0,
        });
    }
    let cut_tokens = response_ids.len() - budget;
    response_ids.truncate(budget);
    let text = lm.tokenizer.decode(&response_ids, true)?;
    let split = split_thinking(&text, opens_thinking(rendered));
    Ok(Rollout {
        group,
        is_reference: true,
        prompt_ids,
        thinking_tokens: thinking_tokens(lm, &response_ids, &split)?,
        response_ids,
        thinking: split.thinking,
        story: split.story,
        ended: false,
        cut_tokens,
    })
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};

    use super::*;
    use crate::model::LoadOptions;

    fn tiny() -> LanguageModel {
        LanguageModel::open("tiny", &LoadOptions::new(DType::F32, Device::Cpu)).unwrap()
    }

    /// The reference row of `story` with thinking on, under `budget` response tokens.
    fn row(lm: &LanguageModel, story: &str, budget: usize) -> Rollout {
        let (rendered, prompt_ids) =
            lm.prompt("Write a story. The story should be 200 words long.", false, true).unwrap();
        let reference = Reference { story, reasoning: Some("Plan: a lamp."), thinking: true };
        reference_row(lm, 0, &rendered, prompt_ids, &reference, budget).unwrap()
    }

    #[test]
    fn a_reference_within_the_budget_is_whole_with_its_end_token() {
        let lm = tiny();
        let story = "The lamp went out at dusk. Mara lit it again.";
        let full = row(&lm, story, usize::MAX);
        let n = full.response_ids.len();
        let fits = row(&lm, story, n);
        assert_eq!(fits.response_ids, full.response_ids);
        assert!(lm.stop_ids.contains(fits.response_ids.last().unwrap()), "no end token");
        assert!(fits.ended && fits.cut_tokens == 0);
        assert_eq!((fits.story.as_str(), fits.thinking.as_deref()), (story, Some("Plan: a lamp.")));
        // the thinking tokens end with `</think>`; the story tokens follow
        let close = lm.think.expect("the tiny model has think tokens").close;
        assert_eq!(fits.response_ids[fits.thinking_tokens - 1], close);
        assert!(!fits.response_ids[fits.thinking_tokens..].contains(&close));
    }

    #[test]
    fn a_reference_over_the_budget_is_cut_to_exactly_the_budget_without_an_end_token() {
        let lm = tiny();
        let story = "The lamp went out at dusk. Mara climbed the stairs and lit it again. ".repeat(20);
        let full = row(&lm, &story, usize::MAX);
        let n = full.response_ids.len();
        for budget in [n - 1, n / 2] {
            let cut = row(&lm, &story, budget);
            assert_eq!(cut.response_ids.len(), budget);
            assert_eq!(cut.response_ids[..], full.response_ids[..budget], "not a prefix on token boundaries");
            assert!(!cut.response_ids.iter().any(|id| lm.stop_ids.contains(id)), "an end token was kept");
            assert!(!cut.ended);
            assert_eq!(cut.cut_tokens, n - budget);
            assert_eq!(cut.thinking_tokens, full.thinking_tokens, "cut in the story: the same think block");
            // the story judged is what the kept tokens decode to, thinking stripped
            assert_eq!(cut.thinking.as_deref(), Some("Plan: a lamp."));
            assert!(story.trim().starts_with(&cut.story) && !cut.story.is_empty(), "{:?}", cut.story);
        }
        assert!(row(&lm, &story, n / 2).story.len() < story.trim().len());
        // only the end token dropped: the whole story, but it reads as truncated
        assert_eq!(row(&lm, &story, n - 1).story, story.trim());
    }
}
