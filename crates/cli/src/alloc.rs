//! The global allocator (mimalloc) and the two settings we give it.
//!
//! mimalloc keeps freed blocks for reuse instead of returning them to the
//! system after every batch, which saved the page faults that glibc's heap
//! trimming caused on every training step. Two of its options trade memory
//! against those faults (measured with `convnet bench`, see BENCHMARKS.md):
//!
//! - arena eager commit off: arena memory is committed as it is used rather
//!   than up front: 10-25 % less peak memory, no measurable slowdown. Always on.
//! - purge delay 0: freed pages go back to the system at once instead of
//!   after a second: about 25 % less peak memory but 10-20 % slower steps on
//!   small nets (the pages fault back in every step). Only for models whose
//!   training step needs more than [`LARGE_STEP_BYTES`], where a step takes
//!   long enough that the faults cost little.
//!
//! An option the user set through its `MIMALLOC_*` environment variable is
//! left alone.
//!
//! On top of the allocator, large tensor buffers are recycled between steps
//! (`convnet_tensor::recycle`): no zero-fill, no page faults; M3 training
//! 35-50 % faster for about 28 % more peak memory (288 against 225 MiB: the
//! buffers of the later layers wait in the free list while the first
//! layers' activations are live). `CONVNET_RECYCLE_MIB=N` sets the free
//! list's limit (0 turns recycling off, for the smallest footprint).

use libmimalloc_sys as ffi;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc v3's `mi_option_arena_eager_commit` (libmimalloc-sys does not
/// name it); its default is 2.
const ARENA_EAGER_COMMIT: ffi::mi_option_t = 4;
/// mimalloc v3's `mi_option_purge_delay`, in milliseconds; default 1000
/// (`src/options.c`; the header's comment still says 10).
const PURGE_DELAY: ffi::mi_option_t = 15;

/// Training steps estimated above this many bytes purge freed memory at once.
pub const LARGE_STEP_BYTES: u128 = 512 << 20;

/// Sets `option` to `value` when it still has its documented default (which
/// also confirms the option number) and no environment variable set it.
fn set_if_default(option: ffi::mi_option_t, env: &str, default: i64, value: i64) {
    if std::env::var_os(env).is_some() {
        return;
    }
    // SAFETY: plain reads and writes of mimalloc's option table; called from
    // the main thread before the worker threads start (`configure`) or
    // between training steps (`purge_immediately`).
    unsafe {
        if ffi::mi_option_get(option) as i64 == default {
            ffi::mi_option_set(option, value as _);
        }
    }
}

/// Called first thing in `main`.
pub fn configure() {
    set_if_default(ARENA_EAGER_COMMIT, "MIMALLOC_ARENA_EAGER_COMMIT", 2, 0);
    if let Some(mib) = std::env::var("CONVNET_RECYCLE_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        convnet_tensor::recycle::set_limit(mib << 20);
    }
}

/// Returns freed pages to the system at once when a training step of
/// `step_bytes` (see `Model::training_bytes`) is large.
pub fn purge_immediately_if_large(step_bytes: u128) {
    if step_bytes > LARGE_STEP_BYTES {
        set_if_default(PURGE_DELAY, "MIMALLOC_PURGE_DELAY", 1000, 0);
    }
}

/// The whole process's peak resident memory so far, in bytes (Linux's
/// `VmHWM`, what `/usr/bin/time -f %M` reports), when the system says.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `Peak memory: N MiB resident (whole process)`, or nothing where the
/// system does not tell.
pub fn peak_rss_line() -> Option<String> {
    peak_rss_bytes().map(|b| format!("Peak memory: {} MiB resident (whole process)", b >> 20))
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_resident_memory_grows_with_a_touched_buffer() {
        let before = super::peak_rss_bytes().expect("Linux reports VmHWM");
        let v = vec![1u8; 64 << 20];
        std::hint::black_box(&v);
        let after = super::peak_rss_bytes().unwrap();
        assert!(after >= before && after >= 64 << 20, "{before} -> {after}");
    }
}
