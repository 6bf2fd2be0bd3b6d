//! `step.checkpoint_layers`: per-layer activation checkpointing on, off, or "auto" (the
//! default): on when the memory plan says the saved activations would otherwise exceed a
//! quarter of the device's available memory or the run would not fit (plan::Plan::compute).
//! `train` decides "auto" before the first step and writes the decision to the run's
//! config.toml; a trainer given "auto" directly decides per micro-batch by the same rule.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::model::ModelConfig;
use crate::plan::available::host;
use crate::plan::figures::{activations, Shape};

/// checkpoint_layers = "auto" turns checkpointing on when the saved activations without it
/// would exceed this share of a device's available memory (or the run would not fit).
pub const AUTO_ACTIVATION_SHARE: f64 = 0.25;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerCheckpointing {
    Off,
    On,
    #[default]
    Auto,
}

impl LayerCheckpointing {
    /// On or off as given (Auto: None, to be decided by the plan).
    pub fn fixed(self) -> Option<bool> {
        match self {
            Self::Off => Some(false),
            Self::On => Some(true),
            Self::Auto => None,
        }
    }
}

impl From<bool> for LayerCheckpointing {
    fn from(on: bool) -> Self {
        if on {
            Self::On
        } else {
            Self::Off
        }
    }
}

impl Serialize for LayerCheckpointing {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Off => s.serialize_bool(false),
            Self::On => s.serialize_bool(true),
            Self::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for LayerCheckpointing {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = LayerCheckpointing;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or \"auto\"")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(v.into())
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "auto" => Ok(LayerCheckpointing::Auto),
                    "true" | "on" => Ok(LayerCheckpointing::On),
                    "false" | "off" => Ok(LayerCheckpointing::Off),
                    other => Err(E::custom(format!("expected true, false or \"auto\", got {other:?}"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// checkpoint_layers = "auto" for a trainer given it undecided: on when `tokens` tokens'
/// saved activations without checkpointing exceed AUTO_ACTIVATION_SHARE of the host's
/// available memory.
pub fn wants_checkpointing(model: &ModelConfig, dtype: candle_core::DType, tokens: u64) -> bool {
    let shape = Shape {
        model: model.clone(),
        w: dtype.size_in_bytes() as u64,
        lora: None,
        reference: false,
        checkpoint_layers: false,
        fused_delta_rule: true,
        logprob_chunk: 1,
        tokens,
        generation_rows: 0,
        generation_tokens: 0,
        prompt_tokens: 0,
    };
    host().is_some_and(|a| activations(&shape) as f64 > AUTO_ACTIVATION_SHARE * a as f64)
}
