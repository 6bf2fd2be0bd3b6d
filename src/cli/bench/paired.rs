//! `bench generate --paired`: one stream and a group decoded by turns in one process, a
//! block of steps each, so both see the same phases of a shared machine's memory. Timed
//! in separate processes, a ratio mixes phases: on the 2-core VM this was built on, one
//! stream's speed swung 2x within seconds (200-1000 tokens/s), and a pair of runs taken a
//! few seconds apart could straddle a swing.

use std::path::Path;
use std::time::Instant;

use anyhow::{ensure, Result};
use candle_core::{DType, Device, Tensor};

use super::generate::bos;
use crate::eval::stats::winrate::percentile;
use crate::generate::sampler::argmax_rows;
use crate::model::{Cache, Kernels, LoadOptions, Model};

/// Steps of one kind between turns: long enough that the turn's first step (whose caches
/// the other kind left cold) is a small share, short (~20 ms) against a memory phase.
const BLOCK: usize = 10;

/// One kind's sequences: greedy decode of `rows` rows from BOS, restarted after `tokens`
/// (`measure_ours` times one such sequence).
pub(super) struct Stream<'a> {
    model: &'a Model,
    rows: usize,
    tokens: usize,
    cache: Cache,
    logits: Tensor,
    done: usize,
}

impl<'a> Stream<'a> {
    pub(super) fn new(model: &'a Model, rows: usize, tokens: usize) -> Result<Self> {
        let (cache, logits) = Self::start(model, rows)?;
        Ok(Self { model, rows, tokens, cache, logits, done: 0 })
    }

    /// A fresh cache with BOS prefilled (untimed: like run.c, the clock starts after BOS).
    fn start(model: &Model, rows: usize) -> Result<(Cache, Tensor)> {
        let ids = Tensor::new(&[bos(model.config())], &Device::Cpu)?.repeat((rows, 1))?; // [B, 1]
        let mut cache = model.new_cache(vec![0; rows]);
        let logits = model.forward_cached(&ids, &mut cache, Kernels::Fused)?;
        Ok((cache, logits))
    }

    /// Seconds of `steps` greedy steps, restarting the sequences (untimed) when they reach
    /// `tokens`.
    pub(super) fn run(&mut self, steps: usize) -> Result<f64> {
        let mut secs = 0.0;
        for _ in 0..steps {
            if self.done == self.tokens {
                (self.cache, self.logits) = Self::start(self.model, self.rows)?;
                self.done = 0;
            }
            let started = Instant::now();
            let next = argmax_rows(&self.logits)?;
            let ids = Tensor::from_vec(next, (self.rows, 1), &Device::Cpu)?;
            self.logits = self.model.forward_cached(&ids, &mut self.cache, Kernels::Fused)?;
            secs += started.elapsed().as_secs_f64();
            self.done += 1;
        }
        Ok(secs)
    }
}

/// One window: tokens/s of one stream and of the group over the same stretch of time, each
/// decoding one whole sequence (positions 1..=tokens: a window of early positions alone would
/// be faster for both, and its ratio higher, as attention grows with the position).
struct Window {
    single: f64,
    group: f64,
}

impl Window {
    fn ratio(&self) -> f64 {
        self.group / self.single
    }
}

/// Decodes `windows` windows and prints each, then the ratio over all of them, its
/// median, and its median over the quarter of windows where one stream ran fastest (the
/// machine's fastest memory, where the group's arithmetic is the limit).
pub fn run(dir: &Path, name: &str, group: usize, tokens: usize, windows: usize) -> Result<()> {
    ensure!(
        group >= 1 && tokens >= 1 && windows >= 1,
        "--paired needs --group, --tokens and --windows of 1 or more"
    );
    let model = Model::load_dir(dir, &LoadOptions::new(DType::F32, Device::Cpu))?;
    println!(
        "{name}: one stream and a group of {group} by turns of {BLOCK} steps; a window is one sequence of {tokens} tokens each"
    );
    println!("| window | one stream tokens/s | group tokens/s | group / one |");
    println!("|---:|---:|---:|---:|");
    let mut all = measure(&model, group, tokens, windows, &mut |w, window| {
        println!("| {} | {:.0} | {:.0} | {:.2} |", w + 1, window.single, window.group, window.ratio());
    })?;
    // harmonic means: tokens over total seconds
    let n = all.len() as f64;
    let one = n / all.iter().map(|w| 1.0 / w.single).sum::<f64>();
    let many = n / all.iter().map(|w| 1.0 / w.group).sum::<f64>();
    println!();
    println!(
        "{name}: over all windows one stream {one:.0} tokens/s, a group of {group} {many:.0}: {:.2}x",
        many / one
    );
    println!("{}", summary(&mut all));
    Ok(())
}

/// The windows, each one sequence of `tokens` steps of each kind by turns; `each` sees
/// every window as it ends.
fn measure(
    model: &Model,
    group: usize,
    tokens: usize,
    windows: usize,
    each: &mut dyn FnMut(usize, &Window),
) -> Result<Vec<Window>> {
    let mut single = Stream::new(model, 1, tokens)?;
    let mut many = Stream::new(model, group, tokens)?;
    let mut all = Vec::new();
    for w in 0..windows {
        let (mut s, mut g) = (0.0, 0.0);
        let mut left = tokens;
        while left > 0 {
            let turn = left.min(BLOCK);
            s += single.run(turn)?;
            g += many.run(turn)?;
            left -= turn;
        }
        let window = Window { single: tokens as f64 / s, group: (tokens * group) as f64 / g };
        each(w, &window);
        all.push(window);
    }
    Ok(all)
}

/// The windows' median ratio, and their median ratio over the quarter (at least one) where
/// one stream ran fastest.
fn summary(windows: &mut [Window]) -> String {
    let median = |r: &mut Vec<f64>| {
        r.sort_by(f64::total_cmp);
        percentile(r, 50.0)
    };
    let all = median(&mut windows.iter().map(Window::ratio).collect());
    windows.sort_by(|a, b| b.single.total_cmp(&a.single));
    let fast = &windows[..windows.len().div_ceil(4)];
    let fast_ratio = median(&mut fast.iter().map(Window::ratio).collect());
    let slowest_fast = fast.last().map_or(0.0, |w| w.single);
    format!(
        "median window: {all:.2}x; median of the fastest quarter ({} windows, one stream at {slowest_fast:.0} tokens/s or more): {fast_ratio:.2}x",
        fast.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_decode_whole_sequences_by_turns() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/models/stories260K-hf");
        let model = Model::load_dir(&dir, &LoadOptions::new(DType::F32, Device::Cpu)).unwrap();
        // 13 tokens: turns of 10 and 3, and each window restarts both kinds' sequences
        let mut seen = Vec::new();
        let windows = measure(&model, 3, 13, 3, &mut |w, _| seen.push(w)).unwrap();
        assert_eq!(seen, [0, 1, 2]);
        assert_eq!(windows.len(), 3);
        for w in &windows {
            assert!(w.single.is_finite() && w.single > 0.0 && w.group.is_finite() && w.group > 0.0);
        }
        let mut stream = Stream::new(&model, 2, 13).unwrap();
        stream.run(13).unwrap();
        assert_eq!(stream.done, 13);
        stream.run(1).unwrap();
        assert_eq!(stream.done, 1, "the sequences restart after 13 tokens");
    }

    #[test]
    fn the_fast_quarter_is_chosen_by_the_single_streams_speed() {
        // ratios 4, 3, 5, 2 at single speeds 500, 900, 600, 1000: the fastest quarter is
        // the window at 1000 (ratio 2); the median of [2, 3, 4, 5] is 3.5
        let mut w = vec![
            Window { single: 500.0, group: 2000.0 },
            Window { single: 900.0, group: 2700.0 },
            Window { single: 600.0, group: 3000.0 },
            Window { single: 1000.0, group: 2000.0 },
        ];
        let text = summary(&mut w);
        assert!(text.starts_with("median window: 3.50x;"), "{text}");
        assert!(
            text.contains("fastest quarter (1 windows, one stream at 1000 tokens/s or more): 2.00x"),
            "{text}"
        );

        // five windows: the fastest quarter is two (1000 and 900: ratios 2 and 3, median
        // 2.5); the median of five ratios is the middle one
        w.push(Window { single: 700.0, group: 4200.0 });
        let text = summary(&mut w);
        assert!(text.starts_with("median window: 4.00x;"), "{text}");
        assert!(
            text.contains("fastest quarter (2 windows, one stream at 900 tokens/s or more): 2.50x"),
            "{text}"
        );
    }

    #[test]
    fn an_empty_group_is_an_error_not_a_panic() {
        let err = run(Path::new("/nonexistent"), "x", 0, 10, 1).unwrap_err();
        assert!(err.to_string().contains("--group"), "{err}");
    }
}
