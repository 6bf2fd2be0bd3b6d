//! One benchmark over generation files: read the stories, judge every request not yet
//! answered (online, or as one OpenAI batch), score every story as the release does, and
//! write `bench.json` and `bench.md`. Judgements live in the output folder, so a re-run (after
//! a stop, a kill, a failed request) asks only what is missing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;

use super::aggregate::{self, BenchReport, Inputs, BENCH_VERSION, CONFIDENCE};
use super::batch::{self as batching, BatchState, Watch};
use super::input::{self, InputFields, PromptSet};
use super::online::{self, Ask};
use super::store::{request_digest, Judgement, RequestKey, Store};
use super::{
    render, requests, score, writingbench, Family, Item, Task, Templates, BENCH_JSON, BENCH_MD, JUDGEMENTS,
};
use crate::durable::write_atomic;
use crate::eval::length::run::Progress;
use crate::reward::judge::http::{Request, Usage};
use crate::reward::JudgeClient;

#[derive(Debug, Clone)]
pub struct BenchEval {
    pub task: Task,
    pub gens: Vec<PathBuf>,
    pub prompts: Option<PathBuf>,
    pub prompts_id_field: String,
    pub fields: InputFields,
    pub out: PathBuf,
    pub templates: Templates,
    /// Judge through the OpenAI Batch API, polling at this interval.
    pub batch: Option<Duration>,
    pub resamples: usize,
    pub seed: u64,
    /// Said in the report (e.g. what a release config asked that is not done as asked).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub report: BenchReport,
    /// Requests answered / failed by this run.
    pub judged: usize,
    pub failed: usize,
    /// What this run's requests cost (at batch prices for a batch).
    pub usage: Usage,
}

/// One request of one item.
struct Part {
    item: usize,
    part: usize,
    request: Request,
    digest: String,
}

pub fn run(
    e: &BenchEval,
    client: Arc<JudgeClient>,
    progress: &dyn Progress,
    watch: &dyn Watch,
) -> Result<Outcome> {
    let family = Family::of(&client.spec)?;
    let prompts = match &e.prompts {
        Some(p) => PromptSet::read(p, &e.prompts_id_field)?,
        None => PromptSet::default(),
    };
    let read = input::read(e.task, &e.gens, &e.fields, &prompts)?;
    let mut notes = e.notes.clone();
    if !read.unscorable.is_empty() {
        notes.push(format!(
            "{} stories have no checklist (on their record or in the prompt set{}) and cannot be judged: {}",
            read.unscorable.len(),
            e.prompts.as_ref().map_or(" — none given: --prompts".into(), |p| format!(" {}", p.display())),
            read.unscorable.iter().take(10).map(|(s, u)| format!("{s}/{u}")).collect::<Vec<_>>().join(", ")
        ));
    }
    if read.no_target > 0 {
        notes.push(format!(
            "{} stories have no target_length (on their record or in the prompt set): no S_l and no S for them",
            read.no_target
        ));
    }
    for n in &notes {
        progress.note(n);
    }
    let items = read.items;
    let judge = client.spec.label();
    let parts: Vec<Part> = items
        .iter()
        .enumerate()
        .flat_map(|(i, item)| {
            requests(e.task, item, &e.templates, &family)
                .into_iter()
                .enumerate()
                .map(move |(p, request)| (i, p, request))
        })
        .map(|(item, part, request)| Part { item, part, digest: request_digest(&judge, &request), request })
        .collect();

    std::fs::create_dir_all(&e.out).with_context(|| format!("cannot create {}", e.out.display()))?;
    let mut store = Store::open(&e.out.join(JUDGEMENTS))?;
    if let Some(n) = &store.torn_note {
        progress.note(n);
    }
    let (mut judged, mut failed, mut usage) = (0, 0, Usage::default());
    let mut record =
        |store: &mut Store, p: &Part, answer: Result<String, String>, u: Usage, batch_id: Option<String>| {
            let item = &items[p.item];
            judged += 1;
            failed += answer.is_err() as usize;
            usage.add(&u);
            store.append(judgement(e, item, p, answer, u, batch_id))
        };

    if e.batch.is_some() {
        // a batch recorded by an earlier run is waited for, never sent again
        if let Some(state) = BatchState::read(&e.out)?.filter(|s| !s.collected) {
            progress.note(&format!(
                "resuming batch {} ({} requests) recorded in {}",
                state.batch_id,
                state.requests.len(),
                e.out.display()
            ));
            let (id, answered) =
                batching::resume(&client, &e.out, state.clone(), e.batch.unwrap_or_default(), watch)?;
            for a in answered {
                let p = part_of(&parts, &items, &a.entry);
                match p {
                    Some(p) => record(&mut store, p, a.answer, a.usage, Some(id.clone()))?,
                    // asked for a story no longer in the files: kept for the record
                    None => store.append(orphan(e.task, &a.entry, a.answer, a.usage, &id))?,
                }
            }
            batching::mark_collected(&e.out, state)?;
        }
    }

    let todo: Vec<&Part> = parts
        .iter()
        .filter(|p| {
            store.standing(&items[p.item].key(), p.part, &p.digest).is_none_or(|j| j.answer.is_none())
        })
        .collect();
    progress.note(&format!(
        "{} stories, {} judge requests: {} answered before, {} to ask {judge}{}",
        items.len(),
        parts.len(),
        parts.len() - todo.len(),
        todo.len(),
        if e.batch.is_some() { " in one batch" } else { "" }
    ));
    if !todo.is_empty() {
        match e.batch {
            Some(poll) => {
                let asks = todo.iter().map(|p| (request_key(&items[p.item], p), p.request.clone())).collect();
                if let Some((id, answered)) =
                    batching::submit_and_collect(&client, &e.out, asks, poll, watch)?
                {
                    for (a, p) in answered.into_iter().zip(&todo) {
                        record(&mut store, p, a.answer, a.usage, Some(id.clone()))?;
                    }
                    if let Some(state) = BatchState::read(&e.out)? {
                        batching::mark_collected(&e.out, state)?;
                    }
                }
            }
            None => {
                progress.begin("judging", todo.len());
                let asks =
                    todo.iter().enumerate().map(|(id, p)| Ask { id, request: p.request.clone() }).collect();
                online::judge(&client, asks, |id, answer, u| {
                    progress.advance();
                    record(&mut store, todo[id], answer, u, None)
                })?;
                progress.end();
            }
        }
    }

    // every item scored from its parts' standing answers
    let mut answers: Vec<Vec<Option<String>>> = items.iter().map(|_| vec![]).collect();
    let mut item_failed = vec![false; items.len()];
    let mut item_usage = vec![Usage::default(); items.len()];
    for p in &parts {
        let standing = store.standing(&items[p.item].key(), p.part, &p.digest);
        if let Some(j) = standing {
            item_usage[p.item].add(&j.usage);
        }
        let answer = standing.and_then(|j| j.answer.clone());
        item_failed[p.item] |= answer.is_none();
        answers[p.item].push(answer);
    }
    let scored: Vec<_> = items
        .iter()
        .zip(&answers)
        .map(|(item, a)| {
            let refs: Vec<Option<&str>> = a.iter().map(|x| x.as_deref()).collect();
            score(e.task, item, &refs, &e.templates)
        })
        .collect();
    let systems = aggregate::systems(&Inputs {
        task: e.task,
        systems: &read.systems,
        items: &items,
        scored: &scored,
        failed: &item_failed,
        usage: &item_usage,
        resamples: e.resamples,
        seed: e.seed,
    })?;
    let report = BenchReport {
        v: BENCH_VERSION,
        task: e.task,
        judge,
        headline: aggregate::headline(e.task).into(),
        confidence: CONFIDENCE,
        resamples: e.resamples,
        spread: aggregate::spread_name(e.task).into(),
        batch: e.batch.is_some(),
        systems,
        notes,
    };
    write_atomic(
        &e.out.join(BENCH_JSON),
        format!("{}\n", serde_json::to_string_pretty(&report)?).as_bytes(),
    )?;
    write_atomic(&e.out.join(BENCH_MD), render::markdown(&report).as_bytes())?;
    Ok(Outcome { report, judged, failed, usage })
}

fn part_of<'a>(parts: &'a [Part], items: &[Item], e: &RequestKey) -> Option<&'a Part> {
    parts.iter().find(|p| {
        let it = &items[p.item];
        it.system == e.system && it.prompt_uid == e.prompt_uid && it.sample == e.sample && p.part == e.part
    })
}

/// Which request `p` of `item` is, as the store and a batch name it.
fn request_key(item: &Item, p: &Part) -> RequestKey {
    RequestKey {
        system: item.system.clone(),
        prompt_uid: item.prompt_uid.clone(),
        sample: item.sample,
        part: p.part,
        request_sha256: p.digest.clone(),
    }
}

/// The record of one answered (or failed) request, with what the release makes of it.
fn judgement(
    e: &BenchEval,
    item: &Item,
    p: &Part,
    answer: Result<String, String>,
    usage: Usage,
    batch_id: Option<String>,
) -> Judgement {
    let scores = match (&answer, e.task) {
        (Err(_), _) => serde_json::Value::Null,
        (Ok(a), Task::WritingBench) => {
            let (score, reason) = writingbench::read(Some(a));
            let name = item.checklist.get(p.part).map(writingbench::criterion_name).unwrap_or_default();
            json!({"criterion_index": p.part, "criterion_name": name, "score": score, "reason": reason})
        }
        (Ok(a), task) => {
            serde_json::Value::Object(score(task, item, &[Some(a.as_str())], &e.templates).record)
        }
    };
    let (answer, error) = match answer {
        Ok(a) => (Some(a), None),
        Err(why) => (None, Some(why)),
    };
    Judgement { task: e.task, request: request_key(item, p), answer, error, scores, usage, batch_id }
}

fn orphan(task: Task, e: &RequestKey, answer: Result<String, String>, usage: Usage, id: &str) -> Judgement {
    let (answer, error) = match answer {
        Ok(a) => (Some(a), None),
        Err(why) => (None, Some(why)),
    };
    Judgement {
        task,
        request: e.clone(),
        answer,
        error,
        scores: serde_json::Value::Null,
        usage,
        batch_id: Some(id.to_string()),
    }
}
