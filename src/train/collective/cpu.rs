//! The in-process collective of `cpu:N` workers: ranks are threads of one process meeting at
//! a mutex. Each call waits until every rank has put in its tensor; the last to arrive
//! combines them (a sum in rank order, or a concatenation), so every rank reads the same
//! result, bit for bit.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use candle_core::Tensor;

use super::{Collective, CollectiveError};

impl CpuCollective {
    /// The handles of one group: `world_size` of them, rank r at index r; a call waits at
    /// most `timeout`.
    pub fn group(world_size: usize, timeout: Duration) -> Result<Vec<Self>> {
        if world_size == 0 {
            bail!("a collective group needs at least one rank");
        }
        let shared = Arc::new(Shared {
            world_size,
            timeout,
            state: Mutex::new(State {
                completed: 0,
                op: None,
                inputs: vec![None; world_size],
                result: None,
                ended: None,
            }),
            arrived: Condvar::new(),
        });
        Ok((0..world_size).map(|rank| Self { rank, shared: shared.clone() }).collect())
    }
}

/// One rank's handle. Calls from one handle must not overlap (one worker thread per rank).
pub struct CpuCollective {
    rank: usize,
    shared: Arc<Shared>,
}

struct Shared {
    world_size: usize,
    timeout: Duration,
    state: Mutex<State>,
    arrived: Condvar,
}

#[derive(Clone, Copy, PartialEq)]
enum Combine {
    Sum,
    Concat,
}

struct State {
    /// Calls completed so far; the call being gathered is `completed + 1`.
    completed: u64,
    /// The pending call's op and the rank that named it first.
    op: Option<(&'static str, usize)>,
    /// The pending call's tensors, by rank.
    inputs: Vec<Option<Tensor>>,
    /// The last completed call's combined tensor: kept until the next call completes, which
    /// cannot happen before every rank has read it (each must put in its next tensor first).
    result: Option<(u64, Tensor)>,
    /// Set once the group has failed (a timeout, a mismatch, an abort); every later call fails.
    ended: Option<String>,
}

impl CpuCollective {
    /// Puts in `x` for the pending call and waits for the combined result.
    fn meet(&self, op: &'static str, combine: Combine, x: &Tensor) -> Result<Tensor> {
        if !x.device().is_cpu() {
            bail!("the CPU collective got a tensor on {:?}", x.device());
        }
        let x = x.flatten_all()?;
        let shared = &*self.shared;
        let mut state = lock(shared)?;
        if let Some(reason) = &state.ended {
            return Err(CollectiveError::Aborted { reason: reason.clone() }.into());
        }
        let call = state.completed + 1;
        match state.op {
            Some((other_op, other)) if other_op != op => {
                let e = CollectiveError::Mismatch { rank: self.rank, op, call, other, other_op };
                state.ended = Some(e.to_string());
                shared.arrived.notify_all();
                return Err(e.into());
            }
            Some(_) => {}
            None => state.op = Some((op, self.rank)),
        }
        if state.inputs[self.rank].is_some() {
            bail!("rank {} called {op} twice at once (collective call #{call})", self.rank);
        }
        state.inputs[self.rank] = Some(x);
        if state.inputs.iter().all(Option::is_some) {
            let inputs: Vec<Tensor> = state.inputs.iter_mut().map(|t| t.take().expect("all some")).collect();
            state.op = None;
            match combined(&inputs, combine) {
                Ok(result) => {
                    state.result = Some((call, result));
                    state.completed = call;
                    shared.arrived.notify_all();
                }
                Err(e) => {
                    let reason = format!("collective call #{call} ({op}): {e}");
                    state.ended = Some(reason.clone());
                    shared.arrived.notify_all();
                    bail!(reason);
                }
            }
        } else {
            let started = Instant::now();
            while state.completed < call {
                if let Some(reason) = &state.ended {
                    return Err(CollectiveError::Aborted { reason: reason.clone() }.into());
                }
                let waited = started.elapsed();
                if waited >= shared.timeout {
                    let missing: Vec<usize> =
                        (0..shared.world_size).filter(|&r| state.inputs[r].is_none()).collect();
                    let e = CollectiveError::Timeout {
                        rank: self.rank,
                        world_size: shared.world_size,
                        op,
                        call,
                        waited,
                        missing,
                    };
                    state.ended = Some(e.to_string());
                    shared.arrived.notify_all();
                    return Err(e.into());
                }
                state = shared
                    .arrived
                    .wait_timeout(state, shared.timeout - waited)
                    .map_err(|_| anyhow!("a collective rank panicked"))?
                    .0;
            }
        }
        match &state.result {
            Some((done, result)) if *done == call => Ok(result.clone()),
            _ => bail!("collective call #{call}: the result was replaced before rank {} read it", self.rank),
        }
    }
}

fn lock(shared: &Shared) -> Result<MutexGuard<'_, State>> {
    shared.state.lock().map_err(|_| anyhow!("a collective rank panicked"))
}

/// Σ in rank order (the same order, so the same bits, for every rank) or the concatenation.
fn combined(inputs: &[Tensor], combine: Combine) -> Result<Tensor> {
    let n = inputs[0].elem_count();
    if let Some((r, t)) =
        inputs.iter().enumerate().find(|(_, t)| t.elem_count() != n || t.dtype() != inputs[0].dtype())
    {
        bail!(
            "rank 0 put in {n} {:?} elements, rank {r} {} {:?}",
            inputs[0].dtype(),
            t.elem_count(),
            t.dtype()
        );
    }
    Ok(match combine {
        Combine::Sum => {
            let mut sum = inputs[0].clone();
            for t in &inputs[1..] {
                sum = (sum + t)?;
            }
            sum
        }
        Combine::Concat => Tensor::cat(inputs, 0)?,
    })
}

impl Collective for CpuCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.shared.world_size
    }

    fn all_reduce_sum(&self, x: &Tensor) -> Result<Tensor> {
        self.meet("all_reduce", Combine::Sum, x)
    }

    fn reduce_scatter_sum(&self, x: &Tensor) -> Result<Tensor> {
        let world = self.shared.world_size;
        let sum = self.meet("reduce_scatter", Combine::Sum, x)?;
        let n = sum.elem_count();
        if !n.is_multiple_of(world) {
            bail!("reduce_scatter of {n} elements over {world} ranks: pad to a multiple of the world size");
        }
        let s = n / world;
        Ok(sum.narrow(0, self.rank * s, s)?.copy()?)
    }

    fn all_gather(&self, shard: &Tensor) -> Result<Tensor> {
        self.meet("all_gather", Combine::Concat, shard)
    }

    fn abort(&self, reason: &str) {
        if let Ok(mut state) = self.shared.state.lock() {
            if state.ended.is_none() {
                state.ended = Some(format!("rank {} stopped: {reason}", self.rank));
            }
            self.shared.arrived.notify_all();
        }
    }
}
