//! One structured-output request to a judge API, with retries: exponential backoff with
//! jitter on 429, 5xx, timeouts and connection errors, honouring Retry-After (retry.rs), and
//! the response format negotiated with OpenAI-compatible servers (format.rs). The API key
//! travels in a header and never appears in errors or logs.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::format::{may_refuse_format, Negotiation, OutputMode};
use super::retry::{backoff, parse_retry_after};
use super::{JudgeSettings, Secret};

/// A chat request for a JSON answer (or, with a null `schema`, for the plain-text answer the
/// prompt itself lays out: no response format is asked for).
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
    /// The reply stopped at the token limit (finish_reason `length`, Gemini's `MAX_TOKENS`).
    pub truncated: bool,
}

/// What a successful response body holds.
struct Answered {
    text: String,
    prompt_tokens: u64,
    completion_tokens: u64,
    truncated: bool,
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
                    messages
                        .push(json!({"role": "user", "content": repair_text(error, req.schema.is_null())}));
                }
                let mut body = json!({
                    "model": model,
                    "messages": messages,
                    "temperature": s.temperature,
                    "top_p": s.top_p,
                    "max_tokens": s.max_tokens,
                    "response_format": {"type": "json_schema", "json_schema": {"name": req.schema_name, "strict": true, "schema": req.schema}},
                });
                if req.schema.is_null() {
                    body.as_object_mut().map(|o| o.remove("response_format"));
                }
                if let Some(seed) = s.seed {
                    body["seed"] = json!(seed);
                }
                let url = format!("{}/chat/completions", base_url.trim_end_matches('/'));
                (url, vec![("Authorization".into(), format!("Bearer {}", key.expose()))], body)
            }
            Provider::Gemini { base_url, model } => {
                let mut contents = vec![json!({"role": "user", "parts": [{"text": req.user}]})];
                if let Some((reply, error)) = &req.repair {
                    contents.push(json!({"role": "model", "parts": [{"text": reply}]}));
                    contents.push(json!({"role": "user", "parts": [{"text": repair_text(error, req.schema.is_null())}]}));
                }
                let mut generation = json!({
                    "temperature": s.temperature,
                    "topP": s.top_p,
                    "maxOutputTokens": s.max_tokens,
                });
                if !req.schema.is_null() {
                    generation["responseMimeType"] = json!("application/json");
                    generation["responseJsonSchema"] = req.schema.clone();
                }
                if let Some(seed) = s.seed {
                    generation["seed"] = json!(seed);
                }
                if s.thinking_budget.is_some() || s.thinking_level.is_some() {
                    let mut thinking = json!({});
                    if let Some(budget) = s.thinking_budget {
                        thinking["thinkingBudget"] = json!(budget);
                    }
                    if let Some(level) = &s.thinking_level {
                        thinking["thinkingLevel"] = json!(level);
                    }
                    generation["thinkingConfig"] = thinking;
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

    /// The answer text, token counts and whether it was cut, from a successful response body.
    fn parse(&self, body: &Value) -> Option<Answered> {
        match self {
            Provider::OpenAi { .. } => {
                let text = body.pointer("/choices/0/message/content")?.as_str()?.to_string();
                let p = body.pointer("/usage/prompt_tokens").and_then(Value::as_u64).unwrap_or(0);
                let c = body.pointer("/usage/completion_tokens").and_then(Value::as_u64).unwrap_or(0);
                let finish = body.pointer("/choices/0/finish_reason").and_then(Value::as_str);
                Some(Answered {
                    text,
                    prompt_tokens: p,
                    completion_tokens: c,
                    truncated: finish == Some("length"),
                })
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
                let finish = body.pointer("/candidates/0/finishReason").and_then(Value::as_str);
                Some(Answered {
                    text,
                    prompt_tokens: field("promptTokenCount"),
                    completion_tokens: field("candidatesTokenCount") + field("thoughtsTokenCount"),
                    truncated: finish == Some("MAX_TOKENS"),
                })
            }
        }
    }
}

impl Provider {
    /// The completion in a successful response body, its cost at the price table's rate times
    /// `price_factor` (1 online; the Batch API's discount for a batch); None for another shape.
    pub(crate) fn completion(
        &self,
        body: &Value,
        s: &JudgeSettings,
        price_factor: f64,
    ) -> Option<Completion> {
        let a = self.parse(body)?;
        let (p, c) = (a.prompt_tokens, a.completion_tokens);
        let cost = s.price(self.model()).map_or(0.0, |pr| {
            price_factor * (p as f64 * pr.input_per_million + c as f64 * pr.output_per_million) / 1e6
        });
        let usage = Usage { prompt_tokens: p, completion_tokens: c, cost };
        Some(Completion { text: a.text, usage, truncated: a.truncated })
    }
}

fn repair_text(error: &str, plain_text: bool) -> String {
    if plain_text {
        return format!("That reply was not usable: {error}. Reply again in exactly the output format the instructions give.");
    }
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

/// What one attempt came to; `status` is the HTTP status when the server answered.
enum Attempt {
    Done(Completion),
    Retry { reason: String, after: Option<Duration>, status: Option<u16> },
    Fail { reason: String, status: Option<u16> },
}

impl Attempt {
    /// The server may have refused the response format (format.rs).
    fn refused_format(&self) -> Option<&str> {
        match self {
            Attempt::Retry { reason, status: Some(s), .. } | Attempt::Fail { reason, status: Some(s) }
                if may_refuse_format(*s) =>
            {
                Some(reason)
            }
            _ => None,
        }
    }
}

/// One endpoint's request, ready to send in any output mode.
struct Exchange<'a> {
    http: &'a reqwest::Client,
    provider: &'a Provider,
    url: String,
    headers: Vec<(String, String)>,
    body: Value,
    s: &'a JudgeSettings,
    limit: &'a tokio::sync::Semaphore,
    formats: &'a Negotiation,
}

/// Sends `req`, retrying transient failures; returns the completion and the HTTP requests
/// made. The semaphore is awaited for every request, so the number in flight never exceeds
/// its size; backoff sleeps hold none.
pub async fn send(
    http: &reqwest::Client,
    provider: &Provider,
    key: &Secret,
    req: &Request,
    s: &JudgeSettings,
    limit: &tokio::sync::Semaphore,
    formats: &Negotiation,
) -> Result<(Completion, u32), CallError> {
    let (url, headers, body) = provider.build(req, s, key);
    let ex = Exchange { http, provider, url, headers, body, s, limit, formats };
    let (mut attempt, mut sent) = (0u32, 0u32);
    // a server that refused every mode once is failing for another reason: its retries are
    // sent once each, not down the ladder again
    let mut probe = true;
    loop {
        attempt += 1;
        let outcome = match provider {
            // no response format to negotiate: the prompt alone asks for the answer's form
            Provider::OpenAi { .. } if req.schema.is_null() => {
                let _permit = ex.permit().await;
                sent += 1;
                ex.post(&ex.body).await
            }
            Provider::OpenAi { .. } => {
                let (outcome, refused_every_mode) = ex.negotiated(&mut sent, probe).await;
                probe &= !refused_every_mode;
                outcome
            }
            Provider::Gemini { .. } => {
                let _permit = ex.permit().await;
                sent += 1;
                ex.post(&ex.body).await
            }
        };
        match outcome {
            Attempt::Done(c) => return Ok((c, sent)),
            Attempt::Fail { reason, .. } => return Err(CallError::Permanent(reason)),
            Attempt::Retry { reason, after, .. } => {
                if attempt > s.retries {
                    return Err(CallError::Exhausted { attempts: sent, last: reason });
                }
                tokio::time::sleep(backoff(attempt, after, s)).await;
            }
        }
    }
}

impl Exchange<'_> {
    /// One attempt in the endpoint's settled mode; until one is settled (and while `probe`),
    /// down the ladder while the server refuses, settling on the first mode it answers. A
    /// transient failure midway is this attempt's outcome (no verdict on the format); a
    /// server refusing every mode is failing for another reason: its answer to `json_schema`
    /// is the outcome, and the flag says so.
    async fn negotiated(&self, sent: &mut u32, probe: bool) -> (Attempt, bool) {
        // one permit for the whole ladder, so the requests queued behind this one find the
        // mode settled (at most `concurrency` requests ever ask in a refused mode)
        let _permit = self.permit().await;
        // read after the wait: another request may have settled the mode meanwhile
        let settled = self.formats.settled().or((!probe).then_some(OutputMode::JsonSchema));
        if let Some(mode) = settled {
            *sent += 1;
            return (self.post(&mode.apply(&self.body)).await, false);
        }
        let mut first_refusal: Option<Attempt> = None;
        for mode in OutputMode::LADDER {
            *sent += 1;
            let outcome = self.post(&mode.apply(&self.body)).await;
            if let Attempt::Done(_) = outcome {
                let refused = first_refusal.as_ref().and_then(Attempt::refused_format);
                self.formats.settle(mode, &self.url, refused);
                return (outcome, false);
            }
            if outcome.refused_format().is_none() {
                return (outcome, false);
            }
            first_refusal.get_or_insert(outcome);
        }
        (first_refusal.expect("the ladder is not empty"), true)
    }

    /// A place among the requests in flight.
    async fn permit(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.limit.acquire().await.expect("semaphore never closed")
    }

    /// One HTTP request; the caller holds a permit.
    async fn post(&self, body: &Value) -> Attempt {
        let timeout = Duration::try_from_secs_f64(self.s.timeout_secs).unwrap_or(Duration::from_secs(180));
        let mut rb = self.http.post(&self.url).timeout(timeout).json(body);
        for (k, v) in &self.headers {
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
                let reason = format!("{kind}: {}", e.without_url());
                return Attempt::Retry { reason, after: None, status: None };
            }
        };
        let status = resp.status();
        let code = Some(status.as_u16());
        let after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => {
                let reason = format!("reading the response failed: {}", e.without_url());
                return Attempt::Retry { reason, after: None, status: code };
            }
        };
        if status.as_u16() == 429 || status.is_server_error() {
            return Attempt::Retry {
                reason: format!("HTTP {status}: {}", snippet(&text)),
                after,
                status: code,
            };
        }
        if !status.is_success() {
            return Attempt::Fail { reason: format!("HTTP {status}: {}", snippet(&text)), status: code };
        }
        let Ok(json) = serde_json::from_str::<Value>(&text) else {
            let reason = format!("the response body is not JSON: {}", snippet(&text));
            return Attempt::Retry { reason, after: None, status: None };
        };
        match self.provider.completion(&json, self.s, 1.0) {
            Some(c) => Attempt::Done(c),
            None => Attempt::Fail {
                reason: format!("unexpected response shape: {}", snippet(&text)),
                status: None,
            },
        }
    }
}

fn snippet(text: &str) -> String {
    let t: String = text.chars().take(200).collect();
    t.replace('\n', " ")
}
