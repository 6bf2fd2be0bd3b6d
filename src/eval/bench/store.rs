//! `judgements.jsonl`: one record per judge request answered (or failed), appended and
//! fsynced as it arrives (`RecordLog`: a line torn by a kill is dropped and its request asked
//! again). A record counts for its (system, prompt, sample, part) only while the request it
//! answered is the request that would be sent now (same SHA-256 over judge, messages and
//! schema), so an edited story, prompt or judge is judged again; a failed request is asked
//! again on every run.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{ItemKey, Task};
use crate::durable::records::RecordLog;
use crate::reward::judge::http::{Request, Usage};
use crate::reward::rubric::hex;

/// Which request a judgement answers: the item, the part and what was asked (its digest).
/// A batch's `batch.json` lists its requests by this too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestKey {
    pub system: String,
    /// Written `uid`; `prompt_uid` (earlier builds) still reads.
    #[serde(rename = "uid", alias = "prompt_uid")]
    pub prompt_uid: String,
    pub sample: usize,
    /// Which request of the item (WritingBench: the criterion's index; else 0).
    pub part: usize,
    pub request_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub task: Task,
    /// Its fields stand in the record itself, as they always have.
    #[serde(flatten)]
    pub request: RequestKey,
    /// The judge's answer as given; None when the request failed.
    pub answer: Option<String>,
    pub error: Option<String>,
    /// What the release's parse makes of this answer: the item's record (scores,
    /// justifications), or for WritingBench the criterion's score and reason.
    pub scores: Value,
    /// Tokens and cost (at batch prices for a batch).
    pub usage: Usage,
    /// The Batch API batch that answered it, if any.
    #[serde(default)]
    pub batch_id: Option<String>,
}

impl Judgement {
    pub fn key(&self) -> (ItemKey, usize) {
        let r = &self.request;
        ((r.system.clone(), r.prompt_uid.clone(), r.sample), r.part)
    }
}

/// The digest a judgement is tied to.
pub fn request_digest(judge: &str, req: &Request) -> String {
    let mut h = Sha256::new();
    for part in
        [judge, req.system.as_deref().unwrap_or(""), &req.user, &req.schema_name, &req.schema.to_string()]
    {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex(&h.finalize())
}

pub struct Store {
    log: RecordLog<Judgement>,
    /// The latest record per (item, part).
    latest: HashMap<(ItemKey, usize), Judgement>,
    pub torn_note: Option<String>,
}

impl Store {
    pub fn open(path: &Path) -> Result<Self> {
        let (log, records, torn_note) = RecordLog::<Judgement>::open(path, "eval bench")?;
        let mut latest = HashMap::new();
        for r in records {
            latest.insert(r.key(), r);
        }
        Ok(Self { log, latest, torn_note })
    }

    /// The standing answer of (item, part) for the request with `digest`: Some(Ok) answered,
    /// Some(Err) failed, None never asked (or asked in another form).
    pub fn standing(&self, key: &ItemKey, part: usize, digest: &str) -> Option<&Judgement> {
        self.latest.get(&(key.clone(), part)).filter(|j| j.request.request_sha256 == digest)
    }

    pub fn append(&mut self, j: Judgement) -> Result<()> {
        self.log.append(&j)?;
        self.latest.insert(j.key(), j);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_keeps_its_flat_fields_and_reads_the_older_prompt_uid() {
        let j = Judgement {
            task: Task::StoryQuality,
            request: RequestKey {
                system: "a".into(),
                prompt_uid: "p1".into(),
                sample: 0,
                part: 2,
                request_sha256: "d".into(),
            },
            answer: None,
            error: Some("timeout".into()),
            scores: Value::Null,
            usage: Usage::default(),
            batch_id: None,
        };
        let line = serde_json::to_string(&j).unwrap();
        assert!(
            line.starts_with(r#"{"task":"story_quality","system":"a","uid":"p1","sample":0,"part":2,"#),
            "{line}"
        );
        let older: Judgement = serde_json::from_str(&line.replace(r#""uid":"#, r#""prompt_uid":"#)).unwrap();
        assert_eq!(older, j);
    }
}
