//! Fused CPU kernels with a real backward pass.
//!
//! candle-nn's fast `softmax_last_dim`, `rms_norm` and `rope_i` are built with
//! `apply_op*_no_bwd`: their outputs are detached and the parameters behind
//! them silently stop learning. These ops implement `bwd`, and each has a
//! composed (slow, differentiable) twin used on non-CPU devices and as the
//! reference in tests.

mod rmsnorm;
mod rope;
mod softmax;

pub use rmsnorm::{rms_norm, rms_norm_composed};
pub use rope::{rope_composed, rope_tables, rope_to_heads, RopeTables};
pub use softmax::{causal_softmax, causal_softmax_composed};

use candle_core::{CpuStorage, Layout, Result};

/// The contiguous f32 slice a CPU custom op works on.
fn f32_slice<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: only f32 tensors are supported");
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}
