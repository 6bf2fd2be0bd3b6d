//! Length control: how a prompt asks for N words, how words are counted, the ratio.
//! The reward stack uses the same definitions, so "words" means the same everywhere.

use std::sync::LazyLock;

use regex::Regex;

static WORD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\w+").expect("valid regex"));
static TARGET: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(\d+) words long").expect("valid regex"));
/// The sentence holding the length request, up to and including its full stop. It starts
/// after whitespace and never takes a closing quote that ends the sentence before it.
static LENGTH_SENTENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"\s*[^.!?\n"'”’)\]]*\b\d+ words long[^.!?\n]*[.!?]?"#).expect("valid regex")
});

/// Number of words: maximal runs of Unicode word characters (`\w+`).
pub fn count_words(text: &str) -> usize {
    WORD.find_iter(text).count()
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

/// The requested length, read from `N words long` (the first occurrence).
pub fn requested_words(prompt: &str) -> Option<usize> {
    TARGET.captures(prompt).and_then(|c| c[1].parse().ok())
}

/// The prompt without its length sentence, so a judge sees quality apart from length.
pub fn strip_length_sentence(prompt: &str) -> String {
    LENGTH_SENTENCE.replace_all(prompt, "").trim().to_string()
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
    fn ratio_is_generated_over_requested() {
        assert_eq!(length_ratio(1500, 3000), Some(0.5));
        assert_eq!(length_ratio(10, 0), None);
    }
}
