//! Trimming a story that is longer than the longest reference a dataset keeps
//! (`data build --max-words`): the story is cut where a reader could stop, at the end of a
//! paragraph, or at the end of a sentence when paragraph ends would lose too much.

use super::stories::ends_sentence;
use crate::generate::length::count_words;

/// Where a trimmed story was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cut {
    /// After the last whole paragraph that fits.
    Paragraph,
    /// Inside the paragraph that does not fit, after its last sentence that does.
    Sentence,
}

/// `text` (normalised: paragraphs separated by a blank line, see `normalise_text`) cut to at
/// most `max_words` words (`count_words`), with where it was cut; None when it already fits
/// or has no paragraph or sentence end within `max_words`.
///
/// Whole paragraphs are kept while they fit. When they keep under half of `max_words` (a
/// very long paragraph follows), the next paragraph is kept up to its last sentence end
/// that fits instead, so a trimmed reference stays near the longest length asked for.
pub fn trim_story(text: &str, max_words: usize) -> Option<(String, Cut)> {
    if count_words(text) <= max_words {
        return None;
    }
    let paragraphs: Vec<&str> = text.split("\n\n").collect();
    let mut kept = 0; // paragraphs
    let mut words = 0;
    for p in &paragraphs {
        let w = count_words(p);
        if words + w > max_words {
            break;
        }
        words += w;
        kept += 1;
    }
    let whole = paragraphs[..kept].join("\n\n");
    if kept > 0 && words * 2 >= max_words {
        return Some((whole, Cut::Paragraph));
    }
    match sentences_within(paragraphs[kept], max_words - words) {
        Some(part) if kept == 0 => Some((part.to_string(), Cut::Sentence)),
        Some(part) => Some((format!("{whole}\n\n{part}"), Cut::Sentence)),
        None if kept > 0 => Some((whole, Cut::Paragraph)),
        None => None,
    }
}

/// The longest run of whole sentences from the start of `paragraph` with at most
/// `max_words` words; None when even the first sentence is longer.
fn sentences_within(paragraph: &str, max_words: usize) -> Option<&str> {
    let tokens: Vec<&str> = paragraph.split_whitespace().collect();
    let mut words = 0;
    let mut end = None; // byte offset just past the last sentence end that fits
    for (i, token) in tokens.iter().enumerate() {
        words += count_words(token);
        if words > max_words {
            break;
        }
        if ends_sentence(token, tokens.get(i + 1).copied()) {
            // tokens are slices of `paragraph`: their offset is their distance from its start
            end = Some(token.as_ptr() as usize - paragraph.as_ptr() as usize + token.len());
        }
    }
    end.map(|e| &paragraph[..e])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_story_that_fits_is_not_trimmed() {
        assert_eq!(trim_story("One two three.\n\nFour five.", 5), None);
    }

    #[test]
    fn whole_paragraphs_are_kept_while_they_fit() {
        let text = "One two three.\n\nFour five six.\n\nSeven eight.";
        assert_eq!(trim_story(text, 7), Some(("One two three.\n\nFour five six.".into(), Cut::Paragraph)));
    }

    #[test]
    fn a_long_paragraph_is_cut_at_a_sentence_end() {
        let text = "A b. C d e. F g h i. J k l m n.";
        assert_eq!(trim_story(text, 8), Some(("A b. C d e.".into(), Cut::Sentence)));
        // after a short first paragraph, the long one is cut at a sentence instead
        let text = "Title.\n\nA b. C d e. F g h i. J k l m n.";
        assert_eq!(trim_story(text, 12), Some(("Title.\n\nA b. C d e. F g h i.".into(), Cut::Sentence)));
        // "Mr." does not end a sentence
        assert_eq!(
            trim_story("Mr. Holmes sat. He read on and on.", 6),
            Some(("Mr. Holmes sat.".into(), Cut::Sentence))
        );
    }

    #[test]
    fn no_paragraph_or_sentence_end_within_the_limit_is_none() {
        assert_eq!(trim_story("one two three four five six seven.", 4), None);
    }
}
