//! Peak dense matmul throughput of known GPUs, by the name NVML gives, for model FLOPs
//! utilisation (MFU). Figures are the vendors' datasheet numbers for dense tensor-core math
//! (no structured sparsity), in FLOP/s. A device not in the table has no peak, and its MFU is
//! left absent rather than guessed; so is a CPU's: a host's peak depends on its vector
//! units, clocks under load and the cores other processes take, none of which it reports.

/// (name fragment, bf16/fp16 dense peak, fp32 peak without tensor cores). Longer, more
/// specific fragments first: "H100 PCIe" before "H100".
const TABLE: &[(&str, f64, f64)] = &[
    ("GH200", 989e12, 67e12),
    ("H200", 989e12, 67e12),
    ("H100 PCIe", 756e12, 51e12),
    ("H100 NVL", 835e12, 60e12),
    ("H100", 989e12, 67e12), // SXM5
    ("A100", 312e12, 19.5e12),
    ("A800", 312e12, 19.5e12),
    ("L40S", 362e12, 91.6e12),
    ("L40", 181e12, 90.5e12),
    ("L4", 121e12, 30.3e12),
    ("A10G", 70e12, 31.2e12),
    ("A10", 125e12, 31.2e12),
    ("RTX 4090", 165e12, 82.6e12),
    ("RTX 3090", 71e12, 35.6e12),
    ("V100", 125e12, 15.7e12),
    ("T4", 65e12, 8.1e12),
];

/// The peak FLOP/s of the device called `name` at `dtype` (`bf16`, `f16`, `f32`); None for a
/// device not in the table.
pub fn peak_flops(name: &str, dtype: &str) -> Option<f64> {
    let (_, half, single) = TABLE.iter().find(|(fragment, _, _)| name.contains(fragment))?;
    Some(match dtype {
        "bf16" | "f16" => *half,
        _ => *single,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specific_names_win_over_their_family() {
        assert_eq!(peak_flops("NVIDIA H100 PCIe", "bf16"), Some(756e12));
        assert_eq!(peak_flops("NVIDIA H100 80GB HBM3", "bf16"), Some(989e12));
        assert_eq!(peak_flops("NVIDIA A100-SXM4-80GB", "f32"), Some(19.5e12));
        assert_eq!(peak_flops("NVIDIA L40S", "bf16"), Some(362e12));
        assert_eq!(peak_flops("NVIDIA A10G", "bf16"), Some(70e12));
        assert_eq!(peak_flops("Some Future GPU", "bf16"), None);
    }
}
