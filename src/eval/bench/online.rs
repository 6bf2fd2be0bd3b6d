//! Judging requests one by one through the judge client (its concurrency limit, retries and
//! cache), each answer handed back as it arrives. The answer is taken as the judge gave it:
//! the release has no repair retry, and a reply it cannot read is a record without scores.

use std::sync::Arc;

use anyhow::{anyhow, Result};
use serde_json::Value;

use crate::reward::judge::http::{Request, Usage};
use crate::reward::JudgeClient;

/// One request to send: `id` is the caller's.
pub struct Ask {
    pub id: usize,
    pub request: Request,
}

/// Sends every request; `done(id, answer or error, usage)` runs as each completes.
pub fn judge(
    client: &Arc<JudgeClient>,
    asks: Vec<Ask>,
    mut done: impl FnMut(usize, Result<String, String>, Usage) -> Result<()>,
) -> Result<()> {
    if asks.is_empty() {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for a in asks {
            let client = client.clone();
            tasks.spawn(async move {
                let Some(remote) = client.remote() else {
                    return (
                        a.id,
                        Err("the offline judge cannot answer a benchmark's prompt".to_string()),
                        Usage::default(),
                    );
                };
                let (answer, _, usage, ..) =
                    client.ask(remote, a.request, |reply| Ok((reply.to_string(), Value::Null))).await;
                (a.id, answer, usage)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (id, answer, usage) = joined.map_err(|e| anyhow!("a judging task failed: {e}"))?;
            done(id, answer, usage)?;
        }
        Ok(())
    })
}
