//! `--device` and `--dtype` flags.

use anyhow::{bail, Result};
use candle_core::{DType, Device};

/// `cpu`, or `cuda:N` in a build with the `cuda` feature.
pub fn parse_device(spec: &str) -> Result<Device> {
    let spec = spec.trim();
    if spec == "cpu" {
        return Ok(Device::Cpu);
    }
    if let Some(n) = spec.strip_prefix("cuda:").or(if spec == "cuda" { Some("0") } else { None }) {
        let Ok(ordinal) = n.parse::<usize>() else {
            bail!("--device {spec:?}: expected cuda:N with N a GPU index");
        };
        return cuda(ordinal, spec);
    }
    bail!("--device {spec:?}: expected cpu or cuda:N")
}

#[cfg(feature = "cuda")]
fn cuda(ordinal: usize, spec: &str) -> Result<Device> {
    Device::new_cuda(ordinal).map_err(|e| anyhow::anyhow!("--device {spec}: cannot open the GPU: {e}"))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_ordinal: usize, spec: &str) -> Result<Device> {
    bail!("--device {spec}: this build has no CUDA support; rebuild with `cargo build --release --features cuda`")
}

/// `f32`, `bf16` or `f16`.
pub fn parse_dtype(spec: &str) -> Result<DType> {
    Ok(match spec.trim() {
        "f32" | "float32" => DType::F32,
        "bf16" | "bfloat16" => DType::BF16,
        "f16" | "float16" => DType::F16,
        "f64" | "float64" => DType::F64,
        other => bail!("--dtype {other:?}: expected f32, bf16 or f16"),
    })
}
