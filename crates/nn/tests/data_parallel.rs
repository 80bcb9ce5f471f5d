//! Data-parallel training (`convnet_nn::dist`): N ranks, each computing one
//! shard of every batch and exchanging gradients through a `Collective`,
//! give the same bits as one process running the N shards in turn.
//!
//! The ranks here are threads with their own model replicas, joined by an
//! in-memory `Collective` that honours the trait's contract (sums in rank
//! order); the MPI implementation is checked the same way under `mpirun` by
//! `crates/cli/tests/mpi.sh`.

mod common;

use common::{quiet, toy, weights};
use convnet_nn::*;
use std::sync::{Arc, Barrier, Mutex};

/// Threads as ranks: every collective posts this rank's buffer, waits for
/// all, and reads the others in rank order.
struct Threads {
    rank: usize,
    shared: Arc<Shared>,
}

struct Shared {
    size: usize,
    barrier: Barrier,
    slots: Mutex<Vec<Vec<u8>>>,
}

impl Threads {
    fn group(size: usize) -> Vec<Threads> {
        let shared = Arc::new(Shared {
            size,
            barrier: Barrier::new(size),
            slots: Mutex::new(vec![Vec::new(); size]),
        });
        (0..size)
            .map(|rank| Threads {
                rank,
                shared: shared.clone(),
            })
            .collect()
    }

    /// Every rank's bytes, in rank order.
    fn all_gather(&self, mine: Vec<u8>) -> Vec<Vec<u8>> {
        self.shared.slots.lock().unwrap()[self.rank] = mine;
        self.shared.barrier.wait();
        let all = self.shared.slots.lock().unwrap().clone();
        self.shared.barrier.wait();
        all
    }
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

impl Collective for Threads {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.shared.size
    }
    fn sum_f32(&self, buf: &mut [f32]) {
        let all = self.all_gather(buf.iter().flat_map(|v| v.to_le_bytes()).collect());
        buf.copy_from_slice(&f32s(&all[0]));
        for other in &all[1..] {
            for (a, b) in buf.iter_mut().zip(f32s(other)) {
                *a += b;
            }
        }
    }
    fn sum_f64(&self, buf: &mut [f64]) {
        let all = self.all_gather(buf.iter().flat_map(|v| v.to_le_bytes()).collect());
        buf.fill(0.0);
        for other in &all {
            for (a, c) in buf.iter_mut().zip(other.chunks(8)) {
                *a += f64::from_le_bytes(c.try_into().unwrap());
            }
        }
    }
    fn broadcast_f32(&self, buf: &mut [f32], root: usize) {
        let all = self.all_gather(buf.iter().flat_map(|v| v.to_le_bytes()).collect());
        buf.copy_from_slice(&f32s(&all[root]));
    }
    fn broadcast_bytes(&self, buf: &mut Vec<u8>, root: usize) {
        *buf = self.all_gather(buf.clone()).swap_remove(root);
    }
    fn barrier(&self) {
        self.shared.barrier.wait();
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// Batch norm, dropout and a validation split: everything whose state or
/// randomness a rank could get out of step with.
fn net() -> ModelSpec {
    parse_notation(
        "6x6x2-8C3-BN-D0.3-R[8C3-BN-8C3-BN]-GAP-3",
        &NotationOptions::default(),
    )
    .unwrap()
}

fn model() -> Model {
    let mut m = net().build(11).unwrap();
    m.compile(OptimizerConfig::adam(), Loss::CategoricalCrossentropy);
    m
}

/// Weights and moving statistics after 2 epochs on 48 samples (batch 13:
/// shards of 7 and 6, the last batch of 9 samples in 5 and 4), validated on
/// the last 12, and the history.
fn run(config: FitConfig) -> (Vec<Vec<f32>>, History) {
    let mut m = model();
    let h = m
        .fit(
            &toy(60, 3),
            None,
            &config.with_batch_size(13).with_validation_split(0.2),
            &mut [],
        )
        .unwrap();
    (weights(&m), h)
}

#[test]
fn ranks_compute_the_same_bits_as_one_process_with_as_many_shards() {
    for n in [2usize, 3] {
        let (want, want_h) = run(quiet(2).with_shards(n));
        let results: Vec<(Vec<Vec<f32>>, History)> = std::thread::scope(|scope| {
            let handles: Vec<_> = Threads::group(n)
                .into_iter()
                .map(|t| scope.spawn(move || run(quiet(2).with_collective(Arc::new(t)))))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (rank, (w, h)) in results.iter().enumerate() {
            assert_eq!(w, &want, "{n} ranks: rank {rank}'s weights");
            for (a, b) in h.epochs.iter().zip(&want_h.epochs) {
                assert_eq!((a.loss, a.accuracy), (b.loss, b.accuracy), "{n} ranks");
                // Each rank validated its part of the 12 held-out samples.
                assert!(a.val_loss.is_some());
                assert_eq!(
                    (a.val_loss, a.val_accuracy),
                    (b.val_loss, b.val_accuracy),
                    "{n} ranks"
                );
            }
        }
    }
}

#[test]
fn shards_approximate_the_whole_batch_without_batch_norm_or_dropout() {
    // Without per-shard statistics or masks, sharding only reorders the
    // gradient's sums: the weights agree to rounding.
    let spec = parse_notation("6x6x2-8C3-P2-3", &NotationOptions::default()).unwrap();
    let train = |shards: usize| {
        let mut m = spec.build(4).unwrap();
        m.compile(OptimizerConfig::sgd(), Loss::CategoricalCrossentropy);
        m.fit(
            &toy(48, 5),
            None,
            &quiet(2).with_batch_size(16).with_shards(shards),
            &mut [],
        )
        .unwrap();
        weights(&m)
    };
    let (one, four) = (train(1), train(4));
    for (a, b) in one.iter().flatten().zip(four.iter().flatten()) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{a} vs {b}");
    }
    assert_ne!(one, four, "different summation order, so not the same bits");
}

/// Uneven shards (a batch of 13 in 7 + 6, or 5 + 4 + 4): each shard's loss
/// gradient must weigh `b_s / B`, not `1 / S`; the even splits above cannot
/// tell the two apart (with `1 / S` the weights differ by about 2e-4 here).
#[test]
fn uneven_shards_weigh_their_gradients_by_their_size() {
    let spec = parse_notation("6x6x2-8C3-P2-3", &NotationOptions::default()).unwrap();
    let train = |shards: usize| {
        let mut m = spec.build(4).unwrap();
        m.compile(OptimizerConfig::adam(), Loss::CategoricalCrossentropy);
        m.fit(
            &toy(52, 5),
            None,
            &quiet(3).with_batch_size(13).with_shards(shards),
            &mut [],
        )
        .unwrap();
        weights(&m)
    };
    let one = train(1);
    for shards in [2, 3] {
        let split = train(shards);
        let worst = max_diff(&one, &split);
        assert!(worst < 2e-6, "{shards} shards: weights differ by {worst}");
    }
}

#[test]
fn several_shards_per_rank_are_refused() {
    let mut m = model();
    let t = Threads::group(1).pop().unwrap();
    // A one-process group is fine with shards; a bigger group is not (one shard each).
    m.fit(
        &toy(8, 1),
        None,
        &quiet(1).with_shards(2).with_collective(Arc::new(t)),
        &mut [],
    )
    .unwrap();
    let ranks = Threads::group(2);
    let e = std::thread::scope(|s| {
        let hs: Vec<_> = ranks
            .into_iter()
            .map(|t| {
                s.spawn(move || {
                    let mut m = model();
                    m.fit(
                        &toy(8, 1),
                        None,
                        &quiet(1).with_shards(2).with_collective(Arc::new(t)),
                        &mut [],
                    )
                    .unwrap_err()
                    .to_string()
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert!(e[0].contains("one shard of each batch"), "{}", e[0]);
}

/// The largest difference between two models' values.
fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn synchronized_batch_norm_trains_what_one_process_trains_on_the_whole_batch() {
    // No dropout: the only difference sharding makes is then the batch-norm
    // statistics (and the order of the gradient's sums).
    let spec = parse_notation(
        "6x6x2-8C3-BN-R[8C3-BN-8C3-BN]-GAP-3",
        &NotationOptions::default(),
    )
    .unwrap();
    let train = |config: FitConfig| {
        let mut m = spec.build(8).unwrap();
        m.compile(OptimizerConfig::adam(), Loss::CategoricalCrossentropy);
        m.fit(&toy(48, 2), None, &config.with_batch_size(16), &mut [])
            .unwrap();
        weights(&m)
    };
    let whole = train(quiet(2));
    let ranks = |sync: bool| -> Vec<Vec<Vec<f32>>> {
        std::thread::scope(|scope| {
            let hs: Vec<_> = Threads::group(2)
                .into_iter()
                .map(|t| {
                    let cfg = quiet(2)
                        .with_collective(Arc::new(t))
                        .with_sync_batch_norm(sync);
                    scope.spawn(move || train(cfg))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    let (synced, per_rank) = (ranks(true), ranks(false));
    assert_eq!(synced[0], synced[1], "every rank holds the same weights");
    let d_sync = max_diff(&synced[0], &whole);
    let d_rank = max_diff(&per_rank[0], &whole);
    eprintln!("max |w - w_whole|: synchronized {d_sync:e}, per rank {d_rank:e}");
    assert!(d_sync < 1e-4, "synchronized: {d_sync}");
    assert!(
        d_rank > 100.0 * d_sync,
        "per rank {d_rank} vs synchronized {d_sync}"
    );
    // One process cannot share statistics between shards it runs in turn.
    let mut m = spec.build(8).unwrap();
    m.compile(OptimizerConfig::adam(), Loss::CategoricalCrossentropy);
    let e = m
        .fit(
            &toy(8, 1),
            None,
            &quiet(1).with_shards(2).with_sync_batch_norm(true),
            &mut [],
        )
        .unwrap_err();
    assert!(e.to_string().contains("needs MPI ranks"), "{e}");
}

/// A rate change on rank 0 only (the explorer is served by rank 0): halves
/// the rate from step 3 of the first epoch.
struct HalveOnRankZero;

impl Callback for HalveOnRankZero {
    fn on_batch_begin(&mut self, m: &mut Model, epoch: usize, step: usize, _: f32) -> Result<()> {
        if (epoch, step) == (0, 3) {
            m.set_lr_factor(0.5 * m.lr_factor());
        }
        Ok(())
    }
}

#[test]
fn a_rate_changed_on_rank_zero_is_every_ranks_rate() {
    let train = |config: FitConfig, halve: bool| {
        let mut m = model();
        let mut cb = HalveOnRankZero;
        let mut cbs: Vec<&mut dyn Callback> = Vec::new();
        if halve {
            cbs.push(&mut cb);
        }
        let config = config.with_batch_size(13).with_validation_split(0.2);
        m.fit(&toy(60, 3), None, &config, &mut cbs).unwrap();
        weights(&m)
    };
    let want = train(quiet(2).with_shards(2), true);
    assert_ne!(
        want,
        train(quiet(2).with_shards(2), false),
        "the change matters"
    );
    let got: Vec<Vec<Vec<f32>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = Threads::group(2)
            .into_iter()
            .map(|t| {
                let halve = t.rank == 0;
                scope.spawn(move || train(quiet(2).with_collective(Arc::new(t)), halve))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (rank, w) in got.iter().enumerate() {
        assert!(
            *w == want,
            "rank {rank}'s weights differ from the one-process run's"
        );
    }
}
