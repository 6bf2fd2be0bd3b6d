//! The lines of an annotator's judgment file. The file is only ever appended to: the
//! first record is the blinding, then judgments, skips and undos in the order given.

use serde::{Deserialize, Serialize};

use super::blinding::Presentation;

/// Which side the annotator preferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Left,
    Right,
    Tie,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// The annotator's order and sides (first line of the file).
    Blinding { annotator: String, seed: u64, order: Vec<Presentation> },
    /// `left` and `right` name the systems as shown, so each judgment unblinds on its own.
    Judgment {
        #[serde(rename = "uid", alias = "prompt_uid")]
        prompt_uid: String,
        left: String,
        right: String,
        verdict: Verdict,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
        at_unix_s: u64,
    },
    /// Put off: the item comes back after the items skipped fewer times.
    Skip {
        #[serde(rename = "uid", alias = "prompt_uid")]
        prompt_uid: String,
        at_unix_s: u64,
    },
    /// Withdraws the most recent judgment still standing, which must be this item's.
    Undo {
        #[serde(rename = "uid", alias = "prompt_uid")]
        prompt_uid: String,
        at_unix_s: u64,
    },
    /// The line before this one is a write torn by a crash, never acknowledged; readers
    /// skip it.
    SealedTornLine { at_unix_s: u64 },
}

impl Record {
    pub fn judgment(p: &Presentation, verdict: Verdict, comment: Option<String>) -> Self {
        Record::Judgment {
            prompt_uid: p.prompt_uid.clone(),
            left: p.left.clone(),
            right: p.right.clone(),
            verdict,
            comment,
            at_unix_s: now(),
        }
    }

    pub fn skip(prompt_uid: &str) -> Self {
        Record::Skip { prompt_uid: prompt_uid.into(), at_unix_s: now() }
    }

    pub fn undo(prompt_uid: &str) -> Self {
        Record::Undo { prompt_uid: prompt_uid.into(), at_unix_s: now() }
    }
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
