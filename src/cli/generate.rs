//! `polaris-tui generate`, and the demo run with no arguments.

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;

use super::eval::length::default_label;
use super::{ModelArgs, OnOff, SamplingArgs};
use crate::generate::file::{default_uid, generation_line};
use crate::generate::{story_prompt, GenerationRecord, SamplingParams};
use crate::lm::LanguageModel;
use crate::tokenize::TokenStream;

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// What to write about; the length sentence is appended unless --raw.
    #[arg(long)]
    pub prompt: String,
    /// Requested length in words (`... N words long`).
    #[arg(long)]
    pub words: Option<usize>,
    /// Let the model reason in a <think> block before the story.
    #[arg(long, value_enum, default_value = "on")]
    pub thinking: OnOff,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Tokenize the prompt as it is: no chat template, no length sentence.
    #[arg(long)]
    pub raw: bool,
    /// Print one JSON record instead of streaming text: a generation record that `judge
    /// --input`, `annotate` and `eval` read as it is.
    #[arg(long)]
    pub json: bool,
    /// The prompt's id in the --json record [default: from the prompt's text, so the same
    /// prompt given to two models matches].
    #[arg(long, requires = "json")]
    pub uid: Option<String>,
    /// The system's name in the --json record [default: the model's (or adapter's) folder name].
    #[arg(long, requires = "json")]
    pub system: Option<String>,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    if args.raw && args.words.is_some() {
        bail!("--words adds a length sentence, which --raw skips; drop one of them");
    }
    let params = args.sampling.params(args.words)?;
    let lm = args.model.open()?;
    let text = match args.words {
        Some(w) if !args.raw => story_prompt(&args.prompt, w),
        _ => args.prompt.clone(),
    };
    let record = write_story(&lm, &text, args.raw, args.thinking.is_on(), args.words, &params, !args.json)?;
    if args.json {
        let uid = args.uid.clone().unwrap_or_else(|| default_uid(&text));
        let adapter = args.model.adapter.as_ref().map(|a| a.display().to_string());
        let system =
            args.system.clone().unwrap_or_else(|| default_label(&args.model.model, adapter.as_deref()));
        println!("{}", serde_json::to_string(&generation_line(&record, &uid, &system, &text)?)?);
    }
    Ok(())
}

/// Generates one story; with `stream`, prints text as it arrives and a summary after.
fn write_story(
    lm: &LanguageModel,
    text: &str,
    raw: bool,
    thinking: bool,
    words: Option<usize>,
    params: &SamplingParams,
    stream: bool,
) -> Result<GenerationRecord> {
    let (prompt, prompt_ids) = lm.prompt(text, raw, thinking)?;
    // Ctrl-C stops generation and keeps what was written; a second Ctrl-C exits at once.
    let cancel = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register_conditional_shutdown(signal_hook::consts::SIGINT, 130, cancel.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, cancel.clone())?;
    let mut streamer = TokenStream::new(&lm.tokenizer);
    let mut out = std::io::stdout().lock();
    let started = Instant::now();
    let outputs = lm.generate(
        &prompt_ids,
        1,
        params,
        &mut |ev| {
            if stream {
                if let Ok(Some(piece)) = streamer.push(ev.id) {
                    let _ = out.write_all(piece.as_bytes());
                    let _ = out.flush();
                }
            }
        },
        &cancel,
    )?;
    let secs = started.elapsed().as_secs_f64();
    let record = GenerationRecord::new(lm, &prompt, &prompt_ids, &outputs[0], words, secs)?;
    if stream {
        let _ = writeln!(out);
        drop(out);
        eprintln!();
        eprintln!("words         {}", record.words);
        match (record.length_ratio, words) {
            (Some(r), Some(w)) => {
                eprintln!("length ratio  {r:.2} ({} of {w} requested)", record.words)
            }
            _ => eprintln!("length ratio  - (no length requested)"),
        }
        eprintln!(
            "tokens        {} ({} thinking{}), finish: {:?}",
            record.token_ids.len(),
            record.thinking_tokens,
            if record.forced_think_close { ", budget forced </think>" } else { "" },
            record.finish
        );
        eprintln!("speed         {:.1} tokens/s", record.tokens_per_second);
    }
    Ok(record)
}
