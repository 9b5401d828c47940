//! thinkling's trainer: BPE tokenizer, candle model with fused CPU ops,
//! dual-loss training with AdamW, checkpoints, evaluation and sampling.

pub mod ablate;
pub mod bench;
pub mod bpe;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod data;
pub mod device;
pub mod dpo;
pub mod eval;
pub mod fsutil;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod optim;
pub mod plot;
pub mod sample;
pub mod step;
pub mod train;
