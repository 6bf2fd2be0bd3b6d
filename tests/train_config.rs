//! The run configuration: the init template is the recipe's defaults, overrides apply, and
//! bad values name their key.

use polaris::train::config::{TrainConfig, INIT_TEMPLATE};

#[test]
fn the_init_template_holds_exactly_the_defaults() {
    let cfg = TrainConfig::parse(INIT_TEMPLATE, "init", &[]).unwrap();
    assert_eq!(cfg, TrainConfig::default());
    // the recipe's numbers
    assert_eq!((cfg.step.group_size, cfg.step.loss.clip_low, cfg.step.loss.clip_high), (6, 0.2, 0.28));
    assert_eq!((cfg.step.hri_schedule.peak, cfg.step.hri_schedule.warmup_steps), (0.4, 15));
    assert_eq!((cfg.reward.weights.repetition, cfg.reward.weights.length), (1.5, 0.8));
    assert_eq!((cfg.run.steps, cfg.run.prompts_per_step), (160, 8));
    // the resolved form reads back to the same config
    assert_eq!(TrainConfig::parse(&cfg.to_toml().unwrap(), "resolved", &[]).unwrap(), cfg);
    // an empty file is the defaults too
    assert_eq!(TrainConfig::parse("", "empty", &[]).unwrap(), cfg);
}

#[test]
fn overrides_apply_in_order() {
    let sets = [
        "step.group_size=8",
        "run.name=smoke",
        "step.hri=false",
        "step.sampling.temperature=0.7",
        "run.name=final",
    ]
    .map(String::from);
    let cfg = TrainConfig::parse(INIT_TEMPLATE, "init", &sets).unwrap();
    assert_eq!(cfg.step.group_size, 8);
    assert!(!cfg.step.hri);
    assert_eq!(cfg.step.sampling.temperature, 0.7);
    assert_eq!(cfg.run.name, "final");
    // a partial table keeps the recipe's other values (not its own type's defaults)
    assert_eq!(cfg.step.sampling.repetition_penalty, 1.1);
    assert_eq!(cfg.step.sampling.top_k, 20);
    let partial = TrainConfig::parse("[step.sampling]\ntop_k = 50\n", "partial", &[]).unwrap();
    assert_eq!(
        (
            partial.step.sampling.top_k,
            partial.step.sampling.temperature,
            partial.step.sampling.repetition_penalty
        ),
        (50, 1.0, 1.1)
    );
    // a tagged value switches kind
    let cos = TrainConfig::parse("", "x", &["step.lr={ kind = \"warmup_cosine\", lr = 1e-5, warmup_steps = 10, total_steps = 100, min_lr = 0.0 }".into()]).unwrap();
    assert!(matches!(
        cos.step.lr,
        polaris::train::schedule::LrSchedule::WarmupCosine { warmup_steps: 10, .. }
    ));
}

#[test]
fn bad_values_name_their_key() {
    let err = |text: &str, sets: &[&str]| -> String {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        format!("{:#}", TrainConfig::parse(text, "run.toml", &sets).unwrap_err())
    };
    // a bad --set is reported as that --set, not as the file (or "the defaults")
    let e = err("", &["step.group_size=six"]);
    assert!(e.starts_with("--set step.group_size=six: ") && e.contains("group_size"), "{e}");
    let e = err("[step]\ngroup_size = \"six\"\n", &["run.steps=3"]);
    assert!(e.starts_with("run.toml: ") && e.contains("group_size"), "{e}");
    let e = err("[step]\ngroup_sise = 4\n", &[]);
    assert!(e.contains("group_sise"), "{e}");
    assert!(!e.contains("is a key at"), "a key that is nowhere gets no pointer: {e}");
    // a key in the wrong table is pointed to where it is
    let e = err("", &["step.max_new_tokens=64"]);
    assert!(e.contains("unknown field `max_new_tokens`"), "{e}");
    assert!(e.contains("`max_new_tokens` is a key at step.sampling.max_new_tokens"), "{e}");
    let e = err("", &["step.group_size=1"]);
    assert!(e.contains("step.group_size = 1: must be at least 2"), "{e}");
    let e = err("", &["reward.judge=claude"]);
    assert!(e.contains("reward.judge"), "{e}");
    let e = err("", &["step.sampling.presence_penalty=0.5"]);
    assert!(e.contains("step.sampling") && e.contains("never both"), "{e}");
    let e = err("", &["nonsense"]);
    assert!(e.contains("expected KEY=VALUE"), "{e}");
    let e = err("[run\n", &[]);
    assert!(e.contains("run.toml does not parse"), "{e}");
}

#[test]
fn init_config_writes_the_template_and_keeps_existing_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.toml");
    let run = |force: bool| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_polaris-tui"));
        c.args(["init-config", "--out", out.to_str().unwrap()]);
        if force {
            c.arg("--force");
        }
        c.output().unwrap()
    };
    assert!(run(false).status.success());
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(TrainConfig::parse(&text, "run.toml", &[]).unwrap(), TrainConfig::default());
    std::fs::write(&out, "# mine\n").unwrap();
    let o = run(false);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "# mine\n");
    assert!(run(true).status.success());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), INIT_TEMPLATE);
}

#[test]
fn lora_section_defaults_overrides_and_errors() {
    let cfg = TrainConfig::parse("", "x", &[]).unwrap();
    assert!(cfg.model.lora.config().is_none(), "full fine-tune by default");
    let sets = [
        "model.lora.enabled=true",
        "model.lora.r=8",
        "model.lora.alpha=16",
        "model.lora.target_modules=q_proj",
    ]
    .map(String::from);
    let lora = TrainConfig::parse("", "x", &sets).unwrap().model.lora.config().unwrap();
    assert_eq!((lora.r, lora.alpha, lora.dropout), (8, 16.0, 0.0));
    assert_eq!(lora.target_modules, ["q_proj"]);
    let list = TrainConfig::parse(
        "[model.lora]\nenabled = true\ntarget_modules = [\"q_proj\", \"v_proj\"]\n",
        "x",
        &[],
    )
    .unwrap();
    assert_eq!(list.model.lora.target_modules, ["q_proj", "v_proj"]);
    for (set, key) in [
        ("model.lora.r=0", "r must"),
        ("model.lora.dropout=1.0", "dropout"),
        ("model.lora.target_modules=[]", "target_modules"),
    ] {
        let e = format!(
            "{:#}",
            TrainConfig::parse("", "run.toml", &["model.lora.enabled=true".into(), set.into()]).unwrap_err()
        );
        assert!(
            e.contains(&format!("--set {set}")) && e.contains("model.lora") && e.contains(key),
            "{set}: {e}"
        );
    }
    let e = format!("{:#}", TrainConfig::parse("", "run.toml", &["model.lora.rank=8".into()]).unwrap_err());
    assert!(e.contains("rank"), "{e}");
}

#[test]
fn every_numeric_setting_outside_its_range_is_refused_naming_key_and_range() {
    let err = |text: &str, sets: &[&str]| -> String {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        format!("{:#}", TrainConfig::parse(text, "run.toml", &sets).unwrap_err())
    };
    // (setting, what the error must say): the key, and the range or what a value must be
    let cases: &[(&str, &str)] = &[
        ("step.lr.lr=nan", "step.lr.lr = NaN: must be a finite number"),
        ("step.lr.lr=-1", "step.lr.lr = -1 is outside its allowed range [0, 1]"),
        ("step.loss.kl_coef=nan", "step.loss.kl_coef = NaN"),
        ("step.hri_schedule.peak=nan", "step.hri_schedule.peak = NaN"),
        (
            "step.hri_schedule.peak=-0.5",
            "step.hri_schedule.peak = -0.5 is outside its allowed range [0, inf)",
        ),
        ("reward.weights.story_quality=nan", "reward.weights.story_quality = NaN"),
        ("reward.weights.repetition=-1.5", "reward.weights.repetition = -1.5 is outside"),
        ("reward.weights.clip=-1", "reward.weights.clip = -1 is outside its allowed range (0, inf)"),
        ("reward.weights.clip=nan", "reward.weights.clip = NaN"),
        (
            "reward.weights.overlong_window=9000",
            "reward.weights.overlong_window = 9000: must be from 0 to 8192",
        ),
        ("step.adamw.beta1=1", "step.adamw.beta1 = 1 is outside its allowed range [0, 1)"),
        ("step.adamw.beta2=2", "step.adamw.beta2 = 2 is outside its allowed range [0, 1)"),
        ("step.adamw.eps=0", "step.adamw.eps = 0 is outside its allowed range (0, inf)"),
        ("step.loss.clip_high=nan", "step.loss.clip_high = NaN"),
        ("step.loss.clip_low=1", "step.loss.clip_low = 1 is outside its allowed range [0, 1)"),
        ("step.max_grad_norm=inf", "step.max_grad_norm = inf: must be a finite number"),
        (
            "step.reference_advantage_cap=0",
            "step.reference_advantage_cap = 0 is outside its allowed range (0, inf)",
        ),
        ("sft.lr=nan", "sft.lr = NaN"),
        ("run.prompts_per_step=0", "run.prompts_per_step = 0: must be from 1 to 1048576"),
        ("run.devices=cpu:99999", "at most 64 CPU workers"),
        ("judge.temperature=nan", "judge.temperature = NaN"),
    ];
    for (set, want) in cases {
        let e = err("", &[set]);
        assert!(e.starts_with(&format!("--set {set}: ")) && e.contains(want), "{set}: {e}");
    }
    // a tagged table set whole is named by the --set that wrote it
    let e = err(
        "",
        &["step.lr={ kind = \"warmup_cosine\", lr = 1e-5, warmup_steps = 1, total_steps = 9, min_lr = 1.0 }"],
    );
    assert!(e.starts_with("--set step.lr=") && e.contains("step.lr.min_lr = 1 is outside"), "{e}");
    let e = err(
        "",
        &[
            "step.lr.kind=warmup_cosine",
            "step.lr.lr=2",
            "step.lr.warmup_steps=1",
            "step.lr.total_steps=9",
            "step.lr.min_lr=0",
        ],
    );
    assert!(e.starts_with("--set step.lr.lr=2: ") && e.contains("[0, 1]"), "{e}");
    // the same values in the file are the file's
    let e = err("[step.adamw]\nbeta2 = 2.0\n", &["run.steps=3"]);
    assert!(e.starts_with("run.toml: step.adamw.beta2 = 2 is outside"), "{e}");
    let e = err("[step.lr]\nkind = \"constant\"\nlr = nan\n", &[]);
    assert!(e.starts_with("run.toml: step.lr.lr = NaN"), "{e}");
    // the edges of the ranges are allowed
    let ok =
        ["step.lr.lr=0", "step.adamw.beta1=0", "step.loss.clip_low=0", "reward.weights.overlong_window=8192"];
    TrainConfig::parse("", "run.toml", &ok.map(String::from)).unwrap();
}

#[test]
fn the_reference_advantage_is_capped_by_default_and_release_is_a_setting() {
    use polaris::train::advantage::ReferenceAdvantage;
    let cfg = TrainConfig::parse("", "x", &[]).unwrap();
    assert_eq!(
        (cfg.step.reference_advantage, cfg.step.reference_advantage_cap),
        (ReferenceAdvantage::Capped, 5.0)
    );
    let release = TrainConfig::parse("", "x", &["step.reference_advantage=\"release\"".into()]).unwrap();
    assert_eq!(release.step.reference_advantage, ReferenceAdvantage::Release);
    // written as the preset writes it, in a file
    let file = TrainConfig::parse("[step]\nreference_advantage = \"release\"\n", "x", &[]).unwrap();
    assert_eq!(file.step.reference_advantage, ReferenceAdvantage::Release);
}

#[test]
fn a_set_key_nested_past_any_real_key_is_refused_not_a_stack_overflow() {
    // the config fuzz target's finding: thousands of dotted parts nested tables deeper than
    // deserialising them could hold on a test thread's stack
    let key = vec!["a"; 5000].join(".");
    let e = TrainConfig::parse("", "t.toml", &[format!("{key}=1")]).unwrap_err().to_string();
    assert!(e.contains("5000 dotted parts"), "{e}");
}
