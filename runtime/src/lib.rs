//! thinkling's inference engine: runs a quantized reasoning model from a blob
//! read in place (flash on a board), in memory whose size is known up front.
//!
//! The path from bytes to tokens, in pipeline order:
//! [`blob::parse`] (format checks) → [`tokenizer`] → the model and its forward
//! pass → sampling → generation with think/answer parsing.
#![no_std]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod blob;
pub mod error;
pub mod format;
pub mod quant;
pub mod tokenizer;

pub use error::BlobError;
pub use format::{DType, ModelConfig, ScaleType};
