//! thinkling's inference engine: runs a quantized reasoning model from a blob
//! read in place (flash on a board), in memory whose size is known up front.
//!
//! The path from bytes to tokens, in pipeline order:
//! [`blob::parse`] (format checks) → [`tokenizer`] → [`model::Model`] (tensor
//! views) → [`session::Session`] (forward pass with KV cache in the caller's
//! arena, sized by [`memory::plan`]; kernels in [`kernels`]) → [`sampling`] →
//! [`generate()`] (think/answer parsing, think budget, streaming); [`answer`]
//! checks a generated answer against the expected one.
#![no_std]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod answer;
mod arena;
pub mod blob;
mod bytes;
pub mod error;
pub mod format;
pub mod generate;
pub mod kernels;
pub mod kv_cache;
pub mod memory;
pub mod model;
pub mod quant;
pub mod sampling;
pub mod session;
pub mod speculative;
#[cfg(feature = "alloc")]
pub mod testing;
pub mod tokenizer;

pub use error::{BlobError, SessionError};
pub use format::{DType, ModelConfig, ScaleType};
pub use generate::{
    generate, generate_ids, GenerateConfig, GenerateError, Generation, Span, StopReason, TokenEvent,
};
pub use memory::{plan, plan_batch, plan_draft, plan_speculative, KvDType, MemoryPlan};
pub use model::Model;
pub use sampling::{Sampler, SamplerConfig};
pub use session::Session;
pub use speculative::{generate_speculative, SpecStats, SpeculativeError};
