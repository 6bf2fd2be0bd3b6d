//! Nothing is trusted silently on a resume: a state file that disagrees with its folder or
//! claims an impossible data cursor is refused, a damaged latest checkpoint makes `--resume
//! auto` fall back to the one before it (saying so), and resuming on another dataset is
//! noted with both hashes.

mod common;

use std::path::Path;

use common::tiny_cli::{demo_data, text, train};
use polaris::train::checkpoint::{self, step_dir};

fn messages(run: &Path) -> Vec<String> {
    common::logged_messages(run).into_iter().map(|(_, text)| text).collect()
}

fn edit_state(dir: &Path, key: &str, value: serde_json::Value) {
    let file = dir.join(checkpoint::STATE);
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    state[key] = value;
    std::fs::write(&file, state.to_string()).unwrap();
}

#[test]
fn damaged_latest_checkpoints_are_set_aside_and_the_run_resumes_from_an_earlier_one() {
    let home = tempfile::tempdir().unwrap();
    let runs = tempfile::tempdir().unwrap();
    let run = runs.path().join("r");
    let every = ["--set", "run.checkpoint_every=1"];
    let o = train(home.path(), &[&["--steps", "3", "--out", run.to_str().unwrap()][..], &every].concat())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let want = common::logged_steps(&run);

    // step 3's weights cut short (a copy gone wrong); step 2's state edited to claim step 99
    let weights = step_dir(&run, 3).join(checkpoint::WEIGHTS);
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    edit_state(&step_dir(&run, 2), "step", 99.into());

    let o = train(
        home.path(),
        &[&["--steps", "3", "--out", run.to_str().unwrap(), "--resume", "auto"][..], &every].concat(),
    )
    .output()
    .unwrap();
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    assert!(said.contains("resumed at step 1"), "{said}");
    let notes = messages(&run);
    let has = |what: &[&str]| notes.iter().any(|n| what.iter().all(|w| n.contains(w)));
    assert!(has(&["step-000003", "weights.safetensors", "truncated", "moved aside"]), "{notes:?}");
    assert!(has(&["step-000002", "says step 99 but its folder is step 2"]), "{notes:?}");
    assert!(has(&["resumed from", "step-000001"]), "{notes:?}");
    assert!(
        run.join("checkpoints/step-000003.damaged").is_dir()
            && run.join("checkpoints/step-000002.damaged").is_dir()
    );
    // steps 2 and 3 taken again equal the first time's
    let got = common::logged_steps(&run);
    for s in [2, 3] {
        let g = got.iter().rev().find(|x| x.step == s).unwrap();
        assert_eq!((g.loss, g.grad_norm), (want[s - 1].loss, want[s - 1].grad_norm), "step {s}");
    }

    // a checkpoint of another model (LoRA asked for, full weights saved) is not damaged: an
    // error at once, and nothing is set aside
    let o = train(
        home.path(),
        &[
            &["--steps", "4", "--out", run.to_str().unwrap(), "--resume", "auto"][..],
            &["--set", "model.lora.enabled=true"],
        ]
        .concat(),
    )
    .output()
    .unwrap();
    assert!(!o.status.success() && text(&o).contains("another model or trainable set"), "{}", text(&o));
    assert_eq!(checkpoint::all(&run).len(), 3, "every checkpoint is still in place");

    // a data cursor no run could reach is refused, naming the file
    edit_state(&step_dir(&run, 3), "data_cursor", serde_json::json!(u64::MAX));
    let model_dir = tempfile::tempdir().unwrap();
    polaris::model::tiny::write(model_dir.path()).unwrap();
    let options = polaris::model::LoadOptions::new(candle_core::DType::F32, candle_core::Device::Cpu)
        .trainable(polaris::model::all_trainable());
    let lm = polaris::lm::LanguageModel::from_dir(model_dir.path(), &options).unwrap();
    let mut t = polaris::train::step::Trainer::new(Default::default(), 0);
    let e = format!("{:#}", checkpoint::load(&step_dir(&run, 3), &lm.model, &mut t).unwrap_err());
    assert!(e.contains("state.json") && e.contains("data_cursor 18446744073709551615"), "{e}");

    // no checkpoint left that loads: an error naming each, not a fresh start
    for s in [1, 2, 3] {
        edit_state(&step_dir(&run, s), "step", 7.into());
    }
    let o = train(home.path(), &["--steps", "4", "--out", run.to_str().unwrap(), "--resume", "auto"])
        .output()
        .unwrap();
    let said = text(&o);
    assert!(!o.status.success() && said.contains("no checkpoint of"), "{said}");
    assert!(
        said.contains("step-000001") && said.contains("step-000002") && said.contains("step-000003"),
        "{said}"
    );
}

#[test]
fn resuming_on_another_dataset_is_noted_with_both_hashes() {
    let home = tempfile::tempdir().unwrap();
    let runs = tempfile::tempdir().unwrap();
    let data = runs.path().join("data.jsonl");
    std::fs::copy(demo_data(), &data).unwrap();
    let run = runs.path().join("r");
    // the helper's --data is the demo's: this run's is set after it
    let args = |steps: &str| -> Vec<String> {
        let data = format!("data.train={}", data.display());
        ["--steps", steps, "--out", run.to_str().unwrap(), "--set", &data].map(String::from).to_vec()
    };
    let sha = |p: &Path| polaris::train::data::file_sha256(p).unwrap();
    let o = train(home.path(), &args("1").iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let before = sha(&data);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(step_dir(&run, 1).join(checkpoint::STATE)).unwrap())
            .unwrap();
    assert_eq!(state["data_sha256"], before.as_str(), "the checkpoint records its dataset");

    // the same data resumes quietly; changed data (a record dropped) is noted with both hashes
    let resume = |steps: &str| {
        let mut a = args(steps);
        a.extend(["--resume".into(), "auto".into()]);
        train(home.path(), &a.iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap()
    };
    let o = resume("2");
    assert!(o.status.success(), "{}", text(&o));
    assert!(!messages(&run).iter().any(|m| m.contains("dataset changed")));
    let text_now = std::fs::read_to_string(&data).unwrap();
    let kept: Vec<&str> = text_now.lines().skip(1).collect();
    std::fs::write(&data, kept.join("\n") + "\n").unwrap();
    let after = sha(&data);
    let o = resume("3");
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    assert!(
        said.contains("the dataset changed since") && said.contains(&before) && said.contains(&after),
        "{said}"
    );
}
