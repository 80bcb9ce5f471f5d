//! `Collective` over MPI (the `mpi` crate, Open MPI or MPICH underneath).
//!
//! The gradient sum is MPI's classic bandwidth-optimal pair, written out so
//! that the order of additions is fixed: a reduce-scatter (every rank sends
//! segment `j` of its vector to rank `j`, which adds the N copies in rank
//! order) and an all-gather of the summed segments. Each rank sends and
//! receives `2 (N-1)/N` times the vector. `MPI_Allreduce` is not used: its
//! order of additions is the library's choice.

use crate::error::{CliError, CliResult};
use convnet_nn::Collective;
use mpi::collective::{CommunicatorCollectives, Root};
use mpi::datatype::{Partition, PartitionMut};
use mpi::environment::Universe;
use mpi::point_to_point::{Destination, Source};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::Count;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Kept until `finalize`, whose drop ends MPI.
static UNIVERSE: Mutex<Option<Universe>> = Mutex::new(None);

/// Tag of the arrival messages (apart from any other traffic).
const ARRIVAL_TAG: mpi::Tag = 7_707;

/// The world communicator.
pub struct MpiWorld {
    comm: SimpleCommunicator,
    rank: usize,
    size: usize,
    /// How long a rank waits for the others at a training step's collective
    /// before it ends the job (`None`: forever).
    timeout: Option<Duration>,
    /// Collectives entered so far (every rank enters the same ones in order).
    seq: AtomicU64,
}

// SAFETY: MPI is initialized with `Threading::Serialized`, and collectives
// are only called by the thread that trains (never two at once): the
// communicator handle may move between threads under that level.
unsafe impl Send for MpiWorld {}
unsafe impl Sync for MpiWorld {}

impl MpiWorld {
    pub fn init(timeout: Option<Duration>) -> CliResult<Self> {
        let (universe, level) = mpi::initialize_with_threading(mpi::Threading::Serialized)
            .ok_or_else(|| CliError::runtime("MPI was already initialized"))?;
        if level < mpi::Threading::Serialized {
            return Err(CliError::runtime(format!(
                "the MPI library offers threading level {level:?}; convnet needs Serialized"
            )));
        }
        let comm = universe.world();
        let (rank, size) = (comm.rank() as usize, comm.size() as usize);
        *UNIVERSE.lock().expect("not poisoned") = Some(universe);
        Ok(MpiWorld {
            comm,
            rank,
            size,
            timeout,
            seq: AtomicU64::new(0),
        })
    }

    /// Before a training step's collective: every rank tells every other
    /// that it has arrived (a small non-blocking message) and waits for
    /// theirs, at most the timeout. A rank that is stopped or hung never
    /// arrives: the others name it and end the job, instead of waiting in
    /// the collective forever.
    fn arrive(&self, what: &str) {
        let Some(timeout) = self.timeout else { return };
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + timeout;
        let mut got = vec![u64::MAX; self.size];
        let silent: Vec<usize> = mpi::request::scope(|scope| {
            let sends: Vec<_> = (0..self.size)
                .filter(|&r| r != self.rank)
                .map(|r| {
                    self.comm.process_at_rank(r as i32).immediate_send_with_tag(
                        scope,
                        &seq,
                        ARRIVAL_TAG,
                    )
                })
                .collect();
            let mut recvs: Vec<(usize, Option<_>)> = got
                .iter_mut()
                .enumerate()
                .filter(|(r, _)| *r != self.rank)
                .map(|(r, slot)| {
                    let req = self
                        .comm
                        .process_at_rank(r as i32)
                        .immediate_receive_into_with_tag(scope, slot, ARRIVAL_TAG);
                    (r, Some(req))
                })
                .collect();
            loop {
                for (_, slot) in recvs.iter_mut() {
                    if let Some(req) = slot.take() {
                        *slot = req.test().err();
                    }
                }
                let waiting: Vec<usize> = recvs
                    .iter()
                    .filter(|(_, s)| s.is_some())
                    .map(|(r, _)| *r)
                    .collect();
                if waiting.is_empty() {
                    for s in sends {
                        s.wait();
                    }
                    return waiting;
                }
                if Instant::now() >= deadline {
                    // Never returns: the requests die with the job.
                    eprintln!(
                        "error: rank {}: rank(s) {waiting:?} did not reach {what} (collective \
                         #{seq}) within {} s (--rank-timeout): stopped or hung; ending the job",
                        self.rank,
                        timeout.as_secs()
                    );
                    self.comm.abort(3);
                }
                // Spin while the others are about to arrive (the usual case,
                // within microseconds), then poll every millisecond.
                if Instant::now() + timeout < deadline + Duration::from_millis(20) {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        debug_assert!(silent.is_empty());
        debug_assert!(got
            .iter()
            .enumerate()
            .all(|(r, &k)| r == self.rank || k == seq));
    }
}

/// Ends MPI (drops the universe).
pub fn finalize() {
    drop(UNIVERSE.lock().expect("not poisoned").take());
}

/// `n` values split into `parts` segments as `numpy.array_split`: (counts, starts).
fn segments(n: usize, parts: usize) -> (Vec<Count>, Vec<Count>) {
    let (mut counts, mut starts, mut at) = (Vec::new(), Vec::new(), 0);
    for j in 0..parts {
        let len = n / parts + usize::from(j < n % parts);
        counts.push(len as Count);
        starts.push(at as Count);
        at += len;
    }
    (counts, starts)
}

impl Collective for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn sum_f32(&self, buf: &mut [f32]) {
        self.arrive("the gradient sum");
        let n = self.size;
        let (counts, starts) = segments(buf.len(), n);
        let mine = counts[self.rank] as usize;
        // Reduce-scatter: segment `rank` from every rank, in rank order.
        let mut recv = vec![0f32; mine * n];
        let recv_counts = vec![mine as Count; n];
        let recv_starts: Vec<Count> = (0..n).map(|i| (i * mine) as Count).collect();
        self.comm.all_to_all_varcount_into(
            &Partition::new(&buf[..], &counts[..], &starts[..]),
            &mut PartitionMut::new(&mut recv[..], &recv_counts[..], &recv_starts[..]),
        );
        let mut acc = recv[..mine].to_vec();
        for part in recv[mine..].chunks(mine.max(1)).take(n - 1) {
            for (a, b) in acc.iter_mut().zip(part) {
                *a += b;
            }
        }
        // All-gather the summed segments.
        self.comm.all_gather_varcount_into(
            &acc[..],
            &mut PartitionMut::new(buf, &counts[..], &starts[..]),
        );
    }
    fn sum_f64(&self, buf: &mut [f64]) {
        self.arrive("a sum of statistics");
        let mut all = vec![0f64; buf.len() * self.size];
        self.comm.all_gather_into(&buf[..], &mut all[..]);
        buf.copy_from_slice(&all[..buf.len()]);
        for other in all.chunks(buf.len().max(1)).skip(1).take(self.size - 1) {
            for (a, b) in buf.iter_mut().zip(other) {
                *a += b;
            }
        }
    }
    fn broadcast_f32(&self, buf: &mut [f32], root: usize) {
        self.arrive("a broadcast of the moving statistics");
        self.comm.process_at_rank(root as i32).broadcast_into(buf);
    }
    fn broadcast_bytes(&self, buf: &mut Vec<u8>, root: usize) {
        let p = self.comm.process_at_rank(root as i32);
        let mut len = buf.len() as u64;
        p.broadcast_into(&mut len);
        buf.resize(len as usize, 0);
        p.broadcast_into(&mut buf[..]);
    }
    fn barrier(&self) {
        self.comm.barrier();
    }
    fn abort(&self, code: i32) -> ! {
        self.comm.abort(code)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn segments_cover_the_vector() {
        let (c, s) = super::segments(10, 3);
        assert_eq!(c, vec![4, 3, 3]);
        assert_eq!(s, vec![0, 4, 7]);
        let (c, _) = super::segments(1, 3);
        assert_eq!(c, vec![1, 0, 0]);
    }
}
