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

/// One attention head over an f16 KV cache, head size a multiple of 8, as
/// the portable loop computes it: `scores[p] = combine(q · k_p) · scale`
/// with eight lanes accumulated chunk by chunk (VMLA is the unfused
/// multiply-accumulate: the product is rounded, then added), softmax, then
/// `out_i = Σ_p scores[p] · v_p,i` in position order, eight outputs at a
/// time. Keys and values are converted two at a time (VCVTB/VCVTT) straight
/// from the cache words. Returns false (nothing done) when it does not apply.
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
    let hd = q.len();
    let chunks = hd / 8;
    let n = scores.len();
    let rows = n.saturating_mul(kv_dim);
    let aligned = |p: *const u16| (p as usize).is_multiple_of(4);
    if chunks == 0
        || !hd.is_multiple_of(8)
        || out.len() < hd
        || n == 0
        || !kv_dim.is_multiple_of(2)
        || !off.is_multiple_of(2)
        || off + hd > kv_dim
        || keys.len() < rows
        || values.len() < rows
        || !aligned(keys.as_ptr())
        || !aligned(values.as_ptr())
    {
        return false;
    }
    let stride = kv_dim * 2;
    // SAFETY: `q` holds `8 · chunks` f32s, `scores` `n`; every key row
    // `p < n` has its `hd` halves at `off` inside the slice (checked above),
    // word-aligned as VLDM needs. Only the declared registers are written.
    unsafe {
        asm!(
            "vmov s12, {scale}",
            "2:",
            "vmov s0, s1, {z}, {z}",
            "vmov s2, s3, {z}, {z}",
            "vmov s4, s5, {z}, {z}",
            "vmov s6, s7, {z}, {z}",
            "mov {j}, {chunks}",
            "mov {qq}, {qp}",
            "mov {kk}, {kp}",
            "3:",
            "vldmia {qq}!, {{s16-s23}}",
            "vldmia {kk}!, {{s8-s11}}",
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
            "subs {j}, {j}, #1",
            "bne 3b",
            "add {kp}, {kp}, {stride}",
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
            chunks = in(reg) chunks,
            j = out(reg) _,
            qq = out(reg) _,
            kk = out(reg) _,
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
    for c in 0..chunks {
        // SAFETY: as above; `out` has room for the 8 results of chunk `c`,
        // whose values lie at `off + 8c..off + 8c + 8` of every row.
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
                vp = inout(reg) values.as_ptr().add(off + 8 * c) => _,
                n = inout(reg) n => _,
                stride = in(reg) stride,
                op = in(reg) out.as_mut_ptr().add(8 * c),
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
    }
    true
}

/// `acc + Σ w_i · x_i` of four int8 weights packed in `w` and their
/// activations as SXTB16 pairs (`x02` elements 0 and 2, `x13` 1 and 3).
#[cfg(thinkling_arm_fp16)]
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

/// Sixteen int8 multiply-adds into `{isum}`: per four weights one load,
/// two unpacks (SXTB16), one double-word load of activation pairs and two
/// dual 16-bit multiply-adds (SMLAD).
#[cfg(thinkling_arm_fp16)]
macro_rules! mac16 {
    () => {
        concat!(
            "ldr {w}, [{wp}], #4\n",
            "ldrd {x0}, {x1}, [{xp}], #8\n",
            "sxtb16 {a}, {w}\n",
            "smlad {isum}, {a}, {x0}, {isum}\n",
            "sxtb16 {a}, {w}, ror #8\n",
            "smlad {isum}, {a}, {x1}, {isum}\n",
            "ldr {w}, [{wp}], #4\n",
            "ldrd {x0}, {x1}, [{xp}], #8\n",
            "sxtb16 {a}, {w}\n",
            "smlad {isum}, {a}, {x0}, {isum}\n",
            "sxtb16 {a}, {w}, ror #8\n",
            "smlad {isum}, {a}, {x1}, {isum}\n",
            "ldr {w}, [{wp}], #4\n",
            "ldrd {x0}, {x1}, [{xp}], #8\n",
            "sxtb16 {a}, {w}\n",
            "smlad {isum}, {a}, {x0}, {isum}\n",
            "sxtb16 {a}, {w}, ror #8\n",
            "smlad {isum}, {a}, {x1}, {isum}\n",
            "ldr {w}, [{wp}], #4\n",
            "ldrd {x0}, {x1}, [{xp}], #8\n",
            "sxtb16 {a}, {w}\n",
            "smlad {isum}, {a}, {x0}, {isum}\n",
            "sxtb16 {a}, {w}, ror #8\n",
            "smlad {isum}, {a}, {x1}, {isum}\n",
        )
    };
}

/// The loop over a row's whole groups shared by the Q8 and Q4 kernels:
/// per group `{isum}` is cleared, `$body` accumulates the group's exact
/// integer sum into it, and the sum is converted, multiplied by the weight
/// scale (`$scale` loads it into `s1` as f32, with `{w}` free) times the
/// activation scale and added with VMLA (the product rounded, then the sum,
/// as the portable loop does). `$ops` are the body's own operands.
#[cfg(thinkling_arm_fp16)]
macro_rules! scaled_groups {
    (ws: $ws:expr, xs: $xs:expr, groups: $groups:expr, scale: $scale:expr,
     body: [$($body:expr),* $(,)?], ops: [$($ops:tt)*]) => {{
        let acc: u32;
        asm!(
            "vmov s3, {acc}",
            "2:",
            "movs {isum}, #0",
            $($body,)*
            "vmov s0, {isum}",
            "vcvt.f32.s32 s0, s0",
            $scale,
            "vldmia {xsp}!, {{s2}}",
            "vmul.f32 s1, s1, s2",
            "vmla.f32 s3, s0, s1",
            "subs {n}, {n}, #1",
            "bne 2b",
            "vmov {acc}, s3",
            acc = inout(reg) 0u32 => acc,
            wsp = inout(reg) $ws => _,
            xsp = inout(reg) $xs => _,
            n = inout(reg) $groups => _,
            isum = out(reg) _,
            w = out(reg) _,
            x0 = out(reg) _,
            x1 = out(reg) _,
            a = out(reg) _,
            $($ops)*
            out("s0") _,
            out("s1") _,
            out("s2") _,
            out("s3") _,
            options(readonly, nostack),
        );
        f32::from_bits(acc)
    }};
}

/// Loads the next half-precision weight scale into `s1` for
/// [`scaled_groups`].
#[cfg(thinkling_arm_fp16)]
macro_rules! scale_f16 {
    () => {
        "ldrh {w}, [{wsp}], #2\nvmov s1, {w}\nvcvtb.f32.f16 s1, s1"
    };
}

/// Loads the next f32 weight scale into `s1` for [`scaled_groups`].
#[cfg(thinkling_arm_fp16)]
macro_rules! scale_f32 {
    () => {
        "ldr {w}, [{wsp}], #4\nvmov s1, {w}"
    };
}

/// The Q8 group body: `n16` runs of [`mac16`].
#[cfg(thinkling_arm_fp16)]
macro_rules! q8_groups {
    ($w:expr, $x:expr, $ws:expr, $xs:expr, $groups:expr, $n16:expr, $scale:expr) => {
        scaled_groups!(
            ws: $ws, xs: $xs, groups: $groups, scale: $scale,
            body: ["mov {k}, {n16}", "3:", mac16!(), "subs {k}, {k}, #1", "bne 3b"],
            ops: [wp = inout(reg) $w => _, xp = inout(reg) $x => _, n16 = in(reg) $n16, k = out(reg) _,]
        )
    };
}

/// `Σ_g isum_g · (w_scale_g · x_scale_g)` over `groups ≥ 1` whole groups
/// of `16 · n16` weights of one Q8 row, with half-precision weight scales:
/// each group's exact integer sum is converted, scaled and added in group
/// order with the portable loop's roundings (VMLA rounds the product, then
/// the sum).
///
/// # Safety
/// `w` points at `16 · n16 · groups` readable bytes, `x` at `8 · n16 ·
/// groups` word-aligned pair words, `ws` at `groups` little-endian halves,
/// `xs` at `groups` f32s. (LDR and LDRH may be unaligned on Armv7E-M.)
#[cfg(thinkling_arm_fp16)]
#[inline(always)]
pub unsafe fn q8_groups_f16(
    w: *const u8,
    x: *const u32,
    ws: *const u8,
    xs: *const f32,
    groups: usize,
    n16: usize,
) -> f32 {
    q8_groups!(w, x, ws, xs, groups, n16, scale_f16!())
}

/// [`q8_groups_f16`] with f32 weight scales (`ws` at `groups` f32s).
///
/// # Safety
/// As [`q8_groups_f16`].
#[cfg(thinkling_arm_fp16)]
#[inline(always)]
pub unsafe fn q8_groups_f32(
    w: *const u8,
    x: *const u32,
    ws: *const u8,
    xs: *const f32,
    groups: usize,
    n16: usize,
) -> f32 {
    q8_groups!(w, x, ws, xs, groups, n16, scale_f32!())
}

/// Eight Q4 multiply-adds into `{isum}` (unsigned nibbles times int8
/// activations in the Q4 pair order): one word of weights, its low nibbles
/// masked and unpacked (UXTB16) against the even elements' pairs, then its
/// high nibbles against the odd ones'.
#[cfg(thinkling_arm_fp16)]
macro_rules! mac8_q4 {
    () => {
        concat!(
            "ldr {w}, [{wp}], #4\n",
            "ldrd {x0}, {x1}, [{xp}], #8\n",
            "and {t}, {w}, #0x0F0F0F0F\n",
            "uxtb16 {a}, {t}\n",
            "smlad {isum}, {a}, {x0}, {isum}\n",
            "uxtb16 {a}, {t}, ror #8\n",
            "smlad {isum}, {a}, {x1}, {isum}\n",
            "ldrd {x0}, {x1}, [{xp}], #8\n",
            "lsr {t}, {w}, #4\n",
            "and {t}, {t}, #0x0F0F0F0F\n",
            "uxtb16 {a}, {t}\n",
            "smlad {isum}, {a}, {x0}, {isum}\n",
            "uxtb16 {a}, {t}, ror #8\n",
            "smlad {isum}, {a}, {x1}, {isum}\n",
        )
    };
}

/// The Q4 group body for groups of 32: four runs of [`mac8_q4`], then the
/// `− 8 · Σ x` of the group (nibbles hold `q + 8`).
#[cfg(thinkling_arm_fp16)]
macro_rules! q4_groups32 {
    ($w:expr, $x:expr, $ws:expr, $xs:expr, $xsum:expr, $groups:expr, $scale:expr) => {
        scaled_groups!(
            ws: $ws, xs: $xs, groups: $groups, scale: $scale,
            body: [
                mac8_q4!(), mac8_q4!(), mac8_q4!(), mac8_q4!(),
                "ldr {t}, [{sump}], #4", "sub {isum}, {isum}, {t}, lsl #3",
            ],
            ops: [wp = inout(reg) $w => _, xp = inout(reg) $x => _,
                  sump = inout(reg) $xsum => _, t = out(reg) _,]
        )
    };
}

/// `Σ_g (isum_g − 8 · xsum_g) · (w_scale_g · x_scale_g)` over `groups ≥ 1`
/// whole groups of 32 weights of one Q4 row (16 bytes each), with
/// half-precision weight scales, in group order with the portable loop's
/// roundings.
///
/// # Safety
/// `w` points at `16 · groups` readable bytes, `x` at `16 · groups`
/// word-aligned Q4 pair words, `ws` at `groups` little-endian halves, `xs`
/// at `groups` f32s and `xsum` at `groups` i32s.
#[cfg(thinkling_arm_fp16)]
#[inline(always)]
pub unsafe fn q4_groups32_f16(
    w: *const u8,
    x: *const u32,
    ws: *const u8,
    xs: *const f32,
    xsum: *const i32,
    groups: usize,
) -> f32 {
    q4_groups32!(w, x, ws, xs, xsum, groups, scale_f16!())
}

/// [`q4_groups32_f16`] with f32 weight scales (`ws` at `groups` f32s).
///
/// # Safety
/// As [`q4_groups32_f16`].
#[cfg(thinkling_arm_fp16)]
#[inline(always)]
pub unsafe fn q4_groups32_f32(
    w: *const u8,
    x: *const u32,
    ws: *const u8,
    xs: *const f32,
    xsum: *const i32,
    groups: usize,
) -> f32 {
    q4_groups32!(w, x, ws, xs, xsum, groups, scale_f32!())
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
