//! Recycling of large tensor buffers between steps.
//!
//! Every training or inference step allocates the same large activations
//! and gradients as the step before. Freed to the allocator and allocated
//! again, each of them costs a zero-fill, or, once the allocator has given
//! the pages back to the OS, a page fault and a kernel zeroing per 4 KiB
//! page: measured with `perf`, a fifth of M3's inference time went to the
//! kernel's `clear_page` and another tenth to zero-filling outputs that the
//! convolution overwrites anyway.
//!
//! So a [`Tensor`](crate::Tensor) of at least [`MIN_LEN`] values hands its
//! buffer to this free list when it is dropped, and the next request for a
//! buffer of the same length takes it back ([`Tensor::zeros`] zero-fills it
//! in parallel; [`Tensor::for_overwrite`] leaves its stale values). The list
//! holds at most [`limit`] bytes ([`MAX_BYTES`] unless [`set_limit`] says
//! otherwise); past that the oldest buffers are freed, so a length that is
//! never asked for again does not stay forever.
//!
//! [`Tensor::zeros`]: crate::Tensor::zeros
//! [`Tensor::for_overwrite`]: crate::Tensor::for_overwrite

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Buffers shorter than this (256 KiB) go straight back to the allocator.
pub const MIN_LEN: usize = 1 << 16;

/// Default upper bound on the bytes the free list keeps (see [`set_limit`]).
pub const MAX_BYTES: usize = 512 << 20;

static LIMIT: AtomicUsize = AtomicUsize::new(MAX_BYTES);

/// Sets the most bytes the free list keeps (0 turns recycling off) and
/// frees what is over it.
pub fn set_limit(bytes: usize) {
    LIMIT.store(bytes, Ordering::Relaxed);
    let evicted = lock().evict(|_, held| held <= bytes);
    drop(evicted);
}

/// The current limit (see [`set_limit`]).
pub fn limit() -> usize {
    LIMIT.load(Ordering::Relaxed)
}

struct FreeList {
    /// Oldest first, each with the step it was freed in.
    bufs: VecDeque<(u64, Vec<f32>)>,
    bytes: usize,
    /// The current step (see [`new_step`]).
    step: u64,
}

static FREE: Mutex<FreeList> = Mutex::new(FreeList {
    bufs: VecDeque::new(),
    bytes: 0,
    step: 0,
});

impl FreeList {
    /// Removes the oldest buffers while `keep(step, bytes)` says no.
    fn evict(&mut self, keep: impl Fn(u64, usize) -> bool) -> Vec<Vec<f32>> {
        let mut out = Vec::new();
        while let Some((step, _)) = self.bufs.front() {
            if keep(*step, self.bytes) {
                break;
            }
            let (_, old) = self.bufs.pop_front().expect("front exists");
            self.bytes -= old.capacity() * 4;
            out.push(old);
        }
        out
    }
}

/// Marks the start of a new step (a model's forward pass calls it): buffers
/// freed before the previous step began that no step has taken since are
/// freed. What one step frees, the next can take; what sits unused through
/// a whole step (a length that stopped being asked for, or a copy that is
/// never allocated through here) does not stay.
pub fn new_step() {
    let evicted = {
        let mut list = lock();
        list.step += 1;
        let current = list.step;
        list.evict(|step, _| step + 1 >= current)
    };
    drop(evicted);
}

fn lock() -> std::sync::MutexGuard<'static, FreeList> {
    // The list stays consistent even if a holder panicked (every update is
    // a push or a remove plus its byte count, with no panic in between).
    FREE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A freed buffer of exactly `len` values (the most recently freed one),
/// if the list has one. Its values are whatever it held before.
pub(crate) fn take(len: usize) -> Option<Vec<f32>> {
    if len < MIN_LEN {
        return None;
    }
    let mut list = lock();
    let i = list.bufs.iter().rposition(|(_, b)| b.len() == len)?;
    let (_, buf) = list.bufs.remove(i)?;
    list.bytes -= buf.capacity() * 4;
    Some(buf)
}

/// Keeps `buf` for a later [`take`] if it is large enough; frees the oldest
/// buffers while the list holds more than the limit ([`set_limit`]).
pub(crate) fn give(buf: Vec<f32>) {
    let limit = limit();
    if buf.len() < MIN_LEN || buf.capacity() * 4 > limit {
        return;
    }
    let evicted = {
        let mut list = lock();
        list.bytes += buf.capacity() * 4;
        let step = list.step;
        list.bufs.push_back((step, buf));
        list.evict(|_, held| held <= limit)
    };
    drop(evicted); // freed outside the lock
}

/// Frees every buffer the list holds, returning the bytes freed (for a
/// caller about to need its memory for something else).
pub fn release_all() -> usize {
    let bufs = {
        let mut list = lock();
        list.bytes = 0;
        std::mem::take(&mut list.bufs)
    };
    bufs.iter().map(|(_, b)| b.capacity() * 4).sum()
}

/// Bytes the free list holds now.
pub fn held_bytes() -> usize {
    lock().bytes
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    #[test]
    fn a_dropped_buffer_is_reused_for_the_same_length_only() {
        // Lengths no other test uses, so parallel tests do not interfere.
        let n = super::MIN_LEN + 12_345;
        let t = Tensor::full(&[n], 3.0);
        let ptr = t.data().as_ptr();
        drop(t);
        let other = Tensor::for_overwrite(&[n + 1]);
        assert_ne!(other.data().as_ptr(), ptr);
        let again = Tensor::for_overwrite(&[n]);
        assert_eq!(again.data().as_ptr(), ptr, "same buffer");
        assert!(again.data().iter().all(|&v| v == 3.0), "stale values kept");
        drop(again);
        let z = Tensor::zeros(&[n]);
        assert_eq!(z.data().as_ptr(), ptr);
        assert!(z.data().iter().all(|&v| v == 0.0), "zeros are zeros");
    }

    #[test]
    fn small_buffers_are_not_kept() {
        let held = super::held_bytes();
        drop(Tensor::full(&[super::MIN_LEN - 1], 1.0));
        // Other tests may add large buffers meanwhile, never small ones.
        assert!(super::held_bytes() >= held);
        assert!(super::take(super::MIN_LEN - 1).is_none());
    }
}
