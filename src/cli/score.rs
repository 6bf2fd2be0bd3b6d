//! `polaris-tui score`: how likely a text is under a model, by the training path.

use std::io::Read;

use anyhow::{Context, Result};
use candle_core::Tensor;
use clap::Args;
use serde::Serialize;

use super::{ModelArgs, OnOff};
use crate::generate::story_prompt;
use crate::model::logprobs::{logprobs, DEFAULT_CHUNK};

#[derive(Args, Debug)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The text to score: a file, or - for standard input.
    #[arg(long)]
    pub text: String,
    /// Score the text as it is (tokenizer's special-token rules), not as a response.
    #[arg(long)]
    pub raw: bool,
    /// Without --raw: the user prompt the text answers.
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// Without --raw: the requested length appended to --prompt.
    #[arg(long)]
    pub words: Option<usize>,
    /// Without --raw: the chat template's thinking mode (the response's think block is empty).
    #[arg(long, value_enum, default_value = "off")]
    pub thinking: OnOff,
    /// Positions per log-prob chunk (memory: chunk x vocab floats).
    #[arg(long, default_value_t = DEFAULT_CHUNK)]
    pub chunk: usize,
    /// Print one JSON record.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct ScoreRecord {
    token_ids: Vec<u32>,
    /// logprobs[i] = log p(token_ids[i + 1] | token_ids[..=i])
    logprobs: Vec<f32>,
    mean_nll: f64,
    perplexity: f64,
    /// Index into token_ids of the first scored token: the response's start, or 1 with --raw.
    scored_from: usize,
    scored_tokens: usize,
}

pub fn run(args: ScoreArgs) -> Result<()> {
    let text = if args.text == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading the text from standard input")?;
        s
    } else {
        std::fs::read_to_string(&args.text).with_context(|| format!("cannot read --text {}", args.text))?
    };
    let lm = args.model.open()?;
    let (ids, scored_from) = if args.raw {
        (lm.tokenizer.encode(&text, true)?, 1)
    } else {
        let prompt = match args.words {
            Some(w) => story_prompt(&args.prompt, w),
            None => args.prompt.clone(),
        };
        let (rendered, mut ids) = lm.prompt(&prompt, false, args.thinking.is_on())?;
        let start = ids.len();
        ids.extend(lm.response_ids(&rendered, args.thinking.is_on(), None, &text)?);
        (ids, start)
    };
    if ids.len() < 2 {
        anyhow::bail!("--text gives {} token(s); scoring needs at least 2", ids.len());
    }
    let n = ids.len();
    let device = lm.model.device();
    let inputs = Tensor::new(&ids[..n - 1], device)?.unsqueeze(0)?;
    let targets = Tensor::new(&ids[1..], device)?.unsqueeze(0)?;
    let lp: Vec<f32> = logprobs(&lm.model, &inputs, &targets, args.chunk)?
        .squeeze(0)?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1()?;
    let scored = &lp[scored_from - 1..];
    let mean_nll = -scored.iter().map(|&x| x as f64).sum::<f64>() / scored.len().max(1) as f64;
    let record = ScoreRecord {
        token_ids: ids,
        logprobs: lp.clone(),
        mean_nll,
        perplexity: mean_nll.exp(),
        scored_from,
        scored_tokens: scored.len(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&record)?);
    } else {
        println!(
            "tokens        {} ({} scored, from index {})",
            record.token_ids.len(),
            record.scored_tokens,
            record.scored_from
        );
        println!("mean NLL      {:.4} nats/token", record.mean_nll);
        println!("perplexity    {:.3}", record.perplexity);
    }
    Ok(())
}
