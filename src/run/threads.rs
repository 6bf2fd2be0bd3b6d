//! How the process's CPU threads share the cores.
//!
//! candle runs its elementwise ops on a pool of its own (a spinning barrier pool of
//! CANDLE_NUM_THREADS - 1 workers), beside rayon's pool, which runs gemm and this project's
//! kernels. With both the size of the machine, the two contend: after each op the idle
//! pool's threads spin, and the caller spins at candle's barrier until a descheduled worker
//! comes back. The elementwise ops left on the training path are the gradient sums candle's
//! autograd makes (memory-bound: a second thread adds little), so they run on the calling
//! thread, and rayon keeps every core for the compute. Measured on 2 cores, tiny model, 4096
//! tokens: with other work on the machine 0.83x the wall time (paired, 5 runs), CPU time
//! 0.81x; on a quiet machine 1.04x (the sums lose their second thread). Only machines of at
//! most 2 cores get this: there the pool is one worker against rayon's two threads; on
//! larger ones candle's pool spreads the sums over many cores and was not measured here.

/// Sets CANDLE_NUM_THREADS=1 (no elementwise pool) on machines of at most 2 cores, unless the
/// user set it. Call before any other thread starts (first thing in main).
pub fn one_elementwise_pool() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores <= 2 && std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}
