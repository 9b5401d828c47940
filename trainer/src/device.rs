//! Device selection and CPU tuning.

use anyhow::{bail, Result};
use candle_core::Device;

/// `cpu`, or `cuda` when built with the `cuda` feature.
pub fn select(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(),
        other => bail!("unknown device {other:?} (expected cpu or cuda)"),
    }
}

#[cfg(feature = "cuda")]
fn cuda() -> Result<Device> {
    Device::new_cuda(0).map_err(|e| {
        // The driver's answer, without the backtrace candle may attach.
        let e = match e {
            candle_core::Error::WithBacktrace { inner, .. } => *inner,
            e => e,
        };
        anyhow::anyhow!(
            "--device cuda: no usable CUDA GPU (device 0 through the NVIDIA driver's libcuda.so.1): {e}"
        )
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> Result<Device> {
    bail!("--device cuda needs a trainer built with `--features cuda`")
}

/// Keeps freed multi-megabyte buffers in the process instead of returning
/// them to the OS: glibc's default unmaps them and every step page-faults
/// them back in (~23 % of training time measured on 2 cores).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        // SAFETY: mallopt only adjusts allocator thresholds; called before
        // any threads start.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Sets the compute threads (gemm and the fused kernels run on the rayon
/// pool, sized by `RAYON_NUM_THREADS`); must run before the first tensor
/// operation.
///
/// candle's element-wise ops have a second pool of spinning workers; beside
/// the rayon pool they oversubscribe a small machine (measured on 2 cores:
/// up to 40 % of the step spent spinning). The heavy work runs in the fused
/// kernels, so candle's pool is reduced to the calling thread unless
/// `CANDLE_NUM_THREADS` says otherwise.
pub fn set_threads(n: usize) {
    if n > 0 {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}
