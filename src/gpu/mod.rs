//! Device statistics for the GPUs view, like nvitop: per NVIDIA device its SM and memory
//! bandwidth utilisation, memory, temperature, power against its cap, clocks, and its compute
//! processes with their host side (user, CPU, memory, command); polled on its own thread
//! about once a second. Where NVML cannot be loaded (no NVIDIA driver) the poller says so
//! once and reports the host's CPU and memory, and its busiest processes, from /proc instead.
//!
//! Sampling is behind `Source`, so tests feed fixed samples and the view never needs a GPU.

mod host;
mod nvml;
pub mod peak;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use host::{parse_meminfo, parse_proc_stat, parse_process_stat, HostReader};
pub use nvml::{memory_probe, nvml_devices, NvmlSource};

/// One NVIDIA device at one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeviceStats {
    pub index: u32,
    pub name: String,
    /// Percent of the last sample period a kernel ran (NVML's "gpu" utilisation; SM busy).
    pub util_percent: u32,
    /// Percent of the last sample period device memory was read or written (bandwidth busy).
    pub mem_util_percent: Option<u32>,
    pub mem_used_bytes: u64,
    pub mem_total_bytes: u64,
    pub temperature_c: Option<u32>,
    pub power_watts: Option<f64>,
    /// The enforced power cap.
    pub power_limit_watts: Option<f64>,
    pub sm_clock_mhz: Option<u32>,
    pub mem_clock_mhz: Option<u32>,
    /// Compute processes on this device.
    pub processes: Vec<GpuProcess>,
}

/// A compute process on a device, with what the host knows of it.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuProcess {
    pub pid: u32,
    /// Device memory it holds (None where the driver does not say, as in containers).
    pub gpu_mem_bytes: Option<u64>,
    /// Its share of the device's SM time over the last sample period, percent.
    pub sm_percent: Option<u32>,
    /// From /proc (None when the pid is not visible here: another container).
    pub host: Option<ProcessStats>,
}

/// A host process at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessStats {
    pub pid: u32,
    pub user: String,
    /// CPU time over the last sample period, percent of one core (top's convention: a
    /// process busy on 4 cores reads 400).
    pub cpu_percent: f64,
    /// Resident memory.
    pub mem_bytes: u64,
    /// The command line (arguments joined by spaces).
    pub command: String,
}

/// The host at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HostStats {
    /// Busy share of all cores since the previous sample, 0..=100.
    pub cpu_percent: f64,
    pub cores: usize,
    pub mem_used_bytes: u64,
    pub mem_total_bytes: u64,
    /// The busiest processes (by CPU over the last period), busiest first.
    pub processes: Vec<ProcessStats>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    Devices(Vec<DeviceStats>),
    /// No NVML: why, and the host instead.
    Host {
        why: String,
        host: HostStats,
    },
}

/// Where samples come from: NVML with the host as its fallback (`NvmlSource`), or a test's
/// fixed readings.
pub trait Source: Send {
    fn sample(&mut self) -> Sample;
}

/// Polls NVML (or the host) every `period` on a new thread and hands each sample to `sink`
/// until `stop` is set or `sink` returns false (its receiver is gone).
pub fn spawn_poller(
    period: Duration,
    stop: Arc<AtomicBool>,
    sink: impl FnMut(Sample) -> bool + Send + 'static,
) -> JoinHandle<()> {
    spawn_poller_with(move || Box::new(NvmlSource::new()), period, stop, sink)
}

/// `spawn_poller` with the source made by `source` on the poller's thread (NVML's handle
/// stays on the thread that opened it).
pub fn spawn_poller_with(
    source: impl FnOnce() -> Box<dyn Source> + Send + 'static,
    period: Duration,
    stop: Arc<AtomicBool>,
    mut sink: impl FnMut(Sample) -> bool + Send + 'static,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("gpu-poller".into())
        .spawn(move || {
            let mut source = source();
            while !stop.load(Ordering::Relaxed) {
                if !sink(source.sample()) {
                    return;
                }
                // sleep in short slices so a stop is seen quickly
                let mut slept = Duration::ZERO;
                while slept < period && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                    slept += Duration::from_millis(50);
                }
            }
        })
        .expect("spawning a thread")
}
