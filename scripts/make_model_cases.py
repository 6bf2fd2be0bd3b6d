#!/usr/bin/env python3
"""Make small random llama / qwen3 / qwen3.5 checkpoints and their reference outputs.

Writes one Hugging Face model directory per case under tests/fixtures/models/<case>/:
config.json, generation_config.json, the safetensors weights (one file, or shards plus
model.safetensors.index.json) and expected.json. No tokenizer is written.

expected.json uses the same fields as /work/shared/models/qwen3-tiny/expected.json:
  input_ids                a batch of 2 token sequences of equal length
  logits_positions         positions whose full logit rows are stored
  logits_sample            [batch][len(logits_positions)][vocab] logit rows
  argmax_all               argmax at every position, [batch][seq]
  argmax_margins           top-1 minus top-2 logit at every position, [batch][seq]
  loss, loss_per_sequence  mean next-token cross-entropy (batch mean, per sequence)
  greedy_32                greedy continuation of sequence 0, 32 tokens, EOS ignored
  greedy_32_step_logits    row i = logits that chose greedy_32[i] (row 0 = last prompt pos)
  greedy_32_margins        top-1 minus top-2 at each greedy step
plus case, model_class, seed, generated_by, checkpoint_key_layout, config_style and a
few facts about the checkpoint (lm_head_in_safetensors, weights_dtype, files) and
`checks` (diagnostics only; not meant as test targets).

The reference is transformers' own forward pass with the model in float64 (sdpa
attention, CPU). Transformers keeps a few internals in float32 even then (RMSNorm
variance, RoPE cos/sin), so a pure float64 implementation differs by ~1e-7..1e-5;
`checks.hf_f64_vs_pure_f64_max_abs_logit_diff` records how much.
Logit rows and margins are stored rounded to float32 (shortest repr), like the shared
fixture; losses are stored in full float64.

Everything is deterministic by seed: seed = BASE_SEED + 100*case_index + attempt, where
attempt is the first one whose margins pass (all positions >= 3e-5, greedy steps >= 1e-4).

Usage:
  python scripts/make_model_cases.py            # (re)generate all cases, then verify
  python scripts/make_model_cases.py --verify   # only re-load committed fixtures and check
  python scripts/make_model_cases.py --case qwen3-long [--case ...]
  python scripts/make_model_cases.py --only qwen3_5-long,qwen3_5-tied [--verify]

The Qwen3.5 cases (qwen3_5-*, model_type qwen3_5_text, Qwen3_5ForCausalLM) are made by make_case_q35:
same expected.json fields plus layer_types, deltanet_chunks, cached_greedy_equals_nocache and mutations.
"""

import argparse
import copy
import importlib.util
import inspect
import json
import math
import os
import shutil
import sys
import textwrap

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from safetensors import safe_open
from transformers import AutoModelForCausalLM, GenerationConfig
from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM
from safetensors.torch import save_file
from transformers.models.qwen3_5 import Qwen3_5ForCausalLM, Qwen3_5TextConfig
from transformers.models.qwen3_5 import modeling_qwen3_5 as q35mod

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_ROOT = os.path.join(REPO, "tests", "fixtures", "models")

BASE_SEED = 20260301
MAX_ATTEMPTS = 50
MIN_MARGIN_ALL = 3e-5
MIN_MARGIN_GREEDY = 1e-4
GREEDY_STEPS = 32
VOCAB = 512
VERIFY_TOL = 1e-6

QWEN3_COMMON = dict(
    vocab_size=VOCAB,
    max_position_embeddings=4096,
    bos_token_id=510,
    eos_token_id=511,
    hidden_act="silu",
    attention_bias=False,
)

# case_index is part of the seed; never renumber existing cases.
CASES = [
    dict(
        name="qwen3-tied-mqa",
        index=0,
        cls=Qwen3ForCausalLM,
        config_cls=Qwen3Config,
        config=dict(
            QWEN3_COMMON,
            hidden_size=48,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=16,
            intermediate_size=96,
            num_hidden_layers=2,
            rope_theta=1_000_000.0,
            rms_norm_eps=1e-6,
            tie_word_embeddings=True,
        ),
        seq_len=40,
        weights_dtype=torch.float32,
        max_shard_size=None,
        config_style="legacy",
    ),
    dict(
        name="qwen3-long",
        index=1,
        cls=Qwen3ForCausalLM,
        config_cls=Qwen3Config,
        config=dict(
            QWEN3_COMMON,
            hidden_size=64,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            intermediate_size=128,
            num_hidden_layers=2,
            rope_theta=1_000_000.0,
            rms_norm_eps=1e-6,
            tie_word_embeddings=False,
        ),
        seq_len=300,
        logits_positions=[0, 1, 7, 128, 257, 299],
        weights_dtype=torch.float32,
        max_shard_size=None,
        config_style="v5",
    ),
    dict(
        name="qwen3-sharded",
        index=2,
        cls=Qwen3ForCausalLM,
        config_cls=Qwen3Config,
        config=dict(
            QWEN3_COMMON,
            hidden_size=64,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            intermediate_size=64,
            num_hidden_layers=3,
            rope_theta=1_000_000.0,
            rms_norm_eps=1e-6,
            tie_word_embeddings=False,
        ),
        seq_len=40,
        weights_dtype=torch.float32,
        max_shard_size="150KB",
        config_style="legacy",
    ),
    dict(
        name="qwen3-bf16",
        index=3,
        cls=Qwen3ForCausalLM,
        config_cls=Qwen3Config,
        config=dict(
            QWEN3_COMMON,
            hidden_size=32,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            intermediate_size=64,
            num_hidden_layers=2,
            rope_theta=1_000_000.0,
            rms_norm_eps=1e-6,
            tie_word_embeddings=False,
        ),
        seq_len=40,
        weights_dtype=torch.bfloat16,
        max_shard_size=None,
        config_style="v5",
    ),
    dict(
        name="llama-gqa",
        index=4,
        cls=LlamaForCausalLM,
        config_cls=LlamaConfig,
        config=dict(
            vocab_size=VOCAB,
            max_position_embeddings=4096,
            bos_token_id=1,
            eos_token_id=2,
            hidden_act="silu",
            hidden_size=64,
            num_attention_heads=8,
            num_key_value_heads=2,
            intermediate_size=176,
            num_hidden_layers=2,
            rope_theta=500_000.0,
            rms_norm_eps=1e-5,
            tie_word_embeddings=False,
            attention_bias=False,
            mlp_bias=False,
        ),
        seq_len=40,
        weights_dtype=torch.float32,
        max_shard_size=None,
        config_style="legacy",
    ),
]

# Qwen3.5 text model (model_type "qwen3_5_text", Qwen3_5ForCausalLM): Gated DeltaNet
# ("linear_attention") and gated full attention layers, modelled on
# /work/shared/models/qwen3_5-tiny/config.json. Made by make_case_q35().
QWEN35_ROPE = {
    "rope_type": "default",
    "rope_theta": 10_000_000.0,
    "partial_rotary_factor": 0.25,
    "mrope_section": [11, 11, 10],
    "mrope_interleaved": True,
}
QWEN35_COMMON = dict(
    vocab_size=VOCAB,
    max_position_embeddings=4096,
    bos_token_id=None,
    eos_token_id=480,
    pad_token_id=None,
    hidden_act="silu",
    attention_bias=False,
    rms_norm_eps=1e-6,
    linear_conv_kernel_dim=4,
    rope_parameters=QWEN35_ROPE,
)
DELTANET_CHUNK = 64  # chunk size of transformers' torch_chunk_gated_delta_rule

CASES += [
    dict(
        name="qwen3_5-long",
        index=5,
        family="qwen3_5",
        cls=Qwen3_5ForCausalLM,
        config_cls=Qwen3_5TextConfig,
        config=dict(
            QWEN35_COMMON,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=4,
            layer_types=["linear_attention", "linear_attention", "linear_attention", "full_attention"],
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=32,
            linear_num_key_heads=2,
            linear_num_value_heads=4,
            linear_key_head_dim=16,
            linear_value_head_dim=16,
            tie_word_embeddings=False,
        ),
        seq_len=150,
        logits_positions=[0, 1, 63, 64, 128, 149],
        key_layout="model.language_model.*",
        config_edits={},
        config_style="hub35",
    ),
    dict(
        name="qwen3_5-pattern",
        index=6,
        family="qwen3_5",
        cls=Qwen3_5ForCausalLM,
        config_cls=Qwen3_5TextConfig,
        config=dict(
            QWEN35_COMMON,
            hidden_size=48,
            intermediate_size=64,
            num_hidden_layers=5,
            layer_types=["full_attention", "linear_attention", "linear_attention", "full_attention",
                         "linear_attention"],
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            linear_num_key_heads=1,
            linear_num_value_heads=3,
            linear_key_head_dim=16,
            linear_value_head_dim=16,
            tie_word_embeddings=False,
        ),
        seq_len=70,
        logits_positions=[0, 1, 7, 63, 64, 69],
        key_layout="model.*",
        config_edits={},
        config_style="hub35",
    ),
    dict(
        name="qwen3_5-tied",
        index=7,
        family="qwen3_5",
        cls=Qwen3_5ForCausalLM,
        config_cls=Qwen3_5TextConfig,
        config=dict(
            QWEN35_COMMON,
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=3,
            full_attention_interval=3,  # -> layer_types [linear, linear, full] (Qwen3_5TextConfig.__post_init__)
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=32,
            linear_num_key_heads=2,
            linear_num_value_heads=2,
            linear_key_head_dim=16,
            linear_value_head_dim=24,
            tie_word_embeddings=True,
        ),
        seq_len=64,
        logits_positions=[0, 1, 7, 63],
        key_layout="model.language_model.*",
        # config.json without layer_types, with full_attention_interval (see make_case_q35)
        config_edits={"drop": ["layer_types"], "set": {"full_attention_interval": 3}},
        expect_layer_types=["linear_attention", "linear_attention", "full_attention"],
        config_style="hub35-interval",
    ),
]

INIT_NOTE = (
    "all weights drawn from a torch.Generator seeded with `seed`, parameters in sorted name "
    "order: every norm weight (input/post_attention/final norm, q_norm, k_norm) = 1 + 0.1*N(0,1); "
    "linear weights N(0, 1/fan_in); lm_head N(0, 1/hidden); untied embed_tokens N(0, 1), tied "
    "embed_tokens N(0, 1/hidden). Scaled (not HF's 0.02) init so attention is not near-uniform and "
    "RoPE / head-mapping mistakes show up in the logits."
)


# --------------------------------------------------------------------------- helpers

def f32r(x):
    """Round a float to float32 and return its shortest decimal as a Python float."""
    return float(str(np.float32(x)))


def f32_list(t):
    """Nested list of float32-rounded values from a tensor."""
    a = t.detach().to(torch.float64).cpu().numpy()

    def conv(x):
        return f32r(x) if x.ndim == 0 else [conv(r) for r in x]

    return conv(a)


def top2_margin(logits):
    top = torch.topk(logits, 2, dim=-1).values
    return top[..., 0] - top[..., 1]


def init_weights(model, cfg, seed):
    g = torch.Generator().manual_seed(seed)
    tied = cfg.tie_word_embeddings
    hidden = cfg.hidden_size
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            shape = tuple(p.shape)
            if name.endswith("norm.weight"):
                v = 1.0 + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
            elif name.endswith("embed_tokens.weight"):
                std = hidden ** -0.5 if tied else 1.0
                v = std * torch.randn(shape, generator=g, dtype=torch.float64)
            elif name == "lm_head.weight":
                v = hidden ** -0.5 * torch.randn(shape, generator=g, dtype=torch.float64)
            elif len(shape) == 2:
                v = shape[1] ** -0.5 * torch.randn(shape, generator=g, dtype=torch.float64)
            else:
                raise RuntimeError(f"unexpected parameter {name} {shape}")
            p.copy_(v.to(p.dtype))
    if tied:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


@torch.no_grad()
def forward_logits(model, ids, **kw):
    return model(input_ids=ids, use_cache=False, **kw).logits


@torch.no_grad()
def greedy_nocache(model, prompt, steps):
    ids = prompt.clone()
    toks, rows = [], []
    for _ in range(steps):
        row = forward_logits(model, ids[None, :])[0, -1]
        t = int(torch.argmax(row))
        toks.append(t)
        rows.append(row)
        ids = torch.cat([ids, torch.tensor([t], dtype=ids.dtype)])
    return toks, torch.stack(rows)


@torch.no_grad()
def greedy_cached(model, prompt, steps):
    out = model(input_ids=prompt[None, :], use_cache=True)
    past = out.past_key_values
    row = out.logits[0, -1]
    toks, rows = [], []
    for _ in range(steps):
        t = int(torch.argmax(row))
        toks.append(t)
        rows.append(row)
        out = model(input_ids=torch.tensor([[t]]), past_key_values=past, use_cache=True)
        past = out.past_key_values
        row = out.logits[0, -1]
    return toks, torch.stack(rows)


def next_token_losses(logits, ids):
    lp = torch.log_softmax(logits[:, :-1].to(torch.float64), dim=-1)
    nll = -lp.gather(-1, ids[:, 1:, None])[..., 0]
    return nll.mean(dim=1), nll.mean()


def head_dim_of(cfg):
    return getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads


def rope_theta_of(cfg):
    rp = getattr(cfg, "rope_parameters", None)
    if rp and "rope_theta" in rp:
        return float(rp["rope_theta"])
    return float(cfg.rope_theta)


# ------------------------------------------------------------------ pure float64 patch

class PureF64:
    """Context manager: run RMSNorm and RoPE of the model's module in float64."""

    def __init__(self, model):
        mod = sys.modules[type(model).__module__]
        self.norm_cls = [getattr(mod, n) for n in dir(mod) if n.endswith("RMSNorm")]
        self.rot_cls = [getattr(mod, n) for n in dir(mod) if n.endswith("RotaryEmbedding")]
        self.cfg = model.config
        self.saved = []

    def __enter__(self):
        cfg = self.cfg
        theta = rope_theta_of(cfg)
        dim = head_dim_of(cfg)

        def norm_forward(self_, h):
            h64 = h.to(torch.float64)
            var = h64.pow(2).mean(-1, keepdim=True)
            return (self_.weight.to(torch.float64) * (h64 * torch.rsqrt(var + self_.variance_epsilon))).to(h.dtype)

        def rot_forward(self_, x, position_ids):
            inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
            freqs = position_ids[..., None].to(torch.float64) * inv
            emb = torch.cat((freqs, freqs), dim=-1)
            return emb.cos().to(x.dtype), emb.sin().to(x.dtype)

        for c in self.norm_cls:
            self.saved.append((c, c.forward))
            c.forward = norm_forward
        for c in self.rot_cls:
            self.saved.append((c, c.forward))
            c.forward = rot_forward
        return self

    def __exit__(self, *exc):
        for c, f in reversed(self.saved):
            c.forward = f
        return False


# ------------------------------------------------------------------------- mutations

def mutation_results(ref_model, ids, ref_logits, cfg):
    """How far some plausible implementation mistakes move the logits (diagnostic)."""
    res = {}
    n_heads = cfg.num_attention_heads
    n_kv = cfg.num_key_value_heads
    hd = head_dim_of(cfg)

    def run(name, mutate):
        m = copy.deepcopy(ref_model)
        with torch.no_grad():
            mutate(m)
        lg = forward_logits(m, ids)
        res[name] = {
            "max_abs_logit_diff": float((lg - ref_logits).abs().max()),
            "argmax_changed_frac": float((lg.argmax(-1) != ref_logits.argmax(-1)).double().mean()),
        }

    def norm_plus_one(m):
        for n, p in m.named_parameters():
            if n.endswith("norm.weight"):
                p.add_(1.0)

    run("rmsnorm_uses_1_plus_w", norm_plus_one)

    def theta_10000(m):
        rot = m.model.rotary_emb
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        rot.inv_freq = inv.to(rot.inv_freq.dtype)

    run("rope_theta_10000", theta_10000)

    # Interleaved (GPT-J) RoPE on the original weights == HF half-split RoPE with the
    # q/k rows of every head permuted evens-first (q_norm/k_norm weights likewise).
    perm = torch.cat([torch.arange(0, hd, 2), torch.arange(1, hd, 2)])

    def rope_interleaved(m):
        for layer in m.model.layers:
            at = layer.self_attn
            for proj, nh in ((at.q_proj, n_heads), (at.k_proj, n_kv)):
                w = proj.weight.view(nh, hd, -1)
                proj.weight.copy_(w[:, perm, :].reshape(nh * hd, -1))
            for nname in ("q_norm", "k_norm"):
                if hasattr(at, nname):
                    nw = getattr(at, nname).weight
                    nw.copy_(nw[perm])

    run("rope_interleaved_pairs", rope_interleaved)

    if n_kv > 1 and n_heads // n_kv > 1:
        # Wrong GQA mapping (q head h -> kv head h % n_kv instead of h // n_rep),
        # expressed by reordering q heads (and o_proj input columns) consistently.
        n_rep = n_heads // n_kv
        sigma = []
        for j in range(n_heads):
            want_kv = j // n_rep
            cands = [h for h in range(n_heads) if h % n_kv == want_kv and h not in sigma]
            sigma.append(cands[0])
        sigma = torch.tensor(sigma)

        def kv_tiled(m):
            for layer in m.model.layers:
                at = layer.self_attn
                wq = at.q_proj.weight.view(n_heads, hd, -1)
                at.q_proj.weight.copy_(wq[sigma].reshape(n_heads * hd, -1))
                wo = at.o_proj.weight.view(-1, n_heads, hd)
                at.o_proj.weight.copy_(wo[:, sigma, :].reshape(-1, n_heads * hd))

        run("gqa_kv_head_mapping_tiled", kv_tiled)

    if hasattr(ref_model.model.layers[0].self_attn, "q_norm"):
        def no_qk_norm_weight(m):
            for layer in m.model.layers:
                layer.self_attn.q_norm.weight.fill_(1.0)
                layer.self_attn.k_norm.weight.fill_(1.0)

        run("no_qk_norm_weight", no_qk_norm_weight)

    if hd * n_heads != cfg.hidden_size:
        def scale_from_hidden(m):
            for layer in m.model.layers:
                layer.self_attn.scaling = (cfg.hidden_size // n_heads) ** -0.5

        run("attn_scale_uses_hidden_over_heads", scale_from_hidden)

    return res


# ------------------------------------------------------------------------- references

def compute_reference(model64, ids, positions):
    logits = forward_logits(model64, ids)
    margins = top2_margin(logits)
    per_seq, loss = next_token_losses(logits, ids)
    g_toks, g_rows = greedy_nocache(model64, ids[0], GREEDY_STEPS)
    g_margins = top2_margin(g_rows)
    return dict(
        logits=logits,
        margins=margins,
        argmax=logits.argmax(-1),
        loss=float(loss),
        loss_per_sequence=[float(x) for x in per_seq],
        greedy=g_toks,
        greedy_rows=g_rows,
        greedy_margins=g_margins,
        positions=positions,
    )


def build_model(case, seed):
    kw = dict(case["config"])
    cfg = case["config_cls"](**kw)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    model = case["cls"](cfg).to(torch.float32).eval()
    init_weights(model, cfg, seed)
    if case["weights_dtype"] != torch.float32:
        # Round the parameters only; buffers (RoPE inv_freq) must not be rounded.
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(case["weights_dtype"]).to(torch.float32))
    return model


def make_case(case):
    name = case["name"]
    out_dir = os.path.join(OUT_ROOT, name)
    L = case["seq_len"]
    positions = case.get("logits_positions", [0, 1, 7, L - 1])

    for attempt in range(MAX_ATTEMPTS):
        seed = BASE_SEED + 100 * case["index"] + attempt
        model = build_model(case, seed)
        cfg = model.config
        g = torch.Generator().manual_seed(seed + 7)
        ids = torch.randint(0, cfg.vocab_size, (2, L), generator=g)
        model64 = copy.deepcopy(model).to(torch.float64).eval()
        ref = compute_reference(model64, ids, positions)
        m_all = float(ref["margins"].min())
        m_greedy = float(ref["greedy_margins"].min())
        print(f"[{name}] seed {seed}: min margin all {m_all:.3g}, greedy {m_greedy:.3g}")
        if m_all >= MIN_MARGIN_ALL and m_greedy >= MIN_MARGIN_GREEDY:
            break
    else:
        raise RuntimeError(f"{name}: no seed with large enough margins")

    checks = {}
    # --- transformers' labels path
    with torch.no_grad():
        hf_loss = model64(input_ids=ids, labels=ids, use_cache=False).loss
    checks["loss_hf_labels_path"] = float(hf_loss)  # transformers upcasts logits to float32 there
    # --- float32 compute from the same weights
    model32 = copy.deepcopy(model).to(torch.float32).eval()
    lg32 = forward_logits(model32, ids).to(torch.float64)
    checks["f32_vs_f64_max_abs_logit_diff"] = float((lg32 - ref["logits"]).abs().max())
    checks["f32_vs_f64_argmax_equal"] = bool((lg32.argmax(-1) == ref["argmax"]).all())
    # --- pure float64 (RMSNorm and RoPE in float64 too)
    with PureF64(model64):
        lgp = forward_logits(model64, ids)
        gp_toks, gp_rows = greedy_nocache(model64, ids[0], GREEDY_STEPS)
    checks["hf_f64_vs_pure_f64_max_abs_logit_diff"] = float((lgp - ref["logits"]).abs().max())
    checks["hf_f64_vs_pure_f64_argmax_equal"] = bool((lgp.argmax(-1) == ref["argmax"]).all())
    checks["hf_f64_vs_pure_f64_greedy_equal"] = gp_toks == ref["greedy"]
    checks["hf_f64_vs_pure_f64_max_abs_greedy_step_logit_diff"] = float((gp_rows - ref["greedy_rows"]).abs().max())
    checks["logit_stats"] = {"std": float(ref["logits"].std()), "max_abs": float(ref["logits"].abs().max())}
    # --- greedy with a KV cache
    c_toks, c_rows = greedy_cached(model64, ids[0], GREEDY_STEPS)
    c32_toks, c32_rows = greedy_cached(model32, ids[0], GREEDY_STEPS)
    eos = cfg.eos_token_id if isinstance(cfg.eos_token_id, list) else [cfg.eos_token_id]
    checks["greedy"] = {
        "cached_f64 == nocache_f64": c_toks == ref["greedy"],
        "cached_f32 == nocache_f64": c32_toks == ref["greedy"],
        "max_abs_step_logit_diff_cached_vs_nocache_f64": float((c_rows - ref["greedy_rows"]).abs().max()),
        "max_abs_step_logit_diff_cached_f32_vs_nocache_f64": float(
            (c32_rows.to(torch.float64) - ref["greedy_rows"]).abs().max()),
        "eos_in_greedy": [i for i, t in enumerate(ref["greedy"]) if t in eos],
    }
    checks["min_top1_top2_margin_argmax_all"] = float(ref["margins"].min())
    checks["min_top1_top2_margin_greedy"] = float(ref["greedy_margins"].min())
    checks["mutations"] = mutation_results(model64, ids, ref["logits"], cfg)

    # --- save
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    save_kw = dict(safe_serialization=True)  # v5 always writes safetensors; kept for 4.x
    if case["max_shard_size"]:
        save_kw["max_shard_size"] = case["max_shard_size"]
    to_save = model if case["weights_dtype"] == torch.float32 else copy.deepcopy(model).to(case["weights_dtype"])
    to_save.save_pretrained(out_dir, **save_kw)
    del to_save
    if case["config_style"] == "legacy":
        to_legacy_config(os.path.join(out_dir, "config.json"))

    reloaded, info = type(model).from_pretrained(out_dir, dtype=torch.float64, attn_implementation="sdpa",
                                                 output_loading_info=True)
    reloaded.eval()
    checks["reload"] = {
        "class": type(reloaded).__name__,
        "loading_info_problems": {k: sorted(map(str, v)) for k, v in info.items() if v},
        "rope_theta": rope_theta_of(reloaded.config),
        "max_abs_logit_diff_vs_inmemory_f64": float((forward_logits(reloaded, ids) - ref["logits"]).abs().max()),
    }
    del reloaded
    if case["weights_dtype"] != torch.float32:
        # What a user gets computing in the checkpoint's own dtype (diagnostic only).
        low = type(model).from_pretrained(out_dir, dtype=case["weights_dtype"], attn_implementation="sdpa").eval()
        lgl = forward_logits(low, ids).to(torch.float64)
        tag = str(case["weights_dtype"]).replace("torch.", "")
        checks[f"{tag}_compute_vs_f64_max_abs_logit_diff"] = float((lgl - ref["logits"]).abs().max())
        checks[f"{tag}_compute_vs_f64_argmax_changed_frac"] = float((lgl.argmax(-1) != ref["argmax"]).double().mean())
        del low

    st = safetensors_facts(out_dir)
    expected = {
        "case": name,
        "model_class": type(model).__name__,
        "seed": seed,
        "seed_note": (f"attempt {attempt} of the seed search (BASE_SEED + 100*case_index + attempt) for "
                      f"top1-top2 margins >= {MIN_MARGIN_ALL} (all positions) and >= {MIN_MARGIN_GREEDY} "
                      f"(greedy steps)"),
        "generated_by": {
            "script": "scripts/make_model_cases.py",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "reference_dtype": "float64 (model.to(torch.float64)), sdpa attention, CPU",
        },
        "input_ids": ids.tolist(),
        "logits_positions": positions,
        "logits_sample": [[f32_list(ref["logits"][b, p]) for p in positions] for b in range(ids.shape[0])],
        "argmax_all": ref["argmax"].tolist(),
        "argmax_margins": f32_list(ref["margins"]),
        "loss": ref["loss"],
        "loss_per_sequence": ref["loss_per_sequence"],
        "greedy_32": ref["greedy"],
        "greedy_32_note": "sequence 0 only, 32 new tokens, argmax each step, no EOS stopping",
        "greedy_32_step_logits": f32_list(ref["greedy_rows"]),
        "greedy_32_step_logits_note": ("row i = logits that chose greedy_32[i] (row 0 = last prompt position); "
                                       "float64 full recomputation without cache"),
        "greedy_32_margins": f32_list(ref["greedy_margins"]),
        "checkpoint_key_layout": "model.*",
        "config_style": case["config_style"],
        "config_style_note": ("legacy: top-level rope_theta + rope_scaling null (as hub Qwen3/Llama configs); "
                              "v5: rope_parameters {rope_theta, rope_type} as transformers 5 writes it"),
        "tie_word_embeddings": bool(cfg.tie_word_embeddings),
        "lm_head_in_safetensors": st["has_lm_head"],
        "weights_dtype": st["dtypes"],
        "safetensors_files": st["files"],
        "init_note": INIT_NOTE,
        "values_note": "logit rows and margins rounded to float32 (shortest repr); losses full float64",
        "checks": checks,
    }
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump(expected, f, separators=(",", ":"))
        f.write("\n")
    print(f"[{name}] wrote {out_dir}")
    return out_dir


# ============================================================== Qwen3.5 (qwen3_5_text)

Q35_INIT_NOTE = (
    "all weights drawn from a torch.Generator seeded with `seed`, parameters in sorted name order: "
    "Qwen3_5RMSNorm weights (input/post_attention/final norm, q_norm, k_norm; applied as x*(1+w)) = "
    "0.1*N(0,1); the gated DeltaNet norm weight (linear_attn.norm, applied as x*w) = 1 + 0.1*N(0,1); "
    "A_log = log(A), A log-uniform in [0.005, 2] (decay rates from slow to fast); dt_bias = N(0,1); "
    "conv1d.weight [C,1,K] = N(0, 1/K); linear weights N(0, 1/fan_in); lm_head N(0, 1/hidden); untied "
    "embed_tokens N(0, 1), tied embed_tokens N(0, 1/hidden). Scaled (not HF's 0.02) init so the outputs are "
    "sensitive to norm conventions, gates, conv direction, RoPE and head mappings."
)
Q35_FALLBACK_FUNCS = ["torch_chunk_gated_delta_rule", "torch_recurrent_gated_delta_rule",
                      "causal_conv1d_fn", "causal_conv1d_update"]


def init_weights_q35(model, cfg, seed):
    g = torch.Generator().manual_seed(seed)
    tied = cfg.tie_word_embeddings
    hidden = cfg.hidden_size
    lo, hi = math.log(0.005), math.log(2.0)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            shape = tuple(p.shape)
            if name.endswith("linear_attn.norm.weight"):
                v = 1.0 + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
            elif name.endswith("norm.weight"):
                v = 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
            elif name.endswith("A_log"):
                v = lo + (hi - lo) * torch.rand(shape, generator=g, dtype=torch.float64)
            elif name.endswith("dt_bias"):
                v = torch.randn(shape, generator=g, dtype=torch.float64)
            elif name.endswith("conv1d.weight"):
                v = shape[-1] ** -0.5 * torch.randn(shape, generator=g, dtype=torch.float64)
            elif name.endswith("embed_tokens.weight"):
                std = hidden ** -0.5 if tied else 1.0
                v = std * torch.randn(shape, generator=g, dtype=torch.float64)
            elif name == "lm_head.weight":
                v = hidden ** -0.5 * torch.randn(shape, generator=g, dtype=torch.float64)
            elif len(shape) == 2:
                v = shape[1] ** -0.5 * torch.randn(shape, generator=g, dtype=torch.float64)
            else:
                raise RuntimeError(f"unexpected parameter {name} {shape}")
            p.copy_(v.to(p.dtype))
    if tied:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


def build_model_q35(case, seed):
    cfg = case["config_cls"](**copy.deepcopy(case["config"]))
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    model = case["cls"](cfg).to(torch.float32).eval()
    init_weights_q35(model, cfg, seed)
    return model


class PureF64Q35:
    """Context manager: run Qwen3.5's RMSNorms, RoPE and Gated DeltaNet layers entirely in float64.

    transformers (with the model in float64) still computes in float32 inside Qwen3_5RMSNorm,
    Qwen3_5RMSNormGated, the rotary cos/sin, the gate g (a.float()) and the whole gated delta rule
    (torch_chunk_gated_delta_rule casts q, k, v, beta, g to float32). The DeltaNet replacement here is an
    independent token-by-token recurrence (no chunking), so it also cross-checks the chunked kernel.
    Only for forward passes without a cache.
    """

    def __init__(self, model):
        self.cfg = model.config
        self.saved = []

    def __enter__(self):
        cfg = self.cfg
        rp = cfg.rope_parameters
        theta = float(rp["rope_theta"])
        hd = head_dim_of(cfg)
        rd = int(hd * rp.get("partial_rotary_factor", 1.0))
        f64 = torch.float64

        def norm_forward(self_, x):
            h = x.to(f64)
            h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self_.eps)
            return (h * (1.0 + self_.weight.to(f64))).to(x.dtype)

        def gated_norm_forward(self_, x, gate):
            h = x.to(f64)
            h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self_.variance_epsilon)
            return (self_.weight.to(f64) * h * F.silu(gate.to(f64))).to(x.dtype)

        def rot_forward(self_, x, position_ids):
            pos = position_ids[0] if position_ids.ndim == 3 else position_ids  # text: T == H == W rows
            inv = 1.0 / (theta ** (torch.arange(0, rd, 2, dtype=f64) / rd))
            freqs = pos[..., None].to(f64) * inv
            emb = torch.cat((freqs, freqs), dim=-1)
            return emb.cos().to(x.dtype), emb.sin().to(x.dtype)

        def gdn_forward(self_, hidden_states, cache_params=None, attention_mask=None, **kwargs):
            assert cache_params is None and attention_mask is None, "pure f64 path: no cache, no padding"
            x = hidden_states.to(f64)
            B, L, _ = x.shape
            nk, nv, dk, dv = self_.num_k_heads, self_.num_v_heads, self_.head_k_dim, self_.head_v_dim
            qkv = x @ self_.in_proj_qkv.weight.to(f64).T                       # [B, L, C]
            w = self_.conv1d.weight.to(f64)[:, 0, :]                            # [C, K]
            K = w.shape[-1]
            xp = F.pad(qkv, (0, 0, K - 1, 0))                                   # causal: K-1 zeros in front
            conv = sum(xp[:, j:j + L, :] * w[:, j] for j in range(K))         # out[t] = sum_j w[j] x[t-K+1+j]
            conv = F.silu(conv)
            q, k, v = torch.split(conv, [nk * dk, nk * dk, nv * dv], dim=-1)
            q = q.reshape(B, L, nk, dk)
            k = k.reshape(B, L, nk, dk)
            v = v.reshape(B, L, nv, dv)
            q = q * torch.rsqrt((q * q).sum(-1, keepdim=True) + 1e-6)
            k = k * torch.rsqrt((k * k).sum(-1, keepdim=True) + 1e-6)
            q = q * dk ** -0.5
            rep = nv // nk
            q = q.repeat_interleave(rep, dim=2)                                 # value head h <- key head h // rep
            k = k.repeat_interleave(rep, dim=2)
            beta = torch.sigmoid(x @ self_.in_proj_b.weight.to(f64).T)         # [B, L, nv]
            a = x @ self_.in_proj_a.weight.to(f64).T
            gdec = -torch.exp(self_.A_log.to(f64)) * F.softplus(a + self_.dt_bias.to(f64))
            S = torch.zeros(B, nv, dk, dv, dtype=f64)
            outs = []
            for t in range(L):
                S = S * torch.exp(gdec[:, t])[..., None, None]
                kt, vt, qt = k[:, t], v[:, t], q[:, t]                          # [B, nv, d]
                mem = torch.einsum("bhkv,bhk->bhv", S, kt)
                delta = (vt - mem) * beta[:, t][..., None]
                S = S + kt[..., :, None] * delta[..., None, :]
                outs.append(torch.einsum("bhkv,bhk->bhv", S, qt))
            o = torch.stack(outs, dim=1)                                        # [B, L, nv, dv]
            z = (x @ self_.in_proj_z.weight.to(f64).T).reshape(B, L, nv, dv)
            o = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + self_.norm.variance_epsilon)
            o = self_.norm.weight.to(f64) * o * F.silu(z)
            out = o.reshape(B, L, nv * dv) @ self_.out_proj.weight.to(f64).T
            return out.to(hidden_states.dtype)

        for cls_, fn in ((q35mod.Qwen3_5RMSNorm, norm_forward), (q35mod.Qwen3_5RMSNormGated, gated_norm_forward),
                         (q35mod.Qwen3_5TextRotaryEmbedding, rot_forward),
                         (q35mod.Qwen3_5GatedDeltaNet, gdn_forward)):
            self.saved.append((cls_, cls_.forward))
            cls_.forward = fn
        return self

    def __exit__(self, *exc):
        for c, f in reversed(self.saved):
            c.forward = f
        return False


class CountFallbackCalls:
    """Counts calls of the module-level DeltaNet / conv functions (the torch fallbacks here)."""

    def __init__(self):
        self.counts = {n: 0 for n in Q35_FALLBACK_FUNCS}
        self.saved = {}

    def __enter__(self):
        for n in Q35_FALLBACK_FUNCS:
            orig = getattr(q35mod, n)
            self.saved[n] = orig

            def wrapper(*a, _n=n, _orig=orig, **kw):
                self.counts[_n] += 1
                return _orig(*a, **kw)

            setattr(q35mod, n, wrapper)
        return self

    def __exit__(self, *exc):
        for n, f in self.saved.items():
            setattr(q35mod, n, f)
        return False


class PatchModuleFunc:
    """Temporarily replace a module-level function of modeling_qwen3_5 (used by mutations)."""

    def __init__(self, name, make):
        self.name, self.make = name, make

    def __enter__(self):
        self.orig = getattr(q35mod, self.name)
        setattr(q35mod, self.name, self.make(self.orig))

    def __exit__(self, *exc):
        setattr(q35mod, self.name, self.orig)
        return False


def fallback_facts():
    facts = {}
    for n in Q35_FALLBACK_FUNCS:
        fn = getattr(q35mod, n)
        free = dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in (fn.__closure__ or ()))))
        impl = free.get("implementation")
        wrapped = free.get("torch_function", getattr(fn, "__wrapped__", None))
        facts[n] = {
            "implementation": f"{impl.__module__}.{impl.__qualname__}" if impl else None,
            "is_torch_fallback": impl is not None and impl is wrapped,
        }
    for pkg in ("fla", "causal_conv1d", "kernels", "flash_attn"):
        facts[f"package_{pkg}_installed"] = importlib.util.find_spec(pkg) is not None
    return facts


def _source_in_f64(fn, name):
    """fn's source with float32 casts turned into float64 ones, compiled in modeling_qwen3_5's namespace."""
    src = textwrap.dedent(inspect.getsource(fn))
    src = "\n".join(line for line in src.splitlines() if not line.lstrip().startswith("@"))
    src = src.replace("torch.float32", "torch.float64").replace(".float()", ".double()")
    ns = dict(q35mod.__dict__)
    exec(src, ns)
    return ns[name]


@torch.no_grad()
def chunked_f64_vs_pure(model64, ids, pure_logits):
    """transformers' own chunked delta rule and DeltaNet forward with their float32 casts made float64
    (norms / RoPE as in PureF64Q35) vs the independent token-by-token recurrence: shows that the
    hf-vs-pure difference is only transformers' float32 internals. Diagnostic; None if the rewrite fails."""
    names = ["torch_chunk_gated_delta_rule", "torch_recurrent_gated_delta_rule"]
    saved = {n: getattr(q35mod, n) for n in names}
    try:
        with PureF64Q35(model64):
            gdn_saved = q35mod.Qwen3_5GatedDeltaNet.forward
            try:
                for n in names:
                    setattr(q35mod, n, _source_in_f64(saved[n].__wrapped__, n))
                q35mod.Qwen3_5GatedDeltaNet.forward = _source_in_f64(_GDN_FORWARD, "forward")
                lg = forward_logits(model64, ids)
            finally:
                q35mod.Qwen3_5GatedDeltaNet.forward = gdn_saved
        return float((lg - pure_logits).abs().max())
    except Exception as exc:  # noqa: BLE001 (diagnostic only)
        print(f"chunked_f64_vs_pure failed: {exc!r}")
        return None
    finally:
        for n, f in saved.items():
            setattr(q35mod, n, f)


_GDN_FORWARD = q35mod.Qwen3_5GatedDeltaNet.forward  # the stock forward, for _source_in_f64


def linear_layers(m):
    return [layer.linear_attn for layer in m.model.layers if hasattr(layer, "linear_attn")]


def attn_layers(m):
    return [layer.self_attn for layer in m.model.layers if hasattr(layer, "self_attn")]


def mutation_results_q35(ref_model, ids, ref_logits, cfg):
    """How far some plausible Qwen3.5 implementation mistakes move the logits (diagnostic)."""
    res = {}
    L = ids.shape[1]

    def record(name, lg):
        res[name] = {
            "max_abs_logit_diff": float((lg - ref_logits).abs().max()),
            "argmax_changed_frac": float((lg.argmax(-1) != ref_logits.argmax(-1)).double().mean()),
        }

    def run(name, mutate):
        m = copy.deepcopy(ref_model)
        with torch.no_grad():
            mutate(m)
        record(name, forward_logits(m, ids))

    def run_patched(name, func, make):
        with PatchModuleFunc(func, make):
            record(name, forward_logits(ref_model, ids))

    def zero_centred_norms(m):
        return [mod for mod in m.modules() if isinstance(mod, q35mod.Qwen3_5RMSNorm)]

    def norm_w_not_1_plus_w(m):   # x*w instead of x*(1+w): w' = w - 1 gives 1 + w' = w
        for mod in zero_centred_norms(m):
            mod.weight.sub_(1.0)

    run("rmsnorm_uses_w_not_1_plus_w", norm_w_not_1_plus_w)

    def gated_norm_1_plus_w(m):
        for la in linear_layers(m):
            la.norm.weight.add_(1.0)

    run("gated_norm_uses_1_plus_w", gated_norm_1_plus_w)

    def dt_bias_ignored(m):
        for la in linear_layers(m):
            la.dt_bias.zero_()

    run("dt_bias_ignored", dt_bias_ignored)

    def a_proj_ignored(m):
        for la in linear_layers(m):
            la.in_proj_a.weight.zero_()

    run("a_proj_ignored", a_proj_ignored)

    def conv_reversed(m):
        for la in linear_layers(m):
            la.conv1d.weight.copy_(la.conv1d.weight.flip(-1))

    run("conv_kernel_reversed", conv_reversed)

    def qk_l2norm_off(orig):
        def f(*a, **kw):
            kw["use_qk_l2norm_in_kernel"] = False
            return orig(*a, **kw)
        return f

    run_patched("deltanet_qk_l2norm_missing", "torch_chunk_gated_delta_rule", qk_l2norm_off)

    if L > DELTANET_CHUNK:
        def state_reset(orig):
            def f(query, key, value, g, beta, **kw):
                outs = []
                for s in range(0, query.shape[1], DELTANET_CHUNK):
                    sl = slice(s, s + DELTANET_CHUNK)
                    o, _ = orig(query[:, sl], key[:, sl], value[:, sl], g=g[:, sl], beta=beta[:, sl],
                                **dict(kw, initial_state=None, output_final_state=False))
                    outs.append(o)
                return torch.cat(outs, dim=1), None
            return f

        run_patched("deltanet_state_not_carried_across_64_chunks", "torch_chunk_gated_delta_rule", state_reset)

    nk, nv, dk, dv = (cfg.linear_num_key_heads, cfg.linear_num_value_heads, cfg.linear_key_head_dim,
                      cfg.linear_value_head_dim)
    rep = nv // nk
    if nk > 1 and rep > 1:
        # Wrong key-head repetition (value head h reads key head h % nk instead of h // rep), expressed
        # by reordering the value heads (and everything per value head) consistently.
        sigma = []
        for i in range(nv):
            sigma.append([h for h in range(nv) if h % nk == i // rep and h not in sigma][0])
        sigma = torch.tensor(sigma)
        vidx = torch.cat([2 * nk * dk + h * dv + torch.arange(dv) for h in sigma.tolist()])
        didx = torch.cat([h * dv + torch.arange(dv) for h in sigma.tolist()])

        def key_heads_tiled(m):
            for la in linear_layers(m):
                w = la.in_proj_qkv.weight
                w[2 * nk * dk:] = w[vidx].clone()
                cw = la.conv1d.weight
                cw[2 * nk * dk:] = cw[vidx].clone()
                la.in_proj_z.weight.copy_(la.in_proj_z.weight[didx].clone())
                for p in (la.in_proj_b.weight, la.in_proj_a.weight, la.A_log, la.dt_bias):
                    p.copy_(p[sigma].clone())
                la.out_proj.weight.copy_(la.out_proj.weight[:, didx].clone())

        run("deltanet_key_head_mapping_tiled", key_heads_tiled)

    hd = head_dim_of(cfg)
    n_heads, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
    rp = cfg.rope_parameters
    rd = int(hd * rp.get("partial_rotary_factor", 1.0))
    theta = float(rp["rope_theta"])

    def gate_missing(m):   # gate rows 0 -> sigmoid = 1/2; o_proj * 2 -> exactly "no gate"
        for at in attn_layers(m):
            w = at.q_proj.weight.view(n_heads, 2 * hd, -1)
            w[:, hd:, :] = 0.0
            at.o_proj.weight.mul_(2.0)

    run("attention_output_gate_missing", gate_missing)

    def rope_full_head(m):
        rot = m.model.rotary_emb
        inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        rot.inv_freq = inv.to(rot.inv_freq.dtype)

    run("rope_on_full_head_dim_not_partial", rope_full_head)

    def rope_theta_1e4(m):
        rot = m.model.rotary_emb
        inv = 1.0 / (10000.0 ** (torch.arange(0, rd, 2, dtype=torch.float32) / rd))
        rot.inv_freq = inv.to(rot.inv_freq.dtype)

    run("rope_theta_10000", rope_theta_1e4)

    # Interleaved (GPT-J) pairs within the rotary part == HF half-split on q/k with the first rd dims of
    # every head permuted evens-first (q_norm/k_norm weights likewise).
    perm = torch.cat([torch.arange(0, rd, 2), torch.arange(1, rd, 2), torch.arange(rd, hd)])

    def rope_interleaved(m):
        for at in attn_layers(m):
            wq = at.q_proj.weight.view(n_heads, 2 * hd, -1)
            wq[:, :hd, :] = wq[:, :hd, :][:, perm, :].clone()
            wk = at.k_proj.weight.view(n_kv, hd, -1)
            wk.copy_(wk[:, perm, :].clone())
            for nrm in (at.q_norm, at.k_norm):
                nrm.weight.copy_(nrm.weight[perm].clone())

    run("rope_interleaved_pairs", rope_interleaved)

    if n_kv > 1 and n_heads // n_kv > 1:
        n_rep = n_heads // n_kv
        sig = []
        for j in range(n_heads):
            sig.append([h for h in range(n_heads) if h % n_kv == j // n_rep and h not in sig][0])
        sig = torch.tensor(sig)

        def kv_tiled(m):
            for at in attn_layers(m):
                wq = at.q_proj.weight.view(n_heads, 2 * hd, -1)
                wq.copy_(wq[sig].clone())
                wo = at.o_proj.weight.view(-1, n_heads, hd)
                wo.copy_(wo[:, sig, :].clone())

        run("gqa_kv_head_mapping_tiled", kv_tiled)

    def lin_zero(m):
        for la in linear_layers(m):
            la.out_proj.weight.zero_()

    run("linear_attn_output_zeroed", lin_zero)

    def full_zero(m):
        for at in attn_layers(m):
            at.o_proj.weight.zero_()

    run("full_attn_output_zeroed", full_zero)
    return res


@torch.no_grad()
def greedy_generate(model, prompt, steps):
    gc = GenerationConfig(do_sample=False, max_new_tokens=steps, min_new_tokens=0, eos_token_id=None,
                          pad_token_id=0, bos_token_id=None)
    out = model.generate(prompt[None, :], generation_config=gc, attention_mask=torch.ones(1, len(prompt),
                                                                                        dtype=torch.long))
    return out[0, len(prompt):].tolist()


def q35_key_layout(keys):
    if all(k == "lm_head.weight" or k.startswith("model.language_model.") for k in keys):
        return "model.language_model.*"
    if all(k == "lm_head.weight" or (k.startswith("model.") and not k.startswith("model.language_model."))
           for k in keys):
        return "model.*"
    return "mixed"


def to_multimodal_key_layout(path):
    """Rename model.X -> model.language_model.X (lm_head.weight stays), as real Qwen3.5 checkpoints store it."""
    with safe_open(path, "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    out = {}
    for k, v in tensors.items():
        if k.startswith("model."):
            k = "model.language_model." + k[len("model."):]
        else:
            assert k == "lm_head.weight", k
        out[k] = v
    save_file(out, path, metadata=meta)


def edit_q35_config(path, case):
    """Hub-style Qwen3.5 text config: top-level partial_rotary_factor as in the shared qwen3_5-tiny
    (and in real Qwen3.5 text_configs); optional drops/sets (qwen3_5-tied: no layer_types,
    full_attention_interval instead)."""
    with open(path) as f:
        cfg = json.load(f)
    cfg["partial_rotary_factor"] = cfg["rope_parameters"]["partial_rotary_factor"]
    edits = case["config_edits"]
    for k in edits.get("drop", []):
        del cfg[k]
    cfg.update(edits.get("set", {}))
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def make_case_q35(case):
    name = case["name"]
    out_dir = os.path.join(OUT_ROOT, name)
    L = case["seq_len"]
    positions = case["logits_positions"]

    for attempt in range(MAX_ATTEMPTS):
        seed = BASE_SEED + 100 * case["index"] + attempt
        model = build_model_q35(case, seed)
        cfg = model.config
        g = torch.Generator().manual_seed(seed + 7)
        ids = torch.randint(0, cfg.vocab_size, (2, L), generator=g)
        model64 = copy.deepcopy(model).to(torch.float64).eval()
        ref = compute_reference(model64, ids, positions)
        m_all = float(ref["margins"].min())
        m_greedy = float(ref["greedy_margins"].min())
        print(f"[{name}] seed {seed}: min margin all {m_all:.3g}, greedy {m_greedy:.3g}")
        if m_all >= MIN_MARGIN_ALL and m_greedy >= MIN_MARGIN_GREEDY:
            break
    else:
        raise RuntimeError(f"{name}: no seed with large enough margins")

    checks = {}
    fb = fallback_facts()
    with torch.no_grad():
        hf_loss = model64(input_ids=ids, labels=ids, use_cache=False).loss
    checks["loss_hf_labels_path"] = float(hf_loss)
    model32 = copy.deepcopy(model).to(torch.float32).eval()
    with CountFallbackCalls() as cnt_full:
        forward_logits(model64, ids)
        lg32 = forward_logits(model32, ids).to(torch.float64)
    fb["calls_during_full_forward(f64+f32)"] = cnt_full.counts
    checks["f32_vs_f64_max_abs_logit_diff"] = float((lg32 - ref["logits"]).abs().max())
    checks["f32_vs_f64_argmax_equal"] = bool((lg32.argmax(-1) == ref["argmax"]).all())
    with PureF64Q35(model64):
        lgp = forward_logits(model64, ids)
        gp_toks, gp_rows = greedy_nocache(model64, ids[0], GREEDY_STEPS)
    checks["hf_f64_vs_pure_f64_max_abs_logit_diff"] = float((lgp - ref["logits"]).abs().max())
    checks["hf_f64_vs_pure_f64_argmax_equal"] = bool((lgp.argmax(-1) == ref["argmax"]).all())
    checks["hf_f64_vs_pure_f64_greedy_equal"] = gp_toks == ref["greedy"]
    checks["hf_f64_vs_pure_f64_max_abs_greedy_step_logit_diff"] = float((gp_rows - ref["greedy_rows"]).abs().max())
    checks["hf_chunked_rule_in_f64_vs_pure_f64_max_abs_logit_diff"] = chunked_f64_vs_pure(model64, ids, lgp)
    checks["hf_f64_vs_pure_f64_note"] = (
        "pure f64 = RMSNorm, gated RMSNorm, RoPE cos/sin and the DeltaNet layer in float64, the latter as an "
        "independent token-by-token recurrence (transformers runs the delta rule and some norms in float32)")
    checks["logit_stats"] = {"std": float(ref["logits"].std()), "max_abs": float(ref["logits"].abs().max())}
    with CountFallbackCalls() as cnt_cache:
        c_toks, c_rows = greedy_cached(model64, ids[0], GREEDY_STEPS)
    fb["calls_during_cached_greedy_f64"] = cnt_cache.counts
    c32_toks, c32_rows = greedy_cached(model32, ids[0], GREEDY_STEPS)
    gen_toks = greedy_generate(model64, ids[0], GREEDY_STEPS)
    gen32_toks = greedy_generate(model32, ids[0], GREEDY_STEPS)
    eos = cfg.eos_token_id if isinstance(cfg.eos_token_id, list) else [cfg.eos_token_id]
    checks["greedy"] = {
        "cached_f64 == nocache_f64": c_toks == ref["greedy"],
        "generate_f64 == nocache_f64": gen_toks == ref["greedy"],
        "cached_f32 == nocache_f64": c32_toks == ref["greedy"],
        "generate_f32 == nocache_f64": gen32_toks == ref["greedy"],
        "max_abs_step_logit_diff_cached_vs_nocache_f64": float((c_rows - ref["greedy_rows"]).abs().max()),
        "max_abs_step_logit_diff_cached_f32_vs_nocache_f64": float(
            (c32_rows.to(torch.float64) - ref["greedy_rows"]).abs().max()),
        "eos_in_greedy": [i for i, t in enumerate(ref["greedy"]) if t in eos],
    }
    checks["fallback"] = fb
    checks["min_top1_top2_margin_argmax_all"] = float(ref["margins"].min())
    checks["min_top1_top2_margin_greedy"] = float(ref["greedy_margins"].min())
    checks["mutations"] = mutation_results_q35(model64, ids, ref["logits"], cfg)

    # --- save
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    model.save_pretrained(out_dir)
    st_path = os.path.join(out_dir, "model.safetensors")
    if case["key_layout"] == "model.language_model.*":
        to_multimodal_key_layout(st_path)
    edit_q35_config(os.path.join(out_dir, "config.json"), case)

    reloaded, info = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float64, attn_implementation="sdpa",
                                                          output_loading_info=True)
    reloaded.eval()
    checks["reload"] = {
        "class": type(reloaded).__name__,
        "loader": "AutoModelForCausalLM.from_pretrained(dir, dtype=float64)",
        "loading_info_problems": {k: sorted(map(str, v)) for k, v in info.items() if v},
        "layer_types": list(reloaded.config.layer_types),
        "max_abs_logit_diff_vs_inmemory_f64": float((forward_logits(reloaded, ids) - ref["logits"]).abs().max()),
    }
    assert list(reloaded.config.layer_types) == list(cfg.layer_types)
    del reloaded

    st = safetensors_facts(out_dir)
    layout = q35_key_layout(st["keys"])
    assert layout == case["key_layout"], (layout, case["key_layout"])
    L_chunks = -(-L // DELTANET_CHUNK)
    expected = {
        "case": name,
        "model_class": type(model).__name__,
        "seed": seed,
        "seed_note": (f"attempt {attempt} of the seed search (BASE_SEED + 100*case_index + attempt) for "
                      f"top1-top2 margins >= {MIN_MARGIN_ALL} (all positions) and >= {MIN_MARGIN_GREEDY} "
                      f"(greedy steps)"),
        "generated_by": {
            "script": "scripts/make_model_cases.py",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "reference_dtype": ("float64 (model.to(torch.float64)), sdpa attention, CPU, torch fallback "
                                "kernels (no fla / causal_conv1d / kernels packages)"),
        },
        "input_ids": ids.tolist(),
        "logits_positions": positions,
        "logits_sample": [[f32_list(ref["logits"][b, p]) for p in positions] for b in range(ids.shape[0])],
        "argmax_all": ref["argmax"].tolist(),
        "argmax_margins": f32_list(ref["margins"]),
        "loss": ref["loss"],
        "loss_per_sequence": ref["loss_per_sequence"],
        "greedy_32": ref["greedy"],
        "greedy_32_note": "sequence 0 only, 32 new tokens, argmax each step, no EOS stopping",
        "greedy_32_step_logits": f32_list(ref["greedy_rows"]),
        "greedy_32_step_logits_note": ("row i = logits that chose greedy_32[i] (row 0 = last prompt position); "
                                       "float64 full recomputation without cache"),
        "greedy_32_margins": f32_list(ref["greedy_margins"]),
        "cached_greedy_equals_nocache": bool(c_toks == ref["greedy"] and gen_toks == ref["greedy"]),
        "cached_greedy_equals_nocache_note": (
            "transformers, float64: greedy_32 recomputed with the cache (prefill through the chunked delta rule, "
            "then one token at a time through the recurrent rule / conv-state update), both a manual "
            "past_key_values loop and model.generate(do_sample=False), equals the no-cache greedy_32"),
        "checkpoint_key_layout": layout,
        "checkpoint_key_layout_note": (
            "model.language_model.*: the multimodal layout of real Qwen3.5 checkpoints (and of the shared "
            "qwen3_5-tiny), lm_head.weight at top level; model.*: plain causal-LM layout (model.layers.*, "
            "model.embed_tokens, model.norm, lm_head) as Qwen3_5ForCausalLM.save_pretrained writes it. "
            "transformers 5.23 loads both into Qwen3_5ForCausalLM (PrefixChange 'language_model')"),
        "config_style": case["config_style"],
        "config_style_note": (
            "hub35: config.json as transformers 5.23 writes Qwen3_5TextConfig (rope_parameters with rope_theta, "
            "partial_rotary_factor, mrope_section, mrope_interleaved; explicit layer_types) plus a top-level "
            "partial_rotary_factor, like the shared qwen3_5-tiny; hub35-interval: the same but without "
            "layer_types and with full_attention_interval (layer i is full attention iff (i+1) % interval == 0)"),
        "layer_types": list(cfg.layer_types),
        "deltanet_chunks": {"chunk_size": DELTANET_CHUNK, "num_chunks": L_chunks,
                            "padded_tail": L_chunks * DELTANET_CHUNK - L},
        "tie_word_embeddings": bool(cfg.tie_word_embeddings),
        "lm_head_in_safetensors": st["has_lm_head"],
        "weights_dtype": st["dtypes"],
        "safetensors_files": st["files"],
        "init_note": Q35_INIT_NOTE,
        "values_note": "logit rows and margins rounded to float32 (shortest repr); losses full float64",
        "mutations": checks["mutations"],
        "checks": checks,
    }
    if case["config_edits"]:
        expected["config_note"] = (
            "config.json has no layer_types; it has full_attention_interval = "
            f"{case['config_edits']['set']['full_attention_interval']}. transformers 5.23's Qwen3_5TextConfig "
            "derives layer_types from it when layer_types is absent (default interval 4): "
            f"{case['expect_layer_types']}. `layer_types` in this file is that derived list.")
        assert list(cfg.layer_types) == case["expect_layer_types"]
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump(expected, f, separators=(",", ":"))
        f.write("\n")
    print(f"[{name}] wrote {out_dir}")
    return out_dir


def to_legacy_config(path):
    with open(path) as f:
        cfg = json.load(f)
    rp = cfg.pop("rope_parameters")
    assert rp.get("rope_type", "default") == "default", rp
    extra = {k: v for k, v in rp.items() if k not in ("rope_theta", "rope_type")}
    assert not extra, extra
    cfg["rope_theta"] = rp["rope_theta"]
    cfg["rope_scaling"] = None
    cfg = dict(sorted(cfg.items()))
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def safetensors_facts(d):
    files = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
    keys, dtypes = [], set()
    for fn in files:
        with safe_open(os.path.join(d, fn), "pt") as f:
            for k in f.keys():
                keys.append(k)
                dtypes.add(str(f.get_slice(k).get_dtype()))
    return {
        "files": files,
        "has_lm_head": "lm_head.weight" in keys,
        "dtypes": sorted(dtypes)[0] if len(dtypes) == 1 else sorted(dtypes),
        "keys": keys,
    }


# ---------------------------------------------------------------------------- verify

def verify_case(name):
    """Re-load the saved checkpoint with transformers and recompute against expected.json."""
    d = os.path.join(OUT_ROOT, name)
    with open(os.path.join(d, "expected.json")) as f:
        exp = json.load(f)
    q35 = exp["model_class"] == "Qwen3_5ForCausalLM"
    if q35:
        # through the Auto class: config.json's model_type "qwen3_5_text" must select Qwen3_5ForCausalLM, and
        # the model.language_model.* layout must be renamed on load
        cls = AutoModelForCausalLM
    else:
        cls = {"Qwen3ForCausalLM": Qwen3ForCausalLM, "LlamaForCausalLM": LlamaForCausalLM}[exp["model_class"]]
    model, info = cls.from_pretrained(d, dtype=torch.float64, attn_implementation="sdpa",
                                      output_loading_info=True)
    model.eval()
    problems = {k: v for k, v in info.items() if v}
    ids = torch.tensor(exp["input_ids"])
    logits = forward_logits(model, ids)
    pos = exp["logits_positions"]
    got = logits[:, pos]
    want = torch.tensor(exp["logits_sample"], dtype=torch.float64)
    d_sample = float((got - want).abs().max())
    argmax_ok = logits.argmax(-1).tolist() == exp["argmax_all"]
    d_margin = float((top2_margin(logits) - torch.tensor(exp["argmax_margins"], dtype=torch.float64)).abs().max())
    per_seq, loss = next_token_losses(logits, ids)
    d_loss = max(abs(float(loss) - exp["loss"]),
                 max(abs(a - b) for a, b in zip(per_seq.tolist(), exp["loss_per_sequence"])))
    toks, rows = greedy_nocache(model, ids[0], GREEDY_STEPS)
    d_greedy = float((rows - torch.tensor(exp["greedy_32_step_logits"], dtype=torch.float64)).abs().max())
    greedy_ok = toks == exp["greedy_32"]
    st = safetensors_facts(d)
    tied = model.config.tie_word_embeddings
    ok = (not problems and argmax_ok and greedy_ok and d_sample <= VERIFY_TOL and d_greedy <= VERIFY_TOL
          and d_margin <= VERIFY_TOL and d_loss <= 1e-9 and st["has_lm_head"] == exp["lm_head_in_safetensors"]
          and (not tied or not st["has_lm_head"]))
    extra = {}
    if q35:
        layout = q35_key_layout(st["keys"])
        lt_ok = list(model.config.layer_types) == exp["layer_types"]
        ok = (ok and type(model).__name__ == exp["model_class"] and layout == exp["checkpoint_key_layout"]
              and lt_ok and tied == exp["tie_word_embeddings"])
        extra = {"class_loaded": type(model).__name__, "key_layout": layout, "layer_types_equal": lt_ok}
    report = {
        "case": name,
        "ok": ok,
        **extra,
        "loading_problems": problems,
        "rope_theta_loaded": rope_theta_of(model.config),
        "max_abs_diff_logits_sample": d_sample,
        "max_abs_diff_greedy_step_logits": d_greedy,
        "max_abs_diff_margins": d_margin,
        "max_abs_diff_loss": d_loss,
        "argmax_all_equal": argmax_ok,
        "greedy_equal": greedy_ok,
        "lm_head_in_safetensors": st["has_lm_head"],
        "files": {fn: os.path.getsize(os.path.join(d, fn)) for fn in sorted(os.listdir(d))},
        "folder_bytes": sum(os.path.getsize(os.path.join(d, fn)) for fn in os.listdir(d)),
    }
    return report


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--verify", action="store_true", help="only verify existing fixtures")
    ap.add_argument("--case", action="append", help="case name (repeatable); default all")
    ap.add_argument("--only", help="comma-separated case names, e.g. qwen3_5-long,qwen3_5-tied (adds to --case)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # deterministic reductions
    names = (args.case or []) + [n.strip() for n in (args.only or "").split(",") if n.strip()]
    names = list(dict.fromkeys(names)) or [c["name"] for c in CASES]
    by_name = {c["name"]: c for c in CASES}
    for n in names:
        if n not in by_name:
            sys.exit(f"unknown case {n}; known: {list(by_name)}")
    if not args.verify:
        for n in names:
            c = by_name[n]
            (make_case_q35 if c.get("family") == "qwen3_5" else make_case)(c)
    all_ok = True
    for n in names:
        r = verify_case(n)
        all_ok &= r["ok"]
        print(json.dumps(r, indent=1))
    print("ALL OK" if all_ok else "VERIFICATION FAILED")
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
