//! The OpenAI Batch API: a whole evaluation's requests as one JSONL file, uploaded
//! (`POST /files`, purpose `batch`), run as one batch (`POST /batches`), polled
//! (`GET /batches/{id}`) and its output and error files downloaded (`GET /files/{id}/content`).
//! Each request line carries the body the online client would send (`Provider::build`), so a
//! batch asks exactly what an online run asks; each result is priced at the Batch API's rate.
//! Transient failures (429, 5xx, connection errors) are retried like online requests.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::http::{Provider, Request, Usage};
use super::retry::backoff;
use super::{JudgeClient, Remote};

/// OpenAI bills a batch's tokens at half its online price (every model of the release's
/// price table, `eval/core/openai_pricing.py`, lists batch = default / 2).
pub const BATCH_PRICE_FACTOR: f64 = 0.5;
/// The endpoint every request line of a batch goes to.
pub const ENDPOINT: &str = "/v1/chat/completions";

/// A batch's state as the API reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchStatus {
    pub id: String,
    /// validating, in_progress, finalizing, completed, failed, expired, cancelling, cancelled
    pub status: String,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
}

impl BatchStatus {
    /// Whether the batch has stopped (its files, if any, are final).
    pub fn ended(&self) -> bool {
        matches!(self.status.as_str(), "completed" | "failed" | "expired" | "cancelled")
    }

    fn from_json(v: &Value) -> Result<Self> {
        let id = v.get("id").and_then(Value::as_str).ok_or_else(|| anyhow!("batch without an id: {v}"))?;
        let count = |k: &str| v.pointer(&format!("/request_counts/{k}")).and_then(Value::as_u64).unwrap_or(0);
        let file = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(Self {
            id: id.to_string(),
            status: v.get("status").and_then(Value::as_str).unwrap_or("unknown").to_string(),
            output_file_id: file("output_file_id"),
            error_file_id: file("error_file_id"),
            total: count("total"),
            completed: count("completed"),
            failed: count("failed"),
        })
    }
}

/// One request's result from a batch's output or error file.
#[derive(Debug, Clone)]
pub struct BatchResult {
    /// The answer text, or why there is none.
    pub text: Result<String, String>,
    /// Tokens and cost at batch prices.
    pub usage: Usage,
    pub truncated: bool,
}

impl JudgeClient {
    fn openai(&self) -> Result<&Remote> {
        match &self.remote {
            Some(r @ Remote { provider: Provider::OpenAi { .. }, .. }) => Ok(r),
            _ => bail!(
                "--batch needs an openai:MODEL judge (the OpenAI Batch API); {} has none",
                self.spec.label()
            ),
        }
    }

    /// One line of a batch's input file: the body an online request would carry.
    pub fn batch_line(&self, custom_id: &str, req: &Request) -> Result<Value> {
        let r = self.openai()?;
        let (_, _, body) = r.provider.build(req, &self.settings, &r.key);
        Ok(json!({"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}))
    }

    /// Uploads a batch input file (JSONL bytes); returns its file id.
    pub async fn batch_upload(&self, jsonl: &[u8]) -> Result<String> {
        let r = self.openai()?;
        // a boundary the content cannot hold: derived from the content itself
        let boundary = format!("polaris-batch-{}", &crate::reward::rubric::hex(&Sha256::digest(jsonl))[..32]);
        let mut body = Vec::with_capacity(jsonl.len() + 512);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"requests.jsonl\"\r\n\
                 Content-Type: application/jsonl\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(jsonl);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let v = self.call(r, reqwest::Method::POST, "files", Some((content_type, body))).await?;
        let v: Value =
            serde_json::from_str(&v).map_err(|e| anyhow!("file upload: the answer is not JSON ({e})"))?;
        v.get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| anyhow!("file upload: no file id in the answer {v}"))
    }

    /// Starts a batch over an uploaded input file.
    pub async fn batch_create(&self, input_file_id: &str) -> Result<BatchStatus> {
        let r = self.openai()?;
        let body = json!({"input_file_id": input_file_id, "endpoint": ENDPOINT, "completion_window": "24h"});
        let text = self
            .call(
                r,
                reqwest::Method::POST,
                "batches",
                Some(("application/json".into(), body.to_string().into_bytes())),
            )
            .await?;
        BatchStatus::from_json(&parse(&text, "batch creation")?)
    }

    pub async fn batch_status(&self, id: &str) -> Result<BatchStatus> {
        let r = self.openai()?;
        let text = self.call(r, reqwest::Method::GET, &format!("batches/{id}"), None).await?;
        BatchStatus::from_json(&parse(&text, "batch status")?)
    }

    /// A file's content (a batch's output or error JSONL).
    pub async fn batch_file(&self, file_id: &str) -> Result<String> {
        let r = self.openai()?;
        self.call(r, reqwest::Method::GET, &format!("files/{file_id}/content"), None).await
    }

    /// Every request's result in a batch's output and error files, by custom id. A line
    /// whose response is not HTTP 200, or that carries an error, is a failed request.
    pub fn batch_results(&self, output: &str, errors: &str) -> Result<HashMap<String, BatchResult>> {
        let r = self.openai()?;
        let mut out = HashMap::new();
        for (file, text) in [("output", output), ("error", errors)] {
            for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let v: Value = serde_json::from_str(line)
                    .map_err(|e| anyhow!("the batch's {file} file, line {}: not JSON ({e})", i + 1))?;
                let Some(id) = v.get("custom_id").and_then(Value::as_str) else {
                    bail!("the batch's {file} file, line {}: no custom_id", i + 1);
                };
                let status = v.pointer("/response/status_code").and_then(Value::as_u64);
                let body = v.pointer("/response/body");
                let error = v.get("error").filter(|e| !e.is_null());
                let result = match (status, body, error) {
                    (Some(200), Some(body), None) => {
                        match r.provider.completion(body, &self.settings, BATCH_PRICE_FACTOR) {
                            Some(c) => {
                                BatchResult { text: Ok(c.text), usage: c.usage, truncated: c.truncated }
                            }
                            None => {
                                failed(format!("unexpected response shape: {}", short(&body.to_string())))
                            }
                        }
                    }
                    (_, _, Some(e)) => failed(format!(
                        "batch request failed: {}",
                        e.get("message")
                            .and_then(Value::as_str)
                            .map_or_else(|| e.to_string(), str::to_string)
                    )),
                    (status, body, None) => failed(format!(
                        "batch request failed: HTTP {}: {}",
                        status.map_or_else(|| "?".into(), |s| s.to_string()),
                        short(&body.map_or_else(String::new, Value::to_string))
                    )),
                };
                out.insert(id.to_string(), result);
            }
        }
        Ok(out)
    }

    /// One Batch API call, retried on transient failures; the answer's text.
    async fn call(
        &self,
        r: &Remote,
        method: reqwest::Method,
        path: &str,
        body: Option<(String, Vec<u8>)>,
    ) -> Result<String> {
        let Provider::OpenAi { base_url, .. } = &r.provider else { unreachable!("checked by openai()") };
        let url = format!("{}/{path}", base_url.trim_end_matches('/'));
        let timeout =
            Duration::try_from_secs_f64(self.settings.timeout_secs).unwrap_or(Duration::from_secs(180));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut rb = r
                .http
                .request(method.clone(), &url)
                .timeout(timeout)
                .header("Authorization", format!("Bearer {}", r.key.expose()));
            if let Some((content_type, bytes)) = &body {
                rb = rb.header("Content-Type", content_type).body(bytes.clone());
            }
            let (retry, reason) = match rb.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    if status.is_success() {
                        return Ok(text);
                    }
                    let transient = status.as_u16() == 429 || status.is_server_error();
                    (transient, format!("HTTP {status}: {}", short(&text)))
                }
                // reqwest's error text names the URL, never headers: the key stays out
                Err(e) => (true, e.without_url().to_string()),
            };
            if !retry || attempt > self.settings.retries {
                bail!("Batch API {method} {url}: {reason}");
            }
            tokio::time::sleep(backoff(attempt, None, &self.settings)).await;
        }
    }
}

fn failed(why: String) -> BatchResult {
    BatchResult { text: Err(why), usage: Usage::default(), truncated: false }
}

fn parse(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| anyhow!("{what}: the answer is not JSON ({e}): {}", short(text)))
}

fn short(text: &str) -> String {
    text.chars().take(200).collect::<String>().replace('\n', " ")
}
