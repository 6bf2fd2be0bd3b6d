//! `principles refine`: principles refined adversarially, round by round (the second study's
//! method, RECIPE.md). Each round takes a batch of dataset rows with their human stories:
//! 1. the generator spoils each human story by a bad-sample strategy (the strategies in
//!    turn), making flawed stories;
//! 2. the detector judges every flawed story and every human story with the current
//!    principles: the detection rate is the share of flawed stories it flags, the false-alarm
//!    rate the share of human stories it flags;
//! 3. the reflector revises the principles from what slipped through (and what the human
//!    stories were wrongly flagged for) and the strategies from what was caught.
//!
//! The refinement ends at the round limit, or when the detection rate has not improved on
//! its best for `patience` rounds. Everything lands in an append-only folder (store.rs) and a
//! stopped refinement continues from its last complete round.

pub mod agents;
pub mod store;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use serde_json::json;
use sha2::{Digest, Sha256};

use self::agents::{FalseAlarm, Outcome};
use self::store::{RefineDir, Reflection, RoundRecord};
use super::strategies::Strategies;
use super::Principles;
use crate::eval::length::run::Progress;
use crate::reward::judge::http::Usage;
use crate::reward::JudgeClient;

/// The three agents, each a judge model with its own client (cache, limit, accounting).
pub struct Agents {
    pub generator: Arc<JudgeClient>,
    pub detector: Arc<JudgeClient>,
    pub reflector: Arc<JudgeClient>,
}

/// When to stop, and how much each round does.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Rounds at most (counting the rounds done before a resume).
    pub rounds: usize,
    /// Dataset rows per round: one flawed story and one human story each.
    pub batch: usize,
    /// Stop when the detection rate has not beaten its best for this many rounds.
    pub patience: usize,
}

/// A dataset row with its human story: the prompt the generator spoils a story for, and the
/// good example the detector must pass.
#[derive(Debug, Clone)]
pub struct Row {
    pub uid: String,
    pub prompt: String,
    pub story: String,
}

/// Why the refinement stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// `--rounds` rounds are done.
    RoundLimit(usize),
    /// The detection rate has not beaten `best` (reached in round `at`) for `patience` rounds.
    Plateau { patience: usize, best: Option<f64>, at: Option<usize> },
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::RoundLimit(n) => write!(f, "reached the round limit (--rounds {n})"),
            Self::Plateau { patience, best: Some(b), at: Some(r) } => write!(
                f,
                "the detection rate has not improved for {patience} rounds (--patience {patience}; best {:.1}% in round {r})",
                b * 100.0
            ),
            Self::Plateau { patience, .. } => {
                write!(f, "no round measured a detection rate in {patience} rounds (--patience {patience})")
            }
        }
    }
}

/// What a refinement came to.
pub struct Refined {
    pub rounds: Vec<RoundRecord>,
    /// Rounds done by this invocation (the rest were done before a resume).
    pub new_rounds: usize,
    pub ending: Ending,
    /// The principles after the last round.
    pub principles: Principles,
}

/// The version of a strategies list, as `Principles::hash` versions principles.
pub fn strategies_hash(s: &Strategies) -> String {
    Sha256::digest(s.to_toml().as_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the rounds so far end the refinement.
pub fn ending(rounds: &[RoundRecord], limits: Limits) -> Option<Ending> {
    let mut best: Option<(f64, usize)> = None;
    let mut since = 0;
    for r in rounds {
        match (r.detection_rate, best) {
            (Some(d), Some((b, _))) if d <= b => since += 1,
            (Some(d), _) => {
                best = Some((d, r.round));
                since = 0;
            }
            (None, _) => since += 1,
        }
    }
    if rounds.len() >= limits.rounds {
        return Some(Ending::RoundLimit(limits.rounds));
    }
    (limits.patience > 0 && since >= limits.patience).then(|| Ending::Plateau {
        patience: limits.patience,
        best: best.map(|b| b.0),
        at: best.map(|b| b.1),
    })
}

/// Runs rounds until the limits end the refinement, continuing the folder's rounds.
pub fn refine(
    runtime: &tokio::runtime::Runtime,
    dir: &mut RefineDir,
    mut rounds: Vec<RoundRecord>,
    rows: &[Row],
    agents: &Agents,
    limits: Limits,
    progress: &dyn Progress,
) -> Result<Refined> {
    let (mut principles, mut strategies) = dir.lists_after(rounds.len(), rounds.last())?;
    let mut new_rounds = 0;
    let ending = loop {
        if let Some(e) = ending(&rounds, limits) {
            break e;
        }
        let n = rounds.len() + 1;
        let started = Instant::now();
        let done = runtime.block_on(round(agents, rows, n, &principles, &strategies, limits, progress));
        let mut record = done.record;
        record.seconds = started.elapsed().as_secs_f64();
        dir.commit_round(&record, &done.principles, &done.strategies, &done.flawed, &done.verdicts)?;
        progress.note(&round_line(&record));
        (principles, strategies) = (done.principles, done.strategies);
        rounds.push(record);
        new_rounds += 1;
    };
    Ok(Refined { rounds, new_rounds, ending, principles })
}

/// A round's summary line.
pub fn round_line(r: &RoundRecord) -> String {
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.0}%", v * 100.0));
    let reflection = match (&r.reflection, &r.reflection_error) {
        (Reflection::Revised, _) => format!("principles {} -> {}", r.principles_used, r.principles),
        (Reflection::Failed, e) => {
            format!("reflection failed, principles kept ({})", e.as_deref().unwrap_or("-"))
        }
    };
    format!(
        "round {}: caught {}/{} flawed ({}), flagged {}/{} human ({}); {}{}; ${:.4}",
        r.round,
        r.caught,
        r.flawed,
        pct(r.detection_rate),
        r.flagged,
        r.human,
        pct(r.false_alarm_rate),
        reflection,
        if r.failures.is_empty() {
            String::new()
        } else {
            format!("; {} agent calls failed", r.failures.len())
        },
        r.usage.cost
    )
}

struct RoundDone {
    record: RoundRecord,
    principles: Principles,
    strategies: Strategies,
    flawed: Vec<serde_json::Value>,
    verdicts: Vec<serde_json::Value>,
}

/// The rows of round `n`: the dataset in turn, `batch` a round, wrapping around.
fn batch_of(rows: &[Row], n: usize, batch: usize) -> Vec<(usize, &Row)> {
    let take = batch.min(rows.len());
    (0..take).map(|j| ((n - 1) * batch + j) % rows.len()).map(|i| (i, &rows[i])).collect()
}

async fn round(
    agents: &Agents,
    rows: &[Row],
    n: usize,
    principles: &Principles,
    strategies: &Strategies,
    limits: Limits,
    progress: &dyn Progress,
) -> RoundDone {
    let batch = batch_of(rows, n, limits.batch);
    let mut usage = Usage::default();
    let mut failures = Vec::new();

    // 1. the generator: one flawed story per row, the strategies in turn
    progress.begin(&format!("round {n}: generating"), batch.len());
    let mut set = tokio::task::JoinSet::new();
    for (j, (_, row)) in batch.iter().enumerate() {
        let strategy = strategies.list[((n - 1) * limits.batch + j) % strategies.list.len()].clone();
        let req = agents::generator_request(&row.prompt, &row.story, &strategy);
        let client = agents.generator.clone();
        set.spawn(async move { (j, strategy, agents::ask(&client, req, agents::parse_flawed).await) });
    }
    let mut made = vec![None; batch.len()];
    while let Some(joined) = set.join_next().await {
        progress.advance();
        if let Ok((j, strategy, answer)) = joined {
            usage.add(&answer.usage);
            made[j] = Some((strategy, answer.outcome));
        }
    }
    progress.end();
    let mut flawed_rows = Vec::new();
    let mut flawed = Vec::new(); // (row index in batch, strategy name, flaw, story)
    for (j, m) in made.into_iter().enumerate() {
        let uid = &batch[j].1.uid;
        match m {
            Some((strategy, Ok(f))) => {
                flawed_rows
                    .push(json!({"uid": uid, "strategy": strategy.name, "flaw": f.flaw, "story": f.story}));
                flawed.push((j, strategy.name, f.flaw, f.story));
            }
            Some((strategy, Err(e))) => {
                failures.push(format!("generator, {uid} ({}): {e}", strategy.name));
                flawed_rows.push(json!({"uid": uid, "strategy": strategy.name, "error": e}));
            }
            None => failures.push(format!("generator, {uid}: the task did not finish")),
        }
    }

    // 2. the detector: every flawed story and every human story of the batch
    let mut stories: Vec<(bool, usize, String)> =
        flawed.iter().map(|(j, _, _, s)| (true, *j, s.clone())).collect();
    stories.extend(batch.iter().enumerate().map(|(j, (_, row))| (false, j, row.story.clone())));
    progress.begin(&format!("round {n}: detecting"), stories.len());
    let mut set = tokio::task::JoinSet::new();
    for (k, (_, j, story)) in stories.iter().enumerate() {
        let req = agents::detector_request(principles, &batch[*j].1.prompt, story);
        let client = agents.detector.clone();
        set.spawn(async move { (k, agents::ask(&client, req, agents::parse_detection).await) });
    }
    let mut detections = vec![None; stories.len()];
    while let Some(joined) = set.join_next().await {
        progress.advance();
        if let Ok((k, answer)) = joined {
            usage.add(&answer.usage);
            detections[k] = Some(answer.outcome);
        }
    }
    progress.end();
    let mut verdicts = Vec::new();
    let mut outcomes = Vec::new();
    let mut false_alarms = Vec::new();
    let (mut humans_judged, mut flawed_judged) = (0, 0);
    for (k, d) in detections.into_iter().enumerate() {
        let (is_flawed, j, _) = &stories[k];
        let uid = &batch[*j].1.uid;
        let kind = if *is_flawed { "flawed" } else { "human" };
        let strategy = is_flawed.then(|| flawed.iter().find(|f| f.0 == *j).map(|f| f.1.clone())).flatten();
        match d {
            Some(Ok(d)) => {
                verdicts.push(json!({"uid": uid, "kind": kind, "strategy": strategy, "flawed": d.flawed,
                    "violated": d.violated, "reason": d.reason}));
                if *is_flawed {
                    flawed_judged += 1;
                    let f = flawed.iter().find(|f| f.0 == *j).expect("a flawed story of the batch");
                    outcomes.push(Outcome {
                        strategy: f.1.clone(),
                        flaw: f.2.clone(),
                        caught: d.flawed,
                        detector_reason: d.reason,
                    });
                } else {
                    humans_judged += 1;
                    if d.flawed {
                        false_alarms.push(FalseAlarm {
                            uid: uid.clone(),
                            violated: d.violated,
                            reason: d.reason,
                        });
                    }
                }
            }
            Some(Err(e)) => {
                failures.push(format!("detector, {uid} ({kind} story): {e}"));
                verdicts.push(json!({"uid": uid, "kind": kind, "strategy": strategy, "error": e}));
            }
            None => failures.push(format!("detector, {uid} ({kind} story): the task did not finish")),
        }
    }
    let caught = outcomes.iter().filter(|o| o.caught).count();
    let rate = |part: usize, whole: usize| (whole > 0).then(|| part as f64 / whole as f64);

    // 3. the reflector: one revision of both lists (a list over the cap is refused and sent
    // back once through the client's repair retry)
    progress.begin(&format!("round {n}: reflecting"), 1);
    let req = agents::reflector_request(principles, strategies, &outcomes, &false_alarms, humans_judged);
    let answer = agents::ask(&agents.reflector, req, agents::parse_revision).await;
    progress.advance();
    progress.end();
    usage.add(&answer.usage);
    let (reflection, reflection_error, notes, new_principles, new_strategies) = match answer.outcome {
        Ok(r) => (Reflection::Revised, None, r.notes, r.principles, r.strategies),
        Err(e) => (Reflection::Failed, Some(e), String::new(), principles.clone(), strategies.clone()),
    };
    let record = RoundRecord {
        round: n,
        principles_used: principles.hash(),
        principles: new_principles.hash(),
        flawed: flawed_judged,
        caught,
        detection_rate: rate(caught, flawed_judged),
        human: humans_judged,
        flagged: false_alarms.len(),
        false_alarm_rate: rate(false_alarms.len(), humans_judged),
        reflection,
        reflection_error,
        notes,
        failures,
        usage,
        seconds: 0.0,
    };
    RoundDone {
        record,
        principles: new_principles,
        strategies: new_strategies,
        flawed: flawed_rows,
        verdicts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(round: usize, detection: Option<f64>) -> RoundRecord {
        RoundRecord {
            round,
            principles_used: String::new(),
            principles: String::new(),
            flawed: 0,
            caught: 0,
            detection_rate: detection,
            human: 0,
            flagged: 0,
            false_alarm_rate: None,
            reflection: Reflection::Revised,
            reflection_error: None,
            notes: String::new(),
            failures: vec![],
            usage: Usage::default(),
            seconds: 0.0,
        }
    }

    #[test]
    fn stops_at_the_limit_or_after_patience_rounds_without_a_better_rate() {
        let limits = Limits { rounds: 6, batch: 2, patience: 2 };
        let rounds: Vec<RoundRecord> = [Some(0.25), Some(0.5), Some(0.5), None]
            .into_iter()
            .enumerate()
            .map(|(i, d)| record(i + 1, d))
            .collect();
        assert_eq!(ending(&rounds[..2], limits), None);
        assert_eq!(ending(&rounds[..3], limits), None); // equal is not better: one round without
        assert_eq!(
            ending(&rounds, limits),
            Some(Ending::Plateau { patience: 2, best: Some(0.5), at: Some(2) })
        );
        assert_eq!(ending(&rounds, Limits { rounds: 4, ..limits }), Some(Ending::RoundLimit(4)));
        assert_eq!(ending(&rounds, Limits { patience: 0, ..limits }), None);
        let e = Ending::Plateau { patience: 2, best: Some(0.5), at: Some(2) }.to_string();
        assert!(e.contains("not improved for 2 rounds") && e.contains("best 50.0% in round 2"), "{e}");
    }

    #[test]
    fn batches_take_the_rows_in_turn() {
        let rows: Vec<Row> = (0..5)
            .map(|i| Row { uid: format!("r{i}"), prompt: String::new(), story: String::new() })
            .collect();
        let uids = |n| batch_of(&rows, n, 2).iter().map(|(i, _)| *i).collect::<Vec<_>>();
        assert_eq!((uids(1), uids(2), uids(3)), (vec![0, 1], vec![2, 3], vec![4, 0]));
        assert_eq!(batch_of(&rows, 1, 9).len(), 5);
    }
}
