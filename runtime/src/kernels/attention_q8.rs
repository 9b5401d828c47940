//! Attention of one query head over the Q8 KV cache, in integer and f32
//! arithmetic that every target computes bit for bit:
//!
//! 1. the query head is quantized to int8 with one scale (`max|q| / 127`,
//!    rounded as the activations of the Q8 matrix products are);
//! 2. each position's score is an exact i32 dot product of that query with
//!    the cached int8 key (SXTB16 + SMLAD on Armv7E-M, plain integer code
//!    elsewhere), times the key's group scale, times `query scale · 1/√hd ·
//!    log2 e`: the score in base 2;
//! 3. softmax with [`exp2`] of each score minus their maximum (so the
//!    weights are `e^(logit − max)`), summed in position order;
//! 4. `out = Σ_p (weight_p · value scale_p) · v_p / Σ weights`, eight
//!    outputs at a time, each summed over positions in order.
//!
//! The integer dot product is exact whatever the order, and every f32
//! operation is the same IEEE operation in the same order on every target
//! (no fused multiply-adds), so the host and the board agree bit for bit.
//! Against attention over the dequantized cache in f32 the differences are
//! the query's rounding to int8 (half a step of `max|q| / 127` per element)
//! and the exponential's error (within 3.5e-7 relative, see [`exp2`]).

use super::activations::{abs_max, round_q8};
use super::nn::Q8_GROUP;
use super::portable::exp2;
use super::scalar::f16_bits_to_f32;
use super::view::Head;
use super::LANES;

/// The largest head the query buffer holds (the blob's limit).
const MAX_HD: usize = crate::blob::MAX_HEAD_DIM as usize;

/// `log2 e`: scores are taken in base 2, so the softmax needs `2^x`.
const LOG2_E: f32 = core::f32::consts::LOG2_E;

/// A query head quantized to int8 with one scale, and (Armv7E-M) its
/// elements sign-extended into the halfword pairs SXTB16 makes of a key
/// word: for each four elements `(q0, q2)` then `(q1, q3)`.
struct QueryI8 {
    q: [i8; MAX_HD],
    #[cfg(all(target_arch = "arm", thinkling_arm_dsp))]
    pairs: [u32; MAX_HD / 2],
    len: usize,
    scale: f32,
}

impl QueryI8 {
    /// `q = round(x / s)` with `s = max|x| / 127` (all zeros for a zero
    /// vector; NaNs quantize to 0). At most [`MAX_HD`] elements are kept.
    fn new(x: &[f32]) -> Self {
        let x = x.get(..MAX_HD).unwrap_or(x);
        let scale = abs_max(x) / crate::quant::Q8_MAX;
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        let mut q = [0i8; MAX_HD];
        for (o, v) in q.iter_mut().zip(x) {
            *o = round_q8(v * inv);
        }
        #[cfg(all(target_arch = "arm", thinkling_arm_dsp))]
        let pairs = {
            let mut pairs = [0u32; MAX_HD / 2];
            super::activations::fill_pairs(q.get(..x.len()).unwrap_or(&[]), &mut pairs);
            pairs
        };
        Self {
            q,
            #[cfg(all(target_arch = "arm", thinkling_arm_dsp))]
            pairs,
            len: x.len(),
            scale,
        }
    }

    /// Exact `Σ q[from + i] · k[i]` over the shorter length.
    #[inline(always)]
    fn dot(&self, from: usize, k: &[i8]) -> i32 {
        let q = self.q.get(from..self.len).unwrap_or(&[]);
        #[cfg(all(target_arch = "arm", thinkling_arm_dsp))]
        if from.is_multiple_of(4) {
            let pairs = self.pairs.get(from / 2..).unwrap_or(&[]);
            return super::arm::dot_i8_pairs(k, pairs, q);
        }
        dot_i8(q, k)
    }
}

/// Exact `Σ a·b` of two int8 vectors over the shorter length.
#[inline(always)]
pub(crate) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(x, y)| *x as i32 * *y as i32).sum()
}

/// Group `g`'s scale of a cached row (0.0 past them).
#[inline(always)]
fn group_scale(scales: &[u16], g: usize) -> f32 {
    scales.get(g).map_or(0.0, |s| f16_bits_to_f32(*s))
}

/// `q · key` in f32 for the key `k` (the head's part of a cached row, from
/// element `off`) with its row's group scales: one integer dot product per
/// group the head touches, each times its scale, added in order.
#[inline(always)]
fn key_score(q: &QueryI8, k: &[i8], scales: &[u16], off: usize, one_group: bool) -> f32 {
    if one_group {
        return q.dot(0, k) as f32 * group_scale(scales, off / Q8_GROUP);
    }
    let mut sum = 0f32;
    let mut j = 0;
    while j < k.len() {
        let g = (off + j) / Q8_GROUP;
        let end = ((g + 1) * Q8_GROUP - off).min(k.len());
        let seg = k.get(j..end).unwrap_or(&[]);
        sum += q.dot(j, seg) as f32 * group_scale(scales, g);
        j = end.max(j + 1);
    }
    sum
}

/// The scores of a head of `4 · W` elements inside one key group (the
/// same values as [`key_score`], with the word loop unrolled); returns
/// their maximum.
#[inline(always)]
fn scores_words<const W: usize>(
    q: &QueryI8,
    h: &Head<'_, i8>,
    scores: &mut [f32],
    c: f32,
    groups: usize,
) -> f32 {
    let g = h.off / Q8_GROUP;
    #[cfg(all(target_arch = "arm", thinkling_arm_fp16))]
    if let Some(max) = super::arm::q8_scores(
        q.pairs.get(..2 * W).unwrap_or(&[]),
        h.keys.get(h.off..).unwrap_or(&[]),
        h.kv_dim,
        h.key_scales.get(g..).unwrap_or(&[]),
        groups,
        c,
        scores,
    ) {
        return max;
    }
    #[cfg(all(target_arch = "arm", thinkling_arm_dsp))]
    let qw: [[u32; 2]; W] = core::array::from_fn(|w| {
        [
            q.pairs.get(2 * w).copied().unwrap_or(0),
            q.pairs.get(2 * w + 1).copied().unwrap_or(0),
        ]
    });
    #[cfg(not(all(target_arch = "arm", thinkling_arm_dsp)))]
    let qw: [[i8; 4]; W] = core::array::from_fn(|w| {
        core::array::from_fn(|i| q.q.get(4 * w + i).copied().unwrap_or(0))
    });
    let mut max = f32::NEG_INFINITY;
    let rows = h.keys.get(h.off..).unwrap_or(&[]).chunks(h.kv_dim.max(1));
    let ks = h.key_scales.chunks_exact(groups.max(1));
    for ((s, krow), ks) in scores.iter_mut().zip(rows).zip(ks) {
        let mut acc = 0i32;
        if let Some(k) = krow.get(..4 * W) {
            for (kw, qw) in k.chunks_exact(4).zip(&qw) {
                #[cfg(all(target_arch = "arm", thinkling_arm_dsp))]
                {
                    acc = super::arm::smlad_word(acc, kw, qw[0], qw[1]);
                }
                #[cfg(not(all(target_arch = "arm", thinkling_arm_dsp)))]
                {
                    acc += dot_i8(kw, qw);
                }
            }
        }
        *s = acc as f32 * group_scale(ks, g) * c;
        if *s > max {
            max = *s;
        }
    }
    max
}

/// Whether elements `first..first + n` of a row share one group.
#[inline(always)]
fn in_one_group(first: usize, n: usize) -> bool {
    n == 0 || first / Q8_GROUP == (first + n - 1) / Q8_GROUP
}

/// A query head of at most 16 elements quantized as [`QueryI8::new`] does,
/// written as its SXTB16 pairs into `pairs`; returns its scale.
#[cfg(all(target_arch = "arm", thinkling_arm_fp16))]
fn query_pairs(x: &[f32], pairs: &mut [u32]) -> f32 {
    let x = x.get(..16).unwrap_or(x);
    let amax = abs_max(x);
    let scale = amax / crate::quant::Q8_MAX;
    let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    let mut q = [0i8; 16];
    if super::activations::round_q8_pairs(x, amax, inv, &mut q, pairs) {
        return scale;
    }
    for (o, v) in q.iter_mut().zip(x) {
        *o = round_q8(v * inv);
    }
    super::activations::fill_pairs(q.get(..x.len()).unwrap_or(&[]), pairs);
    scale
}

/// Whether head `h` over `n` cached positions reads inside its slices and
/// writes inside `out`.
fn fits(h: &Head<'_, i8>, out: &[f32], n: usize) -> bool {
    let (hd, kv_dim, off) = (h.q.len(), h.kv_dim, h.off);
    let groups = kv_dim.div_ceil(Q8_GROUP);
    let rows = n.saturating_mul(kv_dim);
    hd <= MAX_HD
        && off + hd <= kv_dim
        && out.len() >= hd
        && h.keys.len() >= rows
        && h.values.len() >= rows
        && h.key_scales.len() >= n.saturating_mul(groups)
        && h.value_scales.len() >= n.saturating_mul(groups)
}

/// Two query heads of one kv head (the same cached rows and `off`), each
/// with [`attend_head_q8`]'s result bit for bit; `scores` holds two entries
/// per cached position. On Armv7E-M with its FPU, heads of 8 or 16 values
/// inside one group run together: the keys and values are loaded,
/// unpacked and converted once for both.
pub(crate) fn attend_pair_q8(
    h: [&Head<'_, i8>; 2],
    out0: &mut [f32],
    out1: &mut [f32],
    scores: &mut [f32],
) {
    #[cfg(all(target_arch = "arm", thinkling_arm_fp16))]
    if pair_native(h, out0, out1, scores) {
        return;
    }
    let n = scores.len() / 2;
    let one = scores.get_mut(..n).unwrap_or(&mut []);
    attend_head_q8(h[0], out0, one);
    attend_head_q8(h[1], out1, one);
}

/// [`attend_pair_q8`] with the Armv7E-M loops of two heads; false (nothing
/// written but scratch) where they do not apply.
#[cfg(all(target_arch = "arm", thinkling_arm_fp16))]
fn pair_native(
    [h0, h1]: [&Head<'_, i8>; 2],
    out0: &mut [f32],
    out1: &mut [f32],
    scores: &mut [f32],
) -> bool {
    let (hd, n, kv_dim, off) = (h0.q.len(), scores.len() / 2, h0.kv_dim, h0.off);
    let shape = (hd == 8 || hd == 16)
        && h1.q.len() == hd
        && h1.off == off
        && h1.kv_dim == kv_dim
        && in_one_group(off, hd)
        && kv_dim.is_multiple_of(4)
        && (h0.values.as_ptr() as usize + off).is_multiple_of(4);
    if !shape || n == 0 || !fits(h0, out0, n) || !fits(h1, out1, n) {
        return false;
    }
    let Some(scores) = scores.get_mut(..2 * n) else {
        return false;
    };
    let (groups, g) = (kv_dim.div_ceil(Q8_GROUP), off / Q8_GROUP);
    // Both queries as [`QueryI8::new`] quantizes them, in 16-element
    // buffers: two full-size ones would cost the stack 1.5 KiB.
    let mut pairs = [0u32; 16];
    let (first, second) = pairs.split_at_mut(hd / 2);
    let c = [
        query_pairs(h0.q, first) * h0.scale * LOG2_E,
        query_pairs(h1.q, second) * h1.scale * LOG2_E,
    ];
    let Some([m0, m1]) = super::arm::q8_scores2(
        pairs.get(..hd).unwrap_or(&[]),
        h0.keys.get(off..).unwrap_or(&[]),
        kv_dim,
        h0.key_scales.get(g..).unwrap_or(&[]),
        groups,
        c,
        scores,
    ) else {
        return false;
    };
    // The weights come with the first eight values of each head (kept in
    // `scores` for the next eight where the heads have 16).
    let Some([s0, s1]) = super::arm::q8_softmax_values8x2(
        scores,
        [m0, m1],
        hd > LANES,
        h0.values.get(off..).unwrap_or(&[]),
        kv_dim,
        h0.value_scales.get(g..).unwrap_or(&[]),
        groups,
        out0,
        out1,
    ) else {
        return false;
    };
    let inv0 = if s0 > 0.0 { 1.0 / s0 } else { 0.0 };
    let inv1 = if s1 > 0.0 { 1.0 / s1 } else { 0.0 };
    for lane0 in 0..hd / LANES {
        let (base, at) = (off + lane0 * LANES, lane0 * LANES..(lane0 + 1) * LANES);
        let (Some(o0), Some(o1)) = (out0.get_mut(at.clone()), out1.get_mut(at)) else {
            break;
        };
        if lane0 > 0 {
            let done = super::arm::q8_values8x2(
                scores,
                h0.values.get(base..).unwrap_or(&[]),
                kv_dim,
                h0.value_scales.get(g..).unwrap_or(&[]),
                groups,
                o0,
                o1,
            );
            if !done {
                // Unreachable (its conditions are checked above); the heads
                // one at a time compute the same results from scratch.
                let one = scores.get_mut(..n).unwrap_or(&mut []);
                attend_head_q8(h0, out0, one);
                attend_head_q8(h1, out1, one);
                return true;
            }
        }
        for o in o0.iter_mut() {
            *o *= inv0;
        }
        for o in o1.iter_mut() {
            *o *= inv1;
        }
    }
    true
}

/// One attention head over the Q8 cache (module docs); `scores` (one per
/// cached position) is scratch and ends holding the unnormalized weights.
/// Rows or scales missing from the slices (the caller checks they are
/// there) give zeros rather than a panic.
pub(crate) fn attend_head_q8(h: &Head<'_, i8>, out: &mut [f32], scores: &mut [f32]) {
    let (hd, n, kv_dim, off) = (h.q.len(), scores.len(), h.kv_dim, h.off);
    let groups = kv_dim.div_ceil(Q8_GROUP);
    if !fits(h, out, n) || hd == 0 || n == 0 {
        for o in out.iter_mut().take(hd) {
            *o = 0.0;
        }
        return;
    }
    let q = QueryI8::new(h.q);
    let c = q.scale * h.scale * LOG2_E;

    // Scores in base 2 and their maximum.
    let one_group = in_one_group(off, hd);
    let max = match hd {
        8 if one_group => scores_words::<2>(&q, h, scores, c, groups),
        16 if one_group => scores_words::<4>(&q, h, scores, c, groups),
        _ => {
            let mut max = f32::NEG_INFINITY;
            let keys = h
                .keys
                .chunks_exact(kv_dim)
                .zip(h.key_scales.chunks_exact(groups));
            for (s, (krow, ks)) in scores.iter_mut().zip(keys) {
                let k = krow.get(off..off + hd).unwrap_or(&[]);
                *s = key_score(&q, k, ks, off, one_group) * c;
                if *s > max {
                    max = *s;
                }
            }
            max
        }
    };

    // Weights 2^(s − max) and their sum.
    let mut sum = 0f32;
    for s in scores.iter_mut() {
        let e = exp2(*s - max);
        *s = e;
        sum += e;
    }
    let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };

    // Values, eight outputs at a time.
    let values = || {
        h.values
            .chunks_exact(kv_dim)
            .zip(h.value_scales.chunks_exact(groups))
    };
    let out = out.get_mut(..hd).unwrap_or(&mut []);
    for (lane0, oc) in out.chunks_mut(LANES).enumerate() {
        let base = off + lane0 * LANES;
        let mut acc = [0f32; LANES];
        if oc.len() == LANES && in_one_group(base, LANES) {
            let g = base / Q8_GROUP;
            #[cfg(all(target_arch = "arm", thinkling_arm_fp16))]
            if super::arm::q8_values8(
                scores,
                h.values.get(base..).unwrap_or(&[]),
                kv_dim,
                h.value_scales.get(g..).unwrap_or(&[]),
                groups,
                &mut acc,
            ) {
                for (o, a) in oc.iter_mut().zip(acc) {
                    *o = a * inv;
                }
                continue;
            }
            for (e, (vrow, vs)) in scores.iter().zip(values()) {
                let a = e * group_scale(vs, g);
                if let Some(v) = vrow.get(base..base + LANES) {
                    for (o, x) in acc.iter_mut().zip(v) {
                        *o += a * *x as f32;
                    }
                }
            }
        } else {
            for (e, (vrow, vs)) in scores.iter().zip(values()) {
                let v = vrow.get(base..base + oc.len()).unwrap_or(&[]);
                for (i, (o, x)) in acc.iter_mut().zip(v).enumerate() {
                    *o += e * group_scale(vs, (base + i) / Q8_GROUP) * *x as f32;
                }
            }
        }
        for (o, a) in oc.iter_mut().zip(acc) {
            *o = a * inv;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::sampling::Rng;
    use std::vec::Vec;

    /// The exponential against libm over the range it serves ([-64, 0];
    /// below, `2^-64`): within 3.5e-7 relative, exactly 1 at 0, exact at
    /// the integers, and never past 1.
    #[test]
    fn exp2_is_within_its_bound_of_libm() {
        let mut worst = 0f64;
        let mut x = -64.0f32;
        while x <= 0.0 {
            let (got, want) = (exp2(x) as f64, libm::exp2(x as f64));
            worst = worst.max((got - want).abs() / want);
            assert!(got <= 1.0, "{x}");
            x += 1.0 / 8192.0 + x.abs() * 1e-7;
        }
        let mut rng = Rng::new(3);
        for _ in 0..200_000 {
            let x = -rng.next_f32() * 64.0;
            let (got, want) = (exp2(x) as f64, libm::exp2(x as f64));
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst <= 3.5e-7, "max relative error {worst:e}");
        for n in 0..=64 {
            assert_eq!(exp2(-(n as f32)), libm::exp2f(-(n as f32)), "{n}");
        }
        let tiny = libm::exp2f(-64.0);
        assert_eq!(exp2(-300.0), tiny);
        assert_eq!(exp2(-1e30), tiny);
        assert_eq!(exp2(f32::NEG_INFINITY), tiny);
        assert_eq!(exp2(f32::NAN), 1.0);
        assert!(exp2(-f32::MIN_POSITIVE) == 1.0 && exp2(-0.0) == 1.0);
    }

    /// The query's integer dot products (from any element, whole words and
    /// tails, the SMLAD pairs on Armv7E-M) equal the plain i64 sum.
    #[test]
    fn query_dot_products_are_exact() {
        let mut rng = Rng::new(8);
        for hd in [2usize, 6, 8, 12, 16, 30, 48, 64, 256] {
            let x: Vec<f32> = (0..hd).map(|_| rng.next_f32() * 8.0 - 4.0).collect();
            let q = QueryI8::new(&x);
            let k: Vec<i8> = (0..hd)
                .map(|_| (rng.next_f32() * 255.0 - 127.5) as i8)
                .chain([-128, 127, -128, -128])
                .collect();
            for from in 0..hd {
                for end in from..=hd {
                    let want: i64 = (from..end).map(|j| q.q[j] as i64 * k[j] as i64).sum();
                    assert_eq!(
                        q.dot(from, &k[from..end]) as i64,
                        want,
                        "{hd} {from}..{end}"
                    );
                }
            }
            // The largest magnitudes too.
            assert!(q.q[..hd].iter().any(|v| v.unsigned_abs() == 127));
        }
    }

    /// Softmax weights through `exp2` of base-2 scores are the ones of
    /// libm's `expf` of the natural scores, within 1e-6 relative.
    #[test]
    fn base2_softmax_matches_the_natural_one() {
        let mut rng = Rng::new(4);
        for n in [1usize, 5, 64, 300] {
            let s: Vec<f32> = (0..n).map(|_| rng.next_f32() * 40.0 - 20.0).collect();
            let max = s.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
            let e2: Vec<f64> = s
                .iter()
                .map(|v| exp2(v * LOG2_E - max * LOG2_E) as f64)
                .collect();
            let e: Vec<f64> = s.iter().map(|v| libm::exp((v - max) as f64)).collect();
            let (s2, s1): (f64, f64) = (e2.iter().sum(), e.iter().sum());
            for (a, b) in e2.iter().zip(&e) {
                assert!(
                    (a / s2 - b / s1).abs() <= 1e-6 * (b / s1) + 1e-12,
                    "{a} {b}"
                );
            }
        }
    }

    /// Missing rows or scales, oversized heads and empty inputs give zeros,
    /// never a panic; hostile values give finite or NaN outputs, no panic.
    #[test]
    fn hostile_inputs_do_not_panic() {
        let keys = [1i8; 64];
        let ks = [0x3c00u16; 2];
        let q = [1f32; 8];
        let mut out = [9f32; 8];
        let mut scores = [0f32; 2];
        let short = Head {
            q: &q,
            keys: &keys[..40],
            values: &keys,
            key_scales: &ks,
            value_scales: &ks,
            kv_dim: 32,
            off: 0,
            scale: 1.0,
        };
        attend_head_q8(&short, &mut out, &mut scores);
        assert_eq!(out, [0.0; 8]);
        let qn = [
            f32::NAN,
            f32::INFINITY,
            -f32::INFINITY,
            1e38,
            0.0,
            0.0,
            0.0,
            0.0,
        ];
        let h = Head {
            q: &qn,
            keys: &keys,
            values: &keys,
            key_scales: &[0x7bff, 0x7c00],
            value_scales: &[0x7e00, 0x0001],
            kv_dim: 32,
            off: 24,
            scale: 1.0,
        };
        attend_head_q8(&h, &mut out, &mut scores);
        attend_head_q8(&h, &mut out[..3], &mut scores);
        attend_head_q8(&h, &mut out, &mut []);
    }
}
