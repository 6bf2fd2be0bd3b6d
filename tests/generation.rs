//! The generation engine: cached decoding equals recomputation, batching and padding do not
//! change results, seeds reproduce, end tokens / budgets / cancellation behave.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, D};
use common::*;
use polaris::generate::{generate, Finish, Request, SamplingParams, ThinkTokens};
use polaris::model::{Kernels, Model};

fn qwen3_tiny() -> Model {
    Model::load_dir(&shared().join("models/qwen3-tiny"), &cpu(DType::F32)).unwrap()
}

fn greedy(n: usize) -> SamplingParams {
    SamplingParams { temperature: 0.0, max_new_tokens: n, thinking_budget: None, ..SamplingParams::default() }
}

fn run(model: &Model, req: &Request) -> Vec<polaris::generate::Output> {
    generate(model, req, &mut |_| {}, &AtomicBool::new(false)).unwrap()
}

#[test]
fn cached_greedy_equals_full_recomputation() {
    let model = qwen3_tiny();
    let prompt = vec![5u32, 99, 300, 7, 12];
    let out = run(&model, &Request::group(prompt.clone(), 1, greedy(24), vec![], None));
    // recompute every step from scratch with the differentiable full-sequence path
    let mut seq = prompt.clone();
    for &tok in &out[0].tokens {
        let logits = model.logits(&ids(&[seq.clone()])).unwrap().squeeze(0).unwrap();
        let next = logits.get(seq.len() - 1).unwrap().argmax(D::Minus1).unwrap().to_scalar::<u32>().unwrap();
        assert_eq!(next, tok, "step {}", seq.len() - prompt.len());
        seq.push(next);
    }
    // and the two paths' logits agree on the whole sequence
    let full = model.logits(&ids(&[seq.clone()])).unwrap().squeeze(0).unwrap();
    let mut cache = model.new_cache(vec![0]);
    let last =
        model.forward_cached(&ids(&[seq[..seq.len() - 1].to_vec()]), &mut cache, Kernels::Fused).unwrap();
    let a: Vec<f32> = last.squeeze(0).unwrap().to_vec1().unwrap();
    let b: Vec<f32> = full.get(seq.len() - 2).unwrap().to_vec1().unwrap();
    // f32, fused vs composed kernels: a few ulps of O(1) logits
    let d = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(d < 1e-4, "fused cached vs differentiable logits differ by {d}");
}

#[test]
fn left_padded_batch_equals_each_prompt_alone() {
    let model = qwen3_tiny();
    let prompts = vec![vec![5u32, 99, 300, 7, 12, 40, 41], vec![8u32, 2], vec![100u32, 200, 300, 400]];
    let batched =
        run(&model, &Request { prompts: prompts.clone(), params: greedy(16), stop_ids: vec![], think: None });
    for (i, p) in prompts.iter().enumerate() {
        let alone = run(&model, &Request::group(p.clone(), 1, greedy(16), vec![], None));
        assert_eq!(batched[i].tokens, alone[0].tokens, "row {i}");
    }
}

#[test]
fn same_seed_same_text_and_rows_differ() {
    let model = qwen3_tiny();
    let params = SamplingParams {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        max_new_tokens: 20,
        seed: 42,
        thinking_budget: None,
        ..SamplingParams::default()
    };
    let req = Request::group(vec![1, 2, 3], 6, params.clone(), vec![], None);
    let a = run(&model, &req);
    let b = run(&model, &req);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.tokens, y.tokens);
    }
    // the rows of a group are different samples
    assert!(a.iter().any(|o| o.tokens != a[0].tokens), "a group of 6 gave 6 identical samples");
    // row 0 of a group equals a lone sample with the same seed (its stream is row 0)
    let lone = run(&model, &Request::group(vec![1, 2, 3], 1, params.clone(), vec![], None));
    assert_eq!(lone[0].tokens, a[0].tokens);
    let other =
        run(&model, &Request::group(vec![1, 2, 3], 1, SamplingParams { seed: 43, ..params }, vec![], None));
    assert_ne!(other[0].tokens, a[0].tokens);
}

#[test]
fn stops_on_end_tokens_and_length() {
    let model = qwen3_tiny();
    let free = run(&model, &Request::group(vec![5, 6, 7], 1, greedy(10), vec![], None));
    assert_eq!(free[0].finish, Finish::Length);
    assert_eq!(free[0].tokens.len(), 10);
    // make the 4th greedy token an end token: generation stops before it
    let stop = free[0].tokens[3];
    let first = free[0].tokens.iter().position(|&t| t == stop).unwrap();
    let stopped = run(&model, &Request::group(vec![5, 6, 7], 1, greedy(10), vec![stop], None));
    assert_eq!(stopped[0].finish, Finish::Stop);
    assert_eq!(stopped[0].tokens, free[0].tokens[..first]);
}

#[test]
fn thinking_budget_forces_the_closing_tag() {
    let model = qwen3_tiny();
    let tt = ThinkTokens { open: 483, close: 484 };
    let params = SamplingParams { thinking_budget: Some(5), ..greedy(12) };
    // the prompt opens a think block, as Qwen3.5's template does with thinking on
    let out = run(&model, &Request::group(vec![481, 20, 30, 482, 483], 1, params, vec![], Some(tt)));
    let o = &out[0];
    assert!(o.forced_think_close);
    assert_eq!(o.thinking_tokens, 5);
    assert_eq!(o.tokens[5], 484, "</think> forced right after 5 thinking tokens: {:?}", o.tokens);
    // without an open block no budget applies
    let out = run(
        &model,
        &Request::group(
            vec![481, 20, 30],
            1,
            SamplingParams { thinking_budget: Some(5), ..greedy(12) },
            vec![],
            Some(tt),
        ),
    );
    assert!(!out[0].forced_think_close || out[0].tokens.contains(&483));
}

#[test]
fn streaming_sees_every_token_and_cancel_stops() {
    let model = qwen3_tiny();
    let cancel = AtomicBool::new(false);
    let mut seen = Vec::new();
    let req = Request::group(
        vec![5, 6, 7],
        2,
        SamplingParams { max_new_tokens: 50, seed: 1, ..SamplingParams::default() },
        vec![],
        None,
    );
    let out = generate(
        &model,
        &req,
        &mut |ev| {
            seen.push((ev.row, ev.id));
            if seen.len() == 6 {
                cancel.store(true, Ordering::Relaxed);
            }
        },
        &cancel,
    )
    .unwrap();
    assert_eq!(seen.len(), 6);
    for (r, o) in out.iter().enumerate() {
        assert_eq!(o.finish, Finish::Cancelled);
        let streamed: Vec<u32> = seen.iter().filter(|(row, _)| *row == r).map(|&(_, id)| id).collect();
        assert_eq!(o.tokens, streamed);
    }
}

#[test]
fn both_penalties_are_refused() {
    let model = qwen3_tiny();
    let params = SamplingParams { repetition_penalty: 1.1, presence_penalty: 0.5, ..greedy(4) };
    let err = generate(
        &model,
        &Request::group(vec![1], 1, params, vec![], None),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert!(err.to_string().contains("never both"), "{err}");
}
