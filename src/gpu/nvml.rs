//! NVML as a `Source` (with the host as its fallback), and the memory probe the run's alert
//! rules read after each step.

use std::collections::HashMap;

use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;

use super::host::HostReader;
use super::{DeviceStats, GpuProcess, Sample, Source};
use crate::run::alerts::{DeviceMemory, MemoryProbe};

pub struct NvmlSource {
    nvml: Result<Nvml, String>,
    host: HostReader,
    /// Per device, the newest per-process utilisation timestamp seen (NVML returns the
    /// samples after it).
    last_seen: HashMap<u32, u64>,
}

impl NvmlSource {
    pub fn new() -> Self {
        Self { nvml: open(), host: HostReader::default(), last_seen: HashMap::new() }
    }
}

impl Default for NvmlSource {
    fn default() -> Self {
        Self::new()
    }
}

fn open() -> Result<Nvml, String> {
    Nvml::init().map_err(|e| format!("NVML is not available ({e}): no NVIDIA driver?"))
}

impl Source for NvmlSource {
    fn sample(&mut self) -> Sample {
        // the host is read every time: per-process CPU shares are differences between readings
        let host = self.host.host();
        match &self.nvml {
            Ok(nvml) => match devices(nvml, &mut self.last_seen) {
                Ok(mut d) => {
                    for p in d.iter_mut().flat_map(|d| d.processes.iter_mut()) {
                        p.host = self.host.process(p.pid);
                    }
                    Sample::Devices(d)
                }
                Err(e) => Sample::Host { why: format!("NVML failed: {e}"), host },
            },
            Err(why) => Sample::Host { why: why.clone(), host },
        }
    }
}

/// Every NVIDIA device now, or None where NVML cannot be loaded or fails.
pub fn nvml_devices() -> Option<Vec<DeviceStats>> {
    devices(&Nvml::init().ok()?, &mut HashMap::new()).ok()
}

fn devices(nvml: &Nvml, last_seen: &mut HashMap<u32, u64>) -> Result<Vec<DeviceStats>, NvmlError> {
    let mut out = Vec::new();
    for index in 0..nvml.device_count()? {
        let d = nvml.device_by_index(index)?;
        let mem = d.memory_info()?;
        let util = d.utilization_rates().ok();
        // per-process SM shares since the last reading (absent on some boards and drivers)
        let since = last_seen.get(&index).copied();
        let shares = d.process_utilization_stats(since).unwrap_or_default();
        if let Some(newest) = shares.iter().map(|s| s.timestamp).max() {
            last_seen.insert(index, newest);
        }
        let processes = d
            .running_compute_processes()
            .unwrap_or_default()
            .into_iter()
            .map(|p| GpuProcess {
                pid: p.pid,
                gpu_mem_bytes: match p.used_gpu_memory {
                    UsedGpuMemory::Used(b) => Some(b),
                    UsedGpuMemory::Unavailable => None,
                },
                sm_percent: shares.iter().filter(|s| s.pid == p.pid).map(|s| s.sm_util).max(),
                host: None,
            })
            .collect();
        out.push(DeviceStats {
            index,
            name: d.name().unwrap_or_else(|_| format!("GPU {index}")),
            util_percent: util.as_ref().map_or(0, |u| u.gpu),
            mem_util_percent: util.map(|u| u.memory),
            mem_used_bytes: mem.used,
            mem_total_bytes: mem.total,
            temperature_c: d.temperature(TemperatureSensor::Gpu).ok(),
            // NVML reports milliwatts
            power_watts: d.power_usage().ok().map(|mw| mw as f64 / 1000.0),
            power_limit_watts: d.enforced_power_limit().ok().map(|mw| mw as f64 / 1000.0),
            sm_clock_mhz: d.clock_info(Clock::SM).ok(),
            mem_clock_mhz: d.clock_info(Clock::Memory).ok(),
            processes,
        });
    }
    Ok(out)
}

/// Reads the memory of a run's devices (`run.devices`: `cuda:0,cuda:1` through NVML, CPU
/// workers as the host's memory from /proc/meminfo). A GPU NVML cannot read is left out
/// (said once in the log by whoever calls this first: here, nothing is said).
pub fn memory_probe(devices: &str) -> MemoryProbe {
    let cuda: Vec<u32> =
        devices.split(',').filter_map(|d| d.trim().strip_prefix("cuda:")?.parse().ok()).collect();
    let nvml = if cuda.is_empty() { None } else { Nvml::init().ok() };
    Box::new(move || {
        if cuda.is_empty() {
            let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
            return super::host::parse_meminfo(&text)
                .map(|(total, used)| DeviceMemory {
                    device: "host".into(),
                    used_bytes: used,
                    total_bytes: total,
                })
                .into_iter()
                .collect();
        }
        let Some(nvml) = &nvml else { return vec![] };
        cuda.iter()
            .filter_map(|&i| {
                let m = nvml.device_by_index(i).ok()?.memory_info().ok()?;
                Some(DeviceMemory { device: format!("cuda:{i}"), used_bytes: m.used, total_bytes: m.total })
            })
            .collect()
    })
}
