//! SwiGLU gate `silu(u) · g` over the packed `ug (…, 2·hidden)` (the output
//! of one linear layer with `[w1; w3]`: `u` first, `g` second).
//!
//! With `s = σ(u)`: `du = dy · g · s · (1 + u·(1 − s))`, `dg = dy · u · s`.

use super::f32_slice;
use super::kernels::{exp_inplace, with_f32};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

struct SwiGlu;

/// Rows per parallel work item.
const ROWS: usize = 16;

fn hidden(shape: &Shape) -> Result<usize> {
    let last = shape.dims().last().copied().unwrap_or(0);
    if last % 2 != 0 {
        candle_core::bail!("swiglu: last dimension of {shape:?} must be even");
    }
    Ok(last / 2)
}

/// `out ← σ(x)`.
fn sigmoid_into(x: &[f32], out: &mut [f32]) {
    out.iter_mut().zip(x).for_each(|(o, &v)| *o = -v);
    exp_inplace(out);
    out.iter_mut().for_each(|o| *o = 1.0 / (1.0 + *o));
}

impl CustomOp1 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let hd = hidden(layout.shape())?;
        let ug = f32_slice(storage, layout, self.name())?;
        let mut y = vec![0f32; ug.len() / 2];
        if hd > 0 {
            y.par_chunks_mut(ROWS * hd)
                .zip(ug.par_chunks(ROWS * 2 * hd))
                .for_each(|(yr, xr)| {
                    for (yr, xr) in yr.chunks_mut(hd).zip(xr.chunks(2 * hd)) {
                        let (u, g) = xr.split_at(hd);
                        sigmoid_into(u, yr);
                        for ((o, &u), &g) in yr.iter_mut().zip(u).zip(g) {
                            *o *= u * g;
                        }
                    }
                });
        }
        let mut dims = layout.shape().dims().to_vec();
        *dims.last_mut().expect("rank ≥ 1") = hd;
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    fn bwd(&self, ug: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let hd = hidden(ug.shape())?;
        let dug = with_f32(ug, |ug| {
            with_f32(dy, |dy| {
                let mut dug = vec![0f32; ug.len()];
                if hd > 0 {
                    dug.par_chunks_mut(ROWS * 2 * hd)
                        .zip(ug.par_chunks(ROWS * 2 * hd).zip(dy.par_chunks(ROWS * hd)))
                        .for_each(|(dr, (xr, yr))| {
                            for (dr, (xr, yr)) in dr
                                .chunks_mut(2 * hd)
                                .zip(xr.chunks(2 * hd).zip(yr.chunks(hd)))
                            {
                                let (u, g) = xr.split_at(hd);
                                let (du, dg) = dr.split_at_mut(hd);
                                sigmoid_into(u, du);
                                for i in 0..hd {
                                    let s = du[i];
                                    du[i] = yr[i] * g[i] * s * (1.0 + u[i] * (1.0 - s));
                                    dg[i] = yr[i] * u[i] * s;
                                }
                            }
                        });
                }
                dug
            })
        })??;
        Ok(Some(Tensor::from_vec(dug, ug.shape(), ug.device())?))
    }
}

/// `silu(u) · g` for `ug = [u | g]` along the last dimension.
pub fn swiglu(ug: &Tensor) -> Result<Tensor> {
    if !super::fused(ug.device()) {
        return swiglu_composed(ug);
    }
    ug.contiguous()?.apply_op1(SwiGlu)
}

/// The same from differentiable candle ops (any device; the test reference).
pub fn swiglu_composed(ug: &Tensor) -> Result<Tensor> {
    let hd = hidden(ug.shape())?;
    let u = ug.narrow(D::Minus1, 0, hd)?;
    let g = ug.narrow(D::Minus1, hd, hd)?;
    u.silu()? * g
}
