//! The plan as a table: one column per memory pool, one line per figure.

use super::figures::Figures;
use super::{gib, gpu, Plan};

pub fn table(plan: &Plan) -> String {
    let mut out = String::new();
    let ckpt = match (plan.checkpoint_layers, plan.checkpoint_auto) {
        (true, true) => "on (auto: activations would be large without it)",
        (false, true) => "off (auto: activations are small)",
        (true, false) => "on",
        (false, false) => "off",
    };
    out.push_str(&format!(
        "memory plan: {} ({}, {} parameters, {} trainable)\n",
        plan.model,
        plan.dtype,
        count(plan.parameters),
        count(plan.trainable)
    ));
    out.push_str(&format!(
        "rows up to {} tokens ({} prompt + response budget); {} rows per worker; largest micro-batch {} tokens; checkpoint_layers {ckpt}\n",
        plan.row_tokens,
        super::PROMPT_TOKENS,
        plan.rows_per_worker,
        plan.micro_batch_tokens,
    ));
    if plan.ranks > 0 {
        out.push_str(&gpu_line(plan));
    }
    out.push('\n');
    let mut lines: Vec<(String, Vec<String>)> = Vec::new();
    let per =
        |v: fn(&Figures) -> u64| plan.pools.iter().map(|p| gib(p.workers * v(&p.worker))).collect::<Vec<_>>();
    let any = |v: fn(&Figures) -> u64| plan.pools.iter().any(|p| v(&p.worker) > 0);
    lines.push(("workers".into(), plan.pools.iter().map(|p| p.workers.to_string()).collect()));
    lines.push(("runtime".into(), plan.pools.iter().map(|p| gib(p.runtime)).collect()));
    lines.push(("weights".into(), per(|f| f.weights)));
    if any(|f| f.reference) {
        lines.push(("reference model (KL)".into(), per(|f| f.reference)));
    }
    if any(|f| f.master) {
        lines.push(("master weights (f32)".into(), per(|f| f.master)));
    }
    lines.push((
        "optimizer state (f32 moments)".into(),
        plan.pools.iter().map(|p| gib(if p.primary { p.worker.optimizer } else { 0 })).collect(),
    ));
    lines.push(("  training: gradients".into(), per(|f| f.gradients)));
    lines.push(("  training: saved activations".into(), per(|f| f.activations)));
    lines.push(("  training: largest layer's working set".into(), per(|f| f.layer_working_set)));
    lines.push(("  training: log-prob chunk".into(), per(|f| f.logprob_chunk)));
    lines.push(("  generation: a group's cache".into(), per(|f| f.generation)));
    lines.push(("  optimizer update".into(), plan.pools.iter().map(|p| gib(p.update)).collect()));
    lines
        .push(("peak (resident + largest phase)".into(), plan.pools.iter().map(|p| gib(p.peak())).collect()));
    lines.push((
        "available".into(),
        plan.pools.iter().map(|p| p.available.map_or("unknown".into(), gib)).collect(),
    ));
    lines.push((
        "fits".into(),
        plan.pools
            .iter()
            .map(|p| match p.available {
                None => "unknown".to_string(),
                Some(a) => format!(
                    "{} ({:.0}%)",
                    if p.fits() { "yes" } else { "NO" },
                    100.0 * p.peak() as f64 / a.max(1) as f64
                ),
            })
            .collect(),
    ));
    let label_w = lines.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let names: Vec<String> = plan.pools.iter().map(|p| p.place.name()).collect();
    let col_w = lines
        .iter()
        .flat_map(|(_, v)| v.iter().map(String::len))
        .chain(names.iter().map(String::len))
        .max()
        .unwrap_or(0);
    out.push_str(&format!("{:label_w$}", ""));
    for n in &names {
        out.push_str(&format!("  {n:>col_w$}"));
    }
    out.push('\n');
    for (label, values) in &lines {
        out.push_str(&format!("{label:label_w$}"));
        for v in values {
            out.push_str(&format!("  {v:>col_w$}"));
        }
        out.push('\n');
    }
    out
}

/// 1.2M, 8.95B.
fn count(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n => format!("{:.1}K", n as f64 / 1e3),
    }
}

/// What the CUDA columns assume: precisions, sharding and the margins.
fn gpu_line(plan: &Plan) -> String {
    let n = plan.ranks;
    let trained = if plan.worker.master > 0 {
        "f32 master weights and AdamW moments"
    } else if plan.trainable < plan.parameters {
        "f32 LoRA adapters, their AdamW moments"
    } else {
        "AdamW moments (f32 weights are their own master)"
    };
    format!(
        "on {n} GPU{s}: {dtype} weights and activations, {trained} {shard}, {grads} gradients full per GPU \
         (the running sum and one micro-batch's), log-probs and loss f32; margins: {runtime} per GPU (CUDA context, \
         cuBLAS{nccl}), {pct}% over each phase's transients\n",
        s = if n == 1 { "" } else { "s" },
        dtype = plan.dtype,
        grads = if plan.trainable < plan.parameters { "f32" } else { plan.dtype.as_str() },
        shard = if n > 1 { format!("sharded 1/{n} per GPU (ZeRO-1)") } else { "unsharded".to_string() },
        runtime = gib(gpu::runtime(n)),
        nccl = if n > 1 { ", NCCL" } else { "" },
        pct = gpu::CUDA_ALLOCATOR_PERCENT - 100,
    )
}
