//! The two scalar primitives every kernel family builds on, each with the
//! one instruction choice of its target: half → single conversion and the
//! exact int8 dot product of a group. A leaf: it imports no other kernel
//! module, so the portable kernels, the dispatch table and the tensor views
//! can all use it.

/// Exact IEEE half → single conversion without branches on the value (so it
/// vectorizes): the magnitude bits are shifted into place and rescaled by
/// 2^112, which also maps half subnormals exactly; infinities and NaNs are
/// patched with a select. Cortex-M4/M7 with an FPU convert in hardware.
#[inline(always)]
pub fn f16_bits_to_f32(h: u16) -> f32 {
    #[cfg(all(target_arch = "arm", thinkling_arm_fp16))]
    {
        super::arm::f16_bits_to_f32(h)
    }
    #[cfg(not(all(target_arch = "arm", thinkling_arm_fp16)))]
    {
        f16_bits_to_f32_soft(h)
    }
}

/// The portable body of [`f16_bits_to_f32`].
#[inline(always)]
pub fn f16_bits_to_f32_soft(h: u16) -> f32 {
    let h = h as u32;
    let mag = (h & 0x7fff) << 13;
    let scaled = f32::from_bits(mag) * f32::from_bits(0x7780_0000); // 2^112
    let v = if h & 0x7c00 == 0x7c00 {
        f32::from_bits(mag | 0x7f80_0000)
    } else {
        scaled
    };
    f32::from_bits(v.to_bits() | ((h & 0x8000) << 16))
}

/// Exact `Σ w·x` of int8 weights (as bytes) and int8 activations (the DSP
/// extension's SXTB16 + SMLAD on Cortex-M4/M7).
#[inline(always)]
pub(crate) fn dot_i8(w: &[u8], x: &[i8]) -> i32 {
    #[cfg(all(target_arch = "arm", thinkling_arm_dsp))]
    {
        super::arm::dot_i8(w, x)
    }
    #[cfg(not(all(target_arch = "arm", thinkling_arm_dsp)))]
    {
        dot_i8_soft(w, x)
    }
}

/// The portable body of [`dot_i8`].
#[inline(always)]
#[allow(dead_code)]
pub(crate) fn dot_i8_soft(w: &[u8], x: &[i8]) -> i32 {
    w.iter()
        .zip(x)
        .map(|(&w, &x)| (w as i8 as i32) * (x as i32))
        .sum()
}
