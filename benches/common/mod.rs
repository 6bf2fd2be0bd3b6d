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
