//! The GRPO loss: a per-token clipped surrogate with separate low and high clip
//! ("clip-higher"; the human reference may have its own pair), an optional KL term to a
//! frozen reference policy (k3 estimator), each row weighted (policy rows 1, the human
//! reference the HRI weight), aggregated over tokens; plus an optional behaviour-cloning
//! term on the human reference (train::bc).
//!
//! The loss is a sum over tokens of a function of each token's log-prob, so it is given to
//! the chunked backward as per-token coefficients c_t = dL/dlogp_t (model::logprobs).

use serde::{Deserialize, Serialize};

/// How token losses become one number.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Aggregation {
    /// Σ over all tokens / total tokens (RECIPE.md)
    TokenMean,
    /// mean over rows of each row's token mean
    SequenceMean,
    /// Σ over all tokens / (rows x constant) (Dr. GRPO; the constant is the max response length)
    Constant { tokens: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    pub clip_low: f64,
    pub clip_high: f64,
    pub aggregation: Aggregation,
    /// Coefficient of the k3 KL estimate to the frozen reference policy (0 = off).
    pub kl_coef: f64,
    /// The human reference row's clip pair (the fork's gt_clip_ratio_low / high); unset: the
    /// policy rows' `clip_low` / `clip_high`.
    pub reference_clip_low: Option<f64>,
    pub reference_clip_high: Option<f64>,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            clip_low: 0.2,
            clip_high: 0.28,
            aggregation: Aggregation::TokenMean,
            kl_coef: 0.0,
            reference_clip_low: None,
            reference_clip_high: None,
        }
    }
}

impl LossConfig {
    /// (low, high) of a row's clip range [1 − low, 1 + high].
    pub fn clip(&self, reference: bool) -> (f64, f64) {
        if reference {
            (
                self.reference_clip_low.unwrap_or(self.clip_low),
                self.reference_clip_high.unwrap_or(self.clip_high),
            )
        } else {
            (self.clip_low, self.clip_high)
        }
    }
}

/// One row's inputs to the loss: log-probs of its response tokens under the policy that
/// generated them (old), optionally under the frozen reference policy, and its advantage
/// and weight.
#[derive(Debug, Clone)]
pub struct RowTerms<'a> {
    pub old_logprobs: &'a [f64],
    pub ref_logprobs: Option<&'a [f64]>,
    pub advantage: f64,
    pub weight: f64,
    /// The human reference row (its own clip pair, when set).
    pub reference: bool,
    /// Behaviour-cloning coefficient: this row's tokens add bc_coef · (−logp) / (reference
    /// tokens in the batch) to the loss; 0 for policy rows and when BC is off.
    pub bc_coef: f64,
}

impl<'a> RowTerms<'a> {
    /// A policy row: weight 1, no behaviour cloning.
    pub fn policy(old_logprobs: &'a [f64], advantage: f64) -> Self {
        Self { old_logprobs, ref_logprobs: None, advantage, weight: 1.0, reference: false, bc_coef: 0.0 }
    }
}

/// The loss value, per-token coefficients dL/dlogp, and statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LossOutput {
    pub loss: f64,
    /// Per row, per token: dL/dlogp.
    pub coefficients: Vec<Vec<f64>>,
    /// Share of tokens where the low clip bound was active (ratio < 1 − low, A < 0).
    pub clip_frac_low: f64,
    /// Share where the high bound was active (ratio > 1 + high, A > 0).
    pub clip_frac_high: f64,
    /// Mean k3 KL estimate over tokens (0 without a reference policy).
    pub kl: f64,
    pub tokens: usize,
    /// Counts behind the shares, so parts of a batch can be merged.
    pub clipped_low: usize,
    pub clipped_high: usize,
    pub kl_sum: f64,
    /// Σ −logp over the tokens of rows with behaviour cloning, and their count.
    pub bc_nll_sum: f64,
    pub bc_tokens: usize,
    /// bc_nll_sum / bc_tokens: the references' mean NLL per token; None without BC.
    pub bc_nll: Option<f64>,
}

impl LossOutput {
    /// Sums the losses of disjoint parts of one batch (micro-batches, workers), each computed
    /// with the whole batch's `BatchTotals`; coefficients are not kept.
    pub fn merge(parts: &[LossOutput]) -> LossOutput {
        let mut out = LossOutput::default();
        for p in parts {
            out.loss += p.loss;
            out.tokens += p.tokens;
            out.clipped_low += p.clipped_low;
            out.clipped_high += p.clipped_high;
            out.kl_sum += p.kl_sum;
            out.bc_nll_sum += p.bc_nll_sum;
            out.bc_tokens += p.bc_tokens;
        }
        out.set_shares();
        out
    }

    fn set_shares(&mut self) {
        let tok = self.tokens.max(1) as f64;
        self.clip_frac_low = self.clipped_low as f64 / tok;
        self.clip_frac_high = self.clipped_high as f64 / tok;
        self.kl = self.kl_sum / tok;
        self.bc_nll = (self.bc_tokens > 0).then(|| self.bc_nll_sum / self.bc_tokens as f64);
    }
}

/// The size of the whole batch an aggregation divides by. A part of the batch (a
/// micro-batch, one worker's rows) computed with the whole batch's totals gives exactly its
/// share of the loss and of the gradient, so the parts sum to the whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchTotals {
    pub rows: usize,
    pub tokens: usize,
    /// Response tokens of the human reference rows (behaviour cloning's mean is over these).
    pub reference_tokens: usize,
}

impl BatchTotals {
    pub fn of(rows: &[RowTerms]) -> Self {
        Self {
            rows: rows.len(),
            tokens: rows.iter().map(|r| r.old_logprobs.len()).sum(),
            reference_tokens: rows.iter().filter(|r| r.reference).map(|r| r.old_logprobs.len()).sum(),
        }
    }
}

/// `new_logprobs[i]` are row i's response tokens under the current policy; `rows` is the
/// whole batch.
pub fn grpo_loss(cfg: &LossConfig, rows: &[RowTerms], new_logprobs: &[Vec<f64>]) -> LossOutput {
    grpo_loss_part(cfg, rows, new_logprobs, BatchTotals::of(rows))
}

/// The loss of `rows`, a part of a batch of `totals`.
pub fn grpo_loss_part(
    cfg: &LossConfig,
    rows: &[RowTerms],
    new_logprobs: &[Vec<f64>],
    totals: BatchTotals,
) -> LossOutput {
    assert_eq!(rows.len(), new_logprobs.len(), "one log-prob row per loss row");
    let total_tokens = totals.tokens;
    let b = totals.rows.max(1) as f64;
    let mut out =
        LossOutput { tokens: rows.iter().map(|r| r.old_logprobs.len()).sum(), ..Default::default() };
    let (mut low, mut high, mut kl_sum) = (0usize, 0usize, 0.0f64);
    let (mut bc_nll_sum, mut bc_tokens) = (0.0f64, 0usize);
    for (row, new) in rows.iter().zip(new_logprobs) {
        assert_eq!(row.old_logprobs.len(), new.len(), "old and new log-probs cover the same tokens");
        let n = new.len();
        // each token's share of the aggregate
        let scale = match cfg.aggregation {
            Aggregation::TokenMean => 1.0 / total_tokens.max(1) as f64,
            Aggregation::SequenceMean => 1.0 / (b * n.max(1) as f64),
            Aggregation::Constant { tokens } => 1.0 / (b * tokens),
        } * row.weight;
        let a = row.advantage;
        let (clip_low, clip_high) = cfg.clip(row.reference);
        // behaviour cloning: each token's share of the references' mean NLL
        let bc = if row.bc_coef != 0.0 { row.bc_coef / totals.reference_tokens.max(1) as f64 } else { 0.0 };
        let mut coeffs = Vec::with_capacity(n);
        for t in 0..n {
            let ratio = (new[t] - row.old_logprobs[t]).exp();
            let unclipped = ratio * a;
            let clamped = ratio.clamp(1.0 - clip_low, 1.0 + clip_high);
            let clipped = clamped * a;
            // loss = −min(r·A, clip(r)·A); d/dlogp of r is r, of a clamped r is 0
            let (token_loss, dloss) = if unclipped <= clipped {
                (-unclipped, -a * ratio)
            } else {
                let inside = clamped == ratio;
                (-clipped, if inside { -a * ratio } else { 0.0 })
            };
            if unclipped > clipped {
                if ratio < 1.0 - clip_low {
                    low += 1;
                } else {
                    high += 1;
                }
            }
            let (mut l, mut d) = (token_loss, dloss);
            if let (Some(refs), true) = (row.ref_logprobs, cfg.kl_coef != 0.0) {
                // k3 = e^(ref − new) − (ref − new) − 1; d/dnew = 1 − e^(ref − new)
                let diff = refs[t] - new[t];
                let k3 = diff.exp() - diff - 1.0;
                kl_sum += k3;
                l += cfg.kl_coef * k3;
                d += cfg.kl_coef * (1.0 - diff.exp());
            }
            out.loss += scale * l;
            let mut c = scale * d;
            if bc != 0.0 {
                // + bc · (−logp): its gradient in logp is −bc
                out.loss -= bc * new[t];
                c -= bc;
                bc_nll_sum -= new[t];
                bc_tokens += 1;
            }
            coeffs.push(c);
        }
        out.coefficients.push(coeffs);
    }
    out.clipped_low = low;
    out.clipped_high = high;
    out.kl_sum = kl_sum;
    out.bc_nll_sum = bc_nll_sum;
    out.bc_tokens = bc_tokens;
    out.set_shares();
    out
}
