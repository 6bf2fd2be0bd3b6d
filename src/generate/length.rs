//! Length control: how a prompt asks for N words, how words are counted, the ratio.
//! The reward stack uses the same definitions, so "words" means the same everywhere; they are
//! the POLARIS release's (Python's `\w` and whitespace, crate::text::python).

use std::sync::LazyLock;

use regex::Regex;

use crate::text::python::{int_of_digits, rstrip, SPACE, WORD};

static WORDS: LazyLock<Regex> = LazyLock::new(|| Regex::new(&format!("{WORD}+")).expect("valid regex"));
/// The release's `(\d+)\s+words\s+long`, case-insensitive, with Python's `\s`; `\d` is any
/// script's decimal digit in both languages.
static TARGET: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"(?i)(\d+){SPACE}+words{SPACE}+long")).expect("valid regex"));
/// The sentence holding the length request, up to and including its full stop. It starts
/// after whitespace and never takes a closing quote that ends the sentence before it.
static LENGTH_SENTENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r#"(?i)\s*[^.!?\n"'”’)\]]*\b\d+{SPACE}+words{SPACE}+long[^.!?\n]*[.!?]?"#))
        .expect("valid regex")
});
/// What the release looks for when it cuts the length sentence off (its `regex` module's
/// `\s` and `\b` are Unicode's, as Rust's are).
static WORDS_LONG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)words\s+long\b").expect("valid regex"));

/// Number of words: maximal runs of word characters (Python's `\w+`: letters, numbers, `_`).
pub fn count_words(text: &str) -> usize {
    WORDS.find_iter(text).count()
}

/// The sentence that asks for a length, in the form POLARIS prompts use.
pub fn length_sentence(words: usize) -> String {
    format!("The story should be {words} words long.")
}

/// A story request for `words` words: the instruction, then the length sentence.
pub fn story_prompt(instruction: &str, words: usize) -> String {
    let instruction = instruction.trim();
    if instruction.is_empty() {
        return length_sentence(words);
    }
    format!("{instruction} {}", length_sentence(words))
}

/// The number in the first `N words long` (any case, any whitespace between, digits of any
/// script) as Python's int() reads it: None without one, or past int()'s 4300 digits.
pub fn requested_count(prompt: &str) -> Option<f64> {
    TARGET.captures(prompt).and_then(|c| int_of_digits(&c[1]))
}

/// The requested length in words (saturating: an absurd number reads as usize::MAX).
pub fn requested_words(prompt: &str) -> Option<usize> {
    requested_count(prompt).map(|n| n as usize)
}

/// The prompt without its length sentence, so a judge sees quality apart from length: every
/// sentence asking for `N words long` is removed, wherever it stands; a quotation that ends
/// the sentence before it keeps its closing mark.
pub fn strip_length_sentence(prompt: &str) -> String {
    LENGTH_SENTENCE.replace_all(prompt, "").trim().to_string()
}

/// The release's cut: find the last `words long`, walk back to the nearest `.`, `!`, `?` or
/// newline before it, and keep the prompt up to that mark (right-trimmed). With no mark
/// before it (the length sentence opens the prompt) the prompt is kept whole.
pub fn cut_before_length_sentence(prompt: &str) -> String {
    let Some(last) = WORDS_LONG.find_iter(prompt).last() else { return prompt.to_string() };
    match prompt[..last.start()].rfind(['.', '!', '?', '\n']) {
        Some(mark) => rstrip(&prompt[..=mark]).to_string(),
        None => prompt.to_string(),
    }
}

/// Generated words over requested words (1.0 = exact); None when nothing was requested.
pub fn length_ratio(generated_words: usize, requested_words: usize) -> Option<f64> {
    (requested_words > 0).then(|| generated_words as f64 / requested_words as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_runs_of_word_characters() {
        assert_eq!(count_words(""), 0);
        assert_eq!(count_words("  ...  "), 0);
        assert_eq!(count_words("The cat's 3 hats—gone!"), 6); // The, cat, s, 3, hats, gone
        assert_eq!(count_words("Café déjà-vu"), 3);
        assert_eq!(count_words("one\n\ntwo\tthree"), 3);
    }

    #[test]
    fn prompts_ask_for_n_words_and_can_be_read_back() {
        let p = story_prompt("Write a story about a lighthouse.", 3000);
        assert_eq!(p, "Write a story about a lighthouse. The story should be 3000 words long.");
        assert_eq!(requested_words(&p), Some(3000));
        assert_eq!(requested_words("no length here"), None);
        // the release's pattern: any case, any whitespace, any script's digits; the first one
        assert_eq!(requested_words("It should be 3000 Words Long."), Some(3000));
        assert_eq!(requested_words("3000\u{a0}WORDS\x1clong"), Some(3000));
        assert_eq!(requested_words("٣٠٠٠ words long, not 200 words long"), Some(3000));
        assert_eq!(requested_words("3000 words, long"), None);
        // absurd numbers saturate instead of failing; past Python's 4300 digits there is none
        assert_eq!(requested_words(&format!("{} words long", "9".repeat(30))), Some(usize::MAX));
        assert_eq!(requested_count(&format!("{} words long", "9".repeat(30))), Some(1e30));
        assert_eq!(requested_count(&format!("{} words long", "1".repeat(4301))), None);
    }

    #[test]
    fn the_length_sentence_is_stripped_for_the_judge() {
        let p = story_prompt("Write a story titled \"The Lamp\". Premise: a keeper finds a lamp.", 250);
        assert_eq!(
            strip_length_sentence(&p),
            "Write a story titled \"The Lamp\". Premise: a keeper finds a lamp."
        );
        assert_eq!(strip_length_sentence("Make it 500 words long. Set it at sea."), "Set it at sea.");
        assert_eq!(strip_length_sentence("A tale of ships."), "A tale of ships.");
        // a premise ending in a quotation keeps its closing quote
        assert_eq!(
            strip_length_sentence(
                "Premise: She said \u{201c}The bell is ringing.\u{201d} The story should be 900 words long."
            ),
            "Premise: She said \u{201c}The bell is ringing.\u{201d}"
        );
        assert_eq!(
            strip_length_sentence("Premise: \"Go.\" The story should be 900 words long."),
            "Premise: \"Go.\""
        );
    }

    #[test]
    fn the_release_cuts_at_the_mark_before_the_last_length_request() {
        let p = story_prompt("Write a story titled \"The Lamp\". Premise: a keeper finds a lamp.", 250);
        assert_eq!(
            cut_before_length_sentence(&p),
            "Write a story titled \"The Lamp\". Premise: a keeper finds a lamp."
        );
        // everything after the mark goes, what follows the length sentence too
        assert_eq!(cut_before_length_sentence("A tale. It is 900 words long. Use first person."), "A tale.");
        // the last request counts; a newline is a mark and is trimmed off
        assert_eq!(cut_before_length_sentence("Sea story\nMake it 9 WORDS  LONG"), "Sea story");
        assert_eq!(cut_before_length_sentence("Why? 5 words long! then 6 words long"), "Why? 5 words long!");
        // no mark before it, or no request: the prompt unchanged
        assert_eq!(
            cut_before_length_sentence("Make it 500 words long. Set it at sea."),
            "Make it 500 words long. Set it at sea."
        );
        assert_eq!(cut_before_length_sentence("A tale of ships."), "A tale of ships.");
        // `long` must end a word; a closing quote before the request is dropped with it
        assert_eq!(cut_before_length_sentence("A. 5 words longer"), "A. 5 words longer");
        assert_eq!(
            cut_before_length_sentence("She said \u{201c}Go.\u{201d} It is 900 words long."),
            "She said \u{201c}Go."
        );
    }

    #[test]
    fn ratio_is_generated_over_requested() {
        assert_eq!(length_ratio(1500, 3000), Some(0.5));
        assert_eq!(length_ratio(10, 0), None);
    }
}
