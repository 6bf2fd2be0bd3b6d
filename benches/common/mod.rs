//! What the table-printing benches share.

use std::time::Instant;

/// (fastest, median) µs of `repeats` calls of `f`, after 5 unmeasured ones (fastest,
/// because shared machines are noisy).
pub fn time(repeats: usize, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..5 {
        f();
    }
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[0], times[repeats / 2])
}

/// The thread count a bench's first numeric argument asks for (default: every core), set
/// as rayon's, which sizes the decode pool.
pub fn threads_from_args() -> usize {
    let threads: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().expect("the first rayon pool");
    threads
}
