//! The curation folder: `agents.jsonl`, every agent's output, one record per step, appended
//! and fsynced as each step ends (a kill loses at most the steps in flight, whose replies
//! the judge cache usually still holds); `curate.json`, the settings the records were made
//! with; and `pairs.jsonl`, the kept pairs, which the records determine (rebuilt whole on
//! every start, then appended to as pairs are kept).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::agents::{Candidate, Flawed, Reflection};
use super::retrieve::Retrieved;
use crate::durable::log::{AppendLog, Lock, Tail};
use crate::durable::write_atomic;
use crate::reward::judge::http::Usage;
use crate::reward::pairwise::PairwiseResult;
use crate::reward::rubric::hex;

pub const AGENTS: &str = "agents.jsonl";
pub const PAIRS: &str = "pairs.jsonl";
pub const MANIFEST: &str = "curate.json";

/// The agents, in the order they act on a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Positive,
    Negative,
    Judge,
    Reflect,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Positive, Role::Negative, Role::Judge, Role::Reflect];

    pub fn name(self) -> &'static str {
        match self {
            Role::Positive => "positive",
            Role::Negative => "negative",
            Role::Judge => "judge",
            Role::Reflect => "reflect",
        }
    }
}

/// How a prompt ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Both orders preferred the positive story and the reflector confirmed: a pair.
    Kept,
    /// An agent disagreed (the judge, or the reflector): no pair, and `why`.
    Rejected { by: Role, why: String },
}

/// What one step produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    Retrieve {
        retrieved: Vec<Retrieved>,
    },
    Positive {
        outcome: Result<Candidate, String>,
    },
    Negative {
        outcome: Result<Flawed, String>,
    },
    /// The positive story is A (`a_first`: shown first).
    Judge {
        result: PairwiseResult,
    },
    Reflect {
        outcome: Result<Reflection, String>,
    },
    Decided {
        decision: Decision,
    },
}

/// One line of `agents.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentRecord {
    pub uid: String,
    /// 16 hex digits of SHA-256 of the prompt's text, so a changed dataset row is caught.
    pub prompt: String,
    /// Who acted: an agent's judge spec (`openai:MODEL`), `tf-idf` for retrieval, `curate`
    /// for the decision.
    pub agent: String,
    #[serde(flatten)]
    pub step: Step,
    #[serde(default)]
    pub usage: Usage,
    #[serde(default)]
    pub cached: bool,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub repaired: bool,
}

impl AgentRecord {
    pub fn role(&self) -> Option<Role> {
        match &self.step {
            Step::Positive { .. } => Some(Role::Positive),
            Step::Negative { .. } => Some(Role::Negative),
            Step::Judge { .. } => Some(Role::Judge),
            Step::Reflect { .. } => Some(Role::Reflect),
            Step::Retrieve { .. } | Step::Decided { .. } => None,
        }
    }

    /// The step failed (an agent gave no usable answer, or a judge order failed): asked
    /// again on a re-run.
    pub fn failed(&self) -> bool {
        match &self.step {
            Step::Positive { outcome } => outcome.is_err(),
            Step::Negative { outcome } => outcome.is_err(),
            Step::Judge { result } => result.a_first.is_err() || result.b_first.is_err(),
            Step::Reflect { outcome } => outcome.is_err(),
            Step::Retrieve { .. } | Step::Decided { .. } => false,
        }
    }
}

pub fn prompt_id(prompt: &str) -> String {
    hex(&Sha256::digest(prompt.as_bytes()))[..16].to_string()
}

/// The settings the records of a folder were made with; a re-run must match them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub positive: String,
    pub negative: String,
    pub judge: String,
    pub reflect: String,
    /// `Principles::hash`, or none (the reflector checks against the pairwise criteria).
    pub principles: Option<String>,
    pub pairwise_prompt: String,
    pub retrieve: usize,
}

impl Manifest {
    /// Writes it on a first run; on a re-run, refuses settings other than the recorded ones,
    /// naming each that differs.
    pub fn check_or_write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST);
        if !path.exists() {
            return write_atomic(&path, format!("{}\n", serde_json::to_string_pretty(self)?).as_bytes());
        }
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let was: Manifest = serde_json::from_str(&text).map_err(|e| {
            anyhow!("{}: not a curation manifest ({e}); it is written by `prefs curate`", path.display())
        })?;
        let show = |o: &Option<String>| o.clone().unwrap_or_else(|| "none".into());
        let mut differ = vec![];
        for (flag, old, new) in [
            ("--positive", &was.positive, &self.positive),
            ("--negative", &was.negative, &self.negative),
            ("--judge", &was.judge, &self.judge),
            ("--reflect", &was.reflect, &self.reflect),
            ("--pairwise-prompt", &was.pairwise_prompt, &self.pairwise_prompt),
        ] {
            if old != new {
                differ.push(format!("{flag} was {old}, now {new}"));
            }
        }
        if was.principles != self.principles {
            differ.push(format!(
                "--principles was version {}, now {}",
                show(&was.principles),
                show(&self.principles)
            ));
        }
        if was.retrieve != self.retrieve {
            differ.push(format!("--retrieve was {}, now {}", was.retrieve, self.retrieve));
        }
        if !differ.is_empty() {
            bail!(
                "{} was curated with other settings ({}); a folder holds one curation: give the same \
                 flags to resume it, or choose another --out",
                dir.display(),
                differ.join("; ")
            );
        }
        Ok(())
    }
}

/// What the records say of one prompt so far: the latest usable output of each step.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub retrieved: Option<Vec<Retrieved>>,
    pub positive: Option<Candidate>,
    pub negative: Option<Flawed>,
    pub judge: Option<PairwiseResult>,
    pub reflect: Option<Reflection>,
    pub decision: Option<Decision>,
}

impl Progress {
    fn add(&mut self, step: &Step) {
        match step {
            Step::Retrieve { retrieved } => self.retrieved = Some(retrieved.clone()),
            Step::Positive { outcome: Ok(c) } => self.positive = Some(c.clone()),
            Step::Negative { outcome: Ok(f) } => self.negative = Some(f.clone()),
            Step::Judge { result } if result.a_first.is_ok() && result.b_first.is_ok() => {
                self.judge = Some(result.clone())
            }
            Step::Reflect { outcome: Ok(r) } => self.reflect = Some(r.clone()),
            Step::Decided { decision } => self.decision = Some(decision.clone()),
            _ => {}
        }
    }
}

/// `agents.jsonl`, open for appending and locked against a second `prefs curate`.
pub struct AgentLog {
    log: AppendLog,
}

/// What an existing `agents.jsonl` held.
pub struct Existing {
    pub records: Vec<AgentRecord>,
    /// Per uid: (prompt id, what is done).
    pub progress: HashMap<String, (String, Progress)>,
    /// Set when a torn last line was cut off.
    pub torn_note: Option<String>,
}

impl AgentLog {
    pub fn open(dir: &Path) -> Result<(Self, Existing)> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(AGENTS);
        let busy =
            "is in use by another `prefs curate` on the same --out; wait for it or choose another --out";
        let (log, torn) = AppendLog::open(&path, Lock::Exclusive { busy }, Tail::Cut)?;
        let torn_note = torn.map(|line| {
            format!(
                "note: {}:{line}: a record cut off mid-write (a kill?) was dropped; its step is asked again",
                path.display()
            )
        });
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut existing = Existing { records: vec![], progress: HashMap::new(), torn_note };
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let r: AgentRecord = serde_json::from_slice(line).map_err(|e| {
                anyhow!(
                    "{}:{}: not a curation record ({e}); the file is written by `polaris-tui prefs curate`: \
                     remove that line to ask its step again",
                    path.display(),
                    i + 1
                )
            })?;
            existing.add(r);
        }
        Ok((Self { log }, existing))
    }

    pub fn path(&self) -> &Path {
        self.log.path()
    }

    /// Appends one record and waits for it to reach the disk.
    pub fn append(&mut self, record: &AgentRecord) -> Result<()> {
        self.log.append(record)
    }
}

impl Existing {
    pub fn add(&mut self, r: AgentRecord) {
        let entry =
            self.progress.entry(r.uid.clone()).or_insert_with(|| (r.prompt.clone(), Progress::default()));
        entry.1.add(&r.step);
        self.records.push(r);
    }

    /// The prompt's progress; a record made for another text of the same uid is an error.
    pub fn progress(&self, uid: &str, prompt: &str, path: &Path) -> Result<Progress> {
        match self.progress.get(uid) {
            None => Ok(Progress::default()),
            Some((id, p)) if *id == prompt_id(prompt) => Ok(p.clone()),
            Some(_) => bail!(
                "{}: uid `{uid}` was curated for another prompt text (the dataset changed since); \
                 use a new --out, or remove that uid's records",
                path.display()
            ),
        }
    }
}

/// `pairs.jsonl` of the folder.
pub fn pairs_path(dir: &Path) -> PathBuf {
    dir.join(PAIRS)
}
