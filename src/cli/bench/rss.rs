//! This process's resident memory as the kernel counts it (/proc/self/status), bytes: what
//! every memory column of the benchmarks reads.

use anyhow::{Context, Result};

use crate::plan::available::meminfo_field;

/// A `Vm...` field of /proc/self/status (`VmRSS`, `VmHWM`), bytes.
pub fn status(field: &str) -> Result<u64> {
    let text = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    meminfo_field(&text, field).with_context(|| format!("no {field} in /proc/self/status"))
}

/// The peak resident memory since the start or the last `reset_peak` (VmHWM).
pub fn peak() -> Result<u64> {
    status("VmHWM")
}

/// Resets the peak mark to the current resident memory (Linux `clear_refs` 5) and returns it.
pub fn reset_peak() -> Result<u64> {
    std::fs::write("/proc/self/clear_refs", "5").context("resetting the peak RSS (/proc/self/clear_refs)")?;
    peak()
}
