//! A judge API on loopback: a real HTTP server (axum) whose every answer a test decides,
//! recording the requests it got. `serve` runs on the caller's tokio runtime; `serve_blocking`
//! on a thread of its own, for tests that start the binary. Included with `#[path]` by the
//! judge tests only, so the other test binaries do not build a server.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use polaris::reward::judge::{JudgeClient, JudgeSettings, JudgeSpec};
use polaris::reward::Rubric;
use serde_json::{json, Value};

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay_ms: u64,
}

impl Reply {
    pub fn ok(body: String) -> Self {
        Self { status: 200, headers: vec![], body, delay_ms: 0 }
    }
    pub fn status(status: u16, body: &str) -> Self {
        Self { status, headers: vec![], body: body.into(), delay_ms: 0 }
    }
}

type Respond = dyn Fn(usize, &Value) -> Reply + Send + Sync;

pub struct Server {
    pub hits: AtomicUsize,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    /// Every request's headers and JSON body, in arrival order.
    pub requests: Mutex<Vec<(HeaderMap, Value)>>,
    respond: Box<Respond>,
}

impl Server {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
    /// The JSON body of request `i`.
    pub fn body(&self, i: usize) -> Value {
        self.requests.lock().unwrap()[i].1.clone()
    }
}

async fn handle(State(s): State<Arc<Server>>, headers: HeaderMap, body: Bytes) -> Response {
    let n = s.hits.fetch_add(1, Ordering::SeqCst);
    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.requests.lock().unwrap().push((headers, v.clone()));
    let r = (s.respond)(n, &v);
    tokio::time::sleep(Duration::from_millis(r.delay_ms)).await;
    s.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut resp = (StatusCode::from_u16(r.status).unwrap(), r.body).into_response();
    for (k, v) in r.headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

/// Serves on 127.0.0.1 (a free port); returns the base URL (`http://.../v1`) and the server.
pub async fn serve(
    respond: impl Fn(usize, &Value) -> Reply + Send + Sync + 'static,
) -> (String, Arc<Server>) {
    let server = Arc::new(Server {
        hits: AtomicUsize::new(0),
        in_flight: AtomicUsize::new(0),
        max_in_flight: AtomicUsize::new(0),
        requests: Mutex::new(vec![]),
        respond: Box::new(respond),
    });
    let app = axum::Router::new().fallback(handle).with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), server)
}

/// `serve` on a runtime of its own thread, for the rest of the test process.
pub fn serve_blocking(
    respond: impl Fn(usize, &Value) -> Reply + Send + Sync + 'static,
) -> (String, Arc<Server>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            tx.send(serve(respond).await).unwrap();
            std::future::pending::<()>().await
        })
    });
    rx.recv().unwrap()
}

pub const KEY: &str = "sk-test-0123456789abcdef";

/// Settings for the server at `base`, the key in the environment variable `key_env`; fast
/// backoff and a short timeout.
pub fn settings(base: &str, key_env: &str) -> JudgeSettings {
    std::env::set_var(key_env, KEY);
    JudgeSettings {
        base_url: Some(base.to_string()),
        api_key_env: Some(key_env.to_string()),
        backoff_secs: 0.01,
        max_backoff_secs: 5.0,
        timeout_secs: 5.0,
        ..JudgeSettings::default()
    }
}

/// A valid answer for the builtin rubric (the offline judge's, which follows the schema).
pub fn valid_answer(r: &Rubric) -> String {
    polaris::reward::judge::offline::answer(r, "A lighthouse keeper finds a letter.", &story()).to_string()
}

/// A valid answer of the rubric at its best (`good`) or its worst.
pub fn answer_at(rubric: &Rubric, good: bool) -> String {
    use polaris::reward::rubric::Sign;
    let mut v = polaris::reward::judge::offline::answer(rubric, "x", &story());
    let (mut positive, mut negative) = (0, 0);
    for d in &rubric.dimensions {
        let s = if (d.sign == Sign::Positive) == good { d.max } else { 0 };
        v[d.score_field()] = s.into();
        match d.sign {
            Sign::Positive => positive += s,
            Sign::Negative => negative += s,
        }
    }
    for c in rubric.bonus.iter().chain(rubric.penalty.iter()) {
        v[c.score_field()] = 0.into();
    }
    v["positive_total"] = positive.into();
    v["negative_total"] = negative.into();
    v["overall_score"] = (positive - negative).into();
    v.to_string()
}

pub fn story() -> String {
    "The keeper climbed the stairs at dusk and found the letter under the lamp. ".repeat(30)
}

/// A chat-completions response holding `content`.
pub fn openai_body(content: &str) -> String {
    json!({"choices": [{"message": {"role": "assistant", "content": content}}], "usage": {"prompt_tokens": 1000, "completion_tokens": 200}}).to_string()
}

pub fn client(s: JudgeSettings) -> JudgeClient {
    JudgeClient::new(JudgeSpec::OpenAi("judge-model".into()), Rubric::builtin().unwrap(), s).unwrap()
}
