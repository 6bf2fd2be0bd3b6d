//! `cargo bench --bench decode_matmul [-- THREADS]`: the decode step's products y = x Wᵀ
//! (`small_matmul::matmul_rows`) on the 15M llama's shapes, for 1, 2, 6 and 8 rows of x:
//! microseconds per product (fastest and median of 200), GFLOP/s, and how many times the
//! rows of one product a group gets over one row's (the group decode's ceiling: 6 rows at
//! 6.0 would cost no more than one). Fastest, because shared machines are noisy.
//!
//! Each layer shape has one matrix per layer (6), taken in turn, so the weights come from
//! the last-level cache as in a decode step (one matrix alone would stay in L2); the last
//! table is a whole step's products, every layer then the output head.

use std::time::Instant;

use polaris::model::small_matmul::matmul_rows;

/// (name, N, K) of W [N, K]: the 15M llama (dim 288, hidden 768, vocabulary 32000), and
/// how many a step uses per layer.
const SHAPES: [(&str, usize, usize, usize); 4] = [
    ("output head", 32000, 288, 0),
    ("gate / up", 768, 288, 2),
    ("down", 288, 768, 1),
    ("q / k / v / o", 288, 288, 4),
];
const LAYERS: usize = 6;
const ROWS: [usize; 4] = [1, 2, 6, 8];
const REPEATS: usize = 200;

fn main() {
    let threads: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().expect("the first rayon pool");
    println!("y = x Wᵀ, f32, {threads} thread(s); µs per product, fastest and median of {REPEATS}");
    println!("| W | rows | fastest µs | median µs | GFLOP/s | rows per one-row time |");
    println!("|---|---:|---:|---:|---:|---:|");
    // per shape, its matrices: one per layer (the head: one)
    let weights: Vec<Vec<Vec<f32>>> = SHAPES
        .iter()
        .enumerate()
        .map(|(s, &(_, n, k, per_layer))| {
            let copies = if per_layer == 0 { 1 } else { LAYERS };
            (0..copies).map(|l| pseudo_random(n * k, (s * 10 + l) as u64)).collect()
        })
        .collect();
    for ((name, n, k, _), ws) in SHAPES.iter().zip(&weights) {
        let mut one_row = 0.0;
        for m in ROWS {
            let x = pseudo_random(m * k, 99);
            let mut y = vec![0f32; m * n];
            let mut turn = 0;
            let (fastest, median) = time(|| {
                turn = (turn + 1) % ws.len();
                matmul_rows(&x, &ws[turn], *k, &mut y);
                std::hint::black_box(&y);
            });
            if m == 1 {
                one_row = fastest;
            }
            let gflops = 2.0 * (m * n * k) as f64 / fastest / 1e3;
            println!(
                "| {name} {n} x {k} | {m} | {fastest:.1} | {median:.1} | {gflops:.1} | {:.2} |",
                m as f64 * one_row / fastest
            );
        }
    }
    println!();
    println!("one decode step's products ({LAYERS} layers, then the head)");
    println!("| rows | fastest µs | median µs | GFLOP/s | rows per one-row time |");
    println!("|---:|---:|---:|---:|---:|");
    let mut one_row = 0.0;
    for m in ROWS {
        let flops: usize = SHAPES
            .iter()
            .map(|&(_, n, k, per)| 2 * m * n * k * if per == 0 { 1 } else { per * LAYERS })
            .sum();
        let xs: Vec<Vec<f32>> = SHAPES.iter().map(|&(_, _, k, _)| pseudo_random(m * k, 7)).collect();
        let mut ys: Vec<Vec<f32>> = SHAPES.iter().map(|&(_, n, _, _)| vec![0f32; m * n]).collect();
        #[allow(clippy::needless_range_loop)] // l: the layer, indexing each shape's matrices
        let (fastest, median) = time(|| {
            for l in 0..LAYERS {
                for (s, &(_, _, k, per)) in SHAPES.iter().enumerate().skip(1) {
                    for _ in 0..per {
                        matmul_rows(&xs[s], &weights[s][l], k, &mut ys[s]);
                    }
                }
            }
            matmul_rows(&xs[0], &weights[0][0], SHAPES[0].2, &mut ys[0]);
            std::hint::black_box(&ys);
        });
        if m == 1 {
            one_row = fastest;
        }
        println!(
            "| {m} | {fastest:.0} | {median:.0} | {:.1} | {:.2} |",
            flops as f64 / fastest / 1e3,
            m as f64 * one_row / fastest
        );
    }
}

/// (fastest, median) µs of `REPEATS` calls, after 5 unmeasured ones.
fn time(mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..5 {
        f();
    }
    let mut times: Vec<f64> = (0..REPEATS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[0], times[REPEATS / 2])
}

/// Values in [-1, 1) from a fixed linear congruential sequence (no RNG crate needed).
fn pseudo_random(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}
