//! Cortex-M4/M7 (Armv7E-M) versions of the hottest scalar operations, with
//! the same results as the portable code: an exact integer dot product on
//! the DSP extension (SXTB16 + SMLAD: four int8 multiply-adds per two
//! instructions) and the FPU's exact half → single conversion.

use core::arch::asm;

#[cfg(thinkling_arm_fp16)]
mod attention;
#[cfg(thinkling_arm_fp16)]
mod groups;
#[cfg(thinkling_arm_fp16)]
pub(super) mod rows;

#[cfg(thinkling_arm_fp16)]
pub use attention::{
    attend_head_f16, q8_scores, q8_scores2, q8_softmax_values8x2, q8_values8, q8_values8x2,
};

/// `acc + Σ w_i · x_i` of four int8 pairs packed little-endian in `w`, `x`.
/// Products are at most 128 · 128, so the dual 16-bit multiply-adds never
/// overflow.
#[inline(always)]
fn smlad4(acc: i32, w: u32, x: u32) -> i32 {
    let out: i32;
    // SAFETY: register-only DSP instructions; no memory or stack access.
    unsafe {
        asm!(
            "sxtb16 {w02}, {w}",
            "sxtb16 {w13}, {w}, ror #8",
            "sxtb16 {x02}, {x}",
            "sxtb16 {x13}, {x}, ror #8",
            "smlad {acc}, {w02}, {x02}, {acc}",
            "smlad {acc}, {w13}, {x13}, {acc}",
            w = in(reg) w,
            x = in(reg) x,
            w02 = out(reg) _,
            w13 = out(reg) _,
            x02 = out(reg) _,
            x13 = out(reg) _,
            acc = inout(reg) acc => out,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    out
}

#[inline(always)]
fn word(b: &[u8]) -> u32 {
    match b {
        [a, b, c, d] => u32::from_le_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

#[inline(always)]
fn word_i8(b: &[i8]) -> u32 {
    match b {
        [a, b, c, d] => u32::from_le_bytes([*a as u8, *b as u8, *c as u8, *d as u8]),
        _ => 0,
    }
}

/// Exact `Σ w·x` of int8 weights (as bytes) and int8 activations.
#[inline(always)]
pub fn dot_i8(w: &[u8], x: &[i8]) -> i32 {
    let wc = w.chunks_exact(8);
    let xc = x.chunks_exact(8);
    let (wr, xr) = (wc.remainder(), xc.remainder());
    let mut acc = 0i32;
    for (a, b) in wc.zip(xc) {
        let (a0, a1) = a.split_at(4);
        let (b0, b1) = b.split_at(4);
        acc = smlad4(acc, word(a0), word_i8(b0));
        acc = smlad4(acc, word(a1), word_i8(b1));
    }
    for (a, b) in wr.iter().zip(xr) {
        acc += (*a as i8 as i32) * (*b as i32);
    }
    acc
}

/// Exact IEEE half → single conversion by the FPU (`vcvtb.f32.f16`; the
/// FPSCR's AHP bit is 0 from reset, so the format is IEEE half).
#[cfg(thinkling_arm_fp16)]
#[inline(always)]
pub fn f16_bits_to_f32(h: u16) -> f32 {
    let out: u32;
    // SAFETY: register-only FPU instructions on a scratch register that is
    // declared clobbered; no memory or stack access.
    unsafe {
        asm!(
            "vmov s15, {h}",
            "vcvtb.f32.f16 s15, s15",
            "vmov {o}, s15",
            h = in(reg) h as u32,
            o = out(reg) out,
            out("s15") _,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    f32::from_bits(out)
}

/// `acc + Σ w_i · x_i` of four int8 weights packed in `w` and their
/// activations as SXTB16 pairs (`x02` elements 0 and 2, `x13` 1 and 3).
#[inline(always)]
fn smlad_pairs(acc: i32, w: u32, x02: u32, x13: u32) -> i32 {
    let out: i32;
    // SAFETY: register-only DSP instructions; no memory or stack access.
    unsafe {
        asm!(
            "sxtb16 {a}, {w}",
            "smlad {acc}, {a}, {x02}, {acc}",
            "sxtb16 {a}, {w}, ror #8",
            "smlad {acc}, {a}, {x13}, {acc}",
            w = in(reg) w,
            x02 = in(reg) x02,
            x13 = in(reg) x13,
            a = out(reg) _,
            acc = inout(reg) acc => out,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    out
}

/// Exact `Σ w·x` of a short group: whole words of weights against their
/// activation pairs, the last one to three elements from `xq`.
#[cfg(thinkling_arm_fp16)]
#[inline]
pub fn dot_i8_pairs_tail(w: &[u8], pairs: &[u32], xq: &[i8]) -> i32 {
    let n = w.len().min(xq.len());
    let words = n / 4;
    let mut acc = 0i32;
    for (wb, p) in w.chunks_exact(4).take(words).zip(pairs.chunks_exact(2)) {
        if let [x02, x13] = p {
            acc = smlad_pairs(acc, word(wb), *x02, *x13);
        }
    }
    for (a, b) in w.iter().zip(xq).take(n).skip(words * 4) {
        acc += (*a as i8 as i32) * (*b as i32);
    }
    acc
}

/// Exact `Σ k·q` of int8 keys and a query given as SXTB16 pairs (`pairs`,
/// two words per four elements) and as int8 (`q`, for the last one to
/// three elements): each key word is unpacked twice (SXTB16, SXTB16 ROR 8)
/// and multiply-added against the pairs by two SMLADs.
#[inline(always)]
pub fn dot_i8_pairs(k: &[i8], pairs: &[u32], q: &[i8]) -> i32 {
    let n = k.len().min(q.len());
    let words = n / 4;
    let mut acc = 0i32;
    for (kw, p) in k.chunks_exact(4).take(words).zip(pairs.chunks_exact(2)) {
        if let [x02, x13] = p {
            acc = smlad_pairs(acc, word_i8(kw), *x02, *x13);
        }
    }
    for (a, b) in k.iter().zip(q).take(n).skip(words * 4) {
        acc += (*a as i32) * (*b as i32);
    }
    acc
}

/// `acc + Σ k_i · q_i` of the four int8 keys `k` and a query word's SXTB16
/// pairs.
#[inline(always)]
pub fn smlad_word(acc: i32, k: &[i8], x02: u32, x13: u32) -> i32 {
    smlad_pairs(acc, word_i8(k), x02, x13)
}

/// One element's `round_q8` from `{m}` = `trunc(2y)` (VCVT to fixed point
/// with one fraction bit, toward zero): `(m + 1) >> 1` for `m ≥ 0` and
/// `m >> 1` below (arithmetic), which is `y` rounded half away from zero.
#[cfg(thinkling_arm_fp16)]
macro_rules! round_half {
    ($m:literal) => {
        concat!(
            "add {t}, {",
            $m,
            "}, #1\n",
            "add {",
            $m,
            "}, {t}, {",
            $m,
            "}, asr #31\n",
        )
    };
}

/// A group of `4 · quads` activations quantized with `inv` (the reciprocal
/// of a normal, finite scale, so every `|x · inv|` is at most 127 and a
/// few ulps): the int8 values into `q`, their SXTB16 pairs into `pairs`
/// (as [`crate::kernels::activations`] lays them out) and their sum
/// returned, the same values as `round_q8(x · inv)` element by element.
/// Per four elements: one VLDM, four VMUL and four VCVT to fixed point,
/// two VMOV, two integer instructions per element to round, and two
/// PKHBT that take the halving of elements 2 and 3 for free (their top
/// halves are bits 16..1).
///
/// # Safety
/// `x` points at `4 · quads` f32s, `q` at as many writable bytes, `pairs`
/// at `2 · quads` writable, word-aligned words; `quads ≥ 1`.
#[cfg(thinkling_arm_fp16)]
#[inline(always)]
pub unsafe fn quantize_q8_pairs(
    x: *const f32,
    inv: f32,
    q: *mut i8,
    pairs: *mut u32,
    quads: usize,
) -> i32 {
    let sum: i32;
    asm!(
        "vmov s8, {t}",
        "movs {sum}, #0",
        "2:",
        "vldmia {xp}!, {{s0-s3}}",
        "vmul.f32 s0, s0, s8",
        "vmul.f32 s1, s1, s8",
        "vmul.f32 s2, s2, s8",
        "vmul.f32 s3, s3, s8",
        "vcvt.s32.f32 s0, s0, #1",
        "vcvt.s32.f32 s1, s1, #1",
        "vcvt.s32.f32 s2, s2, #1",
        "vcvt.s32.f32 s3, s3, #1",
        "vmov {m0}, {m1}, s0, s1",
        "vmov {m2}, {m3}, s2, s3",
        round_half!("m0"),
        round_half!("m1"),
        round_half!("m2"),
        round_half!("m3"),
        "asr {m0}, {m0}, #1",
        "asr {m1}, {m1}, #1",
        "pkhbt {m0}, {m0}, {m2}, lsl #15",
        "pkhbt {m1}, {m1}, {m3}, lsl #15",
        "strd {m0}, {m1}, [{pp}], #8",
        "smlad {sum}, {m0}, {ones}, {sum}",
        "smlad {sum}, {m1}, {ones}, {sum}",
        "and {m0}, {m0}, #0x00FF00FF",
        "and {m1}, {m1}, #0x00FF00FF",
        "orr {m0}, {m0}, {m1}, lsl #8",
        "str {m0}, [{qp}], #4",
        "subs {n}, {n}, #1",
        "bne 2b",
        t = inout(reg) inv.to_bits() => _,
        sum = out(reg) sum,
        xp = inout(reg) x => _,
        qp = inout(reg) q => _,
        pp = inout(reg) pairs => _,
        n = inout(reg) quads => _,
        ones = in(reg) 0x0001_0001u32,
        m0 = out(reg) _,
        m1 = out(reg) _,
        m2 = out(reg) _,
        m3 = out(reg) _,
        out("s0") _, out("s1") _, out("s2") _, out("s3") _, out("s8") _,
        options(nostack),
    );
    sum
}
