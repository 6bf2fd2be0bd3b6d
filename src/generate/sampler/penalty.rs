//! Repetition and presence penalties, applied to the tokens a row has seen.

use super::SamplingParams;

/// The distinct tokens a row has seen, in the order first seen. The penalties touch these
/// ids only (a story's few hundred distinct tokens), not the whole vocabulary per step.
#[derive(Debug, Clone)]
pub struct Seen {
    /// mask[id]: whether id is in `ids` (one entry per vocabulary id)
    mask: Vec<bool>,
    ids: Vec<u32>,
}

impl Seen {
    pub fn new(vocab: usize) -> Self {
        Self { mask: vec![false; vocab], ids: Vec::new() }
    }

    /// Adds `id` (< vocab) unless it is already there.
    pub fn insert(&mut self, id: u32) {
        let seen = &mut self.mask[id as usize];
        if !*seen {
            *seen = true;
            self.ids.push(id);
        }
    }

    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
}

/// Applies the penalties in place. `context` is every token the row has seen (prompt and
/// generated, for the repetition penalty); `generated` only what it produced.
pub fn apply_penalties(logits: &mut [f32], params: &SamplingParams, context: &Seen, generated: &Seen) {
    if params.repetition_penalty != 1.0 {
        let p = params.repetition_penalty;
        for &id in context.ids() {
            let l = &mut logits[id as usize];
            *l = if *l > 0.0 { *l / p } else { *l * p };
        }
    }
    if params.presence_penalty != 0.0 {
        for &id in generated.ids() {
            logits[id as usize] -= params.presence_penalty;
        }
    }
}

/// Whether the penalties change any logit.
pub fn penalises(params: &SamplingParams) -> bool {
    params.repetition_penalty != 1.0 || params.presence_penalty != 0.0
}

#[cfg(test)]
mod tests {
    use super::super::tests::params;
    use super::*;

    fn seen(vocab: usize, ids: &[u32]) -> Seen {
        let mut s = Seen::new(vocab);
        for &id in ids {
            s.insert(id);
        }
        s
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative_logits() {
        let mut l = vec![2.0, -2.0, 2.0, -2.0];
        let p = SamplingParams { repetition_penalty: 2.0, ..params() };
        // a token seen twice is penalised once
        apply_penalties(&mut l, &p, &seen(4, &[1, 0, 1]), &seen(4, &[]));
        assert_eq!(l, vec![1.0, -4.0, 2.0, -2.0]);
    }

    #[test]
    fn presence_penalty_subtracts_once_per_generated_token() {
        let mut l = vec![2.0, -2.0, 2.0];
        let p = SamplingParams { presence_penalty: 0.5, ..params() };
        // context-only tokens are not penalised by presence
        apply_penalties(&mut l, &p, &seen(3, &[0, 1, 2]), &seen(3, &[2, 0, 2]));
        assert_eq!(l, vec![1.5, -2.0, 1.5]);
    }

    #[test]
    fn seen_keeps_first_sightings_in_order() {
        let s = seen(10, &[3, 1, 3, 9, 1]);
        assert_eq!(s.ids(), &[3, 1, 9]);
        assert!(!penalises(&params()));
        assert!(penalises(&SamplingParams::training()));
    }
}
