//! The memory a session needs, known before running: [`plan`] gives the exact
//! byte count of the caller's arena for a config, a context length and a KV
//! cache element type.
//!
//! ```text
//! kv_cache = 2 · layers · context · kv_dim · (4 for f32 | 2 for f16)
//! scratch  = 4 · ( context · head_dim            RoPE cos and sin tables
//!                + 4 · dim + 2 · kv_dim          x, xb, xb2, q, k, v
//!                + 2 · hidden                    SwiGLU gate and up
//!                + context                       attention scores (one head at a time)
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

use crate::format::ModelConfig;
use crate::kernels::pair_words;

/// Alignment of the arena start and of every buffer in it.
pub const ALIGN: usize = 16;

/// Element type of the KV cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvDType {
    F32,
    /// Half the cache memory; keys and values are rounded to f16 when stored.
    F16,
}

impl KvDType {
    pub fn bytes(self) -> usize {
        match self {
            KvDType::F32 => 4,
            KvDType::F16 => 2,
        }
    }
}

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

/// Element counts of every buffer of a session, in arena order. The session
/// carves its arena with these, so [`plan`] and the session cannot disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub kv_elems: usize, // per cache (keys, and again values)
    pub rope: usize,     // per table (cos, and again sin)
    pub dim: usize,
    pub kv_dim: usize,
    pub hidden: usize,
    pub context: usize,
    pub vocab: usize,
    pub experts: usize,
    pub act: usize, // max(dim, hidden): longest matvec input
}

impl Layout {
    pub fn new(c: &ModelConfig, context: usize) -> Self {
        let dim = c.dim as usize;
        let hidden = c.hidden_dim as usize;
        let kv_dim = c.kv_dim() as usize;
        Self {
            kv_elems: (c.n_layers as usize)
                .saturating_mul(context)
                .saturating_mul(kv_dim),
            rope: context.saturating_mul(c.head_dim() as usize / 2),
            dim,
            kv_dim,
            hidden,
            context,
            vocab: c.vocab_size as usize,
            experts: c.moe.map_or(0, |m| m.n_experts as usize),
            act: dim.max(hidden),
        }
    }
}

/// `bytes` rounded up to [`ALIGN`] (saturating: absurd sizes never wrap).
pub(crate) fn round(bytes: usize) -> usize {
    bytes.saturating_add(ALIGN - 1) / ALIGN * ALIGN
}

pub(crate) fn f32s(n: usize) -> usize {
    round(n.saturating_mul(4))
}

/// Exact arena bytes for a session of `context` positions with a `kv` cache.
pub fn plan(config: &ModelConfig, context: usize, kv: KvDType) -> MemoryPlan {
    plan_batch(config, context, kv, 0)
}

/// Byte sizes of the batch region of a session made with
/// [`crate::session::Session::with_batch`]: `n` tokens' activations and
/// quantized activations, and `logit_rows` logits rows.
pub(crate) fn batch_buffers(l: &Layout, n: usize, logit_rows: usize) -> [usize; 14] {
    let rows = |e: usize| e.saturating_mul(n);
    [
        f32s(rows(l.dim)),                        // x
        f32s(rows(l.dim)),                        // xb
        f32s(rows(l.dim)),                        // xb2
        f32s(rows(l.dim)),                        // q
        f32s(rows(l.kv_dim)),                     // k
        f32s(rows(l.kv_dim)),                     // v
        f32s(rows(l.hidden)),                     // gate
        f32s(rows(l.hidden)),                     // up
        f32s(l.vocab.saturating_mul(logit_rows)), // logits rows
        round(rows(l.act.saturating_add(1))),     // int8 activations
        round(rows(l.act.saturating_add(1))),     // the even/odd split
        f32s(rows(pair_words(l.act))),            // SXTB16 pairs (u32)
        f32s(rows(l.act)),                        // activation scales
        f32s(rows(l.act)),                        // activation group sums
    ]
}

/// Exact arena bytes for [`crate::session::Session::with_batch`]: [`plan`]
/// plus room to run `batch` tokens in one pass and keep each one's logits
/// (`batch · (4 · dim + 2 · kv_dim + 2 · hidden + vocab + 2 · act +
/// 2 · ⌈act / 4⌉) · 4 + 2 · batch · (act + 1)` bytes, each buffer rounded up
/// to 16). `batch == 0`
/// is exactly [`plan`].
pub fn plan_batch(config: &ModelConfig, context: usize, kv: KvDType, batch: usize) -> MemoryPlan {
    plan_rows(config, context, kv, batch, batch)
}

/// The plan of a session with a batch capacity of `batch` tokens and
/// `max(batch, logit_rows)` logits rows.
pub(crate) fn plan_rows(
    config: &ModelConfig,
    context: usize,
    kv: KvDType,
    batch: usize,
    logit_rows: usize,
) -> MemoryPlan {
    let l = Layout::new(config, context);
    let kv_cache_bytes = round(l.kv_elems.saturating_mul(kv.bytes())).saturating_mul(2);
    let scratch = [
        f32s(l.rope),
        f32s(l.rope),
        f32s(l.dim), // x
        f32s(l.dim), // xb
        f32s(l.dim), // xb2
        f32s(l.dim), // q
        f32s(l.kv_dim),
        f32s(l.kv_dim),
        f32s(l.hidden),
        f32s(l.hidden),
        f32s(l.context),                // attention scores
        f32s(l.vocab),                  // logits
        f32s(l.experts),                // router logits
        round(l.act.saturating_add(1)), // int8 activations (+ Q4 pair pad)
        round(l.act.saturating_add(1)), // the same split into even/odd halves per group
        f32s(pair_words(l.act)),        // the same as SXTB16 pairs (u32, Armv7E-M)
        f32s(l.act),                    // activation scales
        f32s(l.act),                    // activation group sums (i32)
        f32s(l.vocab),                  // sampler candidates (u32)
        f32s(l.context),                // token ids (u32)
    ];
    let scratch_bytes = scratch
        .iter()
        .chain(batch_buffers(&l, batch, batch.max(logit_rows)).iter())
        .fold(0usize, |a, b| a.saturating_add(*b));
    MemoryPlan {
        kv_cache_bytes,
        scratch_bytes,
        total_bytes: kv_cache_bytes
            .saturating_add(scratch_bytes)
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
