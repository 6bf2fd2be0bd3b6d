//! `--batch`: a whole evaluation's missing requests as one OpenAI batch. The batch's id and
//! what each of its requests asks are written to `batch.json` (write-then-rename) as soon as
//! the batch exists, so a run stopped while it waits (Ctrl-C, kill -9, a closed laptop) picks
//! the same batch up again instead of paying for a second one. When the batch ends, every
//! request's answer (or failure) goes to the store and `batch.json` is marked collected; a
//! later run sends what failed in a new batch.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};

use super::store::RequestKey;
use super::BATCH_JSON;
use crate::durable::write_atomic;
use crate::reward::judge::batch::BatchStatus;
use crate::reward::judge::http::{Request, Usage};
use crate::reward::JudgeClient;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchState {
    pub batch_id: String,
    pub input_file_id: String,
    pub judge: String,
    pub requests: Vec<RequestKey>,
    /// Its answers are in the store.
    pub collected: bool,
    /// The last status seen.
    pub status: Option<BatchStatus>,
}

impl BatchState {
    pub fn read(out: &Path) -> Result<Option<Self>> {
        let path = out.join(BATCH_JSON);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                anyhow!(
                    "{}: not a batch record ({e}); if its batch is finished or abandoned, remove the file and run again",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn write(&self, out: &Path) -> Result<()> {
        write_atomic(&out.join(BATCH_JSON), format!("{}\n", serde_json::to_string_pretty(self)?).as_bytes())
    }
}

/// A request's result from a batch.
pub struct Answered {
    pub entry: RequestKey,
    pub answer: Result<String, String>,
    pub usage: Usage,
}

/// How the wait is reported.
pub trait Watch {
    fn status(&self, s: &BatchStatus);
}

/// Submits `asks` as a new batch (recording it before waiting), waits for it, and returns
/// every request's result. Nothing is submitted when `asks` is empty.
pub fn submit_and_collect(
    client: &JudgeClient,
    out: &Path,
    asks: Vec<(RequestKey, Request)>,
    poll: Duration,
    watch: &dyn Watch,
) -> Result<Option<(String, Vec<Answered>)>> {
    if asks.is_empty() {
        return Ok(None);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut jsonl = Vec::new();
    for (i, (_, req)) in asks.iter().enumerate() {
        jsonl.extend_from_slice(serde_json::to_string(&client.batch_line(&i.to_string(), req)?)?.as_bytes());
        jsonl.push(b'\n');
    }
    let (file, status) = runtime.block_on(async {
        let file = client.batch_upload(&jsonl).await?;
        let status = client.batch_create(&file).await?;
        Ok::<_, anyhow::Error>((file, status))
    })?;
    let state = BatchState {
        batch_id: status.id.clone(),
        input_file_id: file,
        judge: client.spec.label(),
        requests: asks.into_iter().map(|(e, _)| e).collect(),
        collected: false,
        status: Some(status),
    };
    state.write(out)?;
    collect(client, out, state, poll, watch, &runtime).map(Some)
}

/// Waits for the recorded batch `state` to end and returns its results.
pub fn resume(
    client: &JudgeClient,
    out: &Path,
    state: BatchState,
    poll: Duration,
    watch: &dyn Watch,
) -> Result<(String, Vec<Answered>)> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    collect(client, out, state, poll, watch, &runtime)
}

/// Marks the recorded batch collected (its results are in the store).
pub fn mark_collected(out: &Path, mut state: BatchState) -> Result<()> {
    state.collected = true;
    state.write(out)
}

fn collect(
    client: &JudgeClient,
    out: &Path,
    mut state: BatchState,
    poll: Duration,
    watch: &dyn Watch,
    runtime: &tokio::runtime::Runtime,
) -> Result<(String, Vec<Answered>)> {
    let id = state.batch_id.clone();
    let (status, output, errors) = runtime.block_on(async {
        let status = loop {
            let s = client.batch_status(&id).await?;
            watch.status(&s);
            if s.ended() {
                break s;
            }
            tokio::time::sleep(poll).await;
        };
        let output = match &status.output_file_id {
            Some(f) => client.batch_file(f).await?,
            None => String::new(),
        };
        let errors = match &status.error_file_id {
            Some(f) => client.batch_file(f).await?,
            None => String::new(),
        };
        Ok::<_, anyhow::Error>((status, output, errors))
    })?;
    let mut results = client.batch_results(&output, &errors)?;
    state.status = Some(status.clone());
    state.write(out)?;
    let answered = state
        .requests
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let (answer, usage) = match results.remove(&i.to_string()) {
                Some(r) => (r.text, r.usage),
                None => (
                    Err(format!("batch {id} ended `{}` without an answer for this request", status.status)),
                    Usage::default(),
                ),
            };
            Answered { entry: e.clone(), answer, usage }
        })
        .collect();
    Ok((id, answered))
}
