//! `prefs curate`: preference pairs that agents write and check (the second study's
//! multi-agent rejection sampling). For each prompt of a dataset:
//!
//! 1. retrieval: the K human stories whose prompts read most like it (TF-IDF cosine);
//! 2. the positive agent picks one of them or writes a good story;
//! 3. the negative agent rewrites that story with flaws built in;
//! 4. the judge agent compares the two in both orders (`judge_pair`, the positive as A);
//! 5. when both orders prefer the positive, the reflect agent checks the verdict against the
//!    principles (or, without a principles file, the pairwise criteria).
//!
//! The pair is kept only when the judge prefers the positive in both orders and the reflector
//! confirms. Every step's output is a record of `agents.jsonl` (see `store`); a prompt with a
//! decision is done, and a re-run picks up every other prompt at its first step without a
//! usable output (so a failed agent is asked again, and nothing that succeeded is).

pub mod agents;
pub mod retrieve;
pub mod store;
pub mod summary;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Result};
use tokio::task::JoinSet;

use self::agents::{Asked, Offered, Standard};
use self::retrieve::{PromptIndex, Retrieved};
use self::store::{prompt_id, AgentLog, AgentRecord, Decision, Existing, Progress, Role, Step};
use super::pair::{write_pairs, Pair};
use crate::durable::log::{AppendLog, Lock, Tail};
use crate::reward::judge::http::Usage;
use crate::reward::pairwise::{judge_pair, PairwisePrompt, PairwiseResult, Shown};
use crate::reward::JudgeClient;
use crate::train::data::Example;

/// `source` of every pair this command keeps.
pub const SOURCE: &str = "curate";

/// The four agents' clients (one client per distinct spec, shared).
pub struct Agents {
    pub positive: Arc<JudgeClient>,
    pub negative: Arc<JudgeClient>,
    pub judge: Arc<JudgeClient>,
    pub reflect: Arc<JudgeClient>,
}

impl Agents {
    fn client(&self, role: Role) -> &Arc<JudgeClient> {
        match role {
            Role::Positive => &self.positive,
            Role::Negative => &self.negative,
            Role::Judge => &self.judge,
            Role::Reflect => &self.reflect,
        }
    }

    /// Most prompts worth having in flight: each client limits its own requests.
    fn in_flight(&self) -> usize {
        Role::ALL.iter().map(|&r| self.client(r).settings.concurrency).max().unwrap_or(1).max(1)
    }
}

/// Everything a curation runs with.
pub struct Curation {
    pub agents: Agents,
    /// What the positive agent meets, the negative breaks and the reflector checks.
    pub standard: Standard,
    /// The judge agent's prompt.
    pub pairwise: PairwisePrompt,
    /// Stories retrieved per prompt (K).
    pub retrieve: usize,
    /// Share of prompts whose pairs are held out (`Pair::split_for`).
    pub heldout: f64,
}

/// How a prompt's turn ended in this run.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Decided(Decision),
    /// The agent gave no usable answer (after retries and the repair retry); asked again on
    /// a re-run.
    Failed(Role),
}

/// A dataset row as curation sees it.
struct Row {
    uid: String,
    prompt: String,
    story: Option<String>,
}

struct Shared {
    curation: Curation,
    rows: Vec<Row>,
    by_uid: HashMap<String, usize>,
    index: PromptIndex,
    /// Rows with a human story: what retrieval picks from.
    pool: Vec<usize>,
    out: Mutex<Writer>,
}

/// The folder's two append-only files and what this run added.
struct Writer {
    agents: AgentLog,
    pairs: AppendLog,
    added: Vec<AgentRecord>,
}

/// What `run` did: the folder's records (before and now) and the notes to show.
pub struct Finished {
    pub existing: Existing,
    /// Prompts worked on now, by outcome.
    pub now: Vec<Outcome>,
    /// Prompts decided before this run (skipped).
    pub skipped: usize,
    pub notes: Vec<String>,
    pub pairs_path: PathBuf,
}

/// Curates `examples` into `dir` (agents.jsonl, pairs.jsonl), resuming what the folder holds;
/// `start` hears how many prompts are to be worked on, `done` is called as each prompt's
/// turn ends. `limit` caps the prompts worked on now.
pub async fn run(
    curation: Curation,
    examples: &[Example],
    dir: &Path,
    limit: Option<usize>,
    start: impl FnOnce(usize),
    mut done: impl FnMut(&Outcome),
) -> Result<Finished> {
    let (agents, existing) = AgentLog::open(dir)?;
    let mut notes: Vec<String> = existing.torn_note.iter().cloned().collect();
    let rows: Vec<Row> = examples
        .iter()
        .map(|e| Row { uid: e.uid.clone(), prompt: e.prompt.clone(), story: e.story.clone() })
        .collect();
    let pool: Vec<usize> =
        (0..rows.len()).filter(|&i| rows[i].story.as_deref().is_some_and(|s| !s.trim().is_empty())).collect();
    if pool.is_empty() {
        bail!(
            "the dataset holds no human stories (`story`) to retrieve; curation needs them as good examples"
        );
    }
    let by_uid: HashMap<String, usize> = rows.iter().enumerate().map(|(i, r)| (r.uid.clone(), i)).collect();
    let mut todo = Vec::new();
    let mut skipped = 0;
    for (i, r) in rows.iter().enumerate() {
        let progress = existing.progress(&r.uid, &r.prompt, agents.path())?;
        if progress.decision.is_some() {
            skipped += 1;
        } else {
            todo.push((i, progress));
        }
    }
    todo.truncate(limit.unwrap_or(usize::MAX));
    start(todo.len());
    let gone = existing.progress.keys().filter(|u| !by_uid.contains_key(*u)).count();
    if gone > 0 {
        notes.push(format!(
            "note: {} holds records of {gone} prompt(s) not in this dataset; their pairs are left out of {}",
            agents.path().display(),
            store::PAIRS
        ));
    }
    // pairs.jsonl is what the records say: rebuilt whole, then appended to as pairs are kept
    let pairs_path = store::pairs_path(dir);
    let kept: Vec<Pair> = rows
        .iter()
        .filter_map(|r| {
            let (_, p) = existing.progress.get(&r.uid)?;
            (p.decision == Some(Decision::Kept)).then(|| pair_of(r, p, curation.heldout)).flatten()
        })
        .collect();
    write_pairs(&pairs_path, &kept)?;
    let (pairs, _) = AppendLog::open(&pairs_path, Lock::None, Tail::Cut)?;
    let index = PromptIndex::new(&rows.iter().map(|r| r.prompt.as_str()).collect::<Vec<_>>());
    let in_flight = curation.agents.in_flight();
    let shared = Arc::new(Shared {
        curation,
        rows,
        by_uid,
        index,
        pool,
        out: Mutex::new(Writer { agents, pairs, added: vec![] }),
    });

    let mut queue = todo.into_iter();
    let mut running = JoinSet::new();
    let mut now = Vec::new();
    loop {
        while running.len() < in_flight {
            let Some((row, progress)) = queue.next() else { break };
            let shared = shared.clone();
            running.spawn(async move { curate_prompt(&shared, row, progress).await });
        }
        let Some(finished) = running.join_next().await else { break };
        let outcome = finished.map_err(|e| anyhow::anyhow!("a curation task failed: {e}"))??;
        done(&outcome);
        now.push(outcome);
    }
    let shared = Arc::into_inner(shared).expect("every task has ended");
    let writer = shared.out.into_inner().expect("writer lock");
    let mut existing = existing;
    for r in writer.added {
        existing.add(r);
    }
    Ok(Finished { existing, now, skipped, notes, pairs_path })
}

/// The kept pair of a prompt, from its positive and negative stories.
fn pair_of(row: &Row, p: &Progress, heldout: f64) -> Option<Pair> {
    Some(Pair {
        uid: row.uid.clone(),
        prompt: row.prompt.clone(),
        chosen: p.positive.as_ref()?.story.clone(),
        rejected: p.negative.as_ref()?.story.clone(),
        source: SOURCE.into(),
        weight: 1.0,
        split: Pair::split_for(&row.uid, heldout),
    })
}

impl Shared {
    /// Appends a record of `row` (and, for a kept decision, its pair) durably.
    fn record(
        &self,
        row: &Row,
        agent: &str,
        step: Step,
        asked: Option<(Usage, bool, u32, bool)>,
    ) -> Result<()> {
        let (usage, cached, attempts, repaired) = asked.unwrap_or_default();
        let record = AgentRecord {
            uid: row.uid.clone(),
            prompt: prompt_id(&row.prompt),
            agent: agent.to_string(),
            step,
            usage,
            cached,
            attempts,
            repaired,
        };
        let mut out = self.out.lock().expect("writer lock");
        out.agents.append(&record)?;
        out.added.push(record);
        Ok(())
    }

    fn keep(&self, pair: &Pair) -> Result<()> {
        self.out.lock().expect("writer lock").pairs.append(pair)
    }

    fn label(&self, role: Role) -> String {
        self.curation.agents.client(role).spec.label()
    }

    /// Records an agent's answer; Err(outcome) when it failed.
    fn asked<T: Clone>(
        &self,
        row: &Row,
        role: Role,
        a: Asked<T>,
        step: impl Fn(Result<T, String>) -> Step,
    ) -> Result<Result<T, Outcome>> {
        let meta = Some((a.usage, a.cached, a.attempts, a.repaired));
        self.record(row, &self.label(role), step(a.outcome.clone()), meta)?;
        Ok(a.outcome.map_err(|_| Outcome::Failed(role)))
    }

    /// The stories retrieved for `row`: recorded ones when every uid is still in the
    /// dataset, else retrieved (and recorded) now.
    fn offered(&self, i: usize, recorded: Option<Vec<Retrieved>>) -> Result<Vec<Offered>> {
        let row = &self.rows[i];
        let resolve = |r: &[Retrieved]| -> Option<Vec<Offered>> {
            r.iter()
                .map(|x| {
                    let o = &self.rows[*self.by_uid.get(&x.uid)?];
                    Some(Offered { uid: o.uid.clone(), prompt: o.prompt.clone(), story: o.story.clone()? })
                })
                .collect()
        };
        if let Some(offered) = recorded.as_deref().and_then(resolve) {
            return Ok(offered);
        }
        let retrieved: Vec<Retrieved> = self
            .index
            .nearest(i, &self.pool, self.curation.retrieve)
            .into_iter()
            .map(|(r, similarity)| Retrieved { uid: self.rows[r].uid.clone(), similarity })
            .collect();
        let offered = resolve(&retrieved).expect("retrieved from the pool");
        self.record(row, "tf-idf", Step::Retrieve { retrieved }, None)?;
        Ok(offered)
    }
}

/// Whether both orders preferred A (the positive story).
fn both_prefer_a(r: &PairwiseResult) -> bool {
    matches!((&r.a_first, &r.b_first), (Ok(af), Ok(bf)) if af.winner == Shown::First && bf.winner == Shown::Second)
}

/// The judge's two verdicts in words, for a rejection.
fn describe(r: &PairwiseResult) -> String {
    let word = |v: &Result<crate::reward::pairwise::Verdict, String>, a_first: bool| match v {
        Ok(v) => match (v.winner, a_first) {
            (Shown::Tie, _) => "a tie",
            (Shown::First, true) | (Shown::Second, false) => "the positive",
            _ => "the negative",
        },
        Err(_) => "no verdict",
    };
    format!(
        "positive shown first: {}; positive shown second: {}",
        word(&r.a_first, true),
        word(&r.b_first, false)
    )
}

/// One prompt through the agents, from its first step without a usable output.
async fn curate_prompt(s: &Shared, i: usize, p: Progress) -> Result<Outcome> {
    let row = &s.rows[i];
    let (agents, standard) = (&s.curation.agents, &s.curation.standard);
    let positive = match p.positive {
        Some(c) => c,
        None => {
            let offered = s.offered(i, p.retrieved)?;
            let a = agents::positive(&agents.positive, standard, &row.prompt, &offered).await;
            match s.asked(row, Role::Positive, a, |outcome| Step::Positive { outcome })? {
                Ok(c) => c,
                Err(o) => return Ok(o),
            }
        }
    };
    let negative = match p.negative {
        Some(f) => f,
        None => {
            let a = agents::negative(&agents.negative, standard, &row.prompt, &positive.story).await;
            match s.asked(row, Role::Negative, a, |outcome| Step::Negative { outcome })? {
                Ok(f) => f,
                Err(o) => return Ok(o),
            }
        }
    };
    let verdict = match p.judge {
        Some(v) => v,
        None => {
            let v = judge_pair(
                &agents.judge,
                &s.curation.pairwise,
                &row.prompt,
                &positive.story,
                &negative.story,
            )
            .await;
            let meta = Some((v.usage, false, 0, false));
            s.record(row, &s.label(Role::Judge), Step::Judge { result: v.clone() }, meta)?;
            if v.a_first.is_err() || v.b_first.is_err() {
                return Ok(Outcome::Failed(Role::Judge));
            }
            v
        }
    };
    let decision = if !both_prefer_a(&verdict) {
        Decision::Rejected { by: Role::Judge, why: describe(&verdict) }
    } else {
        let reflection = match p.reflect {
            Some(r) => r,
            None => {
                let a = agents::reflect(
                    &agents.reflect,
                    standard,
                    &row.prompt,
                    &positive.story,
                    &negative.story,
                    &verdict,
                )
                .await;
                match s.asked(row, Role::Reflect, a, |outcome| Step::Reflect { outcome })? {
                    Ok(r) => r,
                    Err(o) => return Ok(o),
                }
            }
        };
        if reflection.confirm {
            Decision::Kept
        } else {
            Decision::Rejected { by: Role::Reflect, why: reflection.reason.clone() }
        }
    };
    s.record(row, "curate", Step::Decided { decision: decision.clone() }, None)?;
    if decision == Decision::Kept {
        let done = Progress { positive: Some(positive), negative: Some(negative), ..Progress::default() };
        let pair = pair_of(row, &done, s.curation.heldout).expect("both stories are there");
        s.keep(&pair)?;
    }
    Ok(Outcome::Decided(decision))
}
