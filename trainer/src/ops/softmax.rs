//! Causal softmax over attention scores `(…, T, T)` with the `1/sqrt(hd)`
//! scale folded in: row `i` keeps columns `0..=i`, the rest become exact zeros.
//! One pass instead of scale + mask + max + exp + sum + div, and a backward
//! that needs only the output.

use super::f32_slice;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

struct CausalSoftmax {
    scale: f32,
}

struct CausalSoftmaxBwd {
    scale: f32,
}

fn dims(shape: &Shape) -> Result<usize> {
    let d = shape.dims();
    if d.len() < 2 || d[d.len() - 1] != d[d.len() - 2] {
        candle_core::bail!("causal softmax: expected (..., T, T), got {shape:?}");
    }
    Ok(d[d.len() - 1])
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, self.name())?;
        let t = dims(layout.shape())?;
        let mut y = vec![0f32; x.len()];
        let scale = self.scale;
        y.par_chunks_mut(t * t)
            .zip(x.par_chunks(t * t))
            .for_each(|(ym, xm)| {
                for i in 0..t {
                    let xr = &xm[i * t..i * t + i + 1];
                    let yr = &mut ym[i * t..i * t + i + 1];
                    let max = xr.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                    let mut sum = 0f32;
                    for (o, &v) in yr.iter_mut().zip(xr) {
                        let e = ((v - max) * scale).exp();
                        *o = e;
                        sum += e;
                    }
                    let inv = 1.0 / sum;
                    yr.iter_mut().for_each(|o| *o *= inv);
                }
            });
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let g = grad_res.contiguous()?;
        let dx = res.apply_op2_no_bwd(&g, &CausalSoftmaxBwd { scale: self.scale })?;
        Ok(Some(dx))
    }
}

impl CustomOp2 for CausalSoftmaxBwd {
    fn name(&self) -> &'static str {
        "causal-softmax-bwd"
    }

    /// `dx_j = scale · y_j · (g_j − Σ_k g_k y_k)` over the kept columns.
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let y = f32_slice(s1, l1, self.name())?;
        let g = f32_slice(s2, l2, self.name())?;
        let t = dims(l1.shape())?;
        let mut dx = vec![0f32; y.len()];
        let scale = self.scale;
        dx.par_chunks_mut(t * t)
            .zip(y.par_chunks(t * t).zip(g.par_chunks(t * t)))
            .for_each(|(dm, (ym, gm))| {
                for i in 0..t {
                    let r = i * t..i * t + i + 1;
                    let (yr, gr) = (&ym[r.clone()], &gm[r.clone()]);
                    let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
                    for ((d, &yv), &gv) in dm[r].iter_mut().zip(yr).zip(gr) {
                        *d = scale * yv * (gv - dot);
                    }
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// `softmax(scale · x + causal mask)` along the last dimension of `(…, T, T)`.
pub fn causal_softmax(x: &Tensor, scale: f32) -> Result<Tensor> {
    if !super::fused(x.device()) {
        return causal_softmax_composed(x, scale);
    }
    x.contiguous()?.apply_op1(CausalSoftmax { scale })
}

/// The same from differentiable candle ops (any device; the test reference).
pub fn causal_softmax_composed(x: &Tensor, scale: f32) -> Result<Tensor> {
    let t = dims(x.shape())?;
    let mask: Vec<f32> = (0..t * t)
        .map(|k| {
            if k % t > k / t {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::from_vec(mask, (t, t), x.device())?;
    let x = (x * scale as f64)?.broadcast_add(&mask)?;
    candle_nn::ops::softmax(&x, D::Minus1)
}
