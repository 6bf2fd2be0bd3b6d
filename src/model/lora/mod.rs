//! LoRA as HF PEFT applies it: a target projection computes
//!   y = x Wᵀ (+ b) + s · dropout(x) Aᵀ Bᵀ,   s = alpha / r  (alpha / √r with rsLoRA),
//! A: [r, in] initialised kaiming-uniform (a = √5, i.e. U(±1/√in)), B: [out, r] zeros, so a
//! fresh adapter leaves the model's function unchanged. Every architecture holds its
//! projections as `Linear`, so the same code serves llama, qwen3 and qwen3.5, on the
//! differentiable path (training) and the fused one (generation) alike.
//!
//! Dropout applies only while the model is in training mode (`Model::set_training`) and only
//! on the differentiable path. GRPO's ratio π_new/π_old assumes both log-probs come from the
//! policy that sampled the rollouts; a dropped-out forward is a different, random policy, so
//! with more than one update epoch the ratio would measure dropout noise instead of policy
//! change and clip on it. (With today's one update epoch, old = current from the same
//! forward, so the ratio stays 1 and dropout only makes the gradient that of a perturbed
//! policy.) The run configuration therefore defaults to dropout 0 (PEFT's default is 0.05);
//! with dropout > 0 the masks are drawn on the CPU from a seeded generator whose position is
//! checkpointed, so a resumed run still repeats the uninterrupted one.
//!
//! Files: `config` (what an adapter is), `spec` (what to attach while a model is built),
//! `layer` (the branch a projection adds, and its dropout), `adapters` (the adapters of a
//! built model), `peft` (PEFT's files: writing, reading, checking).

pub mod adapters;
pub mod config;
pub mod layer;
pub mod peft;
pub mod spec;
