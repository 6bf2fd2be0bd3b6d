//! Output buffers that a kernel writes, every element, before anything reads them.
//!
//! `vec![0; n]` zero-fills on the calling thread while rayon's threads wait, and on fresh
//! memory takes the page faults there too: in a 15M model's update on 2 cores the kernels'
//! fills were a quarter of the time one core spent alone. A buffer here is handed to the
//! kernel unwritten (`MaybeUninit`), filled in its parallel tasks, and only then read.

use std::mem::{ManuallyDrop, MaybeUninit};

/// `len` unwritten elements.
pub(crate) fn unfilled<T>(len: usize) -> Vec<MaybeUninit<T>> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: a MaybeUninit needs no initialisation; the capacity is `len`
    unsafe { v.set_len(len) };
    v
}

/// The buffer's elements, once written.
///
/// # Safety
/// Every element of `v` has been written.
pub(crate) unsafe fn filled<T>(v: Vec<MaybeUninit<T>>) -> Vec<T> {
    let mut v = ManuallyDrop::new(v);
    // SAFETY: MaybeUninit<T> has T's layout; the caller vouches for the contents
    unsafe { Vec::from_raw_parts(v.as_mut_ptr() as *mut T, v.len(), v.capacity()) }
}

/// A written part of a buffer, to read or update in place.
///
/// # Safety
/// Every element of `s` has been written.
pub(crate) unsafe fn written<T>(s: &mut [MaybeUninit<T>]) -> &mut [T] {
    // SAFETY: as `filled`
    unsafe { &mut *(s as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// `s` set to `value` everywhere, then readable.
pub(crate) fn fill<T: Copy>(s: &mut [MaybeUninit<T>], value: T) -> &mut [T] {
    s.fill(MaybeUninit::new(value));
    // SAFETY: every element was just written
    unsafe { written(s) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_buffer_reads_back_what_was_written() {
        let mut v = unfilled::<f32>(1000);
        for (i, x) in v.iter_mut().enumerate() {
            x.write(i as f32);
        }
        assert_eq!(fill(&mut v[..3], 7.0), &[7.0, 7.0, 7.0]);
        // SAFETY: every element was written above
        let v = unsafe { filled(v) };
        assert_eq!(v.len(), 1000);
        assert_eq!(&v[..5], &[7.0, 7.0, 7.0, 3.0, 4.0]);
        assert_eq!(v[999], 999.0);
    }
}
