"""Charges `perf script -F comm,tid,ip,sym` samples (with call stacks) to ops and prints a
Markdown table: scripts/profile-train's second half.

A sample goes to the first rule, in the order below, that matches any frame of its stack,
so a gemm microkernel called from the attention kernel counts as attention, and one called
from candle's matmul as a projection matmul. Rules name our functions and candle's.
"""
import argparse
import json
import re
import sys
from collections import Counter

# (category, regex over one frame's symbol, leaf only?); the first rule that matches a frame
# of the stack (or the leaf frame only, for the waiting rules) wins, rules in order
RULES = [
    ("thread pools: waiting, waking (rayon, candle barrier)",
     r"futex|sched_yield|rayon_core::sleep|rayon_core::registry::WorkerThread::(wait|find_work)|"
     r"crossbeam|BarrierPool|Barrier::wait|schedule|try_to_wake|syscall|spin_loop|pause", True),
    ("attention (blockwise kernel: its matmuls, exp, max)", r"flash_attention", False),
    ("AdamW", r"adamw_update|optim::AdamW", False),
    ("RMSNorm (fused)", r"fused::rms_norm", False),
    ("RoPE (fused)", r"fused::rope", False),
    ("MLP gate/up + SwiGLU (fused, incl. its matmuls)", r"fused::gate_up|fused::swiglu", False),
    ("log-softmax + gather (chunked log-probs)", r"fused::log_softmax|logprobs::chunk", False),
    ("gradient-norm clip", r"clip_grad_norm", False),
    ("autograd: summing gradients (candle GradStore)", r"GradStore::or_insert|backprop.*accumulate", False),
    ("matmul: projections, lm head and their backward (gemm)", r"gemm_f32|gemm_common|gemm::gemm|::matmul", False),
    ("copies (contiguous, cat, transpose)", r"copy_strided|copy2d|Tensor::cat|memmove|memcpy", False),
    ("zero fills and page faults (allocation)", r"memset|clear_page|page_fault|exc_page", False),
    ("other elementwise (candle unary/binary maps)", r"binary_map|unary_map|cpu_backend", False),
]


def samples(lines):
    """Yields one list of frame symbols per sample."""
    stack = []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if stack:
                yield stack
            stack = []
            continue
        if not line.startswith("\t"):
            stack = []  # the header line of a sample: comm tid
            continue
        # frame lines: "\taddr symbol"
        parts = line.strip().split(None, 1)
        stack.append(parts[1] if len(parts) > 1 else parts[0])
    if stack:
        yield stack


def gradient_sum(stack):
    """candle's backward adds each node's input gradient into its GradStore entry (zeros on
    first use, then an add): an add called straight from `Tensor::backward`."""
    ops = [f for f in stack if "Tensor::" in f or "polaris::" in f or ">::backward" in f or "::bwd" in f]
    return len(ops) >= 2 and "Tensor::add" in ops[0] and ">::backward" in ops[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--title", default="")
    ap.add_argument("--pass", dest="pass_file", help="bench train-pass output (seconds, peak RSS)")
    args = ap.parse_args()
    rules = [(name, re.compile(rx), leaf) for name, rx, leaf in RULES]
    sums = "autograd: summing gradients (candle GradStore)"
    counts = Counter()
    total = 0
    for stack in samples(sys.stdin):
        total += 1
        if gradient_sum(stack):
            counts[sums] += 1
            continue
        for name, rx, leaf in rules:
            if any(rx.search(f) for f in (stack[:1] if leaf else stack)):
                counts[name] += 1
                break
        else:
            counts["other (model load, setup, unattributed)"] += 1
    if total == 0:
        sys.exit("error: perf gave no samples (is perf allowed to record? see perf_event_paranoid)")
    print(f"\n{args.title}: {total} samples")
    if args.pass_file:
        try:
            p = json.load(open(args.pass_file))
            print(f"(the measured update: {p['seconds']:.3f} s, peak RSS {p['peak_rss_bytes'] / 2**30:.2f} GiB)")
        except (OSError, ValueError, KeyError) as e:
            print(f"(no pass result: {e})")
    print("\n| op | share of samples |\n|---|---:|")
    for name, n in counts.most_common():
        print(f"| {name} | {100.0 * n / total:.1f}% |")


if __name__ == "__main__":
    main()
