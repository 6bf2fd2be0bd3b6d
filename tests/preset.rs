//! `init-config --preset polaris-main` against the release's own configuration
//! (../shared/data/polaris/polaris_main.yaml): every yaml key is either set by the preset and
//! read back equal, or listed without a counterpart (and named in the README with why);
//! nothing in the yaml goes unaccounted for.

mod common;

use std::path::Path;

use polaris::train::config::TrainConfig;
use polaris::train::preset::{
    polaris_main_toml, Reads, POLARIS_MAIN, POLARIS_MAIN_EXTRA, POLARIS_MAIN_NO_COUNTERPART,
};
use yaml_rust2::{Yaml, YamlLoader};

fn yaml() -> Yaml {
    let path = common::shared().join("data/polaris/polaris_main.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

/// Every leaf of the yaml (scalars and lists) by dotted path, in file order.
fn leaves(y: &Yaml, prefix: &str, out: &mut Vec<(String, Yaml)>) {
    match y {
        Yaml::Hash(h) => {
            for (k, v) in h {
                let k = k.as_str().expect("string keys");
                let path = if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
                leaves(v, &path, out);
            }
        }
        _ => out.push((prefix.to_string(), y.clone())),
    }
}

fn lookup<'a>(y: &'a Yaml, path: &str) -> &'a Yaml {
    path.split('.').fold(y, |node, part| &node[part])
}

/// `${a.b}` is the yaml's own interpolation: the value at a.b.
fn resolve(root: &Yaml, v: &Yaml) -> Yaml {
    match v.as_str().and_then(|s| s.strip_prefix("${")).and_then(|s| s.strip_suffix('}')) {
        Some(path) if !path.starts_with("oc.") => lookup(root, path).clone(),
        _ => v.clone(),
    }
}

/// The preset's value at a dotted key: the preset's own, else the default it keeps.
fn project(preset: &toml::Table, defaults: &toml::Table, key: &str) -> toml::Value {
    let find = |t: &toml::Table| -> Option<toml::Value> {
        let mut parts = key.split('.');
        let mut cur = t.get(parts.next()?)?;
        for p in parts {
            cur = cur.get(p)?;
        }
        Some(cur.clone())
    };
    find(preset).or_else(|| find(defaults)).unwrap_or_else(|| panic!("{key} is not a configuration key"))
}

fn number(v: &toml::Value) -> Option<f64> {
    v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
}

fn yaml_number(v: &Yaml) -> Option<f64> {
    match v {
        Yaml::Integer(i) => Some(*i as f64),
        Yaml::Real(s) => s.parse().ok(),
        _ => None,
    }
}

fn yaml_text(v: &Yaml) -> String {
    match v {
        Yaml::Integer(i) => i.to_string(),
        Yaml::Real(s) | Yaml::String(s) => s.clone(),
        Yaml::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// Whether the yaml value reads as the project's under `reads`; exact (the values are
/// written in decimal in both files, and parse to the same doubles).
fn agrees(reads: Reads, y: &Yaml, p: &toml::Value) -> bool {
    let text = p.as_str().unwrap_or_default();
    match reads {
        Reads::Same => match (y, p) {
            (Yaml::Boolean(a), toml::Value::Boolean(b)) => a == b,
            (Yaml::String(a), toml::Value::String(b)) => a == b,
            _ => yaml_number(y).is_some() && yaml_number(y) == number(p),
        },
        Reads::SwitchIsNonZero => y.as_bool().is_some_and(|on| number(p).is_some_and(|x| (x != 0.0) == on)),
        Reads::Renamed(pairs) => pairs.iter().any(|(a, b)| *a == yaml_text(y) && *b == text),
        Reads::MinusOneIsZero => {
            let y = yaml_number(y);
            number(p).is_some_and(|p| y == Some(if p == 0.0 { -1.0 } else { p }))
        }
        Reads::Prefixed(prefix) => text == format!("{prefix}{}", yaml_text(y)),
        Reads::FileName => Path::new(&yaml_text(y)).file_name() == Path::new(text).file_name(),
        Reads::RepoName => {
            yaml_text(y).rsplit('/').next() == Path::new(text).file_name().and_then(|n| n.to_str())
        }
        Reads::Devices => {
            let n = y.as_i64().unwrap_or(0);
            n > 0 && text == (0..n).map(|i| format!("cuda:{i}")).collect::<Vec<_>>().join(",")
        }
        Reads::Placeholder => yaml_text(y).starts_with("${oc.env:") && !text.is_empty(),
    }
}

#[test]
fn the_preset_reads_every_key_of_polaris_main_yaml() {
    let root = yaml();
    let mut all = Vec::new();
    leaves(&root, "", &mut all);
    assert!(all.len() > 150, "the yaml read whole: {} keys", all.len());

    let text = polaris_main_toml();
    // loads (on a machine without the release's GPUs)
    let cfg = TrainConfig::parse(&text, "preset", &["run.devices=cpu".into()]).unwrap();
    let preset: toml::Table = toml::from_str(&text).unwrap();
    let defaults = toml::Value::try_from(TrainConfig::default()).unwrap().as_table().unwrap().clone();

    let mut problems = Vec::new();
    for (key, value) in &all {
        let mapped: Vec<_> = POLARIS_MAIN.iter().filter(|s| s.yaml == key).collect();
        let unmapped = POLARIS_MAIN_NO_COUNTERPART.iter().any(|(k, _)| k == key);
        match (mapped.len(), unmapped) {
            (0, false) => problems.push(format!("{key}: neither in the preset nor listed")),
            (n, true) if n > 0 => problems.push(format!("{key}: in more than one list")),
            _ => {}
        }
        let value = resolve(&root, value);
        for s in mapped {
            let p = project(&preset, &defaults, s.key);
            if !agrees(s.reads, &value, &p) {
                problems.push(format!("{key} = {value:?} but {} = {p} ({:?})", s.key, s.reads));
            }
        }
    }
    // every line names a key the yaml has
    for s in POLARIS_MAIN {
        if !all.iter().any(|(k, _)| k == s.yaml) {
            problems.push(format!("{}: not in the yaml", s.yaml));
        }
    }
    for (k, _) in POLARIS_MAIN_NO_COUNTERPART {
        if !all.iter().any(|(key, _)| key == k) {
            problems.push(format!("{k}: listed without a counterpart but not in the yaml"));
        }
    }
    for (key, value, _) in POLARIS_MAIN_EXTRA {
        let want: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}")).unwrap()["v"].clone();
        if project(&preset, &defaults, key) != want {
            problems.push(format!("{key}: not {value} in the preset"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // what the released run needs, read from the loaded configuration
    assert_eq!((cfg.run.prompts_per_step, cfg.step.group_size, cfg.run.seed), (8, 6, 3479));
    assert_eq!(cfg.reward.score, polaris::reward::score::ScoreMode::Release);
    assert_eq!(cfg.step.sampling.thinking_budget, None, "the release never forces </think>");
    assert_eq!((cfg.run.checkpoint_every, cfg.run.steps), (5, 160));
}

/// The rubric-derived keys: the POLARIS prompt + schema give the yaml's range and divisor.
#[test]
fn the_polaris_rubric_holds_the_yamls_score_range() {
    let root = yaml();
    let kw = |k: &str| lookup(&root, &format!("reward_model.reward_kwargs.{k}")).as_i64().unwrap();
    let dir = common::shared().join("data/polaris");
    let r = polaris::reward::Rubric::from_prompt_and_schema(
        &dir.join("story_quality_seq.txt"),
        &dir.join("story_quality_seq.schema.json"),
    )
    .unwrap();
    let (bonus, penalty) = (r.bonus.as_ref().unwrap().max, r.penalty.as_ref().unwrap().max);
    assert_eq!(-(r.negative_max() + penalty), kw("story_quality_overall_min"));
    assert_eq!(r.positive_max() + bonus, kw("story_quality_overall_max"));
    assert_eq!(r.composite.divisor, kw("story_quality_score_divisor") as f64);
    assert_eq!(r.composite.penalty_cap, Some(kw("story_quality_penalty_cap_value")));
}

#[test]
fn the_readme_lists_every_key_without_a_counterpart() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let missing: Vec<&str> = POLARIS_MAIN_NO_COUNTERPART
        .iter()
        .map(|(k, _)| *k)
        .filter(|k| !readme.contains(&format!("`{k}`")))
        .collect();
    assert!(missing.is_empty(), "not in README.md: {missing:?}");
}

#[test]
fn init_config_writes_the_preset() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("polaris.toml");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_polaris-tui"))
        .args(["init-config", "--preset", "polaris-main", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), polaris_main_toml());
    // it names what to edit before training
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("model.path") && err.contains("reward.rubric_prompt"), "{err}");
}

#[test]
fn a_thinking_budget_of_zero_is_none_and_stays_none() {
    let cfg = TrainConfig::parse("[step.sampling]\nthinking_budget = 0\n", "zero", &[]).unwrap();
    assert_eq!(cfg.step.sampling.thinking_budget, None);
    let again = TrainConfig::parse(&cfg.to_toml().unwrap(), "resolved", &[]).unwrap();
    assert_eq!(again.step.sampling.thinking_budget, None, "the resolved config keeps it off");
    assert_eq!(TrainConfig::default().step.sampling.thinking_budget, Some(3072));
}
