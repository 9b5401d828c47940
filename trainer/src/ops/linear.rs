//! `y = x · wᵀ` for `x (…, in)` and a weight `w (out, in)`: one gemm each
//! way, with the weight's gradient written directly in `w`'s own layout
//! (candle's `matmul(&w.t())` yields it transposed, and accumulating a
//! transposed gradient takes a strided copy).

use super::f32_slice;
use super::kernels::{filled, matmul, pool_threads, with_f32, Mat};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

struct Linear;

fn dims(x: &Shape, w: &Shape) -> Result<(usize, usize, usize)> {
    let (out, inp) = w.dims2()?;
    let d = x.dims();
    if d.last() != Some(&inp) {
        candle_core::bail!("linear: input {x:?} does not match weight {w:?}");
    }
    Ok((x.elem_count() / inp.max(1), inp, out))
}

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, inp, out) = dims(l1.shape(), l2.shape())?;
        let x = f32_slice(s1, l1, self.name())?;
        let w = f32_slice(s2, l2, self.name())?;
        let y = filled(n * out, |y| unsafe {
            matmul(
                n,
                out,
                inp,
                y.dst(0, out),
                Mat::rows(x, 0, inp),
                Mat::rows_t(w, 0, inp),
                false,
                pool_threads(),
            )
        });
        let mut shape = l1.shape().dims().to_vec();
        *shape.last_mut().expect("rank ≥ 1") = out;
        Ok((CpuStorage::F32(y), Shape::from(shape)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, inp, out) = dims(x.shape(), w.shape())?;
        let (dx, dw) = with_f32(x, |x| {
            with_f32(w, |w| {
                with_f32(dy, |dy| {
                    // dx (n×in) = dy (n×out) · w (out×in)
                    let dx = filled(n * inp, |dx| unsafe {
                        matmul(
                            n,
                            inp,
                            out,
                            dx.dst(0, inp),
                            Mat::rows(dy, 0, out),
                            Mat::rows(w, 0, inp),
                            false,
                            pool_threads(),
                        )
                    });
                    // dw (out×in) = dyᵀ (out×n) · x (n×in)
                    let dw = filled(out * inp, |dw| unsafe {
                        matmul(
                            out,
                            inp,
                            n,
                            dw.dst(0, inp),
                            Mat::rows_t(dy, 0, out),
                            Mat::rows(x, 0, inp),
                            false,
                            pool_threads(),
                        )
                    });
                    (dx, dw)
                })
            })
        })???;
        let dx = Tensor::from_vec(dx, x.shape(), x.device())?;
        let dw = Tensor::from_vec(dw, w.shape(), w.device())?;
        Ok((Some(dx), Some(dw)))
    }
}

/// `x · wᵀ` over the last dimension of `x`, for a weight `w (out, in)`.
pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if !super::fused(x.device()) {
        return linear_composed(x, w);
    }
    x.contiguous()?.apply_op2(&w.contiguous()?, Linear)
}

/// The same from candle's matmul (any device; the test reference).
pub fn linear_composed(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    match x.rank() {
        2 => x.matmul(&w.t()?),
        _ => x.broadcast_matmul(&w.t()?),
    }
}
