//! Data-parallel training: a global batch split into shards whose gradients
//! are summed in a fixed order.
//!
//! With `S` shards (`S` MPI ranks, or `S` shards run one after another in
//! one process by [`FitConfig::with_shards`](crate::FitConfig::with_shards)),
//! every batch of `B` indices is cut into `S` contiguous shards of
//! `B / S` samples (the first `B mod S` one more, as `numpy.array_split`).
//! Shard `s` is augmented from its own seed (derived from the batch's) and
//! run forward and backward from zeroed gradients with a dropout stream
//! seeded from it; its loss gradient is scaled
//! by `b_s / B`, so that
//!
//! ```text
//! g = (((g_0 + g_1) + g_2) + ... + g_{S-1})      g_s = (b_s / B) * dL_s/dw
//! ```
//!
//! is the gradient of the mean loss over the global batch, added in shard
//! order. Every rank applies the same optimizer step to the same `g`, so the
//! weights stay identical without being sent. Batch-norm statistics are per
//! shard (as in PyTorch's DistributedDataParallel, not SyncBatchNorm); the
//! moving statistics are shard 0's, sent from rank 0 after each step (DDP's
//! `broadcast_buffers`). Hence `mpirun -np S` and one process with `S`
//! shards compute the same bits; `S = 1` is the plain whole-batch step.

use crate::data::Batch;
use crate::error::config_err;
use crate::{Layer, Mode, Model, Param, Result, Rng};
use rand::SeedableRng;

/// The communication that data-parallel training needs: sums in rank order
/// and broadcasts. Implemented over MPI by the `convnet` binary (feature
/// `mpi`); [`SingleProcess`] is the one-process case.
pub trait Collective: Send + Sync {
    /// This process's rank, `0..size`.
    fn rank(&self) -> usize;
    /// Number of processes.
    fn size(&self) -> usize;
    /// Replaces `buf` on every rank by the elementwise sum over ranks, added
    /// in rank order `((x_0 + x_1) + x_2) + ...`: the same bits everywhere.
    fn sum_f32(&self, buf: &mut [f32]);
    /// As [`Collective::sum_f32`], for `f64` (counters, loss sums).
    fn sum_f64(&self, buf: &mut [f64]);
    /// Copies `root`'s `buf` to every rank.
    fn broadcast_f32(&self, buf: &mut [f32], root: usize);
    /// Copies `root`'s bytes to every rank (lengths may differ before).
    fn broadcast_bytes(&self, buf: &mut Vec<u8>, root: usize);
    /// Waits for every rank.
    fn barrier(&self);
    /// Ends every rank of the job with `code` (after an error on this one,
    /// so that no rank waits forever in a collective).
    fn abort(&self, code: i32) -> !;
}

/// One process: every collective is the identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum_f32(&self, _: &mut [f32]) {}
    fn sum_f64(&self, _: &mut [f64]) {}
    fn broadcast_f32(&self, _: &mut [f32], _: usize) {}
    fn broadcast_bytes(&self, _: &mut Vec<u8>, _: usize) {}
    fn barrier(&self) {}
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// A shared handle to the processes of a job, for settings structs: compared
/// and printed by rank and size.
#[derive(Clone)]
pub struct Ranks(pub std::sync::Arc<dyn Collective>);

impl Default for Ranks {
    fn default() -> Self {
        Ranks(std::sync::Arc::new(SingleProcess))
    }
}

impl std::fmt::Debug for Ranks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rank {} of {}", self.0.rank(), self.0.size())
    }
}

impl PartialEq for Ranks {
    fn eq(&self, o: &Self) -> bool {
        (self.0.rank(), self.0.size()) == (o.0.rank(), o.0.size())
    }
}

impl std::ops::Deref for Ranks {
    type Target = dyn Collective;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

impl Ranks {
    /// Work item `i` of a list is done by rank `i mod size`.
    pub fn owns(&self, i: usize) -> bool {
        i % self.0.size() == self.0.rank()
    }
}

/// Which shards of every batch this process computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ShardPlan {
    /// Shards per batch, over all processes.
    pub total: usize,
    /// This process's shards: `first..first + count`.
    pub first: usize,
    /// How many.
    pub count: usize,
}

/// Checks a data-parallel setting before anything runs: `shards` shards per
/// batch in one process, `ranks` processes, and whether batch-norm
/// statistics are shared over them. The error's `what` is the setting at
/// fault (`shards` or `sync_batch_norm`), so that a front end can name its
/// own flag for it.
pub fn check_split(shards: usize, ranks: usize, sync_batch_norm: bool) -> Result<()> {
    if shards == 0 {
        return Err(config_err("shards", "must be at least 1"));
    }
    if ranks > 1 && shards > 1 {
        return Err(config_err(
            "shards",
            format!(
                "with {ranks} ranks every rank computes one shard of each batch; \
                 {shards} shards apply to a single process"
            ),
        ));
    }
    if sync_batch_norm && shards > 1 {
        return Err(config_err(
            "sync_batch_norm",
            "needs MPI ranks: one process computes its shards one after another, \
             so their batch-norm statistics cannot be shared",
        ));
    }
    Ok(())
}

impl ShardPlan {
    /// `shards` run here one after another, or one shard per rank of a
    /// multi-process `collective` (which then must be the only split), with
    /// batch-norm statistics shared over the ranks or not; the setting is
    /// checked by [`check_split`].
    pub fn new(shards: usize, collective: &dyn Collective, sync_batch_norm: bool) -> Result<Self> {
        let ranks = collective.size();
        check_split(shards, ranks, sync_batch_norm)?;
        Ok(if ranks > 1 {
            ShardPlan {
                total: ranks,
                first: collective.rank(),
                count: 1,
            }
        } else {
            ShardPlan {
                total: shards,
                first: 0,
                count: shards,
            }
        })
    }

    /// The indices of shard `s` of a batch (contiguous, sizes as `array_split`).
    pub fn shard<'a>(&self, batch: &'a [usize], s: usize) -> &'a [usize] {
        let (b, n) = (batch.len(), self.total);
        let start = s * (b / n) + s.min(b % n);
        let len = b / n + usize::from(s < b % n);
        &batch[start..start + len]
    }

    /// The augmentation seed of shard `s` of the batch whose seed is `seed`
    /// (the batch's own seed when there is one shard).
    pub fn seed(&self, seed: u64, s: usize) -> u64 {
        if self.total == 1 {
            seed
        } else {
            splitmix(seed ^ (s as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
        }
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The parameters the optimizer updates: trainable ones in unfrozen nodes, in order.
pub(crate) fn optimized_params<'a>(
    layers: &'a mut [Box<dyn Layer>],
    frozen: &[bool],
) -> Vec<&'a mut Param> {
    layers
        .iter_mut()
        .zip(frozen)
        .filter(|(_, f)| !**f)
        .flat_map(|(l, _)| l.params_mut())
        .filter(|p| p.trainable)
        .collect()
}

impl Model {
    /// Which nodes are frozen, by position.
    pub(crate) fn frozen_flags(&self) -> Vec<bool> {
        (0..self.layers.len()).map(|i| self.is_frozen(i)).collect()
    }

    /// The parameters the optimizer updates, in order.
    pub(crate) fn optimized_params_mut(&mut self) -> Vec<&mut Param> {
        let frozen = self.frozen_flags();
        optimized_params(&mut self.layers, &frozen)
    }

    /// Values of the state the optimizer does not touch (moving statistics), in order.
    fn state_values(&self) -> Vec<f32> {
        let mut out = Vec::new();
        for l in &self.layers {
            for p in l.params().into_iter().filter(|p| !p.trainable) {
                out.extend_from_slice(p.value.data());
            }
        }
        out
    }

    fn set_state_values(&mut self, v: &[f32]) {
        let mut at = 0;
        for p in self.params_mut().into_iter().filter(|p| !p.trainable) {
            let n = p.value.len();
            p.value.data_mut().copy_from_slice(&v[at..at + n]);
            at += n;
        }
    }

    /// One data-parallel step: this process's shards `(s, batch)` forward and
    /// backward, gradients summed in shard order over every process, one
    /// optimizer step. Returns the global batch's mean loss (before the
    /// step), correct predictions and their count, or `None` when every
    /// shard of the batch was empty (all its images unreadable).
    pub(crate) fn train_step_shards(
        &mut self,
        shards: &[(usize, Batch)],
        plan: &ShardPlan,
        comm: &dyn Collective,
        batch_seed: u64,
        lr: f32,
    ) -> Result<Option<(f32, usize, usize)>> {
        let loss = self.training_mut()?.loss;
        // Every shard's size, known to every rank (only unreadable images
        // make them differ from the plan's).
        let mut sizes = vec![0f64; plan.total];
        for (s, (x, y)) in shards {
            if x.batch() > 0 {
                self.check_batch(loss, x, y)?;
            }
            sizes[*s] = x.batch() as f64;
        }
        comm.sum_f64(&mut sizes);
        let global: f64 = sizes.iter().sum();
        if global == 0.0 {
            return Ok(None);
        }
        let n_grad: usize = self
            .optimized_params_mut()
            .iter()
            .map(|p| p.grad.len())
            .sum();
        // Gradients are added into one buffer in shard order (the first
        // shard's copied), without a vector per shard.
        let mut sum = vec![0f32; n_grad];
        let mut first = true;
        let mut stats = [0f64; 3]; // loss * b, hits, counted
        let mut shard0_state = None;
        for (s, (x, y)) in shards {
            if x.batch() == 0 {
                // An empty shard adds zeros, as an empty rank's do in the sum.
                if !first {
                    sum.iter_mut().for_each(|a| *a += 0.0);
                }
            } else {
                self.zero_grad();
                // The shard's dropout stream, from its seed (the model's RNG
                // is not drawn from, so shuffles match the one-shard run's).
                let shard_rng = Rng::seed_from_u64(splitmix(plan.seed(batch_seed, *s) ^ 0xd0));
                let saved = std::mem::replace(&mut self.rng, shard_rng);
                let z = self.forward(x, Mode::Train, false);
                let (l, mut dz, p) = self.loss_and_grad(loss, &z, y);
                let (hits, total) = crate::loss::count_correct(loss, &p, y);
                let scale = (x.batch() as f64 / global) as f32;
                dz.data_mut().iter_mut().for_each(|v| *v *= scale);
                self.backward(dz);
                self.rng = saved;
                stats[0] += l as f64 * x.batch() as f64;
                stats[1] += hits as f64;
                stats[2] += total as f64;
                let mut at = 0;
                for p in self.optimized_params_mut() {
                    let (g, dst) = (p.grad.data(), &mut sum[at..at + p.grad.len()]);
                    if first {
                        dst.copy_from_slice(g);
                    } else {
                        dst.iter_mut().zip(g).for_each(|(a, b)| *a += b);
                    }
                    at += g.len();
                }
            }
            first = false;
            if *s == 0 && plan.count > 1 {
                shard0_state = Some((self.state_values(), self.update_counts()));
            }
        }
        comm.sum_f32(&mut sum);
        comm.sum_f64(&mut stats);
        // The moving statistics are shard 0's.
        if let Some((state, counts)) = shard0_state {
            self.set_state_values(&state);
            self.set_update_counts(&counts);
        } else if comm.size() > 1 {
            let mut state = self.state_values();
            comm.broadcast_f32(&mut state, 0);
            self.set_state_values(&state);
        }
        let mut at = 0;
        for p in self.optimized_params_mut() {
            let n = p.grad.len();
            p.grad.data_mut().copy_from_slice(&sum[at..at + n]);
            at += n;
        }
        let penalty = self.apply_gradients(lr)?;
        let mean = stats[0] / global + penalty;
        Ok(Some((mean as f32, stats[1] as usize, stats[2] as usize)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_batch_in_order_like_array_split() {
        let plan = ShardPlan::new(3, &SingleProcess, false).unwrap();
        let batch: Vec<usize> = (10..20).collect();
        let parts: Vec<&[usize]> = (0..3).map(|s| plan.shard(&batch, s)).collect();
        assert_eq!(parts[0], &[10, 11, 12, 13]);
        assert_eq!(parts[1], &[14, 15, 16]);
        assert_eq!(parts[2], &[17, 18, 19]);
        // Fewer samples than shards: trailing shards are empty.
        let small = [7usize];
        assert_eq!(plan.shard(&small, 0), &[7]);
        assert!(plan.shard(&small, 2).is_empty());
    }

    #[test]
    fn one_shard_keeps_the_batch_seed_and_shards_get_distinct_ones() {
        let one = ShardPlan::new(1, &SingleProcess, false).unwrap();
        assert_eq!(one.seed(1234, 0), 1234);
        let two = ShardPlan::new(2, &SingleProcess, false).unwrap();
        assert_ne!(two.seed(1234, 0), two.seed(1234, 1));
        assert!(ShardPlan::new(0, &SingleProcess, false).is_err());
    }
}
