//! The kernels callers use, and the one place that picks the fastest code
//! for the target: each operation asks the target's [`native`] table first
//! and falls back to the [`super::portable`] kernel, which computes the same
//! bits. x86-64 chooses at run time (CPUID: AVX2, F16C); Cortex-M4/M7 at
//! build time (`build.rs` sets `thinkling_arm_dsp` and, with the FPU,
//! `thinkling_arm_fp16`); every other target has no native kernels.

use super::activations::{Operands, QuantizedActivations, TokenActivations};
use super::portable;
use super::view::Head;
use super::view::{F16Scales, F32Scales, Scales, TensorView};
use super::Mismatch;
use crate::format::{DType, ScaleType};

/// `out[r] = Σ_c w[r, c] · x[c]` for every row (F32/F16 weights read in
/// place, Q8/Q4 through `acts`, which is re-quantized from `x`). `out`
/// needs one entry per row and `x` at least one per column.
pub fn matvec(
    out: &mut [f32],
    w: &TensorView<'_>,
    x: &[f32],
    acts: &mut QuantizedActivations<'_>,
) -> Result<(), Mismatch> {
    match w.dtype {
        DType::F32 | DType::F16 => matvec_float(out, w, x),
        DType::Q8 | DType::Q4 => {
            acts.quantize_for(x, w.group as usize, w.dtype);
            matvec_quantized(out, w, acts)
        }
    }
}

/// Matvec of an F32/F16 tensor.
#[inline]
pub fn matvec_float(out: &mut [f32], w: &TensorView<'_>, x: &[f32]) -> Result<(), Mismatch> {
    float_product(out, w, x, Kernels::Native)
}

/// Matvec of a Q8/Q4 tensor with activations already quantized for it
/// ([`QuantizedActivations::holds`]).
#[inline]
pub fn matvec_quantized(
    out: &mut [f32],
    w: &TensorView<'_>,
    acts: &QuantizedActivations<'_>,
) -> Result<(), Mismatch> {
    quantized_product(out, w, acts, Kernels::Native)
}

/// [`matvec_float`] without target-specific code paths.
pub fn matvec_float_portable(
    out: &mut [f32],
    w: &TensorView<'_>,
    x: &[f32],
) -> Result<(), Mismatch> {
    float_product(out, w, x, Kernels::Portable)
}

/// [`matvec_quantized`] without target-specific code paths.
pub fn matvec_quantized_portable(
    out: &mut [f32],
    w: &TensorView<'_>,
    acts: &QuantizedActivations<'_>,
) -> Result<(), Mismatch> {
    quantized_product(out, w, acts, Kernels::Portable)
}

/// Which kernels a product may run: the target's native one where it
/// applies, or the portable one alone (the reference the tests compare
/// the native ones with).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kernels {
    Native,
    Portable,
}

/// [`matvec_float`] with the kernels `k` allows.
#[inline(always)]
fn float_product(
    out: &mut [f32],
    w: &TensorView<'_>,
    x: &[f32],
    k: Kernels,
) -> Result<(), Mismatch> {
    let x = portable::check_float(out, w, x)?;
    let native = k == Kernels::Native && w.dtype == DType::F32;
    if !(native && native::matvec_f32(out, w.data, x)) {
        portable::float_rows(out, w, x);
    }
    Ok(())
}

/// [`matvec_quantized`] with the kernels `k` allows.
#[inline(always)]
fn quantized_product(
    out: &mut [f32],
    w: &TensorView<'_>,
    acts: &QuantizedActivations<'_>,
    k: Kernels,
) -> Result<(), Mismatch> {
    let ops = acts.operands(out.len(), w)?;
    match w.scale_type {
        ScaleType::F32 => quantized_rows(out, w, &ops, &F32Scales(w.scales), k),
        ScaleType::F16 => quantized_rows(out, w, &ops, &F16Scales(w.scales), k),
    }
    Ok(())
}

#[inline]
fn quantized_rows<S: Scales>(
    out: &mut [f32],
    w: &TensorView<'_>,
    ops: &Operands<'_>,
    s: &S,
    k: Kernels,
) {
    if !(k == Kernels::Native && native::quantized_rows(out, w, ops, s)) {
        portable::quantized_rows(out, w, ops, s);
    }
}

/// `out[t · out_stride + r] = row r · token t` for every token, with a kernel
/// that reads each block of weights once for several tokens; each output is
/// bit for bit [`matvec_quantized`]'s. Returns false (nothing written) where
/// no such kernel applies (the caller then runs one matvec per token).
pub(crate) fn matmul_quantized(
    out: &mut [f32],
    out_stride: usize,
    w: &TensorView<'_>,
    acts: &TokenActivations<'_>,
) -> bool {
    let group = w.group as usize;
    if w.dtype != DType::Q8 || group == 0 || acts.group != group || acts.len < w.cols() {
        return false;
    }
    match w.scale_type {
        ScaleType::F32 => native::matmul_q8(out, out_stride, w, acts, &F32Scales(w.scales)),
        ScaleType::F16 => native::matmul_q8(out, out_stride, w, acts, &F16Scales(w.scales)),
    }
}

/// One attention head over an f32 KV cache with the target's fastest code:
/// scores of `h.q` against the keys of every position (`scores.len()` of
/// them), scaled, softmax, and the score-weighted sum of the values into
/// `out`. Returns false (nothing done) where there is no such code; the
/// caller then runs the portable loop ([`super::nn::attend`]), which
/// computes the same bits.
#[inline]
pub(crate) fn attend_head_f32(h: &Head<'_, f32>, out: &mut [f32], scores: &mut [f32]) -> bool {
    native::attend_head_f32(h, out, scores)
}

/// [`attend_head_f32`] over an f16 KV cache (bit patterns).
#[inline]
pub(crate) fn attend_head_f16(h: &Head<'_, u16>, out: &mut [f32], scores: &mut [f32]) -> bool {
    native::attend_head_f16(h, out, scores)
}

/// In-place softmax: max-subtracted [`super::exp`], the sum over
/// [`super::LANES`] lane accumulators combined in the fixed order (so it
/// vectorizes and every target adds in the same order), then scaled by its
/// inverse.
pub fn softmax(x: &mut [f32]) {
    if !native::softmax(x) {
        super::portable::softmax_body(x);
    }
}

/// The native kernels this build selects, in words (the firmware logs it at
/// boot, and its tests check it on each Cortex-M target).
#[cfg(target_arch = "x86_64")]
pub const NATIVE_KERNELS: &str = "x86-64 AVX2 and F16C, where the CPU has them";
#[cfg(all(target_arch = "arm", thinkling_arm_dsp, thinkling_arm_fp16))]
pub const NATIVE_KERNELS: &str =
    "Arm DSP (SXTB16, UXTB16, SMLAD) and FPU half precision (VCVTB, VCVTT, VMLA)";
#[cfg(all(target_arch = "arm", thinkling_arm_dsp, not(thinkling_arm_fp16)))]
pub const NATIVE_KERNELS: &str = "Arm DSP (SXTB16, SMLAD)";
#[cfg(not(any(target_arch = "x86_64", all(target_arch = "arm", thinkling_arm_dsp))))]
pub const NATIVE_KERNELS: &str = "none (portable kernels)";

/// The native kernels of x86-64: AVX2 (and F16C), detected at run time.
#[cfg(target_arch = "x86_64")]
mod native {
    pub(crate) use super::super::x86::{
        attend_head as attend_head_f32, attend_head as attend_head_f16, matmul_q8, matvec_f32,
        quantized_rows, softmax,
    };
}

/// The native kernels of Cortex-M4/M7 (Armv7E-M): the DSP extension's Q8/Q4
/// row loops and the FPU's half-precision attention, where the FPU exists;
/// the rest declines.
#[cfg(all(target_arch = "arm", thinkling_arm_dsp))]
mod native {
    #[cfg(thinkling_arm_fp16)]
    pub(crate) use super::super::arm::{attend_head_f16, rows::quantized_rows};
    #[cfg(not(thinkling_arm_fp16))]
    pub(crate) use super::declined::{attend_head_f16, quantized_rows};
    pub(crate) use super::declined::{attend_head_f32, matmul_q8, matvec_f32, softmax};
}

/// Every other target: no native kernels, the portable ones run.
#[cfg(not(any(target_arch = "x86_64", all(target_arch = "arm", thinkling_arm_dsp))))]
use declined as native;

/// The kernels of a target that has no native version of an operation: each
/// declines (false, nothing written), so the portable kernel runs.
#[allow(dead_code)]
mod declined {
    use super::*;

    #[inline(always)]
    pub fn matvec_f32(_: &mut [f32], _: &[u8], _: &[f32]) -> bool {
        false
    }

    #[inline(always)]
    pub fn quantized_rows<S: Scales>(
        _: &mut [f32],
        _: &TensorView<'_>,
        _: &Operands<'_>,
        _: &S,
    ) -> bool {
        false
    }

    #[inline(always)]
    pub fn matmul_q8<S: Scales>(
        _: &mut [f32],
        _: usize,
        _: &TensorView<'_>,
        _: &TokenActivations<'_>,
        _: &S,
    ) -> bool {
        false
    }

    #[inline(always)]
    pub fn attend_head_f32(_: &Head<'_, f32>, _: &mut [f32], _: &mut [f32]) -> bool {
        false
    }

    #[inline(always)]
    pub fn attend_head_f16(_: &Head<'_, u16>, _: &mut [f32], _: &mut [f32]) -> bool {
        false
    }

    #[inline(always)]
    pub fn softmax(_: &mut [f32]) -> bool {
        false
    }
}
