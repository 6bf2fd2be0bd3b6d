//! `eval elo`: Bradley-Terry recovers known ratings, the dual-position verdicts cancel a
//! simulated position bias, the command's records survive re-runs and kills, and bad input
//! gets a clear error.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use polaris::eval::elo::bradley_terry::{self, expected_score, FitOptions, Tally, ELO_PER_NAT};
use polaris::eval::elo::ladder::{combined, elo_report, EloSettings, JudgedPair};
use polaris::eval::elo::pairs::Matchup;
use polaris::eval::report::EloReport;
use polaris::reward::judge::http::Usage;
use polaris::reward::pairwise::{combine, Shown, Verdict};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// Standard errors (Elo points) of BT ratings relative to `anchor`, from the Fisher
/// information of `games[i][j]` Bernoulli games at the true ratings: the information matrix
/// is the graph Laplacian weighted by `games * p (1 - p)`; the anchor's row and column are
/// dropped (its rating is fixed) and the rest inverted.
fn standard_errors(true_elo: &[f64], games: f64, anchor: usize) -> Vec<f64> {
    let n = true_elo.len();
    let free: Vec<usize> = (0..n).filter(|&i| i != anchor).collect();
    let m = free.len();
    let mut info = vec![vec![0.0; m]; m];
    for (x, &i) in free.iter().enumerate() {
        for j in 0..n {
            if j == i {
                continue;
            }
            let p = expected_score(true_elo[i], true_elo[j]);
            let w = games * p * (1.0 - p);
            info[x][x] += w;
            if let Some(y) = free.iter().position(|&f| f == j) {
                info[x][y] -= w;
            }
        }
    }
    // Gauss-Jordan inverse of the small positive-definite matrix
    let mut inv: Vec<Vec<f64>> = (0..m).map(|i| (0..m).map(|j| f64::from(i == j)).collect()).collect();
    for c in 0..m {
        let pivot = info[c][c];
        for k in 0..m {
            info[c][k] /= pivot;
            inv[c][k] /= pivot;
        }
        for r in 0..m {
            if r != c {
                let f = info[r][c];
                for k in 0..m {
                    info[r][k] -= f * info[c][k];
                    inv[r][k] -= f * inv[c][k];
                }
            }
        }
    }
    let mut se = vec![0.0; n];
    for (x, &i) in free.iter().enumerate() {
        se[i] = inv[x][x].sqrt() * ELO_PER_NAT;
    }
    se
}

#[test]
fn bradley_terry_recovers_known_ratings_from_simulated_games() {
    let true_elo = [1000.0, 1120.0, 1250.0, 1400.0, 880.0];
    let games_per_pair = 3000;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut tally = Tally::new(true_elo.len());
    for i in 0..true_elo.len() {
        for j in i + 1..true_elo.len() {
            let p = expected_score(true_elo[i], true_elo[j]);
            for _ in 0..games_per_pair {
                tally.add(i, j, if rng.random::<f64>() < p { 1.0 } else { 0.0 });
            }
        }
    }
    let fitted =
        bradley_terry::elo(&bradley_terry::fit(&tally, &FitOptions::default(), None).unwrap(), 0, 1000.0);
    let se = standard_errors(&true_elo, games_per_pair as f64, 0);
    for i in 1..true_elo.len() {
        // tolerance: 4 standard errors of the MLE (a 6e-5 two-sided chance per system for an
        // unseeded run); the prior's one virtual tie per pair moves a rating far less than
        // one SE (about 1/3000 of the evidence)
        let err = (fitted[i] - true_elo[i]).abs();
        assert!(
            err < 4.0 * se[i],
            "system {i}: fitted {:.1}, true {}, SE {:.1}",
            fitted[i],
            true_elo[i],
            se[i]
        );
        assert!(se[i] > 3.0 && se[i] < 10.0, "the test has the power it claims: SE {:.1}", se[i]);
    }
}

fn verdict(winner: Shown) -> Verdict {
    Verdict { winner, margin: 3, criteria: vec![], answer: json!({}) }
}

/// A judge with a position bias: with probability `q` it picks the story shown first
/// whatever it is, otherwise it picks by the true ratings (the Elo curve).
fn biased_verdict(rng: &mut ChaCha8Rng, q: f64, first: f64, second: f64) -> Shown {
    if rng.random::<f64>() < q || rng.random::<f64>() < expected_score(first, second) {
        Shown::First
    } else {
        Shown::Second
    }
}

#[test]
fn dual_position_verdicts_cancel_a_simulated_position_bias() {
    // three systems 150 points apart, a judge that picks the first position 40% of the time
    let true_elo = [1000.0, 1150.0, 1300.0];
    let q = 0.4;
    let prompts = 1500;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut dual = Vec::new();
    // the same judge asked once per pair, always with the weaker system shown first
    let mut single = Tally::new(3);
    for prompt in 0..prompts {
        for a in 0..3 {
            for b in a + 1..3 {
                let a_first = biased_verdict(&mut rng, q, true_elo[a], true_elo[b]);
                let b_first = biased_verdict(&mut rng, q, true_elo[b], true_elo[a]);
                // the real combination of both orders, as `eval elo` does it
                let r = combine(Ok(verdict(a_first)), Ok(verdict(b_first)), Usage::default());
                dual.push(JudgedPair { prompt, a, b, combined: combined(r.preference), a_first, b_first });
                // a < b, so a is the weaker: shown first, it wins on "First"
                let weak_first = biased_verdict(&mut rng, q, true_elo[a], true_elo[b]);
                single.add(a, b, if weak_first == Shown::First { 1.0 } else { 0.0 });
            }
        }
    }
    let settings = EloSettings {
        judge: "simulated".into(),
        systems: vec!["low".into(), "mid".into(), "high".into()],
        anchor: 0,
        anchor_rating: 1000.0,
        resamples: 1000,
        seed: 3,
        fit: FitOptions::default(),
    };
    let report = elo_report(&dual, &settings).unwrap();
    let order: Vec<&str> = report.ratings.iter().map(|r| r.system.as_str()).collect();
    assert_eq!(order, ["high", "mid", "low"], "{report:#?}");
    // the bias shrinks the combined ratings towards each other (a biased verdict is a coin
    // toss between the orders, scored as a tie) but cannot reorder them: each gap stays
    // clear of zero by its bootstrap interval
    let rating = |s: &str| report.ratings.iter().find(|r| r.system == s).unwrap().clone();
    assert!(rating("mid").ci.low > 1000.0, "{:?}", rating("mid"));
    assert!(rating("high").ci.low > rating("mid").rating, "{:?}", rating("high"));

    // one order only, weaker first: the bias lifts the weaker system over the stronger
    let one_order =
        bradley_terry::elo(&bradley_terry::fit(&single, &FitOptions::default(), None).unwrap(), 0, 1000.0);
    assert!(one_order[0] > one_order[1], "single-order fit should be fooled: {one_order:?}");

    // the first position wins q + (1 - q) / 2 of the decisive single-order verdicts (each
    // pair shows each system first once, so the true-strength part averages to 1/2)
    let expected = q + (1.0 - q) / 2.0;
    let p = &report.position;
    let n = p.judgements as f64;
    // tolerance: 4 binomial standard errors over the 9000 single-order judgements
    let tol = 4.0 * (expected * (1.0 - expected) / n).sqrt();
    let rate = p.first_win_rate.unwrap();
    assert!((rate - expected).abs() < tol, "first-position win rate {rate}, expected {expected} +- {tol}");
    let ci = p.first_win_rate_ci.unwrap();
    assert!(ci.low < rate && rate < ci.high && ci.high - ci.low < 4.0 * tol, "{ci:?}");
    assert_eq!((p.pairs, p.judgements, p.ties), (dual.len(), 2 * dual.len(), 0));
    // inconsistent: both orders picked the same position, i.e. different stories
    let same_position = dual.iter().filter(|d| d.a_first == d.b_first).count();
    assert_eq!(p.inconsistent_pairs, same_position);
    assert!(report.ratings.iter().all(|r| r.wins + r.losses + r.ties == 2 * prompts));
}

// ---- the command ----------------------------------------------------------------------

fn polaris(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_polaris-tui")).args(args).env("RUST_BACKTRACE", "0").output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    o
}

fn failed(o: Output) -> String {
    assert!(!o.status.success(), "should fail; stdout: {}", String::from_utf8_lossy(&o.stdout));
    let e = stderr(&o);
    assert!(!e.contains("panicked"), "{e}");
    e
}

/// Public-domain stories from the shared data, of 600-1500 words.
fn human_stories(n: usize) -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(shared().join("data/stories/pd_stories.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| (600..1500).contains(&v["words"].as_u64().unwrap()))
        .take(n)
        .map(|v| {
            (
                v["title"].as_str().unwrap().to_string(),
                v["text"].as_str().unwrap().split_whitespace().map(String::from).collect(),
            )
        })
        .collect()
}

/// Three systems the offline judge tells apart: the human story at its requested length,
/// its first third, and a loop of one sentence.
fn write_gens(dir: &Path, prompts: usize) -> Vec<PathBuf> {
    let stories = human_stories(prompts);
    let mut files = Vec::new();
    for (system, cut) in [("human", 1usize), ("third", 3), ("loop", 0)] {
        let lines: Vec<String> = stories
            .iter()
            .enumerate()
            .map(|(i, (title, words))| {
                let prompt =
                    format!("Write a story titled {title}. The story should be {} words long.", words.len());
                let story = match cut {
                    0 => "the letter the letter the bell. ".repeat(words.len() / 6),
                    k => words[..words.len() / k].join(" "),
                };
                json!({"prompt_uid": format!("p{i}"), "prompt": prompt, "system": system, "story": story})
                    .to_string()
            })
            .collect();
        let path = dir.join(format!("{system}.jsonl"));
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        files.push(path);
    }
    files
}

fn elo_args<'a>(files: &'a [String], out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["eval", "elo", "--judge", "offline", "--resamples", "1000", "--out", out, "--gens"];
    args.extend(files.iter().map(String::as_str));
    args.extend(extra);
    args
}

#[test]
fn the_command_writes_records_and_a_ladder_and_a_rerun_judges_only_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<String> = write_gens(dir.path(), 6).iter().map(|p| p.display().to_string()).collect();
    let out = dir.path().join("eval/elo");
    let out_s = out.display().to_string();
    let first = ok(polaris(&elo_args(&files, &out_s, &[])));
    assert!(stderr(&first).contains("judged 18 pairs now"), "{}", stderr(&first));
    let records_path = out.join("judgements.jsonl");
    let records = std::fs::read(&records_path).unwrap();
    let lines: Vec<serde_json::Value> = records
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    // 6 prompts x 3 system pairs, each with both orders' verdicts
    assert_eq!(lines.len(), 18);
    for l in &lines {
        assert!(
            l["result"]["a_first"]["Ok"]["winner"].is_string()
                && l["result"]["b_first"]["Ok"]["winner"].is_string(),
            "{l}"
        );
        assert_eq!(l["judge"], "offline");
    }
    let report: EloReport = serde_json::from_slice(&std::fs::read(out.join("elo.json")).unwrap()).unwrap();
    let order: Vec<&str> = report.ratings.iter().map(|r| r.system.as_str()).collect();
    assert_eq!(order[2], "loop", "{report:#?}");
    assert_eq!((report.anchor.as_str(), report.prompts, report.resamples), ("human", 6, 1000));
    assert_eq!(report.ratings.iter().find(|r| r.system == "human").unwrap().rating, 1000.0);
    assert_eq!(report.pairs.len(), 3);
    assert_eq!(report.position.pairs, 18);
    let md = std::fs::read_to_string(out.join("elo.md")).unwrap();
    assert!(
        md.contains("| rank | system | Elo | 95% CI | W | L | T |") && md.contains("## Head to head"),
        "{md}"
    );
    assert!(md.contains("## Position bias"));
    // the ladder plot beside the reports, both formats
    for plot in ["elo.png", "elo.svg"] {
        let len = std::fs::metadata(out.join(plot)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "{plot}: {len} bytes");
    }
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("rank") && stdout.contains("loop"), "{stdout}");
    let json_before = std::fs::read(out.join("elo.json")).unwrap();

    // a re-run judges nothing and leaves the records as they were; same seed, same report
    let again = ok(polaris(&elo_args(&files, &out_s, &[])));
    assert!(stderr(&again).contains("judged 0 pairs now"), "{}", stderr(&again));
    assert_eq!(std::fs::read(&records_path).unwrap(), records);
    assert_eq!(std::fs::read(out.join("elo.json")).unwrap(), json_before);

    // a kill mid-write: the last record cut short is dropped and only its pair judged again
    std::fs::write(&records_path, &records[..records.len() - 40]).unwrap();
    let healed = ok(polaris(&elo_args(&files, &out_s, &[])));
    assert!(stderr(&healed).contains("judged 1 pairs now"), "{}", stderr(&healed));
    assert!(
        stderr(&healed).contains("judgements.jsonl:18: a record cut off mid-write"),
        "{}",
        stderr(&healed)
    );
    // the offline judge is deterministic: the same 18 records, the redone one last
    assert_eq!(std::fs::read(&records_path).unwrap(), records);

    // the systems in another order, another anchor: the stored records are read from the
    // other side, nothing is judged, and the ladder's gaps are the same
    let reversed: Vec<String> = files.iter().rev().cloned().collect();
    let other = ok(polaris(&elo_args(&reversed, &out_s, &["--anchor", "third", "--anchor-rating", "1500"])));
    assert!(stderr(&other).contains("judged 0 pairs now"), "{}", stderr(&other));
    let moved: EloReport = serde_json::from_slice(&std::fs::read(out.join("elo.json")).unwrap()).unwrap();
    let gap = |r: &EloReport, a: &str, b: &str| {
        let get = |s: &str| r.ratings.iter().find(|x| x.system == s).unwrap().rating;
        get(a) - get(b)
    };
    // tolerance: the same data fitted to 1e-9 nats; only the summation order differs
    assert!((gap(&moved, "human", "loop") - gap(&report, "human", "loop")).abs() < 1e-6);
    assert_eq!(moved.ratings.iter().find(|r| r.system == "third").unwrap().rating, 1500.0);

    // fewer systems than were judged: the other records are kept in the file, named, left out
    let two = ok(polaris(&elo_args(&files[..2], &out_s, &[])));
    assert!(
        stderr(&two).contains("holds 12 record(s) of pairs not in these generation files"),
        "{}",
        stderr(&two)
    );
    let fewer: EloReport = serde_json::from_slice(&std::fs::read(out.join("elo.json")).unwrap()).unwrap();
    assert_eq!((fewer.ratings.len(), fewer.position.pairs), (2, 6));
    assert_eq!(std::fs::read(&records_path).unwrap(), records);
}

#[test]
fn a_changed_judge_prompt_or_story_for_an_existing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_gens(dir.path(), 2);
    let files: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let out = dir.path().join("out").display().to_string();
    ok(polaris(&elo_args(&files, &out, &[])));

    let toml = dir.path().join("pairwise.toml");
    let builtin = polaris::reward::pairwise::BUILTIN.replace("You are", "You are, today,");
    assert_ne!(builtin, polaris::reward::pairwise::BUILTIN, "the edit must change the prompt");
    std::fs::write(&toml, builtin).unwrap();
    let e = failed(polaris(&elo_args(&files, &out, &["--pairwise-prompt", toml.to_str().unwrap()])));
    assert!(
        e.contains("judgements.jsonl:1 was judged by `offline` with pairwise prompt")
            && e.contains("another --out"),
        "{e}"
    );

    // a story rewritten since it was judged
    let text = std::fs::read_to_string(&paths[1]).unwrap().replacen("\"story\":\"", "\"story\":\"Once. ", 1);
    std::fs::write(&paths[1], text).unwrap();
    let e = failed(polaris(&elo_args(&files, &out, &[])));
    assert!(e.contains("uid `p0` sample 0: the story of `third` is not the one judged"), "{e}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<String> = write_gens(dir.path(), 2).iter().map(|p| p.display().to_string()).collect();
    let out = dir.path().join("out").display().to_string();

    let help = ok(polaris(&["eval", "elo", "--help"]));
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: polaris-tui eval elo"));

    let e = failed(polaris(&elo_args(&files[..1], &out, &[])));
    assert!(e.contains("holds only system `human`") && e.contains("at least two systems"), "{e}");

    let e = failed(polaris(&elo_args(&files, &out, &["--anchor", "gpt"])));
    assert!(e.contains("--anchor `gpt` is not a system") && e.contains("`human`, `third`, `loop`"), "{e}");

    // one prompt_uid, two prompt texts
    let odd = dir.path().join("odd.jsonl");
    std::fs::write(
        &odd,
        json!({"prompt_uid": "p0", "prompt": "Write about a cat.", "system": "odd", "story": "A cat."})
            .to_string()
            + "\n",
    )
    .unwrap();
    let mut with_odd = files.clone();
    with_odd.push(odd.display().to_string());
    let e = failed(polaris(&elo_args(&with_odd, &out, &[])));
    assert!(
        e.contains("1 mismatched prompt(s)") && e.contains("uid `p0`") && e.contains("odd.jsonl:1"),
        "{e}"
    );

    // no prompt shared by two systems
    let lone = dir.path().join("lone.jsonl");
    std::fs::write(
        &lone,
        json!({"prompt_uid": "z9", "prompt": "Write about a cat.", "system": "lone", "story": "A cat."})
            .to_string()
            + "\n",
    )
    .unwrap();
    let e = failed(polaris(&elo_args(&[files[0].clone(), lone.display().to_string()], &out, &[])));
    assert!(e.contains("no uid has stories from two systems"), "{e}");

    // a system that shares no prompt with the others cannot be rated
    let mut with_lone = files.clone();
    with_lone.push(lone.display().to_string());
    let e = failed(polaris(&elo_args(&with_lone, &out, &[])));
    assert!(e.contains("no judged pair involves lone"), "{e}");

    let twice = [files[0].clone(), files[1].clone(), files[0].clone()];
    let e = failed(polaris(&elo_args(&twice, &out, &[])));
    assert!(e.contains("human.jsonl is given twice in --gens"), "{e}");

    let e = failed(polaris(&elo_args(&files, &out, &["--resamples", "10"])));
    assert!(e.contains("--resamples"), "{e}");
}

#[test]
fn samples_pair_by_index_and_missing_stories_are_counted_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let rec = |uid: &str, system: &str, story: &str| {
        json!({"prompt_uid": uid, "prompt": format!("Write story {uid}."), "system": system, "story": story})
            .to_string()
    };
    // one file holding two systems; `a` has two samples of p0 and p1, `b` two of p0, one of p1
    let mixed = dir.path().join("ab.jsonl");
    let lines = [
        rec("p0", "a", "a0 first"),
        rec("p0", "b", "b0 first"),
        rec("p0", "a", "a0 second"),
        rec("p1", "a", "a1 first"),
        rec("p0", "b", "b0 second"),
        rec("p1", "b", "b1 first"),
        rec("p1", "a", "a1 second"),
    ];
    std::fs::write(&mixed, lines.join("\n") + "\n").unwrap();
    // a third system with p0 only
    let c = dir.path().join("c.jsonl");
    std::fs::write(&c, rec("p0", "c", "c0") + "\n").unwrap();
    let m = Matchup::read(&[mixed, c]).unwrap();
    assert_eq!(m.systems, ["a", "b", "c"]);
    let story = |p: usize, s: usize, k: usize| m.prompts[p].stories[s][k].to_string();
    assert_eq!((story(0, 0, 1), story(0, 1, 1)), ("a0 second".into(), "b0 second".into()));
    // p0: a-b x2, a-c x1, b-c x1; p1: a-b x1
    assert_eq!(m.tasks.len(), 5);
    assert!(m.tasks.iter().all(|t| t.sample == 0 || (t.prompt == 0 && t.a == 0 && t.b == 1)));
    // skipped, per prompt and system pair, the samples one side lacks: p0 a-c 1 and b-c 1;
    // p1 a-b 1, a-c 2 and b-c 1
    let w = m.skipped_warning().unwrap();
    assert_eq!(m.skipped, 1 + 1 + 1 + 2 + 1, "{w}");
    assert!(w.contains("uid `p1`: `a` has 2 stories, `c` has 0"), "{w}");
}

// ---- a remote judge on loopback: concurrency, failed orders judged again ----------------

mod loopback {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use axum::body::Bytes;
    use axum::extract::State;
    use serde_json::{json, Value};

    #[derive(Default)]
    pub struct Judge {
        pub hits: AtomicUsize,
        pub in_flight: AtomicUsize,
        pub max_in_flight: AtomicUsize,
        /// While set, a request about a story marked `flaky` gets an answer without JSON.
        pub fail_flaky: AtomicBool,
        pub criteria: Vec<String>,
    }

    /// Prefers the story with the higher `rank-N` marker, wherever it is shown.
    async fn handle(State(j): State<Arc<Judge>>, body: Bytes) -> String {
        j.hits.fetch_add(1, Ordering::SeqCst);
        let now = j.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        j.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let v: Value = serde_json::from_slice(&body).unwrap();
        let user = v["messages"][1]["content"].as_str().unwrap().to_string();
        // held a while so that concurrent requests overlap
        tokio::time::sleep(Duration::from_millis(50)).await;
        j.in_flight.fetch_sub(1, Ordering::SeqCst);
        let content = if j.fail_flaky.load(Ordering::SeqCst) && user.contains("flaky") {
            "I cannot decide.".to_string()
        } else {
            let ranks: Vec<u32> = user.split("rank-").skip(1).map(|s| s[..1].parse().unwrap()).collect();
            let w = if ranks[0] > ranks[1] { "1" } else { "2" };
            let mut a = serde_json::Map::new();
            for k in &j.criteria {
                a.insert(format!("{k}_winner"), json!(w));
                a.insert(format!("{k}_reason"), json!("because"));
            }
            a.insert("overall_winner".into(), json!(w));
            a.insert("margin".into(), json!(2));
            a.insert("overall_reason".into(), json!("because"));
            Value::Object(a).to_string()
        };
        json!({"choices": [{"message": {"role": "assistant", "content": content}}],
               "usage": {"prompt_tokens": 100, "completion_tokens": 20}})
        .to_string()
    }

    pub async fn serve(judge: Arc<Judge>) -> String {
        let app = axum::Router::new().fallback(handle).with_state(judge);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/v1")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_judge_runs_pairs_concurrently_and_failed_orders_are_judged_again() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use polaris::eval::elo::judge::{judge_missing, judged_pairs, missing};
    use polaris::eval::elo::store::{pairwise_prompt_id, JudgementFile};
    use polaris::reward::judge::{JudgeClient, JudgeSettings, JudgeSpec};
    use polaris::reward::pairwise::PairwisePrompt;
    use polaris::reward::Rubric;

    let prompt = Arc::new(PairwisePrompt::builtin().unwrap());
    let judge = Arc::new(loopback::Judge {
        criteria: prompt.criteria.iter().map(|c| c.key.clone()).collect(),
        ..Default::default()
    });
    judge.fail_flaky.store(true, Ordering::SeqCst);
    let base = loopback::serve(judge.clone()).await;
    std::env::set_var("POLARIS_TEST_KEY_ELO", "sk-test-elo");
    let settings = JudgeSettings {
        base_url: Some(base),
        api_key_env: Some("POLARIS_TEST_KEY_ELO".into()),
        concurrency: 2,
        backoff_secs: 0.01,
        timeout_secs: 5.0,
        ..JudgeSettings::default()
    };
    let client = Arc::new(
        JudgeClient::new(JudgeSpec::OpenAi("m".into()), Rubric::builtin().unwrap(), settings).unwrap(),
    );

    let dir = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    for (system, rank) in [("a", 3), ("b", 2), ("c", 1)] {
        for p in 0..3 {
            let flaky = if system == "c" && p == 0 { " flaky" } else { "" };
            lines.push(
                json!({"prompt_uid": format!("p{p}"), "prompt": format!("Write story {p}."), "system": system,
                       "story": format!("A story, rank-{rank}{flaky}.")})
                .to_string(),
            );
        }
    }
    let gens = dir.path().join("gens.jsonl");
    std::fs::write(&gens, lines.join("\n") + "\n").unwrap();
    let m = Matchup::read(&[gens]).unwrap();
    let id = pairwise_prompt_id(&prompt);
    let out = dir.path().join("out");

    let (mut file, mut existing) = JudgementFile::open(&out, &client.spec.label(), &id).unwrap();
    let todo = missing(&m, &existing, file.path()).unwrap();
    assert_eq!(todo.len(), 9);
    let records =
        judge_missing(&m, &todo, client.clone(), prompt.clone(), &id, &mut file, |_| {}).await.unwrap();
    // each pair is two requests; two pairs in flight contend for the limit of 2, each request
    // held 50 ms, so the limit is reached and never passed
    assert_eq!(judge.max_in_flight.load(Ordering::SeqCst), 2);
    // p0's pairs with c fail in both orders (after the client's one repair request each)
    let failed: Vec<_> = records.iter().filter(|(_, r)| !r.complete()).collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed.iter().all(|(_, r)| r.prompt_uid == "p0" && r.b == "c"));
    for (line, r) in records {
        existing.add(line, r);
    }
    let (pairs, left_out) = judged_pairs(&m, &existing);
    assert_eq!((pairs.len(), left_out), (7, 2));
    // every complete pair: the higher rank won in both orders
    assert!(pairs.iter().all(|p| p.combined == polaris::eval::stats::winrate::Preference::AWins));
    drop(file);

    // the re-run: only the two failed pairs are asked again, and their new records count
    judge.fail_flaky.store(false, Ordering::SeqCst);
    let hits_before = judge.hits.load(Ordering::SeqCst);
    let (mut file, mut existing) = JudgementFile::open(&out, &client.spec.label(), &id).unwrap();
    let todo = missing(&m, &existing, file.path()).unwrap();
    assert_eq!(todo.len(), 2);
    let records =
        judge_missing(&m, &todo, client.clone(), prompt.clone(), &id, &mut file, |_| {}).await.unwrap();
    assert_eq!(judge.hits.load(Ordering::SeqCst) - hits_before, 4, "two pairs, two orders each");
    assert_eq!(records.len(), 2);
    for (line, r) in records {
        assert!(line > 9, "appended after the first run's 9 records");
        existing.add(line, r);
    }
    assert_eq!(existing.superseded, 2);
    let (pairs, left_out) = judged_pairs(&m, &existing);
    assert_eq!((pairs.len(), left_out), (9, 0));
    drop(file);
    // a third opening reads the superseding records back from the file
    let (_file, reread) = JudgementFile::open(&out, &client.spec.label(), &id).unwrap();
    assert_eq!((reread.records.len(), reread.superseded), (9, 2));
    assert!(missing(&m, &reread, &out).unwrap().is_empty());
}
