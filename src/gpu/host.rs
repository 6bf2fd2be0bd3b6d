//! The host from /proc: CPU busy share, memory, and per process CPU, resident memory, user
//! and command. CPU shares are differences between two readings, so a `HostReader` keeps the
//! previous one.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

use super::{HostStats, ProcessStats};

/// Processes the host panel lists (the busiest).
pub const TOP_PROCESSES: usize = 8;

/// Reads the host; keeps the last jiffies (whole machine and per process) between readings.
#[derive(Default)]
pub struct HostReader {
    /// (busy, total) jiffies of all cores at the last reading.
    last: Option<(u64, u64)>,
    /// The total jiffies elapsed between the last two readings (all cores).
    period: u64,
    /// pid -> (its utime + stime, its share of the last period in percent of one core).
    pids: HashMap<u32, (u64, f64)>,
    users: HashMap<u32, String>,
}

impl HostReader {
    /// The host now, with its busiest processes.
    pub fn host(&mut self) -> HostStats {
        let now = std::fs::read_to_string("/proc/stat").ok().and_then(|s| parse_proc_stat(&s));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpu_percent = match (self.last, now) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                self.period = t1 - t0;
                100.0 * (b1 - b0) as f64 / (t1 - t0) as f64
            }
            _ => 0.0,
        };
        self.last = now.or(self.last);
        self.scan(cores);
        let (mem_total_bytes, mem_used_bytes) =
            std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| parse_meminfo(&s)).unwrap_or((0, 0));
        let mut busy: Vec<(u32, f64)> = self.pids.iter().map(|(p, (_, pct))| (*p, *pct)).collect();
        busy.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let processes = busy.iter().take(TOP_PROCESSES).filter_map(|(pid, _)| self.process(*pid)).collect();
        HostStats { cpu_percent, cores, mem_used_bytes, mem_total_bytes, processes }
    }

    /// Every process's CPU time since the last scan.
    fn scan(&mut self, cores: usize) {
        let Ok(dir) = std::fs::read_dir("/proc") else { return };
        let mut seen = HashMap::new();
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let Some((jiffies, _)) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parse_process_stat(&s))
            else {
                continue;
            };
            let pct = match self.pids.get(&pid) {
                // share of all cores' jiffies, as percent of one core
                Some((before, _)) if self.period > 0 => {
                    100.0 * cores as f64 * jiffies.saturating_sub(*before) as f64 / self.period as f64
                }
                _ => 0.0,
            };
            seen.insert(pid, (jiffies, pct));
        }
        self.pids = seen;
    }

    /// Process `pid` as of the last scan (None: gone, or not visible here).
    pub fn process(&mut self, pid: u32) -> Option<ProcessStats> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (_, rss_pages) = parse_process_stat(&stat)?;
        let uid = std::fs::metadata(format!("/proc/{pid}")).ok()?.uid();
        let user = self.user(uid);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let mut command = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        if command.is_empty() {
            // a kernel thread: its name, as ps shows it
            let name = stat.split_once('(').and_then(|(_, r)| r.rsplit_once(')')).map_or("", |(n, _)| n);
            command = format!("[{name}]");
        }
        // SAFETY: sysconf has no preconditions
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        Some(ProcessStats {
            pid,
            user,
            cpu_percent: self.pids.get(&pid).map_or(0.0, |(_, p)| *p),
            mem_bytes: rss_pages * page,
            command,
        })
    }

    fn user(&mut self, uid: u32) -> String {
        if self.users.is_empty() {
            let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
            for line in passwd.lines() {
                let f: Vec<&str> = line.split(':').collect();
                if let (Some(name), Some(Ok(id))) = (f.first(), f.get(2).map(|x| x.parse::<u32>())) {
                    self.users.insert(id, name.to_string());
                }
            }
        }
        self.users.get(&uid).cloned().unwrap_or_else(|| uid.to_string())
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

/// (utime + stime jiffies, resident pages) from /proc/PID/stat.
pub fn parse_process_stat(text: &str) -> Option<(u64, u64)> {
    // the command name (field 2) is in parentheses and may hold spaces and parentheses
    let after = text.get(text.rfind(')')? + 2..)?;
    let f: Vec<&str> = after.split(' ').collect();
    // fields from 3 on: utime is field 14, stime 15, rss 24
    let field = |n: usize| -> Option<u64> { f.get(n - 3)?.parse().ok() };
    Some((field(14)? + field(15)?, field(24)?))
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

    #[test]
    fn process_stat_reads_cpu_time_and_rss_past_a_name_with_spaces_and_parens() {
        // pid (comm) state ppid ... utime=7 stime=5 ... rss=300 (field 24)
        let text = "42 (my (odd) prog) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 3 0 1000 123456 300 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
        assert_eq!(parse_process_stat(text), Some((12, 300)));
    }

    #[test]
    fn this_process_is_described_with_its_command_and_memory() {
        let mut r = HostReader::default();
        let host = r.host();
        assert!(host.mem_total_bytes > 0 && host.cores >= 1);
        let me = r.process(std::process::id()).expect("this process is in /proc");
        assert!(me.mem_bytes > 0, "a running test holds memory: {me:?}");
        assert!(!me.command.is_empty() && !me.user.is_empty());
    }
}
