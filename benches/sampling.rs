//! `cargo bench --bench sampling`: the cost of turning a decode step's logits into tokens,
//! per row and for a group, with the settings generation uses: greedy, training's (top-k
//! 20, top-p 0.95, repetition penalty 1.10) and validation's (no top-k, top-p 0.95,
//! repetition penalty 1.10); at the 15M llama's vocabulary (32000) and Qwen3's (151936).
//!
//! Logits are normal with a standard deviation of 1 (an untrained model's flat rows, where
//! top-p keeps thousands of tokens) or 3 (a trained model's peaked ones); each row has seen
//! 400 distinct tokens (a story's), which the penalties touch. A group's rows are drawn as
//! generation draws them, spread across the decode pool's threads (`[THREADS]`, default all
//! cores). Microseconds, fastest and median of the repeats, because shared machines are
//! noisy.

mod common;

use candle_core::{Device, Tensor};
use polaris::generate::sampler::{
    apply_penalties, argmax_rows, sample, sample_rows, Draw, SamplingParams, Seen,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

const REPEATS: usize = 50;
const GROUP: usize = 6;
const SEEN: usize = 400;

fn main() {
    let threads = common::threads_from_args();
    println!(
        "one decode step's draws, {GROUP} rows, {threads} thread(s); µs, fastest and median of {REPEATS}"
    );
    println!("| vocabulary | logits sd | settings | one row fastest | one row median | group fastest | group median |");
    println!("|---:|---:|---|---:|---:|---:|---:|");
    let settings = [
        (
            "greedy",
            SamplingParams { temperature: 0.0, repetition_penalty: 1.0, ..SamplingParams::training() },
        ),
        ("training", SamplingParams::training()),
        ("validation", SamplingParams::validation()),
    ];
    for vocab in [32000usize, 151936] {
        for sd in [1.0f32, 3.0] {
            let mut rng = ChaCha8Rng::seed_from_u64(vocab as u64);
            let normal = Normal::new(0.0, sd).expect("a normal");
            let data: Vec<f32> = (0..GROUP * vocab).map(|_| normal.sample(&mut rng)).collect();
            let logits = Tensor::from_vec(data.clone(), (GROUP, vocab), &Device::Cpu).expect("logits");
            let seen: Vec<Seen> = (0..GROUP)
                .map(|_| {
                    let mut s = Seen::new(vocab);
                    while s.ids().len() < SEEN {
                        s.insert(rng.random_range(0..vocab as u32));
                    }
                    s
                })
                .collect();
            for (name, params) in &settings {
                let mut rngs: Vec<ChaCha8Rng> = (0..GROUP as u64).map(ChaCha8Rng::seed_from_u64).collect();
                let mut scratch = Vec::with_capacity(vocab);
                let one = common::time(REPEATS, || {
                    let row = &data[..vocab];
                    if params.temperature == 0.0 {
                        std::hint::black_box(sample(row, params, &mut rngs[0]));
                        return;
                    }
                    scratch.clear();
                    scratch.extend_from_slice(row);
                    apply_penalties(&mut scratch, params, &seen[0], &seen[0]);
                    std::hint::black_box(sample(&scratch, params, &mut rngs[0]));
                });
                // the group as generation draws it: rows across the decode pool's threads
                let group = common::time(REPEATS, || {
                    if params.temperature == 0.0 {
                        std::hint::black_box(argmax_rows(&logits).expect("argmax"));
                        return;
                    }
                    let mut draws: Vec<Option<Draw>> = rngs
                        .iter_mut()
                        .zip(&seen)
                        .map(|(rng, s)| Some(Draw { rng, context: s, generated: s }))
                        .collect();
                    std::hint::black_box(sample_rows(&logits, params, &mut draws).expect("draws"));
                });
                println!(
                    "| {vocab} | {sd} | {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
                    one.0, one.1, group.0, group.1
                );
            }
        }
    }
}
