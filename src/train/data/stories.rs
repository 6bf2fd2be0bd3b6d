//! Story collections: reading them, unwrapping hard-wrapped text into paragraphs, and a
//! premise from a story's opening when the collection gives none.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

use crate::durable::jsonl::{jsonl_lines, kind, opt_string, Problems};
use crate::generate::length::count_words;

/// One story of a collection, its text normalised (`normalise_text`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Story {
    pub uid: String,
    pub title: String,
    pub premise: Option<String>,
    pub text: String,
    pub reasoning: Option<String>,
    /// `FILE:LINE` of a JSONL record, or the `.txt` file.
    pub source: String,
}

/// A derived premise stops at the first sentence end after this many words...
const PREMISE_MIN_WORDS: usize = 10;
/// ... and is cut (with "...") past this many.
const PREMISE_MAX_WORDS: usize = 30;
/// A block whose lines are mostly longer than this is not hard-wrapped: each line is a paragraph.
const WRAPPED_LINE_MAX_CHARS: usize = 100;

/// Reads a story collection: a `.jsonl` file, a `.txt` file (one story), or a directory
/// of `.jsonl` and `.txt` files, read in file-name order. A JSONL record has its text in
/// `story` or `text`, a `title`, and optionally `premise`, `reasoning` and `uid` (or
/// `id`; else `STEM:LINE`). A `.txt` story's uid is its file stem and its title comes
/// from the file name. Every bad record is reported, in one error.
pub fn read_stories(path: &Path) -> Result<Vec<Story>> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read the story collection {}", path.display()))?;
    let files = if meta.is_dir() { collection_files(path)? } else { vec![path.to_path_buf()] };
    let mut problems = Problems::default();
    let mut records = 0;
    let mut stories: Vec<Story> = Vec::new();
    // uid -> where it was first used
    let mut first_source: HashMap<String, String> = HashMap::new();
    let mut add = |story: Story, uid_field: &str, problems: &mut Problems| {
        if let Some(first) = first_source.get(&story.uid) {
            let msg = format!(
                "field {uid_field} {:?} is also used at {first}; every story needs its own uid (set \"uid\" on one of them)",
                story.uid
            );
            problems.record(&story.source, vec![msg]);
        } else {
            first_source.insert(story.uid.clone(), story.source.clone());
            stories.push(story);
        }
    };
    for file in &files {
        if has_extension(file, "txt") {
            records += 1;
            match std::fs::read(file).map(String::from_utf8) {
                Ok(Ok(text)) => add(txt_story(file, &text), "uid (the file stem)", &mut problems),
                Ok(Err(_)) => problems.record(
                    &file.display().to_string(),
                    vec!["is not UTF-8 text; save the file as UTF-8".into()],
                ),
                Err(e) => bail!("cannot read {}: {e}", file.display()),
            }
            continue;
        }
        let lines = jsonl_lines(file)?;
        records += lines.len();
        let stem = file_stem(file);
        for (n, obj) in lines {
            let location = format!("{}:{n}", file.display());
            match obj.map_err(|e| vec![e]).and_then(|obj| jsonl_story(&obj, &stem, n, &location)) {
                Ok((story, uid_field)) => add(story, uid_field, &mut problems),
                Err(bad) => problems.record(&location, bad),
            }
        }
    }
    problems.check(path, records)?;
    if records == 0 {
        bail!("{}: no stories (the file is empty)", path.display());
    }
    Ok(stories)
}

fn collection_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let p = entry?.path();
        let hidden = p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden && p.is_file() && (has_extension(&p, "jsonl") || has_extension(&p, "txt")) {
            files.push(p);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    if files.is_empty() {
        bail!(
            "{}: no .jsonl or .txt files here; a story collection is a .jsonl file (title, story or text per line) \
             or a directory of .jsonl / .txt files",
            dir.display()
        );
    }
    Ok(files)
}

fn has_extension(p: &Path, ext: &str) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

fn file_stem(p: &Path) -> String {
    p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

fn txt_story(file: &Path, text: &str) -> Story {
    let stem = file_stem(file);
    Story {
        title: title_from_file_stem(&stem),
        uid: stem,
        premise: None,
        text: normalise_text(text),
        reasoning: None,
        source: file.display().to_string(),
    }
}

/// A story record and the field its uid came from.
fn jsonl_story(
    obj: &Map<String, Value>,
    stem: &str,
    n: usize,
    location: &str,
) -> Result<(Story, &'static str), Vec<String>> {
    let mut bad = Vec::new();
    let present = |k: &str| obj.get(k).is_some_and(|v| !v.is_null());
    let uid_key = if present("uid") { "uid" } else { "id" };
    let uid = match obj.get(uid_key) {
        None | Some(Value::Null) => Some(format!("{stem}:{n}")),
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(Value::String(_)) => {
            bad.push(format!("field {uid_key} is empty; give the story an id, or leave the field out"));
            None
        }
        Some(Value::Number(x)) => Some(x.to_string()),
        Some(v) => {
            bad.push(format!("field {uid_key} must be a string or a number, found {}", kind(v)));
            None
        }
    };
    let text_key = if present("story") { "story" } else { "text" };
    let text = match opt_string(obj, text_key) {
        Ok(Some(t)) => Some(t),
        Ok(None) => {
            bad.push("field story is missing; a story record needs its text in \"story\" or \"text\"".into());
            None
        }
        Err(e) => {
            bad.push(e);
            None
        }
    };
    let title = match opt_string(obj, "title") {
        Ok(Some(t)) if !t.trim().is_empty() => Some(t.split_whitespace().collect::<Vec<_>>().join(" ")),
        Ok(Some(_)) => {
            bad.push("field title is empty; the prompt asks for a story with this title".into());
            None
        }
        Ok(None) => {
            bad.push("field title is missing; the prompt asks for a story with this title".into());
            None
        }
        Err(e) => {
            bad.push(e);
            None
        }
    };
    let mut optional = |key: &str| {
        opt_string(obj, key).unwrap_or_else(|e| {
            bad.push(e);
            None
        })
    };
    let premise = optional("premise").filter(|p| !p.trim().is_empty());
    let reasoning = optional("reasoning");
    match (uid, text, title) {
        (Some(uid), Some(text), Some(title)) if bad.is_empty() => Ok((
            Story {
                uid,
                title,
                premise,
                text: normalise_text(&text),
                reasoning,
                source: location.to_string(),
            },
            uid_key,
        )),
        _ => Err(bad),
    }
}

/// A title from a file stem: `_` and `-` become spaces; an all-lower-case stem gets
/// capitals (`the_happy_prince` -> `The Happy Prince`).
pub fn title_from_file_stem(stem: &str) -> String {
    let words: Vec<&str> = stem.split(['_', '-', ' ']).filter(|w| !w.is_empty()).collect();
    if stem.chars().any(char::is_uppercase) {
        return words.join(" ");
    }
    const SMALL: [&str; 12] = ["a", "an", "and", "at", "by", "for", "in", "of", "on", "or", "the", "to"];
    let capitalised = words.iter().enumerate().map(|(i, w)| {
        if i > 0 && SMALL.contains(w) {
            return w.to_string();
        }
        let mut chars = w.chars();
        chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
    });
    capitalised.collect::<Vec<String>>().join(" ")
}

/// Story text as paragraphs on one line each, separated by a blank line, whitespace
/// collapsed. Blank lines end paragraphs; inside a hard-wrapped block a line also ends
/// one where the next line's first word would have fitted on it (so the wrap did not
/// break there), the line ends a sentence and the next starts like one. Only whitespace
/// changes, so `count_words` gives the same count.
pub fn normalise_text(text: &str) -> String {
    let text = text.trim_start_matches('\u{feff}').replace("\r\n", "\n").replace('\r', "\n");
    let mut paragraphs = Vec::new();
    let mut block: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            unwrap_block(&block, &mut paragraphs);
            block.clear();
        } else {
            block.push(line);
        }
    }
    unwrap_block(&block, &mut paragraphs);
    paragraphs.join("\n\n")
}

/// The paragraphs of a block of non-blank, trimmed lines.
fn unwrap_block(block: &[&str], out: &mut Vec<String>) {
    let chars: Vec<usize> = block.iter().map(|l| l.chars().count()).collect();
    let long = chars.iter().filter(|&&c| c > WRAPPED_LINE_MAX_CHARS).count();
    if long * 2 > block.len() {
        // one paragraph per line, as in unwrapped text
        out.extend(block.iter().map(|l| collapse(l)));
        return;
    }
    // the wrap width: the longest line that looks wrapped
    let width = chars.iter().copied().filter(|&c| c <= WRAPPED_LINE_MAX_CHARS).max().unwrap_or(0);
    let mut paragraph = String::new();
    for (i, line) in block.iter().enumerate() {
        join_line(&mut paragraph, line);
        let Some(next) = block.get(i + 1) else { break };
        let next_word = next.split_whitespace().next().map_or(0, |w| w.chars().count());
        let would_have_fitted = chars[i] + 2 + next_word <= width;
        if would_have_fitted && ends_like_a_sentence(line) && starts_like_a_sentence(next) {
            out.push(collapse(&paragraph));
            paragraph.clear();
        }
    }
    if !paragraph.is_empty() {
        out.push(collapse(&paragraph));
    }
}

/// Appends a wrapped line: with a space, or with none after a word broken at a hyphen.
fn join_line(paragraph: &mut String, line: &str) {
    let hyphen_break = paragraph.strip_suffix('-').is_some_and(|p| p.ends_with(char::is_alphabetic))
        && line.starts_with(char::is_alphabetic);
    if !paragraph.is_empty() && !hyphen_break {
        paragraph.push(' ');
    }
    paragraph.push_str(line);
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(super) fn is_closing_mark(c: char) -> bool {
    matches!(c, '"' | '\'' | '”' | '’' | '»' | ')' | ']')
}

fn is_opening_mark(c: char) -> bool {
    matches!(c, '"' | '\'' | '“' | '‘' | '«' | '(' | '[' | '—' | '-')
}

fn ends_like_a_sentence(line: &str) -> bool {
    line.ends_with(['.', '!', '?', ':', '—']) || line.ends_with(is_closing_mark)
}

fn starts_like_a_sentence(line: &str) -> bool {
    let first = line.chars().next();
    first.is_some_and(is_opening_mark)
        || line
            .trim_start_matches(|c: char| !c.is_alphanumeric())
            .starts_with(|c: char| c.is_uppercase() || c.is_numeric())
}

/// Abbreviations whose full stop does not end a sentence.
const ABBREVIATIONS: [&str; 24] = [
    "Mr", "Mrs", "Ms", "Messrs", "Mme", "Mlle", "Dr", "St", "Mt", "Jr", "Sr", "Capt", "Col", "Gen", "Lt",
    "Sgt", "Rev", "Prof", "Hon", "Gov", "No", "Vol", "Co", "vs",
];

/// Whether a whitespace-separated token ends a sentence, given the token after it.
pub(super) fn ends_sentence(token: &str, next: Option<&str>) -> bool {
    let core = token.trim_end_matches(is_closing_mark);
    let Some(stem) = core.strip_suffix(['.', '!', '?']) else { return false };
    if core.ends_with('.') {
        let word = stem.trim_start_matches(|c: char| !c.is_alphanumeric());
        let initial = word.chars().count() == 1 && word.starts_with(char::is_uppercase);
        if initial || ABBREVIATIONS.contains(&word) {
            return false;
        }
    }
    next.is_none_or(starts_like_a_sentence)
}

/// A premise from a story's opening: its first sentences, at least 10 words where the
/// opening allows, cut at 30 words with "...".
pub fn premise_from_opening(text: &str) -> String {
    let tokens: Vec<&str> = text.split_whitespace().take(4 * PREMISE_MAX_WORDS).collect();
    let mut premise: Vec<&str> = Vec::new();
    let mut words = 0;
    for (i, &token) in tokens.iter().enumerate() {
        let w = count_words(token);
        if words + w > PREMISE_MAX_WORDS && !premise.is_empty() {
            let cut = premise.join(" ");
            return format!("{}...", cut.trim_end_matches(|c: char| !c.is_alphanumeric()));
        }
        premise.push(token);
        words += w;
        if words >= PREMISE_MIN_WORDS && ends_sentence(token, tokens.get(i + 1).copied()) {
            break;
        }
    }
    premise.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_lines_join_and_blank_lines_separate_paragraphs() {
        let text =
            "  It was a dark\n      and stormy night.\n    \n\n      The end-\n      less rain fell.\n";
        assert_eq!(normalise_text(text), "It was a dark and stormy night.\n\nThe end-less rain fell.");
    }

    #[test]
    fn a_short_line_that_ends_a_sentence_ends_a_paragraph() {
        // wrapped at 40 columns, no blank lines between paragraphs
        let text = "The keeper climbed the tower every night\nand lit the lamp.\n\u{201c}Again?\u{201d} his wife asked.\nHe nodded and went up the stairs once\nmore, slowly.";
        assert_eq!(
            normalise_text(text),
            "The keeper climbed the tower every night and lit the lamp.\n\n\u{201c}Again?\u{201d} his wife asked.\n\nHe nodded and went up the stairs once more, slowly."
        );
    }

    #[test]
    fn long_lines_are_paragraphs_of_their_own() {
        let a = "word ".repeat(30);
        let b = "more ".repeat(25);
        let text = format!("{a}\n{b}\n");
        assert_eq!(normalise_text(&text), format!("{}\n\n{}", a.trim(), b.trim()));
    }

    #[test]
    fn the_premise_is_the_opening_sentence_or_two() {
        let text = "Mr. Holmes sat by the fire. He was thinking about the case of the missing lamp. Then a knock came.";
        assert_eq!(
            premise_from_opening(text),
            "Mr. Holmes sat by the fire. He was thinking about the case of the missing lamp."
        );
        let abbreviated =
            "On the evening of that long, cold day in March, Mr. Holmes sat by the fire. Then a knock.";
        assert_eq!(
            premise_from_opening(abbreviated),
            "On the evening of that long, cold day in March, Mr. Holmes sat by the fire."
        );
        let q = "\u{201c}Why can\u{2019}t you be like him?\u{201d} asked a mother of her little boy. He cried on.";
        assert_eq!(
            premise_from_opening(q),
            "\u{201c}Why can\u{2019}t you be like him?\u{201d} asked a mother of her little boy."
        );
        let long = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen, \
                    sixteen seventeen eighteen nineteen twenty twenty-one twenty-two twenty-three twenty-four, \
                    twenty-five and on it goes.";
        let p = premise_from_opening(long);
        assert!(p.ends_with("twenty-five..."), "{p}");
        assert!(count_words(&p) <= PREMISE_MAX_WORDS);
    }

    #[test]
    fn titles_come_from_file_stems() {
        assert_eq!(title_from_file_stem("the_ransom_of_red_chief"), "The Ransom of Red Chief");
        assert_eq!(title_from_file_stem("The-Bell"), "The Bell");
    }
}
