//! `judgements.jsonl`: one record per judged pair, appended and fsynced as each pair
//! finishes, so a killed `eval elo` loses at most the pairs in flight and a re-run judges
//! only what is missing. A last line without its newline is a write torn by a kill: it
//! was never acknowledged, so it is cut off (with a note) and its pair judged again.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::durable::log::{AppendLog, Lock, Tail};
use crate::reward::pairwise::{PairwisePrompt, PairwiseResult};
use crate::reward::rubric::hex;

pub const JUDGEMENTS: &str = "judgements.jsonl";

/// One judged pair.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JudgementRecord {
    /// Written `uid`; `prompt_uid` (earlier builds) still reads.
    #[serde(rename = "uid", alias = "prompt_uid")]
    pub prompt_uid: String,
    /// Sample index within (prompt, system), see `elo_pairs`.
    pub sample: usize,
    pub a: String,
    pub b: String,
    /// `JudgeSpec::label`.
    pub judge: String,
    /// `pairwise_prompt_id`: which pairwise prompt asked.
    pub pairwise_prompt: String,
    /// `story_id` of A's and B's stories, so a changed generation file is caught.
    pub stories: [String; 2],
    /// Both orders' verdicts (or errors), the combined preference and the usage.
    pub result: PairwiseResult,
    /// The hash of the principles the judge read; absent without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principles: Option<String>,
}

impl JudgementRecord {
    /// Both orders gave a verdict; otherwise the pair is judged again on a re-run.
    pub fn complete(&self) -> bool {
        self.result.a_first.is_ok() && self.result.b_first.is_ok()
    }

    /// The same judgement seen from the other side: A and B swapped.
    pub fn flipped(&self) -> Self {
        let mut r = self.clone();
        std::mem::swap(&mut r.a, &mut r.b);
        r.stories.swap(0, 1);
        std::mem::swap(&mut r.result.a_first, &mut r.result.b_first);
        r.result.preference = -r.result.preference;
        r
    }
}

/// Short id of a pairwise prompt: its name and 16 hex digits of SHA-256 over what the judge
/// is sent (system text and user template).
pub fn pairwise_prompt_id(p: &PairwisePrompt) -> String {
    let mut h = Sha256::new();
    h.update(p.system.as_bytes());
    h.update([0]);
    h.update(p.user_template.as_bytes());
    format!("{}@{}", p.name, &hex(&h.finalize())[..16])
}

/// 16 hex digits of SHA-256 of a story.
pub fn story_id(story: &str) -> String {
    hex(&Sha256::digest(story.as_bytes()))[..16].to_string()
}

/// (prompt_uid, sample, a, b).
pub type PairKey = (String, usize, String, String);

/// The judgement file of an output directory, open for appending and locked.
pub struct JudgementFile {
    file: AppendLog,
    /// Lines the file holds.
    lines: usize,
}

/// What an existing file held.
pub struct Existing {
    /// The latest record per pair, line number beside it.
    pub records: HashMap<PairKey, (usize, JudgementRecord)>,
    /// Records that repeat an earlier pair (a failed pair judged again): the later one counts.
    pub superseded: usize,
    /// Set when a torn last line was cut off.
    pub torn_note: Option<String>,
}

impl JudgementFile {
    /// Opens (creating) `dir/judgements.jsonl`, locks it against a second `eval elo` on the
    /// same directory, cuts off a torn last line, and reads its records. Every record must
    /// come from `judge` with `prompt_id`: one directory holds one judge's verdicts.
    pub fn open(dir: &Path, judge: &str, prompt_id: &str) -> Result<(Self, Existing)> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(JUDGEMENTS);
        let busy = "is in use by another `eval elo` on the same --out; wait for it or choose another --out";
        let (file, torn) = AppendLog::open(&path, Lock::Exclusive { busy }, Tail::Cut)?;
        let torn_note = torn.map(|line| {
            format!(
                "note: {}:{line}: a record cut off mid-write (a kill?) was dropped; its pair is judged again",
                path.display()
            )
        });
        // whole lines only: the torn one was cut off above
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut records = HashMap::new();
        let mut superseded = 0;
        let lines = bytes.iter().filter(|&&b| b == b'\n').count();
        for (i, line) in bytes.split(|&b| b == b'\n').take(lines).enumerate() {
            let number = i + 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let r: JudgementRecord = serde_json::from_slice(line).map_err(|e| {
                anyhow!(
                    "{}:{number}: not a judgement record ({e}); the file is written by `polaris-tui eval elo`: \
                     remove that line to judge its pair again",
                    path.display()
                )
            })?;
            if r.judge != judge || r.pairwise_prompt != prompt_id {
                bail!(
                    "{}:{number} was judged by `{}` with pairwise prompt `{}`, but this run asks `{judge}` with `{prompt_id}`; \
                     an output directory holds one judge's verdicts: use another --out, or the same --judge, \
                     --pairwise-prompt and --principles as before",
                    path.display(),
                    r.judge,
                    r.pairwise_prompt
                );
            }
            let key = (r.prompt_uid.clone(), r.sample, r.a.clone(), r.b.clone());
            if records.insert(key, (number, r)).is_some() {
                superseded += 1;
            }
        }
        Ok((Self { file, lines }, Existing { records, superseded, torn_note }))
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Appends one record and waits for it to reach the disk; returns its line number.
    pub fn append(&mut self, record: &JudgementRecord) -> Result<usize> {
        self.file.append(record)?;
        self.lines += 1;
        Ok(self.lines)
    }
}

impl Existing {
    /// Adds a record just appended at `line`; it supersedes any earlier one of its pair.
    pub fn add(&mut self, line: usize, r: JudgementRecord) {
        let key = (r.prompt_uid.clone(), r.sample, r.a.clone(), r.b.clone());
        if self.records.insert(key, (line, r)).is_some() {
            self.superseded += 1;
        }
    }

    /// Records of pairs that are not among `keys` (either way round): stories no longer in
    /// the generation files given.
    pub fn unmatched(&self, keys: &std::collections::HashSet<PairKey>) -> usize {
        self.records
            .keys()
            .filter(|(uid, s, a, b)| {
                !keys.contains(&(uid.clone(), *s, a.clone(), b.clone()))
                    && !keys.contains(&(uid.clone(), *s, b.clone(), a.clone()))
            })
            .count()
    }

    /// The record for a pair, seen from `a`'s side whichever order it was stored in, with
    /// its line number.
    pub fn get(&self, uid: &str, sample: usize, a: &str, b: &str) -> Option<(usize, JudgementRecord)> {
        let key = |x: &str, y: &str| (uid.to_string(), sample, x.to_string(), y.to_string());
        if let Some((n, r)) = self.records.get(&key(a, b)) {
            return Some((*n, r.clone()));
        }
        self.records.get(&key(b, a)).map(|(n, r)| (*n, r.flipped()))
    }
}
