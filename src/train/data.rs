//! Training datasets: JSONL records of a prompt, its requested length and, optionally, a
//! human reference story (the HRI row) with a thinking trace for it.
//!
//! `load` validates a dataset and names every bad record as `FILE:LINE: field NAME ...`;
//! `build` turns a story collection into length-stratified prompts with a deterministic
//! train / validation split; `write_jsonl` writes a dataset atomically.

mod stories;
mod trim;

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::durable::jsonl::{jsonl_lines, kind, opt_string, Problems};
use crate::generate::length::{count_words, requested_words, story_prompt};
pub use stories::{normalise_text, premise_from_opening, read_stories, title_from_file_stem, Story};
pub use trim::{trim_story, Cut};

/// One training prompt. Unknown extra fields in a file are read and ignored.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub uid: String,
    /// The request, ending in its length sentence ("... N words long.").
    pub prompt: String,
    /// N, in words (`count_words`); the prompt asks for the same N.
    pub target_word_count: usize,
    /// The human reference story, teacher-forced as the group's HRI row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub story: Option<String>,
    /// A thinking trace for the reference (the HRI row's think block; empty when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
}

/// `data build --min-words` by default: a story shorter is not used, because a reference
/// that short would itself get the reward's blank penalty (under 150 words, RECIPE.md). Not
/// higher: the collection's shortest stories (a few hundred words) are still whole stories,
/// and the length buckets start under 1000 words.
pub const MIN_STORY_WORDS: usize = 150;

/// `data build --max-words` by default: the paper's longest reference (4k words). Longer
/// stories are trimmed (`trim_story`); at about 1.3 tokens a word 4000 words stay well
/// inside the 8192-token response budget, so the reference row is rarely cut in training.
pub const MAX_STORY_WORDS: usize = 4000;

/// Length buckets for stratifying the split and for summaries, by target words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LengthBucket {
    Under1k,
    From1kTo2k,
    From2kTo4k,
    From4kTo8k,
    From8k,
}

impl LengthBucket {
    pub const ALL: [LengthBucket; 5] = [
        LengthBucket::Under1k,
        LengthBucket::From1kTo2k,
        LengthBucket::From2kTo4k,
        LengthBucket::From4kTo8k,
        LengthBucket::From8k,
    ];

    pub fn of(words: usize) -> Self {
        match words {
            0..1000 => Self::Under1k,
            1000..2000 => Self::From1kTo2k,
            2000..4000 => Self::From2kTo4k,
            4000..8000 => Self::From4kTo8k,
            _ => Self::From8k,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Under1k => "<1000",
            Self::From1kTo2k => "1000-1999",
            Self::From2kTo4k => "2000-3999",
            Self::From4kTo8k => "4000-7999",
            Self::From8k => ">=8000",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for LengthBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The length a story's prompt asks for: its own word count rounded to the nearest 50
/// (halves up), at least 100.
pub fn target_words(story_words: usize) -> usize {
    ((story_words + 25) / 50 * 50).max(100)
}

/// Reads and validates a dataset. Every bad record is reported, in one error.
pub fn load(path: &Path) -> Result<Vec<Example>> {
    Ok(load_numbered(path)?.into_iter().map(|(_, e)| e).collect())
}

/// `load`, each example with its 1-based line number in the file (for `FILE:LINE` messages).
pub fn load_numbered(path: &Path) -> Result<Vec<(usize, Example)>> {
    let lines = jsonl_lines(path)?;
    let records = lines.len();
    if records == 0 {
        bail!(
            "{}: no records (the file is empty); a dataset has one JSON object per line: \
             {{\"uid\", \"prompt\", \"target_word_count\"[, \"story\", \"reasoning\"]}}",
            path.display()
        );
    }
    let mut problems = Problems::default();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    let mut examples = Vec::with_capacity(records);
    for (n, obj) in lines {
        let location = format!("{}:{n}", path.display());
        let obj = match obj {
            Ok(obj) => obj,
            Err(e) => {
                problems.record(&location, vec![e]);
                continue;
            }
        };
        let mut bad = Vec::new();
        let uid = required_string(&obj, "uid", &mut bad);
        let prompt = required_string(&obj, "prompt", &mut bad);
        let target = target_word_count(&obj, &mut bad);
        if let Some(uid) = &uid {
            if uid.trim().is_empty() {
                bad.push("field uid is empty; give every record a unique id".into());
            } else if let Some(first) = first_line.get(uid) {
                bad.push(format!(
                    "field uid {uid:?} is already used on line {first}; every uid must be unique"
                ));
            } else {
                first_line.insert(uid.clone(), n);
            }
        }
        if let Some(prompt) = &prompt {
            if prompt.trim().is_empty() {
                bad.push("field prompt is empty; write the request, ending with its length sentence (\"The story should be N words long.\")".into());
            } else if let Some(target) = target {
                match requested_words(prompt) {
                    Some(asked) if asked == target => {}
                    Some(asked) => bad.push(format!(
                        "field prompt asks for {asked} words (\"{asked} words long\") but target_word_count is {target}; make them agree"
                    )),
                    None => bad.push(format!(
                        "field prompt does not say how long (no \"N words long\"), and the reward reads the target from it; end it with \"The story should be {target} words long.\""
                    )),
                }
            }
        }
        let story = opt_string(&obj, "story").unwrap_or_else(|e| {
            bad.push(e);
            None
        });
        if story.as_ref().is_some_and(|s| s.trim().is_empty()) {
            bad.push("field story is empty; leave the field out for a prompt without a reference".into());
        }
        let reasoning = opt_string(&obj, "reasoning").unwrap_or_else(|e| {
            bad.push(e);
            None
        });
        let good = bad.is_empty();
        problems.record(&location, bad);
        if let (true, Some(uid), Some(prompt), Some(target_word_count)) = (good, uid, prompt, target) {
            examples.push((n, Example { uid, prompt, target_word_count, story, reasoning }));
        }
    }
    problems.check(path, records)?;
    Ok(examples)
}

fn required_string(obj: &Map<String, Value>, key: &str, bad: &mut Vec<String>) -> Option<String> {
    match opt_string(obj, key) {
        Ok(Some(s)) => Some(s),
        Ok(None) => {
            bad.push(format!("field {key} is missing; every record needs uid, prompt and target_word_count"));
            None
        }
        Err(e) => {
            bad.push(e);
            None
        }
    }
}

fn target_word_count(obj: &Map<String, Value>, bad: &mut Vec<String>) -> Option<usize> {
    const KEY: &str = "target_word_count";
    let problem = match obj.get(KEY) {
        None | Some(Value::Null) => {
            format!("field {KEY} is missing; every record needs uid, prompt and target_word_count")
        }
        Some(Value::Number(x)) => match x.as_u64() {
            Some(0) => format!("field {KEY} is 0; it must be the requested length in words, e.g. 1500"),
            Some(n) => return Some(n as usize),
            None if x.as_i64().is_some() => {
                format!("field {KEY} is negative ({x}); it must be the requested length in words, e.g. 1500")
            }
            None => format!("field {KEY} must be a whole number of words, found {x}"),
        },
        Some(Value::String(s)) => {
            format!("field {KEY} must be a number, found the string {s:?}; write it without quotes")
        }
        Some(v) => format!("field {KEY} must be a whole number of words, found {}", kind(v)),
    };
    bad.push(problem);
    None
}

/// Writes a dataset: to a temp file beside `path`, synced, then renamed into place, so a
/// reader never sees half a file.
pub fn write_jsonl(path: &Path, examples: &[Example]) -> Result<()> {
    let name = path.file_name().ok_or_else(|| anyhow!("{}: not a file path", path.display()))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let written = (|| -> Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(file);
        for e in examples {
            serde_json::to_writer(&mut w, e)?;
            w.write_all(b"\n")?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(())
    })();
    if let Err(e) = written.and_then(|()| Ok(std::fs::rename(&tmp, path)?)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("cannot write {}", path.display())));
    }
    // the rename itself is durable once the directory is synced (best effort)
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// How `build_with` makes a dataset from a story collection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuildOptions {
    /// Share of each length bucket held out for validation (0 to under 1).
    pub val_fraction: f64,
    /// Seed of the split.
    pub seed: u64,
    /// Stories under this many words (before or after trimming) are skipped.
    pub min_words: usize,
    /// Stories over this many words are trimmed to at most this many.
    pub max_words: usize,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self { val_fraction: 0.05, seed: 0, min_words: MIN_STORY_WORDS, max_words: MAX_STORY_WORDS }
    }
}

/// A story that `build` trimmed to `--max-words`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trimmed {
    pub uid: String,
    /// `FILE:LINE` of a JSONL record, or the `.txt` file.
    pub source: String,
    /// Words before and after trimming.
    pub words: usize,
    pub kept_words: usize,
    pub cut: Cut,
}

/// A story that `build` left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub uid: String,
    /// `FILE:LINE` of a JSONL record, or the `.txt` file.
    pub source: String,
    pub words: usize,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// Under `BuildOptions::min_words`.
    TooShort,
    /// Over `max_words`, and trimming left it under `min_words`.
    TooShortTrimmed,
    /// Over `max_words`, with no paragraph or sentence end within them to cut at.
    NoCutWithin,
    /// The title or premise already says "N words long", which would be read as the target.
    LengthInInstruction,
}

impl SkipReason {
    /// Why, in words, under `opts`' limits.
    pub fn describe(self, opts: &BuildOptions) -> String {
        let (min, max) = (opts.min_words, opts.max_words);
        match self {
            Self::TooShort => format!("under {min} words, --min-words"),
            Self::TooShortTrimmed => {
                format!("over {max} words, and under {min} once trimmed at a paragraph or sentence end")
            }
            Self::NoCutWithin => format!("over {max} words with no paragraph or sentence end within {max}"),
            Self::LengthInInstruction => {
                "title or premise says \"N words long\", which would be read as the target".into()
            }
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(&BuildOptions::default()))
    }
}

/// What `build_detailed` made: the split, the stories it trimmed (they are in the split
/// too) and the stories it left out.
#[derive(Debug, Clone)]
pub struct Built {
    pub train: Vec<Example>,
    pub val: Vec<Example>,
    pub trimmed: Vec<Trimmed>,
    pub skipped: Vec<Skipped>,
}

/// A story collection as (train, validation) examples, with the default word limits; see
/// `build_with`.
pub fn build(stories: &Path, val_fraction: f64, seed: u64) -> Result<(Vec<Example>, Vec<Example>)> {
    let built = build_detailed(stories, val_fraction, seed)?;
    Ok((built.train, built.val))
}

/// `build_with` the default word limits (`MIN_STORY_WORDS`, `MAX_STORY_WORDS`).
pub fn build_detailed(stories: &Path, val_fraction: f64, seed: u64) -> Result<Built> {
    build_with(stories, &BuildOptions { val_fraction, seed, ..BuildOptions::default() })
}

/// Reads a story collection (see `read_stories`), trims stories over `max_words` at a
/// paragraph or sentence end (`trim_story`), skips those under `min_words`, makes one
/// prompt per story asking for its own (kept) length rounded to 50 words, and splits the
/// prompts into train and validation sets, stratified by length bucket (see `split`). Both
/// sets keep the collection's order.
pub fn build_with(stories: &Path, opts: &BuildOptions) -> Result<Built> {
    let BuildOptions { val_fraction, seed, min_words, max_words } = *opts;
    check_fraction(val_fraction)?;
    if min_words > max_words {
        bail!(
            "--min-words {min_words} is over --max-words {max_words}: no story could be kept; lower --min-words or raise --max-words"
        );
    }
    let collection = read_stories(stories)?;
    let read = collection.len();
    let mut examples = Vec::with_capacity(read);
    let mut skipped = Vec::new();
    let mut trimmed = Vec::new();
    for story in collection {
        let words = count_words(&story.text);
        let mut skip = |reason| {
            skipped.push(Skipped { uid: story.uid.clone(), source: story.source.clone(), words, reason })
        };
        if words < min_words {
            skip(SkipReason::TooShort);
            continue;
        }
        // a trimmed story's kept text, words, and the record of the trim
        let (mut kept_text, mut kept_words, mut trim) = (None, words, None);
        if words > max_words {
            let Some((text, cut)) = trim_story(&story.text, max_words) else {
                skip(SkipReason::NoCutWithin);
                continue;
            };
            kept_words = count_words(&text);
            if kept_words < min_words {
                skip(SkipReason::TooShortTrimmed);
                continue;
            }
            let (uid, source) = (story.uid.clone(), story.source.clone());
            trim = Some(Trimmed { uid, source, words, kept_words, cut });
            kept_text = Some(text);
        }
        let target = target_words(kept_words);
        let premise = story.premise.clone().unwrap_or_else(|| premise_from_opening(&story.text));
        let instruction =
            format!("Write a story titled \"{}\". Premise: {}", story.title, end_with_full_stop(&premise));
        let prompt = story_prompt(&instruction, target);
        if requested_words(&prompt) != Some(target) {
            skip(SkipReason::LengthInInstruction);
            continue;
        }
        trimmed.extend(trim);
        examples.push(Example {
            uid: story.uid,
            prompt,
            target_word_count: target,
            story: Some(kept_text.unwrap_or(story.text)),
            reasoning: story.reasoning,
        });
    }
    if examples.is_empty() {
        bail!(
            "{}: all {read} stories were skipped (each is under {min_words} words, over {max_words} with no place to cut, or its title says \"N words long\"); nothing to train on; see --min-words and --max-words",
            stories.display()
        );
    }
    let (train, val) = split(examples, val_fraction, seed)?;
    Ok(Built { train, val, trimmed, skipped })
}

/// `text` ending in `.`, `!` or `?` (closing quotes allowed after it), so the length
/// sentence that follows is a sentence of its own.
fn end_with_full_stop(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let core = text.trim_end_matches(stories::is_closing_mark);
    if core.ends_with(['.', '!', '?']) {
        text
    } else {
        format!("{text}.")
    }
}

fn check_fraction(val_fraction: f64) -> Result<()> {
    if !(0.0..1.0).contains(&val_fraction) {
        bail!("the validation fraction must be at least 0 and under 1 (e.g. 0.05), not {val_fraction}");
    }
    Ok(())
}

/// Where a uid falls in the split order for `seed`: the first 8 bytes of
/// SHA-256(tag, seed, uid), so the order is the same on every machine.
pub fn split_key(uid: &str, seed: u64) -> u64 {
    let mut h = Sha256::new();
    h.update(b"polaris-split\0");
    h.update(seed.to_le_bytes());
    h.update(uid.as_bytes());
    let digest = h.finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// Splits examples into (train, validation). Validation takes round(n x val_fraction)
/// examples overall, shared out over the length buckets by largest remainder, so each
/// bucket gives within one example of its share; inside a bucket the examples with the
/// lowest `split_key` go to validation. Both sets keep the input order. Uids must be
/// unique.
pub fn split(examples: Vec<Example>, val_fraction: f64, seed: u64) -> Result<(Vec<Example>, Vec<Example>)> {
    check_fraction(val_fraction)?;
    let mut buckets: Vec<Vec<usize>> = vec![Vec::new(); LengthBucket::ALL.len()];
    for (i, e) in examples.iter().enumerate() {
        buckets[LengthBucket::of(e.target_word_count).index()].push(i);
    }
    let shares: Vec<f64> = buckets.iter().map(|b| b.len() as f64 * val_fraction).collect();
    let mut quota: Vec<usize> = shares.iter().map(|s| s.floor() as usize).collect();
    let total = (examples.len() as f64 * val_fraction).round() as usize;
    let mut by_remainder: Vec<usize> = (0..buckets.len()).collect();
    by_remainder
        .sort_by(|&a, &b| (shares[b] - shares[b].floor()).total_cmp(&(shares[a] - shares[a].floor())));
    let mut left = total.saturating_sub(quota.iter().sum());
    for b in by_remainder {
        if left == 0 {
            break;
        }
        if quota[b] < buckets[b].len() {
            quota[b] += 1;
            left -= 1;
        }
    }
    let mut is_val = vec![false; examples.len()];
    for (members, k) in buckets.iter_mut().zip(quota) {
        members.sort_by_cached_key(|&i| (split_key(&examples[i].uid, seed), examples[i].uid.clone()));
        for &i in members.iter().take(k) {
            is_val[i] = true;
        }
    }
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (e, v) in examples.into_iter().zip(is_val) {
        if v {
            val.push(e)
        } else {
            train.push(e)
        }
    }
    Ok((train, val))
}

/// SHA-256 of a file's bytes, as hex (a run records its dataset's).
pub fn file_sha256(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut file, &mut h).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(crate::reward::rubric::hex(&h.finalize()))
}
