//! Presets for `init-config --preset`: `polaris-main` reproduces the POLARIS release's main
//! run (its configs/train/polaris_main.yaml; ../shared/data/polaris/polaris_main.yaml here).
//!
//! The preset is a table, one line per yaml key and the project key it sets, so the file it
//! writes, the test that reads the yaml against it (tests/preset.rs) and the README's list of
//! keys without a counterpart all come from one place. A project key set from several yaml
//! keys (step.hri from gt_rollout_enable, gt_in_group, gt_in_ppo) is written once.

use std::fmt::Write;

/// How a yaml value reads as the project's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// The same number, boolean or string.
    Same,
    /// A switch whose project form is a weight or coefficient: true ↔ not 0.
    SwitchIsNonZero,
    /// The yaml value, as text, names the project value: (yaml, project) pairs.
    Renamed(&'static [(&'static str, &'static str)]),
    /// vLLM's −1 (off) is the project's 0 (off); other numbers read the same.
    MinusOneIsZero,
    /// The project value is this prefix and the yaml value.
    Prefixed(&'static str),
    /// The same file name (the folder is the user's).
    FileName,
    /// The last part of a Hugging Face repository id: a local copy of it.
    RepoName,
    /// N GPUs ↔ cuda:0,…,cuda:N−1.
    Devices,
    /// The yaml holds an environment placeholder (`${oc.env:…}`); the preset writes a path
    /// for the user to edit.
    Placeholder,
}

/// One line of a preset: a yaml key (dotted path), the project key it sets and the value
/// written (a TOML literal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub yaml: &'static str,
    pub key: &'static str,
    pub value: &'static str,
    pub reads: Reads,
}

const fn set(yaml: &'static str, key: &'static str, value: &'static str, reads: Reads) -> Setting {
    Setting { yaml, key, value, reads }
}

use Reads::*;

/// polaris_main.yaml, key by key.
pub const POLARIS_MAIN: &[Setting] = &[
    // the group and its advantages
    set("algorithm.norm_adv_by_std_in_grpo", "step.scale_by_std", "true", Same),
    set("algorithm.gt_rollout_enable", "step.hri", "true", Same),
    set("algorithm.gt_in_group", "step.hri", "true", Same),
    set("algorithm.gt_in_ppo", "step.hri", "true", Same),
    set("algorithm.gt_peak_weight", "step.hri_schedule.peak", "0.4", Same),
    set("algorithm.gt_warmup_steps", "step.hri_schedule.warmup_steps", "15", Same),
    set("algorithm.gt_decay_steps", "step.hri_schedule.decay.kind", "\"none\"", Renamed(&[("0", "none")])),
    set("algorithm.gt_override_best", "reward.reference_best", "false", Same),
    set("algorithm.bc_enable", "step.bc.enabled", "false", Same),
    set("actor_rollout_ref.rollout.n", "step.group_size", "6", Same),
    // data
    set("data.train_files", "data.train", "\"data/train.jsonl\"", Placeholder),
    set("data.train_batch_size", "run.prompts_per_step", "8", Same),
    set("data.max_response_length", "step.sampling.max_new_tokens", "8192", Same),
    set("data.think_len_cap_frac", "reward.think_cap_tokens", "3072", Same),
    set("data.seed", "run.seed", "3479", Same),
    set("data.apply_chat_template_kwargs.enable_thinking", "step.thinking", "true", Same),
    // the run
    set("trainer.experiment_name", "run.name", "\"polaris_main\"", Same),
    set("trainer.default_local_dir", "run.out", "\"runs/polaris_main\"", Placeholder),
    set("trainer.n_gpus_per_node", "run.devices", "\"cuda:0,cuda:1,cuda:2,cuda:3\"", Devices),
    set("trainer.save_freq", "run.checkpoint_every", "5", Same),
    // the model and the update
    set("actor_rollout_ref.model.path", "model.path", "\"Qwen3.5-9B\"", RepoName),
    set("actor_rollout_ref.model.enable_gradient_checkpointing", "step.checkpoint_layers", "true", Same),
    set("actor_rollout_ref.rollout.dtype", "model.dtype", "\"bf16\"", Renamed(&[("bfloat16", "bf16")])),
    set("actor_rollout_ref.actor.optim.lr", "step.lr.lr", "1e-6", Same),
    set(
        "actor_rollout_ref.actor.optim.lr_warmup_steps_ratio",
        "step.lr.kind",
        "\"constant\"",
        Renamed(&[("0", "constant")]),
    ),
    set("actor_rollout_ref.actor.use_kl_loss", "step.loss.kl_coef", "0.0", SwitchIsNonZero),
    set("actor_rollout_ref.actor.clip_ratio_low", "step.loss.clip_low", "0.2", Same),
    set("actor_rollout_ref.actor.clip_ratio_high", "step.loss.clip_high", "0.28", Same),
    set("actor_rollout_ref.actor.grad_clip", "step.max_grad_norm", "1.0", Same),
    set(
        "actor_rollout_ref.actor.loss_agg_mode",
        "step.loss.aggregation.kind",
        "\"token_mean\"",
        Renamed(&[("token-mean", "token_mean")]),
    ),
    set("actor_rollout_ref.actor.ppo_epochs", "step.ppo_epochs", "1", Same),
    // rollouts
    set("actor_rollout_ref.rollout.do_sample", "step.sampling.temperature", "1.0", SwitchIsNonZero),
    set("actor_rollout_ref.rollout.temperature", "step.sampling.temperature", "1.0", Same),
    set("actor_rollout_ref.rollout.top_p", "step.sampling.top_p", "0.95", Same),
    set("actor_rollout_ref.rollout.top_k", "step.sampling.top_k", "20", Same),
    set("actor_rollout_ref.rollout.repetition_penalty", "step.sampling.repetition_penalty", "1.1", Same),
    // the reward
    set(
        "reward_model.reward_manager",
        "reward.score",
        "\"release\"",
        Renamed(&[("composite_batch", "release")]),
    ),
    set(
        "reward_model.reward_kwargs.reward_components.enable_story_quality",
        "reward.weights.story_quality",
        "1.0",
        SwitchIsNonZero,
    ),
    set(
        "reward_model.reward_kwargs.reward_components.enable_self_rep",
        "reward.weights.repetition",
        "1.5",
        SwitchIsNonZero,
    ),
    set(
        "reward_model.reward_kwargs.reward_components.enable_blank_len",
        "reward.weights.blank",
        "1.0",
        SwitchIsNonZero,
    ),
    set(
        "reward_model.reward_kwargs.reward_weights.story_quality",
        "reward.weights.story_quality",
        "1.0",
        Same,
    ),
    set("reward_model.reward_kwargs.reward_weights.self_rep", "reward.weights.repetition", "1.5", Same),
    set("reward_model.reward_kwargs.reward_weights.length_pen", "reward.weights.length", "0.8", Same),
    set("reward_model.reward_kwargs.reward_weights.blank_pen", "reward.weights.blank", "1.0", Same),
    set("reward_model.reward_kwargs.composite_clip", "reward.weights.clip", "2.0", Same),
    set("reward_model.reward_kwargs.gt_override_best", "reward.reference_best", "false", Same),
    set("reward_model.reward_kwargs.think_len_cap", "reward.think_cap_tokens", "3072", Same),
    set("reward_model.reward_kwargs.think_len_penalty", "reward.think_penalty", "0.05", Same),
    set(
        "reward_model.reward_kwargs.overlong_buffer_enable",
        "reward.weights.overlong",
        "1.0",
        SwitchIsNonZero,
    ),
    set("reward_model.reward_kwargs.overlong_buffer_len", "reward.weights.overlong_window", "512", Same),
    set("reward_model.reward_kwargs.overlong_penalty_factor", "reward.weights.overlong", "1.0", Same),
    set(
        "reward_model.reward_kwargs.overlong_max_response_length",
        "reward.weights.max_response_tokens",
        "8192",
        Same,
    ),
    // the judge
    set(
        "reward_model.reward_kwargs.story_quality_model_name",
        "reward.judge",
        "\"gemini:gemini-3-flash-preview\"",
        Prefixed("gemini:"),
    ),
    set(
        "reward_model.reward_kwargs.story_quality_system_message_path",
        "reward.rubric_prompt",
        "\"prompts/story_quality_seq.txt\"",
        FileName,
    ),
    set(
        "reward_model.reward_kwargs.story_quality_schema_path",
        "reward.rubric_schema",
        "\"prompts/story_quality_seq.json\"",
        FileName,
    ),
    set("reward_model.reward_kwargs.story_quality_max_retries", "judge.retries", "3", Same),
    set("reward_model.reward_kwargs.story_quality_retry_backoff_s", "judge.backoff_secs", "5.0", Same),
    set("reward_model.reward_kwargs.story_quality_concurrency", "judge.concurrency", "4", Same),
    set("reward_model.reward_kwargs.story_quality_timeout_s", "judge.timeout_secs", "10000.0", Same),
    set("reward_model.reward_kwargs.story_quality_max_output_tokens", "judge.max_tokens", "65536", Same),
    set("reward_model.reward_kwargs.story_quality_temperature", "judge.temperature", "0.2", Same),
    set("reward_model.reward_kwargs.story_quality_top_p", "judge.top_p", "0.9", Same),
    set(
        "reward_model.reward_kwargs.story_quality_overall_override_enable",
        "judge.totals",
        "\"reported\"",
        Renamed(&[("true", "reported")]),
    ),
    // validation (RECIPE.md: before training and every 20 steps, one sample per prompt)
    set("data.val_files", "data.val", "\"data/val.jsonl\"", Placeholder),
    set("trainer.test_freq", "run.val_every", "20", Same),
    set("trainer.val_before_train", "validation.before_training", "true", Same),
    set(
        "actor_rollout_ref.rollout.val_kwargs.do_sample",
        "validation.sampling.temperature",
        "0.8",
        SwitchIsNonZero,
    ),
    set("actor_rollout_ref.rollout.val_kwargs.temperature", "validation.sampling.temperature", "0.8", Same),
    set("actor_rollout_ref.rollout.val_kwargs.top_p", "validation.sampling.top_p", "0.95", Same),
    set("actor_rollout_ref.rollout.val_kwargs.top_k", "validation.sampling.top_k", "0", MinusOneIsZero),
    set("actor_rollout_ref.rollout.val_kwargs.min_p", "validation.sampling.min_p", "0.0", Same),
    set(
        "actor_rollout_ref.rollout.val_kwargs.presence_penalty",
        "validation.sampling.presence_penalty",
        "0.0",
        Same,
    ),
    set(
        "actor_rollout_ref.rollout.val_kwargs.repetition_penalty",
        "validation.sampling.repetition_penalty",
        "1.1",
        Same,
    ),
    set(
        "reward_model.val_reward_kwargs.reward_components.enable_story_quality",
        "validation.weights.story_quality",
        "1.0",
        SwitchIsNonZero,
    ),
    set(
        "reward_model.val_reward_kwargs.reward_components.enable_self_rep",
        "validation.weights.repetition",
        "0.8",
        SwitchIsNonZero,
    ),
    set(
        "reward_model.val_reward_kwargs.reward_components.enable_blank_len",
        "validation.weights.blank",
        "1.0",
        SwitchIsNonZero,
    ),
    set(
        "reward_model.val_reward_kwargs.reward_weights.story_quality",
        "validation.weights.story_quality",
        "1.0",
        Same,
    ),
    set(
        "reward_model.val_reward_kwargs.reward_weights.self_rep",
        "validation.weights.repetition",
        "0.8",
        Same,
    ),
    set("reward_model.val_reward_kwargs.reward_weights.length_pen", "validation.weights.length", "0.2", Same),
    set("reward_model.val_reward_kwargs.reward_weights.blank_pen", "validation.weights.blank", "1.0", Same),
    set(
        "reward_model.val_reward_kwargs.story_quality_concurrency",
        "validation.judge_concurrency",
        "8",
        Same,
    ),
    set(
        "reward_model.val_reward_kwargs.overlong_buffer_enable",
        "validation.weights.overlong",
        "0.0",
        SwitchIsNonZero,
    ),
    // the fork's disqualification gates, off in this run
    set("reward_model.reward_kwargs.story_quality_dq_enable", "reward.disqualify.enabled", "false", Same),
    set(
        "reward_model.reward_kwargs.story_quality_dq_n2_threshold",
        "reward.disqualify.coherence_at_least",
        "7.0",
        Same,
    ),
    set(
        "reward_model.reward_kwargs.story_quality_dq_n10_threshold",
        "reward.disqualify.nonsense_at_least",
        "8.0",
        Same,
    ),
    set(
        "reward_model.reward_kwargs.story_quality_dq_wc_min_frac",
        "reward.disqualify.words_under_fraction",
        "0.4",
        Same,
    ),
    set(
        "reward_model.reward_kwargs.story_quality_dq_exempt_gt",
        "reward.disqualify.exempt_reference",
        "true",
        Same,
    ),
];

/// Keys the preset sets that no yaml key names, and why.
pub const POLARIS_MAIN_EXTRA: &[(&str, &str, &str)] = &[
    (
        "step.reference_advantage",
        "\"release\"",
        "the release's reference advantage (r − mean) / (std + 1e-6), unbounded when the policy rows tie",
    ),
    ("run.steps", "160", "RECIPE.md: 160 steps, one epoch (the yaml says total_epochs: 1)"),
    (
        "step.sampling.thinking_budget",
        "0",
        "vLLM never forces </think>: thinking past think_len_cap is only penalised (reward.score = release)",
    ),
];

/// polaris_main.yaml keys with no project counterpart, and why (README, "The reward").
pub const POLARIS_MAIN_NO_COUNTERPART: &[(&str, &str)] = &[
    ("hydra.searchpath", "Hydra's config composition"),
    ("defaults", "Hydra's config composition"),
    ("algorithm.adv_estimator", "the trainer is GRPO"),
    ("algorithm.use_kl_in_reward", "no KL term in the reward (false here)"),
    ("algorithm.gt_exclude_from_stats", "the reference is always left out of the group statistics"),
    (
        "algorithm.gt_think_prefix",
        "the fork's think-prefix rollouts (the reference's reasoning teacher-forced, the story sampled) are not built; off in the run",
    ),
    (
        "data.max_prompt_length",
        "prompts are not filtered by length; `data build` prompts are far under 256 tokens",
    ),
    ("data.filter_overlong_prompts", "as data.max_prompt_length"),
    ("data.truncation", "prompts are never truncated"),
    ("data.shuffle", "the data are always shuffled, by run.seed"),
    ("data.dataloader_num_workers", "a data loader setting"),
    ("data.persistent_workers", "a data loader setting"),
    ("data.pin_memory", "a data loader setting"),
    ("trainer.critic_warmup", "no critic"),
    ("trainer.logger", "the run log is events.jsonl (and the TUI), not W&B"),
    ("trainer.project_name", "a W&B project"),
    ("trainer.nnodes", "one machine"),
    ("trainer.resume_mode", "a command-line choice: train --resume auto"),
    ("trainer.total_epochs", "the project counts steps: run.steps"),
    ("actor_rollout_ref.model.use_remove_padding", "rows are always packed without padding"),
    (
        "actor_rollout_ref.actor.ppo_mini_batch_size",
        "equal to the batch: one update per step, as the project always does",
    ),
    (
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu",
        "a memory setting: step.micro_batch_tokens / micro_batch_rows split a step without changing its loss",
    ),
    (
        "actor_rollout_ref.actor.kl_loss_coef",
        "used only with use_kl_loss (false here); step.loss.kl_coef is the coefficient",
    ),
    (
        "actor_rollout_ref.actor.kl_loss_type",
        "the project's KL is the k3 estimator (verl's low_var_kl); off here",
    ),
    ("actor_rollout_ref.actor.entropy_coeff", "no entropy bonus (0 here)"),
    ("actor_rollout_ref.actor.clip_ratio", "superseded by clip_ratio_low / clip_ratio_high"),
    (
        "actor_rollout_ref.actor.fsdp_config.param_offload",
        "FSDP offload: the project shards optimizer state (ZeRO-1) and does not offload",
    ),
    ("actor_rollout_ref.actor.fsdp_config.optimizer_offload", "as param_offload"),
    (
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu",
        "no frozen reference policy without a KL term",
    ),
    ("actor_rollout_ref.ref.fsdp_config.param_offload", "as above"),
    ("actor_rollout_ref.ref.fsdp_config.optimizer_offload", "as above"),
    ("actor_rollout_ref.rollout.calculate_log_probs", "the trainer computes log-probs itself"),
    ("actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu", "a vLLM memory setting"),
    ("actor_rollout_ref.rollout.tensor_model_parallel_size", "a vLLM setting: one model replica per device"),
    ("actor_rollout_ref.rollout.name", "the project generates with its own engine, not vLLM"),
    ("actor_rollout_ref.rollout.gpu_memory_utilization", "a vLLM memory setting"),
    ("actor_rollout_ref.rollout.enforce_eager", "a vLLM setting"),
    ("actor_rollout_ref.rollout.max_model_len", "prompt + response budget (256 + 8192), a vLLM setting"),
    (
        "actor_rollout_ref.rollout.checkpoint_engine.update_weights_bucket_megabytes",
        "a vLLM weight-sync setting",
    ),
    ("actor_rollout_ref.rollout.max_num_batched_tokens", "a vLLM scheduling setting"),
    ("ray_init.num_cpus", "no Ray"),
    ("reward.streaming", "a verl reward-loop setting"),
    ("reward_model.enable", "no learned reward model: the reward is the composite"),
    ("reward_model.reward_kwargs.rep_n_local", "fixed in the rule code at the release's value (4-grams)"),
    ("reward_model.reward_kwargs.rep_local_window", "fixed in the rule code (64)"),
    ("reward_model.reward_kwargs.rep_ngram_hinge", "fixed in the rule code (0.08)"),
    ("reward_model.reward_kwargs.rep_w_lines", "fixed in the rule code (0.4)"),
    ("reward_model.reward_kwargs.rep_w_ngram", "fixed in the rule code (0.8)"),
    ("reward_model.reward_kwargs.rep_cap", "fixed in the rule code (1.5)"),
    ("reward_model.reward_kwargs.min_visible_ratio", "fixed in the rule code (0.10)"),
    ("reward_model.reward_kwargs.min_words", "fixed in the rule code (150)"),
    ("reward_model.reward_kwargs.target_words", "−1: the target comes from the prompt, always"),
    ("reward_model.reward_kwargs.len_tolerance", "−1: the two-sided tolerances below, always"),
    ("reward_model.reward_kwargs.len_tolerance_lower", "fixed in the rule code (0.15)"),
    ("reward_model.reward_kwargs.len_tolerance_lower_abs_min", "fixed in the rule code (350)"),
    ("reward_model.reward_kwargs.len_tolerance_lower_abs_max", "fixed in the rule code (1000)"),
    ("reward_model.reward_kwargs.len_tolerance_upper", "fixed in the rule code (0.25)"),
    ("reward_model.reward_kwargs.len_tolerance_upper_abs_min", "fixed in the rule code (600)"),
    ("reward_model.reward_kwargs.len_tolerance_upper_abs_max", "fixed in the rule code (1500)"),
    (
        "reward_model.reward_kwargs.think_reward_mode",
        "the release score gives thinking tokens the story scalar (story_mean), always",
    ),
    ("reward_model.reward_kwargs.think_reward_scale", "1, always"),
    (
        "reward_model.reward_kwargs.story_quality_provider",
        "the gemini: judge calls the Gemini API (GEMINI_API_KEY), not Vertex AI",
    ),
    (
        "reward_model.reward_kwargs.story_quality_force_structured_mode",
        "structured output is always requested with the schema",
    ),
    ("reward_model.reward_kwargs.story_quality_service_tier", "the Gemini client has no service tiers"),
    (
        "reward_model.reward_kwargs.story_quality_thinking_config.thinkingLevel",
        "the Gemini client sets a thinking budget in tokens (judge.thinking_budget), not a level",
    ),
    (
        "reward_model.reward_kwargs.story_quality_thinking_config.includeThoughts",
        "the judge's thoughts are never kept",
    ),
    ("reward_model.reward_kwargs.story_quality_async_enable", "judging is always concurrent"),
    (
        "reward_model.reward_kwargs.story_quality_overall_min",
        "the rubric's range: −(negative maxima + penalty maximum), −159 for these files",
    ),
    (
        "reward_model.reward_kwargs.story_quality_overall_max",
        "the rubric's range: positive maxima + bonus maximum, 108 for these files",
    ),
    ("reward_model.reward_kwargs.story_quality_score_divisor", "the rubric's divisor (100)"),
    (
        "reward_model.reward_kwargs.story_quality_use_positive_total",
        "overall always counts the negatives (false here)",
    ),
    ("reward_model.reward_kwargs.story_quality_bonus_floor_enable", "the rubric's composite rules (on)"),
    ("reward_model.reward_kwargs.story_quality_penalty_cap_enable", "the rubric's composite rules (on)"),
    ("reward_model.reward_kwargs.story_quality_penalty_cap_value", "the rubric's composite rules (3)"),
    (
        "reward_model.reward_kwargs.story_quality_user_template",
        "the release's user message is the one a prompt + schema pair is always sent with",
    ),
    ("trainer.validation_data_dir", "validation rollouts go to the run's rollouts.jsonl (kind val)"),
    ("trainer.log_val_generations", "every validation rollout is kept"),
    ("actor_rollout_ref.rollout.val_kwargs.n", "one sample per validation prompt, always"),
    (
        "actor_rollout_ref.rollout.val_kwargs.frequency_penalty",
        "no frequency penalty in the sampler (0 here)",
    ),
    ("actor_rollout_ref.rollout.val_kwargs.min_tokens", "no minimum length in the sampler (1 here)"),
    ("reward_model.val_reward_kwargs.story_quality_service_tier", "the Gemini client has no service tiers"),
    (
        "reward_model.val_reward_kwargs.story_quality_use_positive_total",
        "overall always counts the negatives (false here)",
    ),
    ("custom_reward_function.path", "the reward stack is built in"),
    ("custom_reward_function.name", "the reward stack is built in"),
];

/// One key of the written file: its name in its section, its value, and where it comes from.
struct Line {
    name: &'static str,
    value: &'static str,
    notes: Vec<&'static str>,
}

/// The preset's TOML: a header naming where it comes from, then each section's keys, each
/// with the yaml keys it reproduces.
pub fn polaris_main_toml() -> String {
    let mut sections: Vec<(&str, Vec<Line>)> = Vec::new();
    let mut add = |key: &'static str, value: &'static str, note: &'static str| {
        let (section, name) = key.rsplit_once('.').expect("keys have a section");
        let at = match sections.iter().position(|(s, _)| *s == section) {
            Some(i) => i,
            None => {
                sections.push((section, Vec::new()));
                sections.len() - 1
            }
        };
        let lines = &mut sections[at].1;
        match lines.iter_mut().find(|l| l.name == name) {
            Some(line) => line.notes.push(note),
            None => lines.push(Line { name, value, notes: vec![note] }),
        }
    };
    for s in POLARIS_MAIN {
        add(s.key, s.value, s.yaml);
    }
    for (key, value, why) in POLARIS_MAIN_EXTRA {
        add(key, value, why);
    }
    // a parent table before its children ([step] before [step.lr]) reads best
    sections.sort_by_key(|(s, _)| section_order(s));
    let mut out = String::from(
        "# polaris-tui run configuration: the POLARIS release's main run (its configs/train/polaris_main.yaml).\n\
         # Each key names the yaml key(s) it reproduces; every other key is the recipe's default.\n\
         # The yaml keys without a counterpart are listed in the README (The reward) with why.\n\
         # Edit before training: data.train (your train.jsonl), model.path (a local Qwen/Qwen3.5-9B),\n\
         # reward.rubric_prompt / rubric_schema (the release's prompts/ files; GEMINI_API_KEY for the judge).\n",
    );
    for (section, lines) in &sections {
        let _ = writeln!(out, "\n[{section}]");
        for l in lines {
            let line = format!("{} = {}", l.name, l.value);
            let _ = writeln!(out, "{line:<40} # {}", l.notes.join(", "));
        }
    }
    out
}

/// Sections in the order of the init template.
fn section_order(section: &str) -> (usize, String) {
    const ORDER: [&str; 6] = ["run", "model", "data", "reward", "judge", "step"];
    let top = section.split('.').next().unwrap_or(section);
    (ORDER.iter().position(|s| *s == top).unwrap_or(ORDER.len()), section.to_string())
}
