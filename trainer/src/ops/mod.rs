//! Fused CPU kernels with a real backward pass.
//!
//! candle-nn's fast `softmax_last_dim`, `rms_norm` and `rope_i` are built with
//! `apply_op*_no_bwd`: their outputs are detached and the parameters behind
//! them silently stop learning. These ops implement `bwd`, and each has a
//! composed (slow, differentiable) twin used on non-CPU devices and as the
//! reference in tests. On a GPU every op takes the composed form, built from
//! candle's own CUDA kernels; [`composed_only`] runs a CPU computation that
//! way, so the tests cover the GPU path's arithmetic without a GPU.
//!
//! The training step's hot path runs through them: one gemm per linear layer
//! and direction ([`linear`]), attention with RoPE in one kernel per
//! (batch, kv head) block ([`causal_attention`]), the SwiGLU gate
//! ([`swiglu`]), RMSNorm and the per-token loss ([`token_nll`]).

mod attention;
mod cross_entropy;
mod kernels;
mod linear;
mod rmsnorm;
mod rope;
mod softmax;
mod swiglu;

pub use attention::{causal_attention, causal_attention_composed, AttnShape};
pub use cross_entropy::{token_nll, token_nll_composed};
pub use linear::{linear, linear_composed};
pub use rmsnorm::{rms_norm, rms_norm_composed};
pub use rope::{rope_composed, rope_tables, rope_to_heads, RopeTables};
pub use softmax::{causal_softmax, causal_softmax_composed};
pub use swiglu::{swiglu, swiglu_composed};

use candle_core::{CpuStorage, Device, Layout, Result};
use std::cell::Cell;

thread_local! {
    static COMPOSED_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// Whether an op on `device` runs its fused CPU kernel (on the CPU, outside
/// [`composed_only`]); otherwise it is built from candle's ops.
fn fused(device: &Device) -> bool {
    device.is_cpu() && !COMPOSED_ONLY.with(Cell::get)
}

/// Runs `f` with every op of this module in its composed form on this
/// thread, as on a GPU (the gradients too: they are taken where the forward
/// ran).
pub fn composed_only<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            COMPOSED_ONLY.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(COMPOSED_ONLY.with(|c| c.replace(true)));
    f()
}

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
