"""PyTorch side of `polaris-tui bench train --lengths`: one training update (forward +
backward of a token-mean NLL, then AdamW) on rows of --len tokens, in a fresh process, so
its peak resident memory belongs to that shape alone. Prints
{"seconds": s, "peak_rss_bytes": n}: the fastest update after one warm-up, and the
process's high-water mark (ru_maxrss).

Attention is transformers' sdpa; --checkpoint-layers turns on gradient checkpointing
(per decoder layer, as polaris' step.checkpoint_layers). Needs torch and transformers
(scripts/requirements.txt).
"""
import argparse
import json
import os
import resource
import time

import torch
from transformers import AutoModelForCausalLM


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--len", type=int, required=True, help="tokens per row")
    ap.add_argument("--rows", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--checkpoint-layers", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="sdpa")
    model.train()
    if args.checkpoint_layers:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.01)
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(0, model.config.vocab_size, (args.rows, args.len + 1), generator=g)
    inputs, targets = ids[:, :-1], ids[:, 1:]
    best = float("inf")
    for i in range(max(1, args.repeats) + 1):
        opt.zero_grad(set_to_none=True)
        start = time.perf_counter()
        logits = model(input_ids=inputs).logits
        logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        (-logp.mean()).backward()
        opt.step()
        if i > 0:
            best = min(best, time.perf_counter() - start)
        del logits, logp
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps({"seconds": best, "peak_rss_bytes": peak}))


if __name__ == "__main__":
    main()
