"""PyTorch side of `polaris-tui bench train`: forward + backward of a token-mean NLL on a
Hugging Face model directory for a fixed batch of token ids; prints {"tokens_per_second": x}.

Needs torch and transformers (scripts/requirements.txt). Runs --threads threads (the caller
passes its own count) with sdpa attention; the caller sets OMP_WAIT_POLICY=PASSIVE.
"""
import argparse
import json
import os
import time

import torch
from transformers import AutoModelForCausalLM


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True, help="JSON list of equal-length rows of token ids")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="sdpa")
    model.train()
    ids = torch.tensor(json.load(open(args.ids)), dtype=torch.long)
    inputs, targets = ids[:, :-1], ids[:, 1:]
    best = float("inf")
    for _ in range(max(1, args.repeats)):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        logits = model(input_ids=inputs).logits
        logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        (-logp.mean()).backward()
        best = min(best, time.perf_counter() - start)
    print(json.dumps({"tokens_per_second": inputs.numel() / best}))


if __name__ == "__main__":
    main()
