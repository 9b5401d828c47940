//! The KV cache: keys and values of every layer and position, in f32,
//! rounded to f16, or quantized to int8 with one f16 scale per group of
//! [`Q8_GROUP`] values, and attention of a query over them.

use crate::error::SessionError;
use crate::kernels;
use crate::kernels::activations::{abs_max, round_q8, round_q8_pairs};
use crate::kernels::nn::{CacheElem, Heads};

pub use crate::kernels::nn::Q8_GROUP;

/// Element type of the KV cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvDType {
    F32,
    /// Half the cache memory; keys and values are rounded to f16 when stored.
    F16,
    /// Int8 keys and values, each position's key and value vectors in groups
    /// of [`Q8_GROUP`] along the row (the last group may be short) with one
    /// f16 scale per group: a little over a quarter of the f32 cache.
    Q8,
}

impl KvDType {
    /// Bytes of one cached value (Q8: its share of the group scales comes on
    /// top; [`crate::memory::plan`] counts them).
    pub fn bytes(self) -> usize {
        match self {
            KvDType::F32 => 4,
            KvDType::F16 => 2,
            KvDType::Q8 => 1,
        }
    }

    /// The name the tools and the firmware settings use (`f32`, `f16`, `q8`).
    pub fn name(self) -> &'static str {
        match self {
            KvDType::F32 => "f32",
            KvDType::F16 => "f16",
            KvDType::Q8 => "q8",
        }
    }

    /// Parses [`Self::name`], any case.
    pub fn from_name(name: &str) -> Option<Self> {
        [KvDType::F32, KvDType::F16, KvDType::Q8]
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }
}

/// Scales per cached row of `kv_dim` values in the Q8 cache.
pub(crate) fn q8_groups(kv_dim: usize) -> usize {
    kv_dim.div_ceil(Q8_GROUP)
}

/// `[layer][position][kv_dim]` keys, then values.
pub(crate) enum KvCache<'m> {
    F32 {
        k: &'m mut [f32],
        v: &'m mut [f32],
    },
    /// f16 bit patterns.
    F16 {
        k: &'m mut [u16],
        v: &'m mut [u16],
    },
    /// Int8 values and, `[layer][position][group]`, their f16 scales (bits).
    Q8 {
        k: &'m mut [i8],
        v: &'m mut [i8],
        ks: &'m mut [u16],
        vs: &'m mut [u16],
    },
}

const OUTSIDE: SessionError = SessionError::Invariant {
    what: "KV cache rows outside the cache",
};

impl KvCache<'_> {
    /// Writes the key and value vectors of one position at element `at`
    /// (a multiple of their length).
    pub fn store(&mut self, at: usize, k: &[f32], v: &[f32]) -> Result<(), SessionError> {
        let n = k.len();
        let v = v.get(..n).ok_or(OUTSIDE)?;
        match self {
            KvCache::F32 { k: kc, v: vc } => {
                let (Some(kd), Some(vd)) = (kc.get_mut(at..at + n), vc.get_mut(at..at + n)) else {
                    return Err(OUTSIDE);
                };
                kd.copy_from_slice(k);
                vd.copy_from_slice(v);
            }
            KvCache::F16 { k: kc, v: vc } => {
                let (Some(kd), Some(vd)) = (kc.get_mut(at..at + n), vc.get_mut(at..at + n)) else {
                    return Err(OUTSIDE);
                };
                for (d, s) in kd.iter_mut().zip(k.iter()) {
                    *d = half::f16::from_f32(*s).to_bits();
                }
                for (d, s) in vd.iter_mut().zip(v.iter()) {
                    *d = half::f16::from_f32(*s).to_bits();
                }
            }
            KvCache::Q8 {
                k: kc,
                v: vc,
                ks,
                vs,
            } => {
                let g = q8_groups(n);
                let s = (at / n.max(1)) * g..(at / n.max(1) + 1) * g;
                let (Some(kd), Some(vd)) = (kc.get_mut(at..at + n), vc.get_mut(at..at + n)) else {
                    return Err(OUTSIDE);
                };
                let (Some(ksd), Some(vsd)) = (ks.get_mut(s.clone()), vs.get_mut(s)) else {
                    return Err(OUTSIDE);
                };
                quantize_q8(k, kd, ksd);
                quantize_q8(v, vd, vsd);
            }
        }
        Ok(())
    }

    /// Attention of `q` over the cached `rows` (elements) into `out`;
    /// `scores` is scratch, one entry per cached position (two for the Q8
    /// cache where query heads share a kv head, if it has them).
    pub fn attend(
        &self,
        heads: &Heads,
        q: &[f32],
        out: &mut [f32],
        scores: &mut [f32],
        rows: core::ops::Range<usize>,
    ) -> Result<(), SessionError> {
        let n = rows.len() / heads.kv_dim.max(1);
        match self {
            KvCache::F32 { k, v } => attend(
                heads,
                q,
                out,
                scores.get_mut(..n).ok_or(OUTSIDE)?,
                (k.get(rows.clone()), v.get(rows)),
                (Some(&[]), Some(&[])),
            ),
            KvCache::F16 { k, v } => attend(
                heads,
                q,
                out,
                scores.get_mut(..n).ok_or(OUTSIDE)?,
                (k.get(rows.clone()), v.get(rows)),
                (Some(&[]), Some(&[])),
            ),
            KvCache::Q8 { k, v, ks, vs } => {
                let kv_dim = heads.kv_dim.max(1);
                let g = q8_groups(heads.kv_dim);
                let s = rows.start / kv_dim * g..rows.end / kv_dim * g;
                let (Some(k), Some(v), Some(ks), Some(vs)) = (
                    k.get(rows.clone()),
                    v.get(rows),
                    ks.get(s.clone()),
                    vs.get(s),
                ) else {
                    return Err(OUTSIDE);
                };
                kernels::nn::attend_q8(heads, q, out, scores, n, (k, v), (ks, vs));
                Ok(())
            }
        }
    }
}

/// The f16 scale of a Q8 group whose largest magnitude is `amax`: `amax /
/// 127` rounded up to a half, so no value of the group lands past ±127 (a
/// scale rounded down would clip the largest ones by up to a step where
/// halves are subnormal); at most the largest finite half (a group beyond
/// ±127 · 65504 is clipped rather than stored with an infinite scale).
#[inline]
pub(crate) fn q8_scale(amax: f32) -> u16 {
    let exact = (amax / crate::quant::Q8_MAX).min(half::f16::MAX.to_f32());
    let h = half::f16::from_f32(exact).to_bits();
    // Positive finite halves order like their bits: the next one up is +1.
    if kernels::f16_bits_to_f32(h) < exact {
        h + 1
    } else {
        h
    }
}

/// Quantizes one position's row `x` into `q` (as long) and `scales` (one
/// per group of [`Q8_GROUP`]): `q = round(x / s)` with the scale `s` as
/// stored, so that `q · s` is within `s / 2` of `x`. A group whose scale
/// rounds to zero stores zeros; NaNs store 0 and infinities ±127 (with the
/// largest scale), so no input makes the cache undefined.
pub(crate) fn quantize_q8(x: &[f32], q: &mut [i8], scales: &mut [u16]) {
    for ((xg, qg), s) in x
        .chunks(Q8_GROUP)
        .zip(q.chunks_mut(Q8_GROUP))
        .zip(scales.iter_mut())
    {
        let amax = abs_max(xg);
        *s = q8_scale(amax);
        let scale = kernels::f16_bits_to_f32(*s);
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        // The pairs are the Q8 loop's by-product, not kept.
        let mut pairs = [0u32; Q8_GROUP / 2];
        if round_q8_pairs(xg, amax, inv, qg, &mut pairs) {
            continue;
        }
        for (o, v) in qg.iter_mut().zip(xg) {
            *o = round_q8(v * inv);
        }
    }
}

/// [`kernels::nn::attend`] over the cached rows and their scales, which must
/// lie inside the cache.
fn attend<T: CacheElem>(
    heads: &Heads,
    q: &[f32],
    out: &mut [f32],
    scores: &mut [f32],
    (keys, values): (Option<&[T]>, Option<&[T]>),
    (key_scales, value_scales): (Option<&[u16]>, Option<&[u16]>),
) -> Result<(), SessionError> {
    let (Some(keys), Some(values), Some(key_scales), Some(value_scales)) =
        (keys, values, key_scales, value_scales)
    else {
        return Err(OUTSIDE);
    };
    kernels::nn::attend(
        heads,
        q,
        out,
        scores,
        (keys, values),
        (key_scales, value_scales),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dequantize(q: &[i8], scales: &[u16]) -> [f32; 80] {
        let mut out = [0f32; 80];
        for (i, (o, v)) in out.iter_mut().zip(q).enumerate() {
            *o = *v as f32 * kernels::f16_bits_to_f32(scales[i / Q8_GROUP]);
        }
        out
    }

    /// Every value comes back within half its group's step (the step being
    /// the stored f16 scale), with a short last group of its own scale.
    #[test]
    fn q8_round_trip_is_within_half_a_step() {
        let mut rng = crate::sampling::Rng::new(5);
        for amp in [1e-3f32, 0.1, 1.0, 30.0, 4000.0] {
            for _ in 0..50 {
                // 80 = 2 · 32 + 16: a short last group, 10× larger.
                let x: [f32; 80] = core::array::from_fn(|i| {
                    (rng.next_f32() * 2.0 - 1.0) * amp * if i >= 64 { 10.0 } else { 1.0 }
                });
                let (mut q, mut s) = ([0i8; 80], [0u16; 3]);
                quantize_q8(&x, &mut q, &mut s);
                let y = dequantize(&q, &s);
                for (g, (xg, yg)) in x.chunks(Q8_GROUP).zip(y.chunks(Q8_GROUP)).enumerate() {
                    let step = kernels::f16_bits_to_f32(s[g]);
                    let amax = abs_max(xg);
                    // The stored scale is amax / 127 rounded up to a half:
                    // relative 2^-10 where halves are normal, the subnormal
                    // spacing 2^-24 below.
                    let over = step * 127.0 - amax;
                    assert!(over >= 0.0, "{amp} group {g}: scale rounded down");
                    assert!(
                        over <= amax * 1e-3 + 127.0 * 2f32.powi(-24),
                        "{amp} group {g}: scale {step} for max {amax}"
                    );
                    for (a, b) in xg.iter().zip(yg) {
                        assert!((a - b).abs() <= step * 0.5 * (1.0 + 1e-6), "{a} vs {b}");
                    }
                    // With a normal scale the largest magnitude is stored as
                    // ±127: the whole int8 range is used.
                    if step >= 6.2e-5 {
                        let qg = &q[g * Q8_GROUP..(g * Q8_GROUP + xg.len())];
                        assert_eq!(qg.iter().map(|v| v.unsigned_abs()).max(), Some(127));
                    }
                }
            }
        }
    }

    /// Zeros, values too small for an f16 scale, NaNs, infinities and values
    /// past the largest scale store something defined.
    #[test]
    fn q8_hostile_values_store_defined_rows() {
        let mut x = [0f32; 80];
        let (mut q, mut s) = ([1i8; 80], [1u16; 3]);
        quantize_q8(&x, &mut q, &mut s);
        assert!(q.iter().all(|v| *v == 0) && s.iter().all(|v| *v == 0));
        x[0] = 1e-12;
        x[1] = -1e-12;
        quantize_q8(&x, &mut q, &mut s);
        // The smallest half: the scale is never rounded down to zero.
        assert!(q.iter().all(|v| *v == 0) && s[0] == 1);
        x[32] = f32::NAN;
        x[33] = 2.0;
        x[64] = f32::INFINITY;
        x[65] = -f32::INFINITY;
        x[66] = 1.0;
        quantize_q8(&x, &mut q, &mut s);
        assert_eq!((q[32], q[33]), (0, 127));
        assert_eq!((q[64], q[65], q[66]), (127, -127, 0));
        assert_eq!(s[2], half::f16::MAX.to_bits());
        x[0] = 1e30;
        quantize_q8(&x, &mut q, &mut s);
        assert_eq!((q[0], s[0]), (127, half::f16::MAX.to_bits()));
        // Buffers shorter than the row drop the rest instead of failing.
        quantize_q8(&x, &mut q[..40], &mut s[..1]);
    }

    /// Attention over the Q8 cache is attention over an f32 cache that holds
    /// its dequantized values, up to the query's rounding to int8 and the
    /// exponential (within 3 % of the largest value magnitude: the scores are
    /// large here, so the softmax is sharp): heads
    /// inside one group, several heads per group, and heads across group
    /// boundaries.
    #[test]
    fn q8_attention_is_f32_attention_over_the_dequantized_cache() {
        extern crate std;
        use std::vec;
        let mut rng = crate::sampling::Rng::new(9);
        for (hd, n_heads, n_kv) in [(8usize, 8usize, 4usize), (16, 4, 2), (48, 6, 6), (12, 4, 2)] {
            let kv_dim = hd * n_kv;
            let (positions, groups) = (37usize, q8_groups(kv_dim));
            let elems = positions * kv_dim;
            let (mut k8, mut v8) = (vec![0i8; elems], vec![0i8; elems]);
            let (mut ks, mut vs) = (
                vec![0u16; positions * groups],
                vec![0u16; positions * groups],
            );
            let mut q8 = KvCache::Q8 {
                k: &mut k8,
                v: &mut v8,
                ks: &mut ks,
                vs: &mut vs,
            };
            for p in 0..positions {
                let row = |rng: &mut crate::sampling::Rng| -> std::vec::Vec<f32> {
                    (0..kv_dim)
                        .map(|i| (rng.next_f32() * 2.0 - 1.0) * (1.0 + (i / hd) as f32))
                        .collect()
                };
                let (k, v) = (row(&mut rng), row(&mut rng));
                q8.store(p * kv_dim, &k, &v).unwrap();
            }
            let KvCache::Q8 { k, v, ks, vs } = &q8 else {
                unreachable!()
            };
            let dequantized = |q: &[i8], s: &[u16]| -> std::vec::Vec<f32> {
                q.iter()
                    .enumerate()
                    .map(|(i, x)| {
                        let g = i / kv_dim * groups + i % kv_dim / Q8_GROUP;
                        *x as f32 * kernels::f16_bits_to_f32(s[g])
                    })
                    .collect()
            };
            let (mut kf, mut vf) = (dequantized(k, ks), dequantized(v, vs));
            let vmax = vf.iter().fold(0f32, |m, x| m.max(x.abs()));
            let f32_cache = KvCache::F32 {
                k: &mut kf,
                v: &mut vf,
            };
            let heads = Heads {
                hd,
                kv_dim,
                group_heads: n_heads / n_kv,
                scale: 1.0 / libm::sqrtf(hd as f32),
            };
            let q: std::vec::Vec<f32> = (0..n_heads * hd)
                .map(|_| (rng.next_f32() * 2.0 - 1.0) * 2.0)
                .collect();
            for n in [1, 2, 9, positions] {
                let (mut want, mut got) = (vec![0f32; n_heads * hd], vec![1f32; n_heads * hd]);
                let mut scores = vec![0f32; n];
                f32_cache
                    .attend(&heads, &q, &mut want, &mut scores, 0..n * kv_dim)
                    .unwrap();
                q8.attend(&heads, &q, &mut got, &mut scores, 0..n * kv_dim)
                    .unwrap();
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 0.03 * vmax,
                        "head size {hd}, {n} positions: {g} vs {w}"
                    );
                }
            }
            // Rows past the cache are an error, not a panic.
            let mut scores = vec![0f32; positions + 1];
            let mut out = vec![0f32; n_heads * hd];
            assert!(q8
                .attend(
                    &heads,
                    &q,
                    &mut out,
                    &mut scores,
                    0..(positions + 1) * kv_dim
                )
                .is_err());
            assert!(q8
                .store(positions * kv_dim, &q[..kv_dim], &q[..kv_dim])
                .is_err());
        }
    }

    #[test]
    fn names_round_trip() {
        for k in [KvDType::F32, KvDType::F16, KvDType::Q8] {
            assert_eq!(KvDType::from_name(k.name()), Some(k));
            assert_eq!(KvDType::from_name(&k.name().to_ascii_uppercase()), Some(k));
        }
        assert_eq!(KvDType::from_name("q4"), None);
    }
}
