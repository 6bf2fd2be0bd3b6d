//! The threads a decode step splits its work across (`small_matmul`'s products, the decode
//! attention's (row, head) pairs): the calling thread and `threads - 1` helpers that spin
//! between splits.
//!
//! A decode step of the 15M llama makes 43 products (7 a layer, then the head), most of
//! them tens of microseconds. Handed to rayon, a split cost a sleep and a wake-up (a futex,
//! 5-20 µs on a VM) whenever the pool's threads had gone to sleep between products, and the
//! pool's N threads plus the caller shared N cores: splitting the layers' products slowed a
//! group of 6 (1747 -> 1493 tokens/s, 12.9K context switches in 200 steps). Here the helpers
//! watch one word for the next job while a decode runs and park only after `SPIN` without
//! one, so `--threads N` means N busy threads and a split costs a cache line's round trip.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::OnceLock;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long a helper spins without a job before it parks. A decode step's gaps between
/// splits (norms, attention, sampling) are far shorter; a finished decode leaves the
/// helpers' cores busy this long.
const SPIN: Duration = Duration::from_millis(2);

/// How long after two threads' splits met the splits run inline. Data-parallel CPU
/// workers (`cpu:2` on 2 cores) each decode their rollouts: with a helper spinning beside
/// them, 3 threads shared 2 cores and a step's rollouts took 2.6-3.1 s against 2.6-2.8
/// through rayon; inline while contended, 2.3 s (tiny model, 2 prompts x 6, real stories).
const CONTENDED: Duration = Duration::from_millis(50);

/// The job word: generation (high 32 bits), next unclaimed part (16 bits), parts (16 bits).
fn pack(generation: u64, next: u64, parts: u64) -> u64 {
    generation << 32 | next << 16 | parts
}

fn unpack(state: u64) -> (u64, u64, u64) {
    (state >> 32, state >> 16 & 0xffff, state & 0xffff)
}

type Part<'a> = &'a (dyn Fn(usize) + Sync);

/// A buffer the parts of a split write through, each at its own places (the caller's
/// promise: no two parts touch the same element).
pub struct Disjoint<T>(*mut T);

// by hand: derived, they would ask T to be Copy, and a pointer is copied whatever it points at
impl<T> Clone for Disjoint<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Disjoint<T> {}

// SAFETY: parts write disjoint elements, so sharing the pointer across threads races on
// nothing (the promise `Disjoint::new` documents).
unsafe impl<T> Send for Disjoint<T> {}
unsafe impl<T> Sync for Disjoint<T> {}

impl<T> Disjoint<T> {
    /// `buf` for parts that write disjoint elements of it.
    pub fn new(buf: &mut [T]) -> Self {
        Self(buf.as_mut_ptr())
    }

    /// The buffer that starts at `ptr` (the caller's promise as in `new`, and that the
    /// parts write only within it).
    pub fn from_ptr(ptr: *mut T) -> Self {
        Self(ptr)
    }

    /// The buffer's first element (a method, so a closure captures the whole `Disjoint`).
    pub fn get(self) -> *mut T {
        self.0
    }
}

struct Team {
    /// The current job (`pack`). A part is claimed by bumping `next` in a compare-exchange
    /// that also checks the generation, so a helper holding an old job's function claims
    /// nothing of a new one.
    state: AtomicU64,
    /// The job's function: a `Part` on the splitting thread's stack, which stays valid
    /// while a part is unfinished (`split` returns only when all are done).
    job: AtomicPtr<Part<'static>>,
    /// Parts of the current job finished, and whether one of them panicked.
    done: AtomicUsize,
    panicked: AtomicBool,
    /// Set by a helper before it parks; the splitting thread then wakes them all.
    asleep: AtomicBool,
    /// One split at a time (data-parallel workers decode at once: the others run inline).
    busy: AtomicBool,
    /// When a split last found the team busy (ms since `epoch`): another thread decodes
    /// too, so the cores have work without the helpers, which then park at once, and splits
    /// run inline for `CONTENDED`.
    contended_at: AtomicU64,
    epoch: Instant,
    helpers: OnceLock<Vec<Thread>>,
}

/// The team, built on first use with rayon's thread count less one; none on one thread.
fn team() -> Option<&'static Team> {
    static TEAM: OnceLock<Option<&'static Team>> = OnceLock::new();
    *TEAM.get_or_init(|| {
        let count = rayon::current_num_threads().saturating_sub(1);
        if count == 0 {
            return None;
        }
        // lives as long as the process, as its helper threads do
        let team: &'static Team = Box::leak(Box::new(Team {
            state: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            asleep: AtomicBool::new(false),
            busy: AtomicBool::new(false),
            contended_at: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
            helpers: OnceLock::new(),
        }));
        let helpers: Vec<Thread> = (0..count)
            .map_while(|i| {
                let spawned =
                    thread::Builder::new().name(format!("polaris-decode-{i}")).spawn(move || help(team));
                spawned.ok().map(|handle| handle.thread().clone())
            })
            .collect();
        let some = !helpers.is_empty();
        let _ = team.helpers.set(helpers);
        some.then_some(team)
    })
}

/// Threads a split runs on: the caller and its helpers.
pub fn threads() -> usize {
    team().map_or(1, |team| team.helpers().len() + 1)
}

impl Team {
    fn helpers(&self) -> &[Thread] {
        self.helpers.get().map_or(&[], Vec::as_slice)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether a split found the team busy in the last `CONTENDED`.
    fn contended(&self) -> bool {
        let at = self.contended_at.load(SeqCst);
        at != u64::MAX && self.now_ms().saturating_sub(at) < CONTENDED.as_millis() as u64
    }

    /// The next part of job `generation`, if one is left.
    fn claim(&self, generation: u64) -> Option<usize> {
        let mut state = self.state.load(SeqCst);
        loop {
            let (g, next, parts) = unpack(state);
            if g != generation || next >= parts {
                return None;
            }
            match self.state.compare_exchange_weak(state, pack(g, next + 1, parts), SeqCst, SeqCst) {
                Ok(_) => return Some(next as usize),
                Err(now) => state = now,
            }
        }
    }

    /// Runs the parts of job `generation` this thread claims; `f` is read from `job` after
    /// a state naming that generation, so it is this job's function or a later one's.
    fn work(&self, generation: u64, f: *const Part<'static>) {
        while let Some(p) = self.claim(generation) {
            // SAFETY: a part of this generation was claimed, so its caller is still waiting
            // in `split` and the function it published (which `f` is: a later job's could
            // not have been published yet) is alive
            let f = unsafe { *f };
            if catch_unwind(AssertUnwindSafe(|| f(p))).is_err() {
                self.panicked.store(true, SeqCst);
            }
            self.done.fetch_add(1, SeqCst);
        }
    }
}

/// Runs part(0..parts), the parts claimed in turn by the calling thread and the helpers,
/// and returns when every part is done (a part's panic is raised here after). All on the
/// caller when there are no helpers, one part, or another split in progress.
pub fn split(parts: usize, part: impl Fn(usize) + Sync) {
    let team = match team() {
        Some(team) if parts > 1 => team,
        _ => return inline(parts, part),
    };
    if team.contended() {
        return inline(parts, part);
    }
    if team.busy.compare_exchange(false, true, SeqCst, SeqCst).is_err() {
        team.contended_at.store(team.now_ms(), SeqCst);
        return inline(parts, part);
    }
    assert!(parts < 1 << 16, "decode_pool::split: {parts} parts");
    let f: Part = &part;
    // SAFETY: the 'static is a lie the helpers cannot act on after this call: they call
    // `f` only for parts they claim of this generation, and we return only once all are
    // done.
    let f: Part<'static> = unsafe { std::mem::transmute::<Part, Part<'static>>(f) };
    team.job.store(&f as *const Part<'static> as *mut Part<'static>, SeqCst);
    team.done.store(0, SeqCst);
    let generation = (unpack(team.state.load(SeqCst)).0 + 1) & 0xffff_ffff;
    team.state.store(pack(generation, 0, parts as u64), SeqCst);
    if team.asleep.swap(false, SeqCst) {
        team.helpers().iter().for_each(Thread::unpark);
    }
    team.work(generation, &f);
    while team.done.load(SeqCst) < parts {
        std::hint::spin_loop();
    }
    let panicked = team.panicked.swap(false, SeqCst);
    team.busy.store(false, SeqCst);
    if panicked {
        resume_unwind(Box::new("a part of a decode split panicked"));
    }
}

/// `split` on the calling thread alone: every part runs, then a part's panic is raised.
fn inline(parts: usize, part: impl Fn(usize)) {
    let mut panicked = None;
    for p in 0..parts {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| part(p))) {
            panicked.get_or_insert(payload);
        }
    }
    if let Some(payload) = panicked {
        resume_unwind(payload);
    }
}

/// A helper: works on each job with parts left; parks after `SPIN` without one.
fn help(team: &'static Team) {
    let mut idle_since = Instant::now();
    let mut polls = 0u32;
    loop {
        let (generation, next, parts) = unpack(team.state.load(SeqCst));
        if next < parts {
            team.work(generation, team.job.load(SeqCst));
            idle_since = Instant::now();
            continue;
        }
        std::hint::spin_loop();
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(1024) && (idle_since.elapsed() > SPIN || team.contended()) {
            team.asleep.store(true, SeqCst);
            // a job published after the store above finds `asleep` set and unparks us; one
            // published before it is seen here
            let (_, next, parts) = unpack(team.state.load(SeqCst));
            if next >= parts {
                thread::park();
            }
            idle_since = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::panic::catch_unwind;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    use super::split;

    /// Runs `splits` splits of `parts` parts, checking each part ran exactly once.
    fn run_splits(splits: usize, parts: usize) {
        let counts: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
        for round in 1..=splits {
            split(parts, |p| {
                counts[p].fetch_add(1, SeqCst);
            });
            // every part done by the time split returns, each once
            assert!(counts.iter().all(|c| c.load(SeqCst) == round), "round {round}");
        }
    }

    #[test]
    fn every_part_runs_once_per_split() {
        run_splits(2000, 2);
        run_splits(300, 37);
        run_splits(10, 1);
        split(0, |_| panic!("no parts to run"));
    }

    #[test]
    fn splits_from_many_threads_at_once_all_finish() {
        // one holds the team, the others run inline
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| run_splits(500, 5));
            }
        });
    }

    #[test]
    fn a_split_inside_a_part_runs_inline() {
        let total = AtomicUsize::new(0);
        split(4, |_| {
            split(3, |_| {
                total.fetch_add(1, SeqCst);
            })
        });
        assert_eq!(total.load(SeqCst), 12);
    }

    #[test]
    fn a_part_that_panics_panics_the_split_and_the_next_split_works() {
        let ran = AtomicUsize::new(0);
        let result = catch_unwind(|| {
            split(8, |p| {
                ran.fetch_add(1, SeqCst);
                assert!(p != 5, "part 5 fails");
            })
        });
        assert!(result.is_err());
        // the other parts still ran: the split waited for all before raising the panic
        assert_eq!(ran.load(SeqCst), 8);
        run_splits(100, 4);
    }
}
