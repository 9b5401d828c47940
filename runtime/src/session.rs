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
        let plan = memory::plan(&c, context, kv);
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
        let act_scales = carve::<f32>(&mut rest, memory::f32s(l.act), l.act).ok_or(too_small)?;
        let act_sums = carve::<i32>(&mut rest, memory::f32s(l.act), l.act).ok_or(too_small)?;
        let candidates =
            carve::<u32>(&mut rest, memory::f32s(l.vocab), l.vocab).ok_or(too_small)?;
        let tokens =
            carve::<u32>(&mut rest, memory::f32s(l.context), l.context).ok_or(too_small)?;

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
            acts: QuantizedActivations::new(act_q, act_split, act_scales, act_sums),
            candidates,
            tokens,
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
            match cache {
                KvCache::F32 { k: kc, v: vc } => {
                    if let (Some(kd), Some(vd)) =
                        (kc.get_mut(at..at + kv_dim), vc.get_mut(at..at + kv_dim))
                    {
                        kd.copy_from_slice(k);
                        vd.copy_from_slice(v);
                    }
                }
                KvCache::F16 { k: kc, v: vc } => {
                    if let (Some(kd), Some(vd)) =
                        (kc.get_mut(at..at + kv_dim), vc.get_mut(at..at + kv_dim))
                    {
                        for (d, s) in kd.iter_mut().zip(k.iter()) {
                            *d = half::f16::from_f32(*s).to_bits();
                        }
                        for (d, s) in vd.iter_mut().zip(v.iter()) {
                            *d = half::f16::from_f32(*s).to_bits();
                        }
                    }
                }
            }
            let scores = att.get_mut(..=pos).unwrap_or(&mut []);
            let rows = layer_base..layer_base + (pos + 1) * kv_dim;
            let heads = Heads {
                hd,
                kv_dim,
                group_heads,
                scale: att_scale,
            };
            match cache {
                KvCache::F32 { k: kc, v: vc } => {
                    let (Some(keys), Some(values)) = (kc.get(rows.clone()), vc.get(rows)) else {
                        continue;
                    };
                    attend(
                        &heads,
                        q,
                        xb,
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
                        continue;
                    };
                    attend(
                        &heads,
                        q,
                        xb,
                        scores,
                        keys,
                        values,
                        dot_f16,
                        kernels::f16_bits_to_f32,
                        kernels::attend_head_f16,
                    );
                }
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
            if !*fresh || acts.group() != w.group as usize {
                acts.quantize(x, w.group as usize);
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
