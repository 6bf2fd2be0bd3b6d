//! `polaris-tui judge`: score a JSONL file of stories with the reward stack.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};

use crate::durable::jsonl::jsonl_lines;
use crate::generate::file::prompt_uid;
use crate::reward::breakdown::{apply_batch_mean, judge_batch, Candidate, Weights};
use crate::reward::judge::JUDGE_SPECS;
use crate::reward::principles::{for_judge, load_optional};
use crate::reward::{JudgeClient, JudgeSettings, JudgeSpec, Rubric};

#[derive(Args, Debug)]
pub struct JudgeArgs {
    /// `builtin` (rubrics/story_quality.toml) or a rubric TOML file.
    #[arg(long, default_value = "builtin", conflicts_with_all = ["rubric_prompt", "rubric_schema"])]
    pub rubric: String,
    /// An external judge prompt, used as given (with --rubric-schema).
    #[arg(long, requires = "rubric_schema")]
    pub rubric_prompt: Option<PathBuf>,
    /// The JSON schema of the external judge's answer (with --rubric-prompt).
    #[arg(long, requires = "rubric_prompt")]
    pub rubric_schema: Option<PathBuf>,
    #[arg(long, default_value = "offline", help = JUDGE_SPECS)]
    pub judge: String,
    /// A principles file (TOML, at most 10 rules) the judge scores with besides the rubric;
    /// every record then carries their hash as `principles`. The offline judge ignores it.
    #[arg(long)]
    pub principles: Option<PathBuf>,
    /// JSONL: one {"uid", "prompt", "story"[, "thinking", "reference"]} per line (`prompt_uid`
    /// is read as uid; a `generate --json` record is one); `reference` (a human story) sets
    /// the length target when the prompt asks for no length.
    #[arg(long)]
    pub input: PathBuf,
    /// Where the scored records go (written whole, then renamed into place).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Composite weights: training (1.0, 1.5, 0.8, 1.0) or validation (1.0, 0.8, 0.2, 1.0).
    #[arg(long, default_value = "training", value_parser = ["training", "validation"])]
    pub weights: String,
    /// Print the exact request for the first story (key masked) and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub access: JudgeAccessArgs,
}

struct Record {
    value: Value,
    prompt: String,
    story: String,
    reference: Option<String>,
}

pub fn run(args: JudgeArgs) -> Result<()> {
    let rubric = match (&args.rubric_prompt, &args.rubric_schema) {
        (Some(p), Some(s)) => Rubric::from_prompt_and_schema(p, s)?,
        _ => Rubric::load(&args.rubric)?,
    };
    // replies cached beside the scored records unless told otherwise
    let beside_out =
        args.out.as_ref().map(|o| o.parent().unwrap_or(Path::new(".")).join(crate::run::dir::JUDGE_CACHE));
    let settings = args.access.settings(beside_out)?;
    let records = read_records(&args.input)?;
    if records.is_empty() {
        bail!("{}: no records", args.input.display());
    }
    let spec = JudgeSpec::parse(&args.judge)?;
    let principles = load_optional(args.principles.as_deref())?;
    let (rubric, notice) = for_judge(&spec, rubric, principles.as_ref());
    if let Some(notice) = notice {
        eprintln!("note: {notice}");
    }
    let client = Arc::new(JudgeClient::new(spec, rubric, settings)?);
    if args.dry_run {
        let request = client.dry_run(&records[0].prompt, &records[0].story);
        return super::stdout::print(&format!("{}\n", serde_json::to_string_pretty(&request)?));
    }
    let Some(out_path) = args.out.clone() else { bail!("--out is required (or use --dry-run)") };
    // before any judge is paid: the output must be a file that can be written
    check_out(&out_path)?;
    let weights = if args.weights == "validation" { Weights::validation() } else { Weights::training() };
    let candidates: Vec<Candidate> = records
        .iter()
        .map(|r| Candidate {
            prompt: r.prompt.clone(),
            story: r.story.clone(),
            response: None,
            reference: r.reference.clone(),
        })
        .collect();

    let bar = indicatif::ProgressBar::new(candidates.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} judged  {elapsed} elapsed, {eta} left")
            .expect("valid template"),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // judged in slices so the bar moves; the client's limit bounds concurrency across slices
    let slice = (client.settings.concurrency * 4).max(8);
    let mut breakdowns = Vec::with_capacity(candidates.len());
    for chunk in candidates.chunks(slice) {
        breakdowns.extend(runtime.block_on(judge_batch(&client, chunk, weights)));
        bar.inc(chunk.len() as u64);
        for notice in client.take_notices() {
            bar.suspend(|| eprintln!("note: {notice}"));
        }
    }
    bar.finish_and_clear();
    let failed = breakdowns.iter().filter(|b| b.judge_failure.is_some()).count();
    if failed == breakdowns.len() {
        let failures: Vec<&str> = breakdowns.iter().filter_map(|b| b.judge_failure.as_deref()).collect();
        bail!(
            "every judgement failed ({failed} of {failed}), so nothing was written to {}; {}",
            out_path.display(),
            common_reasons(&failures)
        );
    }
    // the batch-mean fallback and the composite, once over the whole file
    apply_batch_mean(&mut breakdowns);

    let mut text = String::new();
    for (r, b) in records.iter().zip(&breakdowns) {
        let mut v = r.value.clone();
        v["overall"] = json!(b.overall);
        v["story_quality"] = json!(b.story_quality);
        v["reward"] = json!(b.reward);
        v["breakdown"] = serde_json::to_value(b)?;
        if let Some(hash) = &b.principles {
            v["principles"] = json!(hash);
        }
        text.push_str(&serde_json::to_string(&v)?);
        text.push('\n');
    }
    crate::durable::write_atomic(&out_path, text.as_bytes())?;
    let t = client.totals();
    let mean = breakdowns.iter().map(|b| b.reward).sum::<f64>() / breakdowns.len() as f64;
    eprintln!(
        "{} stories -> {}; mean reward {mean:.3}; judge failures {failed}{}; cache hits {}; tokens {} in / {} out; cost ${:.4}",
        breakdowns.len(),
        out_path.display(),
        if failed > 0 { " (their Story Quality is the batch mean)" } else { "" },
        t.cache_hits,
        t.usage.prompt_tokens,
        t.usage.completion_tokens,
        t.usage.cost
    );
    Ok(())
}

/// How to reach the judge: the flags `judge`, `eval length` and `eval elo` share.
#[derive(Args, Debug, Clone)]
pub struct JudgeAccessArgs {
    /// A TOML file with a [judge] table (settings, price table).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub connection: JudgeConnectionArgs,
}

impl JudgeAccessArgs {
    /// The config file's [judge] table (or the defaults) with these flags over it; replies
    /// are cached in --cache-dir, else in `default_cache` (None: not cached).
    pub fn settings(&self, default_cache: Option<PathBuf>) -> Result<JudgeSettings> {
        self.connection.settings(self.config.as_deref(), default_cache)
    }
}

/// The judge flags besides the config file (`eval bench` names its TOML `--judge-config`,
/// its `--config` being the release's JSON).
#[derive(Args, Debug, Clone)]
pub struct JudgeConnectionArgs {
    /// Requests in flight at most [default: 4]
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// API endpoint (else OPENAI_BASE_URL, else the provider's public URL).
    #[arg(long)]
    pub base_url: Option<String>,
    /// Environment variable holding the API key (default OPENAI_API_KEY / GEMINI_API_KEY).
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// Judge reply cache [default: judge-cache/ beside the output].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Do not cache judge replies.
    #[arg(long)]
    pub no_cache: bool,
}

impl JudgeConnectionArgs {
    /// The TOML `config`'s [judge] table (or the defaults) with these flags over it; replies
    /// are cached in --cache-dir, else in `default_cache` (None: not cached).
    pub fn settings(&self, config: Option<&Path>, default_cache: Option<PathBuf>) -> Result<JudgeSettings> {
        let mut settings = match config {
            Some(path) => settings_from_config(path)?,
            None => JudgeSettings::default(),
        };
        if let Some(c) = self.concurrency {
            settings.concurrency = c;
        }
        if self.base_url.is_some() {
            settings.base_url = self.base_url.clone();
        }
        if self.api_key_env.is_some() {
            settings.api_key_env = self.api_key_env.clone();
        }
        settings.cache_dir = if self.no_cache { None } else { self.cache_dir.clone().or(default_cache) };
        Ok(settings)
    }
}

/// The [judge] table of a TOML file, its ranges checked.
fn settings_from_config(path: &Path) -> Result<JudgeSettings> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: toml::Table =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{} does not parse: {e}", path.display()))?;
    let settings: JudgeSettings = match v.get("judge") {
        Some(t) => t.clone().try_into().map_err(|e| anyhow::anyhow!("{}: [judge]: {e}", path.display()))?,
        None => JudgeSettings::default(),
    };
    settings.validate().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(settings)
}

/// `--out` must name a file whose folder exists (or can be made); a folder is refused here,
/// before any judgement, not by the rename at the end.
fn check_out(out: &Path) -> Result<()> {
    if out.is_dir() {
        bail!(
            "--out {} is a directory; give the file to write, e.g. --out {}",
            out.display(),
            out.join("judged.jsonl").display()
        );
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| {
            format!("--out {}: cannot create its folder {}", out.display(), dir.display())
        })?;
    }
    Ok(())
}

/// The most common failure reasons, with their counts (at most three).
fn common_reasons(failures: &[&str]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for f in failures {
        match counts.iter_mut().find(|(r, _)| r == f) {
            Some((_, n)) => *n += 1,
            None => counts.push((f, 1)),
        }
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    let top: Vec<String> = counts.iter().take(3).map(|(r, n)| format!("{n} x {r}")).collect();
    format!("the judge said: {}", top.join("; "))
}

fn read_records(path: &Path) -> Result<Vec<Record>> {
    if path.is_dir() {
        bail!("--input {} is a directory; give a JSONL file of stories", path.display());
    }
    let mut out = Vec::new();
    for (n, line) in jsonl_lines(path).with_context(|| format!("--input {}", path.display()))? {
        let obj = line.map_err(|e| anyhow::anyhow!("{}:{n}: {e}", path.display()))?;
        let field = |k: &str| -> Result<String> {
            match obj.get(k) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => bail!("{}:{n}: field {k} must be a string", path.display()),
                None => {
                    bail!("{}:{n}: field {k} is missing (records need uid, prompt, story)", path.display())
                }
            }
        };
        match prompt_uid(&obj) {
            Ok(Some(_)) => {}
            Ok(None) => bail!(
                "{}:{n}: field uid is missing (records need uid, prompt, story; `prompt_uid` is read as uid)",
                path.display()
            ),
            Err(e) => bail!("{}:{n}: {e}", path.display()),
        }
        let reference = match obj.get("reference") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                bail!("{}:{n}: field reference must be a string (a human story) or null", path.display())
            }
        };
        let (prompt, story) = (field("prompt")?, field("story")?);
        out.push(Record { prompt, story, reference, value: Value::Object(obj) });
    }
    Ok(out)
}
