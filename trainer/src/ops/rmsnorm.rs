//! RMSNorm `y = x / sqrt(mean(x²) + eps) · g` over the last dimension.
//!
//! With `r = 1/sqrt(mean(x²)+eps)` and `u = dy · g`:
//! `dx = r·u − x · r³ · mean(u·x)` and `dg = Σ_rows dy · x · r`.

use super::f32_slice;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

struct RmsNorm {
    eps: f32,
}
struct RmsNormBwdX {
    eps: f32,
}
struct RmsNormBwdG {
    eps: f32,
}

fn inv_rms(x: &[f32], eps: f32) -> f32 {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    1.0 / (ms + eps).sqrt()
}

fn check(x: &Layout, g: &Layout) -> Result<usize> {
    let d = x.shape().dims().last().copied().unwrap_or(0);
    if g.shape().dims() != [d] {
        candle_core::bail!(
            "rms norm: weight {:?} does not match input {:?}",
            g.shape(),
            x.shape()
        );
    }
    Ok(d)
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = check(l1, l2)?;
        let x = f32_slice(s1, l1, self.name())?;
        let g = f32_slice(s2, l2, self.name())?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(d)
            .zip(x.par_chunks(d))
            .for_each(|(yr, xr)| {
                let r = inv_rms(xr, self.eps);
                for ((o, &xv), &gv) in yr.iter_mut().zip(xr).zip(g) {
                    *o = xv * r * gv;
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        g: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = grad_res.contiguous()?;
        let dx = x.apply_op3_no_bwd(g, &dy, &RmsNormBwdX { eps: self.eps })?;
        let dg = x.apply_op2_no_bwd(&dy, &RmsNormBwdG { eps: self.eps })?;
        Ok((Some(dx), Some(dg)))
    }
}

impl CustomOp3 for RmsNormBwdX {
    fn name(&self) -> &'static str {
        "rms-norm-bwd-x"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = check(l1, l2)?;
        let x = f32_slice(s1, l1, self.name())?;
        let g = f32_slice(s2, l2, self.name())?;
        let dy = f32_slice(s3, l3, self.name())?;
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(d)
            .zip(x.par_chunks(d).zip(dy.par_chunks(d)))
            .for_each(|(dr, (xr, gr))| {
                let r = inv_rms(xr, self.eps);
                let dot: f32 = xr.iter().zip(gr).zip(g).map(|((a, b), c)| a * b * c).sum();
                let k = r * r * r * dot / d as f32;
                for (((o, &xv), &dyv), &gv) in dr.iter_mut().zip(xr).zip(gr).zip(g) {
                    *o = r * dyv * gv - xv * k;
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

impl CustomOp2 for RmsNormBwdG {
    fn name(&self) -> &'static str {
        "rms-norm-bwd-g"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = l1.shape().dims().last().copied().unwrap_or(0);
        let x = f32_slice(s1, l1, self.name())?;
        let dy = f32_slice(s2, l2, self.name())?;
        // Rows are summed in a fixed order so results do not depend on threading.
        let mut dg = vec![0f32; d];
        for (xr, gr) in x.chunks(d).zip(dy.chunks(d)) {
            let r = inv_rms(xr, self.eps);
            for ((o, &xv), &gv) in dg.iter_mut().zip(xr).zip(gr) {
                *o += gv * xv * r;
            }
        }
        Ok((CpuStorage::F32(dg), Shape::from(d)))
    }
}

/// RMSNorm of `x` (any rank, normalised over the last dim) with weight `g`.
pub fn rms_norm(x: &Tensor, g: &Tensor, eps: f32) -> Result<Tensor> {
    if !super::fused(x.device()) {
        return rms_norm_composed(x, g, eps);
    }
    x.contiguous()?.apply_op2(g, RmsNorm { eps })
}

/// The same from differentiable candle ops (any device; the test reference).
pub fn rms_norm_composed(x: &Tensor, g: &Tensor, eps: f32) -> Result<Tensor> {
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    let r = (ms + eps as f64)?.sqrt()?.recip()?;
    x.broadcast_mul(&r)?.broadcast_mul(g)
}
