//! The rule components of the reward, equal to the POLARIS release's on any text (RECIPE.md,
//! "What the release's code does"): Python's character classes and line breaks (crate::text),
//! HTML unescaping before words and visible characters are counted, the local window's reach,
//! tolerances truncated to whole words, and the target of a prompt without a length sentence.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::generate::length::{count_words, requested_count};
use crate::text::html::unescape;
use crate::text::python::{is_space, splitlines, strip, NOT_SPACE, WORD};

/// Tokens for repetition: runs of word characters, or any single other visible character.
static TOKEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("{WORD}+|{NOT_SPACE}")).expect("valid regex"));

/// A 4-gram is a local repeat when it started at most this many positions earlier, minus one:
/// the release drops the entry `LOCAL_WINDOW` back before it looks (reach 1..=63).
pub const LOCAL_WINDOW: usize = 64;

/// Fewer words than this is blank, and the length target is never below it.
pub const MIN_WORDS: usize = 150;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Repetition {
    /// Occurrences of a 4-gram after its first, over all 4-grams.
    pub ngram_ratio: f64,
    /// 4-grams that also started 1..=63 positions earlier, over all 4-grams.
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
            if i - j < LOCAL_WINDOW {
                local += 1;
            }
        }
        last_seen.insert(g, i);
    }
    let n = grams.len().max(1) as f64;
    let (ngram_ratio, local_ratio) =
        if grams.is_empty() { (0.0, 0.0) } else { (repeated as f64 / n, local as f64 / n) };
    let lines: Vec<&str> = splitlines(story).into_iter().map(strip).filter(|l| !l.is_empty()).collect();
    let mut seen = std::collections::HashSet::new();
    let dup = lines.iter().filter(|l| !seen.insert(**l)).count();
    let line_ratio = if lines.is_empty() { 0.0 } else { dup as f64 / lines.len() as f64 };
    let penalty =
        (0.8 * (0.7 * (ngram_ratio - 0.08).max(0.0) + 0.3 * local_ratio) + 0.4 * line_ratio).min(1.5);
    Repetition { ngram_ratio, local_ratio, line_ratio, penalty }
}

/// Words as the length and blank rules count them: runs of `\w` after HTML unescaping
/// (`&quot;` is a quotation mark, not the word "quot").
pub fn story_words(text: &str) -> usize {
    count_words(&unescape(text))
}

/// The number of words the length rules aim at (at least 150). Python integers: exact up to
/// 2^53, the nearest f64 beyond, infinite past f64's range (the release overflows there).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LengthTarget(f64);

impl LengthTarget {
    pub fn new(words: f64) -> Self {
        Self(if words > MIN_WORDS as f64 { words } else { MIN_WORDS as f64 })
    }

    /// The prompt's first `N words long` when N > 0; else (no length sentence, a zero, or a
    /// number Python's int() refuses) the words of the row's reference story, 0 without one.
    pub fn of(prompt: &str, reference: Option<&str>) -> Self {
        match requested_count(prompt).filter(|&n| n > 0.0) {
            Some(n) => Self::new(n),
            None => Self::new(reference.map_or(0, story_words) as f64),
        }
    }

    pub fn words(self) -> f64 {
        self.0
    }

    /// Words short of the target still on length: int(clamp(0.15 T, 350, 1000)).
    pub fn lower_tolerance(self) -> f64 {
        (0.15 * self.0).clamp(350.0, 1000.0).trunc()
    }

    /// Words over the target still on length: int(clamp(0.25 T, 600, 1500)).
    pub fn upper_tolerance(self) -> f64 {
        (0.25 * self.0).clamp(600.0, 1500.0).trunc()
    }

    /// The words inside which the length penalty is 0: [T − lower, T + upper].
    pub fn band(self) -> (f64, f64) {
        (self.0 - self.lower_tolerance(), self.0 + self.upper_tolerance())
    }

    /// 0 inside the band; below it 1 − wc / (T − lower), above it min(1, wc / (T + upper) − 1).
    pub fn penalty(self, words: usize) -> f64 {
        let (lo, hi) = self.band();
        let wc = words as f64;
        if wc >= lo && wc <= hi {
            0.0
        } else if wc < lo {
            (1.0 - wc / lo.max(1.0)).min(1.0)
        } else {
            (wc / hi.max(1.0) - 1.0).min(1.0)
        }
    }

    /// The release's logged length reward: 1 at the target, falling linearly to 0 at the band's
    /// edges; 0 outside the band and for a blank story. Not part of the composite.
    pub fn reward(self, words: usize, blank: bool) -> f64 {
        let (lo, hi) = self.band();
        let wc = words as f64;
        if blank || wc < lo || wc > hi {
            return 0.0;
        }
        let off = if wc <= self.0 {
            (self.0 - wc) / self.lower_tolerance().max(1.0)
        } else {
            (wc - self.0) / self.upper_tolerance().max(1.0)
        };
        (1.0 - off).max(0.0)
    }
}

/// The band of a request for `requested_words` words (the target raised to 150).
pub fn length_band(requested_words: usize) -> (f64, f64) {
    LengthTarget::new(requested_words as f64).band()
}

/// 1 when the story is under 150 words or under 10% visible characters, both counted after
/// HTML unescaping; visible = not Python whitespace, over all characters (at least 1).
pub fn blank_penalty(story: &str) -> f64 {
    let text = unescape(story);
    let chars = text.chars().count();
    let visible = text.chars().filter(|c| !is_space(*c)).count();
    let ratio = visible as f64 / chars.max(1) as f64;
    if ratio < 0.10 || count_words(&text) < MIN_WORDS {
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
