//! Reading an EQ-Bench judge's plain-text answer as the release does (both EQ tasks share
//! the rule): the text between the first `[Scores]` and the next `---` (or the end; the whole
//! answer when there is no `[Scores]`), one `Name: score` per line (the score optionally in
//! brackets, clamped to 0..=20; a later line of the same name replaces an earlier one); a
//! dimension is matched by exact name, then case-insensitively, then by the first line whose
//! name starts with the dimension's first `prefix` characters (lower-cased).

use std::sync::LazyLock;

use regex::Regex;

use crate::text::python::{decimal_value, splitlines, strip, SPACE};

static SCORES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?is)\[Scores\](.*?)(?:---|\z)").expect("valid regex"));
static ANALYSIS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?is)\[Analysis\](.*?)(?:\[Scores\]|\z)").expect("valid regex"));
static LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"^(.+?){SPACE}*:{SPACE}*\[?(\d+(?:\.\d+)?)\]?{SPACE}*$")).expect("valid regex")
});

/// The `Name: score` lines, in first-seen order of their names.
pub fn parse_scores(text: &str) -> Vec<(String, f64)> {
    let section = SCORES.captures(text).map_or(text, |c| c.get(1).map_or("", |m| m.as_str()));
    let mut scores: Vec<(String, f64)> = Vec::new();
    for line in splitlines(section) {
        let Some(c) = LINE.captures(strip(line)) else { continue };
        let name = strip(&c[1]).to_string();
        let Some(value) = float_of(&c[2]) else { continue };
        let value = value.clamp(0.0, 20.0);
        match scores.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => scores.push((name, value)),
        }
    }
    scores
}

/// The dimension's score among the parsed lines (see the module comment).
pub fn match_dim(dim: &str, scores: &[(String, f64)], prefix: usize) -> Option<f64> {
    if let Some((_, v)) = scores.iter().find(|(n, _)| n == dim) {
        return Some(*v);
    }
    let lower = dim.to_lowercase();
    if let Some((_, v)) = scores.iter().find(|(n, _)| n.to_lowercase() == lower) {
        return Some(*v);
    }
    let head: String = lower.chars().take(prefix).collect();
    scores.iter().find(|(n, _)| n.to_lowercase().starts_with(&head)).map(|(_, v)| *v)
}

/// The `[Analysis]` section, stripped; empty without one.
pub fn analysis(text: &str) -> String {
    ANALYSIS.captures(text).and_then(|c| c.get(1)).map_or_else(String::new, |m| strip(m.as_str()).to_string())
}

/// Python's float() of `\d+(\.\d+)?` (digits of any script).
fn float_of(s: &str) -> Option<f64> {
    let ascii: String = s
        .chars()
        .map(|c| if c == '.' { Some('.') } else { char::from_digit(decimal_value(c)?, 10) })
        .collect::<Option<_>>()?;
    ascii.parse().ok()
}

/// The release's record key of a dimension: lower case, spaces, `-` and `/` to `_`, `'`,
/// `(` and `)` dropped (`Tell-Don't-Show` -> `tell_dont_show`).
pub fn key(dim: &str) -> String {
    dim.to_lowercase().replace([' ', '-', '/'], "_").replace(['\'', '(', ')'], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_scores_section_as_the_release_does() {
        let text = "[Analysis]\nFine work.\nCoherent: 3 (not a score line in the analysis)\n[Scores]\n\
                    Coherent: [15]\n  Weak Dialogue : 4.5 \nPurple Prose: 25\nBad line 12\nCoherent: 16\n---\nAmateurish: 2\n";
        let s = parse_scores(text);
        // after [Scores], up to ---; clamped at 20; the later Coherent replaces the earlier
        assert_eq!(
            s,
            vec![("Coherent".into(), 16.0), ("Weak Dialogue".into(), 4.5), ("Purple Prose".into(), 20.0)]
        );
        assert_eq!(analysis(text), "Fine work.\nCoherent: 3 (not a score line in the analysis)");
        // no [Scores]: the whole text is read
        assert_eq!(parse_scores("Amateurish: 7"), vec![("Amateurish".into(), 7.0)]);
    }

    #[test]
    fn matches_exact_then_case_then_prefix() {
        let s = vec![("coherent".to_string(), 1.0), ("Forced Poetry/Metaphor".to_string(), 9.0)];
        assert_eq!(match_dim("Coherent", &s, 12), Some(1.0));
        // "forced poetr" is the first 12 characters of "forced poetry or metaphor"
        assert_eq!(match_dim("Forced Poetry or Metaphor", &s, 12), Some(9.0));
        assert_eq!(match_dim("Amateurish", &s, 12), None);
        assert_eq!(key("Tell-Don't-Show"), "tell_dont_show");
        assert_eq!(key("Consistent Voice/Tone of Writing"), "consistent_voice_tone_of_writing");
    }
}
