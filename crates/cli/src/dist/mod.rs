//! The process group `convnet` runs in: one process, or the ranks that
//! `mpirun` started (cargo feature `mpi`).
//!
//! `init` is called first thing in `main`: under `mpirun -np N` (N > 1) it
//! initializes MPI and every command sees the ranks through `world()`;
//! `finish` ends MPI after a successful command, `fail` ends the whole job
//! after an error on any rank (MPI_Abort), so that no rank waits forever in
//! a collective for one that has stopped.

use crate::error::{CliError, CliResult};
use convnet_nn::{Collective, SingleProcess};
use std::sync::{Arc, OnceLock};

#[cfg(feature = "mpi")]
mod mpi_world;

static WORLD: OnceLock<Arc<dyn Collective>> = OnceLock::new();

/// Ranks of this job as the launcher tells them (Open MPI, MPICH/PMI), if any.
fn launched_ranks() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
}

/// Ranks on this machine (to share its cores between them).
pub fn local_ranks() -> usize {
    ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// Default of `--rank-timeout`: seconds a rank waits for the others at a
/// training step before it ends the job.
pub const DEFAULT_RANK_TIMEOUT: u64 = 300;

/// `--rank-timeout`, read before the command line is parsed (MPI starts first).
#[cfg(feature = "mpi")]
fn rank_timeout() -> CliResult<Option<std::time::Duration>> {
    let args: Vec<String> = std::env::args().collect();
    let value = args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--rank-timeout=")
            .map(str::to_string)
            .or_else(|| {
                (a == "--rank-timeout").then(|| args.get(i + 1).cloned().unwrap_or_default())
            })
    });
    let secs = match value {
        None => DEFAULT_RANK_TIMEOUT,
        Some(v) => v.parse().map_err(|_| {
            CliError::usage(format!(
                "--rank-timeout '{v}': expected whole seconds (0: no limit)"
            ))
        })?,
    };
    Ok((secs > 0).then(|| std::time::Duration::from_secs(secs)))
}

/// Joins the job's ranks when started by `mpirun` with more than one.
pub fn init() -> CliResult<()> {
    let ranks = launched_ranks().unwrap_or(1);
    if ranks <= 1 {
        return Ok(());
    }
    #[cfg(feature = "mpi")]
    {
        let world = mpi_world::MpiWorld::init(rank_timeout()?)?;
        let _ = WORLD.set(Arc::new(world));
        Ok(())
    }
    #[cfg(not(feature = "mpi"))]
    Err(CliError::usage(format!(
        "started as one of {ranks} MPI ranks, but this convnet was built without MPI: \
         install OpenMPI (apt-get install libopenmpi-dev openmpi-bin libclang-dev) and \
         build with `cargo build --release -p convnet-cli --features mpi`"
    )))
}

/// The ranks of this job (a single process when not under `mpirun`).
pub fn world() -> Arc<dyn Collective> {
    WORLD
        .get()
        .cloned()
        .unwrap_or_else(|| Arc::new(SingleProcess))
}

/// Ends MPI after a successful command (no-op in a single process).
pub fn finish() {
    #[cfg(feature = "mpi")]
    if WORLD.get().is_some() {
        mpi_world::finalize();
    }
}

/// Ends the process after an error, and every other rank of the job with it.
pub fn fail(code: i32) -> ! {
    match WORLD.get() {
        Some(w) => w.abort(code),
        None => std::process::exit(code),
    }
}

/// The run folder's path, chosen by rank 0 (which creates it) and sent to
/// every rank.
pub fn agree_on_path(
    root_choice: impl FnOnce() -> CliResult<std::path::PathBuf>,
) -> CliResult<std::path::PathBuf> {
    let w = world();
    if w.size() == 1 {
        return root_choice();
    }
    let mut bytes = if w.rank() == 0 {
        root_choice()?.to_string_lossy().into_owned().into_bytes()
    } else {
        Vec::new()
    };
    w.broadcast_bytes(&mut bytes, 0);
    String::from_utf8(bytes)
        .map(std::path::PathBuf::from)
        .map_err(|_| CliError::runtime("rank 0 sent a run folder that is not UTF-8"))
}
