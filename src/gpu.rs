//! Device statistics for the GPUs view: NVML per NVIDIA device (utilisation, memory,
//! temperature, power, clocks, per-process memory), polled on its own thread about once a
//! second. Where NVML cannot be loaded (no NVIDIA driver) the poller says so once and reports
//! the host's CPU and memory from /proc instead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::Nvml;

/// One NVIDIA device at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceStats {
    pub index: u32,
    pub name: String,
    /// Percent of the last sample period a kernel ran.
    pub util_percent: u32,
    pub mem_used_bytes: u64,
    pub mem_total_bytes: u64,
    pub temperature_c: Option<u32>,
    pub power_watts: Option<f64>,
    pub sm_clock_mhz: Option<u32>,
    pub mem_clock_mhz: Option<u32>,
    /// (pid, bytes of device memory) of compute processes.
    pub processes: Vec<(u32, u64)>,
}

/// The host at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HostStats {
    /// Busy share of all cores since the previous sample, 0..=100.
    pub cpu_percent: f64,
    pub cores: usize,
    pub mem_used_bytes: u64,
    pub mem_total_bytes: u64,
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

/// Polls every `period` on a new thread and hands each sample to `sink` until `stop` is set
/// or `sink` returns false (its receiver is gone).
pub fn spawn_poller(
    period: Duration,
    stop: Arc<AtomicBool>,
    mut sink: impl FnMut(Sample) -> bool + Send + 'static,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("gpu-poller".into())
        .spawn(move || {
            let nvml = Nvml::init().map_err(|e| format!("NVML is not available ({e}): no NVIDIA driver?"));
            let mut cpu = CpuCounter::default();
            while !stop.load(Ordering::Relaxed) {
                let sample = match &nvml {
                    Ok(nvml) => match devices(nvml) {
                        Ok(d) => Sample::Devices(d),
                        Err(e) => Sample::Host { why: format!("NVML failed: {e}"), host: host(&mut cpu) },
                    },
                    Err(why) => Sample::Host { why: why.clone(), host: host(&mut cpu) },
                };
                if !sink(sample) {
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

/// Every NVIDIA device now, or None where NVML cannot be loaded or fails.
pub fn nvml_devices() -> Option<Vec<DeviceStats>> {
    devices(&Nvml::init().ok()?).ok()
}

fn devices(nvml: &Nvml) -> Result<Vec<DeviceStats>, nvml_wrapper::error::NvmlError> {
    let mut out = Vec::new();
    for index in 0..nvml.device_count()? {
        let d = nvml.device_by_index(index)?;
        let mem = d.memory_info()?;
        out.push(DeviceStats {
            index,
            name: d.name().unwrap_or_else(|_| format!("GPU {index}")),
            util_percent: d.utilization_rates().map_or(0, |u| u.gpu),
            mem_used_bytes: mem.used,
            mem_total_bytes: mem.total,
            temperature_c: d.temperature(TemperatureSensor::Gpu).ok(),
            // NVML reports milliwatts
            power_watts: d.power_usage().ok().map(|mw| mw as f64 / 1000.0),
            sm_clock_mhz: d.clock_info(Clock::SM).ok(),
            mem_clock_mhz: d.clock_info(Clock::Memory).ok(),
            processes: d
                .running_compute_processes()
                .unwrap_or_default()
                .into_iter()
                .map(|p| {
                    let bytes = match p.used_gpu_memory {
                        UsedGpuMemory::Used(b) => b,
                        UsedGpuMemory::Unavailable => 0,
                    };
                    (p.pid, bytes)
                })
                .collect(),
        });
    }
    Ok(out)
}

/// Busy and total jiffies from the previous /proc/stat reading.
#[derive(Default)]
struct CpuCounter {
    last: Option<(u64, u64)>,
}

fn host(cpu: &mut CpuCounter) -> HostStats {
    let now = std::fs::read_to_string("/proc/stat").ok().and_then(|s| parse_proc_stat(&s));
    let cpu_percent = match (cpu.last, now) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => 100.0 * (b1 - b0) as f64 / (t1 - t0) as f64,
        _ => 0.0,
    };
    cpu.last = now.or(cpu.last);
    let (mem_total_bytes, mem_used_bytes) =
        std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| parse_meminfo(&s)).unwrap_or((0, 0));
    HostStats {
        cpu_percent,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mem_used_bytes,
        mem_total_bytes,
    }
}

/// (busy, total) jiffies from the aggregate `cpu` line of /proc/stat.
pub fn parse_proc_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().sum();
    // idle + iowait are not busy
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// (total, used) bytes from /proc/meminfo; used = MemTotal − MemAvailable.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let kib = |key: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let total = kib("MemTotal:")?;
    let available = kib("MemAvailable:")?;
    Some((total * 1024, total.saturating_sub(available) * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_counts_idle_and_iowait_as_not_busy() {
        let (busy, total) = parse_proc_stat("cpu  10 2 3 80 5 0 0 0 0 0\ncpu0 1 1 1 1 1\n").unwrap();
        assert_eq!((busy, total), (15, 100));
    }

    #[test]
    fn meminfo_used_is_total_minus_available() {
        let text = "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    600 kB\n";
        assert_eq!(parse_meminfo(text), Some((1000 * 1024, 400 * 1024)));
    }
}
