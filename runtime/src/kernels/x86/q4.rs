//! The AVX2 Q4 matvec over the split activations.

use core::arch::x86_64::*;

use super::{avx2, hsum_epi32x4, scales4};
use crate::kernels::view::Scales;

/// Q4 matvec over groups whose size is a multiple of 32, reading the split
/// activations (per group: its even elements, then its odd ones). Nibbles are
/// `q + 8`, so each group is `Σ nibble·x − 8 · Σ x` as in the portable code.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matvec_q4<S: Scales>(
    out: &mut [f32],
    data: &[u8],
    cols: usize,
    scales: &S,
    scale_count: usize,
    group: usize,
    split: &[i8],
    xs: &[f32],
    xsum: &[i32],
) -> bool {
    if group == 0 || !group.is_multiple_of(32) || cols == 0 || !avx2() {
        return false;
    }
    let gpr = cols.div_ceil(group);
    let rb = cols.div_ceil(2);
    if split.len() < rb * 2 || xs.len() < gpr || xsum.len() < gpr {
        return false;
    }
    let rows = out.len().min(data.len() / rb).min(scale_count / gpr);
    // SAFETY: AVX2 is present; `data` holds `rows` rows of `cols / 2`
    // bytes, the scale table `rows · gpr` entries, `split` `cols`, `xs` and
    // `xsum` `gpr` (checked above).
    unsafe {
        matvec_q4_avx2(
            out.as_mut_ptr(),
            rows,
            data.as_ptr(),
            cols,
            scales,
            group,
            split,
            xs,
            xsum,
        )
    };
    true
}

/// `Σ nibble·x` of 16 weight bytes (32 nibbles) against the matching 16
/// even and 16 odd activations, as 8 i32 lanes (pair sums ≤ 2 · 15 · 127).
#[inline(always)]
unsafe fn dot16_q4(w: *const u8, x: __m256i, mask: __m256i, ones: __m256i) -> __m256i {
    let b = _mm_loadu_si128(w as *const __m128i);
    let both = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
    let nib = _mm256_and_si256(both, mask);
    _mm256_madd_epi16(_mm256_maddubs_epi16(nib, x), ones)
}

/// The split activations of chunk `c` of group `g`: 16 evens, then 16 odds.
#[inline(always)]
unsafe fn xchunk_q4(xp: *const u8, group: usize, g: usize, c: usize) -> __m256i {
    let base = xp.add(g * group + c * 16);
    _mm256_set_m128i(
        _mm_loadu_si128(base.add(group / 2) as *const __m128i),
        _mm_loadu_si128(base as *const __m128i),
    )
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,f16c")]
unsafe fn matvec_q4_avx2<S: Scales>(
    out: *mut f32,
    rows: usize,
    w: *const u8,
    cols: usize,
    scales: &S,
    group: usize,
    split: &[i8],
    xs: &[f32],
    xsum: &[i32],
) {
    let gpr = cols.div_ceil(group);
    let full = cols / group;
    let rb = cols.div_ceil(2);
    let half = group / 2;
    let chunks = group / 32;
    let xp = split.as_ptr() as *const u8;
    let ones = _mm256_set1_epi16(1);
    let mask = _mm256_set1_epi8(0x0f);
    let mut r = 0;
    while r + 4 <= rows {
        let w0 = w.add(r * rb);
        let w1 = w0.add(rb);
        let w2 = w1.add(rb);
        let w3 = w2.add(rb);
        let mut acc = _mm_setzero_ps();
        for g in 0..full {
            let (mut i0, mut i1, mut i2, mut i3) = (
                _mm256_setzero_si256(),
                _mm256_setzero_si256(),
                _mm256_setzero_si256(),
                _mm256_setzero_si256(),
            );
            for c in 0..chunks {
                let o = g * half + c * 16;
                let xv = xchunk_q4(xp, group, g, c);
                i0 = _mm256_add_epi32(i0, dot16_q4(w0.add(o), xv, mask, ones));
                i1 = _mm256_add_epi32(i1, dot16_q4(w1.add(o), xv, mask, ones));
                i2 = _mm256_add_epi32(i2, dot16_q4(w2.add(o), xv, mask, ones));
                i3 = _mm256_add_epi32(i3, dot16_q4(w3.add(o), xv, mask, ones));
            }
            let bias = _mm_set1_epi32(8 * *xsum.get_unchecked(g));
            let isum = _mm_cvtepi32_ps(_mm_sub_epi32(hsum_epi32x4(i0, i1, i2, i3), bias));
            let ws = scales4(scales, r * gpr + g, gpr);
            let prod = _mm_mul_ps(ws, _mm_set1_ps(*xs.get_unchecked(g)));
            acc = _mm_add_ps(acc, _mm_mul_ps(isum, prod));
        }
        let mut s = [0f32; 4];
        _mm_storeu_ps(s.as_mut_ptr(), acc);
        if full < gpr {
            let len = cols - full * group;
            let (sx, bias) = (*xs.get_unchecked(full), 8 * *xsum.get_unchecked(full));
            for (k, (sk, wr)) in s.iter_mut().zip([w0, w1, w2, w3]).enumerate() {
                let isum = tail_q4(wr.add(full * half), xp.add(full * group), len) - bias;
                *sk += isum as f32 * (scales.get((r + k) * gpr + full) * sx);
            }
        }
        out.add(r).cast::<[f32; 4]>().write_unaligned(s);
        r += 4;
    }
    while r < rows {
        let w0 = w.add(r * rb);
        let mut acc = 0f32;
        for g in 0..gpr {
            let nib = if g < full {
                let mut i0 = _mm256_setzero_si256();
                for c in 0..chunks {
                    i0 = _mm256_add_epi32(
                        i0,
                        dot16_q4(
                            w0.add(g * half + c * 16),
                            xchunk_q4(xp, group, g, c),
                            mask,
                            ones,
                        ),
                    );
                }
                let h = _mm256_hadd_epi32(i0, i0);
                let h = _mm256_hadd_epi32(h, h);
                _mm_cvtsi128_si32(_mm_add_epi32(
                    _mm256_castsi256_si128(h),
                    _mm256_extracti128_si256(h, 1),
                ))
            } else {
                tail_q4(w0.add(g * half), xp.add(g * group), cols - g * group)
            };
            let isum = nib - 8 * *xsum.get_unchecked(g);
            acc += isum as f32 * (scales.get(r * gpr + g) * *xs.get_unchecked(g));
        }
        *out.add(r) = acc;
        r += 1;
    }
}

/// `Σ nibble·x` of a short last group of `n` elements: its `ceil(n / 2)`
/// bytes against its split activations (`ceil(n / 2)` evens, then as many
/// odds, the last odd a zero pad when `n` is odd), as in the portable code.
#[inline(always)]
unsafe fn tail_q4(w: *const u8, x: *const u8, n: usize) -> i32 {
    let bytes = n.div_ceil(2);
    let mut s = 0i32;
    for i in 0..bytes {
        let b = *w.add(i);
        let e = *x.add(i) as i8 as i32;
        let o = *x.add(bytes + i) as i8 as i32;
        s += (b & 0x0f) as i32 * e + (b >> 4) as i32 * o;
    }
    s
}
