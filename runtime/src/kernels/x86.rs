//! AVX2 versions of the hot kernels, chosen at run time (CPUID, no `std`
//! needed) with the portable code as the fallback.
//!
//! Every function here computes bit for bit what its portable twin in
//! `kernels` computes: integer dot products are exact whatever the order,
//! and each f32 sum keeps the portable shape — 8 lane accumulators over
//! consecutive elements (one `__m256`), combined as
//! `((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))` (two `hadd`s and a
//! low + high add do exactly that), separate multiplies and adds (no FMA),
//! then the tail in order. The unit tests compare both paths bit for bit.

use core::arch::x86_64::*;
use core::sync::atomic::{AtomicU8, Ordering};

use super::{combine, Scales, LANES};

/// Whether AVX2 and F16C are usable (CPU and OS), detected once.
#[inline]
pub fn avx2() -> bool {
    static STATE: AtomicU8 = AtomicU8::new(0);
    match STATE.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let yes = detect_avx2();
            STATE.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
            yes
        }
    }
}

#[allow(unused_unsafe)]
fn detect_avx2() -> bool {
    // SAFETY: CPUID is available on every x86-64 CPU.
    let max_leaf = unsafe { __cpuid(0) }.eax;
    if max_leaf < 7 {
        return false;
    }
    // SAFETY: as above.
    let l1 = unsafe { __cpuid(1) };
    let osxsave = l1.ecx & (1 << 27) != 0;
    let avx = l1.ecx & (1 << 28) != 0;
    let f16c = l1.ecx & (1 << 29) != 0;
    if !(osxsave && avx && f16c) {
        return false;
    }
    let (lo, _hi): (u32, u32);
    // SAFETY: OSXSAVE is set, so XGETBV with ECX = 0 is allowed.
    unsafe {
        core::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") _hi,
            options(nomem, nostack, preserves_flags));
    }
    // The OS saves XMM and YMM state.
    if lo & 6 != 6 {
        return false;
    }
    // SAFETY: leaf 7 exists (checked above).
    let l7 = unsafe { __cpuid_count(7, 0) };
    l7.ebx & (1 << 5) != 0
}

/// `[Σ a0, Σ a1, Σ a2, Σ a3]`, each lane sum in the portable combine order.
#[inline(always)]
unsafe fn combine4(a0: __m256, a1: __m256, a2: __m256, a3: __m256) -> __m128 {
    let h01 = _mm256_hadd_ps(a0, a1);
    let h23 = _mm256_hadd_ps(a2, a3);
    let h = _mm256_hadd_ps(h01, h23);
    _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1))
}

#[inline(always)]
unsafe fn lanes(v: __m256) -> [f32; LANES] {
    let mut a = [0f32; LANES];
    _mm256_storeu_ps(a.as_mut_ptr(), v);
    a
}

#[inline(always)]
unsafe fn hsum_epi32x4(a0: __m256i, a1: __m256i, a2: __m256i, a3: __m256i) -> __m128i {
    let h01 = _mm256_hadd_epi32(a0, a1);
    let h23 = _mm256_hadd_epi32(a2, a3);
    let h = _mm256_hadd_epi32(h01, h23);
    _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1))
}

/// F32 matvec: `out[r] = dot(row r, x)` for `x.len()` columns; rows are
/// `4 · x.len()` bytes. Returns false (nothing written) when the lengths do
/// not fit, so the caller falls back.
pub fn matvec_f32(out: &mut [f32], data: &[u8], x: &[f32]) -> bool {
    let cols = x.len();
    let rb = cols * 4;
    if rb == 0 || !avx2() {
        return false;
    }
    let rows = out.len().min(data.len() / rb);
    // SAFETY: AVX2 is present; `data` holds `rows` rows of `rb` bytes and
    // `out` at least `rows` entries (checked above).
    unsafe { matvec_f32_avx2(out.as_mut_ptr(), rows, data.as_ptr(), x) };
    true
}

#[target_feature(enable = "avx2,f16c")]
unsafe fn matvec_f32_avx2(out: *mut f32, rows: usize, w: *const u8, x: &[f32]) {
    let cols = x.len();
    let rb = cols * 4;
    let n8 = cols / LANES;
    let xp = x.as_ptr();
    let mut r = 0;
    while r + 4 <= rows {
        let w0 = w.add(r * rb) as *const f32;
        let w1 = w0.add(cols);
        let w2 = w1.add(cols);
        let w3 = w2.add(cols);
        let (mut a0, mut a1, mut a2, mut a3) = (
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
        );
        for c in 0..n8 {
            let o = c * LANES;
            let xv = _mm256_loadu_ps(xp.add(o));
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(_mm256_loadu_ps(w0.add(o)), xv));
            a1 = _mm256_add_ps(a1, _mm256_mul_ps(_mm256_loadu_ps(w1.add(o)), xv));
            a2 = _mm256_add_ps(a2, _mm256_mul_ps(_mm256_loadu_ps(w2.add(o)), xv));
            a3 = _mm256_add_ps(a3, _mm256_mul_ps(_mm256_loadu_ps(w3.add(o)), xv));
        }
        let mut s = [0f32; 4];
        _mm_storeu_ps(s.as_mut_ptr(), combine4(a0, a1, a2, a3));
        for i in n8 * LANES..cols {
            let xi = *xp.add(i);
            s[0] += w0.add(i).read_unaligned() * xi;
            s[1] += w1.add(i).read_unaligned() * xi;
            s[2] += w2.add(i).read_unaligned() * xi;
            s[3] += w3.add(i).read_unaligned() * xi;
        }
        out.add(r).cast::<[f32; 4]>().write_unaligned(s);
        r += 4;
    }
    while r < rows {
        let w0 = w.add(r * rb) as *const f32;
        let mut a0 = _mm256_setzero_ps();
        for c in 0..n8 {
            let o = c * LANES;
            a0 = _mm256_add_ps(
                a0,
                _mm256_mul_ps(_mm256_loadu_ps(w0.add(o)), _mm256_loadu_ps(xp.add(o))),
            );
        }
        let mut s = combine(lanes(a0));
        for i in n8 * LANES..cols {
            s += w0.add(i).read_unaligned() * *xp.add(i);
        }
        *out.add(r) = s;
        r += 1;
    }
}

/// Q8 matvec over groups whose size is a multiple of 32 (a short last group
/// of a row goes through `tail`, the portable exact group sum).
///
/// `xq` holds the quantized activations (`cols` entries, values in ±127),
/// `xs` their group scales; `scales` the weight scales, `gpr` per row.
/// Returns false when it does not apply.
#[allow(clippy::too_many_arguments)]
pub(super) fn matvec_q8<S: Scales>(
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
pub(super) fn matmul_q8<S: Scales>(
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

/// Scales `i`, `i + stride`, `i + 2·stride`, `i + 3·stride` as lanes 0..3
/// (0.0 past the end, as [`Scales::get`]); half tables convert with F16C,
/// which is exact like the portable conversion.
#[inline(always)]
unsafe fn scales4<S: Scales>(scales: &S, i: usize, stride: usize) -> __m128 {
    match scales.f16_bytes() {
        Some(b) => {
            let h = |k: usize| {
                let j = (i + k * stride) * 2;
                b.get(j..j + 2).map_or(0, super::le_u16) as i16
            };
            _mm_cvtph_ps(_mm_setr_epi16(h(0), h(1), h(2), h(3), 0, 0, 0, 0))
        }
        None => _mm_setr_ps(
            scales.get(i),
            scales.get(i + stride),
            scales.get(i + 2 * stride),
            scales.get(i + 3 * stride),
        ),
    }
}

#[inline(always)]
unsafe fn tail_q8(w: *const u8, x: *const u8, n: usize) -> i32 {
    let mut s = 0i32;
    for i in 0..n {
        s += (*w.add(i) as i8 as i32) * (*x.add(i) as i8 as i32);
    }
    s
}

/// Q4 matvec over groups whose size is a multiple of 32, reading the split
/// activations (per group: its even elements, then its odd ones). Nibbles are
/// `q + 8`, so each group is `Σ nibble·x − 8 · Σ x` as in the portable code.
#[allow(clippy::too_many_arguments)]
pub(super) fn matvec_q4<S: Scales>(
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

/// Whether F16C (and AVX2) is usable, detected once.
#[inline]
pub fn f16c() -> bool {
    static STATE: AtomicU8 = AtomicU8::new(0);
    match STATE.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            // SAFETY: CPUID is available on every x86-64 CPU.
            #[allow(unused_unsafe)]
            let l1 = unsafe { __cpuid(1) };
            let yes = avx2() && l1.ecx & (1 << 29) != 0;
            STATE.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
            yes
        }
    }
}

/// A KV cache element type: loads 8 consecutive elements as f32 (exact).
pub(crate) trait KvElem: Copy {
    /// # Safety
    /// `p` points at 8 readable elements; the CPU has AVX2 and F16C.
    unsafe fn load8(p: *const Self) -> __m256;
    fn usable() -> bool;
}

impl KvElem for f32 {
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }
    fn usable() -> bool {
        avx2()
    }
}

impl KvElem for u16 {
    #[inline(always)]
    unsafe fn load8(p: *const u16) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }
    fn usable() -> bool {
        f16c()
    }
}

/// One attention head: `scores[p] = dot(q, key p) · scale` for every cached
/// position, softmax, then `out = Σ_p scores[p] · value p`, the key/value of
/// position `p` being `rows[p · kv_dim + off ..][..q.len()]`. Same sums as
/// the portable code (8 lanes per dot product, combined in the fixed order;
/// each output element summed over positions in order). Needs
/// `q.len() % 8 == 0`; returns false (nothing done) when it does not apply.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend_head<T: KvElem>(
    q: &[f32],
    out: &mut [f32],
    scores: &mut [f32],
    keys: &[T],
    values: &[T],
    kv_dim: usize,
    off: usize,
    scale: f32,
) -> bool {
    let hd = q.len();
    let n = scores.len();
    if hd == 0
        || !hd.is_multiple_of(LANES)
        || out.len() < hd
        || off + hd > kv_dim
        || keys.len() < n * kv_dim
        || values.len() < n * kv_dim
        || !T::usable()
    {
        return false;
    }
    // SAFETY: the CPU features are present and every row `p < n` of
    // `kv_dim` elements lies inside `keys` and `values` (checked above).
    unsafe {
        scores_avx2(q, scores, keys.as_ptr(), kv_dim, off, scale);
    }
    // SAFETY: AVX2 is present (implied by `T::usable`).
    unsafe { softmax_avx2(scores) };
    // SAFETY: as above; `out` has `hd` entries.
    unsafe {
        values_avx2(scores, values.as_ptr(), kv_dim, off, out.as_mut_ptr(), hd);
    }
    true
}

/// The 8 lane sums of `q · k` over `n8` chunks of 8.
#[inline(always)]
unsafe fn key_dot<T: KvElem>(qp: *const f32, n8: usize, k: *const T) -> __m256 {
    let mut acc = _mm256_setzero_ps();
    for c in 0..n8 {
        acc = _mm256_add_ps(
            acc,
            _mm256_mul_ps(
                _mm256_loadu_ps(qp.add(c * LANES)),
                T::load8(k.add(c * LANES)),
            ),
        );
    }
    acc
}

/// [`super::softmax`] compiled for AVX2 (the same operations: element-wise
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
    super::softmax_body(x);
}

#[target_feature(enable = "avx2,f16c")]
unsafe fn scores_avx2<T: KvElem>(
    q: &[f32],
    scores: &mut [f32],
    keys: *const T,
    kv_dim: usize,
    off: usize,
    scale: f32,
) {
    let n8 = q.len() / LANES;
    let qp = q.as_ptr();
    if n8 == 1 {
        let qv = _mm256_loadu_ps(qp);
        scores_loop(scores, scale, |p| {
            _mm256_mul_ps(qv, T::load8(keys.add(p * kv_dim + off)))
        });
    } else {
        scores_loop(scores, scale, |p| {
            key_dot(qp, n8, keys.add(p * kv_dim + off))
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
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(s, T::load8(v)));
            a1 = _mm256_add_ps(a1, _mm256_mul_ps(s, T::load8(v.add(LANES))));
        }
        _mm256_storeu_ps(out.add(c), a0);
        _mm256_storeu_ps(out.add(c + LANES), a1);
        c += 2 * LANES;
    }
    while c < hd {
        let mut a0 = _mm256_setzero_ps();
        for (p, s) in scores.iter().enumerate() {
            let v = values.add(p * kv_dim + off + c);
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(_mm256_set1_ps(*s), T::load8(v)));
        }
        _mm256_storeu_ps(out.add(c), a0);
        c += LANES;
    }
}
