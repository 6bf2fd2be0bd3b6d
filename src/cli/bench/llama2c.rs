//! llama2.c's checkpoint and tokenizer formats, so `bench generate` can time its run.c on
//! the very weights our llama decodes. run.c itself is not part of this project: the bench
//! runs a binary the user built (`gcc -Ofast -o run run.c -lm`) when told where it is.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use crate::model::Model;
use anyhow::{bail, Context, Result};

/// Writes `model` as a llama2.c checkpoint: a header of 7 i32 (dim, hidden_dim, n_layers,
/// n_heads, n_kv_heads, vocab_size (negative: an unshared classifier follows), seq_len),
/// then f32 tensors grouped by kind over all layers. q and k rows are put back in run.c's
/// interleaved rotary order (Hugging Face checkpoints hold them in rotate-half order).
pub fn write_checkpoint(model: &Model, seq_len: usize, path: &Path) -> Result<()> {
    let cfg = model.config();
    if cfg.qk_norm() || cfg.attention_bias || cfg.head_dim * cfg.num_attention_heads != cfg.hidden_size {
        bail!("run.c's format holds plain llama models only");
    }
    let tensor = |name: &str| -> Result<Vec<f32>> {
        let t =
            model.tensors().iter().find(|(n, _)| n == name).with_context(|| format!("no tensor {name}"))?;
        Ok(t.1.flatten_all()?.to_vec1::<f32>()?)
    };
    let layers = cfg.num_hidden_layers;
    let all = |suffix: &str| -> Result<Vec<f32>> {
        let mut out = Vec::new();
        for i in 0..layers {
            out.extend(tensor(&format!("model.layers.{i}.{suffix}"))?);
        }
        Ok(out)
    };
    let (d, heads, kv_heads) = (cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads);
    let interleaved = |suffix: &str, n_heads: usize| -> Result<Vec<f32>> {
        let mut out = Vec::new();
        for i in 0..layers {
            out.extend(rotary_interleaved(&tensor(&format!("model.layers.{i}.{suffix}"))?, n_heads, d));
        }
        Ok(out)
    };
    let shared = cfg.tie_word_embeddings;
    let vocab = cfg.vocab_size as i32;
    let header = [
        d as i32,
        cfg.intermediate_size as i32,
        layers as i32,
        heads as i32,
        kv_heads as i32,
        if shared { vocab } else { -vocab },
        seq_len as i32,
    ];
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for v in header {
        file.write_all(&v.to_le_bytes())?;
    }
    let mut parts = vec![
        tensor("model.embed_tokens.weight")?,
        all("input_layernorm.weight")?,
        interleaved("self_attn.q_proj.weight", heads)?,
        interleaved("self_attn.k_proj.weight", kv_heads)?,
        all("self_attn.v_proj.weight")?,
        all("self_attn.o_proj.weight")?,
        all("post_attention_layernorm.weight")?,
        all("mlp.gate_proj.weight")?,
        all("mlp.down_proj.weight")?,
        all("mlp.up_proj.weight")?,
        tensor("model.norm.weight")?,
        // freq_cis_real and freq_cis_imag: unused by run.c, skipped by its pointer arithmetic
        vec![0f32; seq_len * cfg.head_dim],
    ];
    if !shared {
        parts.push(tensor("lm_head.weight")?);
    }
    for part in parts {
        for v in part {
            file.write_all(&v.to_le_bytes())?;
        }
    }
    file.flush()?;
    Ok(())
}

/// Rows of a [n_heads * Dh, cols] projection from rotate-half order (row t * Dh/2 + j of a
/// head) to interleaved order (row 2j + t), as llama2.c's export does for HF checkpoints.
fn rotary_interleaved(w: &[f32], n_heads: usize, cols: usize) -> Vec<f32> {
    let dh = w.len() / cols / n_heads;
    let mut out = vec![0f32; w.len()];
    for h in 0..n_heads {
        for j in 0..dh / 2 {
            for t in 0..2 {
                let from = (h * dh + t * (dh / 2) + j) * cols;
                let to = (h * dh + 2 * j + t) * cols;
                out[to..to + cols].copy_from_slice(&w[from..from + cols]);
            }
        }
    }
    out
}

/// A run.c tokenizer of `vocab` made-up pieces ("t0 ", "t1 ", ...): run.c needs one to
/// print, and the bench decodes greedily from BOS, so the pieces are never read.
pub fn write_tokenizer(vocab: usize, path: &Path) -> Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    file.write_all(&16i32.to_le_bytes())?; // max_token_length
    for i in 0..vocab {
        let piece = format!("t{i} ");
        file.write_all(&0f32.to_le_bytes())?;
        file.write_all(&(piece.len() as i32).to_le_bytes())?;
        file.write_all(piece.as_bytes())?;
    }
    file.flush()?;
    Ok(())
}

/// Greedy decoding of `tokens` tokens from BOS by run.c; its own tokens/s (the timer
/// starts after the first token, as run.c reports it).
pub fn run_c(binary: &Path, checkpoint: &Path, tokenizer: &Path, tokens: usize) -> Result<f64> {
    let out = Command::new(binary)
        .arg(checkpoint)
        .args(["-z"])
        .arg(tokenizer)
        .args(["-t", "0", "-n", &(tokens + 1).to_string()])
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().find_map(|l| l.strip_prefix("achieved tok/s: "));
    match line {
        Some(v) => Ok(v.trim().parse()?),
        None => bail!("{} printed no 'achieved tok/s' line: {}", binary.display(), stderr.trim()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rotary_order_moves_rows_within_a_head() {
        // 1 head of Dh = 4, 1 column: rotate-half rows [a0 a1 | b0 b1] -> [a0 b0 a1 b1]
        let w = [0.0, 1.0, 10.0, 11.0];
        assert_eq!(super::rotary_interleaved(&w, 1, 1), vec![0.0, 10.0, 1.0, 11.0]);
    }
}
