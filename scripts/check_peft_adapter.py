#!/usr/bin/env python3
"""Checks that HF PEFT loads a polaris LoRA adapter and computes what polaris computes.

    python scripts/check_peft_adapter.py BASE_MODEL_DIR ADAPTER_DIR [--text FILE]

ADAPTER_DIR is a PEFT adapter directory: what `polaris-tui train` writes as a LoRA run's
checkpoint (adapter_config.json + adapter_model.safetensors). The script scores a text with
`polaris-tui score --adapter` and with transformers + PeftModel on the same token ids, and
compares the per-token log-probs. It also checks that the adapter changes the model at all
under PEFT (an adapter whose keys PEFT did not match would silently do nothing).

Needs torch, transformers and peft (`pip install peft`); the project's tests do not use it.
Exit status: 0 agree, 1 disagree, 2 missing Python packages or a failed polaris run.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_TEXT = (
    "The lighthouse keeper counted the ships every evening, and on the night the fog came "
    "in thick as wool, she counted one more than had left the harbour."
)


def polaris_logprobs(binary, base, adapter, text):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(text)
        path = f.name
    cmd = [binary, "score", "--model", base, "--adapter", adapter, "--text", path, "--raw", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    Path(path).unlink()
    if out.returncode != 0:
        print(f"{' '.join(cmd)} failed:\n{out.stderr}", file=sys.stderr)
        sys.exit(2)
    record = json.loads(out.stdout)
    return record["token_ids"], record["logprobs"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", help="the base Hugging Face model directory")
    ap.add_argument("adapter", help="the PEFT adapter directory (a LoRA run's checkpoints/step-N)")
    ap.add_argument("--text", help="a text file to score (default: a built-in sentence)")
    ap.add_argument("--polaris", default="target/release/polaris-tui", help="the polaris-tui binary")
    # f32 on both sides, different summation orders and kernels: ~1e-5 is typical; 1e-3
    # flags a real mismatch (a missing adapter changes log-probs by far more)
    ap.add_argument("--tolerance", type=float, default=1e-3)
    args = ap.parse_args()
    try:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM
    except ImportError as e:
        print(f"needs torch, transformers and peft ({e}); pip install peft", file=sys.stderr)
        return 2

    text = Path(args.text).read_text() if args.text else DEFAULT_TEXT
    ids, theirs = polaris_logprobs(args.polaris, args.base, args.adapter, text)

    base = AutoModelForCausalLM.from_pretrained(args.base, dtype=torch.float32)
    # Keys name the modules as the base checkpoint stores them: Qwen3.5's
    # model.language_model.layers.N..., which is where Qwen3_5ForConditionalGeneration (and
    # vLLM, through its weight mapper) has them. The text-only Qwen3_5ForCausalLM that
    # AutoModelForCausalLM builds renames them to model.layers.N... on load, and PEFT
    # (0.21) does not follow that renaming for adapters: map the keys the same way here.
    key_mapping = None
    modules = {name for name, _ in base.named_modules()}
    if "model.language_model" not in modules and "model.layers" in modules:
        key_mapping = {r"^model\.language_model\.": "model."}
    model = PeftModel.from_pretrained(base, args.adapter, key_mapping=key_mapping)
    model.eval()
    x = torch.tensor([ids])
    with torch.no_grad():
        logits = model(input_ids=x).logits[0, :-1].float()
        with model.disable_adapter():
            plain = model(input_ids=x).logits[0, :-1].float()
    target = x[0, 1:].unsqueeze(1)
    ours = torch.log_softmax(logits, -1).gather(1, target).squeeze(1)
    without = torch.log_softmax(plain, -1).gather(1, target).squeeze(1)
    theirs = torch.tensor(theirs, dtype=torch.float32)

    diff = (ours - theirs).abs().max().item()
    effect = (ours - without).abs().max().item()
    print(f"{len(ids)} tokens; PEFT vs polaris: max |Δ log p| = {diff:.3g} (tolerance {args.tolerance})")
    print(f"the adapter moves PEFT's log-probs by up to {effect:.3g}")
    if effect == 0.0:
        print("note: the adapter has no effect under PEFT (untrained B = 0, or keys not matched)")
    return 0 if diff <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
