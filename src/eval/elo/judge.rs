//! Judging the pairs of a matchup that the judgement file does not hold yet, concurrently
//! under the judge client's limit, each record appended as its pair finishes; and reading
//! the finished judgements back as `JudgedPair`s for the fit.

use std::sync::Arc;

use anyhow::{bail, Result};
use tokio::task::JoinSet;

use super::ladder::{combined, JudgedPair};
use super::pairs::{Matchup, PairTask};
use super::store::{story_id, Existing, JudgementFile, JudgementRecord};
use crate::reward::pairwise::{judge_pair, PairwisePrompt};
use crate::reward::JudgeClient;

/// The story ids of a task's two stories.
fn ids(m: &Matchup, t: &PairTask) -> [String; 2] {
    let p = &m.prompts[t.prompt];
    [story_id(&p.stories[t.a][t.sample]), story_id(&p.stories[t.b][t.sample])]
}

/// The tasks without a complete record (never judged, or an order failed last time).
/// A record whose stories differ from today's files is an error: its verdict would be
/// about other stories.
pub fn missing(m: &Matchup, existing: &Existing, path: &std::path::Path) -> Result<Vec<PairTask>> {
    let mut todo = Vec::new();
    for t in &m.tasks {
        let uid = &m.prompts[t.prompt].uid;
        let (a, b) = (&m.systems[t.a], &m.systems[t.b]);
        match existing.get(uid, t.sample, a, b) {
            Some((line, r)) => {
                let now = ids(m, t);
                if r.stories != now {
                    let which = if r.stories[0] != now[0] { a } else { b };
                    bail!(
                        "{}:{line}: uid `{uid}` sample {}: the story of `{which}` is not the one judged there \
                         (the generation files changed since); use a new --out, or remove the records of the \
                         changed stories",
                        path.display(),
                        t.sample
                    );
                }
                if !r.complete() {
                    todo.push(*t);
                }
            }
            None => todo.push(*t),
        }
    }
    Ok(todo)
}

/// Judges `todo` in both orders, at most `client.settings.concurrency` pairs at a time (each
/// pair's two requests share the client's limit), appending each record as it finishes
/// and calling `done` after each. Returns the new records with their line numbers.
pub async fn judge_missing(
    m: &Matchup,
    todo: &[PairTask],
    client: Arc<JudgeClient>,
    prompt: Arc<PairwisePrompt>,
    prompt_id: &str,
    file: &mut JudgementFile,
    mut done: impl FnMut(&JudgementRecord),
) -> Result<Vec<(usize, JudgementRecord)>> {
    let in_flight = client.settings.concurrency.max(1);
    let mut queue = todo.iter().enumerate();
    let mut running = JoinSet::new();
    let mut records = Vec::with_capacity(todo.len());
    loop {
        while running.len() < in_flight {
            let Some((i, t)) = queue.next() else { break };
            let p = &m.prompts[t.prompt];
            let (text, sa, sb) =
                (p.prompt.clone(), p.stories[t.a][t.sample].clone(), p.stories[t.b][t.sample].clone());
            let (client, prompt) = (client.clone(), prompt.clone());
            running.spawn(async move { (i, judge_pair(&client, &prompt, &text, &sa, &sb).await) });
        }
        let Some(finished) = running.join_next().await else { break };
        let (i, result) = finished.map_err(|e| anyhow::anyhow!("a judging task failed: {e}"))?;
        let t = &todo[i];
        let record = JudgementRecord {
            prompt_uid: m.prompts[t.prompt].uid.clone(),
            sample: t.sample,
            a: m.systems[t.a].clone(),
            b: m.systems[t.b].clone(),
            judge: client.spec.label(),
            pairwise_prompt: prompt_id.to_string(),
            stories: ids(m, t),
            result,
            principles: prompt.principles.clone(),
        };
        let line = file.append(&record)?;
        done(&record);
        records.push((line, record));
    }
    Ok(records)
}

/// Every task's complete judgement as a `JudgedPair` (prompt index, systems from the
/// matchup), and how many tasks have none (an order failed).
pub fn judged_pairs(m: &Matchup, existing: &Existing) -> (Vec<JudgedPair>, usize) {
    let mut pairs = Vec::with_capacity(m.tasks.len());
    let mut failed = 0;
    for t in &m.tasks {
        let uid = &m.prompts[t.prompt].uid;
        match existing.get(uid, t.sample, &m.systems[t.a], &m.systems[t.b]) {
            Some((_, r)) => match (&r.result.a_first, &r.result.b_first) {
                (Ok(af), Ok(bf)) => pairs.push(JudgedPair {
                    prompt: t.prompt,
                    a: t.a,
                    b: t.b,
                    combined: combined(r.result.preference),
                    a_first: af.winner,
                    b_first: bf.winner,
                }),
                _ => failed += 1,
            },
            None => failed += 1,
        }
    }
    (pairs, failed)
}
