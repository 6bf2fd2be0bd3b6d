//! Memory a device has for a run: the host's MemAvailable (/proc/meminfo), lowered by the
//! cgroup's limit and the address-space rlimit when those are lower; a CUDA device's total
//! memory from NVML.

/// Bytes this process may still use on the host, when it can be told.
pub fn host() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let available = meminfo.as_deref().and_then(|t| meminfo_field(t, "MemAvailable"));
    [available, cgroup_room(), address_space_room()].into_iter().flatten().min()
}

/// `Name:   123 kB` of /proc/meminfo, in bytes.
pub fn meminfo_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.split(':').next() == Some(name))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The cgroup's memory limit less what it uses now (cgroup v2, else v1).
fn cgroup_room() -> Option<u64> {
    let read = |p: &str| std::fs::read_to_string(p).ok().and_then(|t| t.trim().parse::<u64>().ok());
    let (limit, used) = match read("/sys/fs/cgroup/memory.max") {
        Some(l) => (l, read("/sys/fs/cgroup/memory.current")),
        None => (
            read("/sys/fs/cgroup/memory/memory.limit_in_bytes")?,
            read("/sys/fs/cgroup/memory/memory.usage_in_bytes"),
        ),
    };
    // v1 says "no limit" with a huge number
    if limit >= 1 << 60 {
        return None;
    }
    Some(limit.saturating_sub(used.unwrap_or(0)))
}

/// RLIMIT_AS (ulimit -v) less this process's address space now, when a limit is set.
fn address_space_room() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) } != 0 || lim.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let vm = meminfo_field(&status, "VmSize").unwrap_or(0);
    Some(lim.rlim_cur.saturating_sub(vm))
}

/// Total memory of CUDA device `index` (NVML), when NVML answers.
pub fn cuda(index: usize) -> Option<u64> {
    let nvml = nvml_wrapper::Nvml::init().ok()?;
    let device = nvml.device_by_index(index as u32).ok()?;
    device.memory_info().ok().map(|m| m.total)
}

/// The cgroup's count of OOM kills (memory.events `oom_kill`), to tell an OOM kill from any
/// other SIGKILL.
pub fn oom_kills() -> Option<u64> {
    let text = std::fs::read_to_string("/sys/fs/cgroup/memory.events").ok()?;
    text.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|n| n.trim().parse().ok())
}
