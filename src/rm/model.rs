//! The reward model in memory: a language model and a scalar head w [D] on the
//! final-normed hidden state of a row's last token, r = h_last · w. A row is the chat-template
//! prompt followed by the story and the end token (no thinking: the story is what is scored),
//! so the last token is the end token and its state has read the whole story.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};

use super::manifest::{Manifest, HEAD_FILE, HEAD_TENSOR};
use crate::lm::LanguageModel;
use crate::model::LoadOptions;
use crate::train::optim::master_dtype;
use crate::train::trained::Weights;

/// Tokens one scoring pass packs at most (rows are whole; a longer row passes alone).
pub const SCORE_TOKENS_PER_PASS: usize = 16_384;

pub struct RewardModel {
    pub lm: LanguageModel,
    /// [D] in the model's master dtype (f32; f64 for an f64 model), trainable.
    pub head: Var,
    /// Tokens a row keeps at most (prompt + story + end token).
    pub max_tokens: usize,
}

impl RewardModel {
    /// A fresh head over an opened language model: w ~ N(0, 1/D) from `seed`, so a first
    /// score is of order one and the model's own weights receive gradient from the start.
    pub fn new(lm: LanguageModel, max_tokens: usize, seed: u64) -> Result<Self> {
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal};
        if max_tokens < 2 {
            bail!("--max-tokens {max_tokens}: a row needs at least 2 tokens");
        }
        let d = lm.model.config().hidden_size;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0.0f32, (1.0 / d as f32).sqrt()).map_err(|e| anyhow!("{e}"))?;
        let w: Vec<f32> = (0..d).map(|_| normal.sample(&mut rng)).collect();
        let dtype = master_dtype(lm.model.dtype());
        let head = Var::from_tensor(&Tensor::new(w.as_slice(), lm.model.device())?.to_dtype(dtype)?)?;
        Ok(Self { lm, head, max_tokens })
    }

    /// A trained reward model folder (`rm train --out`), on `device`.
    pub fn open(rm_dir: &Path, device: &Device) -> Result<Self> {
        let m = Manifest::load(rm_dir)?;
        let weights_dir = m.weights_dir(rm_dir);
        let dtype = crate::device::parse_dtype(&m.dtype)
            .with_context(|| format!("{}: dtype", Manifest::path(rm_dir).display()))?;
        let lm = Weights::checkpoint(&m.base_model, &weights_dir)?
            .open(&LoadOptions::new(dtype, device.clone()))
            .with_context(|| format!("opening the reward model {}", rm_dir.display()))?;
        let head =
            read_head(&weights_dir, lm.model.config().hidden_size, master_dtype(lm.model.dtype()), device)?;
        Ok(Self { lm, head: Var::from_tensor(&head)?, max_tokens: m.max_tokens })
    }

    /// Restores the head saved in a checkpoint folder.
    pub fn load_head(&self, dir: &Path) -> Result<()> {
        let d = self.lm.model.config().hidden_size;
        self.head.set(&read_head(dir, d, self.head.dtype(), self.lm.model.device())?)?;
        Ok(())
    }

    /// The head as a checkpoint's extra file.
    pub fn head_tensors(&self) -> Result<HashMap<String, Tensor>> {
        Ok(HashMap::from([(HEAD_TENSOR.to_string(), self.head.as_tensor().to_device(&Device::Cpu)?)]))
    }

    /// The ids a (prompt, story) row is scored on: the rendered prompt, the story and the end
    /// token. Over `max_tokens`, the story is cut (its end token kept, so the head still reads
    /// the state at the end token) and, if the prompt alone is too long, the prompt's start.
    pub fn encode(&self, prompt: &str, story: &str) -> Result<Vec<u32>> {
        let (rendered, mut ids) = self.lm.prompt(prompt, false, false)?;
        let response = self.lm.response_ids(&rendered, false, None, story)?;
        let Some((&end, body)) = response.split_last() else {
            bail!("the story encodes to no tokens");
        };
        let room = self.max_tokens - 1;
        if ids.len() > room / 2 && ids.len() + body.len() > room {
            // keep the prompt's last half-budget: the request it ends with
            ids.drain(..ids.len() - room / 2);
        }
        let keep = body.len().min(room - ids.len());
        ids.extend_from_slice(&body[..keep]);
        ids.push(end);
        Ok(ids)
    }

    /// Scores [R] (the head's dtype) of encoded rows, in one packed pass; differentiable in the head and
    /// the model's trainable weights.
    pub fn forward(&self, rows: &[Vec<u32>]) -> Result<Tensor> {
        if rows.is_empty() || rows.iter().any(|r| r.is_empty()) {
            bail!("reward model forward: every row needs a token");
        }
        let mut cu = Vec::with_capacity(rows.len() + 1);
        cu.push(0);
        let mut ids = Vec::with_capacity(rows.iter().map(Vec::len).sum());
        for r in rows {
            ids.extend_from_slice(r);
            cu.push(ids.len());
        }
        let ids = Tensor::new(ids.as_slice(), self.lm.model.device())?;
        // [R, D] -> head dtype -> [R, D] x [D, 1] -> [R]
        let h = self.lm.model.last_hidden_states(&ids, &cu)?.to_dtype(self.head.dtype())?;
        let r = h.matmul(&self.head.as_tensor().unsqueeze(1)?)?.squeeze(1)?;
        Ok(r)
    }

    /// Scores of (prompt, story) rows, packed into passes of at most `SCORE_TOKENS_PER_PASS`
    /// tokens; in input order.
    pub fn score(&self, items: &[(&str, &str)]) -> Result<Vec<f64>> {
        let rows: Vec<Vec<u32>> = items.iter().map(|(p, s)| self.encode(p, s)).collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(rows.len());
        let mut start = 0;
        while start < rows.len() {
            let mut end = start + 1;
            let mut tokens = rows[start].len();
            while end < rows.len() && tokens + rows[end].len() <= SCORE_TOKENS_PER_PASS {
                tokens += rows[end].len();
                end += 1;
            }
            let r = self.forward(&rows[start..end])?.detach().to_dtype(DType::F64)?.to_vec1::<f64>()?;
            out.extend(r);
            start = end;
        }
        Ok(out)
    }
}

fn read_head(dir: &Path, hidden: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let file = dir.join(HEAD_FILE);
    let tensors = candle_core::safetensors::load(&file, device)
        .with_context(|| format!("cannot read the reward head {} (truncated?)", file.display()))?;
    let head = tensors
        .get(HEAD_TENSOR)
        .ok_or_else(|| anyhow!("{}: no tensor {HEAD_TENSOR}", file.display()))?
        .to_dtype(dtype)?;
    if head.dims() != [hidden] {
        bail!(
            "{}: the head has shape {:?}, the model's hidden size is {hidden}",
            file.display(),
            head.dims()
        );
    }
    if !crate::model::finite::all_finite(&head)? {
        bail!("{}: the head holds NaN or infinite values", file.display());
    }
    Ok(head)
}
