//! `convnet bench --data-parallel`: the step time of data-parallel training
//! through the real pipeline (`Model::fit` with this job's ranks: prefetch,
//! shards, the rank-order gradient sum, the optimizer), and how much of it
//! the collectives take. Run it alone and under `mpirun -np N` and compare.
//!
//! Per step, every rank sums `P` gradients (4 bytes each) with a
//! reduce-scatter and an all-gather: it sends and receives `2 (N-1)/N * 4P`
//! bytes. BENCHMARKS.md turns these figures into a scaling model.

use crate::error::CliResult;
use convnet_nn::{Collective, FitConfig, Loss, OptimizerConfig, TensorData, Verbosity};
use convnet_tensor::Tensor;
use rand::{Rng as _, SeedableRng};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A collective that adds the seconds spent in it (and the bytes summed).
struct Timed {
    inner: Arc<dyn Collective>,
    seconds: Mutex<(f64, usize)>,
}

impl Timed {
    fn time<T>(&self, bytes: usize, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        let mut s = self.seconds.lock().expect("not poisoned");
        s.0 += t.elapsed().as_secs_f64();
        s.1 += bytes;
        out
    }
}

impl Collective for Timed {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn size(&self) -> usize {
        self.inner.size()
    }
    fn sum_f32(&self, buf: &mut [f32]) {
        self.time(4 * buf.len(), || self.inner.sum_f32(buf))
    }
    fn sum_f64(&self, buf: &mut [f64]) {
        self.time(0, || self.inner.sum_f64(buf))
    }
    fn broadcast_f32(&self, buf: &mut [f32], root: usize) {
        self.time(0, || self.inner.broadcast_f32(buf, root))
    }
    fn broadcast_bytes(&self, buf: &mut Vec<u8>, root: usize) {
        self.inner.broadcast_bytes(buf, root)
    }
    fn barrier(&self) {
        self.inner.barrier()
    }
    fn abort(&self, code: i32) -> ! {
        self.inner.abort(code)
    }
}

/// Times `steps` data-parallel training steps of `net` at global batch `batch`.
fn run(name: &str, batch: usize, steps: usize) -> CliResult<()> {
    let world = crate::dist::world();
    let seq = crate::bench::net(name)?;
    let outputs: usize = seq.output_shape()?.iter().product();
    let mut rng = convnet_nn::Rng::seed_from_u64(0);
    let n = batch * steps;
    let mut shape = vec![n];
    shape.extend_from_slice(&seq.input_shape);
    let len: usize = shape.iter().product();
    let x = Tensor::from_vec(&shape, (0..len).map(|_| rng.gen::<f32>()).collect()).expect("sizes");
    let y = Tensor::from_vec(&[n], (0..n).map(|i| (i % outputs) as f32).collect()).expect("sizes");
    let data = TensorData::new(x, y)?;
    let mut model = seq.build(1)?;
    model.compile(OptimizerConfig::adam(), Loss::SparseCategoricalCrossentropy);
    let timed = Arc::new(Timed {
        inner: world.clone(),
        seconds: Mutex::new((0.0, 0)),
    });
    let config = FitConfig::new()
        .with_batch_size(batch)
        .with_verbosity(Verbosity::Silent)
        .with_collective(timed.clone());
    // Warm-up: one epoch of 2 steps.
    model.fit(
        &data,
        None,
        &config.clone().with_steps_per_epoch(2),
        &mut [],
    )?;
    *timed.seconds.lock().expect("not poisoned") = (0.0, 0);
    world.barrier();
    let start = Instant::now();
    model.fit(&data, None, &config, &mut [])?;
    world.barrier();
    let step = start.elapsed().as_secs_f64() / steps as f64;
    let (comm, bytes) = *timed.seconds.lock().expect("not poisoned");
    // The rank that spent longest in the collectives (waiting for the others included).
    let mut all = vec![0.0; world.size()];
    all[world.rank()] = comm;
    world.sum_f64(&mut all);
    let slowest = all.iter().cloned().fold(0.0, f64::max);
    let (trainable, _) = model.param_counts();
    let ranks = world.size();
    if world.rank() == 0 {
        println!(
            "{:<8} {:>5} {:>6} {:>6} {:>9.2} {:>11.2} {:>11.2} {:>10} {:>12}",
            name,
            ranks,
            batch,
            batch.div_ceil(ranks),
            1e3 * step,
            1e3 * comm / steps as f64,
            1e3 * slowest / steps as f64,
            trainable,
            bytes / steps
        );
    }
    Ok(())
}

/// `convnet bench --data-parallel` over `configs` (NET:train:BATCH).
pub fn bench(configs: &[(String, String, usize)], seconds: f32) -> CliResult<()> {
    if crate::dist::world().rank() == 0 {
        println!(
            "data-parallel training, {} rank(s), {} thread(s) each",
            crate::dist::world().size(),
            rayon::current_num_threads()
        );
        println!(
            "{:<8} {:>5} {:>6} {:>6} {:>9} {:>11} {:>11} {:>10} {:>12}",
            "net",
            "ranks",
            "batch",
            "shard",
            "step ms",
            "rank0 comm",
            "max comm",
            "params",
            "bytes summed"
        );
    }
    for (n, _, b) in configs {
        // Enough steps for about `seconds` on one core at M1's pace; at least 10.
        let steps = ((seconds * 20.0) as usize).max(10);
        run(n, *b, steps)?;
    }
    Ok(())
}
