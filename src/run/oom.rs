//! The last words of a process whose allocation fails. Rust aborts on a failed allocation
//! ("memory allocation of N bytes failed", SIGABRT) and nothing of the process may allocate
//! after that, so the failure record is rendered ahead of time (work.rs keeps it current:
//! the step, the micro-batch's rows, the plan's figures) into static buffers, and the global
//! allocator below, seeing an allocation return null, writes it with plain system calls
//! (open, write, fsync, rename): `exit.json` (failed, with the message), an error event
//! appended to `events.jsonl`, and the message on stderr (daemon.log for detached runs),
//! then lets Rust abort as it would have. A successful allocation costs nothing extra: the
//! wrapper only looks at failures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

/// `System`, with a failure record and byte counts.
pub struct Guarded;

#[global_allocator]
static GLOBAL: Guarded = Guarded;

// SAFETY: every method forwards to System with the caller's layout; the failure path neither
// allocates nor touches the memory.
unsafe impl GlobalAlloc for Guarded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if p.is_null() {
            failed(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if p.is_null() {
            failed(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if p.is_null() {
            failed(new_size);
        }
        p
    }
}

/// Bytes of the pre-rendered record: paths and texts.
const CAP: usize = 32 * 1024;
/// Where the allocation's size goes in a text (a control byte JSON never writes raw).
pub const SIZE_MARK: u8 = 1;
/// Where the event's seq goes in the event line.
pub const SEQ_MARK: u8 = 2;

/// The record: NUL-separated pieces in `buf` (exit path, its temporary, events path,
/// exit.json text, event line, stderr text), guarded by `busy`.
struct Record {
    busy: AtomicBool,
    armed: AtomicBool,
    fired: AtomicBool,
    buf: UnsafeCell<[u8; CAP]>,
    len: UnsafeCell<usize>,
    /// Room to read the event log's last line in.
    scratch: UnsafeCell<[u8; 8192]>,
}

// SAFETY: buf, len and scratch are touched only while `busy` is held.
unsafe impl Sync for Record {}

static RECORD: Record = Record {
    busy: AtomicBool::new(false),
    armed: AtomicBool::new(false),
    fired: AtomicBool::new(false),
    buf: UnsafeCell::new([0; CAP]),
    len: UnsafeCell::new(0),
    scratch: UnsafeCell::new([0; 8192]),
};

/// What to write if an allocation fails from now on. Texts may hold SIZE_MARK (the event
/// line also SEQ_MARK); a record too large for the buffer leaves the previous one armed.
pub struct Pieces<'a> {
    pub exit_path: &'a str,
    pub events_path: &'a str,
    pub exit_json: &'a str,
    pub event_line: &'a str,
    pub stderr: &'a str,
}

pub fn arm(p: &Pieces) {
    let tmp = format!("{}.oom.tmp", p.exit_path);
    let parts = [p.exit_path, tmp.as_str(), p.events_path, p.exit_json, p.event_line, p.stderr];
    let total: usize = parts.iter().map(|s| s.len() + 1).sum();
    if total > CAP || parts.iter().any(|s| s.as_bytes().contains(&0)) {
        return;
    }
    if RECORD.busy.swap(true, Ordering::Acquire) {
        return; // the failure path holds it
    }
    // SAFETY: busy is held
    unsafe {
        let buf = &mut *RECORD.buf.get();
        let mut at = 0;
        for s in parts {
            buf[at..at + s.len()].copy_from_slice(s.as_bytes());
            buf[at + s.len()] = 0;
            at += s.len() + 1;
        }
        *RECORD.len.get() = at;
    }
    RECORD.armed.store(true, Ordering::Release);
    RECORD.busy.store(false, Ordering::Release);
}

/// Nothing to write any more (the run ended and said so itself).
pub fn disarm() {
    RECORD.armed.store(false, Ordering::Release);
}

/// An allocation of `size` bytes returned null: write the record, once, without allocating.
fn failed(size: usize) {
    if !RECORD.armed.load(Ordering::Acquire) || RECORD.fired.swap(true, Ordering::AcqRel) {
        return;
    }
    if RECORD.busy.swap(true, Ordering::Acquire) {
        return;
    }
    // SAFETY: busy is held; only system calls on the static buffers follow
    unsafe {
        let buf = &*RECORD.buf.get();
        let len = *RECORD.len.get();
        let mut pieces: [&[u8]; 6] = [&[]; 6];
        let mut start = 0;
        let mut k = 0;
        for (i, b) in buf[..len].iter().enumerate() {
            if *b == 0 && k < 6 {
                pieces[k] = &buf[start..i];
                k += 1;
                start = i + 1;
            }
        }
        let [exit_path, exit_tmp, events_path, exit_json, event_line, stderr] = pieces;
        let mut size_digits = [0u8; 20];
        let size_text = digits(size as u64, &mut size_digits);
        write_marked(2, stderr, size_text, &[]);
        // exit.json: a temporary, fsynced, renamed over
        let mut path = [0u8; 4097];
        let mut tmp = [0u8; 4097];
        if let (Some(p), Some(t)) = (c_path(exit_path, &mut path), c_path(exit_tmp, &mut tmp)) {
            let fd = libc::open(t, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC, 0o644);
            if fd >= 0 {
                write_marked(fd, exit_json, size_text, &[]);
                libc::fsync(fd);
                libc::close(fd);
                libc::rename(t, p);
            }
        }
        // the event: seq after the log's last
        let mut events = [0u8; 4097];
        if let Some(e) = c_path(events_path, &mut events) {
            let seq = last_seq(e, &mut *RECORD.scratch.get()).map_or(1, |s| s + 1);
            let mut seq_digits = [0u8; 20];
            let seq_text = digits(seq, &mut seq_digits);
            let fd = libc::open(e, libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC);
            if fd >= 0 {
                write_marked(fd, event_line, size_text, seq_text);
                libc::fsync(fd);
                libc::close(fd);
            }
        }
    }
}

/// `path` NUL-terminated in `out`.
fn c_path(path: &[u8], out: &mut [u8; 4097]) -> Option<*const libc::c_char> {
    if path.is_empty() || path.len() >= out.len() {
        return None;
    }
    out[..path.len()].copy_from_slice(path);
    out[path.len()] = 0;
    Some(out.as_ptr() as *const libc::c_char)
}

/// Decimal digits of n in `out`, as a slice of it.
fn digits(mut n: u64, out: &mut [u8; 20]) -> &[u8] {
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &out[i..]
}

/// Writes `text` to `fd` with SIZE_MARK and SEQ_MARK replaced.
fn write_marked(fd: libc::c_int, text: &[u8], size: &[u8], seq: &[u8]) {
    let mut start = 0;
    for (i, b) in text.iter().enumerate() {
        let with = match *b {
            SIZE_MARK => size,
            SEQ_MARK => seq,
            _ => continue,
        };
        write_all(fd, &text[start..i]);
        write_all(fd, with);
        start = i + 1;
    }
    write_all(fd, &text[start..]);
}

fn write_all(fd: libc::c_int, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: bytes is a live slice
        let n = unsafe { libc::write(fd, bytes.as_ptr() as *const libc::c_void, bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// The `"seq":N` of the log's last line, read from its tail.
unsafe fn last_seq(path: *const libc::c_char, scratch: &mut [u8; 8192]) -> Option<u64> {
    let fd = libc::open(path, libc::O_RDONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return None;
    }
    let end = libc::lseek(fd, 0, libc::SEEK_END);
    let from = (end - scratch.len() as libc::off_t).max(0);
    libc::lseek(fd, from, libc::SEEK_SET);
    let mut got = 0usize;
    while got < scratch.len() {
        let n = libc::read(fd, scratch[got..].as_mut_ptr() as *mut libc::c_void, scratch.len() - got);
        if n <= 0 {
            break;
        }
        got += n as usize;
    }
    libc::close(fd);
    let text = &scratch[..got];
    let key = b"\"seq\":";
    let at = (0..text.len().saturating_sub(key.len())).rev().find(|&i| &text[i..i + key.len()] == key)?;
    let mut n: u64 = 0;
    let mut any = false;
    for b in text[at + key.len()..].iter().skip_while(|b| **b == b' ') {
        if !b.is_ascii_digit() {
            break;
        }
        n = n * 10 + (b - b'0') as u64;
        any = true;
    }
    any.then_some(n)
}
