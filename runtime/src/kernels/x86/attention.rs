//! AVX2 attention heads over an f32, f16 (F16C) or q8 KV cache, and softmax.

use core::arch::x86_64::*;

use super::{avx2, f16c, lanes};
use crate::kernels::portable::combine;
use crate::kernels::view::Head;
use crate::kernels::LANES;

/// A KV cache element type: loads 8 consecutive elements as the f32 values
/// the portable code uses ([`crate::kernels::nn::CacheElem`]).
pub(crate) trait KvElem: crate::kernels::nn::CacheElem {
    /// # Safety
    /// `p` points at 8 readable elements; the CPU has AVX2 and F16C. `scale`
    /// is their group's scale (Q8; the float elements ignore it).
    unsafe fn load8(p: *const Self, scale: f32) -> __m256;
    fn usable() -> bool;
}

impl KvElem for f32 {
    #[inline(always)]
    unsafe fn load8(p: *const f32, _: f32) -> __m256 {
        _mm256_loadu_ps(p)
    }
    fn usable() -> bool {
        avx2()
    }
}

impl KvElem for u16 {
    #[inline(always)]
    unsafe fn load8(p: *const u16, _: f32) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }
    fn usable() -> bool {
        f16c()
    }
}

/// The cached rows' group scales as the kernels read them: one per group of
/// `T::GROUP` values of each row (none for the float caches).
#[derive(Clone, Copy)]
struct RowScales<'a, T> {
    scales: &'a [u16],
    groups: usize,
    _elem: core::marker::PhantomData<T>,
}

impl<'a, T: KvElem> RowScales<'a, T> {
    fn new(scales: &'a [u16], kv_dim: usize) -> Self {
        let groups = if T::GROUP == 0 {
            0
        } else {
            kv_dim.div_ceil(T::GROUP)
        };
        Self {
            scales,
            groups,
            _elem: core::marker::PhantomData,
        }
    }

    /// Whether every one of `positions` rows has its scales.
    fn cover(&self, positions: usize) -> bool {
        T::GROUP == 0 || self.scales.len() >= positions.saturating_mul(self.groups)
    }

    /// The scale of element `first` of row `p` (eight elements from an
    /// offset that is a multiple of 8 share a group of 32), converted by
    /// F16C, which is exact like the portable conversion.
    ///
    /// # Safety
    /// The CPU has F16C ([`avx2`] checks it too).
    #[inline(always)]
    unsafe fn at(&self, p: usize, first: usize) -> f32 {
        if T::GROUP == 0 {
            return 0.0;
        }
        self.scales
            .get(p * self.groups + first / T::GROUP)
            .map_or(0.0, |s| {
                _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(*s))))
            })
    }
}

/// One attention head: `scores[p] = dot(q, key p) · scale` for every cached
/// position, softmax, then `out = Σ_p scores[p] · value p` ([`Head`]). Same
/// sums as the portable code (8 lanes per dot product, combined in the fixed
/// order; each output element summed over positions in order). Needs
/// `q.len() % 8 == 0`; returns false (nothing done) when it does not apply.
#[inline(always)]
pub(crate) fn attend_head<T: KvElem>(h: &Head<'_, T>, out: &mut [f32], scores: &mut [f32]) -> bool {
    let (q, n, hd) = (h.q, scores.len(), h.q.len());
    let (ks, vs) = (
        RowScales::<T>::new(h.key_scales, h.kv_dim),
        RowScales::<T>::new(h.value_scales, h.kv_dim),
    );
    // Eight elements from a multiple of 8 (`off` and `hd` are, for the
    // kernel to apply) never straddle two groups of 32.
    if !h.fits(out, n, LANES)
        || !T::usable()
        || !ks.cover(n)
        || !vs.cover(n)
        || !(T::GROUP == 0 || (T::GROUP.is_multiple_of(LANES) && h.off.is_multiple_of(LANES)))
    {
        return false;
    }
    let (keys, values, kv_dim, off) = (h.keys, h.values, h.kv_dim, h.off);
    // SAFETY: the CPU features are present and every row `p < n` of
    // `kv_dim` elements lies inside `keys` and `values` (checked above).
    unsafe {
        scores_avx2(q, scores, keys.as_ptr(), ks, kv_dim, off, h.scale);
    }
    // SAFETY: AVX2 is present (implied by `T::usable`).
    unsafe { softmax_avx2(scores) };
    // SAFETY: as above; `out` has `hd` entries.
    unsafe {
        values_avx2(
            scores,
            values.as_ptr(),
            vs,
            kv_dim,
            off,
            out.as_mut_ptr(),
            hd,
        );
    }
    true
}

/// The 8 lane sums of `q · k` over `n8` chunks of 8 (chunk `c` with the
/// scale `scale(c)`).
#[inline(always)]
unsafe fn key_dot<T: KvElem>(
    qp: *const f32,
    n8: usize,
    k: *const T,
    scale: impl Fn(usize) -> f32,
) -> __m256 {
    let mut acc = _mm256_setzero_ps();
    for c in 0..n8 {
        acc = _mm256_add_ps(
            acc,
            _mm256_mul_ps(
                _mm256_loadu_ps(qp.add(c * LANES)),
                T::load8(k.add(c * LANES), scale(c)),
            ),
        );
    }
    acc
}

/// [`crate::kernels::softmax`] compiled for AVX2 (the same operations: element-wise
/// math and fixed-order lane sums, so the same bits). False without AVX2.
pub fn softmax(x: &mut [f32]) -> bool {
    if !avx2() {
        return false;
    }
    // SAFETY: AVX2 is present.
    unsafe { softmax_avx2(x) };
    true
}

#[target_feature(enable = "avx2,f16c")]
unsafe fn softmax_avx2(x: &mut [f32]) {
    crate::kernels::portable::softmax_body(x);
}

#[target_feature(enable = "avx2,f16c")]
unsafe fn scores_avx2<T: KvElem>(
    q: &[f32],
    scores: &mut [f32],
    keys: *const T,
    ks: RowScales<'_, T>,
    kv_dim: usize,
    off: usize,
    scale: f32,
) {
    let n8 = q.len() / LANES;
    let qp = q.as_ptr();
    if n8 == 1 {
        let qv = _mm256_loadu_ps(qp);
        scores_loop(scores, scale, |p| {
            _mm256_mul_ps(qv, T::load8(keys.add(p * kv_dim + off), ks.at(p, off)))
        });
    } else {
        scores_loop(scores, scale, |p| {
            key_dot(qp, n8, keys.add(p * kv_dim + off), |c| {
                ks.at(p, off + c * LANES)
            })
        });
    }
}

/// `scores[p] = combine(lane sums of position p) · scale` for every `p`.
#[inline(always)]
unsafe fn scores_loop(scores: &mut [f32], scale: f32, dot: impl Fn(usize) -> __m256) {
    let n = scores.len();
    let sp = scores.as_mut_ptr();
    let sv = _mm256_set1_ps(scale);
    let mut p = 0;
    while p + 8 <= n {
        let (a0, a1, a2, a3) = (dot(p), dot(p + 1), dot(p + 2), dot(p + 3));
        let (a4, a5, a6, a7) = (dot(p + 4), dot(p + 5), dot(p + 6), dot(p + 7));
        // Lanes 0..4: (a0 + a1) + (a2 + a3) of positions p..p+4; lanes 4..8:
        // (a4 + a5) + (a6 + a7) of the same positions.
        let lo = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
        let hi = _mm256_hadd_ps(_mm256_hadd_ps(a4, a5), _mm256_hadd_ps(a6, a7));
        let first = _mm256_permute2f128_ps(lo, hi, 0x20);
        let second = _mm256_permute2f128_ps(lo, hi, 0x31);
        _mm256_storeu_ps(sp.add(p), _mm256_mul_ps(_mm256_add_ps(first, second), sv));
        p += 8;
    }
    while p < n {
        *sp.add(p) = combine(lanes(dot(p))) * scale;
        p += 1;
    }
}

#[target_feature(enable = "avx2,f16c")]
unsafe fn values_avx2<T: KvElem>(
    scores: &[f32],
    values: *const T,
    vs: RowScales<'_, T>,
    kv_dim: usize,
    off: usize,
    out: *mut f32,
    hd: usize,
) {
    let mut c = 0;
    while c + 2 * LANES <= hd {
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for (p, s) in scores.iter().enumerate() {
            let v = values.add(p * kv_dim + off + c);
            let s = _mm256_set1_ps(*s);
            let (s0, s1) = (vs.at(p, off + c), vs.at(p, off + c + LANES));
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(s, T::load8(v, s0)));
            a1 = _mm256_add_ps(a1, _mm256_mul_ps(s, T::load8(v.add(LANES), s1)));
        }
        _mm256_storeu_ps(out.add(c), a0);
        _mm256_storeu_ps(out.add(c + LANES), a1);
        c += 2 * LANES;
    }
    while c < hd {
        let mut a0 = _mm256_setzero_ps();
        for (p, s) in scores.iter().enumerate() {
            let v = values.add(p * kv_dim + off + c);
            let v = T::load8(v, vs.at(p, off + c));
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(_mm256_set1_ps(*s), v));
        }
        _mm256_storeu_ps(out.add(c), a0);
        c += LANES;
    }
}
