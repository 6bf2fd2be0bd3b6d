//! A refinement's folder, append-only:
//! ```text
//! DIR/refine.json          what the refinement starts from (written once; a resume must match)
//! DIR/start/               the starting principles.toml and strategies.toml
//! DIR/round-N/             principles.toml, strategies.toml (what round N produced),
//!                          flawed.jsonl (the generator's stories), verdicts.jsonl (the detector's)
//! DIR/rounds.jsonl         one line per complete round: rates, reflection, usage
//! DIR/agent-cache/         the agents' replies (a resumed round asks again from the cache)
//! ```
//! A round's files are written whole (temporary, fsync, rename) before its line is appended
//! to rounds.jsonl (append + fsync): the line is the round's commit. A round without its
//! line (the process was stopped in it) is redone on resume, its files overwritten.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::super::strategies::Strategies;
use super::super::Principles;
use crate::durable::records::RecordLog;
use crate::durable::write_atomic;
use crate::reward::judge::http::Usage;

const FORMAT: &str = "polaris-principles-refine/1";
const MANIFEST: &str = "refine.json";
pub const ROUNDS: &str = "rounds.jsonl";
pub const CACHE: &str = "agent-cache";
const START: &str = "start";

/// What a refinement starts from; a resume with other inputs is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub data: String,
    pub data_sha256: String,
    pub principles: String,
    pub strategies: String,
    pub batch: usize,
    pub generator: String,
    pub detector: String,
    pub reflector: String,
}

impl Manifest {
    pub fn new(
        data: &Path,
        data_sha256: String,
        principles: &Principles,
        strategies: &Strategies,
        batch: usize,
        agents: [String; 3],
    ) -> Self {
        let [generator, detector, reflector] = agents;
        Self {
            format: FORMAT.into(),
            data: data.display().to_string(),
            data_sha256,
            principles: principles.hash(),
            strategies: super::strategies_hash(strategies),
            batch,
            generator,
            detector,
            reflector,
        }
    }
}

/// How a round's reflection went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reflection {
    /// The reflector revised the principles and strategies.
    Revised,
    /// The reflector gave no usable revision (after the repair retry): the round's lists are
    /// the ones it started with.
    Failed,
}

/// One line of rounds.jsonl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    pub round: usize,
    /// The hash of the principles the detector judged with this round.
    pub principles_used: String,
    /// The hash of the principles this round produced (round-N/principles.toml).
    pub principles: String,
    /// Flawed stories judged, and how many the detector caught.
    pub flawed: usize,
    pub caught: usize,
    /// caught / flawed; None when no flawed story was judged.
    pub detection_rate: Option<f64>,
    /// Human stories judged, and how many the detector flagged.
    pub human: usize,
    pub flagged: usize,
    /// flagged / human; None when no human story was judged.
    pub false_alarm_rate: Option<f64>,
    pub reflection: Reflection,
    /// Why the reflection failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reflection_error: Option<String>,
    /// The reflector's notes on its revision.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
    /// Agent calls that gave nothing usable (the generator's and the detector's), with why.
    pub failures: Vec<String>,
    /// Tokens and dollars of the round's calls (cache hits cost nothing).
    pub usage: Usage,
    pub seconds: f64,
}

/// The folder of one refinement, its rounds.jsonl open for appending.
pub struct RefineDir {
    pub dir: PathBuf,
    log: RecordLog<RoundRecord>,
}

impl RefineDir {
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST)
    }

    pub fn round_dir(&self, round: usize) -> PathBuf {
        self.dir.join(format!("round-{round}"))
    }

    fn start_dir(&self) -> PathBuf {
        self.dir.join(START)
    }

    /// Opens the folder: a new one gets the manifest and the starting lists; an existing one
    /// must have been started from the same inputs. Returns the rounds done and the note
    /// about a torn last line, if one was dropped.
    pub fn open(
        dir: &Path,
        manifest: &Manifest,
        principles: &Principles,
        strategies: &Strategies,
    ) -> Result<(Self, Vec<RoundRecord>, Option<String>)> {
        std::fs::create_dir_all(dir).with_context(|| format!("--out {}: cannot create it", dir.display()))?;
        let path = dir.join(MANIFEST);
        if path.exists() {
            let text =
                std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let old: Manifest = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a refinement manifest", path.display()))?;
            if &old != manifest {
                bail!(
                    "{} holds a refinement started from other inputs ({}); give the same --data, --principles, \
                     --strategies, --batch and agents to continue it, or a new --out folder",
                    dir.display(),
                    difference(&old, manifest)
                );
            }
        } else {
            let start = dir.join(START);
            std::fs::create_dir_all(&start)?;
            write_atomic(&start.join("principles.toml"), principles.to_toml().as_bytes())?;
            write_atomic(&start.join("strategies.toml"), strategies.to_toml().as_bytes())?;
            write_atomic(&path, format!("{}\n", serde_json::to_string_pretty(manifest)?).as_bytes())?;
        }
        let (log, rounds, note) = RecordLog::<RoundRecord>::open(&dir.join(ROUNDS), "principles refine")?;
        for (i, r) in rounds.iter().enumerate() {
            if r.round != i + 1 {
                bail!(
                    "{}: line {} is round {}, expected round {}; the file was edited: restore it or start a new --out",
                    dir.join(ROUNDS).display(),
                    i + 1,
                    r.round,
                    i + 1
                );
            }
        }
        Ok((Self { dir: dir.to_path_buf(), log }, rounds, note))
    }

    /// The principles file after `round` rounds (0: the starting one).
    pub fn principles_path(&self, round: usize) -> PathBuf {
        let dir = if round == 0 { self.start_dir() } else { self.round_dir(round) };
        dir.join("principles.toml")
    }

    /// The principles and strategies after `round` rounds (0: the starting ones), read back
    /// from the folder and checked against the record's hash.
    pub fn lists_after(
        &self,
        round: usize,
        record: Option<&RoundRecord>,
    ) -> Result<(Principles, Strategies)> {
        let dir = if round == 0 { self.start_dir() } else { self.round_dir(round) };
        let principles = Principles::load(&dir.join("principles.toml"))?;
        let strategies = Strategies::load(&dir.join("strategies.toml"))?;
        if let Some(r) = record {
            if principles.hash() != r.principles {
                bail!(
                    "{}: its hash {} is not the {} that {} recorded for round {round}; the file was edited: restore it \
                     or start a new --out",
                    dir.join("principles.toml").display(),
                    principles.hash(),
                    r.principles,
                    ROUNDS
                );
            }
        }
        Ok((principles, strategies))
    }

    /// Commits a round: its files, each whole and renamed into place, then its line in
    /// rounds.jsonl (appended and fsynced).
    pub fn commit_round(
        &mut self,
        record: &RoundRecord,
        principles: &Principles,
        strategies: &Strategies,
        flawed: &[serde_json::Value],
        verdicts: &[serde_json::Value],
    ) -> Result<()> {
        let dir = self.round_dir(record.round);
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let jsonl =
            |rows: &[serde_json::Value]| -> String { rows.iter().map(|r| format!("{r}\n")).collect() };
        write_atomic(&dir.join("flawed.jsonl"), jsonl(flawed).as_bytes())?;
        write_atomic(&dir.join("verdicts.jsonl"), jsonl(verdicts).as_bytes())?;
        write_atomic(&dir.join("strategies.toml"), strategies.to_toml().as_bytes())?;
        write_atomic(&dir.join("principles.toml"), principles.to_toml().as_bytes())?;
        self.log.append(record)
    }
}

fn difference(old: &Manifest, new: &Manifest) -> String {
    let fields = [
        ("data", &old.data, &new.data),
        ("the data's content (sha256)", &old.data_sha256, &new.data_sha256),
        ("starting principles (hash)", &old.principles, &new.principles),
        ("starting strategies (hash)", &old.strategies, &new.strategies),
        ("generator", &old.generator, &new.generator),
        ("detector", &old.detector, &new.detector),
        ("reflector", &old.reflector, &new.reflector),
    ];
    for (what, a, b) in fields {
        if a != b {
            return format!("{what}: {a} there, {b} here");
        }
    }
    if old.batch != new.batch {
        return format!("batch: {} there, {} here", old.batch, new.batch);
    }
    format!("format {} there", old.format)
}
