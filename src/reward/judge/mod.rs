//! Judges: `offline` (deterministic measurements, no network), `openai:MODEL` (any
//! OpenAI-compatible endpoint), `gemini:MODEL` and `rm:DIR` (a trained reward model, scored
//! locally on the client's device, no network: `crate::rm`). One client serves any number of tasks
//! concurrently under one concurrency limit, with retries, a repair retry for unusable
//! answers, a disk cache, and token/cost accounting.

pub mod batch;
pub mod cache;
pub mod format;
pub mod http;
pub mod offline;
mod repair;
pub mod retry;
mod settings;

pub use settings::{failure_gate, DEFAULT_MAX_FAILURE_RATE, MAX_SECONDS};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use self::cache::{Entry, JudgeCache};
use self::format::Negotiation;
use self::http::{Provider, Request, Usage};
use super::answer::Judgement;
use super::rubric::Rubric;
use super::totals::{parse_reply, read_answer, TotalsReading};

/// The language models a judge (or an agent of `principles refine` / `prefs curate`) calls,
/// for help texts, errors and the config template: a new provider is named here once.
macro_rules! judge_models {
    () => {
        "openai:MODEL, gemini:MODEL"
    };
}
pub(crate) use judge_models;

/// Every reward source `--judge` takes: the offline judge, a judge model, a reward model.
macro_rules! judge_specs {
    () => {
        concat!(
            "offline, ",
            crate::reward::judge::judge_models!(),
            ", rm:DIR (a reward model from `rm train`)"
        )
    };
}
pub(crate) use judge_specs;

/// The judge models, as help and errors list them.
pub const JUDGE_MODELS: &str = judge_models!();
/// Every judge `--judge` takes.
pub const JUDGE_SPECS: &str = judge_specs!();

/// Which judge, as written on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JudgeSpec {
    Offline,
    OpenAi(String),
    Gemini(String),
    /// A reward model folder (`rm train --out`).
    RewardModel(PathBuf),
}

impl JudgeSpec {
    pub fn parse(s: &str) -> Result<Self> {
        match s.split_once(':') {
            _ if s == "offline" => Ok(Self::Offline),
            Some(("openai", m)) if !m.is_empty() => Ok(Self::OpenAi(m.to_string())),
            Some(("gemini", m)) if !m.is_empty() => Ok(Self::Gemini(m.to_string())),
            Some(("rm", dir)) if !dir.is_empty() => Ok(Self::RewardModel(PathBuf::from(dir))),
            _ => bail!("--judge {s:?}: expected {JUDGE_SPECS}"),
        }
    }

    pub fn label(&self) -> String {
        match self {
            Self::Offline => "offline".into(),
            Self::OpenAi(m) => format!("openai:{m}"),
            Self::Gemini(m) => format!("gemini:{m}"),
            Self::RewardModel(dir) => format!("rm:{}", dir.display()),
        }
    }
}

/// Price per million tokens, US dollars.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub input_per_million: f64,
    pub output_per_million: f64,
}

/// Judge settings; defaults are the recipe's (RECIPE.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JudgeSettings {
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: u32,
    /// Requests in flight at most, across every caller of the client.
    pub concurrency: usize,
    /// Retries of a transient failure (429, 5xx, timeout, connection error).
    pub retries: u32,
    /// First backoff; doubles per retry, plus jitter.
    pub backoff_secs: f64,
    pub max_backoff_secs: f64,
    /// Per-request timeout.
    pub timeout_secs: f64,
    /// Endpoint; else `OPENAI_BASE_URL` / the provider's public URL.
    pub base_url: Option<String>,
    /// Environment variable holding the key (default OPENAI_API_KEY / GEMINI_API_KEY).
    pub api_key_env: Option<String>,
    /// Gemini thinking budget in tokens.
    pub thinking_budget: Option<i64>,
    /// Gemini thinking level (`LOW`, `MEDIUM`, `HIGH`), sent as `thinkingConfig.thinkingLevel`
    /// (the release's evaluation configs set it).
    pub thinking_level: Option<String>,
    /// Sampling seed sent to OpenAI-compatible endpoints (`seed`) and Gemini (`generationConfig.seed`).
    pub seed: Option<i64>,
    /// Price table by model name.
    pub prices: BTreeMap<String, Price>,
    /// Disk cache of replies; None disables it.
    pub cache_dir: Option<PathBuf>,
    /// Which totals the overall score is read from: `parts` (recomputed from the validated
    /// dimension scores) or `reported` (the release's reading of the judge's own totals).
    pub totals: TotalsReading,
    /// A training step stops the run (as failed, before training on it) when more than this
    /// share of its rows have no judgement (0..=1; 1 never stops). See settings.rs.
    pub max_failure_rate: f64,
}

impl Default for JudgeSettings {
    fn default() -> Self {
        Self {
            temperature: 0.2,
            top_p: 0.9,
            max_tokens: 8192,
            concurrency: 4,
            retries: 3,
            backoff_secs: 5.0,
            max_backoff_secs: 60.0,
            timeout_secs: 180.0,
            base_url: None,
            api_key_env: None,
            thinking_budget: None,
            thinking_level: None,
            seed: None,
            prices: BTreeMap::new(),
            cache_dir: None,
            totals: TotalsReading::Parts,
            max_failure_rate: DEFAULT_MAX_FAILURE_RATE,
        }
    }
}

impl JudgeSettings {
    /// These settings, caching judgements in `dir` unless they name a cache of their own (a
    /// run's judge caches in its run directory).
    pub fn with_default_cache(mut self, dir: PathBuf) -> Self {
        self.cache_dir.get_or_insert(dir);
        self
    }
}

impl JudgeSettings {
    pub fn price(&self, model: &str) -> Option<Price> {
        self.prices.get(model).copied()
    }
}

/// An API key that never prints.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// First four characters and the length, for showing which key is in use.
    pub fn masked(&self) -> String {
        let head: String = self.0.chars().take(4).collect();
        format!("{head}…({} chars)", self.0.chars().count())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What one judgement came to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JudgeResult {
    /// The scored judgement, or why there is none.
    pub outcome: Result<Judgement, String>,
    /// The judge's JSON answer as given.
    pub answer: Option<Value>,
    pub usage: Usage,
    pub cached: bool,
    /// HTTP attempts made (0 for offline and cache hits).
    pub attempts: u32,
    /// Whether the repair retry was needed.
    pub repaired: bool,
    /// Wall seconds from asking to the answer: the wait for a concurrency slot, retries and
    /// the repair retry included. Absent in older records: 0.
    #[serde(default)]
    pub seconds: f64,
}

/// Totals over a client's life.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Totals {
    pub calls: u64,
    pub cache_hits: u64,
    pub failures: u64,
    pub usage: Usage,
}

pub(crate) struct Remote {
    provider: Provider,
    key: Secret,
    http: reqwest::Client,
    /// The response format this endpoint accepts, once known.
    formats: Negotiation,
}

pub struct JudgeClient {
    pub spec: JudgeSpec,
    pub rubric: Arc<Rubric>,
    pub settings: JudgeSettings,
    remote: Option<Remote>,
    /// `rm:DIR`: the reward model, loaded once, on the CPU until `on_device` moves it.
    reward_model: Option<LocalRm>,
    limit: Arc<Semaphore>,
    cache: Option<JudgeCache>,
    totals: Mutex<Totals>,
}

impl JudgeClient {
    /// Checks the key and endpoint before anything is sent (and loads a reward model).
    pub fn new(spec: JudgeSpec, rubric: Rubric, settings: JudgeSettings) -> Result<Self> {
        settings.validate()?;
        let reward_model = match &spec {
            JudgeSpec::RewardModel(dir) => Some(LocalRm::open(dir, &candle_core::Device::Cpu)?),
            _ => None,
        };
        let remote = match &spec {
            JudgeSpec::Offline | JudgeSpec::RewardModel(_) => None,
            JudgeSpec::OpenAi(model) => {
                let base_url = settings
                    .base_url
                    .clone()
                    .or_else(|| std::env::var("OPENAI_BASE_URL").ok().filter(|s| !s.is_empty()))
                    .unwrap_or_else(|| "https://api.openai.com/v1".into());
                Some((Provider::OpenAi { base_url, model: model.clone() }, "OPENAI_API_KEY"))
            }
            JudgeSpec::Gemini(model) => {
                let base_url = settings.base_url.clone().unwrap_or_else(|| "https://generativelanguage.googleapis.com".into());
                Some((Provider::Gemini { base_url, model: model.clone() }, "GEMINI_API_KEY"))
            }
        }
        .map(|(provider, default_env)| -> Result<Remote> {
            let env = settings.api_key_env.clone().unwrap_or_else(|| default_env.to_string());
            let key = match std::env::var(&env) {
                Ok(k) if !k.trim().is_empty() => Secret(k.trim().to_string()),
                _ => bail!("judge {}: no API key: set the environment variable {env} (or name another with api_key_env)", spec.label()),
            };
            let http = reqwest::Client::builder().build()?;
            Ok(Remote { provider, key, http, formats: Negotiation::default() })
        })
        .transpose()?;
        let cache = match &settings.cache_dir {
            Some(dir) => Some(
                JudgeCache::new(dir).map_err(|e| anyhow::anyhow!("judge cache {}: {e}", dir.display()))?,
            ),
            None => None,
        };
        Ok(Self {
            spec,
            rubric: Arc::new(rubric),
            limit: Arc::new(Semaphore::new(settings.concurrency)),
            settings,
            remote,
            reward_model,
            cache,
            totals: Mutex::new(Totals::default()),
        })
    }

    /// The client with its reward model (if it has one) on `device`: a training run scores
    /// on its first worker's device. Other judges are unchanged.
    pub fn on_device(mut self, device: &candle_core::Device) -> Result<Self> {
        if let (Some(rm), JudgeSpec::RewardModel(dir)) = (&self.reward_model, &self.spec) {
            if !rm.device.same_device(device) {
                self.reward_model = Some(LocalRm::open(dir, device)?);
            }
        }
        Ok(self)
    }

    /// Whether stories are scored by a local reward model (`rm:DIR`): then `judge_many`
    /// scores a batch in packed passes instead of one request per story.
    pub fn is_reward_model(&self) -> bool {
        self.reward_model.is_some()
    }

    /// Scores stories with the reward model, batched (packed passes on its device, off the
    /// async threads), one result per item in order; None when the judge is not a reward model
    /// (judge those one by one with `judge`).
    pub async fn judge_many(self: &Arc<Self>, items: Vec<(String, String)>) -> Option<Vec<JudgeResult>> {
        let rm = self.reward_model.as_ref()?;
        Some(self.score_locally(rm, items).await)
    }

    /// The reward model's results for (prompt, story) items, in order, counted in the totals:
    /// one packed pass per batch off the async threads; no tokens, cache or HTTP attempts.
    async fn score_locally(&self, rm: &LocalRm, items: Vec<(String, String)>) -> Vec<JudgeResult> {
        let started = std::time::Instant::now();
        let n = items.len();
        let model = rm.model.clone();
        let scored = tokio::task::spawn_blocking(move || {
            let model = model.lock().map_err(|_| anyhow::anyhow!("the reward model's lock is poisoned"))?;
            let refs: Vec<(&str, &str)> = items.iter().map(|(p, s)| (p.as_str(), s.as_str())).collect();
            model.score(&refs)
        })
        .await
        .map_err(|e| anyhow::anyhow!("the reward model task failed: {e}"))
        .and_then(|r| r);
        let seconds = started.elapsed().as_secs_f64() / n.max(1) as f64;
        let result = |outcome, answer| JudgeResult {
            outcome,
            answer,
            usage: Usage::default(),
            cached: false,
            attempts: 0,
            repaired: false,
            seconds,
        };
        let results: Vec<JudgeResult> = match scored {
            Ok(scores) => scores
                .into_iter()
                .map(|r| {
                    let judgement = crate::rm::score::judgement(&self.rubric, r, rm.center);
                    result(Ok(judgement), Some(crate::rm::score::answer(r, rm.center)))
                })
                .collect(),
            Err(e) => {
                let why = format!("reward model {}: {e:#}", self.spec.label());
                (0..n).map(|_| result(Err(why.clone()), None)).collect()
            }
        };
        let mut t = self.totals.lock().expect("totals lock");
        t.calls += results.len() as u64;
        t.failures += results.iter().filter(|r| r.outcome.is_err()).count() as u64;
        results
    }

    pub fn totals(&self) -> Totals {
        *self.totals.lock().expect("totals lock")
    }

    /// What a person should hear about the endpoint (the response format it settled on), each
    /// said once: taken by the caller that shows them.
    pub fn take_notices(&self) -> Vec<String> {
        self.remote.as_ref().map(|r| r.formats.take_notices()).unwrap_or_default()
    }

    /// The request for one story, as it would be sent (the prompt's length sentence removed).
    pub fn request(&self, prompt: &str, story: &str) -> Request {
        let (system, user) = self.rubric.messages(&self.rubric.judge_prompt(prompt), story);
        Request {
            system,
            user,
            schema_name: self.rubric.schema_name.clone(),
            schema: self.rubric.schema.clone(),
            repair: None,
        }
    }

    /// What `--dry-run` prints: URL, headers (key masked) and body.
    pub fn dry_run(&self, prompt: &str, story: &str) -> Value {
        let req = self.request(prompt, story);
        if self.reward_model.is_some() {
            return json!({"judge": self.spec.label(), "note": "no request: the reward model scores the text locally"});
        }
        match &self.remote {
            None => {
                json!({"judge": "offline", "note": "no request: the offline judge measures the text locally", "rubric": self.rubric.id})
            }
            Some(r) => {
                let (url, headers, body) = r.provider.build(&req, &self.settings, &r.key);
                let headers: serde_json::Map<String, Value> = headers
                    .into_iter()
                    .map(|(k, v)| {
                        let v = v.replace(r.key.expose(), &r.key.masked());
                        (k, Value::String(v))
                    })
                    .collect();
                json!({"url": url, "headers": headers, "body": body})
            }
        }
    }

    /// Scores one story. Never fails: an unusable judgement comes back with its reason.
    pub async fn judge(&self, prompt: &str, story: &str) -> JudgeResult {
        let started = std::time::Instant::now();
        if let Some(rm) = &self.reward_model {
            let mut one = self.score_locally(rm, vec![(prompt.to_string(), story.to_string())]).await;
            return one.pop().expect("one result per item");
        }
        let mut result = match &self.remote {
            None => {
                let answer = offline::answer(&self.rubric, &self.rubric.judge_prompt(prompt), story);
                let outcome = read_answer(&self.rubric, &answer, self.settings.totals)
                    .map_err(|e| format!("offline judge: {e}"));
                JudgeResult {
                    outcome,
                    answer: Some(answer),
                    usage: Usage::default(),
                    cached: false,
                    attempts: 0,
                    repaired: false,
                    seconds: 0.0,
                }
            }
            Some(remote) => {
                let req = self.request(prompt, story);
                let (rubric, reading) = (self.rubric.clone(), self.settings.totals);
                let (outcome, answer, usage, cached, attempts, repaired) = self
                    .ask(remote, req, move |reply| {
                        parse_reply(&rubric, reply, reading).map_err(|e| e.to_string())
                    })
                    .await;
                JudgeResult { outcome, answer, usage, cached, attempts, repaired, seconds: 0.0 }
            }
        };
        result.seconds = started.elapsed().as_secs_f64();
        let mut t = self.totals.lock().expect("totals lock");
        t.calls += 1;
        t.cache_hits += result.cached as u64;
        t.failures += result.outcome.is_err() as u64;
        t.usage.add(&result.usage);
        result
    }

    /// Sends a request (cache first), parses the reply, and on an unusable reply asks once
    /// more with the error attached. Returns (outcome, answer JSON, usage, cached, attempts, repaired).
    pub(crate) async fn ask<T>(
        &self,
        remote: &Remote,
        req: Request,
        parse: impl Fn(&str) -> Result<(T, Value), String>,
    ) -> (Result<T, String>, Option<Value>, Usage, bool, u32, bool) {
        let mut sampling = format!(
            "{}|{}|{}|{:?}",
            self.settings.temperature,
            self.settings.top_p,
            self.settings.max_tokens,
            self.settings.thinking_budget
        );
        // appended only when set, so the keys of replies cached before these settings existed hold
        if self.settings.thinking_level.is_some() || self.settings.seed.is_some() {
            sampling.push_str(&format!("|{:?}|{:?}", self.settings.thinking_level, self.settings.seed));
        }
        let key = JudgeCache::key(&[
            &self.rubric.id,
            &req.schema_name,
            &self.spec.label(),
            &sampling,
            req.system.as_deref().unwrap_or(""),
            &req.user,
        ]);
        if let Some(hit) = self.cache.as_ref().and_then(|c| c.get(&key)) {
            if let Ok((value, answer)) = parse(&hit.reply) {
                return (Ok(value), Some(answer), Usage::default(), true, 0, false);
            }
        }
        let mut usage = Usage::default();
        let mut attempts = 0;
        let send = |req: Request| async move {
            let r = remote;
            http::send(&r.http, &r.provider, &r.key, &req, &self.settings, &self.limit, &r.formats).await
        };
        let first = match send(req.clone()).await {
            Ok((c, n)) => {
                attempts += n;
                usage.add(&c.usage);
                c
            }
            Err(e) => return (Err(e.to_string()), None, usage, false, attempts.max(1), false),
        };
        let max_tokens = self.settings.max_tokens;
        // a reply cut at the token limit says so, to the person and to the judge
        let failure = |c: &http::Completion, e: String| {
            if c.truncated {
                repair::cut_at_limit(max_tokens, &e)
            } else {
                e
            }
        };
        let (reply, repaired, result) = match parse(&first.text) {
            Ok(ok) => (first.text, false, Ok(ok)),
            Err(error) => {
                let told = if first.truncated { repair::cut_for_judge(&error) } else { error.clone() };
                let error = failure(&first, error);
                // the bad reply goes back as a bounded excerpt: whole, it can overflow the context
                let repair = Request { repair: Some((repair::excerpt(&first.text), told)), ..req.clone() };
                match send(repair).await {
                    Ok((c, n)) => {
                        attempts += n;
                        usage.add(&c.usage);
                        let r = parse(&c.text).map_err(|e2| {
                            format!("unusable answer ({error}); after the repair retry: {}", failure(&c, e2))
                        });
                        (c.text, true, r)
                    }
                    Err(e) => (
                        first.text,
                        true,
                        Err(format!("unusable answer ({error}); the repair retry failed: {e}")),
                    ),
                }
            }
        };
        match result {
            Ok((value, answer)) => {
                if let Some(c) = &self.cache {
                    // a cache that cannot be written costs a re-judge later, not this result
                    let _ = c.put(&key, &Entry { reply, usage });
                }
                (Ok(value), Some(answer), usage, false, attempts, repaired)
            }
            Err(e) => (Err(e), None, usage, false, attempts, repaired),
        }
    }

    pub(crate) fn remote(&self) -> Option<&Remote> {
        self.remote.as_ref()
    }
}

/// A reward model a client scores with (`rm:DIR`): the model behind a lock (one pass at a
/// time; batching, not concurrency, is what makes it fast) and the centre its scores are read
/// against (`crate::rm::score`).
struct LocalRm {
    model: Arc<Mutex<crate::rm::RewardModel>>,
    center: f64,
    device: candle_core::Device,
}

impl LocalRm {
    fn open(dir: &std::path::Path, device: &candle_core::Device) -> Result<Self> {
        let center = crate::rm::Manifest::load(dir)?.center;
        let model = crate::rm::RewardModel::open(dir, device)?;
        Ok(Self { model: Arc::new(Mutex::new(model)), center, device: device.clone() })
    }
}
