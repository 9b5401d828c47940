//! The AVX2 Q4 matvec over the split activations.

use core::arch::x86_64::*;

use super::rows::{rows, GroupSums, Matrix};
use crate::kernels::view::Scales;

/// Q4 matvec of the rows of `m`, reading the split activations (per
/// group: its even elements, then its odd ones). Nibbles are `q + 8`, so
/// each group is `Σ nibble·x − 8 · Σ x` as in the portable code. Returns
/// false when the activations are shorter than a row.
pub(super) fn matvec_q4<S: Scales>(
    out: &mut [f32],
    m: &Matrix,
    scales: &S,
    split: &[i8],
    xs: &[f32],
    xsum: &[i32],
) -> bool {
    let gpr = m.gpr();
    if split.len() < m.cols.div_ceil(2) * 2
        || xs.len() < gpr
        || xsum.len() < gpr
        || out.len() < m.rows
    {
        return false;
    }
    // SAFETY: AVX2 is present and `m` holds its rows (`Matrix::fit`);
    // `split` holds `cols` activations (rounded up to even), `xs` and
    // `xsum` `gpr` entries and `out` `rows` (checked above).
    unsafe {
        matvec_q4_avx2(
            m,
            scales,
            split.as_ptr() as *const u8,
            xsum.as_ptr(),
            xs.as_ptr(),
            out.as_mut_ptr(),
        )
    };
    true
}

#[target_feature(enable = "avx2,f16c")]
unsafe fn matvec_q4_avx2<S: Scales>(
    m: &Matrix,
    scales: &S,
    split: *const u8,
    xsum: *const i32,
    xs: *const f32,
    out: *mut f32,
) {
    let k = Q4 {
        x: split,
        xsum,
        group: m.group,
        half: m.group / 2,
        chunks: m.group / 32,
        ones: _mm256_set1_epi16(1),
        mask: _mm256_set1_epi8(0x0f),
    };
    rows(&k, m, scales, xs, out);
}

/// Q4 group sums: nibbles `q + 8` against the split activations `x`, less
/// `8 · Σ x` of the group (`xsum`), groups of a multiple of 32.
struct Q4 {
    x: *const u8,
    xsum: *const i32,
    group: usize,
    /// Bytes of a group (`group / 2`).
    half: usize,
    chunks: usize,
    ones: __m256i,
    mask: __m256i,
}

impl GroupSums for Q4 {
    #[inline(always)]
    fn row_bytes(&self, cols: usize) -> usize {
        cols.div_ceil(2)
    }

    #[inline(always)]
    fn chunks(&self) -> usize {
        self.chunks
    }

    /// The split activations of chunk `c` of group `g`: 16 evens, then 16 odds.
    #[inline(always)]
    unsafe fn x(&self, g: usize, c: usize) -> __m256i {
        let base = self.x.add(g * self.group + c * 16);
        _mm256_set_m128i(
            _mm_loadu_si128(base.add(self.half) as *const __m128i),
            _mm_loadu_si128(base as *const __m128i),
        )
    }

    /// `Σ nibble·x` of 16 weight bytes (32 nibbles) against 16 even and 16
    /// odd activations, as 8 i32 lanes (pair sums ≤ 2 · 15 · 127).
    #[inline(always)]
    unsafe fn dot(&self, w: *const u8, g: usize, c: usize, x: __m256i) -> __m256i {
        let b = _mm_loadu_si128(w.add(g * self.half + c * 16) as *const __m128i);
        let both = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
        let nib = _mm256_and_si256(both, self.mask);
        _mm256_madd_epi16(_mm256_maddubs_epi16(nib, x), self.ones)
    }

    #[inline(always)]
    unsafe fn bias(&self, g: usize) -> i32 {
        8 * *self.xsum.add(g)
    }

    /// `Σ nibble·x` of a short last group of `n` elements: its `ceil(n / 2)`
    /// bytes against its split activations (`ceil(n / 2)` evens, then as
    /// many odds, the last odd a zero pad when `n` is odd), as in the
    /// portable code.
    #[inline(always)]
    unsafe fn short(&self, w: *const u8, g: usize, n: usize) -> i32 {
        let (w, x) = (w.add(g * self.half), self.x.add(g * self.group));
        let bytes = n.div_ceil(2);
        let mut s = 0i32;
        for i in 0..bytes {
            let b = *w.add(i);
            let e = *x.add(i) as i8 as i32;
            let o = *x.add(bytes + i) as i8 as i32;
            s += (b & 0x0f) as i32 * e + (b >> 4) as i32 * o;
        }
        s - self.bias(g)
    }
}
