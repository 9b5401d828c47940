//! The small vector operations of a transformer: RMSNorm, SwiGLU, RoPE, attention of one query over a KV cache, and the
//! choice of experts of a mixture.

use super::portable::exp;
use super::view::Head;
use super::{dot, le_f32};

/// `out = x / sqrt(mean(x²) + eps) · gain`, the gain read as f32 bytes.
pub fn rmsnorm(out: &mut [f32], x: &[f32], gain: &[u8], eps: f32) {
    let n = x.len().max(1) as f32;
    let inv = 1.0 / libm::sqrtf(dot(x, x) / n + eps);
    for ((o, v), g) in out.iter_mut().zip(x).zip(gain.chunks_exact(4)) {
        *o = v * inv * le_f32(g);
    }
}

/// `x[i] += y[i]`.
#[inline]
pub fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// SwiGLU's gate: `gate[i] = silu(gate[i]) · up[i]`.
#[inline]
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + exp(-*g)) * u;
    }
}

/// Attention geometry of one layer.
pub(crate) struct Heads {
    pub hd: usize,
    pub kv_dim: usize,
    /// Query heads per key/value head.
    pub group_heads: usize,
    pub scale: f32,
}

/// An element of the KV cache (f32, or the bits of an f16): its value, the
/// dot product of a query with a row of them, and the target's native head
/// over them ([`super::attend_head_f32`]).
pub(crate) trait CacheElem: Copy {
    fn to_f32(self) -> f32;
    fn dot(q: &[f32], k: &[Self]) -> f32;
    fn native_head(h: &Head<'_, Self>, out: &mut [f32], scores: &mut [f32]) -> bool;
}

impl CacheElem for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn dot(q: &[f32], k: &[f32]) -> f32 {
        dot(q, k)
    }
    #[inline(always)]
    fn native_head(h: &Head<'_, f32>, out: &mut [f32], scores: &mut [f32]) -> bool {
        super::attend_head_f32(h, out, scores)
    }
}

impl CacheElem for u16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        super::f16_bits_to_f32(self)
    }
    #[inline(always)]
    fn dot(q: &[f32], k: &[u16]) -> f32 {
        dot_f16(q, k)
    }
    #[inline(always)]
    fn native_head(h: &Head<'_, u16>, out: &mut [f32], scores: &mut [f32]) -> bool {
        super::attend_head_f16(h, out, scores)
    }
}

/// Causal attention of every query head over the cached rows
/// `keys`/`values` (`[position][kv_dim]`, positions `0..=pos`), into `out`.
pub(crate) fn attend<T: CacheElem>(
    h: &Heads,
    q: &[f32],
    out: &mut [f32],
    scores: &mut [f32],
    keys: &[T],
    values: &[T],
) {
    for (head, (qh, oh)) in q
        .chunks_exact(h.hd)
        .zip(out.chunks_exact_mut(h.hd))
        .enumerate()
    {
        let off = (head / h.group_heads) * h.hd;
        let one = Head {
            q: qh,
            keys,
            values,
            kv_dim: h.kv_dim,
            off,
            scale: h.scale,
        };
        if !T::native_head(&one, oh, scores) {
            attend_head(&one, oh, scores);
        }
    }
}

/// One attention head in portable code: `scores[p] = (q · key p) · scale`,
/// softmax, then `out = Σ_p scores[p] · value p`.
#[inline(always)]
fn attend_head<T: CacheElem>(h: &Head<'_, T>, out: &mut [f32], scores: &mut [f32]) {
    let (hd, off) = (h.q.len(), h.off);
    for (s, krow) in scores.iter_mut().zip(h.keys.chunks_exact(h.kv_dim)) {
        *s = krow.get(off..off + hd).map_or(0.0, |k| T::dot(h.q, k)) * h.scale;
    }
    super::softmax(scores);
    // Eight output lanes at a time stay in registers across positions;
    // each output is still the sum over positions in order.
    for (lane0, oc) in out.chunks_mut(super::LANES).enumerate() {
        let base = off + lane0 * super::LANES;
        let mut acc = [0f32; super::LANES];
        for (a, vrow) in scores.iter().zip(h.values.chunks_exact(h.kv_dim)) {
            if let Some(v) = vrow.get(base..base + oc.len()) {
                for (o, e) in acc.iter_mut().zip(v) {
                    *o += a * e.to_f32();
                }
            }
        }
        for (o, a) in oc.iter_mut().zip(acc) {
            *o = a;
        }
    }
}

/// Rotates the interleaved pairs of every head of `x` by the position's angles.
#[inline(always)]
pub(crate) fn rope(x: &mut [f32], cos: &[f32], sin: &[f32], hd: usize) {
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

/// Dot product of f32 `q` with f16 keys, with the 8-lane order of [`super::dot`].
pub(crate) fn dot_f16(q: &[f32], k: &[u16]) -> f32 {
    let mut acc = [0f32; super::LANES];
    let qc = q.chunks_exact(super::LANES);
    let kc = k.chunks_exact(super::LANES);
    let (qr, kr) = (qc.remainder(), kc.remainder());
    for (a, b) in qc.zip(kc) {
        for ((s, a), b) in acc.iter_mut().zip(a).zip(b) {
            *s += a * super::f16_bits_to_f32(*b);
        }
    }
    let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
    let mut sum = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
    for (a, b) in qr.iter().zip(kr) {
        sum += a * super::f16_bits_to_f32(*b);
    }
    sum
}

/// Picks the `top_k` largest router logits (lowest index on ties) into
/// `chosen`, and their softmax into `weight`; returns how many were chosen.
pub(crate) fn choose_experts(
    logits: &[f32],
    top_k: usize,
    chosen: &mut [usize],
    weight: &mut [f32],
) -> usize {
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
        super::softmax(w);
    }
    n
}
