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

use super::activations::Operands;
use super::portable::combine;
use super::view::{Scales, TensorView};
use super::LANES;
use crate::format::DType;

mod attention;
mod q4;
mod q8;
mod rows;

pub(crate) use attention::{attend_head, softmax};
pub(crate) use q8::matmul_q8;

/// Q8/Q4 rows ([`q8::matvec_q8`], [`q4::matvec_q4`]); false (nothing
/// written) where no kernel here applies.
pub(crate) fn quantized_rows<S: Scales>(
    out: &mut [f32],
    w: &TensorView<'_>,
    o: &Operands<'_>,
    s: &S,
) -> bool {
    let Some(m) = rows::Matrix::fit(w, s, out.len()) else {
        return false;
    };
    match w.dtype {
        DType::Q8 => q8::matvec_q8(out, &m, s, o.xq, o.xs),
        DType::Q4 => q4::matvec_q4(out, &m, s, o.split, o.xs, o.xsum),
        DType::F32 | DType::F16 => false,
    }
}

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
pub(super) unsafe fn combine4(a0: __m256, a1: __m256, a2: __m256, a3: __m256) -> __m128 {
    let h01 = _mm256_hadd_ps(a0, a1);
    let h23 = _mm256_hadd_ps(a2, a3);
    let h = _mm256_hadd_ps(h01, h23);
    _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1))
}

#[inline(always)]
pub(super) unsafe fn lanes(v: __m256) -> [f32; LANES] {
    let mut a = [0f32; LANES];
    _mm256_storeu_ps(a.as_mut_ptr(), v);
    a
}

#[inline(always)]
pub(super) unsafe fn hsum_epi32x4(a0: __m256i, a1: __m256i, a2: __m256i, a3: __m256i) -> __m128i {
    let h01 = _mm256_hadd_epi32(a0, a1);
    let h23 = _mm256_hadd_epi32(a2, a3);
    let h = _mm256_hadd_epi32(h01, h23);
    _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1))
}

/// Scales `i`, `i + stride`, `i + 2·stride`, `i + 3·stride` as lanes 0..3
/// (0.0 past the end, as [`Scales::get`]); half tables convert with F16C,
/// which is exact like the portable conversion.
#[inline(always)]
pub(super) unsafe fn scales4<S: Scales>(scales: &S, i: usize, stride: usize) -> __m128 {
    match scales.f16_bytes() {
        Some(b) => {
            let h = |k: usize| {
                let j = (i + k * stride) * 2;
                b.get(j..j + 2).map_or(0, crate::kernels::le_u16) as i16
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
