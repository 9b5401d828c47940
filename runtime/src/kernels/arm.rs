//! Cortex-M4/M7 (Armv7E-M) versions of the hottest scalar operations, with
//! the same results as the portable code: an exact integer dot product on
//! the DSP extension (SXTB16 + SMLAD: four int8 multiply-adds per two
//! instructions) and the FPU's exact half → single conversion.

use core::arch::asm;

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

/// One attention head of head size 8 over an f16 KV cache, as the portable
/// loop computes it: `scores[p] = combine(0 + q_i · k_p,i) · scale` (VMLA is
/// the unfused multiply-accumulate: the product is rounded, then added),
/// softmax, then `out_i = Σ_p scores[p] · v_p,i` in position order. Keys and
/// values are converted two at a time (VCVTB/VCVTT) straight from the cache
/// words. Returns false (nothing done) when it does not apply.
#[cfg(thinkling_arm_fp16)]
#[allow(clippy::too_many_arguments)]
pub fn attend_head_f16(
    q: &[f32],
    out: &mut [f32],
    scores: &mut [f32],
    keys: &[u16],
    values: &[u16],
    kv_dim: usize,
    off: usize,
    scale: f32,
) -> bool {
    const HD: usize = 8;
    let n = scores.len();
    let rows = n.saturating_mul(kv_dim);
    let aligned = |p: *const u16| (p as usize).is_multiple_of(4);
    if q.len() != HD
        || out.len() < HD
        || n == 0
        || !kv_dim.is_multiple_of(2)
        || !off.is_multiple_of(2)
        || off + HD > kv_dim
        || keys.len() < rows
        || values.len() < rows
        || !aligned(keys.as_ptr())
        || !aligned(values.as_ptr())
    {
        return false;
    }
    let stride = kv_dim * 2;
    // SAFETY: `q` and `out` hold 8 f32s, `scores` `n`; every key/value row
    // `p < n` has its 8 halves at `off` inside the slices (checked above),
    // word-aligned as VLDM needs. Only the declared registers are written.
    unsafe {
        asm!(
            "vldmia {qp}, {{s16-s23}}",
            "vmov s12, {scale}",
            "2:",
            "vldmia {kp}, {{s8-s11}}",
            "add {kp}, {kp}, {stride}",
            "vmov s0, s1, {z}, {z}",
            "vmov s2, s3, {z}, {z}",
            "vmov s4, s5, {z}, {z}",
            "vmov s6, s7, {z}, {z}",
            "vcvtb.f32.f16 s24, s8",
            "vcvtt.f32.f16 s25, s8",
            "vcvtb.f32.f16 s26, s9",
            "vcvtt.f32.f16 s27, s9",
            "vcvtb.f32.f16 s28, s10",
            "vcvtt.f32.f16 s29, s10",
            "vcvtb.f32.f16 s30, s11",
            "vcvtt.f32.f16 s31, s11",
            "vmla.f32 s0, s16, s24",
            "vmla.f32 s1, s17, s25",
            "vmla.f32 s2, s18, s26",
            "vmla.f32 s3, s19, s27",
            "vmla.f32 s4, s20, s28",
            "vmla.f32 s5, s21, s29",
            "vmla.f32 s6, s22, s30",
            "vmla.f32 s7, s23, s31",
            "vadd.f32 s0, s0, s1",
            "vadd.f32 s2, s2, s3",
            "vadd.f32 s4, s4, s5",
            "vadd.f32 s6, s6, s7",
            "vadd.f32 s0, s0, s2",
            "vadd.f32 s4, s4, s6",
            "vadd.f32 s0, s0, s4",
            "vmul.f32 s0, s0, s12",
            "vstmia {sp}!, {{s0}}",
            "subs {n}, {n}, #1",
            "bne 2b",
            qp = in(reg) q.as_ptr(),
            kp = inout(reg) keys.as_ptr().add(off) => _,
            sp = inout(reg) scores.as_mut_ptr() => _,
            n = inout(reg) n => _,
            stride = in(reg) stride,
            scale = in(reg) scale.to_bits(),
            z = in(reg) 0u32,
            out("s0") _, out("s1") _, out("s2") _, out("s3") _,
            out("s4") _, out("s5") _, out("s6") _, out("s7") _,
            out("s8") _, out("s9") _, out("s10") _, out("s11") _,
            out("s12") _,
            out("s16") _, out("s17") _, out("s18") _, out("s19") _,
            out("s20") _, out("s21") _, out("s22") _, out("s23") _,
            out("s24") _, out("s25") _, out("s26") _, out("s27") _,
            out("s28") _, out("s29") _, out("s30") _, out("s31") _,
            options(nostack),
        );
    }
    super::softmax(scores);
    // SAFETY: as above; `out` has room for the 8 results.
    unsafe {
        asm!(
            "vmov s0, s1, {z}, {z}",
            "vmov s2, s3, {z}, {z}",
            "vmov s4, s5, {z}, {z}",
            "vmov s6, s7, {z}, {z}",
            "2:",
            "vldmia {ap}!, {{s16}}",
            "vldmia {vp}, {{s8-s11}}",
            "add {vp}, {vp}, {stride}",
            "vcvtb.f32.f16 s24, s8",
            "vcvtt.f32.f16 s25, s8",
            "vcvtb.f32.f16 s26, s9",
            "vcvtt.f32.f16 s27, s9",
            "vcvtb.f32.f16 s28, s10",
            "vcvtt.f32.f16 s29, s10",
            "vcvtb.f32.f16 s30, s11",
            "vcvtt.f32.f16 s31, s11",
            "vmla.f32 s0, s16, s24",
            "vmla.f32 s1, s16, s25",
            "vmla.f32 s2, s16, s26",
            "vmla.f32 s3, s16, s27",
            "vmla.f32 s4, s16, s28",
            "vmla.f32 s5, s16, s29",
            "vmla.f32 s6, s16, s30",
            "vmla.f32 s7, s16, s31",
            "subs {n}, {n}, #1",
            "bne 2b",
            "vstmia {op}, {{s0-s7}}",
            ap = inout(reg) scores.as_ptr() => _,
            vp = inout(reg) values.as_ptr().add(off) => _,
            n = inout(reg) n => _,
            stride = in(reg) stride,
            op = in(reg) out.as_mut_ptr(),
            z = in(reg) 0u32,
            out("s0") _, out("s1") _, out("s2") _, out("s3") _,
            out("s4") _, out("s5") _, out("s6") _, out("s7") _,
            out("s8") _, out("s9") _, out("s10") _, out("s11") _,
            out("s16") _,
            out("s24") _, out("s25") _, out("s26") _, out("s27") _,
            out("s28") _, out("s29") _, out("s30") _, out("s31") _,
            options(nostack),
        );
    }
    true
}

/// Exact `Σ w·x` of `8 · n8` int8 weights and activations (`n8 ≥ 1`).
///
/// # Safety
/// `w` and `x` point at `8 · n8` readable bytes.
#[inline(always)]
pub unsafe fn dot_i8_words(w: *const u8, x: *const i8, n8: usize) -> i32 {
    let acc: i32;
    asm!(
        "movs {acc}, #0",
        "2:",
        "ldr {w0}, [{wp}], #4",
        "ldr {x0}, [{xp}], #4",
        "ldr {w1}, [{wp}], #4",
        "ldr {x1}, [{xp}], #4",
        "sxtb16 {a}, {w0}",
        "sxtb16 {b}, {x0}",
        "smlad {acc}, {a}, {b}, {acc}",
        "sxtb16 {a}, {w0}, ror #8",
        "sxtb16 {b}, {x0}, ror #8",
        "smlad {acc}, {a}, {b}, {acc}",
        "sxtb16 {a}, {w1}",
        "sxtb16 {b}, {x1}",
        "smlad {acc}, {a}, {b}, {acc}",
        "sxtb16 {a}, {w1}, ror #8",
        "sxtb16 {b}, {x1}, ror #8",
        "smlad {acc}, {a}, {b}, {acc}",
        "subs {n}, {n}, #1",
        "bne 2b",
        acc = out(reg) acc,
        wp = inout(reg) w => _,
        xp = inout(reg) x => _,
        n = inout(reg) n8 => _,
        w0 = out(reg) _,
        x0 = out(reg) _,
        w1 = out(reg) _,
        x1 = out(reg) _,
        a = out(reg) _,
        b = out(reg) _,
        options(pure, readonly, nostack),
    );
    acc
}
