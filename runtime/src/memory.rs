//! The memory a session needs, known before running: [`plan`] gives the exact
//! byte count of the caller's arena for a config, a context length and a KV
//! cache element type. It is counted by running the session's own carving
//! code (`arena.rs`) over no memory, so the two cannot disagree.
//!
//! ```text
//! kv_cache = 2 · layers · context · kv_dim · (4 for f32 | 2 for f16)
//!          | 2 · layers · context · (kv_dim + 2 · ⌈kv_dim / 32⌉)   for q8
//!                                                 (int8 values, f16 scales)
//! scratch  = 4 · ( context · head_dim            RoPE cos and sin tables
//!                + 4 · dim + 2 · kv_dim          x, xb, xb2, q, k, v
//!                + 2 · hidden                    SwiGLU gate and up
//!                + context + a                   attention scores (a q8 cache with 2+
//!                                                 query heads per kv head takes two at a
//!                                                 time, 2 · context scores that run on
//!                                                 into the logits: a = max(0, context −
//!                                                 vocab) there, else 0)
//!                + vocab                         logits (then probabilities)
//!                + n_experts                     router logits (MoE only)
//!                + 2 · max(dim, hidden)          activation group scales and sums
//!                + vocab                         sampler candidates (top-k / top-p sort)
//!                + context                       token ids (prompt and generated)
//!                + 2 · ⌈max(dim, hidden) / 4⌉ )  activations as SXTB16 pairs (Armv7E-M)
//!          + 2 · (max(dim, hidden) + 1)          int8 activations, and split for Q4
//! total    = kv_cache + scratch + 15             (each buffer rounded up to 16
//!                                                 bytes; 15 to align the arena start)
//! ```
//! The activation scales/sums are sized for the worst group size (1), because
//! the plan depends on the config only, not on how a blob was quantized.

use crate::arena::{carve_cache, Buffers, Layout, Measure};
use crate::format::ModelConfig;

pub use crate::arena::ALIGN;
pub use crate::kv_cache::KvDType;

/// Bytes of a session's arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    pub kv_cache_bytes: usize,
    /// Everything else: activations, RoPE tables, logits, sampler and token
    /// buffers, buffer rounding.
    pub scratch_bytes: usize,
    /// `kv_cache_bytes + scratch_bytes + ALIGN - 1`: exactly what
    /// [`crate::session::Session::new`] needs.
    pub total_bytes: usize,
}

/// Exact arena bytes for a session of `context` positions with a `kv` cache.
pub fn plan(config: &ModelConfig, context: usize, kv: KvDType) -> MemoryPlan {
    plan_batch(config, context, kv, 0)
}

/// Exact arena bytes for [`crate::session::Session::with_batch`]: [`plan`]
/// plus room to run `batch` tokens in one pass and keep each one's logits
/// (`batch · (4 · dim + 2 · kv_dim + 2 · hidden + vocab + 2 · act +
/// 2 · ⌈act / 4⌉) · 4 + 2 · batch · (act + 1)` bytes, each buffer rounded up
/// to 16). `batch == 0` is exactly [`plan`].
pub fn plan_batch(config: &ModelConfig, context: usize, kv: KvDType, batch: usize) -> MemoryPlan {
    plan_rows(config, context, kv, batch, batch)
}

/// The plan of a session with a batch capacity of `batch` tokens and
/// `max(batch, logit_rows)` logits rows: the bytes the session's own carving
/// code ([`crate::arena`]) takes, counted.
pub(crate) fn plan_rows(
    config: &ModelConfig,
    context: usize,
    kv: KvDType,
    batch: usize,
    logit_rows: usize,
) -> MemoryPlan {
    let l = Layout::new(config, context, kv);
    let mut cache = Measure::default();
    let _ = carve_cache(&mut cache, &l, kv);
    let mut scratch = Measure::default();
    let _ = Buffers::carve(&mut scratch, &l, batch, logit_rows);
    MemoryPlan {
        kv_cache_bytes: cache.bytes,
        scratch_bytes: scratch.bytes,
        total_bytes: cache
            .bytes
            .saturating_add(scratch.bytes)
            .saturating_add(ALIGN - 1),
    }
}

/// Arena bytes of the target session of speculative decoding with `k` draft
/// tokens per step ([`crate::speculative::generate_speculative`]): it checks
/// `k + 1` tokens per pass, so this is [`plan_batch`] with `k + 1`.
pub fn plan_speculative(config: &ModelConfig, context: usize, kv: KvDType, k: usize) -> MemoryPlan {
    plan_batch(config, context, kv, k.saturating_add(1))
}

/// Arena bytes of the draft session ([`crate::session::Session::draft`]):
/// [`plan`] plus `k` logits rows (`4 · k · vocab` bytes, rounded), where
/// sampling keeps the draft's distributions for the acceptance test. The
/// draft runs one token at a time, so it needs no batch activations.
pub fn plan_draft(config: &ModelConfig, context: usize, kv: KvDType, k: usize) -> MemoryPlan {
    plan_rows(config, context, kv, 0, k)
}
