//! The engine's allocator: mimalloc, as in the `convnet` binary
//! (`crates/cli/src/alloc.rs` says why: glibc's heap trimming hands each
//! training step's large buffers back to the system and faults them in
//! again on the next one). Python's own objects keep Python's allocator;
//! only the engine's Rust allocations go through this one. Measured on an
//! epoch of M1 from Python: see BENCHMARKS.md ("One epoch from Python").

use libmimalloc_sys as ffi;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc v3's `mi_option_arena_eager_commit` (default 2).
const ARENA_EAGER_COMMIT: ffi::mi_option_t = 4;

/// Arena memory committed as it is used (the binary's setting: 10-25 % less
/// peak memory), unless `MIMALLOC_ARENA_EAGER_COMMIT` says otherwise.
pub fn configure() {
    if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_some() {
        return;
    }
    // SAFETY: reads and writes mimalloc's option table while the module is
    // imported, before the engine's worker threads exist.
    unsafe {
        if ffi::mi_option_get(ARENA_EAGER_COMMIT) == 2 {
            ffi::mi_option_set(ARENA_EAGER_COMMIT, 0);
        }
    }
}
