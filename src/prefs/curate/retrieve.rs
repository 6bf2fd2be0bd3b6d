//! The retrieval step: for a prompt, the human stories of the dataset whose prompts read most
//! like it, by TF-IDF cosine over the prompts' words (the length sentence removed, so "2050
//! words long" matches nothing). Small and exact: a dataset is a few thousand prompts, and
//! every prompt is scored against every other.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::generate::length::strip_length_sentence;
use crate::text::python::WORD;

/// One retrieved story: its dataset row (by uid) and the prompts' cosine similarity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retrieved {
    pub uid: String,
    /// Cosine of the two prompts' TF-IDF vectors, 0..=1.
    pub similarity: f64,
}

/// Unit-length TF-IDF vectors of a set of prompts; the index answers "which rows are nearest".
pub struct PromptIndex {
    /// Per row: (term id, weight), sorted by term id, L2-normalised.
    vectors: Vec<Vec<(usize, f64)>>,
}

static WORDS: std::sync::LazyLock<regex::Regex> =
    std::sync::LazyLock::new(|| regex::Regex::new(&format!("{WORD}+")).expect("valid regex"));

fn terms(prompt: &str) -> Vec<String> {
    let text = strip_length_sentence(prompt).to_lowercase();
    WORDS.find_iter(&text).map(|m| m.as_str().to_string()).collect()
}

impl PromptIndex {
    /// Sublinear term frequency (1 + ln tf) times smoothed inverse document frequency
    /// (ln((1 + N) / (1 + df)) + 1, scikit-learn's default): words every prompt shares
    /// ("write", "story", "titled", "premise") weigh least.
    pub fn new(prompts: &[&str]) -> Self {
        let mut ids: HashMap<String, usize> = HashMap::new();
        let counted: Vec<HashMap<usize, f64>> = prompts
            .iter()
            .map(|p| {
                let mut tf = HashMap::new();
                for t in terms(p) {
                    let next = ids.len();
                    *tf.entry(*ids.entry(t).or_insert(next)).or_insert(0.0) += 1.0;
                }
                tf
            })
            .collect();
        let mut df = vec![0.0f64; ids.len()];
        for tf in &counted {
            for &t in tf.keys() {
                df[t] += 1.0;
            }
        }
        let n = prompts.len() as f64;
        let vectors = counted
            .into_iter()
            .map(|tf| {
                let mut v: Vec<(usize, f64)> = tf
                    .into_iter()
                    .map(|(t, c)| (t, (1.0 + f64::ln(c)) * (((1.0 + n) / (1.0 + df[t])).ln() + 1.0)))
                    .collect();
                v.sort_by_key(|&(t, _)| t);
                let norm = v.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
                if norm > 0.0 {
                    v.iter_mut().for_each(|(_, w)| *w /= norm);
                }
                v
            })
            .collect();
        Self { vectors }
    }

    /// Cosine similarity of rows `a` and `b` (0 when either prompt has no words).
    pub fn similarity(&self, a: usize, b: usize) -> f64 {
        let (x, y) = (&self.vectors[a], &self.vectors[b]);
        let (mut i, mut j, mut dot) = (0, 0, 0.0);
        while i < x.len() && j < y.len() {
            match x[i].0.cmp(&y[j].0) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    dot += x[i].1 * y[j].1;
                    i += 1;
                    j += 1;
                }
            }
        }
        dot
    }

    /// The `k` rows among `pool` most similar to row `of`, most similar first (ties in row
    /// order). `of` itself is in the pool when it has a story: its own human story is the
    /// nearest there is.
    pub fn nearest(&self, of: usize, pool: &[usize], k: usize) -> Vec<(usize, f64)> {
        let mut scored: Vec<(usize, f64)> = pool.iter().map(|&r| (r, self.similarity(of, r))).collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(k);
        scored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_matches_a_hand_computation_and_ranks_shared_rare_words_first() {
        // Three prompts, N = 3. Terms (length sentence removed, lower-cased):
        //   0: a lighthouse keeper           1: a lighthouse storm      2: a baker
        // idf: a = ln(4/4)+1 = 1; lighthouse = ln(4/3)+1; keeper, storm, baker = ln(4/2)+1.
        let idx = PromptIndex::new(&[
            "A lighthouse keeper. The story should be 900 words long.",
            "A lighthouse storm. The story should be 900 words long.",
            "A baker.",
        ]);
        let (one, lh, rare) = (1.0f64, (4.0f64 / 3.0).ln() + 1.0, 2.0f64.ln() + 1.0);
        let norm01 = one * one + lh * lh + rare * rare;
        let expected = (one * one + lh * lh) / norm01;
        // f64 sums of three products: agreement to 1e-12 is rounding, not approximation
        assert!((idx.similarity(0, 1) - expected).abs() < 1e-12, "{}", idx.similarity(0, 1));
        let to_baker = one / (norm01.sqrt() * (one * one + rare * rare).sqrt());
        assert!((idx.similarity(0, 2) - to_baker).abs() < 1e-12);
        assert!((idx.similarity(2, 2) - 1.0).abs() < 1e-12);
        let near = idx.nearest(0, &[0, 1, 2], 2);
        assert_eq!(near.iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(idx.nearest(2, &[1, 2], 5).len(), 2);
    }
}
