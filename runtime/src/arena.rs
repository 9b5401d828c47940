//! Every buffer of a session, declared once with its shape, and the one
//! function that lays them out. A session runs it over its arena with
//! [`Carver`]; [`crate::memory::plan`] runs the same code with [`Measure`],
//! which only counts bytes, so the plan and the session cannot disagree.

use crate::format::ModelConfig;
use crate::kernels::activations::{ActivationRows, QuantizedActivations};
use crate::kernels::pair_words;
use crate::kv_cache::{KvCache, KvDType};

/// Alignment of the arena start and of every buffer in it.
pub const ALIGN: usize = 16;

/// `bytes` rounded up to [`ALIGN`] (saturating: absurd sizes never wrap).
pub(crate) fn round(bytes: usize) -> usize {
    bytes.saturating_add(ALIGN - 1) / ALIGN * ALIGN
}

/// Element types that may be viewed from arena bytes: every bit pattern is a
/// valid value and none has drop glue.
pub(crate) trait Plain: Copy {}
impl Plain for f32 {}
impl Plain for u32 {}
impl Plain for i32 {}
impl Plain for u16 {}
impl Plain for i8 {}

/// Hands out the buffers of an arena in order, each rounded up to
/// [`ALIGN`] bytes.
pub(crate) trait Carve<'m> {
    /// The next `n` elements of `T` (`None`: the arena is too small).
    fn take<T: Plain>(&mut self, n: usize) -> Option<&'m mut [T]>;
}

/// Carves a real arena (its start already aligned to [`ALIGN`]).
pub(crate) struct Carver<'m> {
    pub rest: &'m mut [u8],
}

impl<'m> Carve<'m> for Carver<'m> {
    fn take<T: Plain>(&mut self, n: usize) -> Option<&'m mut [T]> {
        let bytes = round(n.saturating_mul(core::mem::size_of::<T>()));
        let buf = core::mem::take(&mut self.rest);
        if buf.len() < bytes {
            return None;
        }
        let (head, tail) = buf.split_at_mut(bytes);
        self.rest = tail;
        // SAFETY: `T: Plain` has no invalid bit patterns and no drop glue, and
        // `align_to_mut` only yields a correctly aligned, in-bounds middle part.
        let (pre, mid, _) = unsafe { head.align_to_mut::<T>() };
        if !pre.is_empty() {
            return None;
        }
        mid.get_mut(..n)
    }
}

/// Counts the bytes a carve takes and hands out empty buffers.
#[derive(Default)]
pub(crate) struct Measure {
    pub bytes: usize,
}

impl<'m> Carve<'m> for Measure {
    fn take<T: Plain>(&mut self, n: usize) -> Option<&'m mut [T]> {
        let bytes = round(n.saturating_mul(core::mem::size_of::<T>()));
        self.bytes = self.bytes.saturating_add(bytes);
        Some(Default::default())
    }
}

/// Element counts of a session's buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub kv_elems: usize,  // per cache (keys, and again values)
    pub kv_scales: usize, // per Q8 cache: one per group of a cached row
    pub rope: usize,      // per table (cos, and again sin)
    pub dim: usize,
    pub kv_dim: usize,
    pub hidden: usize,
    pub context: usize,
    /// Attention scores before the logits: `context`, and where the Q8
    /// cache's attention takes two query heads of a kv head together
    /// (`2 · context` scores, which run on into the logits) as many more
    /// as the logits are short of `context`.
    pub att: usize,
    pub vocab: usize,
    pub experts: usize,
    pub act: usize, // max(dim, hidden): longest matvec input
}

impl Layout {
    pub fn new(c: &ModelConfig, context: usize, kv: crate::kv_cache::KvDType) -> Self {
        let shared = kv == crate::kv_cache::KvDType::Q8 && c.n_heads >= 2 * c.n_kv_heads.max(1);
        let dim = c.dim as usize;
        let hidden = c.hidden_dim as usize;
        let kv_dim = c.kv_dim() as usize;
        Self {
            kv_elems: (c.n_layers as usize)
                .saturating_mul(context)
                .saturating_mul(kv_dim),
            kv_scales: (c.n_layers as usize)
                .saturating_mul(context)
                .saturating_mul(crate::kv_cache::q8_groups(kv_dim)),
            rope: context.saturating_mul(c.head_dim() as usize / 2),
            dim,
            kv_dim,
            hidden,
            context,
            att: if shared {
                context.saturating_add(context.saturating_sub(c.vocab_size as usize))
            } else {
                context
            },
            vocab: c.vocab_size as usize,
            experts: c.moe.map_or(0, |m| m.n_experts as usize),
            act: dim.max(hidden),
        }
    }
}

/// The KV cache: `[layer][position][kv_dim]` keys, then values (then, Q8,
/// the keys' and the values' `[layer][position][group]` scales).
pub(crate) fn carve_cache<'m>(
    c: &mut impl Carve<'m>,
    l: &Layout,
    kv: KvDType,
) -> Option<KvCache<'m>> {
    Some(match kv {
        KvDType::F32 => KvCache::F32 {
            k: c.take(l.kv_elems)?,
            v: c.take(l.kv_elems)?,
        },
        KvDType::F16 => KvCache::F16 {
            k: c.take(l.kv_elems)?,
            v: c.take(l.kv_elems)?,
        },
        KvDType::Q8 => KvCache::Q8 {
            k: c.take(l.kv_elems)?,
            v: c.take(l.kv_elems)?,
            ks: c.take(l.kv_scales)?,
            vs: c.take(l.kv_scales)?,
        },
    })
}

/// The activations of `n` tokens in one pass, `[row][width]` each.
pub(crate) struct Rows<'m> {
    /// Rows each buffer holds.
    pub n: usize,
    /// The residual stream `[dim]`.
    pub x: &'m mut [f32],
    /// Normed input of a block, then attention output `[dim]`.
    pub xb: &'m mut [f32],
    /// A block's output before the residual add `[dim]`.
    pub xb2: &'m mut [f32],
    /// Query `[dim]`, key and value `[kv_dim]`.
    pub q: &'m mut [f32],
    pub k: &'m mut [f32],
    pub v: &'m mut [f32],
    /// SwiGLU gate and up `[hidden]`.
    pub hb: &'m mut [f32],
    pub hb2: &'m mut [f32],
    /// Each row's matvec input quantized to int8 `[max(dim, hidden)]`.
    pub acts: ActivationRows<'m>,
}

impl<'m> Rows<'m> {
    fn carve(c: &mut impl Carve<'m>, l: &Layout, n: usize) -> Option<Self> {
        let rows = |e: usize| e.saturating_mul(n);
        Some(Rows {
            n,
            x: c.take(rows(l.dim))?,
            xb: c.take(rows(l.dim))?,
            xb2: c.take(rows(l.dim))?,
            q: c.take(rows(l.dim))?,
            k: c.take(rows(l.kv_dim))?,
            v: c.take(rows(l.kv_dim))?,
            hb: c.take(rows(l.hidden))?,
            hb2: c.take(rows(l.hidden))?,
            acts: ActivationRows::new(
                QuantizedActivations::new(
                    c.take(rows(l.act.saturating_add(1)))?, // int8 (+ Q4 pair pad)
                    c.take(rows(l.act.saturating_add(1)))?, // even/odd split
                    c.take(rows(pair_words(l.act)))?,       // SXTB16 pairs
                    c.take(rows(l.act))?,                   // group scales
                    c.take(rows(l.act))?,                   // group sums
                ),
                l.act,
                n,
            ),
        })
    }
}

/// Every buffer of a session but the KV cache, in arena order.
pub(crate) struct Buffers<'m> {
    /// RoPE angles `[position][head_dim / 2]`.
    pub rope_cos: &'m mut [f32],
    pub rope_sin: &'m mut [f32],
    /// One token's activations (decoding, prefill).
    pub one: Rows<'m>,
    /// Attention scores (`att_len`), then the logits of the last token
    /// `[vocab]` (probabilities after sampling). A pass attends before it
    /// computes the logits, so the scores may run on into them: the Q8
    /// cache takes two query heads of a kv head at a time, `[context][2]`
    /// scores; one head takes `[context]`.
    pub att_logits: &'m mut [f32],
    pub att_len: usize,
    /// Router logits of a mixture-of-experts layer `[n_experts]`.
    pub router: &'m mut [f32],
    /// Sampler candidates (top-k / top-p sort) `[vocab]`.
    pub candidates: &'m mut [u32],
    /// Token ids at positions `0..pos` (and the encoded prompt during
    /// `generate`) `[context]`.
    pub tokens: &'m mut [u32],
    /// The activations of a batched pass (`batch` rows; none without).
    pub batch: Rows<'m>,
    /// Logits rows of a batched pass, or the draft's distributions
    /// `[logit_rows][vocab]`.
    pub batch_logits: &'m mut [f32],
}

impl Buffers<'_> {
    /// The logits of the last token.
    pub fn logits(&self) -> &[f32] {
        self.att_logits.get(self.att_len..).unwrap_or_default()
    }
}

impl<'m> Buffers<'m> {
    /// Lays out the buffers of a session with room for `batch` tokens per
    /// pass and `logit_rows` logits rows (at least `batch`).
    pub fn carve(
        c: &mut impl Carve<'m>,
        l: &Layout,
        batch: usize,
        logit_rows: usize,
    ) -> Option<Self> {
        Some(Buffers {
            rope_cos: c.take(l.rope)?,
            rope_sin: c.take(l.rope)?,
            one: Rows::carve(c, l, 1)?,
            att_logits: c.take(l.att.saturating_add(l.vocab))?,
            att_len: l.att,
            router: c.take(l.experts)?,
            candidates: c.take(l.vocab)?,
            tokens: c.take(l.context)?,
            batch: Rows::carve(c, l, batch)?,
            batch_logits: c.take(l.vocab.saturating_mul(logit_rows.max(batch)))?,
        })
    }
}
