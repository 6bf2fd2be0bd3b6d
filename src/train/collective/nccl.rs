//! The NCCL collective of `cuda:N` workers (cudarc's `nccl`, built with the `cuda` feature).
//! One communicator per GPU, all made in this process by `ncclCommInitAll`; each runs on its
//! candle device's stream, so a collective is ordered after the kernels that produced its
//! input without extra synchronisation.
//!
//! NCCL calls are asynchronous: a rank that never arrives shows up as a stream that never
//! finishes. Each call therefore waits on an event with the group's timeout, and on timeout
//! aborts the communicator (`ncclCommAbort`, what dropping cudarc's `Comm` does), which
//! unblocks the stream, and fails with the rank and call that waited. NCCL does not say which
//! peer was late.
//!
//! Compiled and linted in CI (clippy with `--features cuda`); it has not run on a GPU here.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use candle_core::cuda::{CudaDType, CudaDevice};
use candle_core::op::BackpropOp;
use candle_core::{CudaStorage, DType, Device, Storage, Tensor};
use cudarc::driver::{DeviceRepr, ValidAsZeroBits};
use cudarc::nccl::safe::{Comm, NcclType, ReduceOp};

use super::{Collective, CollectiveError};

/// A communicator behind a lock: NCCL lets any thread use a communicator, but not two at once.
/// `None` once aborted.
struct SharedComm(Mutex<Option<Comm>>);

// SAFETY: `Comm` holds a raw `ncclComm_t`, which NCCL lets any thread use; the mutex keeps
// calls on one communicator from overlapping.
unsafe impl Send for SharedComm {}
unsafe impl Sync for SharedComm {}

#[derive(Clone, Copy)]
enum Kind {
    AllReduce,
    ReduceScatter,
    AllGather,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::AllReduce => "all_reduce",
            Kind::ReduceScatter => "reduce_scatter",
            Kind::AllGather => "all_gather",
        }
    }
}

pub struct NcclCollective {
    rank: usize,
    world_size: usize,
    device: CudaDevice,
    comm: SharedComm,
    timeout: Duration,
    /// Calls made so far by this rank (for the error message).
    calls: Mutex<u64>,
}

impl NcclCollective {
    /// One handle per device, rank r on `devices[r]`.
    pub fn group(devices: &[Device], timeout: Duration) -> Result<Vec<Self>> {
        let cuda: Vec<CudaDevice> =
            devices.iter().map(|d| Ok(d.as_cuda_device()?.clone())).collect::<Result<_>>()?;
        let streams = cuda.iter().map(|d| d.cuda_stream()).collect();
        let comms = Comm::from_devices(streams)
            .map_err(|e| anyhow!("cannot create the NCCL communicators for {devices:?}: {e:?}"))?;
        let world_size = comms.len();
        Ok(comms
            .into_iter()
            .zip(cuda)
            .enumerate()
            .map(|(rank, (comm, device))| Self {
                rank,
                world_size,
                device,
                comm: SharedComm(Mutex::new(Some(comm))),
                timeout,
                calls: Mutex::new(0),
            })
            .collect())
    }

    /// Enqueues one NCCL call on `x` into a fresh buffer of `out_len` elements and waits for
    /// it, at most the timeout.
    fn call(&self, kind: Kind, x: &Tensor, out_len: usize) -> Result<Tensor> {
        let op = kind.name();
        let x = x.flatten_all()?.contiguous()?;
        let poisoned = || anyhow!("an NCCL rank panicked");
        let mut guard = self.comm.0.lock().map_err(|_| poisoned())?;
        let call = {
            let mut calls = self.calls.lock().map_err(|_| poisoned())?;
            *calls += 1;
            *calls
        };
        let Some(comm) = guard.as_ref() else {
            let reason = format!("rank {}'s communicator was aborted after an earlier timeout", self.rank);
            return Err(CollectiveError::Aborted { reason }.into());
        };
        let storage = match x.dtype() {
            DType::F32 => enqueue::<f32>(comm, &self.device, &x, out_len, kind)?,
            DType::F64 => enqueue::<f64>(comm, &self.device, &x, out_len, kind)?,
            other => bail!("NCCL {op}: {other:?} tensors are not supported (f32 or f64 master weights)"),
        };
        let done = comm.stream().record_event(None).map_err(|e| anyhow!("NCCL {op}: {e:?}"))?;
        let started = Instant::now();
        while !done.try_is_complete().map_err(|e| anyhow!("NCCL {op} (rank {}): {e:?}", self.rank))? {
            let waited = started.elapsed();
            if waited >= self.timeout {
                // dropping the communicator aborts it, which ends the stuck kernel
                guard.take();
                return Err(CollectiveError::Timeout {
                    rank: self.rank,
                    world_size: self.world_size,
                    op,
                    call,
                    waited,
                    missing: Vec::new(),
                }
                .into());
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(Tensor::from_storage(storage, out_len, BackpropOp::none(), false))
    }
}

/// Enqueues `kind` on the communicator's stream: `x` (contiguous) in, `out_len` elements out.
fn enqueue<T>(comm: &Comm, device: &CudaDevice, x: &Tensor, out_len: usize, kind: Kind) -> Result<Storage>
where
    T: CudaDType + NcclType + DeviceRepr + ValidAsZeroBits,
{
    let n = x.elem_count();
    let (storage, layout) = x.storage_and_layout();
    let Storage::Cuda(cuda) = &*storage else {
        bail!("the NCCL collective got a tensor on {:?}", x.device());
    };
    let start = layout.start_offset();
    let input = cuda.as_cuda_slice::<T>()?.slice(start..start + n);
    let mut out = device.alloc_zeros::<T>(out_len)?;
    let status = match kind {
        Kind::AllReduce => comm.all_reduce(&input, &mut out, &ReduceOp::Sum),
        Kind::ReduceScatter => comm.reduce_scatter(&input, &mut out, &ReduceOp::Sum),
        Kind::AllGather => comm.all_gather(&input, &mut out),
    };
    status.map_err(|e| anyhow!("NCCL {} (rank {}): {e:?}", kind.name(), comm.rank()))?;
    Ok(Storage::Cuda(CudaStorage::wrap_cuda_slice(out, device.clone())))
}

impl Collective for NcclCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world_size
    }

    fn all_reduce_sum(&self, x: &Tensor) -> Result<Tensor> {
        self.call(Kind::AllReduce, x, x.elem_count())
    }

    fn reduce_scatter_sum(&self, x: &Tensor) -> Result<Tensor> {
        let n = x.elem_count();
        if !n.is_multiple_of(self.world_size) {
            bail!(
                "reduce_scatter of {n} elements over {} ranks: pad to a multiple of the world size",
                self.world_size
            );
        }
        self.call(Kind::ReduceScatter, x, n / self.world_size)
    }

    fn all_gather(&self, shard: &Tensor) -> Result<Tensor> {
        self.call(Kind::AllGather, shard, shard.elem_count() * self.world_size)
    }

    fn abort(&self, _reason: &str) {
        // dropping the communicator aborts it: the other ranks' pending calls end with an
        // NCCL error (or their timeout) instead of waiting for this rank
        if let Ok(mut comm) = self.comm.0.lock() {
            comm.take();
        }
    }
}
