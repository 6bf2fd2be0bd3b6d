//! `cargo bench --bench decode_matmul [-- THREADS]`: the decode step's products y = x Wᵀ
//! (`small_matmul::matmul_rows`) on the 15M llama's shapes, for 1, 2, 6 and 8 rows of x:
//! microseconds per product (fastest and median of 200), GFLOP/s, and how many times the
//! rows of one product a group gets over one row's (the group decode's ceiling: 6 rows at
//! 6.0 would cost no more than one). Fastest, because shared machines are noisy.
//!
//! Each shape has as many matrices as the model (gate and up are two per layer, q/k/v/o
//! four), taken in turn, so the weights come from the last-level cache as in a decode step
//! (one matrix alone would stay in L2); the last table is a whole step's products, every
//! layer then the output head.

mod common;

use polaris::model::small_matmul::matmul_rows;

/// (name, N, K, matrices per layer) of W [N, K]: the 15M llama's layers (dim 288, hidden
/// 768), and its output head (vocabulary 32000), which has no layer.
const SHAPES: [(&str, usize, usize, Option<usize>); 4] = [
    ("output head", 32000, 288, None),
    ("gate / up", 768, 288, Some(2)),
    ("down", 288, 768, Some(1)),
    ("q / k / v / o", 288, 288, Some(4)),
];
const LAYERS: usize = 6;
const ROWS: [usize; 4] = [1, 2, 6, 8];
const REPEATS: usize = 200;

/// A shape's matrices, as many as the model has (layer l's j-th at l x per_layer + j).
struct Shape {
    name: &'static str,
    n: usize,
    k: usize,
    per_layer: Option<usize>,
    mats: Vec<Vec<f32>>,
}

fn main() {
    let threads = common::threads_from_args();
    let shapes: Vec<Shape> = SHAPES
        .iter()
        .enumerate()
        .map(|(s, &(name, n, k, per_layer))| {
            let count = per_layer.map_or(1, |per| per * LAYERS);
            let mats = (0..count).map(|i| pseudo_random(n * k, (s * 100 + i) as u64)).collect();
            Shape { name, n, k, per_layer, mats }
        })
        .collect();

    println!("y = x Wᵀ, f32, {threads} thread(s); µs per product, fastest and median of {REPEATS}");
    println!("| W | rows | fastest µs | median µs | GFLOP/s | rows per one-row time |");
    println!("|---|---:|---:|---:|---:|---:|");
    for shape in &shapes {
        let (n, k) = (shape.n, shape.k);
        let mut one_row = 0.0;
        for m in ROWS {
            let x = pseudo_random(m * k, 99);
            let mut y = vec![0f32; m * n];
            let mut turn = 0;
            let (fastest, median) = common::time(REPEATS, || {
                turn = (turn + 1) % shape.mats.len();
                matmul_rows(&x, &shape.mats[turn], k, &mut y);
                std::hint::black_box(&y);
            });
            if m == 1 {
                one_row = fastest;
            }
            let gflops = 2.0 * (m * n * k) as f64 / fastest / 1e3;
            println!(
                "| {} {n} x {k} | {m} | {fastest:.1} | {median:.1} | {gflops:.1} | {:.2} |",
                shape.name,
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
        let flops: usize = shapes.iter().map(|s| 2 * m * s.n * s.k * s.mats.len()).sum();
        let xs: Vec<Vec<f32>> = shapes.iter().map(|s| pseudo_random(m * s.k, 7)).collect();
        let mut ys: Vec<Vec<f32>> = shapes.iter().map(|s| vec![0f32; m * s.n]).collect();
        let (fastest, median) = common::time(REPEATS, || {
            for l in 0..LAYERS {
                for (s, shape) in shapes.iter().enumerate() {
                    let Some(per) = shape.per_layer else { continue };
                    for w in &shape.mats[l * per..(l + 1) * per] {
                        matmul_rows(&xs[s], w, shape.k, &mut ys[s]);
                    }
                }
            }
            for (s, shape) in shapes.iter().enumerate().filter(|(_, s)| s.per_layer.is_none()) {
                matmul_rows(&xs[s], &shape.mats[0], shape.k, &mut ys[s]);
            }
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
