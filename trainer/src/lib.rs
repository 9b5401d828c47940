//! thinkling's trainer: BPE tokenizer, candle model with fused CPU ops,
//! dual-loss training with AdamW, checkpoints, evaluation and sampling.

pub mod bpe;
pub mod config;
pub mod data;
pub mod loss;
pub mod model;
pub mod ops;
pub mod optim;
