//! What the kernel benchmarks share: deterministic data and a best-of timer.

use std::time::Instant;

/// `len` values in [-0.5, 0.5), the same on every run.
pub fn data(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

/// Seconds of the fastest of `reps` runs of `f`, after one warm-up run.
pub fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}
