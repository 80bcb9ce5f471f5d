//! `Collective` over MPI (the `mpi` crate, Open MPI or MPICH underneath).
//!
//! The gradient sum is MPI's classic bandwidth-optimal pair, written out so
//! that the order of additions is fixed: a reduce-scatter (every rank sends
//! segment `j` of its vector to rank `j`, which adds the N copies in rank
//! order) and an all-gather of the summed segments. Each rank sends and
//! receives `2 (N-1)/N` times the vector. `MPI_Allreduce` is not used: its
//! order of additions is the library's choice. The step collectives are
//! non-blocking point-to-point messages awaited with `--rank-timeout`, so
//! that a stopped rank is named and the job ends (a blocking collective
//! cannot be left).

use crate::error::{CliError, CliResult};
use convnet_nn::Collective;
use mpi::collective::{CommunicatorCollectives, Root};
use mpi::datatype::Equivalence;
use mpi::environment::Universe;
use mpi::point_to_point::{Destination, Source};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::Count;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Kept until `finalize`, whose drop ends MPI.
static UNIVERSE: Mutex<Option<Universe>> = Mutex::new(None);

/// Tags of the step collectives' messages (apart from any other traffic;
/// between two ranks, messages of one tag arrive in the order sent).
const SCATTER_TAG: mpi::Tag = 7_701;
const GATHER_TAG: mpi::Tag = 7_702;
const STATS_TAG: mpi::Tag = 7_703;
const BROADCAST_TAG: mpi::Tag = 7_704;

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

    /// One exchange of a training step's collective, written as point-to-point
    /// messages so that a wait can end: every send and receive is posted at
    /// once, then the receives (the other ranks' parts) are awaited at most
    /// the timeout. A rank that is stopped or hung never sends its part: the
    /// others name it and end the job, instead of waiting forever. (Waiting
    /// only before a blocking collective left a window: a rank stopped after
    /// it had arrived but inside the collective hung the job.)
    fn exchange<T: Equivalence>(
        &self,
        what: &str,
        tag: mpi::Tag,
        sends: &[(usize, &[T])],
        recvs: Vec<(usize, &mut [T])>,
    ) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let start = Instant::now();
        mpi::request::scope(|scope| {
            let mut sent: Vec<(usize, Option<_>)> = sends
                .iter()
                .map(|&(r, part)| {
                    let to = self.comm.process_at_rank(r as i32);
                    (r, Some(to.immediate_send_with_tag(scope, part, tag)))
                })
                .collect();
            let mut got: Vec<(usize, Option<_>)> = recvs
                .into_iter()
                .map(|(r, part)| {
                    let from = self.comm.process_at_rank(r as i32);
                    (
                        r,
                        Some(from.immediate_receive_into_with_tag(scope, part, tag)),
                    )
                })
                .collect();
            let Some(timeout) = self.timeout else {
                for (_, req) in got.into_iter().chain(sent) {
                    req.expect("posted").wait();
                }
                return;
            };
            loop {
                for (_, slot) in got.iter_mut().chain(sent.iter_mut()) {
                    if let Some(req) = slot.take() {
                        *slot = req.test().err();
                    }
                }
                // The ranks whose parts have not come; once all have, the
                // ranks that have not taken this one's.
                let pending = |v: &[(usize, Option<_>)]| -> Vec<usize> {
                    v.iter()
                        .filter(|(_, s)| s.is_some())
                        .map(|(r, _)| *r)
                        .collect()
                };
                let waiting = match pending(&got) {
                    w if w.is_empty() => pending(&sent),
                    w => w,
                };
                if waiting.is_empty() {
                    return;
                }
                if start.elapsed() >= timeout {
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
                if start.elapsed() < Duration::from_millis(20) {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
    }

    /// The other ranks, in rank order.
    fn others(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.size).filter(move |&r| r != self.rank)
    }
}

/// Ends MPI (drops the universe).
pub fn finalize() {
    drop(UNIVERSE.lock().expect("not poisoned").take());
}

/// `buf` cut into consecutive pieces of `sizes`, each with its rank, without
/// the piece of rank `skip` (this rank's own, filled in place).
fn chunks_except<'b, T>(
    mut buf: &'b mut [T],
    sizes: &[usize],
    skip: usize,
) -> Vec<(usize, &'b mut [T])> {
    let mut out = Vec::new();
    for (r, &len) in sizes.iter().enumerate() {
        let (piece, rest) = std::mem::take(&mut buf).split_at_mut(len);
        buf = rest;
        if r != skip {
            out.push((r, piece));
        }
    }
    out
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
        let n = self.size;
        let (counts, starts) = segments(buf.len(), n);
        let seg = |r: usize| starts[r] as usize..(starts[r] + counts[r]) as usize;
        let mine = counts[self.rank] as usize;
        // Reduce-scatter: segment `rank` of every rank's vector, added in
        // rank order (copy `r` at `recv[r * mine..]`, this rank's own too).
        let mut recv = vec![0f32; mine * n];
        recv[self.rank * mine..][..mine].copy_from_slice(&buf[seg(self.rank)]);
        let sends: Vec<(usize, &[f32])> = self.others().map(|r| (r, &buf[seg(r)])).collect();
        let recvs = chunks_except(&mut recv, &vec![mine; n], self.rank);
        self.exchange("the gradient sum", SCATTER_TAG, &sends, recvs);
        let mut acc = recv[..mine].to_vec();
        for part in recv[mine..].chunks(mine.max(1)).take(n - 1) {
            for (a, b) in acc.iter_mut().zip(part) {
                *a += b;
            }
        }
        // All-gather the summed segments.
        buf[seg(self.rank)].copy_from_slice(&acc);
        let sends: Vec<(usize, &[f32])> = self.others().map(|r| (r, &acc[..])).collect();
        let sizes: Vec<usize> = counts.iter().map(|&c| c as usize).collect();
        let recvs = chunks_except(buf, &sizes, self.rank);
        self.exchange("the gradient sum's gather", GATHER_TAG, &sends, recvs);
    }
    fn sum_f64(&self, buf: &mut [f64]) {
        // Every rank's vector, then the sum in rank order.
        let len = buf.len();
        let mut all = vec![0f64; len * self.size];
        all[self.rank * len..][..len].copy_from_slice(buf);
        let sends: Vec<(usize, &[f64])> = self.others().map(|r| (r, &buf[..])).collect();
        let recvs = chunks_except(&mut all, &vec![len; self.size], self.rank);
        self.exchange("a sum of statistics", STATS_TAG, &sends, recvs);
        buf.copy_from_slice(&all[..len]);
        for other in all.chunks(len.max(1)).skip(1).take(self.size - 1) {
            for (a, b) in buf.iter_mut().zip(other) {
                *a += b;
            }
        }
    }
    fn broadcast_f32(&self, buf: &mut [f32], root: usize) {
        let what = "a broadcast of the moving statistics";
        if self.rank == root {
            let sends: Vec<(usize, &[f32])> = self.others().map(|r| (r, &buf[..])).collect();
            self.exchange(what, BROADCAST_TAG, &sends, Vec::new());
        } else {
            self.exchange::<f32>(what, BROADCAST_TAG, &[], vec![(root, buf)]);
        }
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
