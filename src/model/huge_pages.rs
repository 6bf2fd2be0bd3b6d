//! Backs a CPU model's weights with 2 MiB pages: the llama decode step asks for them before
//! its first step (`Model::huge_pages` says what it got).
//!
//! A decode step reads every weight once, and the 15M llama's 61 MB do not fit in L3. With
//! 4 KiB pages the stream crosses a page every 4 KiB: the L2 TLB (3072 entries on Zen 4,
//! 12 MiB of 4 KiB pages) misses on every one, and the kernels' prefetches ahead
//! (`small_matmul`) stall on the page walks. A group of 6, whose products go at the pace of
//! its arithmetic, suffers it most: on 2 Zen 4 cores (medians of 7, interleaved) 2221 ->
//! 2543 tokens/s on two threads and 1355 -> 1911 on one; one stream, bound by memory either
//! way, 576 -> 585 and 359 -> 358.
//!
//! The pages come from `madvise(MADV_COLLAPSE)` (Linux 6.1 on), which copies a range into
//! huge pages whatever the system's transparent-huge-page setting: the allocator's memory
//! stays where it is, so nothing else changes. Each 2 MiB span that a buffer touches is
//! asked for in full, neighbours included (harmless: their contents move with them); a
//! span the kernel refuses (one that runs past its mapping, no huge page free, an older
//! kernel) keeps its small pages, and `Backing` says how much was backed. It costs about
//! 1 ms a MiB on the VM it was measured on (65 ms for the 15M llama), once; a model that
//! never decodes on the CPU (training's forward and backward, the GPU) pays nothing.
//!
//! Not the KV cache (`decode_cache`): collapsing a group's cache buffers onto 2 MiB pages
//! changed neither its appends nor its attention measurably (a group of 6, 15M llama, 250
//! positions), and each new buffer cost about 100 ms to collapse.

use candle_core::{CpuStorage, Storage, Tensor};

/// The huge page size of x86-64 and of arm64 with 4 KiB base pages.
const HUGE: usize = 2 << 20;

/// What `back` asked for and got, in bytes of 2 MiB spans.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backing {
    pub asked: usize,
    pub backed: usize,
}

impl Backing {
    /// "60 of 62 MiB" on 2 MiB pages.
    pub fn describe(&self) -> String {
        format!("{} of {} MiB on 2 MiB pages", self.backed >> 20, self.asked >> 20)
    }
}

/// Moves the CPU tensors' storage onto 2 MiB pages where the kernel can (any other
/// device's tensors are skipped).
pub fn back<'a>(tensors: impl IntoIterator<Item = &'a Tensor>) -> Backing {
    let mut spans: Vec<usize> = tensors.into_iter().filter_map(host_bytes).flat_map(spans_of).collect();
    spans.sort_unstable();
    spans.dedup();
    let backed = spans.iter().filter(|&&start| collapse(start)).count();
    Backing { asked: spans.len() * HUGE, backed: backed * HUGE }
}

/// Where a CPU tensor's whole storage lies: (first byte's address, bytes).
fn host_bytes(t: &Tensor) -> Option<(usize, usize)> {
    let (storage, _) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return None;
    };
    fn range<T>(data: &[T]) -> (usize, usize) {
        (data.as_ptr() as usize, std::mem::size_of_val(data))
    }
    Some(match cpu {
        CpuStorage::F32(d) => range(d),
        CpuStorage::BF16(d) => range(d),
        CpuStorage::F16(d) => range(d),
        CpuStorage::F64(d) => range(d),
        _ => return None,
    })
}

/// The starts of the 2 MiB spans that [start, start + bytes) touches.
fn spans_of((start, bytes): (usize, usize)) -> impl Iterator<Item = usize> {
    let first = start / HUGE * HUGE;
    let end = if bytes == 0 { first } else { start + bytes };
    (first..end).step_by(HUGE)
}

/// Asks the kernel to move one span onto a huge page; whether it did.
fn collapse(start: usize) -> bool {
    collapse_span(start).is_ok()
}

/// One span's `madvise(MADV_COLLAPSE)`, with the kernel's reason when it refuses.
#[cfg(target_os = "linux")]
fn collapse_span(start: usize) -> std::io::Result<()> {
    // linux/mman.h (the libc crate names it only for glibc targets)
    const MADV_COLLAPSE: libc::c_int = 25;
    // SAFETY: MADV_COLLAPSE keeps the range's contents and mapping (only the pages under it
    // change), so no memory the program sees changes; an unmapped span is refused, not
    // touched.
    match unsafe { libc::madvise(start as *mut libc::c_void, HUGE, MADV_COLLAPSE) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(not(target_os = "linux"))]
fn collapse_span(_start: usize) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    #[test]
    fn spans_cover_every_byte_once() {
        let mib = 1 << 20;
        assert_eq!(spans_of((3 * HUGE, HUGE)).collect::<Vec<_>>(), vec![3 * HUGE]);
        assert_eq!(spans_of((3 * HUGE + mib, HUGE)).collect::<Vec<_>>(), vec![3 * HUGE, 4 * HUGE]);
        assert_eq!(spans_of((3 * HUGE + 10, 20)).collect::<Vec<_>>(), vec![3 * HUGE]);
        assert_eq!(spans_of((3 * HUGE + 10, 0)).count(), 0);
    }

    #[test]
    fn backing_keeps_the_values_and_reports_what_it_asked() {
        // 24 MiB of f32: twelve or thirteen spans, whichever the allocator's alignment gives
        let values: Vec<f32> = (0..6 << 20).map(|i| (i % 1009) as f32 * 0.5).collect();
        let t = Tensor::from_vec(values.clone(), 6 << 20, &Device::Cpu).unwrap();
        let backing = back([&t, &t]);
        assert!(backing.asked == 12 * HUGE || backing.asked == 13 * HUGE, "{backing:?}");
        assert!(backing.backed <= backing.asked);
        assert_eq!(t.to_vec1::<f32>().unwrap(), values);
        // integers are not a model's storage: skipped
        let ids = Tensor::new(&[1u32, 2, 3], &Device::Cpu).unwrap();
        assert_eq!(back([&ids]), Backing::default());
    }

    /// The kernel backs the spans of a written 24 MiB buffer, or says why it cannot: no
    /// MADV_COLLAPSE before Linux 6.1 (EINVAL), THP disabled for the process (EPERM), or no
    /// huge page to be had just now (EAGAIN, ENOMEM). A `back` that asked for the wrong spans
    /// would get nothing where the kernel, asked directly, collapses.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_kernel_backs_a_large_buffer_or_says_why_not() {
        let values: Vec<f32> = (0..6 << 20).map(|i| (i % 7) as f32).collect();
        let t = Tensor::from_vec(values.clone(), 6 << 20, &Device::Cpu).unwrap();
        let backing = back([&t]);
        assert!(backing.backed <= backing.asked && backing.asked >= 12 * HUGE, "{backing:?}");
        // asked again, directly, for a span wholly inside the buffer
        let inside = (host_bytes(&t).unwrap().0).next_multiple_of(HUGE);
        match collapse_span(inside) {
            Ok(()) => assert!(backing.backed > 0, "the kernel collapses spans here, yet back() got none"),
            Err(refused) => {
                let why = refused.raw_os_error();
                assert!(
                    [libc::EINVAL, libc::EPERM, libc::EAGAIN, libc::ENOMEM].map(Some).contains(&why),
                    "the kernel refuses with {refused}"
                );
                eprintln!("no huge pages here ({refused}): {backing:?}");
            }
        }
        assert_eq!(t.to_vec1::<f32>().unwrap(), values);
    }
}
