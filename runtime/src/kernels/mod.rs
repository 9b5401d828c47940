//! The arithmetic of the forward pass over weights read in place from the
//! blob. One file per concern, in reading order:
//!
//! - [`scalar`]: half → single conversion and the int8 group dot product,
//!   each with its target's instruction (a leaf every other module uses);
//! - [`view`]: [`TensorView`], a weight matrix borrowed from the blob, and
//!   the byte readers (little-endian f32/f16, scale tables);
//! - [`activations`]: an activation vector quantized to int8 for Q8/Q4
//!   products, with the layouts the kernels read;
//! - [`dispatch`]: the matvecs and attention heads callers use, and the one
//!   place that picks the fastest kernel for the target (AVX2 on x86-64 at
//!   run time, the DSP extension and FPU on Cortex-M4/M7 at build time) with
//!   the portable kernels as the fallback;
//! - [`portable`]: the portable kernels, the reference every native kernel
//!   matches bit for bit;
//! - [`nn`]: the small vector ops of a transformer (RMSNorm, softmax, RoPE,
//!   SwiGLU, attention over a cache, expert choice);
//! - `x86` and `arm`: the native kernels.
//!
//! Determinism: every f32 sum has a fixed shape on every target — dot
//! products use [`LANES`] independent accumulators over consecutive elements,
//! combined pairwise in a fixed order, then the tail added in order. Rust never
//! contracts `a * b + c` into a fused multiply-add on its own, so x86-64 and
//! Cortex-M compute bit-identical results. Integer sums (Q8/Q4) are exact, so
//! the compiler may reorder them freely.
//!
//! Q8/Q4 weights: the activation vector is quantized once per matvec to int8
//! with the weight's group size (groups along the row, the last one possibly
//! short, exactly as the weight rows are grouped), each group is an exact i32
//! dot product, and the group sums are scaled and added in row order.

pub mod activations;
mod attention_q8;
pub mod dispatch;
pub mod nn;
pub mod portable;
pub mod scalar;
pub mod view;

#[cfg(all(target_arch = "arm", thinkling_arm_dsp))]
mod arm;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests;

pub use activations::{pair_words, QuantizedActivations};
pub(crate) use attention_q8::attend_head_q8;
pub(crate) use dispatch::{attend_head_f16, attend_head_f32, matmul_quantized};
pub use dispatch::{
    matvec, matvec_float, matvec_float_portable, matvec_quantized, matvec_quantized_portable,
    softmax, NATIVE_KERNELS,
};
pub use nn::{add_assign, rmsnorm, swiglu};
pub use portable::{dot, exp, exp2};
pub use scalar::{f16_bits_to_f32, f16_bits_to_f32_soft};
pub use view::{le_f32, le_u16, TensorView};

/// Independent f32 accumulators of a dot product (enough for two 4-wide SIMD
/// registers; fixed so the summation order never depends on the target).
pub const LANES: usize = 8;

/// A kernel called with operands that do not fit together (lengths, group
/// sizes or layouts): a broken invariant of its caller, never a quiet zero.
/// The session sizes every buffer from the config the blob was validated
/// against, so it surfaces as [`crate::SessionError::Invariant`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch(pub &'static str);

impl core::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "kernel operands do not fit: {}", self.0)
    }
}
