//! AVX2 Q8 kernels: one token's matvec, and several tokens' at once (each
//! block of weights read once for all of them).

use core::arch::x86_64::*;

use super::{avx2, hsum_epi32x4, scales4};
use crate::kernels::view::Scales;

/// Q8 matvec over groups whose size is a multiple of 32 (a short last group
/// of a row goes through `tail`, the portable exact group sum).
///
/// `xq` holds the quantized activations (`cols` entries, values in ±127),
/// `xs` their group scales; `scales` the weight scales, `gpr` per row.
/// Returns false when it does not apply.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matvec_q8<S: Scales>(
    out: &mut [f32],
    data: &[u8],
    cols: usize,
    scales: &S,
    scale_count: usize,
    group: usize,
    xq: &[i8],
    xs: &[f32],
) -> bool {
    if group == 0 || !group.is_multiple_of(32) || cols == 0 || xq.len() < cols || !avx2() {
        return false;
    }
    let gpr = cols.div_ceil(group);
    if xs.len() < gpr {
        return false;
    }
    let rows = out.len().min(data.len() / cols).min(scale_count / gpr);
    // SAFETY: AVX2 is present; `data` holds `rows` rows of `cols` bytes, the
    // scale table `rows · gpr` entries, `xq` `cols` and `xs` `gpr` (checked).
    unsafe {
        matvec_q8_avx2(
            out.as_mut_ptr(),
            rows,
            data.as_ptr(),
            cols,
            scales,
            group,
            xq,
            xs,
        )
    };
    true
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

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,f16c")]
unsafe fn matvec_q8_avx2<S: Scales>(
    out: *mut f32,
    rows: usize,
    w: *const u8,
    cols: usize,
    scales: &S,
    group: usize,
    xq: &[i8],
    xs: &[f32],
) {
    let gpr = cols.div_ceil(group);
    let full = cols / group;
    let chunks = group / 32;
    let xp = xq.as_ptr() as *const u8;
    let ones = _mm256_set1_epi16(1);
    let mut r = 0;
    while r + 4 <= rows {
        let w0 = w.add(r * cols);
        let w1 = w0.add(cols);
        let w2 = w1.add(cols);
        let w3 = w2.add(cols);
        let mut acc = _mm_setzero_ps();
        for g in 0..full {
            let (mut i0, mut i1, mut i2, mut i3) = (
                _mm256_setzero_si256(),
                _mm256_setzero_si256(),
                _mm256_setzero_si256(),
                _mm256_setzero_si256(),
            );
            for c in 0..chunks {
                let o = g * group + c * 32;
                let xv = _mm256_loadu_si256(xp.add(o) as *const __m256i);
                i0 = _mm256_add_epi32(i0, dot32_i8(w0.add(o), xv, ones));
                i1 = _mm256_add_epi32(i1, dot32_i8(w1.add(o), xv, ones));
                i2 = _mm256_add_epi32(i2, dot32_i8(w2.add(o), xv, ones));
                i3 = _mm256_add_epi32(i3, dot32_i8(w3.add(o), xv, ones));
            }
            let isum = _mm_cvtepi32_ps(hsum_epi32x4(i0, i1, i2, i3));
            let ws = scales4(scales, r * gpr + g, gpr);
            let prod = _mm_mul_ps(ws, _mm_set1_ps(*xs.get_unchecked(g)));
            acc = _mm_add_ps(acc, _mm_mul_ps(isum, prod));
        }
        let mut s = [0f32; 4];
        _mm_storeu_ps(s.as_mut_ptr(), acc);
        if full < gpr {
            let sx = *xs.get_unchecked(full);
            add_short_group_q8(&mut s, [w0, w1, w2, w3], r, cols, group, scales, xp, sx);
        }
        out.add(r).cast::<[f32; 4]>().write_unaligned(s);
        r += 4;
    }
    while r < rows {
        *out.add(r) = row_q8(
            w.add(r * cols),
            r,
            cols,
            scales,
            group,
            xp,
            xs.as_ptr(),
            ones,
        );
        r += 1;
    }
}

/// Q8 matmul of several tokens for 32-element groups (the default export):
/// `out[t · out_stride + r] = row r · token t`. Each group's four weight rows
/// are loaded, made absolute and their scales decoded once for up to eight
/// tokens, whose independent accumulator chains then overlap; per token the
/// arithmetic is exactly that of [`matvec_q8`], so every output is bit for bit
/// the single-token one. `xq`/`xs` hold token `t`'s activations at
/// `t · q_stride` / `t · s_stride`. Returns false when it does not apply.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_q8<S: Scales>(
    out: &mut [f32],
    out_stride: usize,
    tokens: usize,
    data: &[u8],
    cols: usize,
    scales: &S,
    scale_count: usize,
    group: usize,
    xq: &[i8],
    q_stride: usize,
    xs: &[f32],
    s_stride: usize,
) -> bool {
    if group != 32 || cols == 0 || tokens == 0 || !avx2() {
        return false;
    }
    let gpr = cols.div_ceil(group);
    let rows = out_stride.min(data.len() / cols).min(scale_count / gpr);
    let last = tokens - 1;
    if out.len() < last * out_stride + rows
        || xq.len() < last * q_stride + cols
        || xs.len() < last * s_stride + gpr
    {
        return false;
    }
    let mut t = 0;
    while t < tokens {
        let n = (tokens - t).min(8);
        // SAFETY: AVX2 is present; tokens t..t + n have `cols` activations
        // and `gpr` scales at their strides and `rows` outputs at
        // `out_stride` (checked above); `data` holds `rows` rows of `cols`
        // bytes and the scale table `rows · gpr` entries.
        unsafe {
            let o = out.as_mut_ptr().add(t * out_stride);
            let x = xq.as_ptr().add(t * q_stride) as *const u8;
            let s = xs.as_ptr().add(t * s_stride);
            let w = data.as_ptr();
            match n {
                8 => matmul_q8_g32_avx2::<S, 8>(
                    o, out_stride, rows, w, cols, scales, x, q_stride, s, s_stride,
                ),
                7 => matmul_q8_g32_avx2::<S, 7>(
                    o, out_stride, rows, w, cols, scales, x, q_stride, s, s_stride,
                ),
                6 => matmul_q8_g32_avx2::<S, 6>(
                    o, out_stride, rows, w, cols, scales, x, q_stride, s, s_stride,
                ),
                5 => matmul_q8_g32_avx2::<S, 5>(
                    o, out_stride, rows, w, cols, scales, x, q_stride, s, s_stride,
                ),
                4 => matmul_q8_g32_avx2::<S, 4>(
                    o, out_stride, rows, w, cols, scales, x, q_stride, s, s_stride,
                ),
                3 => matmul_q8_g32_avx2::<S, 3>(
                    o, out_stride, rows, w, cols, scales, x, q_stride, s, s_stride,
                ),
                2 => matmul_q8_g32_avx2::<S, 2>(
                    o, out_stride, rows, w, cols, scales, x, q_stride, s, s_stride,
                ),
                _ => matmul_q8_g32_avx2::<S, 1>(
                    o, out_stride, rows, w, cols, scales, x, q_stride, s, s_stride,
                ),
            }
        }
        t += n;
    }
    true
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,f16c")]
unsafe fn matmul_q8_g32_avx2<S: Scales, const T: usize>(
    out: *mut f32,
    out_stride: usize,
    rows: usize,
    w: *const u8,
    cols: usize,
    scales: &S,
    xq: *const u8,
    q_stride: usize,
    xs: *const f32,
    s_stride: usize,
) {
    const GROUP: usize = 32;
    let gpr = cols.div_ceil(GROUP);
    let full = cols / GROUP;
    let ones = _mm256_set1_epi16(1);
    let mut r = 0;
    while r + 4 <= rows {
        let w0 = w.add(r * cols);
        let w1 = w0.add(cols);
        let w2 = w1.add(cols);
        let w3 = w2.add(cols);
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
                let xv = _mm256_loadu_si256(xq.add(j * q_stride + o) as *const __m256i);
                let dot = |a, v| {
                    _mm256_madd_epi16(_mm256_maddubs_epi16(a, _mm256_sign_epi8(xv, v)), ones)
                };
                let isum = _mm_cvtepi32_ps(hsum_epi32x4(
                    dot(a0, v0),
                    dot(a1, v1),
                    dot(a2, v2),
                    dot(a3, v3),
                ));
                let prod = _mm_mul_ps(ws, _mm_set1_ps(*xs.add(j * s_stride + g)));
                *acc = _mm_add_ps(*acc, _mm_mul_ps(isum, prod));
            }
        }
        for (j, acc) in acc.iter().enumerate() {
            let mut s = [0f32; 4];
            _mm_storeu_ps(s.as_mut_ptr(), *acc);
            if full < gpr {
                let sx = *xs.add(j * s_stride + full);
                let xp = xq.add(j * q_stride);
                add_short_group_q8(&mut s, [w0, w1, w2, w3], r, cols, GROUP, scales, xp, sx);
            }
            out.add(j * out_stride + r)
                .cast::<[f32; 4]>()
                .write_unaligned(s);
        }
        r += 4;
    }
    while r < rows {
        for j in 0..T {
            *out.add(j * out_stride + r) = row_q8(
                w.add(r * cols),
                r,
                cols,
                scales,
                GROUP,
                xq.add(j * q_stride),
                xs.add(j * s_stride),
                ones,
            );
        }
        r += 1;
    }
}

/// Adds the short last group of four rows `r..r + 4` (weights at `rows`) to
/// their sums `s`, as the portable code does: exact integer sum, then
/// `isum · (scale · sx)`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn add_short_group_q8<S: Scales>(
    s: &mut [f32; 4],
    rows: [*const u8; 4],
    r: usize,
    cols: usize,
    group: usize,
    scales: &S,
    xp: *const u8,
    sx: f32,
) {
    let (gpr, full) = (cols.div_ceil(group), cols / group);
    let start = full * group;
    for (k, (sk, wr)) in s.iter_mut().zip(rows).enumerate() {
        let isum = tail_q8(wr.add(start), xp.add(start), cols - start);
        *sk += isum as f32 * (scales.get((r + k) * gpr + full) * sx);
    }
}

/// One Q8 row of [`matvec_q8_avx2`] (the rows past the last block of four).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn row_q8<S: Scales>(
    w0: *const u8,
    r: usize,
    cols: usize,
    scales: &S,
    group: usize,
    xp: *const u8,
    xs: *const f32,
    ones: __m256i,
) -> f32 {
    let gpr = cols.div_ceil(group);
    let chunks = group / 32;
    let mut acc = 0f32;
    for g in 0..gpr {
        let start = g * group;
        let len = group.min(cols - start);
        let isum = if len == group {
            let mut i0 = _mm256_setzero_si256();
            for c in 0..chunks {
                let o = start + c * 32;
                let xv = _mm256_loadu_si256(xp.add(o) as *const __m256i);
                i0 = _mm256_add_epi32(i0, dot32_i8(w0.add(o), xv, ones));
            }
            let h = _mm256_hadd_epi32(i0, i0);
            let h = _mm256_hadd_epi32(h, h);
            _mm_cvtsi128_si32(_mm_add_epi32(
                _mm256_castsi256_si128(h),
                _mm256_extracti128_si256(h, 1),
            ))
        } else {
            tail_q8(w0.add(start), xp.add(start), len)
        };
        acc += isum as f32 * (scales.get(r * gpr + g) * *xs.add(g));
    }
    acc
}

#[inline(always)]
unsafe fn tail_q8(w: *const u8, x: *const u8, n: usize) -> i32 {
    let mut s = 0i32;
    for i in 0..n {
        s += (*w.add(i) as i8 as i32) * (*x.add(i) as i8 as i32);
    }
    s
}
