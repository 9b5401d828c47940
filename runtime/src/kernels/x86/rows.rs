//! The AVX2 row driver the Q8 and Q4 matvecs share: four rows per pass
//! (their group sums side by side in one `__m128`), then the rows left one
//! at a time; each group's exact integer sum is converted, multiplied by
//! `w_scale · x_scale` and added in group order, as the portable loop does.
//! What differs between the formats is [`GroupSums`].

use core::arch::x86_64::*;

use super::{hsum_epi32x4, scales4};
use crate::kernels::view::{Scales, TensorView};

/// The exact integer sums of one quantized format's groups against the
/// activations it holds, chunk by chunk of 32 elements (bias terms such as
/// Q4's `− 8 · Σ x` included).
pub(super) trait GroupSums {
    /// Bytes of a row of `cols` weights.
    fn row_bytes(&self, cols: usize) -> usize;
    /// Chunks of 32 elements in a group.
    fn chunks(&self) -> usize;
    /// The activations of chunk `c` of group `g` (loaded once for four rows).
    unsafe fn x(&self, g: usize, c: usize) -> __m256i;
    /// `Σ w·x` of chunk `c` of group `g` of the row at `w` against its
    /// activations `x`, as 8 i32 lanes.
    unsafe fn dot(&self, w: *const u8, g: usize, c: usize, x: __m256i) -> __m256i;
    /// What group `g`'s sum has subtracted.
    unsafe fn bias(&self, g: usize) -> i32;
    /// The short last group `g` (`len` elements) of the row at `w`.
    unsafe fn short(&self, w: *const u8, g: usize, len: usize) -> i32;

    /// Whole group `g` of the four rows at `w`, as lanes 0..3.
    #[inline(always)]
    unsafe fn four(&self, [w0, w1, w2, w3]: [*const u8; 4], g: usize) -> __m128i {
        let (mut i0, mut i1, mut i2, mut i3) = (
            _mm256_setzero_si256(),
            _mm256_setzero_si256(),
            _mm256_setzero_si256(),
            _mm256_setzero_si256(),
        );
        for c in 0..self.chunks() {
            let x = self.x(g, c);
            i0 = _mm256_add_epi32(i0, self.dot(w0, g, c, x));
            i1 = _mm256_add_epi32(i1, self.dot(w1, g, c, x));
            i2 = _mm256_add_epi32(i2, self.dot(w2, g, c, x));
            i3 = _mm256_add_epi32(i3, self.dot(w3, g, c, x));
        }
        _mm_sub_epi32(hsum_epi32x4(i0, i1, i2, i3), _mm_set1_epi32(self.bias(g)))
    }

    /// Whole group `g` of the row at `w`.
    #[inline(always)]
    unsafe fn one(&self, w: *const u8, g: usize) -> i32 {
        let mut i0 = _mm256_setzero_si256();
        for c in 0..self.chunks() {
            i0 = _mm256_add_epi32(i0, self.dot(w, g, c, self.x(g, c)));
        }
        hsum_epi32(i0) - self.bias(g)
    }
}

/// The weights of a matvec: `rows` rows of `cols` weights in groups of
/// `group` at `w`, `gpr` scales per row. (The scale table travels beside
/// it as a reference argument of its own, so the compiler knows the
/// outputs never overwrite it and keeps its address in a register.)
#[derive(Clone, Copy)]
pub(super) struct Matrix {
    pub w: *const u8,
    pub rows: usize,
    pub cols: usize,
    pub group: usize,
}

impl Matrix {
    /// The first rows of `w` (at most `max_rows`) that its data and
    /// `scales` hold whole, for groups of a nonzero multiple of 32; None
    /// where the kernels here do not apply (another group size, no
    /// columns, no AVX2).
    #[inline]
    pub fn fit<S: Scales>(w: &TensorView<'_>, scales: &S, max_rows: usize) -> Option<Self> {
        let (cols, group) = (w.cols(), w.group as usize);
        if group == 0 || !group.is_multiple_of(32) || cols == 0 || !super::avx2() {
            return None;
        }
        let rows = max_rows
            .min(w.data.len() / w.row_bytes())
            .min(scales.len() / cols.div_ceil(group));
        Some(Self {
            w: w.data.as_ptr(),
            rows,
            cols,
            group,
        })
    }

    /// Groups per row.
    pub fn gpr(&self) -> usize {
        self.cols.div_ceil(self.group)
    }
}

/// `out[r] = Σ_g sums(r, g) · (w_scale · xs[g])` for every row.
#[inline(always)]
pub(super) unsafe fn rows<K: GroupSums, S: Scales>(
    k: &K,
    m: &Matrix,
    scales: &S,
    xs: *const f32,
    out: *mut f32,
) {
    let (cols, group) = (m.cols, m.group);
    let (gpr, full) = (cols.div_ceil(group), cols / group);
    let short = cols - full * group;
    let rb = k.row_bytes(cols);
    let mut r = 0;
    while r + 4 <= m.rows {
        let w = four_rows(m.w.add(r * rb), rb);
        let mut acc = _mm_setzero_ps();
        for g in 0..full {
            let isum = _mm_cvtepi32_ps(k.four(w, g));
            let ws = scales4(scales, r * gpr + g, gpr);
            acc = _mm_add_ps(
                acc,
                _mm_mul_ps(isum, _mm_mul_ps(ws, _mm_set1_ps(*xs.add(g)))),
            );
        }
        let mut s = [0f32; 4];
        _mm_storeu_ps(s.as_mut_ptr(), acc);
        if short != 0 {
            add_short_group(k, m, scales, &mut s, w, r, *xs.add(full));
        }
        out.add(r).cast::<[f32; 4]>().write_unaligned(s);
        r += 4;
    }
    while r < m.rows {
        *out.add(r) = row(k, m, scales, m.w.add(r * rb), r, xs);
        r += 1;
    }
}

/// The four rows starting at `w0`, `rb` bytes apart.
#[inline(always)]
pub(super) unsafe fn four_rows(w0: *const u8, rb: usize) -> [*const u8; 4] {
    [w0, w0.add(rb), w0.add(2 * rb), w0.add(3 * rb)]
}

/// Adds the short last group of rows `r..r + 4` (weights at `w`) to their
/// sums `s`: exact integer sum, then `isum · (scale · sx)`, `sx` the
/// activation scale of that group.
#[inline(always)]
pub(super) unsafe fn add_short_group<K: GroupSums, S: Scales>(
    k: &K,
    m: &Matrix,
    scales: &S,
    s: &mut [f32; 4],
    w: [*const u8; 4],
    r: usize,
    sx: f32,
) {
    let (gpr, full) = (m.cols.div_ceil(m.group), m.cols / m.group);
    let len = m.cols - full * m.group;
    for (i, (sk, wr)) in s.iter_mut().zip(w).enumerate() {
        let isum = k.short(wr, full, len);
        *sk += isum as f32 * (scales.get((r + i) * gpr + full) * sx);
    }
}

/// One row `r` (weights at `w`), group by group.
#[inline(always)]
pub(super) unsafe fn row<K: GroupSums, S: Scales>(
    k: &K,
    m: &Matrix,
    scales: &S,
    w: *const u8,
    r: usize,
    xs: *const f32,
) -> f32 {
    let (cols, group) = (m.cols, m.group);
    let (gpr, full) = (cols.div_ceil(group), cols / group);
    let mut acc = 0f32;
    for g in 0..gpr {
        let isum = if g < full {
            k.one(w, g)
        } else {
            k.short(w, g, cols - g * group)
        };
        acc += isum as f32 * (scales.get(r * gpr + g) * *xs.add(g));
    }
    acc
}

/// The sum of the eight i32 lanes of `v`.
#[inline(always)]
pub(super) unsafe fn hsum_epi32(v: __m256i) -> i32 {
    let h = _mm256_hadd_epi32(v, v);
    let h = _mm256_hadd_epi32(h, h);
    _mm_cvtsi128_si32(_mm_add_epi32(
        _mm256_castsi256_si128(h),
        _mm256_extracti128_si256(h, 1),
    ))
}
