//! The offline judge: no network, deterministic. It fills the rubric's answer schema with
//! scores computed from measurable properties of the text (prompt coverage, repetition,
//! vocabulary variety, sentence rhythm, dialogue, paragraphing, stock phrases, concrete
//! detail, mechanical slips), matched to each dimension by its name. Every justification
//! says it is a measurement and names its evidence. It is a stand-in for a reader only in
//! the sense a linter is: cheap, repeatable, blind to meaning.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{json, Map, Value};

use crate::reward::rubric::{Rubric, Sign};
use crate::reward::rules::self_repetition;

static WORD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\w+").expect("valid regex"));
static SENTENCE_END: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"[.!?]+["'”’)]*(\s+|$)"#).expect("valid regex"));

/// Phrases that mark stock, templated prose.
const STOCK: &[&str] = &[
    "once upon a time",
    "little did",
    "suddenly",
    "a shiver ran down",
    "in the blink of an eye",
    "heart pounding",
    "tears streamed",
    "dark and stormy",
    "all along",
    "as luck would have it",
    "time stood still",
    "a testament to",
    "couldn't help but",
    "let out a breath",
    "for what felt like",
    "a wave of",
    "sent shivers",
    "it was as if",
    "deep down",
    "in that moment",
    "the air was thick",
    "little did she know",
    "little did he know",
    "and then, suddenly",
    "the end.",
    "happily ever after",
    "with a heavy heart",
    "a sense of",
    "tapestry",
    "palpable",
];
/// Words of telling rather than showing.
const TELLING: &[&str] =
    &["felt", "realized", "knew", "understood", "decided", "thought", "wondered", "seemed", "very", "really"];
/// Words that put a sense on the page.
const CONCRETE: &[&str] = &[
    "smell", "smelled", "scent", "taste", "cold", "warm", "wet", "rough", "smooth", "bright", "dark", "red",
    "blue", "green", "grey", "gray", "white", "black", "yellow", "salt", "wood", "stone", "iron", "rain",
    "wind", "snow", "mud", "bread", "door", "window", "hand", "hands", "boots", "coat", "lamp", "fire",
    "smoke", "sound", "creak", "whisper", "hum", "light",
];
/// Text that is about the story rather than story.
const META: &[&str] = &[
    "as an ai",
    "here is a story",
    "here's a story",
    "i hope you enjoy",
    "word count",
    "the story should",
    "sure,",
];
const STOPWORDS: &[&str] = &[
    "write", "story", "about", "titled", "premise", "their", "there", "which", "where", "when", "with",
    "from", "that", "this", "into", "over", "have", "they", "them", "what", "while", "after", "before",
    "every", "night", "should",
];

/// Everything the offline judge measures, once per story.
struct Measures {
    words: usize,
    sentences: Vec<String>,
    paragraphs: usize,
    prompt_coverage: f64,
    missing_prompt_words: Vec<String>,
    variety: f64,
    rhythm_cv: f64,
    dialogue_share: f64,
    repeated: crate::reward::rules::Repetition,
    first_repeat: Option<String>,
    stock: Vec<String>,
    telling_rate: f64,
    concrete_rate: f64,
    mechanical: Vec<String>,
    long_sentences: usize,
    adverb_rate: f64,
    recurring_names: usize,
    meta: Vec<String>,
    ends_cleanly: bool,
}

fn measure(prompt: &str, story: &str) -> Measures {
    let words: Vec<String> = WORD.find_iter(story).map(|m| m.as_str().to_lowercase()).collect();
    let n = words.len().max(1) as f64;
    let lower = story.to_lowercase();
    let mut sentences = Vec::new();
    let mut last = 0;
    for m in SENTENCE_END.find_iter(story) {
        let s = story[last..m.end()].trim();
        if !s.is_empty() {
            sentences.push(s.to_string());
        }
        last = m.end();
    }
    if !story[last..].trim().is_empty() {
        sentences.push(story[last..].trim().to_string());
    }
    let lens: Vec<f64> = sentences.iter().map(|s| WORD.find_iter(s).count() as f64).collect();
    let mean = lens.iter().sum::<f64>() / lens.len().max(1) as f64;
    let var = lens.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / lens.len().max(1) as f64;
    let prompt_words: Vec<String> = WORD
        .find_iter(&prompt.to_lowercase())
        .map(|m| m.as_str().to_string())
        .filter(|w| {
            w.len() >= 4 && !STOPWORDS.contains(&w.as_str()) && !w.chars().all(|c| c.is_ascii_digit())
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let story_words: HashSet<&str> = words.iter().map(String::as_str).collect();
    let mut missing: Vec<String> = prompt_words
        .iter()
        .filter(|w| !story_words.contains(w.as_str()) && !story_words.contains(w.trim_end_matches('s')))
        .cloned()
        .collect();
    missing.sort();
    let prompt_coverage =
        if prompt_words.is_empty() { 1.0 } else { 1.0 - missing.len() as f64 / prompt_words.len() as f64 };
    // moving-average type-token ratio over 100-word windows (stable across lengths)
    let variety = if words.len() < 100 {
        words.iter().collect::<HashSet<_>>().len() as f64 / n
    } else {
        let step = (words.len() / 50).max(1);
        let ratios: Vec<f64> = (0..=words.len() - 100)
            .step_by(step)
            .map(|i| words[i..i + 100].iter().collect::<HashSet<_>>().len() as f64 / 100.0)
            .collect();
        ratios.iter().sum::<f64>() / ratios.len() as f64
    };
    let quoted: usize = Regex::new(r#""[^"\n]*"|“[^”\n]*”"#)
        .expect("valid regex")
        .find_iter(story)
        .map(|m| WORD.find_iter(m.as_str()).count())
        .sum();
    let repeated = self_repetition(story);
    let first_repeat = {
        let toks: Vec<&str> = WORD.find_iter(story).map(|m| m.as_str()).collect();
        let mut seen = HashSet::new();
        toks.windows(4).map(|g| g.join(" ")).find(|g| !seen.insert(g.to_lowercase()))
    };
    let stock: Vec<String> = STOCK.iter().filter(|p| lower.contains(*p)).map(|p| p.to_string()).collect();
    let count_in = |list: &[&str]| words.iter().filter(|w| list.contains(&w.as_str())).count() as f64;
    let mut mechanical = Vec::new();
    if story.matches('"').count() % 2 == 1 {
        mechanical.push("an unclosed double quote".to_string());
    }
    for bad in ["!!", "??", "  ", " ,", " ."] {
        if story.contains(bad) {
            mechanical.push(format!("\"{}\" appears", bad.replace(' ', "␣")));
        }
    }
    let lowercase_starts =
        sentences.iter().filter(|s| s.chars().next().is_some_and(|c| c.is_lowercase())).count();
    if lowercase_starts > 0 {
        mechanical.push(format!("{lowercase_starts} sentence(s) start in lower case"));
    }
    if story.lines().any(|l| {
        l.trim_start().starts_with('#')
            || l.trim_start().starts_with("* ")
            || l.trim_start().starts_with("- ")
    }) {
        mechanical.push("markdown headings or bullet lists".to_string());
    }
    // capitalised words not at a sentence start, seen at least twice: recurring names
    let mut caps: HashMap<&str, usize> = HashMap::new();
    for s in &sentences {
        for w in WORD.find_iter(s).skip(1) {
            let w = w.as_str();
            if w.len() > 1 && w.chars().next().is_some_and(char::is_uppercase) && w != "I" {
                *caps.entry(w).or_default() += 1;
            }
        }
    }
    Measures {
        words: words.len(),
        paragraphs: story.split("\n\n").filter(|p| !p.trim().is_empty()).count(),
        prompt_coverage,
        missing_prompt_words: missing,
        variety,
        rhythm_cv: if mean > 0.0 { var.sqrt() / mean } else { 0.0 },
        dialogue_share: quoted as f64 / n,
        repeated,
        first_repeat,
        stock,
        telling_rate: 100.0 * count_in(TELLING) / n,
        concrete_rate: 100.0 * count_in(CONCRETE) / n,
        mechanical,
        long_sentences: lens.iter().filter(|&&l| l > 60.0).count(),
        adverb_rate: 100.0 * words.iter().filter(|w| w.len() > 4 && w.ends_with("ly")).count() as f64 / n,
        recurring_names: caps.values().filter(|&&c| c >= 2).count(),
        meta: META.iter().filter(|p| lower.contains(*p)).map(|p| p.to_string()).collect(),
        ends_cleanly: story.trim_end().ends_with(['.', '!', '?', '"', '”', '\'', '’']),
        sentences,
    }
}

/// A fraction in [0, 1] of how well (positive) or how badly (negative) the story does on a
/// dimension, and the evidence for it.
fn assess(key: &str, sign: Sign, m: &Measures, story: &str) -> (f64, String) {
    let has = |words: &[&str]| words.iter().any(|w| key.contains(w));
    let quote = |needle: &str| -> String { excerpt(story, needle) };
    let rhythm = (m.rhythm_cv / 0.6).min(1.0);
    let shape = {
        let paras =
            if m.words < 200 { 1.0 } else { (m.paragraphs as f64 / (m.words as f64 / 150.0)).min(1.0) };
        0.4 * paras + 0.3 * rhythm + 0.3 * if m.ends_cleanly { 1.0 } else { 0.0 }
    };
    match sign {
        Sign::Positive => {
            if has(&["prompt", "premise", "fulfil"]) {
                (
                    m.prompt_coverage,
                    format!(
                        "{:.0}% of the prompt's content words appear in the story{}",
                        100.0 * m.prompt_coverage,
                        list_missing(&m.missing_prompt_words)
                    ),
                )
            } else if has(&["arc", "pacing", "shape", "momentum", "landing", "structure"]) {
                (
                    shape,
                    format!(
                        "{} paragraphs for {} words; sentence-length variation {:.2}; the ending {}",
                        m.paragraphs,
                        m.words,
                        m.rhythm_cv,
                        if m.ends_cleanly { "closes on a full sentence" } else { "breaks off mid-sentence" }
                    ),
                )
            } else if has(&["character", "agency", "choose"]) {
                let f = (0.5 * (m.recurring_names as f64 / 2.0).min(1.0)
                    + 0.5 * (m.dialogue_share / 0.15).min(1.0))
                .min(1.0);
                (
                    f,
                    format!(
                        "{} recurring capitalised name(s); {:.0}% of words are quoted speech",
                        m.recurring_names,
                        100.0 * m.dialogue_share
                    ),
                )
            } else if has(&["voice", "style", "distinct"]) {
                let f = 0.6 * ((m.variety - 0.45) / 0.3).clamp(0.0, 1.0) + 0.4 * rhythm;
                (
                    f,
                    format!(
                        "vocabulary variety {:.2} (distinct words per 100); sentence-length variation {:.2}",
                        m.variety, m.rhythm_cv
                    ),
                )
            } else if has(&["concrete", "scene", "world", "detail", "page"]) {
                let f = (m.concrete_rate / 3.0).min(1.0);
                (
                    f,
                    format!(
                        "{:.1} sensory or physical words per 100 words{}",
                        m.concrete_rate,
                        first_of(story, CONCRETE)
                            .map(|w| format!(", e.g. {}", quote(&w)))
                            .unwrap_or_default()
                    ),
                )
            } else {
                let f = 0.4 * ((m.variety - 0.45) / 0.3).clamp(0.0, 1.0)
                    + 0.3 * (m.concrete_rate / 3.0).min(1.0)
                    + 0.3 * (1.0 - (m.telling_rate / 4.0).min(1.0));
                (
                    f,
                    format!(
                        "variety {:.2}, {:.1} concrete and {:.1} telling words per 100 words",
                        m.variety, m.concrete_rate, m.telling_rate
                    ),
                )
            }
        }
        Sign::Negative => {
            if has(&["prompt", "constraint", "contradict", "violation"]) {
                let f = ((0.6 - m.prompt_coverage) / 0.6).clamp(0.0, 1.0);
                (
                    f,
                    format!(
                        "{:.0}% of the prompt's content words appear{}",
                        100.0 * m.prompt_coverage,
                        list_missing(&m.missing_prompt_words)
                    ),
                )
            } else if has(&["coheren", "continuity", "logic", "consisten"]) {
                let f = if m.ends_cleanly { 0.0 } else { 0.5 } + (m.repeated.line_ratio * 2.0).min(0.5);
                (
                    f,
                    format!(
                        "ending {}; {:.0}% of lines repeat an earlier line",
                        if m.ends_cleanly { "complete" } else { "cut off mid-sentence" },
                        100.0 * m.repeated.line_ratio
                    ),
                )
            } else if has(&["generic", "templat", "stock", "formula", "cliche", "predictab"]) {
                let per_k = 1000.0 * m.stock.len() as f64 / m.words.max(1) as f64;
                (
                    ((per_k - 1.0) / 6.0).clamp(0.0, 1.0),
                    if m.stock.is_empty() {
                        "no stock phrase from the list was found".into()
                    } else {
                        format!("{} stock phrase(s), e.g. {}", m.stock.len(), quote(&m.stock[0]))
                    },
                )
            } else if has(&["summary", "abstract", "told", "grounding", "telling"]) {
                let f =
                    ((m.telling_rate - 1.5) / 4.0).clamp(0.0, 1.0) * (1.0 - (m.concrete_rate / 4.0).min(0.8));
                (f, format!("{:.1} telling words (felt, realized, knew, ...) and {:.1} concrete words per 100 words", m.telling_rate, m.concrete_rate))
            } else if has(&["redundan", "restat", "lectur", "moraliz", "loop", "explanation", "repet"]) {
                let f = ((m.repeated.ngram_ratio - 0.05) / 0.25).clamp(0.0, 1.0);
                (
                    f,
                    format!(
                        "{:.1}% of 4-word sequences repeat an earlier one{}",
                        100.0 * m.repeated.ngram_ratio,
                        m.first_repeat.as_ref().map(|r| format!(", e.g. {}", quote(r))).unwrap_or_default()
                    ),
                )
            } else if has(&["drift", "bloat", "breakdown", "long_form"]) {
                let walls = if m.words > 400 && m.paragraphs <= 1 { 0.4 } else { 0.0 };
                let f = (walls + m.repeated.local_ratio * 1.5 + m.repeated.line_ratio).min(1.0);
                (
                    f,
                    format!(
                        "{:.1}% of 4-word sequences recur within 64 words; {} paragraph(s)",
                        100.0 * m.repeated.local_ratio,
                        m.paragraphs
                    ),
                )
            } else if has(&["dialogue"]) {
                if m.dialogue_share == 0.0 {
                    (0.0, "no quoted speech: not applicable".into())
                } else {
                    let tags = Regex::new(r"\bsaid \w+ly\b")
                        .expect("valid regex")
                        .find_iter(&story.to_lowercase())
                        .count();
                    let f = ((m.dialogue_share - 0.6).max(0.0) + 0.1 * tags as f64).min(1.0);
                    (
                        f,
                        format!(
                            "{:.0}% of words are quoted speech; {tags} adverb speech tag(s) (\"said ...ly\")",
                            100.0 * m.dialogue_share
                        ),
                    )
                }
            } else if has(&["mechanical", "format", "surface", "error"]) {
                (
                    ((m.mechanical.len() as f64) / 4.0).min(1.0),
                    if m.mechanical.is_empty() {
                        "no mechanical slip found by the checks".into()
                    } else {
                        m.mechanical.join("; ")
                    },
                )
            } else if has(&["overwrought", "purple", "senseless", "nonsens", "ornate"]) {
                let f = ((m.adverb_rate - 2.0) / 6.0).clamp(0.0, 1.0) * 0.7
                    + (m.long_sentences as f64 / m.sentences.len().max(1) as f64 * 3.0).min(0.3);
                (
                    f,
                    format!(
                        "{:.1} -ly words per 100 words; {} sentence(s) over 60 words",
                        m.adverb_rate, m.long_sentences
                    ),
                )
            } else {
                (m.repeated.penalty / 1.5, format!("self-repetition penalty {:.2}", m.repeated.penalty))
            }
        }
    }
}

fn list_missing(missing: &[String]) -> String {
    if missing.is_empty() {
        String::new()
    } else {
        format!(" (absent: {})", missing.iter().take(5).cloned().collect::<Vec<_>>().join(", "))
    }
}

fn first_of(story: &str, list: &[&str]) -> Option<String> {
    WORD.find_iter(story).map(|m| m.as_str().to_lowercase()).find(|w| list.contains(&w.as_str()))
}

/// A quote of at most 12 words from the story around the first occurrence of `needle`.
fn excerpt(story: &str, needle: &str) -> String {
    let lower = story.to_lowercase();
    let Some(pos) = lower.find(&needle.to_lowercase()) else { return format!("\"{needle}\"") };
    let start = story[..pos].rfind(['.', '!', '?', '\n']).map_or(0, |i| i + 1);
    let words: Vec<&str> = story[start..].split_whitespace().take(12).collect();
    format!("\"{}\"", words.join(" ").trim_end_matches(['.', ',']))
}

/// The judge's JSON answer for `story`, in the rubric's schema.
pub fn answer(rubric: &Rubric, prompt: &str, story: &str) -> Value {
    let m = measure(prompt, story);
    let mut out = Map::new();
    let (mut pos, mut neg) = (0i64, 0i64);
    let mut positive_fractions = Vec::new();
    for d in &rubric.dimensions {
        let (f, evidence) = assess(&d.key, d.sign, &m, story);
        let score = (f.clamp(0.0, 1.0) * d.max as f64).round() as i64;
        match d.sign {
            Sign::Positive => {
                pos += score;
                positive_fractions.push(f);
            }
            Sign::Negative => neg += score,
        }
        out.insert(d.justification_field(), json!(format!("Measured, not read: {evidence}.")));
        out.insert(d.score_field(), json!(score));
    }
    // catch-alls: a penalty for text about the story instead of story; a bonus only when every
    // measured positive is near its best and nothing repeats
    let penalty = if m.meta.is_empty() {
        0
    } else {
        (2 * m.meta.len() as i64).min(rubric.penalty.as_ref().map_or(0, |c| c.max))
    };
    let bonus = if !positive_fractions.is_empty()
        && positive_fractions.iter().all(|&f| f >= 0.9)
        && m.repeated.ngram_ratio < 0.02
    {
        1
    } else {
        0
    };
    for (c, score, reason, evidence) in [
        (
            &rubric.bonus,
            bonus,
            if bonus > 0 {
                "every measured strength is near its best"
            } else {
                "no measured reason for a bonus"
            },
            vec![],
        ),
        (
            &rubric.penalty,
            penalty,
            if penalty > 0 {
                "text addressed to the reader rather than story"
            } else {
                "no non-story text found"
            },
            m.meta.iter().map(|p| excerpt(story, p)).take(2).collect::<Vec<_>>(),
        ),
    ] {
        if let Some(c) = c {
            let score = score.min(c.max);
            out.insert(c.score_field(), json!(score));
            out.insert(c.evidence_field(), json!(evidence));
            if rubric.schema.pointer(&format!("/properties/{}_reason", c.key)).is_some() {
                out.insert(format!("{}_reason", c.key), json!(format!("Measured: {reason}.")));
            }
        }
    }
    let (b, p) = (
        out.get("bonus_score").and_then(Value::as_i64).unwrap_or(0),
        out.get("penalty_score").and_then(Value::as_i64).unwrap_or(0),
    );
    fill_other_fields(rubric, &mut out, pos, neg, pos - neg + b - p);
    Value::Object(out)
}

/// Fields of an external schema the scoring does not read (totals, labels, free text):
/// filled so the answer validates, with the measured totals where they apply.
fn fill_other_fields(rubric: &Rubric, out: &mut Map<String, Value>, pos: i64, neg: i64, overall: i64) {
    let Some(props) = rubric.schema.get("properties").and_then(Value::as_object) else { return };
    for (name, spec) in props {
        if out.contains_key(name) {
            continue;
        }
        let value = match name.as_str() {
            "positive_total" => json!(pos),
            "negative_total" => json!(neg),
            "overall_score" => json!(overall),
            n if n.ends_with("_total") => {
                json!(out.get(&n.replace("_total", "_score")).cloned().unwrap_or(json!(0)))
            }
            _ => match spec.get("enum").and_then(Value::as_array) {
                Some(options) if name.ends_with("_label") => label(overall, options),
                Some(options) => options
                    .iter()
                    .find(|o| o.as_str() == Some("none"))
                    .or(options.first())
                    .cloned()
                    .unwrap_or(json!("")),
                None => match spec.get("type").and_then(Value::as_str) {
                    Some("integer") | Some("number") => {
                        json!(spec.get("minimum").and_then(Value::as_i64).unwrap_or(0).max(0))
                    }
                    Some("array") => json!([]),
                    Some("boolean") => json!(false),
                    _ => json!("Measured, not read: the offline judge does not write this field."),
                },
            },
        };
        out.insert(name.clone(), value);
    }
}

/// The label band for the overall score (the POLARIS bands), chosen among the schema's options.
fn label(overall: i64, options: &[Value]) -> Value {
    let band = match overall {
        i64::MIN..=14 => "very_poor",
        15..=34 => "poor",
        35..=54 => "fair",
        55..=74 => "good",
        _ => "excellent",
    };
    options.iter().find(|o| o.as_str() == Some(band)).or(options.first()).cloned().unwrap_or(json!(band))
}
