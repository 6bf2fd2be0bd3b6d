//! The GPUs view's state: the newest sample, ten minutes of history per series, and which
//! devices and processes are the run's own.

use std::collections::VecDeque;
use std::path::Path;

use crate::gpu::Sample;

/// Samples kept per series: ten minutes at one a second.
pub const GPU_HISTORY: usize = 600;

/// One device's series, in percent, oldest first.
#[derive(Debug, Default, Clone)]
pub struct DeviceHistory {
    pub sm: VecDeque<u64>,
    pub bandwidth: VecDeque<u64>,
    pub memory: VecDeque<u64>,
    /// Power draw against the cap.
    pub power: VecDeque<u64>,
}

#[derive(Debug, Default)]
pub struct GpuState {
    pub last: Option<Sample>,
    pub devices: Vec<DeviceHistory>,
    /// Host CPU and memory percent, when NVML is absent.
    pub cpu: VecDeque<u64>,
    pub host_mem: VecDeque<u64>,
    /// The run's trainer process(es) (`daemon.pid`), marked in the process tables.
    pub own_pids: Vec<u32>,
    /// The run's GPUs (`run.devices` = `cuda:0,cuda:1`), marked on their panels.
    pub own_devices: Vec<u32>,
}

impl GpuState {
    pub fn record(&mut self, sample: Sample) {
        match &sample {
            Sample::Devices(devices) => {
                self.devices.resize_with(devices.len(), Default::default);
                for (h, d) in self.devices.iter_mut().zip(devices) {
                    push_capped(&mut h.sm, d.util_percent as u64);
                    push_capped(&mut h.bandwidth, d.mem_util_percent.unwrap_or(0) as u64);
                    push_capped(&mut h.memory, percent(d.mem_used_bytes as f64, d.mem_total_bytes as f64));
                    let power = match (d.power_watts, d.power_limit_watts) {
                        (Some(w), Some(cap)) => percent(w, cap),
                        _ => 0,
                    };
                    push_capped(&mut h.power, power);
                }
            }
            Sample::Host { host, .. } => {
                push_capped(&mut self.cpu, host.cpu_percent.round() as u64);
                push_capped(
                    &mut self.host_mem,
                    percent(host.mem_used_bytes as f64, host.mem_total_bytes as f64),
                );
            }
        }
        self.last = Some(sample);
    }

    pub fn is_own(&self, pid: u32) -> bool {
        self.own_pids.contains(&pid)
    }
}

fn percent(part: f64, whole: f64) -> u64 {
    if whole > 0.0 {
        (100.0 * part / whole).round().clamp(0.0, 100.0) as u64
    } else {
        0
    }
}

fn push_capped(q: &mut VecDeque<u64>, v: u64) {
    q.push_back(v);
    while q.len() > GPU_HISTORY {
        q.pop_front();
    }
}

/// The GPU indices of a run's `run.devices` in its `config.toml` (none for a CPU run, or a
/// directory without a readable config).
pub fn own_devices(run_dir: &Path) -> Vec<u32> {
    let Ok(text) = std::fs::read_to_string(crate::run::RunDir::at(run_dir).config()) else { return vec![] };
    let Ok(table) = toml::from_str::<toml::Table>(&text) else { return vec![] };
    let devices = table.get("run").and_then(|r| r.get("devices")).and_then(|d| d.as_str()).unwrap_or("");
    devices.split(',').filter_map(|d| d.trim().strip_prefix("cuda:")?.parse().ok()).collect()
}

/// The last `GPU_HISTORY` samples drawn in `width` columns, newest at the right, so the
/// sparkline always spans ten minutes: each column is the highest sample of its slice of the
/// window (a short spike stays seen); columns before the first sample are empty (None).
pub fn fit(data: &VecDeque<u64>, width: usize) -> Vec<Option<u64>> {
    if width == 0 {
        return vec![];
    }
    let missing = GPU_HISTORY.saturating_sub(data.len());
    (0..width)
        .map(|c| {
            // window positions [lo, hi) of column c; position p < missing has no sample
            let lo = c * GPU_HISTORY / width;
            let hi = ((c + 1) * GPU_HISTORY / width).max(lo + 1);
            (lo.max(missing)..hi).filter_map(|p| data.get(p - missing).copied()).max()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_window_is_bucketed_by_maximum() {
        let data: VecDeque<u64> = (0..GPU_HISTORY as u64).map(|i| i % 100).collect();
        let cols = fit(&data, 60);
        assert_eq!(cols.len(), 60);
        // 10 samples a column; column 0 is samples 0..10, column 9 samples 90..100
        assert_eq!(cols[0], Some(9));
        assert_eq!(cols[9], Some(99));
        assert_eq!(cols[59], Some(99));
    }

    #[test]
    fn a_short_history_sits_at_the_right_with_empty_columns_before_it() {
        let data: VecDeque<u64> = [5, 7].into_iter().collect();
        let cols = fit(&data, 600);
        assert!(cols[..598].iter().all(Option::is_none));
        assert_eq!(&cols[598..], &[Some(5), Some(7)]);
        // wider than the window: every column still maps to a sample position
        assert_eq!(fit(&data, 1200).iter().flatten().count(), 4);
    }
}
