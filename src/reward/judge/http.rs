//! One structured-output request to a judge API, with retries: exponential backoff with
//! jitter on 429, 5xx, timeouts and connection errors, honouring Retry-After. The API key
//! travels in a header and never appears in errors or logs.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{JudgeSettings, Secret};

/// A chat request for a JSON answer.
#[derive(Debug, Clone)]
pub struct Request {
    pub system: Option<String>,
    pub user: String,
    pub schema_name: String,
    pub schema: Value,
    /// A previous invalid reply and what was wrong with it (the repair retry).
    pub repair: Option<(String, String)>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// US dollars, from the price table; 0 when the model has no price.
    pub cost: f64,
}

impl Usage {
    pub fn add(&mut self, o: &Usage) {
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.cost += o.cost;
    }
}

pub struct Completion {
    pub text: String,
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Provider {
    /// Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp, ...).
    OpenAi { base_url: String, model: String },
    /// Google's generateContent.
    Gemini { base_url: String, model: String },
}

impl Provider {
    pub fn model(&self) -> &str {
        match self {
            Provider::OpenAi { model, .. } | Provider::Gemini { model, .. } => model,
        }
    }

    /// (url, headers, body) of a request. The key header's value is the key itself: callers
    /// printing a request mask it first.
    pub fn build(
        &self,
        req: &Request,
        s: &JudgeSettings,
        key: &Secret,
    ) -> (String, Vec<(String, String)>, Value) {
        match self {
            Provider::OpenAi { base_url, model } => {
                let mut messages = Vec::new();
                if let Some(sys) = &req.system {
                    messages.push(json!({"role": "system", "content": sys}));
                }
                messages.push(json!({"role": "user", "content": req.user}));
                if let Some((reply, error)) = &req.repair {
                    messages.push(json!({"role": "assistant", "content": reply}));
                    messages.push(json!({"role": "user", "content": repair_text(error)}));
                }
                let body = json!({
                    "model": model,
                    "messages": messages,
                    "temperature": s.temperature,
                    "top_p": s.top_p,
                    "max_tokens": s.max_tokens,
                    "response_format": {"type": "json_schema", "json_schema": {"name": req.schema_name, "strict": true, "schema": req.schema}},
                });
                let url = format!("{}/chat/completions", base_url.trim_end_matches('/'));
                (url, vec![("Authorization".into(), format!("Bearer {}", key.expose()))], body)
            }
            Provider::Gemini { base_url, model } => {
                let mut contents = vec![json!({"role": "user", "parts": [{"text": req.user}]})];
                if let Some((reply, error)) = &req.repair {
                    contents.push(json!({"role": "model", "parts": [{"text": reply}]}));
                    contents.push(json!({"role": "user", "parts": [{"text": repair_text(error)}]}));
                }
                let mut generation = json!({
                    "temperature": s.temperature,
                    "topP": s.top_p,
                    "maxOutputTokens": s.max_tokens,
                    "responseMimeType": "application/json",
                    "responseJsonSchema": req.schema,
                });
                if let Some(budget) = s.thinking_budget {
                    generation["thinkingConfig"] = json!({"thinkingBudget": budget});
                }
                let mut body = json!({"contents": contents, "generationConfig": generation});
                if let Some(sys) = &req.system {
                    body["systemInstruction"] = json!({"parts": [{"text": sys}]});
                }
                let url =
                    format!("{}/v1beta/models/{}:generateContent", base_url.trim_end_matches('/'), model);
                (url, vec![("x-goog-api-key".into(), key.expose().to_string())], body)
            }
        }
    }

    /// The answer text and token counts of a successful response body.
    fn parse(&self, body: &Value) -> Option<(String, u64, u64)> {
        match self {
            Provider::OpenAi { .. } => {
                let text = body.pointer("/choices/0/message/content")?.as_str()?.to_string();
                let p = body.pointer("/usage/prompt_tokens").and_then(Value::as_u64).unwrap_or(0);
                let c = body.pointer("/usage/completion_tokens").and_then(Value::as_u64).unwrap_or(0);
                Some((text, p, c))
            }
            Provider::Gemini { .. } => {
                let parts = body.pointer("/candidates/0/content/parts")?.as_array()?;
                // thought parts (thinking models) are not the answer
                let text: String = parts
                    .iter()
                    .filter(|p| !p.get("thought").and_then(Value::as_bool).unwrap_or(false))
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect();
                let u = body.get("usageMetadata");
                let field = |k: &str| u.and_then(|u| u.get(k)).and_then(Value::as_u64).unwrap_or(0);
                Some((
                    text,
                    field("promptTokenCount"),
                    field("candidatesTokenCount") + field("thoughtsTokenCount"),
                ))
            }
        }
    }
}

fn repair_text(error: &str) -> String {
    format!("That reply was not usable: {error}. Reply again with only the corrected JSON object, following the schema exactly.")
}

/// Why a call failed for good.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("gave up after {attempts} attempts: {last}")]
    Exhausted { attempts: u32, last: String },
    #[error("{0}")]
    Permanent(String),
}

/// What one attempt came to.
enum Attempt {
    Done(Completion),
    Retry { reason: String, after: Option<Duration> },
    Fail(String),
}

/// Sends `req`, retrying transient failures. `permit` is awaited for every attempt, so the
/// number of requests in flight never exceeds the semaphore's size; backoff sleeps hold none.
pub async fn send(
    http: &reqwest::Client,
    provider: &Provider,
    key: &Secret,
    req: &Request,
    s: &JudgeSettings,
    limit: &tokio::sync::Semaphore,
) -> Result<(Completion, u32), CallError> {
    let (url, headers, body) = provider.build(req, s, key);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let outcome = {
            let _permit = limit.acquire().await.expect("semaphore never closed");
            once(http, provider, &url, &headers, &body, s).await
        };
        match outcome {
            Attempt::Done(c) => return Ok((c, attempt)),
            Attempt::Fail(reason) => return Err(CallError::Permanent(reason)),
            Attempt::Retry { reason, after } => {
                if attempt > s.retries {
                    return Err(CallError::Exhausted { attempts: attempt, last: reason });
                }
                tokio::time::sleep(backoff(attempt, after, s)).await;
            }
        }
    }
}

async fn once(
    http: &reqwest::Client,
    provider: &Provider,
    url: &str,
    headers: &[(String, String)],
    body: &Value,
    s: &JudgeSettings,
) -> Attempt {
    let mut rb = http.post(url).timeout(Duration::from_secs_f64(s.timeout_secs)).json(body);
    for (k, v) in headers {
        rb = rb.header(k, v);
    }
    let resp = match rb.send().await {
        Ok(r) => r,
        Err(e) => {
            let kind = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "connection failed"
            } else {
                "request failed"
            };
            // reqwest's error text names the URL, never headers: the key stays out
            return Attempt::Retry { reason: format!("{kind}: {}", e.without_url()), after: None };
        }
    };
    let status = resp.status();
    let after = retry_after(resp.headers());
    let text = match resp.text().await {
        Ok(t) => t,
        Err(e) => {
            return Attempt::Retry {
                reason: format!("reading the response failed: {}", e.without_url()),
                after: None,
            }
        }
    };
    if status.as_u16() == 429 || status.is_server_error() {
        return Attempt::Retry { reason: format!("HTTP {status}: {}", snippet(&text)), after };
    }
    if !status.is_success() {
        return Attempt::Fail(format!("HTTP {status}: {}", snippet(&text)));
    }
    let Ok(json) = serde_json::from_str::<Value>(&text) else {
        return Attempt::Retry {
            reason: format!("the response body is not JSON: {}", snippet(&text)),
            after: None,
        };
    };
    match provider.parse(&json) {
        Some((text, p, c)) => {
            let cost = s
                .price(provider.model())
                .map_or(0.0, |pr| (p as f64 * pr.input_per_million + c as f64 * pr.output_per_million) / 1e6);
            Attempt::Done(Completion { text, usage: Usage { prompt_tokens: p, completion_tokens: c, cost } })
        }
        None => Attempt::Fail(format!("unexpected response shape: {}", snippet(&text))),
    }
}

/// Seconds or an HTTP date, as servers send it.
fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().to_string();
    if let Ok(secs) = v.parse::<f64>() {
        return Some(Duration::from_secs_f64(secs.max(0.0)));
    }
    let when = httpdate::parse_http_date(&v).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// base x 2^(attempt-1) plus up to one base of jitter, at most max; Retry-After wins when given.
fn backoff(attempt: u32, after: Option<Duration>, s: &JudgeSettings) -> Duration {
    let max = Duration::from_secs_f64(s.max_backoff_secs);
    if let Some(a) = after {
        return a.min(max);
    }
    let base = s.backoff_secs;
    let exp = base * 2f64.powi(attempt.saturating_sub(1) as i32);
    let jitter = rand::rng().random_range(0.0..=base.max(0.0));
    Duration::from_secs_f64(exp + jitter).min(max)
}

fn snippet(text: &str) -> String {
    let t: String = text.chars().take(200).collect();
    t.replace('\n', " ")
}
