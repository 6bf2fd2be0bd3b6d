//! The rule components of the reward, exactly as RECIPE.md defines them.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::generate::length::count_words;

/// Word tokens for repetition: runs of word characters, or single punctuation marks.
static TOKEN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\w+|[^\w\s]").expect("valid regex"));

/// Positions looked back for local repetition.
pub const LOCAL_WINDOW: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Repetition {
    /// Occurrences of a 4-gram after its first, over all 4-grams.
    pub ngram_ratio: f64,
    /// 4-grams that already occurred within the previous 64 positions, over all 4-grams.
    pub local_ratio: f64,
    /// Repeats of an earlier non-empty line, over non-empty lines.
    pub line_ratio: f64,
    /// min(1.5, 0.8·(0.7·max(0, ngram_ratio − 0.08) + 0.3·local_ratio) + 0.4·line_ratio)
    pub penalty: f64,
}

pub fn self_repetition(story: &str) -> Repetition {
    let tokens: Vec<String> = TOKEN.find_iter(story).map(|m| m.as_str().to_lowercase()).collect();
    let grams: Vec<&[String]> = tokens.windows(4).collect();
    let (mut repeated, mut local) = (0usize, 0usize);
    let mut last_seen: HashMap<&[String], usize> = HashMap::new();
    for (i, g) in grams.iter().enumerate() {
        if let Some(&j) = last_seen.get(g) {
            repeated += 1;
            if i - j <= LOCAL_WINDOW {
                local += 1;
            }
        }
        last_seen.insert(g, i);
    }
    let n = grams.len().max(1) as f64;
    let (ngram_ratio, local_ratio) =
        if grams.is_empty() { (0.0, 0.0) } else { (repeated as f64 / n, local as f64 / n) };
    let lines: Vec<&str> = story.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let mut seen = std::collections::HashSet::new();
    let dup = lines.iter().filter(|l| !seen.insert(**l)).count();
    let line_ratio = if lines.is_empty() { 0.0 } else { dup as f64 / lines.len() as f64 };
    let penalty =
        (0.8 * (0.7 * (ngram_ratio - 0.08).max(0.0) + 0.3 * local_ratio) + 0.4 * line_ratio).min(1.5);
    Repetition { ngram_ratio, local_ratio, line_ratio, penalty }
}

/// The target the length rules use: the prompt's `N words long`, at least 150.
pub fn length_target(requested_words: usize) -> usize {
    requested_words.max(150)
}

/// Words short of the target still counted as on length: clamp(0.15 T, 350, 1000).
pub fn lower_tolerance(target: usize) -> f64 {
    (0.15 * target as f64).clamp(350.0, 1000.0)
}

/// Words over the target still counted as on length: clamp(0.25 T, 600, 1500).
pub fn upper_tolerance(target: usize) -> f64 {
    (0.25 * target as f64).clamp(600.0, 1500.0)
}

/// The words inside which `length_penalty` is 0: [T − lower, T + upper], T the target.
pub fn length_band(requested_words: usize) -> (f64, f64) {
    let t = length_target(requested_words);
    (t as f64 - lower_tolerance(t), t as f64 + upper_tolerance(t))
}

/// 0 inside [T − lower, T + upper]; below, 1 − wc / (T − lower) (at most 1); above,
/// min(1, wc / (T + upper) − 1).
pub fn length_penalty(words: usize, requested_words: usize) -> f64 {
    let (lo, hi) = length_band(requested_words);
    let wc = words as f64;
    if wc < lo {
        (1.0 - wc / lo).min(1.0)
    } else if wc > hi {
        (wc / hi - 1.0).min(1.0)
    } else {
        0.0
    }
}

/// 1 − length_penalty: a reward in [0, 1] for hitting the requested length.
pub fn length_reward(words: usize, requested_words: usize) -> f64 {
    1.0 - length_penalty(words, requested_words)
}

/// 1 when the story is under 150 words or under 10% visible (non-space) characters.
pub fn blank_penalty(story: &str) -> f64 {
    let chars = story.chars().count();
    let visible = story.chars().filter(|c| !c.is_whitespace()).count();
    if count_words(story) < 150 || chars == 0 || (visible as f64) < 0.1 * chars as f64 {
        1.0
    } else {
        0.0
    }
}

/// DAPO's soft overlong punishment: a response without an end token that runs into the
/// last `cache` tokens of the `max` budget gets −(len − (max − cache)) / cache, down to −1.
pub fn overlong_penalty(response_tokens: usize, ended: bool, max_tokens: usize, cache: usize) -> f64 {
    let start = max_tokens.saturating_sub(cache);
    if ended || response_tokens <= start || cache == 0 {
        return 0.0;
    }
    -((response_tokens - start) as f64 / cache as f64).min(1.0)
}
