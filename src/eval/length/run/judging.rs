//! Judging the stories an evaluation has not judged yet, each judgement appended
//! (fsynced) as it arrives. A judgement counts for a story only while the story is the
//! one judged (same SHA-256); a failed judgement is kept as failed, and judged again only
//! when asked (`retry_failed`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Result};

use super::records::{story_digest, JudgementRecord, StoryKey, StoryRecord};
use super::Progress;
use crate::durable::records::RecordLog;
use crate::reward::JudgeClient;

/// Every story's standing judgement (by key), and how many were judged now.
pub fn complete(
    path: &Path,
    stories: &[StoryRecord],
    client: &Arc<JudgeClient>,
    retry_failed: bool,
    progress: &dyn Progress,
) -> Result<(HashMap<StoryKey, JudgementRecord>, usize)> {
    let (mut log, existing, note) = RecordLog::<JudgementRecord>::open(path, "eval length")?;
    if let Some(n) = note {
        progress.note(&n);
    }
    // later records stand over earlier ones
    let mut latest: HashMap<StoryKey, JudgementRecord> = HashMap::new();
    for r in existing {
        latest.insert(r.key(), r);
    }
    let mut standing: HashMap<StoryKey, JudgementRecord> = HashMap::new();
    let mut todo = Vec::new();
    for (i, s) in stories.iter().enumerate() {
        match latest.remove(&s.key()) {
            Some(j) if j.story_sha256 == story_digest(&s.story) && !(retry_failed && j.sq.is_none()) => {
                standing.insert(s.key(), j);
            }
            _ => todo.push(i),
        }
    }
    if todo.is_empty() {
        return Ok((standing, 0));
    }
    progress.begin("judging", todo.len());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let judged = runtime.block_on(async {
        // the client's own limit bounds the requests in flight
        let mut tasks = tokio::task::JoinSet::new();
        for &i in &todo {
            let (client, prompt, story) =
                (client.clone(), stories[i].prompt.clone(), stories[i].story.clone());
            tasks.spawn(async move { (i, client.judge(&prompt, &story).await) });
        }
        let mut n = 0;
        while let Some(done) = tasks.join_next().await {
            let (i, result) = done.map_err(|e| anyhow!("a judging task failed: {e}"))?;
            let record = JudgementRecord::new(&stories[i], result, client.rubric.principles.clone());
            log.append(&record)?;
            standing.insert(record.key(), record);
            progress.advance();
            n += 1;
        }
        Ok::<usize, anyhow::Error>(n)
    })?;
    progress.end();
    Ok((standing, judged))
}
