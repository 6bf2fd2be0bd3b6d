//! The work in progress record (`work.json` in the run directory): the step, what it is
//! doing, each worker's micro-batch (its rows' token lengths), the memory plan's figures and
//! what to change. The trainer keeps it current (once per step and per micro-batch: one small
//! file), so that a run that dies of memory can say where: the allocation failure record
//! (oom.rs, armed from the same figures) or, for a detached run killed outright (the OOM
//! killer's SIGKILL), its supervisor (daemon.rs) reading this file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::dir::RunDir;
use super::event::{Event, EventKind, Level, PROTOCOL_VERSION};
use super::exit::{self, Exit, ExitKind};
use super::oom;

/// Test-only: an absurd allocation at the start of this step's training pass (to provoke a
/// real allocation failure in a child process).
pub const TEST_ALLOCATION_ENV: &str = "POLARIS_TEST_FAIL_ALLOCATION_AT_STEP";

/// Test-only: `STEP` or `STEP:SIGNAL`: the trainer sends itself SIGTERM (or SIGNAL) after
/// this step's sampling has produced `TEST_SIGNAL_TOKENS` tokens: a stop that lands in the
/// middle of generation, every time.
pub const TEST_SIGNAL_ENV: &str = "POLARIS_TEST_SIGNAL_DURING_STEP";
const TEST_SIGNAL_TOKENS: usize = 4;

/// Tokens left before the test's signal (0: none armed), and the signal.
static SIGNAL_COUNTDOWN: AtomicUsize = AtomicUsize::new(0);
static SIGNAL: AtomicUsize = AtomicUsize::new(0);

/// One worker's micro-batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MicroBatch {
    pub worker: usize,
    /// Prompt + response tokens of each row.
    pub rows: Vec<usize>,
}

/// What `work.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub pid: u32,
    /// The step under way (1-based).
    pub step: usize,
    /// `generating` (rollouts) or `training` (forward and backward).
    pub phase: String,
    pub micro_batches: Vec<MicroBatch>,
    /// The plan's one line: predicted peak vs available.
    pub plan: String,
    /// What to change (`--set ...`), and how to continue.
    pub advice: String,
    pub resume: String,
}

impl Record {
    /// The failure message: `cause` (what happened), where, the plan, what to do.
    pub fn message(&self, cause: &str) -> String {
        let mut text = format!("out of memory at step {} while {}: {cause}", self.step, self.phase);
        for m in &self.micro_batches {
            let total: usize = m.rows.iter().sum();
            let rows: Vec<String> = m.rows.iter().map(|r| r.to_string()).collect();
            text.push_str(&format!(
                "; worker {}'s micro-batch: {} rows of {} tokens ({total} tokens)",
                m.worker,
                m.rows.len(),
                rows.join(" + ")
            ));
        }
        text.push_str(&format!(". The memory plan: {}. {} {}", self.plan, self.advice, self.resume));
        text
    }
}

struct State {
    dir: PathBuf,
    record: Record,
    workers: BTreeMap<usize, Vec<usize>>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// The record of a run directory, if it has one.
pub fn read(run_dir: &Path) -> Option<Record> {
    serde_json::from_str(&std::fs::read_to_string(RunDir::at(run_dir).work()).ok()?).ok()
}

/// A run begins in `dir`: from now on this process keeps its record and is armed to report
/// an allocation failure.
pub fn begin(dir: &Path, plan: String, advice: String, resume: String) {
    let record = Record {
        pid: std::process::id(),
        step: 0,
        phase: "starting".into(),
        micro_batches: Vec::new(),
        plan,
        advice,
        resume,
    };
    let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
    *state = Some(State { dir: dir.to_path_buf(), record, workers: BTreeMap::new() });
}

/// The run ended and said how itself: no record to keep.
pub fn end() {
    oom::disarm();
    let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = state.take() {
        let _ = std::fs::remove_file(RunDir::at(&s.dir).work());
    }
}

/// Step `step` begins: sampling and scoring its groups.
pub fn generating(step: usize) {
    let running = update(|s| {
        s.record.step = step;
        s.record.phase = "generating rollouts".into();
        s.workers.clear();
    });
    let Some(at) = running.and(std::env::var(TEST_SIGNAL_ENV).ok()) else { return };
    let (at, signal) = at.split_once(':').unwrap_or((&at, "15"));
    if let (Ok(at), Ok(signal)) = (at.parse::<usize>(), signal.parse::<usize>()) {
        if at == step {
            SIGNAL.store(signal, Ordering::Relaxed);
            SIGNAL_COUNTDOWN.store(TEST_SIGNAL_TOKENS, Ordering::Relaxed);
        }
    }
}

/// A rollout token was sampled (the test's signal counts them; one atomic load otherwise).
pub fn token_sampled() {
    if SIGNAL_COUNTDOWN.load(Ordering::Relaxed) == 0 {
        return;
    }
    if SIGNAL_COUNTDOWN.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)) == Ok(1) {
        // SAFETY: raise has no memory preconditions
        unsafe { libc::raise(SIGNAL.load(Ordering::Relaxed) as i32) };
    }
}

/// Validation samples are being drawn after `step` steps (nothing is trained).
pub fn validating(step: usize) {
    update(|s| {
        s.record.step = step;
        s.record.phase = "validating".into();
        s.workers.clear();
    });
}

/// Worker `worker` starts a forward and backward over rows of these token lengths.
pub fn training(worker: usize, rows: &[usize]) {
    let step = update(|s| {
        s.record.phase = "training".into();
        s.workers.insert(worker, rows.to_vec());
    });
    if let (Some(step), Ok(at)) = (step, std::env::var(TEST_ALLOCATION_ENV)) {
        if at.parse() == Ok(step) {
            // far beyond any machine: the allocator returns null
            let absurd: Vec<u8> = Vec::with_capacity(1 << 46);
            std::hint::black_box(absurd);
        }
    }
}

/// Applies `change`, rewrites work.json and re-arms the failure record; returns the step.
fn update(change: impl FnOnce(&mut State)) -> Option<usize> {
    let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
    let s = state.as_mut()?;
    change(s);
    s.record.micro_batches =
        s.workers.iter().map(|(w, rows)| MicroBatch { worker: *w, rows: rows.clone() }).collect();
    if let Ok(text) = serde_json::to_string_pretty(&s.record) {
        let _ = crate::durable::write_atomic(&RunDir::at(&s.dir).work(), text.as_bytes());
    }
    arm(&s.dir, &s.record);
    Some(s.record.step)
}

/// Renders the allocation failure's exit.json, event and stderr line for `record`.
fn arm(dir: &Path, record: &Record) {
    let mark = char::from(oom::SIZE_MARK).to_string();
    let message = record.message(&format!("an allocation of {mark} bytes failed"));
    let exit = Exit::new(ExitKind::Failed, record.pid, record.step.checked_sub(1), message.clone());
    // serde writes the mark as \u0001: put the raw byte back so the writer finds it
    let raw =
        |s: String| s.replace("\\u0001", &mark).replace("\\u0002", &char::from(oom::SEQ_MARK).to_string());
    let Ok(exit_json) = serde_json::to_string_pretty(&exit) else { return };
    let event = Event {
        v: PROTOCOL_VERSION,
        seq: 0,
        time: exit::now(),
        kind: EventKind::Message { level: Level::Error, text: message.clone() },
    };
    let Ok(line) = serde_json::to_string(&event) else { return };
    let line = line.replacen("\"seq\":0,", &format!("\"seq\":{},", char::from(oom::SEQ_MARK)), 1) + "\n";
    oom::arm(&oom::Pieces {
        exit_path: &RunDir::at(dir).exit().to_string_lossy(),
        events_path: &RunDir::at(dir).events().to_string_lossy(),
        exit_json: &(raw(exit_json) + "\n"),
        event_line: &raw(line),
        stderr: &format!("polaris-tui: {}\n", message.replace('\u{2}', "")),
    });
}
