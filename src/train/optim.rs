//! AdamW (decoupled weight decay, as torch.optim.AdamW), global gradient-norm clipping, and
//! gradient accumulation over micro-batches. State is kept by parameter name so it can be
//! checkpointed and restored. With several workers the state is sharded across them
//! (ZeRO-1, `train::zero`); `state` gathers it back by name.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Result};
use candle_core::{DType, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::adamw_update::{update, Coefficients};

/// Gradients by canonical parameter name.
pub type Grads = Vec<(String, Tensor)>;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
}

/// The dtype the update is computed and the moments kept in: f32 for f32, bf16 and f16
/// parameters, f64 for f64 ones (the equivalence tests' dtype).
pub fn master_dtype(param: DType) -> DType {
    if param == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// Whether a parameter of this dtype trains through a master copy (bf16, f16: mixed precision).
pub fn needs_master(param: DType) -> bool {
    master_dtype(param) != param
}

/// First and second moments in the master dtype (`master_dtype`), and for half-precision
/// parameters (mixed precision) an f32 master copy of the weights: the update is applied to
/// the master and the parameter holds its rounding, so steps smaller than a bf16 ulp (2^-8
/// relative) accumulate instead of vanishing in the rounding.
pub struct AdamW {
    pub cfg: AdamWConfig,
    /// Updates applied so far.
    pub step: usize,
    /// Unsharded moments by parameter name (one worker, or a restored checkpoint's before
    /// the first sharded update).
    pub(crate) moments: BTreeMap<String, (Tensor, Tensor)>,
    /// Unsharded f32 master weights of the half-precision parameters, by name (absent for
    /// f32 and f64 parameters, whose own values are the master).
    pub(crate) masters: BTreeMap<String, Tensor>,
    /// The sharded state once several workers have updated (`train::zero::step`).
    pub(crate) zero: Option<super::zero::ZeroState>,
}

impl AdamW {
    pub fn new(cfg: AdamWConfig) -> Self {
        Self { cfg, step: 0, moments: BTreeMap::new(), masters: BTreeMap::new(), zero: None }
    }

    /// One update of every parameter that has a gradient, at learning rate `lr`.
    pub fn apply(&mut self, params: &[(String, Var)], grads: &Grads, lr: f64) -> Result<()> {
        let by_name: HashMap<&str, &Tensor> = grads.iter().map(|(n, g)| (n.as_str(), g)).collect();
        self.step += 1;
        let c = Coefficients::new(&self.cfg, self.step, lr);
        for (name, var) in params {
            let Some(g) = by_name.get(name.as_str()) else { continue };
            let dtype = var.dtype();
            let master = master_dtype(dtype);
            let moments = self.moments.remove(name);
            let p = match self.masters.remove(name) {
                Some(p) => p,
                None => var.as_tensor().to_dtype(master)?,
            };
            let (p, m, v) = update(&p, &g.to_dtype(master)?, moments.as_ref().map(|(m, v)| (m, v)), c)?;
            var.set(&p.to_dtype(dtype)?)?;
            if needs_master(dtype) {
                self.masters.insert(name.clone(), p);
            }
            self.moments.insert(name.clone(), (m, v));
        }
        Ok(())
    }

    /// The state as named tensors (`exp_avg.NAME`, `exp_avg_sq.NAME`, and `master.NAME` for
    /// a half-precision parameter's f32 master) for a checkpoint; sharded state is gathered
    /// (every parameter's, zeros for moments never updated).
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let (gathered, gathered_masters) = match &self.zero {
            Some(zero) => (zero.moments()?, zero.masters()?),
            None => (BTreeMap::new(), BTreeMap::new()),
        };
        let moments = if gathered.is_empty() { &self.moments } else { &gathered };
        let masters = if gathered.is_empty() { &self.masters } else { &gathered_masters };
        let mut out = HashMap::new();
        for (name, (m, v)) in moments {
            out.insert(format!("exp_avg.{name}"), m.clone());
            out.insert(format!("exp_avg_sq.{name}"), v.clone());
        }
        for (name, p) in masters {
            out.insert(format!("master.{name}"), p.clone());
        }
        Ok(out)
    }

    /// Restores `state()` output and the step count.
    pub fn load_state(&mut self, step: usize, tensors: &HashMap<String, Tensor>) -> Result<()> {
        self.moments.clear();
        self.masters.clear();
        self.zero = None;
        for (key, p) in tensors {
            if let Some(name) = key.strip_prefix("master.") {
                self.masters.insert(name.to_string(), p.clone());
            }
        }
        for (key, m) in tensors {
            let Some(name) = key.strip_prefix("exp_avg.") else { continue };
            let Some(v) = tensors.get(&format!("exp_avg_sq.{name}")) else {
                bail!("optimizer state has exp_avg.{name} but no exp_avg_sq.{name}");
            };
            self.moments.insert(name.to_string(), (m.clone(), v.clone()));
        }
        self.step = step;
        Ok(())
    }
}

/// Scales gradients so their global L2 norm is at most `max_norm` (as
/// torch.nn.utils.clip_grad_norm_); returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut Grads, max_norm: f64) -> Result<f64> {
    let mut sq = 0f64;
    for (_, g) in grads.iter() {
        sq += g.to_dtype(DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
    }
    let norm = sq.sqrt();
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for (_, g) in grads.iter_mut() {
            *g = (&*g * coef)?;
        }
    }
    Ok(norm)
}

/// Sums gradients of several micro-batches (or several workers) by name.
#[derive(Default)]
pub struct GradSum {
    sums: BTreeMap<String, Tensor>,
}

impl GradSum {
    pub fn add(&mut self, grads: Grads) -> Result<()> {
        for (name, g) in grads {
            let s = match self.sums.remove(&name) {
                Some(prev) => (prev + g)?,
                None => g,
            };
            self.sums.insert(name, s);
        }
        Ok(())
    }

    pub fn take(self) -> Grads {
        self.sums.into_iter().collect()
    }
}
