//! Shared pieces of the CPU kernels: strided matrix views for `gemm`, reading
//! a tensor's f32 data in a backward pass, and writing disjoint parts of one
//! output buffer from several threads.

use candle_core::{Storage, Tensor};

/// A row-major-or-not matrix view: element `(i, j)` is at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy)]
pub struct Mat {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

impl Mat {
    /// Row-major with `ld` elements between rows.
    pub fn rows(data: &[f32], offset: usize, ld: usize) -> Self {
        Self {
            ptr: data[offset..].as_ptr(),
            rs: ld as isize,
            cs: 1,
        }
    }

    /// The transpose of a row-major matrix with leading dimension `ld`.
    pub fn rows_t(data: &[f32], offset: usize, ld: usize) -> Self {
        Self {
            ptr: data[offset..].as_ptr(),
            rs: 1,
            cs: ld as isize,
        }
    }

    fn at(self, i: usize, j: usize) -> *const f32 {
        self.ptr
            .wrapping_offset(i as isize * self.rs)
            .wrapping_offset(j as isize * self.cs)
    }
}

/// A mutable row-major destination with leading dimension `ld`.
#[derive(Clone, Copy)]
pub struct Dst {
    pub ptr: *mut f32,
    pub ld: usize,
}

impl Dst {
    pub fn at(self, i: usize, j: usize) -> Self {
        Self {
            ptr: self.ptr.wrapping_add(i * self.ld + j),
            ld: self.ld,
        }
    }
}

/// `dst (m×n) = a (m×k) · b (k×n)`, or `dst += a·b` with `accumulate`.
/// `threads > 1` lets gemm split the output over the rayon pool (never the
/// `k` sum: results do not depend on the thread count's scheduling).
///
/// # Safety
/// The views must cover `m×k`, `k×n` and `m×n` valid elements, and `dst`
/// must not alias `a` or `b` nor be written concurrently elsewhere.
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: Dst,
    a: Mat,
    b: Mat,
    accumulate: bool,
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                std::slice::from_raw_parts_mut(dst.at(i, 0).ptr, n).fill(0.0);
            }
        }
        return;
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    gemm::gemm(
        m,
        n,
        k,
        dst.ptr,
        1,
        dst.ld as isize,
        accumulate,
        a.at(0, 0),
        a.cs,
        a.rs,
        b.at(0, 0),
        b.cs,
        b.rs,
        1.0,
        1.0,
        false,
        false,
        false,
        parallelism,
    );
}

/// Threads for one large gemm: the rayon pool's size.
pub fn pool_threads() -> usize {
    rayon::current_num_threads()
}

/// A pointer that may be shared between the threads of one kernel, each of
/// which writes a disjoint part of the buffer behind it.
#[derive(Clone, Copy)]
pub struct SharedMut(pub *mut f32);
// SAFETY: only used for disjoint writes, joined before the buffer is read.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    pub fn dst(self, offset: usize, ld: usize) -> Dst {
        Dst {
            ptr: self.0.wrapping_add(offset),
            ld,
        }
    }

    /// # Safety
    /// `offset..offset + len` must be in bounds and written by this thread only.
    pub unsafe fn slice<'a>(self, offset: usize, len: usize) -> &'a mut [f32] {
        std::slice::from_raw_parts_mut(self.0.add(offset), len)
    }
}

/// A buffer of `len` elements that the caller fills completely with
/// `fill(ptr)` before it is read.
pub fn filled(len: usize, fill: impl FnOnce(SharedMut)) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(len);
    fill(SharedMut(v.as_mut_ptr()));
    // SAFETY: `fill` wrote every element (the callers' contract).
    unsafe { v.set_len(len) };
    v
}

/// A contiguous f32 copy-free view of a CPU tensor, for backward passes.
pub fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("fused op: expected a CPU tensor");
    };
    let data = cpu.as_slice::<f32>()?;
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("fused op: tensor not contiguous".into()))?;
    Ok(f(&data[start..end]))
}

/// `x ← exp(x)` for every element (relative error ~2e-7 over the f32 range;
/// underflows to 0 below −87). AVX2 lanes when the CPU has them.
pub fn exp_inplace(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the features were just detected.
        return unsafe { exp_avx2(xs) };
    }
    exp_lanes(xs)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_avx2(xs: &mut [f32]) {
    exp_lanes(xs)
}

/// Cody–Waite range reduction `x = n·ln2 + r` and a degree-6 polynomial for
/// `e^r`, written without branches so the loop vectorises.
#[inline(always)]
fn exp_lanes(xs: &mut [f32]) {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2²³: adding it rounds to an integer
    for x in xs.iter_mut() {
        let v = x.clamp(-87.0, 88.0);
        let shifted = v.mul_add(LOG2E, ROUND);
        let n = shifted - ROUND;
        // The integer n sits in the low mantissa bits of `shifted`.
        let k = shifted.to_bits().wrapping_sub(ROUND.to_bits());
        let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, v));
        let mut p = 1.987_569_1e-4f32;
        p = p.mul_add(r, 1.398_199_9e-3);
        p = p.mul_add(r, 8.333_452e-3);
        p = p.mul_add(r, 4.166_579_6e-2);
        p = p.mul_add(r, 0.166_666_65);
        p = p.mul_add(r, 0.5);
        p = p.mul_add(r * r, r) + 1.0;
        let scale = f32::from_bits(k.wrapping_add(127) << 23);
        let y = p * scale;
        *x = if *x < -87.0 { 0.0 } else { y };
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_matches_std() {
        let xs: Vec<f32> = (-2000..2000).map(|i| i as f32 * 0.0435).collect();
        let mut ys = xs.clone();
        super::exp_inplace(&mut ys);
        for (x, y) in xs.iter().zip(ys) {
            let want = x.exp();
            assert!(
                (y - want).abs() <= 4e-7 * want + 1e-38,
                "exp({x}) = {y}, want {want}"
            );
        }
        let mut tiny = [-100.0f32, -87.5, f32::NEG_INFINITY];
        super::exp_inplace(&mut tiny);
        assert_eq!(tiny, [0.0; 3]);
    }
}
