//! Collectives between the data-parallel workers: the one interface through which gradients
//! and weights cross devices. `cpu:N` workers use the in-process implementation
//! ([`cpu::CpuCollective`]), so CI runs the same sharded optimizer path as GPUs; `cuda:N` workers
//! use NCCL through cudarc ([`nccl`], `cuda` feature).
//!
//! One worker per device, and each worker is a **thread** of the trainer's process, not a
//! process of its own: the step already fans out per worker with scoped threads, the replicas,
//! the judge client and the run's event log are shared by reference, and NCCL's
//! single-process path (`ncclCommInitAll`) needs no rendezvous. Threads do not scale past one
//! machine: multi-node training would run one process per GPU under the user's launcher
//! (planned, README "Several machines"); this trait is what such a process would implement
//! over `ncclCommInitRank`.
//!
//! Every call is collective: all ranks of the group make the same calls in the same order.
//! A call that has not completed within the group's timeout returns a [`CollectiveError`]
//! naming the rank that waited, on which call, and for whom, and ends the group, so the
//! step (and the run) fails instead of hanging.

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod nccl;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};

/// How long a rank waits in one collective before the run fails. The workers enter the
/// optimizer's collectives together (after every backward pass has joined), so a healthy
/// wait is the slowest rank's shard update: seconds, not minutes.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// One rank's handle on a group of `world_size` ranks. Tensors are 1-D and contiguous, of the
/// same dtype on every rank, on this rank's device.
pub trait Collective: Send + Sync {
    fn rank(&self) -> usize;
    fn world_size(&self) -> usize;
    /// Σ over ranks of `x` (n elements), on every rank.
    fn all_reduce_sum(&self, x: &Tensor) -> Result<Tensor>;
    /// `x`: world_size·s elements. Returns this rank's s elements of the Σ over ranks:
    /// elements [rank·s, (rank+1)·s).
    fn reduce_scatter_sum(&self, x: &Tensor) -> Result<Tensor>;
    /// `shard`: s elements. Returns world_size·s elements, rank r's shard at [r·s, (r+1)·s).
    fn all_gather(&self, shard: &Tensor) -> Result<Tensor>;
    /// Ends the group: every rank waiting now, or arriving later, gets `reason` as its error.
    /// A rank that fails between collectives calls this so the others do not wait out the
    /// timeout.
    fn abort(&self, reason: &str);
}

/// Why a collective did not complete.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CollectiveError {
    #[error(
        "collective timed out: rank {rank} of {world_size} waited {waited:?} in {op} (collective call \
         #{call}) for {}; the workers are out of step (a hung or failed device?)",
        waited_for(missing)
    )]
    Timeout {
        rank: usize,
        world_size: usize,
        op: &'static str,
        call: u64,
        waited: Duration,
        /// The ranks that never arrived (empty where the transport cannot tell: NCCL).
        missing: Vec<usize>,
    },
    #[error("collective call #{call}: rank {rank} called {op} while rank {other} called {other_op}")]
    Mismatch { rank: usize, op: &'static str, call: u64, other: usize, other_op: &'static str },
    #[error("collective group ended: {reason}")]
    Aborted { reason: String },
}

fn waited_for(missing: &[usize]) -> String {
    if missing.is_empty() {
        "the other ranks (NCCL does not say which)".to_string()
    } else {
        format!("rank(s) {missing:?}, which never arrived")
    }
}

/// One handle per worker for `devices` (as `--devices` parsed them), each bounded by
/// `timeout`: in-process CPU for `cpu`/`cpu:N`, NCCL for `cuda:N,...`.
pub fn group_for(devices: &[Device], timeout: Duration) -> Result<Vec<Arc<dyn Collective>>> {
    if devices.is_empty() {
        bail!("a collective group needs at least one device");
    }
    if devices.iter().all(|d| d.is_cpu()) {
        return Ok(cpu::CpuCollective::group(devices.len(), timeout)?
            .into_iter()
            .map(|c| Arc::new(c) as Arc<dyn Collective>)
            .collect());
    }
    if devices.iter().all(|d| d.is_cuda()) {
        #[cfg(feature = "cuda")]
        return Ok(nccl::NcclCollective::group(devices, timeout)?
            .into_iter()
            .map(|c| Arc::new(c) as Arc<dyn Collective>)
            .collect());
        #[cfg(not(feature = "cuda"))]
        bail!("GPU workers need a build with the cuda feature (`cargo build --release --features cuda`)");
    }
    bail!("devices mix CPU and GPU workers ({devices:?}): use cpu:N or cuda:0,cuda:1,... alone")
}
