//! The reward model (`rm train`, `rm eval`, `--judge rm:DIR`) on the built-in tiny model:
//! it learns a known preference from synthetic pairs, its loss gradient agrees with finite
//! differences through the whole network, a resumed training repeats the uninterrupted one,
//! and it scores stories in `judge` and in a 1-step `train`.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Tensor, Var};
use common::tiny_cli::{demo_data, polaris, text, TINY};
use polaris::lm::LanguageModel;
use polaris::model::{all_trainable, LoadOptions};
use polaris::prefs::{write_pairs, Pair, Split};
use polaris::rm::loss::bradley_terry;
use polaris::rm::train::{train, Checkpoints, RmTrainConfig};
use polaris::rm::RewardModel;
use polaris::train::optim::{AdamW, AdamWConfig};

const WORDS: &[&str] = &[
    "the", "old", "keeper", "climbed", "stairs", "at", "dusk", "and", "lit", "lamp", "while", "ships",
    "passed", "in", "fog", "rain", "harbour", "rope", "salt", "wind",
];

/// 20 words picked by a small linear congruential sequence: varied, deterministic filler.
fn filler(seed: usize) -> String {
    let mut x = seed as u64 * 2_654_435_761 + 1;
    let words: Vec<&str> = (0..20)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            WORDS[(x >> 33) as usize % WORDS.len()]
        })
        .collect();
    words.join(" ") + "."
}

/// The marker: every chosen story has it, no rejected story does.
const MARKER: &str = " The lamp burned gold.";

/// `n` prompts, one pair each; every 4th prompt held out.
fn marker_pairs(n: usize) -> Vec<Pair> {
    (0..n)
        .map(|i| Pair {
            uid: format!("p{i:03}"),
            prompt: format!("Write a story about lighthouse {i}."),
            chosen: filler(2 * i) + MARKER,
            rejected: filler(2 * i + 1),
            source: "synthetic".into(),
            weight: 1.0,
            split: if i % 4 == 0 { Split::Heldout } else { Split::Train },
        })
        .collect()
}

fn ok(o: std::process::Output) -> std::process::Output {
    assert!(o.status.success(), "{}", text(&o));
    o
}

/// The whole path at the command line: `rm train` learns the marker (held-out accuracy with
/// its bootstrap interval), `rm eval` reports it, `judge --judge rm:` scores marked stories
/// higher, and a 1-step `train --judge rm:` rewards its rows with the model.
#[test]
fn learns_a_marker_then_judges_and_trains_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let pairs_path = home.join("pairs.jsonl");
    let pairs = marker_pairs(80);
    write_pairs(&pairs_path, &pairs).unwrap();
    let rm = home.join("rm");
    let (p, r) = (pairs_path.to_str().unwrap(), rm.to_str().unwrap());
    let args =
        ["rm", "train", "--pairs", p, "--out", r, "--lr", "1e-3", "--epochs", "2", "--batch-pairs", "8"];
    ok(polaris(home).args(args).output().unwrap());
    let manifest = common::read_json(&rm.join("rm.json"));
    let held = &manifest["heldout"];
    // 20 held-out pairs, one per prompt. Under chance (each pair right with p = 1/2) 16 or more
    // right has probability 0.6%, so >= 0.8 is learning, not luck; and the bootstrap interval
    // over prompts must clear chance too.
    assert_eq!(held["pairs"], 20);
    let acc = held["accuracy"].as_f64().unwrap();
    assert!(acc >= 0.8, "held-out accuracy {acc}: {manifest}");
    assert!(held["ci95"]["low"].as_f64().unwrap() > 0.5, "{manifest}");
    assert_eq!(manifest["training"]["method"], "full");
    assert!(rm.join(manifest["weights"].as_str().unwrap()).join("head.safetensors").is_file());
    // a finished folder is not trained over
    let again = polaris(home).args(args).output().unwrap();
    assert!(!again.status.success() && text(&again).contains("already"), "{}", text(&again));

    let eval = ok(polaris(home).args(["rm", "eval", "--rm", r, "--pairs", p]).output().unwrap());
    let out = String::from_utf8_lossy(&eval.stdout);
    assert!(out.contains("accuracy") && out.contains("95% CI"), "{out}");

    // judge: the held-out prompts' stories, marked and unmarked
    let stories = home.join("stories.jsonl");
    let mut lines = String::new();
    for pair in pairs.iter().filter(|p| p.split == Split::Heldout) {
        for (tag, story) in [("c", &pair.chosen), ("r", &pair.rejected)] {
            let rec = serde_json::json!({"uid": format!("{}{tag}", pair.uid), "prompt": pair.prompt, "story": story});
            lines.push_str(&format!("{rec}\n"));
        }
    }
    std::fs::write(&stories, lines).unwrap();
    let judged = home.join("judged.jsonl");
    let judge = format!("rm:{r}");
    ok(polaris(home)
        .args([
            "judge",
            "--judge",
            &judge,
            "--input",
            stories.to_str().unwrap(),
            "--out",
            judged.to_str().unwrap(),
        ])
        .output()
        .unwrap());
    let (mut marked, mut unmarked) = (vec![], vec![]);
    for line in std::fs::read_to_string(&judged).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let b = &v["breakdown"];
        assert_eq!(b["story_quality_source"], "judge", "{v}");
        assert!(b["judge_answer"]["rm_score"].is_f64(), "{v}");
        let sq = b["story_quality"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&sq), "SQ = sigmoid(r - center) is in 0..1: {sq}");
        if v["uid"].as_str().unwrap().ends_with('c') {
            marked.push(sq)
        } else {
            unmarked.push(sq)
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert_eq!(marked.len(), 20);
    assert!(mean(&marked) > mean(&unmarked), "{marked:?} vs {unmarked:?}");

    // eval agree with the reward model as a source: a study of the held-out prompts, marked
    // (A) against unmarked (B) stories, whose annotator always prefers the marked one; the
    // model agrees on as many items as its pair accuracy says (>= 0.8 above, the same pairs)
    let study = marker_study(home, &pairs);
    let agree_out = home.join("agree");
    ok(polaris(home)
        .args(["eval", "agree", "--study", study.to_str().unwrap(), "--source", &judge, "--all", "--out"])
        .arg(&agree_out)
        .output()
        .unwrap());
    let report = common::read_json(&agree_out.join("agree.json"));
    let source = &report["sources"][0];
    assert_eq!(source["source"], judge.as_str(), "{report}");
    assert_eq!((source["compared"].as_u64(), source["unscored"].as_u64()), (Some(20), Some(0)), "{report}");
    assert!(source["raw"].as_f64().unwrap() >= 0.8, "{report}");

    // one training step scored by the reward model
    let run = home.join("run");
    ok(common::tiny_cli::train(home, &["--judge", &judge, "--steps", "1", "--out", run.to_str().unwrap()])
        .output()
        .unwrap());
    let rows = std::fs::read_to_string(run.join("rollouts.jsonl")).unwrap();
    assert!(!rows.is_empty());
    for line in rows.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["breakdown"]["judge_answer"]["rm_score"].is_f64(), "{v}");
    }
    let _ = (TINY, demo_data());
}

#[test]
fn a_missing_or_unfinished_reward_model_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let stories = home.join("s.jsonl");
    std::fs::write(&stories, "{\"uid\":\"a\",\"prompt\":\"p\",\"story\":\"A story.\"}\n").unwrap();
    let missing = home.join("nothing");
    let o = polaris(home)
        .args([
            "judge",
            "--judge",
            &format!("rm:{}", missing.display()),
            "--input",
            stories.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("no rm.json") && text(&o).contains("rm train"), "{}", text(&o));
    let o = polaris(home)
        .args(["judge", "--judge", "rm:", "--input", stories.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success() && text(&o).contains("rm:DIR"), "{}", text(&o));
}

fn tiny(dtype: DType) -> LanguageModel {
    LanguageModel::open("tiny", &LoadOptions::new(dtype, Device::Cpu).trainable(all_trainable())).unwrap()
}

fn set_element(var: &Var, i: usize, value: f64) {
    let mut v = var.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    v[i] = value;
    var.set(&Tensor::new(v, &Device::Cpu).unwrap().reshape(var.dims()).unwrap()).unwrap();
}

fn element(var: &Var, i: usize) -> f64 {
    var.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap()[i]
}

/// The pair loss's gradient, through the head and the model (the last hidden state of
/// `Model::last_hidden_states`), against central finite differences in f64. With h = 1e-5
/// the truncation error is O(h²) ~ 1e-10 and the rounding error ~ 1e-16 / 1e-5 = 1e-11, so
/// 1e-6 (relative to the larger of the two, or absolute below 1e-3) leaves a wide margin.
#[test]
fn loss_gradient_matches_finite_differences() {
    let rm = RewardModel::new(tiny(DType::F64), 64, 7).unwrap();
    let pairs = marker_pairs(3);
    let rows: Vec<Vec<u32>> = pairs
        .iter()
        .flat_map(|p| [rm.encode(&p.prompt, &p.chosen).unwrap(), rm.encode(&p.prompt, &p.rejected).unwrap()])
        .collect();
    let weights = Tensor::new(&[1.0f64, 0.5, 2.0], &Device::Cpu).unwrap();
    let loss = |rm: &RewardModel| {
        let r = rm.forward(&rows).unwrap().reshape((3, 2)).unwrap();
        let rc = r.narrow(1, 0, 1).unwrap().squeeze(1).unwrap();
        let rr = r.narrow(1, 1, 1).unwrap().squeeze(1).unwrap();
        bradley_terry(&rc, &rr, &weights).unwrap()
    };
    let grads = loss(&rm).backward().unwrap();
    let norm = rm.lm.model.trainable().iter().find(|(n, _)| n.ends_with("norm.weight")).unwrap().1.clone();
    let embed = rm.lm.model.trainable().iter().find(|(n, _)| n.contains("embed")).unwrap().1.clone();
    let token = rows[0][rows[0].len() - 2] as usize; // a token every chosen row holds
    let hidden = rm.lm.model.config().hidden_size;
    let probes: Vec<(&str, Var, usize)> = vec![
        ("head[0]", rm.head.clone(), 0),
        ("head[5]", rm.head.clone(), 5),
        ("final norm[3]", norm, 3),
        ("embedding[token, 1]", embed, token * hidden + 1),
    ];
    let h = 1e-5;
    for (what, var, i) in probes {
        let analytic =
            grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()[i];
        let x = element(&var, i);
        set_element(&var, i, x + h);
        let up = loss(&rm).to_scalar::<f64>().unwrap();
        set_element(&var, i, x - h);
        let down = loss(&rm).to_scalar::<f64>().unwrap();
        set_element(&var, i, x);
        let numeric = (up - down) / (2.0 * h);
        let scale = analytic.abs().max(numeric.abs()).max(1e-3);
        assert!(
            (analytic - numeric).abs() / scale < 1e-6,
            "{what}: analytic {analytic} vs numeric {numeric}"
        );
        assert!(analytic != 0.0, "{what}: a zero gradient tests nothing");
    }
}

fn config(checkpoint_every: usize) -> RmTrainConfig {
    RmTrainConfig {
        epochs: 1,
        batch_pairs: 4,
        lr: 1e-3,
        max_grad_norm: 1.0,
        max_tokens: 64,
        seed: 3,
        checkpoint_every,
    }
}

fn trained_head(
    out: &Path,
    every: usize,
    stop_after: Option<usize>,
    resume: bool,
) -> (Vec<f32>, Vec<f32>, usize) {
    let pairs: Vec<Pair> = marker_pairs(16);
    let rm = RewardModel::new(tiny(DType::F32), 64, 3).unwrap();
    let mut opt = AdamW::new(AdamWConfig::default());
    let store = Checkpoints { out, pairs_sha256: "abc" };
    if resume {
        assert_eq!(store.resume(&rm, &mut opt).unwrap(), Some(2));
    }
    let cancel = AtomicBool::new(false);
    train(&rm, &pairs, &config(every), &mut opt, &store, &cancel, |s| {
        if Some(s.step) == stop_after {
            cancel.store(true, Ordering::Relaxed);
        }
        Ok(())
    })
    .unwrap();
    let head = rm.head.as_tensor().to_vec1::<f32>().unwrap();
    let norm = rm.lm.model.trainable().iter().find(|(n, _)| n.ends_with("norm.weight")).unwrap().1.clone();
    (head, norm.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap(), opt.step)
}

/// Stopped after step 2 (its checkpoint written) and resumed, training ends where the
/// uninterrupted run does: the same pairs in the same order, the optimizer's moments restored.
/// The same CPU operations in the same order: equal to 1e-6.
#[test]
fn a_resumed_training_repeats_the_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let (whole_head, whole_norm, steps) = trained_head(&whole, 1, None, false);
    assert_eq!(steps, 4);
    // checkpoints after steps 1, 2, 3 (the end is the caller's to save): the newest two stay
    let mut kept: Vec<_> =
        std::fs::read_dir(whole.join("checkpoints")).unwrap().map(|e| e.unwrap().file_name()).collect();
    kept.sort();
    assert_eq!(kept, ["step-000002", "step-000003"]);
    let parted = tmp.path().join("parted");
    let (_, _, stopped_at) = trained_head(&parted, 2, Some(2), false);
    assert_eq!(stopped_at, 2);
    assert!(parted.join("checkpoints/step-000002/head.safetensors").is_file());
    let (head, norm, steps) = trained_head(&parted, 2, None, true);
    assert_eq!(steps, 4);

    let diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(diff(&head, &whole_head) < 1e-6, "head differs by {}", diff(&head, &whole_head));
    assert!(diff(&norm, &whole_norm) < 1e-6, "norm differs by {}", diff(&norm, &whole_norm));

    // a checkpoint of another pairs file is refused
    let rm = RewardModel::new(tiny(DType::F32), 64, 3).unwrap();
    let mut opt = AdamW::new(AdamWConfig::default());
    let err = Checkpoints { out: &parted, pairs_sha256: "other" }.resume(&rm, &mut opt).unwrap_err();
    assert!(format!("{err:#}").contains("another pairs file"), "{err:#}");
}

/// An annotate study of the held-out pairs: system MARKED (their chosen stories) against
/// PLAIN (their rejected ones), one annotator preferring MARKED on every item.
fn marker_study(home: &Path, pairs: &[Pair]) -> std::path::PathBuf {
    use polaris::annotate::input::pair_generations;
    use polaris::annotate::{Session, Study, Verdict};
    use polaris::generate::file::read_generations;
    let held: Vec<&Pair> = pairs.iter().filter(|p| p.split == Split::Heldout).collect();
    let gens = |file: &str, system: &str, story: fn(&Pair) -> &String| {
        let lines: String = held
            .iter()
            .map(|p| {
                let rec = serde_json::json!({"uid": p.uid, "prompt": p.prompt, "system": system, "story": story(p)});
                format!("{rec}\n")
            })
            .collect();
        let path = home.join(file);
        std::fs::write(&path, lines).unwrap();
        path
    };
    let a = gens("marked.jsonl", "MARKED", |p| &p.chosen);
    let b = gens("plain.jsonl", "PLAIN", |p| &p.rejected);
    let pairing =
        pair_generations(&a, &read_generations(&a).unwrap(), &b, &read_generations(&b).unwrap()).unwrap();
    let dir = home.join("study");
    Study::open_or_create(&dir, Study::new(pairing.items, vec![]).unwrap()).unwrap();
    let mut session = Session::open(&dir, "ann", Some(7)).unwrap();
    while let Some(shown) = session.current().map(|(p, _)| p.clone()) {
        session.judge(if shown.left == "MARKED" { Verdict::Left } else { Verdict::Right }, None).unwrap();
    }
    dir
}
