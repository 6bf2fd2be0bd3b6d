//! `cargo bench --bench judge`: the judge client against a loopback server that answers
//! after 200 ms (240 judgements at concurrency 16, against the ideal 240/16 x 0.2 s), and the
//! offline judge's stories per second on 5,000-word stories.

use std::sync::Arc;
use std::time::{Duration, Instant};

use polaris::reward::judge::{JudgeClient, JudgeSettings, JudgeSpec};
use polaris::reward::Rubric;
use serde_json::json;

const CALLS: usize = 240;
const CONCURRENCY: usize = 16;
const LATENCY: Duration = Duration::from_millis(200);

/// A deterministic 5,000-word story: varied sentences, dialogue, paragraphs.
fn long_story(seed: usize) -> String {
    let words = [
        "keeper", "lamp", "harbour", "salt", "rope", "gull", "letter", "tide", "stone", "stair", "wind",
        "night", "boat", "window", "bread", "mother", "storm", "light", "shadow", "iron", "quiet", "cold",
        "bright", "river", "door", "winter", "promise", "fisher", "net", "bell", "village", "road", "coat",
        "hands", "smoke", "ash", "morning", "waves", "chart", "oil",
    ];
    let mut s = String::new();
    let mut n = 0;
    let mut i = seed;
    while n < 5000 {
        let len = 6 + (i * 7) % 17;
        let mut sentence: Vec<&str> =
            (0..len).map(|k| words[(i * 31 + k * 17 + k * k) % words.len()]).collect();
        sentence[0] = if i.is_multiple_of(5) { "She" } else { "The" };
        let text = sentence.join(" ");
        if i.is_multiple_of(9) {
            s.push_str(&format!("\"{text},\" said Mara. "));
        } else {
            s.push_str(&format!("{text}. "));
        }
        if i % 7 == 6 {
            s.push_str("\n\n");
        }
        n += len;
        i += 1;
    }
    s
}

async fn loopback(answer: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = json!({"choices": [{"message": {"content": answer}}], "usage": {"prompt_tokens": 3000, "completion_tokens": 800}}).to_string();
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move {
            tokio::time::sleep(LATENCY).await;
            body
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/v1")
}

fn main() {
    let rubric = Rubric::builtin().unwrap();
    let story = long_story(1);
    let answer =
        polaris::reward::judge::offline::answer(&rubric, "A keeper and a letter.", &story).to_string();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();

    // remote: 240 calls, limit 16
    let base = rt.block_on(loopback(answer));
    std::env::set_var("POLARIS_BENCH_KEY", "bench-key");
    let settings = JudgeSettings {
        base_url: Some(base),
        api_key_env: Some("POLARIS_BENCH_KEY".into()),
        concurrency: CONCURRENCY,
        ..JudgeSettings::default()
    };
    let client =
        Arc::new(JudgeClient::new(JudgeSpec::OpenAi("bench".into()), rubric.clone(), settings).unwrap());
    let started = Instant::now();
    let ok = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..CALLS {
            let (c, s) = (client.clone(), format!("{} {i}", story));
            set.spawn(async move { c.judge("A keeper and a letter.", &s).await.outcome.is_ok() });
        }
        let mut ok = 0;
        while let Some(r) = set.join_next().await {
            ok += r.unwrap() as usize;
        }
        ok
    });
    let wall = started.elapsed().as_secs_f64();
    let ideal = CALLS as f64 / CONCURRENCY as f64 * LATENCY.as_secs_f64();

    // offline: stories per second on 5,000-word stories
    let offline = JudgeClient::new(JudgeSpec::Offline, rubric, JudgeSettings::default()).unwrap();
    let stories: Vec<String> = (0..20).map(long_story).collect();
    let started = Instant::now();
    let rounds = 3;
    rt.block_on(async {
        for _ in 0..rounds {
            for s in &stories {
                assert!(offline.judge("A keeper and a letter.", s).await.outcome.is_ok());
            }
        }
    });
    let per_s = (rounds * stories.len()) as f64 / started.elapsed().as_secs_f64();
    let rules_started = Instant::now();
    for s in &stories {
        std::hint::black_box(polaris::reward::rules::self_repetition(s));
    }
    let rules_per_s = stories.len() as f64 / rules_started.elapsed().as_secs_f64();

    println!("\n| measurement | result |");
    println!("|---|---|");
    println!("| {CALLS} judgements, concurrency {CONCURRENCY}, server latency 200 ms | {wall:.2} s wall ({ok} ok); ideal {ideal:.2} s; ratio {:.2} |", wall / ideal);
    println!("| offline judge, 5,000-word stories | {per_s:.1} stories/s |");
    println!("| self-repetition rule alone, 5,000-word stories | {rules_per_s:.0} stories/s |");
}
