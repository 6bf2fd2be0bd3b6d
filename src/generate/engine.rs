//! Batched generation: B sequences decode together (a GRPO group is one prompt x B).
//! Prompts of different lengths are left-padded; finished rows leave the batch.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Result};
use candle_core::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::sampler::{sample_rows, Draw, SamplingParams, Seen};
use crate::model::{Kernels, Model};

/// Ids of the thinking delimiters, when the tokenizer has them as single tokens.
#[derive(Debug, Clone, Copy)]
pub struct ThinkTokens {
    pub open: u32,
    pub close: u32,
}

pub struct Request {
    /// Prompt ids per row.
    pub prompts: Vec<Vec<u32>>,
    pub params: SamplingParams,
    /// Any of these ends a row (not included in its tokens).
    pub stop_ids: Vec<u32>,
    pub think: Option<ThinkTokens>,
}

impl Request {
    /// One prompt sampled `n` times.
    pub fn group(
        prompt: Vec<u32>,
        n: usize,
        params: SamplingParams,
        stop_ids: Vec<u32>,
        think: Option<ThinkTokens>,
    ) -> Self {
        Self { prompts: vec![prompt; n], params, stop_ids, think }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// an end token was sampled
    Stop,
    /// max_new_tokens reached
    Length,
    Cancelled,
}

#[derive(Debug, Clone, Serialize)]
pub struct Output {
    /// Generated ids, the end token excluded.
    pub tokens: Vec<u32>,
    pub finish: Finish,
    /// Tokens generated inside a thinking block.
    pub thinking_tokens: usize,
    /// Whether the thinking budget forced `</think>`.
    pub forced_think_close: bool,
    /// The end token that finished the row (not in `tokens`), when one did.
    pub stop_token: Option<u32>,
}

/// One generated token, as the streaming callback sees it.
#[derive(Debug, Clone, Copy)]
pub struct TokenEvent {
    pub row: usize,
    pub id: u32,
    /// true for a token the engine forced (`</think>` past the budget)
    pub forced: bool,
}

struct Row {
    rng: ChaCha8Rng,
    out: Vec<u32>,
    context: Seen,
    generated: Seen,
    in_thinking: bool,
    thinking_tokens: usize,
    forced: bool,
    finish: Option<Finish>,
    stop_token: Option<u32>,
}

/// Generates for every row of the request. `on_token` sees each token as it is chosen;
/// setting `cancel` ends all rows after the current step.
pub fn generate(
    model: &Model,
    req: &Request,
    on_token: &mut dyn FnMut(TokenEvent),
    cancel: &AtomicBool,
) -> Result<Vec<Output>> {
    let streams: Vec<u64> = (0..req.prompts.len() as u64).collect();
    generate_streams(model, req, &streams, on_token, cancel)
}

/// `generate` with row i drawing from random stream `streams[i]` of the seed instead of
/// stream i, so a subset of a group's rows (the samples a resumed evaluation still lacks)
/// comes out as it would have in the whole group.
pub fn generate_streams(
    model: &Model,
    req: &Request,
    streams: &[u64],
    on_token: &mut dyn FnMut(TokenEvent),
    cancel: &AtomicBool,
) -> Result<Vec<Output>> {
    req.params.validate()?;
    let b = req.prompts.len();
    if streams.len() != b {
        bail!("{} random streams for {b} rows", streams.len());
    }
    if b == 0 {
        return Ok(vec![]);
    }
    if req.prompts.iter().any(Vec::is_empty) {
        bail!("every prompt needs at least one token");
    }
    let vocab = model.config().vocab_size;
    if let Some(&bad) = req.prompts.iter().flatten().find(|&&t| t as usize >= vocab) {
        bail!("prompt token id {bad} is outside the model's vocabulary of {vocab}");
    }
    let device = model.device().clone();
    let mut rows: Vec<Row> = req
        .prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut rng = ChaCha8Rng::seed_from_u64(req.params.seed);
            rng.set_stream(streams[i]);
            let mut context = Seen::new(vocab);
            for &t in p {
                context.insert(t);
            }
            Row {
                rng,
                out: Vec::new(),
                context,
                generated: Seen::new(vocab),
                in_thinking: req.think.is_some_and(|tt| opens_thinking(p, tt)),
                thinking_tokens: 0,
                forced: false,
                finish: None,
                stop_token: None,
            }
        })
        .collect();

    // Prefill. A group of identical prompts is prefilled once and its cache copied.
    let identical = req.prompts.iter().all(|p| p == &req.prompts[0]);
    let (mut cache, mut logits) = if identical {
        let ids = Tensor::new(req.prompts[0].as_slice(), &device)?.unsqueeze(0)?;
        let mut cache = model.new_cache(vec![0]);
        let logits = model.forward_cached(&ids, &mut cache, Kernels::Fused)?;
        cache.retain_rows(&vec![0; b])?;
        (cache, logits.broadcast_as((b, vocab))?.contiguous()?)
    } else {
        let longest = req.prompts.iter().map(Vec::len).max().unwrap_or(0);
        let pad: Vec<usize> = req.prompts.iter().map(|p| longest - p.len()).collect();
        let mut flat = Vec::with_capacity(b * longest);
        for (p, &n) in req.prompts.iter().zip(&pad) {
            flat.extend(std::iter::repeat_n(p[0], n));
            flat.extend_from_slice(p);
        }
        let ids = Tensor::from_vec(flat, (b, longest), &device)?;
        let mut cache = model.new_cache(pad);
        let logits = model.forward_cached(&ids, &mut cache, Kernels::Fused)?;
        (cache, logits)
    };
    // the longest a row can grow to, so the cache grows once (the prompts are prefilled)
    cache.reserve(cache.len() + req.params.max_new_tokens);

    // active[k] = index into rows of the cache's k-th row
    let mut active: Vec<usize> = (0..b).collect();
    loop {
        let cancelled = cancel.load(Ordering::Relaxed);
        // a row past its thinking budget is forced to close it, and draws nothing
        let forced: Vec<Option<u32>> = active
            .iter()
            .map(|&r| {
                let row = &rows[r];
                let budget_hit = row.in_thinking
                    && req.params.thinking_budget.is_some_and(|cap| row.thinking_tokens >= cap);
                req.think.filter(|_| budget_hit).map(|tt| tt.close)
            })
            .collect();
        // every other row's draw, the rows in parallel (each from its own stream)
        let drawn = {
            let mut by_row: Vec<Option<&mut Row>> = rows.iter_mut().map(Some).collect();
            let mut draws: Vec<Option<Draw>> = active
                .iter()
                .zip(&forced)
                .map(|(&r, f)| {
                    let row = by_row[r].take()?;
                    (f.is_none() && !cancelled).then_some(Draw {
                        rng: &mut row.rng,
                        context: &row.context,
                        generated: &row.generated,
                    })
                })
                .collect();
            sample_rows(&logits, &req.params, &mut draws)?
        };
        // (k, id): the cache's k-th row goes on with token id
        let mut next = Vec::with_capacity(active.len());
        for (k, (&r, drawn)) in active.iter().zip(drawn).enumerate() {
            let row = &mut rows[r];
            if cancelled {
                row.finish = Some(Finish::Cancelled);
                continue;
            }
            let (id, forced) = match (forced[k], drawn) {
                (Some(close), _) => (close, true),
                (None, Some(id)) => (id, false),
                (None, None) => bail!("generation: row {r} drew no token"),
            };
            if req.stop_ids.contains(&id) {
                row.finish = Some(Finish::Stop);
                row.stop_token = Some(id);
                continue;
            }
            row.forced |= forced;
            if let Some(tt) = req.think {
                if id == tt.open {
                    row.in_thinking = true;
                } else if id == tt.close {
                    row.in_thinking = false;
                } else if row.in_thinking {
                    row.thinking_tokens += 1;
                }
            }
            row.out.push(id);
            row.context.insert(id);
            row.generated.insert(id);
            on_token(TokenEvent { row: r, id, forced });
            if row.out.len() >= req.params.max_new_tokens {
                row.finish = Some(Finish::Length);
                continue;
            }
            next.push((k, id));
        }
        if next.is_empty() {
            break;
        }
        if next.len() < active.len() {
            let keep: Vec<usize> = next.iter().map(|&(k, _)| k).collect();
            cache.retain_rows(&keep)?;
            active = keep.iter().map(|&k| active[k]).collect();
        }
        let ids: Vec<u32> = next.iter().map(|&(_, id)| id).collect();
        let ids = Tensor::from_vec(ids, (active.len(), 1), &device)?;
        logits = model.forward_cached(&ids, &mut cache, Kernels::Fused)?;
    }
    Ok(rows
        .into_iter()
        .map(|r| Output {
            tokens: r.out,
            finish: r.finish.unwrap_or(Finish::Length),
            thinking_tokens: r.thinking_tokens,
            forced_think_close: r.forced,
            stop_token: r.stop_token,
        })
        .collect())
}

/// Whether the prompt ids leave a thinking block open.
fn opens_thinking(prompt: &[u32], tt: ThinkTokens) -> bool {
    let open = prompt.iter().rposition(|&t| t == tt.open);
    let close = prompt.iter().rposition(|&t| t == tt.close);
    match (open, close) {
        (Some(o), Some(c)) => o > c,
        (Some(_), None) => true,
        _ => false,
    }
}
