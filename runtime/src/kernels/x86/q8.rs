//! AVX2 Q8 kernels: one token's matvec, and several tokens' at once (each
//! block of weights read once for all of them).

use core::arch::x86_64::*;

use super::rows::{add_short_group, four_rows, row, rows, GroupSums, Matrix};
use super::{hsum_epi32x4, scales4};
use crate::kernels::activations::TokenActivations;
use crate::kernels::view::{Scales, TensorView};

/// Q8 matvec of the rows of `m` (a short last group of a row goes through
/// the portable exact group sum): `xq` holds the quantized activations
/// (values in ±127), `xs` their group scales. Returns false when they are
/// shorter than a row.
pub(super) fn matvec_q8<S: Scales>(
    out: &mut [f32],
    m: &Matrix,
    scales: &S,
    xq: &[i8],
    xs: &[f32],
) -> bool {
    if xq.len() < m.cols || xs.len() < m.gpr() || out.len() < m.rows {
        return false;
    }
    // SAFETY: AVX2 is present and `m` holds its rows (`Matrix::fit`); `xq`
    // holds `cols` activations, `xs` `gpr` scales and `out` `rows` entries
    // (checked above).
    unsafe {
        matvec_q8_avx2(
            m,
            scales,
            xq.as_ptr() as *const u8,
            xs.as_ptr(),
            out.as_mut_ptr(),
        )
    };
    true
}

#[target_feature(enable = "avx2,f16c")]
unsafe fn matvec_q8_avx2<S: Scales>(
    m: &Matrix,
    scales: &S,
    xq: *const u8,
    xs: *const f32,
    out: *mut f32,
) {
    rows(&Q8::new(xq, m.group), m, scales, xs, out);
}

/// Q8 group sums: int8 weights against int8 activations `x`, groups of a
/// multiple of 32.
struct Q8 {
    x: *const u8,
    group: usize,
    chunks: usize,
    ones: __m256i,
}

impl Q8 {
    #[inline(always)]
    unsafe fn new(x: *const u8, group: usize) -> Self {
        Self {
            x,
            group,
            chunks: group / 32,
            ones: _mm256_set1_epi16(1),
        }
    }
}

impl GroupSums for Q8 {
    #[inline(always)]
    fn row_bytes(&self, cols: usize) -> usize {
        cols
    }

    #[inline(always)]
    fn chunks(&self) -> usize {
        self.chunks
    }

    #[inline(always)]
    unsafe fn x(&self, g: usize, c: usize) -> __m256i {
        _mm256_loadu_si256(self.x.add(g * self.group + c * 32) as *const __m256i)
    }

    #[inline(always)]
    unsafe fn dot(&self, w: *const u8, g: usize, c: usize, x: __m256i) -> __m256i {
        dot32_i8(w.add(g * self.group + c * 32), x, self.ones)
    }

    #[inline(always)]
    unsafe fn bias(&self, _: usize) -> i32 {
        0
    }

    #[inline(always)]
    unsafe fn short(&self, w: *const u8, g: usize, len: usize) -> i32 {
        let start = g * self.group;
        let (w, x) = (w.add(start), self.x.add(start));
        let mut s = 0i32;
        for i in 0..len {
            s += (*w.add(i) as i8 as i32) * (*x.add(i) as i8 as i32);
        }
        s
    }
}

/// `Σ w·x` over 32 bytes of int8 weights and activations, as 8 i32 lanes.
/// `|w| ≤ 128` and `|x| ≤ 127`, so the i16 pair sums of `maddubs` never
/// saturate (≤ 2 · 128 · 127).
#[inline(always)]
unsafe fn dot32_i8(w: *const u8, x: __m256i, ones: __m256i) -> __m256i {
    let wv = _mm256_loadu_si256(w as *const __m256i);
    let p = _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(x, wv));
    _mm256_madd_epi16(p, ones)
}

/// Q8 matmul of several tokens for 32-element groups (the default export):
/// `out[t · out_stride + r] = row r · token t`. Each group's four weight rows
/// are loaded, made absolute and their scales decoded once for up to eight
/// tokens, whose independent accumulator chains then overlap; per token the
/// arithmetic is exactly that of [`matvec_q8`], so every output is bit for bit
/// the single-token one. Returns false when it does not apply.
pub(crate) fn matmul_q8<S: Scales>(
    out: &mut [f32],
    out_stride: usize,
    w: &TensorView<'_>,
    a: &TokenActivations<'_>,
    scales: &S,
) -> bool {
    let tokens = a.tokens;
    let Some(m) = Matrix::fit(w, scales, out_stride) else {
        return false;
    };
    let (cols, gpr) = (m.cols, m.gpr());
    if m.group != 32 || tokens == 0 {
        return false;
    }
    let last = tokens - 1;
    if out.len() < last * out_stride + m.rows
        || a.q.len() < last * a.q_stride + cols
        || a.scales.len() < last * a.s_stride + gpr
    {
        return false;
    }
    let mut t = 0;
    while t < tokens {
        // SAFETY: AVX2 is present; tokens t..t + 8 (or fewer) have `cols`
        // activations and `gpr` scales at their strides and `rows` outputs
        // at `out_stride` (checked above); `data` holds `rows` rows of
        // `cols` bytes and the scale table `rows · gpr` entries.
        let b = unsafe {
            Batch {
                out: out.as_mut_ptr().add(t * out_stride),
                out_stride,
                xq: a.q.as_ptr().add(t * a.q_stride) as *const u8,
                q_stride: a.q_stride,
                xs: a.scales.as_ptr().add(t * a.s_stride),
                s_stride: a.s_stride,
            }
        };
        let n = (tokens - t).min(8);
        // SAFETY: as above.
        unsafe {
            match n {
                8 => matmul_q8_g32_avx2::<S, 8>(&m, scales, &b),
                7 => matmul_q8_g32_avx2::<S, 7>(&m, scales, &b),
                6 => matmul_q8_g32_avx2::<S, 6>(&m, scales, &b),
                5 => matmul_q8_g32_avx2::<S, 5>(&m, scales, &b),
                4 => matmul_q8_g32_avx2::<S, 4>(&m, scales, &b),
                3 => matmul_q8_g32_avx2::<S, 3>(&m, scales, &b),
                2 => matmul_q8_g32_avx2::<S, 2>(&m, scales, &b),
                _ => matmul_q8_g32_avx2::<S, 1>(&m, scales, &b),
            }
        }
        t += n;
    }
    true
}

/// Tokens' activations and outputs: token `j`'s values at `xq + j ·
/// q_stride`, its scales at `xs + j · s_stride`, its outputs at `out + j ·
/// out_stride`.
struct Batch {
    out: *mut f32,
    out_stride: usize,
    xq: *const u8,
    q_stride: usize,
    xs: *const f32,
    s_stride: usize,
}

#[target_feature(enable = "avx2,f16c")]
unsafe fn matmul_q8_g32_avx2<S: Scales, const T: usize>(m: &Matrix, scales: &S, b: &Batch) {
    const GROUP: usize = 32;
    let cols = m.cols;
    let gpr = cols.div_ceil(GROUP);
    let full = cols / GROUP;
    let ones = _mm256_set1_epi16(1);
    let (xq, xs) = (b.xq, b.xs);
    let mut r = 0;
    while r + 4 <= m.rows {
        let w = four_rows(m.w.add(r * cols), cols);
        let [w0, w1, w2, w3] = w;
        let mut acc = [_mm_setzero_ps(); T];
        for g in 0..full {
            let o = g * GROUP;
            let (v0, v1, v2, v3) = (
                _mm256_loadu_si256(w0.add(o) as *const __m256i),
                _mm256_loadu_si256(w1.add(o) as *const __m256i),
                _mm256_loadu_si256(w2.add(o) as *const __m256i),
                _mm256_loadu_si256(w3.add(o) as *const __m256i),
            );
            let (a0, a1, a2, a3) = (
                _mm256_abs_epi8(v0),
                _mm256_abs_epi8(v1),
                _mm256_abs_epi8(v2),
                _mm256_abs_epi8(v3),
            );
            let ws = scales4(scales, r * gpr + g, gpr);
            for (j, acc) in acc.iter_mut().enumerate() {
                let xv = _mm256_loadu_si256(xq.add(j * b.q_stride + o) as *const __m256i);
                let dot = |a, v| {
                    _mm256_madd_epi16(_mm256_maddubs_epi16(a, _mm256_sign_epi8(xv, v)), ones)
                };
                let isum = _mm_cvtepi32_ps(hsum_epi32x4(
                    dot(a0, v0),
                    dot(a1, v1),
                    dot(a2, v2),
                    dot(a3, v3),
                ));
                let prod = _mm_mul_ps(ws, _mm_set1_ps(*xs.add(j * b.s_stride + g)));
                *acc = _mm_add_ps(*acc, _mm_mul_ps(isum, prod));
            }
        }
        for (j, acc) in acc.iter().enumerate() {
            let mut s = [0f32; 4];
            _mm_storeu_ps(s.as_mut_ptr(), *acc);
            if full < gpr {
                let k = Q8::new(xq.add(j * b.q_stride), GROUP);
                let sx = *xs.add(j * b.s_stride + full);
                add_short_group(&k, m, scales, &mut s, w, r, sx);
            }
            b.out
                .add(j * b.out_stride + r)
                .cast::<[f32; 4]>()
                .write_unaligned(s);
        }
        r += 4;
    }
    while r < m.rows {
        for j in 0..T {
            let k = Q8::new(xq.add(j * b.q_stride), GROUP);
            *b.out.add(j * b.out_stride + r) =
                row(&k, m, scales, m.w.add(r * cols), r, xs.add(j * b.s_stride));
        }
        r += 1;
    }
}
