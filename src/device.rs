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
    // candle attaches a backtrace when RUST_BACKTRACE is set: the cause alone is the message
    Device::new_cuda(ordinal).map_err(|e| {
        let cause = match e {
            candle_core::Error::WithBacktrace { inner, .. } => inner.to_string(),
            other => other.to_string(),
        };
        anyhow::anyhow!("--device {spec}: cannot open the GPU: {cause}")
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda(_ordinal: usize, spec: &str) -> Result<Device> {
    bail!("--device {spec}: this build has no CUDA support; rebuild with `cargo build --release --features cuda`")
}

/// The device for work where the user named none (the Playground): the first GPU when this
/// build has CUDA and a GPU really opens, else the CPU. candle's `Device::cuda_if_available`
/// only checks that the feature was compiled, so a cuda build on a machine without a GPU
/// failed there instead of falling back. Probed once per process.
pub fn preferred_device() -> Device {
    static PROBED: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
    PROBED.get_or_init(|| first_gpu().unwrap_or(Device::Cpu)).clone()
}

#[cfg(feature = "cuda")]
fn first_gpu() -> Option<Device> {
    Device::new_cuda(0).ok()
}

#[cfg(not(feature = "cuda"))]
fn first_gpu() -> Option<Device> {
    None
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
