//! The GRPO + HRI trainer.

pub mod adamw_update;
pub mod advantage;
pub mod batch;
pub mod bc;
pub mod checkpoint;
pub mod collective;
pub mod config;
pub mod data;
pub mod group;
pub mod halt;
pub mod host_memory;
pub mod layer_checkpointing;
pub mod loss;
pub mod optim;
pub mod preset;
pub mod schedule;
pub mod sft;
pub mod signals;
pub mod step;
pub mod throughput;
pub mod trained;
pub mod validation;
pub mod workers;
pub mod zero;
