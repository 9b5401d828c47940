//! A running model: the forward pass with a KV cache, in the caller's arena.
//!
//! Every buffer is carved from the arena with the layout of
//! [`crate::memory::plan`]; nothing is allocated. Weights are read in place
//! through [`Model`]'s tensor views.

use crate::format::DType;
use crate::kernels::{self, QuantizedActivations, TensorView};
use crate::memory::{self, KvDType, Layout, MemoryPlan, ALIGN};
use crate::model::{Ffn, FfnWeights, Model};
use crate::sampling::Sampler;
use core::fmt;

/// Why a session cannot be created or run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionError {
    /// A context of zero positions.
    ZeroContext,
    /// The context exceeds what the model was trained for.
    ContextTooLong { context: usize, max: usize },
    /// The arena is smaller than [`memory::plan`] says.
    ArenaTooSmall { needed: usize, available: usize },
    /// A token id outside the vocabulary.
    TokenOutOfRange { token: u32, vocab: u32 },
    /// Every position of the context is used.
    ContextFull { context: usize },
    /// `prefill` with no tokens.
    EmptyInput,
    /// `forward_batch` with more tokens than the session was made for
    /// ([`Session::with_batch`]).
    BatchTooLarge { tokens: usize, capacity: usize },
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::ZeroContext => {
                write!(f, "a session needs a context of at least one position")
            }
            SessionError::ContextTooLong { context, max } => {
                write!(
                    f,
                    "context of {context} positions exceeds the model's maximum of {max}"
                )
            }
            SessionError::ArenaTooSmall { needed, available } => {
                write!(
                    f,
                    "session arena too small: needs {needed} bytes, got {available}"
                )
            }
            SessionError::TokenOutOfRange { token, vocab } => {
                write!(
                    f,
                    "token id {token} is outside the vocabulary of {vocab} tokens"
                )
            }
            SessionError::ContextFull { context } => {
                write!(f, "context full: all {context} positions are used")
            }
            SessionError::EmptyInput => write!(f, "no tokens to run"),
            SessionError::BatchTooLarge { tokens, capacity } => write!(
                f,
                "a batch of {tokens} tokens exceeds the session's batch capacity of {capacity}"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SessionError {}

/// Element types that may be viewed from arena bytes: every bit pattern is a
/// valid value and none has drop glue.
trait Plain: Copy {}
impl Plain for f32 {}
impl Plain for u32 {}
impl Plain for i32 {}
impl Plain for u16 {}
impl Plain for i8 {}

/// Takes the next `bytes` (a multiple of [`ALIGN`]) of the arena as `n`
/// elements of `T`.
fn carve<'m, T: Plain>(rest: &mut &'m mut [u8], bytes: usize, n: usize) -> Option<&'m mut [T]> {
    let buf = core::mem::take(rest);
    if buf.len() < bytes {
        return None;
    }
    let (head, tail) = buf.split_at_mut(bytes);
    *rest = tail;
    // SAFETY: `T: Plain` has no invalid bit patterns and no drop glue, and
    // `align_to_mut` only yields a correctly aligned, in-bounds middle part.
    let (pre, mid, _) = unsafe { head.align_to_mut::<T>() };
    if !pre.is_empty() {
        return None;
    }
    mid.get_mut(..n)
}

/// The KV cache: `[layer][position][kv_dim]` keys, then values.
enum KvCache<'m> {
    F32 {
        k: &'m mut [f32],
        v: &'m mut [f32],
    },
    /// f16 bit patterns.
    F16 {
        k: &'m mut [u16],
        v: &'m mut [u16],
    },
}

impl KvCache<'_> {
    /// Writes the key and value vectors of one position at element `at`.
    fn store(&mut self, at: usize, k: &[f32], v: &[f32]) {
        let n = k.len();
        match self {
            KvCache::F32 { k: kc, v: vc } => {
                if let (Some(kd), Some(vd)) = (kc.get_mut(at..at + n), vc.get_mut(at..at + n)) {
                    kd.copy_from_slice(k);
                    vd.copy_from_slice(v);
                }
            }
            KvCache::F16 { k: kc, v: vc } => {
                if let (Some(kd), Some(vd)) = (kc.get_mut(at..at + n), vc.get_mut(at..at + n)) {
                    for (d, s) in kd.iter_mut().zip(k.iter()) {
                        *d = half::f16::from_f32(*s).to_bits();
                    }
                    for (d, s) in vd.iter_mut().zip(v.iter()) {
                        *d = half::f16::from_f32(*s).to_bits();
                    }
                }
            }
        }
    }

    /// Attention of `q` over the cached `rows` into `out`; false when the
    /// rows lie outside the cache (the plan rules that out).
    fn attend(
        &self,
        heads: &Heads,
        q: &[f32],
        out: &mut [f32],
        scores: &mut [f32],
        rows: core::ops::Range<usize>,
    ) -> bool {
        match self {
            KvCache::F32 { k: kc, v: vc } => {
                let (Some(keys), Some(values)) = (kc.get(rows.clone()), vc.get(rows)) else {
                    return false;
                };
                attend(
                    heads,
                    q,
                    out,
                    scores,
                    keys,
                    values,
                    kernels::dot,
                    |v| v,
                    kernels::attend_head_f32,
                );
            }
            KvCache::F16 { k: kc, v: vc } => {
                let (Some(keys), Some(values)) = (kc.get(rows.clone()), vc.get(rows)) else {
                    return false;
                };
                attend(
                    heads,
                    q,
                    out,
                    scores,
                    keys,
                    values,
                    dot_f16,
                    kernels::f16_bits_to_f32,
                    kernels::attend_head_f16,
                );
            }
        }
        true
    }
}

/// Per-token buffers of a batched pass (`n` rows each; empty without a batch).
struct Batch<'m> {
    n: usize,
    x: &'m mut [f32],
    xb: &'m mut [f32],
    xb2: &'m mut [f32],
    q: &'m mut [f32],
    k: &'m mut [f32],
    v: &'m mut [f32],
    hb: &'m mut [f32],
    hb2: &'m mut [f32],
    logits: &'m mut [f32],
    act_q: &'m mut [i8],
    act_split: &'m mut [i8],
    act_pairs: &'m mut [u32],
    act_scales: &'m mut [f32],
    act_sums: &'m mut [i32],
}

/// A model running in an arena: the KV cache and all scratch buffers.
pub struct Session<'m, 'a> {
    model: &'m Model<'a>,
    plan: MemoryPlan,
    kv: KvDType,
    context: usize,
    pos: usize,
    cache: KvCache<'m>,
    /// `[position][head_dim / 2]`
    rope_cos: &'m mut [f32],
    rope_sin: &'m mut [f32],
    x: &'m mut [f32],
    xb: &'m mut [f32],
    xb2: &'m mut [f32],
    q: &'m mut [f32],
    k: &'m mut [f32],
    v: &'m mut [f32],
    hb: &'m mut [f32],
    hb2: &'m mut [f32],
    att: &'m mut [f32],
    logits: &'m mut [f32],
    router: &'m mut [f32],
    acts: QuantizedActivations<'m>,
    candidates: &'m mut [u32],
    /// Tokens at positions `0..pos` (and the encoded prompt during `generate`).
    tokens: &'m mut [u32],
    batch: Batch<'m>,
}

impl<'m, 'a> Session<'m, 'a> {
    /// Lays out the arena (it needs [`memory::plan`]`(..).total_bytes`; any
    /// alignment is fine) and computes the RoPE tables once.
    pub fn new(
        model: &'m Model<'a>,
        arena: &'m mut [u8],
        context: usize,
        kv: KvDType,
    ) -> Result<Self, SessionError> {
        Self::with_batch(model, arena, context, kv, 0)
    }

    /// [`Self::new`] with room to run up to `batch` tokens in one
    /// [`Self::forward_batch`] pass (the arena needs
    /// [`memory::plan_batch`]`(.., batch).total_bytes`).
    pub fn with_batch(
        model: &'m Model<'a>,
        arena: &'m mut [u8],
        context: usize,
        kv: KvDType,
        batch: usize,
    ) -> Result<Self, SessionError> {
        Self::with_rows(model, arena, context, kv, batch, batch)
    }

    /// The draft session of speculative decoding with `k` draft tokens per
    /// step: [`Self::new`] plus `k` logits rows (no batched pass); the arena
    /// needs [`memory::plan_draft`]`(.., k).total_bytes`.
    pub fn draft(
        model: &'m Model<'a>,
        arena: &'m mut [u8],
        context: usize,
        kv: KvDType,
        k: usize,
    ) -> Result<Self, SessionError> {
        Self::with_rows(model, arena, context, kv, 0, k)
    }

    fn with_rows(
        model: &'m Model<'a>,
        arena: &'m mut [u8],
        context: usize,
        kv: KvDType,
        batch: usize,
        logit_rows: usize,
    ) -> Result<Self, SessionError> {
        let logit_rows = logit_rows.max(batch);
        let c = *model.config();
        if context == 0 {
            return Err(SessionError::ZeroContext);
        }
        if context > c.max_seq_len as usize {
            return Err(SessionError::ContextTooLong {
                context,
                max: c.max_seq_len as usize,
            });
        }
        let plan = memory::plan_rows(&c, context, kv, batch, logit_rows);
        let available = arena.len();
        let too_small = SessionError::ArenaTooSmall {
            needed: plan.total_bytes,
            available,
        };
        if available < plan.total_bytes {
            return Err(too_small);
        }
        let skip = arena.as_ptr().align_offset(ALIGN).min(ALIGN - 1);
        let mut rest: &'m mut [u8] = arena.get_mut(skip..).ok_or(too_small)?;
        let l = Layout::new(&c, context);
        let kv_bytes = memory::round(l.kv_elems * kv.bytes());
        let cache = match kv {
            KvDType::F32 => KvCache::F32 {
                k: carve(&mut rest, kv_bytes, l.kv_elems).ok_or(too_small)?,
                v: carve(&mut rest, kv_bytes, l.kv_elems).ok_or(too_small)?,
            },
            KvDType::F16 => KvCache::F16 {
                k: carve(&mut rest, kv_bytes, l.kv_elems).ok_or(too_small)?,
                v: carve(&mut rest, kv_bytes, l.kv_elems).ok_or(too_small)?,
            },
        };
        let mut f32s = |n: usize| carve::<f32>(&mut rest, memory::f32s(n), n).ok_or(too_small);
        let rope_cos = f32s(l.rope)?;
        let rope_sin = f32s(l.rope)?;
        let x = f32s(l.dim)?;
        let xb = f32s(l.dim)?;
        let xb2 = f32s(l.dim)?;
        let q = f32s(l.dim)?;
        let k = f32s(l.kv_dim)?;
        let v = f32s(l.kv_dim)?;
        let hb = f32s(l.hidden)?;
        let hb2 = f32s(l.hidden)?;
        let att = f32s(l.context)?;
        let logits = f32s(l.vocab)?;
        let router = f32s(l.experts)?;
        let act_q = carve::<i8>(&mut rest, memory::round(l.act + 1), l.act + 1).ok_or(too_small)?;
        let act_split =
            carve::<i8>(&mut rest, memory::round(l.act + 1), l.act + 1).ok_or(too_small)?;
        let pairs = kernels::pair_words(l.act);
        let act_pairs = carve::<u32>(&mut rest, memory::f32s(pairs), pairs).ok_or(too_small)?;
        let act_scales = carve::<f32>(&mut rest, memory::f32s(l.act), l.act).ok_or(too_small)?;
        let act_sums = carve::<i32>(&mut rest, memory::f32s(l.act), l.act).ok_or(too_small)?;
        let candidates =
            carve::<u32>(&mut rest, memory::f32s(l.vocab), l.vocab).ok_or(too_small)?;
        let tokens =
            carve::<u32>(&mut rest, memory::f32s(l.context), l.context).ok_or(too_small)?;
        let [bx, bxb, bxb2, bq, bk, bv, bhb, bhb2, blogits, bact_q, bact_split, bact_pairs, bact_scales, bact_sums] =
            memory::batch_buffers(&l, batch, logit_rows);
        let n = batch;
        let mut f32s = |bytes: usize, e: usize| {
            carve::<f32>(&mut rest, bytes, e.saturating_mul(n)).ok_or(too_small)
        };
        let bx = f32s(bx, l.dim)?;
        let bxb = f32s(bxb, l.dim)?;
        let bxb2 = f32s(bxb2, l.dim)?;
        let bq = f32s(bq, l.dim)?;
        let bk = f32s(bk, l.kv_dim)?;
        let bv = f32s(bv, l.kv_dim)?;
        let bhb = f32s(bhb, l.hidden)?;
        let bhb2 = f32s(bhb2, l.hidden)?;
        let blogits = carve::<f32>(&mut rest, blogits, l.vocab.saturating_mul(logit_rows))
            .ok_or(too_small)?;
        let bact_scales_n = bact_scales;
        let per_q = (l.act + 1).saturating_mul(n);
        let per_s = l.act.saturating_mul(n);
        let batch = Batch {
            n,
            x: bx,
            xb: bxb,
            xb2: bxb2,
            q: bq,
            k: bk,
            v: bv,
            hb: bhb,
            hb2: bhb2,
            logits: blogits,
            act_q: carve::<i8>(&mut rest, bact_q, per_q).ok_or(too_small)?,
            act_split: carve::<i8>(&mut rest, bact_split, per_q).ok_or(too_small)?,
            act_pairs: carve::<u32>(&mut rest, bact_pairs, pairs.saturating_mul(n))
                .ok_or(too_small)?,
            act_scales: carve::<f32>(&mut rest, bact_scales_n, per_s).ok_or(too_small)?,
            act_sums: carve::<i32>(&mut rest, bact_sums, per_s).ok_or(too_small)?,
        };

        // RoPE: pair i of a head at position p turns by p · theta^(-2i / hd).
        // Computed in f64 once per session (sin/cos are far too slow per token
        // on a microcontroller), rounded to f32.
        let half = c.head_dim() as usize / 2;
        if half > 0 {
            for (p, (cr, sr)) in rope_cos
                .chunks_exact_mut(half)
                .zip(rope_sin.chunks_exact_mut(half))
                .enumerate()
            {
                for (i, (co, si)) in cr.iter_mut().zip(sr.iter_mut()).enumerate() {
                    let freq =
                        libm::pow(c.rope_theta as f64, -((2 * i) as f64) / c.head_dim() as f64);
                    let angle = p as f64 * freq;
                    *co = libm::cos(angle) as f32;
                    *si = libm::sin(angle) as f32;
                }
            }
        }
        Ok(Session {
            model,
            plan,
            kv,
            context,
            pos: 0,
            cache,
            rope_cos,
            rope_sin,
            x,
            xb,
            xb2,
            q,
            k,
            v,
            hb,
            hb2,
            att,
            logits,
            router,
            acts: QuantizedActivations::new(act_q, act_split, act_pairs, act_scales, act_sums),
            candidates,
            tokens,
            batch,
        })
    }

    pub fn model(&self) -> &'m Model<'a> {
        self.model
    }

    /// Position the next token goes to (= tokens in the cache).
    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn context(&self) -> usize {
        self.context
    }

    pub fn kv_dtype(&self) -> KvDType {
        self.kv
    }

    /// The arena plan this session was laid out with.
    pub fn memory_plan(&self) -> MemoryPlan {
        self.plan
    }

    /// Logits of the last `forward`/`prefill` (probabilities after sampling
    /// with a temperature).
    pub fn logits(&self) -> &[f32] {
        self.logits
    }

    /// Tokens at positions `0..pos()`.
    pub fn tokens(&self) -> &[u32] {
        self.tokens.get(..self.pos).unwrap_or(&[])
    }

    /// Runs `token` at position `pos()` and returns the logits for the next
    /// token; `pos` advances by one.
    pub fn forward(&mut self, token: u32) -> Result<&[f32], SessionError> {
        self.check(core::slice::from_ref(&token))?;
        self.step(token, true);
        Ok(self.logits)
    }

    /// Runs `tokens` from `pos()` on; returns the logits after the last one.
    /// Identical to calling [`Self::forward`] on each (the LM head is just
    /// skipped for all but the last). Nothing runs if a token is invalid or
    /// the context would overflow.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<&[f32], SessionError> {
        if tokens.is_empty() {
            return Err(SessionError::EmptyInput);
        }
        self.check(tokens)?;
        let last = tokens.len() - 1;
        for (i, t) in tokens.iter().enumerate() {
            self.step(*t, i == last);
        }
        Ok(self.logits)
    }

    /// Tokens one [`Self::forward_batch`] pass can take (0 for [`Self::new`]).
    pub fn batch_capacity(&self) -> usize {
        self.batch.n
    }

    /// Logits rows of the batch region (the batch capacity, or `k` for
    /// [`Self::draft`]).
    pub fn logit_rows(&self) -> usize {
        self.batch.logits.len() / self.logits.len().max(1)
    }

    /// Runs `tokens` from `pos()` on in one pass and returns the logits after
    /// each of them: `tokens.len()` rows of `vocab`, in the session's batch
    /// region ([`memory::plan_batch`]). Bit-identical to calling
    /// [`Self::forward`] on each token in turn: every matrix is read once per
    /// block of rows for all tokens, with the same per-row kernels.
    /// [`Self::logits`] afterwards holds the last row. Nothing runs if a
    /// token is invalid, the context would overflow or the batch is too long.
    pub fn forward_batch(&mut self, tokens: &[u32]) -> Result<&mut [f32], SessionError> {
        if tokens.is_empty() {
            return Err(SessionError::EmptyInput);
        }
        if tokens.len() > self.batch.n {
            return Err(SessionError::BatchTooLarge {
                tokens: tokens.len(),
                capacity: self.batch.n,
            });
        }
        self.check(tokens)?;
        let vocab = self.logits.len();
        if self.model.config().moe.is_some() {
            // Experts differ per token: run the tokens one after another.
            for (t, tok) in tokens.iter().enumerate() {
                self.step(*tok, true);
                if let Some(row) = self.batch.logits.get_mut(t * vocab..(t + 1) * vocab) {
                    row.copy_from_slice(self.logits);
                }
            }
        } else {
            self.step_batch(tokens);
        }
        let n = tokens.len();
        Ok(self.batch.logits.get_mut(..n * vocab).unwrap_or(&mut []))
    }

    /// The batch logits rows and the sampler's candidate buffer, for
    /// speculative decoding (the draft keeps its distributions there).
    pub(crate) fn batch_rows_and_candidates(&mut self) -> (&mut [f32], &mut [u32]) {
        (self.batch.logits, self.candidates)
    }

    /// Copies the current logits into batch row `row`.
    pub(crate) fn logits_to_batch_row(&mut self, row: usize) {
        let vocab = self.logits.len();
        if let Some(r) = self.batch.logits.get_mut(row * vocab..(row + 1) * vocab) {
            r.copy_from_slice(self.logits);
        }
    }

    /// Forgets cache entries at positions `>= pos` (no-op past `pos()`).
    pub fn rewind(&mut self, pos: usize) {
        self.pos = self.pos.min(pos);
    }

    /// Empties the cache.
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// Samples the next token from the current logits with the session's
    /// candidate buffer.
    pub fn sample(&mut self, sampler: &mut Sampler) -> u32 {
        sampler.sample(self.logits, self.candidates)
    }

    /// The token buffer (context entries) for callers that encode in place.
    pub(crate) fn token_buffer(&mut self) -> &mut [u32] {
        self.tokens
    }

    /// Runs the first `n` entries of the token buffer from position 0.
    pub(crate) fn prefill_token_buffer(&mut self, n: usize) -> Result<(), SessionError> {
        self.pos = 0;
        let ids = self.tokens.get(..n).ok_or(SessionError::ContextFull {
            context: self.context,
        })?;
        let vocab = self.model.config().vocab_size;
        if let Some(bad) = ids.iter().find(|t| **t >= vocab) {
            return Err(SessionError::TokenOutOfRange { token: *bad, vocab });
        }
        if n == 0 {
            return Err(SessionError::EmptyInput);
        }
        for i in 0..n {
            let t = self.tokens.get(i).copied().unwrap_or(0);
            self.step(t, i + 1 == n);
        }
        Ok(())
    }

    fn check(&self, tokens: &[u32]) -> Result<(), SessionError> {
        let vocab = self.model.config().vocab_size;
        if let Some(bad) = tokens.iter().find(|t| **t >= vocab) {
            return Err(SessionError::TokenOutOfRange { token: *bad, vocab });
        }
        if self.pos + tokens.len() > self.context {
            return Err(SessionError::ContextFull {
                context: self.context,
            });
        }
        Ok(())
    }

    /// One position of the forward pass (token and position already checked).
    fn step(&mut self, token: u32, want_logits: bool) {
        let model = self.model;
        let c = *model.config();
        let pos = self.pos;
        let hd = c.head_dim() as usize;
        let half = hd / 2;
        let kv_dim = c.kv_dim() as usize;
        let group_heads = (c.n_heads / c.n_kv_heads.max(1)).max(1) as usize;
        let context = self.context;
        let att_scale = 1.0 / libm::sqrtf(hd as f32);
        let Session {
            cache,
            rope_cos,
            rope_sin,
            x,
            xb,
            xb2,
            q,
            k,
            v,
            hb,
            hb2,
            att,
            logits,
            router,
            acts,
            tokens,
            ..
        } = self;
        if let Some(slot) = tokens.get_mut(pos) {
            *slot = token;
        }

        model.embedding().dequantize_row(token as usize, x);
        if c.embedding_scale != 1.0 {
            for e in x.iter_mut() {
                *e *= c.embedding_scale;
            }
        }
        let cos = rope_cos.get(pos * half..(pos + 1) * half).unwrap_or(&[]);
        let sin = rope_sin.get(pos * half..(pos + 1) * half).unwrap_or(&[]);

        for l in 0..c.n_layers as usize {
            let Some(lw) = model.layer(l) else { break };
            // Attention.
            kernels::rmsnorm(xb, x, lw.attn_norm, c.norm_eps);
            let mut fresh = false;
            project(q, &lw.wq, xb, acts, &mut fresh);
            project(k, &lw.wk, xb, acts, &mut fresh);
            project(v, &lw.wv, xb, acts, &mut fresh);
            rope(q, cos, sin, hd);
            rope(k, cos, sin, hd);
            let layer_base = l * context * kv_dim;
            let at = layer_base + pos * kv_dim;
            cache.store(at, k, v);
            let scores = att.get_mut(..=pos).unwrap_or(&mut []);
            let rows = layer_base..layer_base + (pos + 1) * kv_dim;
            let heads = Heads {
                hd,
                kv_dim,
                group_heads,
                scale: att_scale,
            };
            if !cache.attend(&heads, q, xb, scores, rows) {
                continue;
            }
            let mut fresh = false;
            project(xb2, &lw.wo, xb, acts, &mut fresh);
            kernels::add_assign(x, xb2);

            // Feed-forward.
            kernels::rmsnorm(xb, x, lw.ffn_norm, c.norm_eps);
            match lw.ffn {
                Ffn::Dense(ffn) => {
                    swiglu_ffn(&ffn, xb, xb2, hb, hb2, acts);
                    kernels::add_assign(x, xb2);
                }
                Ffn::Moe {
                    router: router_w,
                    experts,
                } => {
                    let top_k = c.moe.map_or(1, |m| m.top_k) as usize;
                    let mut fresh = false;
                    project(router, &router_w, xb, acts, &mut fresh);
                    let mut chosen = [0usize; crate::blob::MAX_EXPERTS as usize];
                    let mut weight = [0f32; crate::blob::MAX_EXPERTS as usize];
                    let k_used = choose_experts(router, top_k, &mut chosen, &mut weight);
                    for (e, w) in chosen.iter().zip(weight.iter()).take(k_used) {
                        let Some(ffn) = Model::expert(experts, *e) else {
                            continue;
                        };
                        swiglu_ffn(&ffn, xb, xb2, hb, hb2, acts);
                        for (a, b) in x.iter_mut().zip(xb2.iter()) {
                            *a += w * b;
                        }
                    }
                }
            }
        }

        if want_logits {
            kernels::rmsnorm(xb, x, model.final_norm(), c.norm_eps);
            let mut fresh = false;
            project(logits, model.output(), xb, acts, &mut fresh);
        }
        self.pos = pos + 1;
    }
}

impl Session<'_, '_> {
    /// [`Self::step`] for several tokens (checked, at most the batch
    /// capacity, dense FFN), layer by layer: each token's arithmetic is that
    /// of `step`, but every weight block is read once for all tokens.
    fn step_batch(&mut self, tokens: &[u32]) {
        let model = self.model;
        let c = *model.config();
        let base = self.pos;
        let n = tokens.len();
        let hd = c.head_dim() as usize;
        let half = hd / 2;
        let dim = c.dim as usize;
        let kv_dim = c.kv_dim() as usize;
        let hidden = c.hidden_dim as usize;
        let vocab = c.vocab_size as usize;
        let group_heads = (c.n_heads / c.n_kv_heads.max(1)).max(1) as usize;
        let context = self.context;
        let att_scale = 1.0 / libm::sqrtf(hd as f32);
        let act = dim.max(hidden);
        let Session {
            cache,
            rope_cos,
            rope_sin,
            att,
            logits: last_logits,
            tokens: token_buf,
            batch,
            ..
        } = self;
        let Batch {
            x,
            xb,
            xb2,
            q,
            k,
            v,
            hb,
            hb2,
            logits,
            act_q,
            act_split,
            act_pairs,
            act_scales,
            act_sums,
            ..
        } = batch;
        let mut acts = BatchActs {
            q: act_q,
            split: act_split,
            pairs: act_pairs,
            scales: act_scales,
            sums: act_sums,
            act,
            n,
            len: 0,
            group: 0,
            layouts: kernels::Layouts::default(),
        };
        for (t, (tok, xt)) in tokens.iter().zip(x.chunks_exact_mut(dim)).enumerate() {
            if let Some(slot) = token_buf.get_mut(base + t) {
                *slot = *tok;
            }
            model.embedding().dequantize_row(*tok as usize, xt);
            if c.embedding_scale != 1.0 {
                for e in xt.iter_mut() {
                    *e *= c.embedding_scale;
                }
            }
        }
        let rows = |b: &mut [f32], w: usize| -> usize { b.len().min(n * w) };
        let (nx, nkv, nh) = (rows(x, dim), rows(k, kv_dim), rows(hb, hidden));
        let (x, xb, xb2, q) = (
            x.get_mut(..nx).unwrap_or(&mut []),
            xb.get_mut(..nx).unwrap_or(&mut []),
            xb2.get_mut(..nx).unwrap_or(&mut []),
            q.get_mut(..nx).unwrap_or(&mut []),
        );
        let (k, v) = (
            k.get_mut(..nkv).unwrap_or(&mut []),
            v.get_mut(..nkv).unwrap_or(&mut []),
        );
        let (hb, hb2) = (
            hb.get_mut(..nh).unwrap_or(&mut []),
            hb2.get_mut(..nh).unwrap_or(&mut []),
        );
        let angles = |pos: usize| {
            (
                rope_cos.get(pos * half..(pos + 1) * half).unwrap_or(&[]),
                rope_sin.get(pos * half..(pos + 1) * half).unwrap_or(&[]),
            )
        };

        for l in 0..c.n_layers as usize {
            let Some(lw) = model.layer(l) else { break };
            let Ffn::Dense(ffn) = lw.ffn else { break };
            for (xbt, xt) in xb.chunks_exact_mut(dim).zip(x.chunks_exact(dim)) {
                kernels::rmsnorm(xbt, xt, lw.attn_norm, c.norm_eps);
            }
            let mut fresh = false;
            project_batch(q, &lw.wq, xb, dim, &mut acts, &mut fresh);
            project_batch(k, &lw.wk, xb, dim, &mut acts, &mut fresh);
            project_batch(v, &lw.wv, xb, dim, &mut acts, &mut fresh);
            let layer_base = l * context * kv_dim;
            for (t, ((qt, kt), vt)) in q
                .chunks_exact_mut(dim)
                .zip(k.chunks_exact_mut(kv_dim))
                .zip(v.chunks_exact(kv_dim))
                .enumerate()
            {
                let (cos, sin) = angles(base + t);
                rope(qt, cos, sin, hd);
                rope(kt, cos, sin, hd);
                let at = layer_base + (base + t) * kv_dim;
                cache.store(at, kt, vt);
            }
            let heads = Heads {
                hd,
                kv_dim,
                group_heads,
                scale: att_scale,
            };
            for (t, (qt, ot)) in q
                .chunks_exact(dim)
                .zip(xb.chunks_exact_mut(dim))
                .enumerate()
            {
                let pos = base + t;
                let scores = att.get_mut(..=pos).unwrap_or(&mut []);
                let rows = layer_base..layer_base + (pos + 1) * kv_dim;
                if !cache.attend(&heads, qt, ot, scores, rows) {
                    continue;
                }
            }
            let mut fresh = false;
            project_batch(xb2, &lw.wo, xb, dim, &mut acts, &mut fresh);
            kernels::add_assign(x, xb2);

            for (xbt, xt) in xb.chunks_exact_mut(dim).zip(x.chunks_exact(dim)) {
                kernels::rmsnorm(xbt, xt, lw.ffn_norm, c.norm_eps);
            }
            let mut fresh = false;
            project_batch(hb, &ffn.gate, xb, dim, &mut acts, &mut fresh);
            project_batch(hb2, &ffn.up, xb, dim, &mut acts, &mut fresh);
            for (g, u) in hb.chunks_exact_mut(hidden).zip(hb2.chunks_exact(hidden)) {
                kernels::swiglu(g, u);
            }
            let mut fresh = false;
            project_batch(xb2, &ffn.down, hb, hidden, &mut acts, &mut fresh);
            kernels::add_assign(x, xb2);
        }

        for (xbt, xt) in xb.chunks_exact_mut(dim).zip(x.chunks_exact(dim)) {
            kernels::rmsnorm(xbt, xt, model.final_norm(), c.norm_eps);
        }
        let nl = logits.len().min(n * vocab);
        let logits = logits.get_mut(..nl).unwrap_or(&mut []);
        let mut fresh = false;
        project_batch(logits, model.output(), xb, dim, &mut acts, &mut fresh);
        if let Some(row) = logits.get((n - 1) * vocab..n * vocab) {
            last_logits.copy_from_slice(row);
        }
        self.pos = base + n;
    }
}

/// Quantized activations of every token of a batch (`act + 1` int8 and
/// split entries, `act` scales and sums per token), all with the same
/// length and group size.
struct BatchActs<'b> {
    q: &'b mut [i8],
    split: &'b mut [i8],
    pairs: &'b mut [u32],
    scales: &'b mut [f32],
    sums: &'b mut [i32],
    act: usize,
    n: usize,
    len: usize,
    group: usize,
    layouts: kernels::Layouts,
}

/// Weight bytes per block of rows in a batched matvec: the block stays in
/// cache (or a flash cache line buffer) while every token uses it.
const BLOCK_BYTES: usize = 16 * 1024;

/// Rows `r0..r1` of `w` as a tensor of their own.
fn row_block<'w>(w: &TensorView<'w>, r0: usize, r1: usize) -> TensorView<'w> {
    let rb = w.row_bytes();
    let sb = w.groups_per_row() * crate::format::scale_bytes(w.scale_type);
    TensorView {
        data: w.data.get(r0 * rb..r1 * rb).unwrap_or(&[]),
        scales: if sb == 0 {
            w.scales
        } else {
            w.scales.get(r0 * sb..r1 * sb).unwrap_or(&[])
        },
        rows: (r1 - r0) as u32,
        ..*w
    }
}

/// [`project`] for every token: `out` holds `rows` outputs per token, `x`
/// `cols` inputs per token. The tokens' inputs are quantized once each (when
/// `fresh` says they are not already), then each block of rows is applied to
/// every token with the single-token kernels, so each output is bit-identical
/// to [`project`]'s.
fn project_batch(
    out: &mut [f32],
    w: &TensorView<'_>,
    x: &[f32],
    cols: usize,
    acts: &mut BatchActs<'_>,
    fresh: &mut bool,
) {
    let rows = w.rows();
    if rows == 0 || cols == 0 {
        return;
    }
    let quantized = matches!(w.dtype, DType::Q8 | DType::Q4);
    let n = acts.n.min(x.len() / cols).min(out.len() / rows);
    let (qn, sn, pn) = (acts.act + 1, acts.act, kernels::pair_words(acts.act));
    let group = w.group.max(1) as usize;
    let held = acts.group == group && acts.layouts.serve(w.dtype, group);
    if quantized && (!*fresh || !held) {
        let mut len = 0;
        let mut layouts = kernels::Layouts::default();
        for t in 0..n {
            let (Some(q), Some(split), Some(pairs), Some(scales), Some(sums), Some(xt)) = (
                acts.q.get_mut(t * qn..(t + 1) * qn),
                acts.split.get_mut(t * qn..(t + 1) * qn),
                acts.pairs.get_mut(t * pn..(t + 1) * pn),
                acts.scales.get_mut(t * sn..(t + 1) * sn),
                acts.sums.get_mut(t * sn..(t + 1) * sn),
                x.get(t * cols..(t + 1) * cols),
            ) else {
                continue;
            };
            let mut a = QuantizedActivations::new(q, split, pairs, scales, sums);
            a.quantize_for(xt, w.group as usize, w.dtype);
            len = a.len();
            layouts = a.layouts();
        }
        acts.len = len;
        acts.group = w.group.max(1) as usize;
        acts.layouts = layouts;
        *fresh = true;
    }
    let block = (BLOCK_BYTES / w.row_bytes().max(1)).max(4) / 4 * 4;
    let mut r0 = 0;
    while r0 < rows {
        let r1 = (r0 + block).min(rows);
        let wb = row_block(w, r0, r1);
        if quantized {
            let view = kernels::TokenActivations {
                q: acts.q,
                q_stride: qn,
                scales: acts.scales,
                s_stride: sn,
                tokens: n,
                len: acts.len,
                group: acts.group,
            };
            let o = out.get_mut(r0..).unwrap_or(&mut []);
            if kernels::matmul_quantized(o, rows, &wb, &view) {
                r0 = r1;
                continue;
            }
        }
        for t in 0..n {
            let Some(o) = out.get_mut(t * rows + r0..t * rows + r1) else {
                continue;
            };
            if quantized {
                let (Some(q), Some(split), Some(pairs), Some(scales), Some(sums)) = (
                    acts.q.get_mut(t * qn..(t + 1) * qn),
                    acts.split.get_mut(t * qn..(t + 1) * qn),
                    acts.pairs.get_mut(t * pn..(t + 1) * pn),
                    acts.scales.get_mut(t * sn..(t + 1) * sn),
                    acts.sums.get_mut(t * sn..(t + 1) * sn),
                ) else {
                    continue;
                };
                let a = QuantizedActivations::new(q, split, pairs, scales, sums).holding(
                    acts.len,
                    acts.group,
                    acts.layouts,
                );
                kernels::matvec_quantized(o, &wb, &a);
            } else if let Some(xt) = x.get(t * cols..(t + 1) * cols) {
                kernels::matvec_float(o, &wb, xt);
            }
        }
        r0 = r1;
    }
}

/// Matvec that quantizes the input only when `fresh` says the activation
/// buffer does not already hold `x` at this group size (q, k and v share one
/// quantization, as do gate and up).
fn project(
    out: &mut [f32],
    w: &TensorView<'_>,
    x: &[f32],
    acts: &mut QuantizedActivations<'_>,
    fresh: &mut bool,
) {
    match w.dtype {
        DType::F32 | DType::F16 => kernels::matvec_float(out, w, x),
        DType::Q8 | DType::Q4 => {
            if !*fresh || !acts.holds(w.dtype, w.group as usize) {
                acts.quantize_for(x, w.group as usize, w.dtype);
                *fresh = true;
            }
            kernels::matvec_quantized(out, w, acts);
        }
    }
}

/// `xb2 = down(silu(gate · xb) ⊙ (up · xb))`.
fn swiglu_ffn(
    ffn: &FfnWeights<'_>,
    xb: &[f32],
    xb2: &mut [f32],
    hb: &mut [f32],
    hb2: &mut [f32],
    acts: &mut QuantizedActivations<'_>,
) {
    let mut fresh = false;
    project(hb, &ffn.gate, xb, acts, &mut fresh);
    project(hb2, &ffn.up, xb, acts, &mut fresh);
    kernels::swiglu(hb, hb2);
    let mut fresh = false;
    project(xb2, &ffn.down, hb, acts, &mut fresh);
}

/// Attention geometry of one layer.
struct Heads {
    hd: usize,
    kv_dim: usize,
    /// Query heads per key/value head.
    group_heads: usize,
    scale: f32,
}

/// A target-specific attention head (see [`kernels::attend_head_f32`]).
type NativeHead<T> = fn(&[f32], &mut [f32], &mut [f32], &[T], &[T], usize, usize, f32) -> bool;

/// Causal attention of every query head over the cached rows
/// `keys`/`values` (`[position][kv_dim]`, positions `0..=pos`), into `out`.
#[allow(clippy::too_many_arguments)]
fn attend<T: Copy>(
    h: &Heads,
    q: &[f32],
    out: &mut [f32],
    scores: &mut [f32],
    keys: &[T],
    values: &[T],
    dot: impl Fn(&[f32], &[T]) -> f32,
    to_f32: impl Fn(T) -> f32,
    native: NativeHead<T>,
) {
    for (head, (qh, oh)) in q
        .chunks_exact(h.hd)
        .zip(out.chunks_exact_mut(h.hd))
        .enumerate()
    {
        let off = (head / h.group_heads) * h.hd;
        if native(qh, oh, scores, keys, values, h.kv_dim, off, h.scale) {
            continue;
        }
        for (s, krow) in scores.iter_mut().zip(keys.chunks_exact(h.kv_dim)) {
            *s = krow.get(off..off + h.hd).map_or(0.0, |k| dot(qh, k)) * h.scale;
        }
        kernels::softmax(scores);
        // Eight output lanes at a time stay in registers across positions;
        // each output is still the sum over positions in order.
        for (lane0, oc) in oh.chunks_mut(kernels::LANES).enumerate() {
            let base = off + lane0 * kernels::LANES;
            let mut acc = [0f32; kernels::LANES];
            for (a, vrow) in scores.iter().zip(values.chunks_exact(h.kv_dim)) {
                if let Some(v) = vrow.get(base..base + oc.len()) {
                    for (o, e) in acc.iter_mut().zip(v) {
                        *o += a * to_f32(*e);
                    }
                }
            }
            oc.copy_from_slice(acc.get(..oc.len()).unwrap_or(&[]));
        }
    }
}

/// Rotates the interleaved pairs of every head of `x` by the position's angles.
fn rope(x: &mut [f32], cos: &[f32], sin: &[f32], hd: usize) {
    for head in x.chunks_exact_mut(hd.max(2)) {
        for (pair, (c, s)) in head.chunks_exact_mut(2).zip(cos.iter().zip(sin)) {
            if let [a, b] = pair {
                let (x0, x1) = (*a, *b);
                *a = x0 * c - x1 * s;
                *b = x0 * s + x1 * c;
            }
        }
    }
}

/// Dot product of f32 `q` with f16 keys, with the 8-lane order of [`kernels::dot`].
fn dot_f16(q: &[f32], k: &[u16]) -> f32 {
    let mut acc = [0f32; kernels::LANES];
    let qc = q.chunks_exact(kernels::LANES);
    let kc = k.chunks_exact(kernels::LANES);
    let (qr, kr) = (qc.remainder(), kc.remainder());
    for (a, b) in qc.zip(kc) {
        for ((s, a), b) in acc.iter_mut().zip(a).zip(b) {
            *s += a * kernels::f16_bits_to_f32(*b);
        }
    }
    let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
    let mut sum = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
    for (a, b) in qr.iter().zip(kr) {
        sum += a * kernels::f16_bits_to_f32(*b);
    }
    sum
}

/// Picks the `top_k` largest router logits (lowest index on ties) into
/// `chosen`, and their softmax into `weight`; returns how many were chosen.
fn choose_experts(logits: &[f32], top_k: usize, chosen: &mut [usize], weight: &mut [f32]) -> usize {
    let k = top_k.min(logits.len()).min(chosen.len()).min(weight.len());
    let mut n = 0;
    for slot in 0..k {
        let mut best: Option<(usize, f32)> = None;
        for (i, v) in logits.iter().enumerate() {
            if chosen.get(..slot).is_some_and(|c| c.contains(&i)) {
                continue;
            }
            if best.is_none_or(|(_, b)| *v > b) {
                best = Some((i, *v));
            }
        }
        let Some((i, v)) = best else { break };
        if let (Some(c), Some(w)) = (chosen.get_mut(slot), weight.get_mut(slot)) {
            *c = i;
            *w = v;
            n = slot + 1;
        }
    }
    if let Some(w) = weight.get_mut(..n) {
        kernels::softmax(w);
    }
    n
}
