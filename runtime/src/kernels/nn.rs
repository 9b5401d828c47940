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

/// Values per scale of the Q8 KV cache, along each cached key or value row.
/// A head vector of the small models is 8 or 16 values, where a scale of its
/// own would add a quarter or an eighth to the cache; a group of 32 shares
/// one scale among the kv heads of a position (2 bytes per 32 values) and
/// measured as accurate as a scale per head on the default model
/// (docs/architecture.md).
pub const Q8_GROUP: usize = 32;

/// An element of the KV cache (f32, the bits of an f16, or an int8 with a
/// scale per group of its row): its value, the dot product of a query with
/// a row of them, and the target's native head over them
/// ([`super::attend_head_f32`]).
pub(crate) trait CacheElem: Copy {
    /// Values per scale along a cached row; 0 for the float elements, which
    /// have no scales (the loops below then never look at them).
    const GROUP: usize;
    /// Element `j` of a cached row whose group scales are `scales`.
    fn value(self, scales: &[u16], j: usize) -> f32;
    /// `q · k`, where `k` is the part of a cached row that starts at its
    /// element `first` and `scales` are the row's group scales.
    fn dot(q: &[f32], k: &[Self], scales: &[u16], first: usize) -> f32;
    /// `acc[i] += a · v[i]` (each element's value), `v` as `k` above.
    #[inline(always)]
    fn accumulate(acc: &mut [f32], a: f32, v: &[Self], scales: &[u16], first: usize) {
        for (i, (o, e)) in acc.iter_mut().zip(v).enumerate() {
            *o += a * e.value(scales, first + i);
        }
    }
    fn native_head(h: &Head<'_, Self>, out: &mut [f32], scores: &mut [f32]) -> bool;
}

impl CacheElem for f32 {
    const GROUP: usize = 0;
    #[inline(always)]
    fn value(self, _: &[u16], _: usize) -> f32 {
        self
    }
    #[inline(always)]
    fn dot(q: &[f32], k: &[f32], _: &[u16], _: usize) -> f32 {
        dot(q, k)
    }
    #[inline(always)]
    fn native_head(h: &Head<'_, f32>, out: &mut [f32], scores: &mut [f32]) -> bool {
        super::attend_head_f32(h, out, scores)
    }
}

impl CacheElem for u16 {
    const GROUP: usize = 0;
    #[inline(always)]
    fn value(self, _: &[u16], _: usize) -> f32 {
        super::f16_bits_to_f32(self)
    }
    #[inline(always)]
    fn dot(q: &[f32], k: &[u16], _: &[u16], _: usize) -> f32 {
        dot_f16(q, k)
    }
    #[inline(always)]
    fn native_head(h: &Head<'_, u16>, out: &mut [f32], scores: &mut [f32]) -> bool {
        super::attend_head_f16(h, out, scores)
    }
}

/// Causal attention of every query head over the cached rows
/// `keys`/`values` (`[position][kv_dim]`, positions `0..=pos`) with their
/// group scales (`[position][group]`, Q8 only), into `out`: the target's
/// native head where it has one, else the portable one; the Q8 cache's
/// head is [`super::attend_head_q8`] on every target.
pub(crate) fn attend<T: CacheElem>(
    h: &Heads,
    q: &[f32],
    out: &mut [f32],
    scores: &mut [f32],
    (keys, values): (&[T], &[T]),
    (key_scales, value_scales): (&[u16], &[u16]),
) {
    each_head(
        h,
        q,
        out,
        scores,
        (keys, values),
        (key_scales, value_scales),
        |one, oh, scores| {
            if !T::native_head(one, oh, scores) {
                attend_head(one, oh, scores);
            }
        },
    );
}

/// [`attend`] over the Q8 cache, `n` cached positions. With `2n` scores
/// of scratch, query heads that share a kv head go two at a time
/// ([`super::attention_q8::attend_pair_q8`]); each head's result is the
/// same either way.
pub(crate) fn attend_q8(
    h: &Heads,
    q: &[f32],
    out: &mut [f32],
    scores: &mut [f32],
    n: usize,
    (keys, values): (&[i8], &[i8]),
    (key_scales, value_scales): (&[u16], &[u16]),
) {
    let gh = h.group_heads.max(1);
    let paired = gh >= 2 && scores.len() >= n.saturating_mul(2);
    let scores = scores.get_mut(..if paired { 2 * n } else { n });
    let Some(scores) = scores else {
        return;
    };
    let mut heads = q
        .chunks_exact(h.hd)
        .zip(out.chunks_exact_mut(h.hd))
        .enumerate();
    while let Some((i, (qh, oh))) = heads.next() {
        let one = query_head(h, i, qh, (keys, values), (key_scales, value_scales));
        if paired && (i + 1) % gh != 0 {
            if let Some((_, (qh2, oh2))) = heads.next() {
                // The next query head reads the same kv head.
                let two = Head { q: qh2, ..one };
                super::attention_q8::attend_pair_q8([&one, &two], oh, oh2, scores);
                continue;
            }
        }
        super::attend_head_q8(&one, oh, scores.get_mut(..n).unwrap_or(&mut []));
    }
}

/// Runs `head` for every query head, with its kv head's part of the rows.
#[inline(always)]
fn each_head<T>(
    h: &Heads,
    q: &[f32],
    out: &mut [f32],
    scores: &mut [f32],
    (keys, values): (&[T], &[T]),
    (key_scales, value_scales): (&[u16], &[u16]),
    attend_one: impl Fn(&Head<'_, T>, &mut [f32], &mut [f32]),
) {
    for (head, (qh, oh)) in q
        .chunks_exact(h.hd)
        .zip(out.chunks_exact_mut(h.hd))
        .enumerate()
    {
        let one = query_head(h, head, qh, (keys, values), (key_scales, value_scales));
        attend_one(&one, oh, scores);
    }
}

/// Query head number `head`, `qh`, with the part of the cached rows of the
/// kv head it reads.
#[inline(always)]
fn query_head<'a, T>(
    h: &Heads,
    head: usize,
    qh: &'a [f32],
    (keys, values): (&'a [T], &'a [T]),
    (key_scales, value_scales): (&'a [u16], &'a [u16]),
) -> Head<'a, T> {
    Head {
        q: qh,
        keys,
        values,
        key_scales,
        value_scales,
        kv_dim: h.kv_dim,
        off: (head / h.group_heads.max(1)) * h.hd,
        scale: h.scale,
    }
}

/// The group scales of cached row `p` (none for float elements).
#[inline(always)]
fn row_scales<T: CacheElem>(scales: &[u16], p: usize, kv_dim: usize) -> &[u16] {
    if T::GROUP == 0 {
        return &[];
    }
    let groups = kv_dim.div_ceil(T::GROUP);
    scales.get(p * groups..(p + 1) * groups).unwrap_or(&[])
}

/// One attention head in portable code: `scores[p] = (q · key p) · scale`,
/// softmax, then `out = Σ_p scores[p] · value p`.
#[inline(always)]
fn attend_head<T: CacheElem>(h: &Head<'_, T>, out: &mut [f32], scores: &mut [f32]) {
    let (hd, off) = (h.q.len(), h.off);
    for (p, (s, krow)) in scores
        .iter_mut()
        .zip(h.keys.chunks_exact(h.kv_dim))
        .enumerate()
    {
        let ks = row_scales::<T>(h.key_scales, p, h.kv_dim);
        *s = krow
            .get(off..off + hd)
            .map_or(0.0, |k| T::dot(h.q, k, ks, off))
            * h.scale;
    }
    super::softmax(scores);
    // Eight output lanes at a time stay in registers across positions;
    // each output is still the sum over positions in order.
    for (lane0, oc) in out.chunks_mut(super::LANES).enumerate() {
        let base = off + lane0 * super::LANES;
        let mut acc = [0f32; super::LANES];
        for (p, (a, vrow)) in scores
            .iter()
            .zip(h.values.chunks_exact(h.kv_dim))
            .enumerate()
        {
            let vs = row_scales::<T>(h.value_scales, p, h.kv_dim);
            if let Some(v) = vrow.get(base..base + oc.len()) {
                T::accumulate(&mut acc, *a, v, vs, base);
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

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::sampling::Rng;
    use std::vec::Vec;

    /// A cache of `positions` rows of `kv_dim` random values in `T`, with
    /// random Q8 scales (ignored by the float elements).
    fn rows<T: CacheElem>(
        rng: &mut Rng,
        n: usize,
        groups: usize,
        make: impl Fn(f32) -> T,
    ) -> (Vec<T>, Vec<u16>) {
        let data = (0..n).map(|_| make(rng.next_f32() * 2.0 - 1.0)).collect();
        let scales = (0..groups)
            .map(|_| half::f16::from_f32(0.01 + rng.next_f32() * 0.05).to_bits())
            .collect();
        (data, scales)
    }

    /// The native head (where the target has one) computes the portable
    /// head's bits for every cache element type, over every head of a
    /// grouped-query layer and heads that straddle two Q8 groups.
    fn native_equals_portable<T: CacheElem>(make: impl Fn(f32) -> T + Copy) -> usize {
        let mut rng = Rng::new(21);
        let mut native = 0;
        for (hd, n_kv) in [(8usize, 4usize), (16, 2), (48, 6), (24, 3), (12, 2)] {
            let kv_dim = hd * n_kv;
            let positions = 41;
            let groups = positions * kv_dim.div_ceil(Q8_GROUP);
            let (keys, ks) = rows(&mut rng, positions * kv_dim, groups, make);
            let (values, vs) = rows(&mut rng, positions * kv_dim, groups, make);
            for kvh in 0..n_kv {
                let q: Vec<f32> = (0..hd).map(|_| rng.next_f32() * 4.0 - 2.0).collect();
                for n in [1usize, 7, 8, 9, positions] {
                    let h = Head {
                        q: &q,
                        keys: &keys[..n * kv_dim],
                        values: &values[..n * kv_dim],
                        key_scales: &ks,
                        value_scales: &vs,
                        kv_dim,
                        off: kvh * hd,
                        scale: 0.3,
                    };
                    let (mut want, mut got) = (std::vec![0f32; hd], std::vec![0f32; hd]);
                    let (mut s1, mut s2) = (std::vec![0f32; n], std::vec![0f32; n]);
                    attend_head(&h, &mut want, &mut s1);
                    if T::native_head(&h, &mut got, &mut s2) {
                        native += 1;
                        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&got), bits(&want), "hd {hd}, kv head {kvh}, {n} rows");
                        assert_eq!(bits(&s2), bits(&s1), "scores, hd {hd}, {n} rows");
                    }
                }
            }
        }
        native
    }

    #[test]
    fn native_heads_equal_the_portable_head_bit_for_bit() {
        let f32s = native_equals_portable(|x| x);
        let f16s = native_equals_portable(|x| half::f16::from_f32(x).to_bits());
        #[cfg(target_arch = "x86_64")]
        if super::super::x86::avx2() {
            assert!(f32s > 0 && f16s > 0, "{f32s} {f16s}");
        }
        let _ = (f32s, f16s);
    }
}
