//! The small vector operations of a transformer: RMSNorm, `exp` and
//! softmax, SwiGLU, RoPE, attention of one query over a KV cache, and the
//! choice of experts of a mixture.

use super::{dot, le_f32, LANES};

/// `out = x / sqrt(mean(x²) + eps) · gain`, the gain read as f32 bytes.
pub fn rmsnorm(out: &mut [f32], x: &[f32], gain: &[u8], eps: f32) {
    let n = x.len().max(1) as f32;
    let inv = 1.0 / libm::sqrtf(dot(x, x) / n + eps);
    for ((o, v), g) in out.iter_mut().zip(x).zip(gain.chunks_exact(4)) {
        *o = v * inv * le_f32(g);
    }
}

/// `e^x` in plain f32 arithmetic (Cephes' polynomial, within 2 ulp): no
/// branches or calls, so softmax and SiLU loops vectorize, and only IEEE
/// add/mul/round-to-nearest are used, so every target gets the same bits.
/// Inputs are clamped to `[-87, 88]` (results stay finite and nonzero).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5·2^23 rounds to the nearest integer in the low mantissa bits.
    const ROUNDER: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUNDER;
    let n = t - ROUNDER;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * (r * r) + r + 1.0;
    let k = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    y * f32::from_bits((k.wrapping_add(127) as u32) << 23)
}

#[inline(always)]
pub(crate) fn softmax_body(x: &mut [f32]) {
    let mut m = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let mut max = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, v| m.max(*v));
    for c in chunks {
        for (m, v) in m.iter_mut().zip(c) {
            *m = m.max(*v);
        }
    }
    for v in m {
        max = max.max(v);
    }
    for v in x.iter_mut() {
        *v = exp(*v - max);
    }
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (s, v) in acc.iter_mut().zip(c) {
            *s += *v;
        }
    }
    let mut sum = super::portable::combine(acc);
    for v in rest {
        sum += *v;
    }
    let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
    for v in x.iter_mut() {
        *v *= inv;
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

/// One query head against the cached rows: position `p`'s key and value
/// are `keys` / `values[p · kv_dim + off..][..q.len()]`, and its score is
/// `q · key · scale`.
pub(crate) struct Head<'a, T> {
    pub q: &'a [f32],
    pub keys: &'a [T],
    pub values: &'a [T],
    pub kv_dim: usize,
    pub off: usize,
    pub scale: f32,
}

impl<T> Head<'_, T> {
    /// Whether a native kernel reading `lanes` elements at a time applies
    /// over `positions` cached rows: the query a nonzero multiple of `lanes`
    /// long, room for it in `out`, and every row's head inside `keys` and
    /// `values`.
    #[cfg_attr(
        not(any(
            target_arch = "x86_64",
            all(target_arch = "arm", thinkling_arm_dsp, thinkling_arm_fp16)
        )),
        allow(dead_code)
    )]
    pub(crate) fn fits(&self, out: &[f32], positions: usize, lanes: usize) -> bool {
        let hd = self.q.len();
        let rows = positions.saturating_mul(self.kv_dim);
        hd != 0
            && hd.is_multiple_of(lanes)
            && out.len() >= hd
            && self.off + hd <= self.kv_dim
            && self.keys.len() >= rows
            && self.values.len() >= rows
    }
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
