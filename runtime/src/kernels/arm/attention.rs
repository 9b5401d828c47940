//! One attention head over an f16 KV cache on Cortex-M4/M7 with an FPU.

use core::arch::asm;

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
