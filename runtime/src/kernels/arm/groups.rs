//! The assembly loops over a row's whole Q8/Q4 groups on Cortex-M4/M7 with
//! an FPU: each group's exact integer sum (SXTB16/UXTB16 + SMLAD against the
//! activations' halfword pairs), converted, scaled and added in group order.

use core::arch::asm;

/// Four int8 multiply-adds into `{isum}`: one load of four weights, two
/// unpacks (SXTB16), one double-word load of activation pairs and two dual
/// 16-bit multiply-adds (SMLAD).
macro_rules! mac4 {
    () => {
        concat!(
            "ldr {w}, [{wp}], #4\n",
            "ldrd {x0}, {x1}, [{xp}], #8\n",
            "sxtb16 {a}, {w}\n",
            "smlad {isum}, {a}, {x0}, {isum}\n",
            "sxtb16 {a}, {w}, ror #8\n",
            "smlad {isum}, {a}, {x1}, {isum}\n",
        )
    };
}

/// Sixteen int8 multiply-adds into `{isum}`: four [`mac4`]s.
macro_rules! mac16 {
    () => {
        concat!(mac4!(), mac4!(), mac4!(), mac4!())
    };
}

/// The loop over a row's whole groups shared by the Q8 and Q4 kernels:
/// per group `{isum}` is cleared, `$body` accumulates the group's exact
/// integer sum into it, and the sum is converted, multiplied by the weight
/// scale (`$scale` loads it into `s1` as f32, with `{w}` free) times the
/// activation scale and added with VMLA (the product rounded, then the sum,
/// as the portable loop does). `$ops` are the body's own operands.
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
macro_rules! scale_f16 {
    () => {
        "ldrh {w}, [{wsp}], #2\nvmov s1, {w}\nvcvtb.f32.f16 s1, s1"
    };
}

/// Loads the next f32 weight scale into `s1` for [`scaled_groups`].
macro_rules! scale_f32 {
    () => {
        "ldr {w}, [{wsp}], #4\nvmov s1, {w}"
    };
}

/// The Q8 group body: `n16` runs of [`mac16`].
macro_rules! q8_groups {
    ($w:expr, $x:expr, $ws:expr, $xs:expr, $groups:expr, $n16:expr, $scale:expr) => {
        scaled_groups!(
            ws: $ws, xs: $xs, groups: $groups, scale: $scale,
            body: ["mov {k}, {n16}", "3:", mac16!(), "subs {k}, {k}, #1", "bne 3b"],
            ops: [wp = inout(reg) $w => _, xp = inout(reg) $x => _, n16 = in(reg) $n16, k = out(reg) _,]
        )
    };
}

/// The Q8 group body for groups of 32 (the default export): two runs of
/// [`mac16`], no inner loop (its counter would cost five instructions a
/// group and two registers).
macro_rules! q8_groups32 {
    ($w:expr, $x:expr, $ws:expr, $xs:expr, $groups:expr, $scale:expr) => {
        scaled_groups!(
            ws: $ws, xs: $xs, groups: $groups, scale: $scale,
            body: [mac16!(), mac16!()],
            ops: [wp = inout(reg) $w => _, xp = inout(reg) $x => _,]
        )
    };
}

/// `Σ_g isum_g · (w_scale_g · x_scale_g)` over `groups ≥ 1` whole groups
/// of `16 · n16` weights of one Q8 row, with half-precision weight scales
/// (`half`) or f32 ones: each group's exact integer sum is converted, scaled
/// and added in group order with the portable loop's roundings (VMLA rounds
/// the product, then the sum).
///
/// # Safety
/// `w` points at `16 · n16 · groups` readable bytes, `x` at `8 · n16 ·
/// groups` word-aligned pair words, `ws` at `groups` little-endian scales,
/// `xs` at `groups` f32s. (LDR and LDRH may be unaligned on Armv7E-M.)
#[inline(always)]
pub unsafe fn q8_groups(
    w: *const u8,
    x: *const u32,
    ws: *const u8,
    xs: *const f32,
    groups: usize,
    n16: usize,
    half: bool,
) -> f32 {
    match (n16, half) {
        (2, true) => q8_groups32!(w, x, ws, xs, groups, scale_f16!()),
        (2, false) => q8_groups32!(w, x, ws, xs, groups, scale_f32!()),
        (_, true) => q8_groups!(w, x, ws, xs, groups, n16, scale_f16!()),
        (_, false) => q8_groups!(w, x, ws, xs, groups, n16, scale_f32!()),
    }
}

/// Eight Q4 multiply-adds into `{isum}` (unsigned nibbles times int8
/// activations in the Q4 pair order): one word of weights, its low nibbles
/// masked and unpacked (UXTB16) against the even elements' pairs, then its
/// high nibbles against the odd ones'.
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
/// half-precision weight scales (`half`) or f32 ones, in group order with
/// the portable loop's roundings.
///
/// # Safety
/// `w` points at `16 · groups` readable bytes, `x` at `16 · groups`
/// word-aligned Q4 pair words, `ws` at `groups` little-endian scales, `xs`
/// at `groups` f32s and `xsum` at `groups` i32s.
#[inline(always)]
pub unsafe fn q4_groups32(
    w: *const u8,
    x: *const u32,
    ws: *const u8,
    xs: *const f32,
    xsum: *const i32,
    groups: usize,
    half: bool,
) -> f32 {
    if half {
        q4_groups32!(w, x, ws, xs, xsum, groups, scale_f16!())
    } else {
        q4_groups32!(w, x, ws, xs, xsum, groups, scale_f32!())
    }
}

/// Four int8 multiply-adds into each of two rows' sums (`{i0}` for the row
/// at `{wp}`, `{i1}` for the one `{rb}` bytes further): one double-word
/// load of activation pairs serves both rows, so four weights of two rows
/// cost eleven instructions instead of twelve. `first` starts the sums
/// with SMUAD, which spares clearing them.
macro_rules! mac4x2 {
    (first) => {
        mac4x2!("smuad {i1}, {a}, {x0}\n", "smuad {i0}, {a}, {x0}\n")
    };
    () => {
        mac4x2!(
            "smlad {i1}, {a}, {x0}, {i1}\n",
            "smlad {i0}, {a}, {x0}, {i0}\n"
        )
    };
    ($start1:expr, $start0:expr) => {
        concat!(
            "ldrd {x0}, {x1}, [{xp}], #8\n",
            "ldr {w}, [{wp}, {rb}]\n",
            "sxtb16 {a}, {w}\n",
            $start1,
            "sxtb16 {a}, {w}, ror #8\n",
            "smlad {i1}, {a}, {x1}, {i1}\n",
            "ldr {w}, [{wp}], #4\n",
            "sxtb16 {a}, {w}\n",
            $start0,
            "sxtb16 {a}, {w}, ror #8\n",
            "smlad {i0}, {a}, {x1}, {i0}\n",
        )
    };
}

/// Loads the two rows' next f32 weight scales into `s2` (the row at
/// `{wsp}`) and `s3` (the one `s23` bytes further), `{w}` and `{a}` free.
macro_rules! scales2_f32 {
    () => {
        concat!(
            "vmov {a}, s23\n",
            "ldr {w}, [{wsp}, {a}]\n",
            "ldr {a}, [{wsp}], #4\n",
            "vmov s2, s3, {a}, {w}\n",
        )
    };
}

/// [`scales2_f32`] for half-precision scales.
macro_rules! scales2_f16 {
    () => {
        concat!(
            "vmov {a}, s23\n",
            "ldrh {w}, [{wsp}, {a}]\n",
            "ldrh {a}, [{wsp}], #2\n",
            "vmov s2, s3, {a}, {w}\n",
            "vcvtb.f32.f16 s2, s2\n",
            "vcvtb.f32.f16 s3, s3\n",
        )
    };
}

/// The whole-matrix loop of [`q8_row_pairs32`]: every state that lives
/// from one pair of rows to the next waits in `s16..s23`, so the twelve
/// core registers the group loop needs are all it takes.
macro_rules! row_pairs32 {
    ($params:expr, $w:expr, $rb:expr, $ws:expr, $scales:expr) => {
        asm!(
            "vldmia {xp}, {{s16-s23}}",
            "2:",
            "vmov {xp}, s19",
            "vmov {xsp}, s20",
            "vmov {n}, s18",
            "movs {i0}, #0",
            "vmov s8, s9, {i0}, {i0}",
            "3:",
            mac4x2!(first), mac4x2!(), mac4x2!(), mac4x2!(),
            mac4x2!(), mac4x2!(), mac4x2!(), mac4x2!(),
            "vmov s0, s1, {i0}, {i1}",
            "vcvt.f32.s32 s0, s0",
            "vcvt.f32.s32 s1, s1",
            $scales,
            "vldmia {xsp}!, {{s4}}",
            "vmul.f32 s2, s2, s4",
            "vmul.f32 s3, s3, s4",
            "vmla.f32 s8, s0, s2",
            "vmla.f32 s9, s1, s3",
            "subs {n}, {n}, #1",
            "bne 3b",
            "vmov {a}, s16",
            "vstmia {a}!, {{s8-s9}}",
            "vmov s16, {a}",
            "vmov {a}, s21",
            "add {wp}, {wp}, {a}",
            "vmov {a}, s22",
            "add {wsp}, {wsp}, {a}",
            "vmov {a}, s17",
            "subs {a}, {a}, #1",
            "vmov s17, {a}",
            "bne 2b",
            xp = inout(reg) $params => _,
            wp = inout(reg) $w => _,
            rb = in(reg) $rb,
            wsp = inout(reg) $ws => _,
            xsp = out(reg) _,
            n = out(reg) _,
            i0 = out(reg) _,
            i1 = out(reg) _,
            x0 = out(reg) _,
            x1 = out(reg) _,
            w = out(reg) _,
            a = out(reg) _,
            out("s0") _, out("s1") _, out("s2") _, out("s3") _, out("s4") _,
            out("s8") _, out("s9") _,
            out("s16") _, out("s17") _, out("s18") _, out("s19") _,
            out("s20") _, out("s21") _, out("s22") _, out("s23") _,
            options(nostack),
        )
    };
}

/// `out[r] = Σ_g isum_g · (w_scale_g · x_scale_g)` over the `groups ≥ 1`
/// whole groups of 32 of each of `2 · pairs ≥ 2` Q8 rows, two rows per
/// pass: the rows share every load of activation pairs and scales, and the
/// loop over the rows is in the assembly too (a row loop in Rust between
/// assembly loops pays spills and reloads for every row). Each row's sum
/// has the portable loop's roundings, in group order.
///
/// # Safety
/// `w` points at `2 · pairs` rows of `rb ≥ 32 · groups` readable bytes,
/// `ws` at their scales (`ws_row` bytes per row, `groups` little-endian
/// f16 (`half`) or f32 scales first in each), `x` at `16 · groups`
/// word-aligned pair words, `xs` at `groups` f32s and `out` at `2 · pairs`
/// writable f32s.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub unsafe fn q8_row_pairs32(
    out: *mut f32,
    pairs: usize,
    w: *const u8,
    rb: usize,
    x: *const u32,
    ws: *const u8,
    ws_row: usize,
    xs: *const f32,
    groups: usize,
    half: bool,
) {
    let width = if half { 2 } else { 4 };
    // s16: output, s17: pairs left, s18: groups, s19/s20: the activations'
    // pairs and scales, s21/s22: from the end of a row's groups to the
    // next pair's first row, weights and scales, s23: scale row stride.
    let params: [u32; 8] = [
        out as u32,
        pairs as u32,
        groups as u32,
        x as u32,
        xs as u32,
        (2 * rb - 32 * groups) as u32,
        (2 * ws_row - width * groups) as u32,
        ws_row as u32,
    ];
    let p = params.as_ptr();
    if half {
        row_pairs32!(p, w, rb, ws, scales2_f16!());
    } else {
        row_pairs32!(p, w, rb, ws, scales2_f32!());
    }
}
