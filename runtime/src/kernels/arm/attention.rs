//! One attention head over an f16 KV cache on Cortex-M4/M7 with an FPU.

use core::arch::asm;

use crate::kernels::portable;
use crate::kernels::view::Head;

/// Converts the eight halves of `s8..s11` (low half first) to `s24..s31`.
macro_rules! cvt8 {
    () => {
        concat!(
            "vcvtb.f32.f16 s24, s8\n",
            "vcvtt.f32.f16 s25, s8\n",
            "vcvtb.f32.f16 s26, s9\n",
            "vcvtt.f32.f16 s27, s9\n",
            "vcvtb.f32.f16 s28, s10\n",
            "vcvtt.f32.f16 s29, s10\n",
            "vcvtb.f32.f16 s30, s11\n",
            "vcvtt.f32.f16 s31, s11\n",
        )
    };
}

/// Clears the eight lane accumulators `s0..s7` (`{z}` holds 0).
macro_rules! zero8 {
    () => {
        concat!(
            "vmov s0, s1, {z}, {z}\n",
            "vmov s2, s3, {z}, {z}\n",
            "vmov s4, s5, {z}, {z}\n",
            "vmov s6, s7, {z}, {z}\n",
        )
    };
}

/// One attention head over an f16 KV cache, head size a multiple of 8, as
/// the portable loop computes it: `scores[p] = combine(q · k_p) · scale`
/// with eight lanes accumulated chunk by chunk (VMLA is the unfused
/// multiply-accumulate: the product is rounded, then added), softmax, then
/// `out_i = Σ_p scores[p] · v_p,i` in position order, eight outputs at a
/// time. Keys and values are converted two at a time (VCVTB/VCVTT) straight
/// from the cache words. Returns false (nothing done) when it does not apply.
pub fn attend_head_f16(h: &Head<'_, u16>, out: &mut [f32], scores: &mut [f32]) -> bool {
    let (q, n, chunks) = (h.q, scores.len(), h.q.len() / 8);
    let (keys, values, kv_dim, off) = (h.keys, h.values, h.kv_dim, h.off);
    let aligned = |p: *const u16| (p as usize).is_multiple_of(4);
    if !h.fits(out, n, 8)
        || n == 0
        || !kv_dim.is_multiple_of(2)
        || !off.is_multiple_of(2)
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
            zero8!(),
            "mov {j}, {chunks}",
            "mov {qq}, {qp}",
            "mov {kk}, {kp}",
            "3:",
            "vldmia {qq}!, {{s16-s23}}",
            "vldmia {kk}!, {{s8-s11}}",
            cvt8!(),
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
            scale = in(reg) h.scale.to_bits(),
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
    // The portable body: no Cortex-M softmax kernel exists, and calling it
    // directly keeps this native kernel below the dispatch table.
    crate::kernels::portable::softmax_body(scores);
    for c in 0..chunks {
        // SAFETY: as above; `out` has room for the 8 results of chunk `c`,
        // whose values lie at `off + 8c..off + 8c + 8` of every row.
        unsafe {
            asm!(
                zero8!(),
                "2:",
                "vldmia {ap}!, {{s16}}",
                "vldmia {vp}, {{s8-s11}}",
                "add {vp}, {vp}, {stride}",
                cvt8!(),
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

/// Converts the int8 values of `{w}` (four, low byte first) into
/// `s{a}..s{a+3}` as sign-extended integers (still to be converted).
macro_rules! unpack4 {
    ($w:literal, $a:literal, $b:literal, $c:literal, $d:literal) => {
        concat!(
            "sxtb {t0}, {",
            $w,
            "}\n",
            "sxtb {t1}, {",
            $w,
            "}, ror #8\n",
            "vmov s",
            $a,
            ", s",
            $b,
            ", {t0}, {t1}\n",
            "sxtb {t0}, {",
            $w,
            "}, ror #16\n",
            "sxtb {t1}, {",
            $w,
            "}, ror #24\n",
            "vmov s",
            $c,
            ", s",
            $d,
            ", {t0}, {t1}\n",
        )
    };
}

/// Eight outputs of a Q8 head's value sum: `acc_i = Σ_p (w_p · s_p) · v_p,i`
/// over the positions of `weights`, where `v_p` are the eight int8 values
/// at `values[p · stride..]` and `s_p` the f16 scale at
/// `scales[p · scale_stride]` (in halves), summed in position order with
/// VMLA (the product rounded, then added: the portable `acc += a · v`).
/// Values are loaded a row's eight at a time (LDRD), sign-extended by SXTB
/// (with rotations) two at a time into the FPU (VMOV of a register pair),
/// converted by VCVT. Returns false (nothing done) when the rows are not
/// all inside the slices or not word-aligned.
pub fn q8_values8(
    weights: &[f32],
    values: &[i8],
    stride: usize,
    scales: &[u16],
    scale_stride: usize,
    out: &mut [f32],
) -> bool {
    let n = weights.len();
    let aligned = (values.as_ptr() as usize).is_multiple_of(4) && stride.is_multiple_of(4);
    if n == 0
        || out.len() < 8
        || !aligned
        || values.len() < (n - 1).saturating_mul(stride).saturating_add(8)
        || scales.len() < (n - 1).saturating_mul(scale_stride).saturating_add(1)
    {
        return false;
    }
    // SAFETY: rows `p < n` have their 8 values and their scale inside the
    // slices (checked above), word-aligned as LDRD needs; `out` holds 8.
    // Only the declared registers are written.
    unsafe {
        asm!(
            zero8!(),
            "2:",
            "vldmia {ap}!, {{s16}}",
            "ldrh {t0}, [{sp}]",
            "add {sp}, {sp}, {sstride}",
            "vmov s17, {t0}",
            "vcvtb.f32.f16 s17, s17",
            "vmul.f32 s16, s16, s17",
            "ldrd {w0}, {w1}, [{vp}]",
            "add {vp}, {vp}, {stride}",
            unpack4!("w0", "8", "9", "10", "11"),
            unpack4!("w1", "12", "13", "14", "15"),
            "vcvt.f32.s32 s8, s8",
            "vcvt.f32.s32 s9, s9",
            "vcvt.f32.s32 s10, s10",
            "vcvt.f32.s32 s11, s11",
            "vcvt.f32.s32 s12, s12",
            "vcvt.f32.s32 s13, s13",
            "vcvt.f32.s32 s14, s14",
            "vcvt.f32.s32 s15, s15",
            "vmla.f32 s0, s16, s8",
            "vmla.f32 s1, s16, s9",
            "vmla.f32 s2, s16, s10",
            "vmla.f32 s3, s16, s11",
            "vmla.f32 s4, s16, s12",
            "vmla.f32 s5, s16, s13",
            "vmla.f32 s6, s16, s14",
            "vmla.f32 s7, s16, s15",
            "subs {n}, {n}, #1",
            "bne 2b",
            "vstmia {op}, {{s0-s7}}",
            ap = inout(reg) weights.as_ptr() => _,
            vp = inout(reg) values.as_ptr() => _,
            sp = inout(reg) scales.as_ptr() => _,
            n = inout(reg) n => _,
            stride = in(reg) stride,
            sstride = in(reg) scale_stride * 2,
            op = in(reg) out.as_mut_ptr(),
            z = in(reg) 0u32,
            w0 = out(reg) _,
            w1 = out(reg) _,
            t0 = out(reg) _,
            t1 = out(reg) _,
            out("s0") _, out("s1") _, out("s2") _, out("s3") _,
            out("s4") _, out("s5") _, out("s6") _, out("s7") _,
            out("s8") _, out("s9") _, out("s10") _, out("s11") _,
            out("s12") _, out("s13") _, out("s14") _, out("s15") _,
            out("s16") _, out("s17") _,
            options(nostack),
        );
    }
    true
}

/// One word of a Q8 key against the query pairs in `s{a}`, `s{b}`: loads
/// the word at `[{kp}, #off]`, unpacks it (SXTB16, SXTB16 ROR 8) and
/// multiply-adds both halves (the first word starts the sum with SMUAD).
macro_rules! key_word {
    (first, $a:literal, $b:literal) => {
        concat!(
            "vmov {x02}, {x13}, s",
            $a,
            ", s",
            $b,
            "\n",
            "ldr {w}, [{kp}]\n",
            "sxtb16 {t}, {w}\n",
            "smuad {acc}, {t}, {x02}\n",
            "sxtb16 {t}, {w}, ror #8\n",
            "smlad {acc}, {t}, {x13}, {acc}\n",
        )
    };
    ($off:literal, $a:literal, $b:literal) => {
        concat!(
            "vmov {x02}, {x13}, s",
            $a,
            ", s",
            $b,
            "\n",
            "ldr {w}, [{kp}, #",
            $off,
            "]\n",
            "sxtb16 {t}, {w}\n",
            "smlad {acc}, {t}, {x02}, {acc}\n",
            "sxtb16 {t}, {w}, ror #8\n",
            "smlad {acc}, {t}, {x13}, {acc}\n",
        )
    };
}

/// The scores loop of a Q8 head of 8 or 16 values inside one key group:
/// `scores[p] = ((Σ q·k_p) as f32 · s_p) · c` with the integer dot product
/// of the query's SXTB16 pairs (`pairs`, two words per four values) and
/// the key at `keys[p · stride..]`, `s_p` the f16 scale at
/// `scales[p · scale_stride]` (halves); returns the largest score (−∞ if
/// none is larger). The query pairs wait in s4..s11 and move to core
/// registers two at a time (VMOV); the maximum is a VCMP and a conditional
/// VMOV. Returns None (nothing done) where it does not apply.
pub fn q8_scores(
    pairs: &[u32],
    keys: &[i8],
    stride: usize,
    scales: &[u16],
    scale_stride: usize,
    c: f32,
    scores: &mut [f32],
) -> Option<f32> {
    let n = scores.len();
    let hd = pairs.len() * 2;
    if n == 0
        || !(hd == 8 || hd == 16)
        || keys.len() < (n - 1).saturating_mul(stride).saturating_add(hd)
        || scales.len() < (n - 1).saturating_mul(scale_stride).saturating_add(1)
    {
        return None;
    }
    // The pairs (s4..s11), then `c` (s3) and −∞ (s0).
    let mut q = [0u32; 10];
    for (d, s) in q.iter_mut().zip(pairs) {
        *d = *s;
    }
    q[8] = c.to_bits();
    q[9] = f32::NEG_INFINITY.to_bits();
    let max: u32;
    macro_rules! run {
        ($($word:expr),*) => {
            // SAFETY: rows `p < n` have their `hd` keys and their scale
            // inside the slices (checked above; LDR allows unaligned words);
            // `scores` has `n` entries. Only declared registers are written.
            unsafe {
                asm!(
                    "vldmia {x02}, {{s4-s11}}",
                    "vldr s3, [{x02}, #32]",
                    "vldr s0, [{x02}, #36]",
                    "2:",
                    "ldrh {t}, [{sp}]",
                    "add {sp}, {sp}, {sstride}",
                    "vmov s1, {t}",
                    "vcvtb.f32.f16 s1, s1",
                    $($word,)*
                    "add {kp}, {kp}, {stride}",
                    "vmov s2, {acc}",
                    "vcvt.f32.s32 s2, s2",
                    "vmul.f32 s2, s2, s1",
                    "vmul.f32 s2, s2, s3",
                    "vstmia {op}!, {{s2}}",
                    "vcmp.f32 s2, s0",
                    "vmrs APSR_nzcv, fpscr",
                    "it gt",
                    "vmovgt.f32 s0, s2",
                    "subs {n}, {n}, #1",
                    "bne 2b",
                    "vmov {acc}, s0",
                    kp = inout(reg) keys.as_ptr() => _,
                    sp = inout(reg) scales.as_ptr() => _,
                    op = inout(reg) scores.as_mut_ptr() => _,
                    n = inout(reg) n => _,
                    stride = in(reg) stride,
                    sstride = in(reg) scale_stride * 2,
                    acc = out(reg) max,
                    t = out(reg) _,
                    w = out(reg) _,
                    x02 = inout(reg) q.as_ptr() => _,
                    x13 = out(reg) _,
                    out("s0") _, out("s1") _, out("s2") _, out("s3") _,
                    out("s4") _, out("s5") _, out("s6") _, out("s7") _,
                    out("s8") _, out("s9") _, out("s10") _, out("s11") _,
                    options(nostack),
                );
            }
        };
    }
    if hd == 8 {
        run!(key_word!(first, "4", "5"), key_word!("4", "6", "7"));
    } else {
        run!(
            key_word!(first, "4", "5"),
            key_word!("4", "6", "7"),
            key_word!("8", "8", "9"),
            key_word!("12", "10", "11")
        );
    }
    Some(f32::from_bits(max))
}

/// One word of a Q8 key against two query heads' pairs (`s{a}`, `s{b}` for
/// the first head, `s{c}`, `s{d}` for the second): the key word is loaded
/// and unpacked once for both heads.
macro_rules! key_word2 {
    ($off:literal, $a:literal, $b:literal, $c:literal, $d:literal, $op:ident) => {
        concat!(
            "ldr {w}, [{kp}, #",
            $off,
            "]\n",
            "sxtb16 {t}, {w}\n",
            "sxtb16 {w}, {w}, ror #8\n",
            "vmov {x02}, {x13}, s",
            $a,
            ", s",
            $b,
            "\n",
            key_word2!(@$op, "{acc0}"),
            "smlad {acc0}, {w}, {x13}, {acc0}\n",
            "vmov {x02}, {x13}, s",
            $c,
            ", s",
            $d,
            "\n",
            key_word2!(@$op, "{acc1}"),
            "smlad {acc1}, {w}, {x13}, {acc1}\n",
        )
    };
    (@first, $acc:literal) => {
        concat!("smuad ", $acc, ", {t}, {x02}\n")
    };
    (@next, $acc:literal) => {
        concat!("smlad ", $acc, ", {t}, {x02}, ", $acc, "\n")
    };
}

/// [`q8_scores`] for two query heads of one kv head (grouped-query
/// attention): each key word is loaded and unpacked and each key scale
/// loaded and converted once for both. `pairs` holds the first head's
/// pairs, then the second's; `scores` gets the two heads' scores of a
/// position side by side (`2 · n` entries); returns both maxima.
#[allow(clippy::too_many_arguments)]
pub fn q8_scores2(
    pairs: &[u32],
    keys: &[i8],
    stride: usize,
    scales: &[u16],
    scale_stride: usize,
    c: [f32; 2],
    scores: &mut [f32],
) -> Option<[f32; 2]> {
    let n = scores.len() / 2;
    let hd = pairs.len();
    if n == 0
        || !(hd == 8 || hd == 16)
        || keys.len() < (n - 1).saturating_mul(stride).saturating_add(hd)
        || scales.len() < (n - 1).saturating_mul(scale_stride).saturating_add(1)
    {
        return None;
    }
    // The pairs (s4..s19), then `c` (s26, s27) and −∞ twice (s28, s29).
    let mut q = [0u32; 20];
    for (d, s) in q.iter_mut().zip(pairs) {
        *d = *s;
    }
    q[16] = c[0].to_bits();
    q[17] = c[1].to_bits();
    q[18] = f32::NEG_INFINITY.to_bits();
    q[19] = f32::NEG_INFINITY.to_bits();
    let (max0, max1): (u32, u32);
    macro_rules! run {
        ($($word:expr),*) => {
            // SAFETY: rows `p < n` have their `hd` keys and their scale
            // inside the slices (checked above; LDR allows unaligned words);
            // `scores` has `2n` entries. Only declared registers are written.
            unsafe {
                asm!(
                    "vldmia {x02}!, {{s4-s19}}",
                    "vldmia {x02}, {{s26-s29}}",
                    "2:",
                    "ldrh {t}, [{sp}]",
                    "add {sp}, {sp}, {sstride}",
                    "vmov s1, {t}",
                    "vcvtb.f32.f16 s1, s1",
                    $($word,)*
                    "add {kp}, {kp}, {stride}",
                    "vmov s24, s25, {acc0}, {acc1}",
                    "vcvt.f32.s32 s24, s24",
                    "vcvt.f32.s32 s25, s25",
                    "vmul.f32 s24, s24, s1",
                    "vmul.f32 s25, s25, s1",
                    "vmul.f32 s24, s24, s26",
                    "vmul.f32 s25, s25, s27",
                    "vstmia {op}!, {{s24-s25}}",
                    "vcmp.f32 s24, s28",
                    "vmrs APSR_nzcv, fpscr",
                    "it gt",
                    "vmovgt.f32 s28, s24",
                    "vcmp.f32 s25, s29",
                    "vmrs APSR_nzcv, fpscr",
                    "it gt",
                    "vmovgt.f32 s29, s25",
                    "subs {n}, {n}, #1",
                    "bne 2b",
                    "vmov {acc0}, {acc1}, s28, s29",
                    kp = inout(reg) keys.as_ptr() => _,
                    sp = inout(reg) scales.as_ptr() => _,
                    op = inout(reg) scores.as_mut_ptr() => _,
                    n = inout(reg) n => _,
                    stride = in(reg) stride,
                    sstride = in(reg) scale_stride * 2,
                    acc0 = out(reg) max0,
                    acc1 = out(reg) max1,
                    t = out(reg) _,
                    w = out(reg) _,
                    x02 = inout(reg) q.as_ptr() => _,
                    x13 = out(reg) _,
                    out("s1") _,
                    out("s4") _, out("s5") _, out("s6") _, out("s7") _,
                    out("s8") _, out("s9") _, out("s10") _, out("s11") _,
                    out("s12") _, out("s13") _, out("s14") _, out("s15") _,
                    out("s16") _, out("s17") _, out("s18") _, out("s19") _,
                    out("s24") _, out("s25") _, out("s26") _, out("s27") _,
                    out("s28") _, out("s29") _,
                    options(nostack),
                );
            }
        };
    }
    if hd == 8 {
        run!(
            key_word2!("0", "4", "5", "8", "9", first),
            key_word2!("4", "6", "7", "10", "11", next)
        );
    } else {
        run!(
            key_word2!("0", "4", "5", "12", "13", first),
            key_word2!("4", "6", "7", "14", "15", next),
            key_word2!("8", "8", "9", "16", "17", next),
            key_word2!("12", "10", "11", "18", "19", next)
        );
    }
    Some([f32::from_bits(max0), f32::from_bits(max1)])
}

/// [`q8_values8`] for two query heads of one kv head: `weights` holds the
/// two heads' weights of a position side by side, and each position's
/// eight values are loaded, sign-extended and converted once for both
/// (`out0` gets the first head's sums, `out1` the second's).
pub fn q8_values8x2(
    weights: &[f32],
    values: &[i8],
    stride: usize,
    scales: &[u16],
    scale_stride: usize,
    out0: &mut [f32],
    out1: &mut [f32],
) -> bool {
    let n = weights.len() / 2;
    let aligned = (values.as_ptr() as usize).is_multiple_of(4) && stride.is_multiple_of(4);
    if n == 0
        || out0.len() < 8
        || out1.len() < 8
        || !aligned
        || values.len() < (n - 1).saturating_mul(stride).saturating_add(8)
        || scales.len() < (n - 1).saturating_mul(scale_stride).saturating_add(1)
    {
        return false;
    }
    // Both heads' sums are stored by one VSTM (a pointer per head would
    // take a register the loop needs).
    let mut acc = [0f32; 16];
    // SAFETY: rows `p < n` have their 8 values and their scale inside the
    // slices (checked above), word-aligned as LDRD needs; `weights` holds
    // `2n` entries and `acc` 16. Only the declared registers are written.
    unsafe {
        asm!(
            "movs {t0}, #0",
            "vmov s0, s1, {t0}, {t0}",
            "vmov s2, s3, {t0}, {t0}",
            "vmov s4, s5, {t0}, {t0}",
            "vmov s6, s7, {t0}, {t0}",
            "vmov s8, s9, {t0}, {t0}",
            "vmov s10, s11, {t0}, {t0}",
            "vmov s12, s13, {t0}, {t0}",
            "vmov s14, s15, {t0}, {t0}",
            "2:",
            "vldmia {ap}!, {{s24-s25}}",
            "ldrh {t0}, [{sp}]",
            "add {sp}, {sp}, {sstride}",
            "vmov s26, {t0}",
            "vcvtb.f32.f16 s26, s26",
            "vmul.f32 s24, s24, s26",
            "vmul.f32 s25, s25, s26",
            "ldrd {w0}, {w1}, [{vp}]",
            "add {vp}, {vp}, {stride}",
            unpack4!("w0", "16", "17", "18", "19"),
            unpack4!("w1", "20", "21", "22", "23"),
            "vcvt.f32.s32 s16, s16",
            "vcvt.f32.s32 s17, s17",
            "vcvt.f32.s32 s18, s18",
            "vcvt.f32.s32 s19, s19",
            "vcvt.f32.s32 s20, s20",
            "vcvt.f32.s32 s21, s21",
            "vcvt.f32.s32 s22, s22",
            "vcvt.f32.s32 s23, s23",
            "vmla.f32 s0, s24, s16",
            "vmla.f32 s1, s24, s17",
            "vmla.f32 s2, s24, s18",
            "vmla.f32 s3, s24, s19",
            "vmla.f32 s4, s24, s20",
            "vmla.f32 s5, s24, s21",
            "vmla.f32 s6, s24, s22",
            "vmla.f32 s7, s24, s23",
            "vmla.f32 s8, s25, s16",
            "vmla.f32 s9, s25, s17",
            "vmla.f32 s10, s25, s18",
            "vmla.f32 s11, s25, s19",
            "vmla.f32 s12, s25, s20",
            "vmla.f32 s13, s25, s21",
            "vmla.f32 s14, s25, s22",
            "vmla.f32 s15, s25, s23",
            "subs {n}, {n}, #1",
            "bne 2b",
            "vstmia {op}, {{s0-s15}}",
            ap = inout(reg) weights.as_ptr() => _,
            vp = inout(reg) values.as_ptr() => _,
            sp = inout(reg) scales.as_ptr() => _,
            n = inout(reg) n => _,
            stride = in(reg) stride,
            sstride = in(reg) scale_stride * 2,
            op = in(reg) acc.as_mut_ptr(),
            w0 = out(reg) _,
            w1 = out(reg) _,
            t0 = out(reg) _,
            t1 = out(reg) _,
            out("s0") _, out("s1") _, out("s2") _, out("s3") _,
            out("s4") _, out("s5") _, out("s6") _, out("s7") _,
            out("s8") _, out("s9") _, out("s10") _, out("s11") _,
            out("s12") _, out("s13") _, out("s14") _, out("s15") _,
            out("s16") _, out("s17") _, out("s18") _, out("s19") _,
            out("s20") _, out("s21") _, out("s22") _, out("s23") _,
            out("s24") _, out("s25") _, out("s26") _,
            options(nostack),
        );
    }
    let (a0, a1) = acc.split_at(8);
    for (o, a) in out0.iter_mut().zip(a0) {
        *o = *a;
    }
    for (o, a) in out1.iter_mut().zip(a1) {
        *o = *a;
    }
    true
}

/// The exponential of one head's score: `s{x}` holds `x · 2^25` to fixed
/// point (`{m}`, a copy in a core register) and ends holding `2^x` as
/// `kernels::exp2` computes it, `s{r}` is scratch, `s29` holds `ln 2`.
/// The signed low 16 bits are the rest, the bits above them the step:
/// its table entry plus the step shifted into the exponent field.
macro_rules! exp2_head {
    ($m:literal, $x:literal, $r:literal) => {
        concat!(
            "sbfx {t0}, {",
            $m,
            "}, #0, #16\n",
            "sub {",
            $m,
            "}, {",
            $m,
            "}, {t0}\n",
            "ubfx {t1}, {",
            $m,
            "}, #16, #9\n",
            "ldr {t1}, [{tab}, {t1}, lsl #2]\n",
            "add {t1}, {t1}, {",
            $m,
            "}, asr #2\n",
            "vmov s",
            $x,
            ", s",
            $r,
            ", {t1}, {t0}\n",
            "vcvt.f32.s32 s",
            $r,
            ", s",
            $r,
            ", #25\n",
            "vmul.f32 s",
            $r,
            ", s",
            $x,
            ", s",
            $r,
            "\n",
            "vmla.f32 s",
            $x,
            ", s",
            $r,
            ", s29\n",
        )
    };
}

/// [`q8_values8x2`] with the softmax weights computed on the way: `scores`
/// holds the two heads' base-2 scores of a position side by side, each
/// weight is `kernels::exp2(score − max)` of its head (bit for bit: the
/// same integer and f32 operations, VMLA being the unfused
/// multiply-add), summed in position order; returns both sums. With
/// `keep`, the weights replace the scores (for the heads' next eight
/// values). One pass over the positions instead of two: the scores are
/// loaded once and the weights never stored when not kept.
#[allow(clippy::too_many_arguments)]
pub fn q8_softmax_values8x2(
    scores: &mut [f32],
    max: [f32; 2],
    keep: bool,
    values: &[i8],
    stride: usize,
    scales: &[u16],
    scale_stride: usize,
    out0: &mut [f32],
    out1: &mut [f32],
) -> Option<[f32; 2]> {
    let n = scores.len() / 2;
    let aligned = (values.as_ptr() as usize).is_multiple_of(4) && stride.is_multiple_of(4);
    if n == 0
        || out0.len() < 8
        || out1.len() < 8
        || !aligned
        || values.len() < (n - 1).saturating_mul(stride).saturating_add(8)
        || scales.len() < (n - 1).saturating_mul(scale_stride).saturating_add(1)
    {
        return None;
    }
    // Every FPU register's start, loaded by one VLDM and stored back by
    // one VSTM: the sixteen sums (s0..s15, zero), the maxima (s27, s28),
    // `ln 2` (s29) and the two weight sums (s30, s31, zero).
    let mut regs = [0f32; 32];
    regs[27] = max[0];
    regs[28] = max[1];
    regs[29] = core::f32::consts::LN_2;
    // The shifts and field widths in `exp2_head!` are these constants'.
    const _: () = assert!(portable::EXP2_FRAC == 25 && portable::EXP2_STEPS == 512);
    let table = portable::EXP2_TABLE.as_ptr();
    macro_rules! run {
        ($load:literal, $store:literal, $scale:literal, $values:literal, $($ops:tt)*) => {
            // SAFETY: rows `p < n` have their 8 values and their scale
            // inside the slices (checked above), word-aligned as LDRD
            // needs; `scores` holds `2n` entries, `regs` 32, and the table
            // 512 words, indexed by a 9-bit field. Only the declared
            // registers are written.
            unsafe {
                asm!(
                    "vldmia {op}, {{s0-s31}}",
                    "2:",
                    $load,
                    "vsub.f32 s24, s24, s27",
                    "vsub.f32 s25, s25, s28",
                    "vcvt.s32.f32 s24, s24, #25",
                    "vcvt.s32.f32 s25, s25, #25",
                    "vmov {w0}, {w1}, s24, s25",
                    exp2_head!("w0", "24", "25"),
                    exp2_head!("w1", "25", "26"),
                    "vadd.f32 s30, s30, s24",
                    "vadd.f32 s31, s31, s25",
                    $store,
                    $scale,
                    "vmov s26, {t0}",
                    "vcvtb.f32.f16 s26, s26",
                    "vmul.f32 s24, s24, s26",
                    "vmul.f32 s25, s25, s26",
                    $values,
                    unpack4!("w0", "16", "17", "18", "19"),
                    unpack4!("w1", "20", "21", "22", "23"),
                    "vcvt.f32.s32 s16, s16",
                    "vcvt.f32.s32 s17, s17",
                    "vcvt.f32.s32 s18, s18",
                    "vcvt.f32.s32 s19, s19",
                    "vcvt.f32.s32 s20, s20",
                    "vcvt.f32.s32 s21, s21",
                    "vcvt.f32.s32 s22, s22",
                    "vcvt.f32.s32 s23, s23",
                    "vmla.f32 s0, s24, s16",
                    "vmla.f32 s1, s24, s17",
                    "vmla.f32 s2, s24, s18",
                    "vmla.f32 s3, s24, s19",
                    "vmla.f32 s4, s24, s20",
                    "vmla.f32 s5, s24, s21",
                    "vmla.f32 s6, s24, s22",
                    "vmla.f32 s7, s24, s23",
                    "vmla.f32 s8, s25, s16",
                    "vmla.f32 s9, s25, s17",
                    "vmla.f32 s10, s25, s18",
                    "vmla.f32 s11, s25, s19",
                    "vmla.f32 s12, s25, s20",
                    "vmla.f32 s13, s25, s21",
                    "vmla.f32 s14, s25, s22",
                    "vmla.f32 s15, s25, s23",
                    "subs {n}, {n}, #1",
                    "bne 2b",
                    "vstmia {op}, {{s0-s31}}",
                    ap = inout(reg) scores.as_mut_ptr() => _,
                    vp = inout(reg) values.as_ptr() => _,
                    sp = inout(reg) scales.as_ptr() => _,
                    n = inout(reg) n => _,
                    op = in(reg) regs.as_mut_ptr(),
                    tab = in(reg) table,
                    w0 = out(reg) _,
                    w1 = out(reg) _,
                    t0 = out(reg) _,
                    t1 = out(reg) _,
                    out("s0") _, out("s1") _, out("s2") _, out("s3") _,
                    out("s4") _, out("s5") _, out("s6") _, out("s7") _,
                    out("s8") _, out("s9") _, out("s10") _, out("s11") _,
                    out("s12") _, out("s13") _, out("s14") _, out("s15") _,
                    out("s16") _, out("s17") _, out("s18") _, out("s19") _,
                    out("s20") _, out("s21") _, out("s22") _, out("s23") _,
                    out("s24") _, out("s25") _, out("s26") _, out("s27") _,
                    out("s28") _, out("s29") _, out("s30") _, out("s31") _,
                    $($ops)*
                    options(nostack),
                );
            }
        };
    }
    // Rows of 32 with one scale each (kv_dim 32: the tiny shape and the
    // default model) step by post-indexed loads, two additions fewer per
    // position; other shapes add their strides.
    macro_rules! strides {
        ($load:literal, $store:literal) => {
            if stride == 32 && scale_stride == 1 {
                run!(
                    $load,
                    $store,
                    "ldrh {t0}, [{sp}], #2",
                    "ldrd {w0}, {w1}, [{vp}], #32",
                );
            } else {
                run!(
                    $load,
                    $store,
                    "ldrh {t0}, [{sp}]\nadd {sp}, {sp}, {sstride}",
                    "ldrd {w0}, {w1}, [{vp}]\nadd {vp}, {vp}, {stride}",
                    stride = in(reg) stride,
                    sstride = in(reg) scale_stride * 2,
                );
            }
        };
    }
    if keep {
        strides!("vldmia {ap}, {{s24-s25}}", "vstmia {ap}!, {{s24-s25}}");
    } else {
        strides!("vldmia {ap}!, {{s24-s25}}", "");
    }
    let (a0, a1) = regs.split_at(8);
    for (o, a) in out0.iter_mut().zip(a0) {
        *o = *a;
    }
    for (o, a) in out1.iter_mut().zip(a1.iter().take(8)) {
        *o = *a;
    }
    Some([regs[30], regs[31]])
}
