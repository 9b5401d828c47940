//! Rotary position embedding on interleaved pairs `(x[2i], x[2i+1])`, fused
//! with the `(B,T,H,hd) → (B,H,T,hd)` transpose that attention needs anyway.
//! A rotation's gradient is the inverse rotation (`sin → −sin`), applied by
//! the mirror op that transposes back.

use super::f32_slice;
use candle_core::{CpuStorage, CustomOp1, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Arc;

/// `cos`/`sin` of `t · θ^(−2i/hd)` for `t < max_t`, `i < hd/2`, row-major.
#[derive(Clone, Debug)]
pub struct RopeTables {
    pub max_t: usize,
    pub half: usize,
    pub cos: Arc<Vec<f32>>,
    pub sin: Arc<Vec<f32>>,
}

pub fn rope_tables(max_t: usize, head_dim: usize, theta: f32) -> RopeTables {
    let half = head_dim / 2;
    let mut cos = Vec::with_capacity(max_t * half);
    let mut sin = Vec::with_capacity(max_t * half);
    for t in 0..max_t {
        for i in 0..half {
            // f64 angles, then f32: the same values the runtime computes.
            let freq = (theta as f64).powf(-2.0 * i as f64 / head_dim as f64);
            let a = t as f64 * freq;
            cos.push(a.cos() as f32);
            sin.push(a.sin() as f32);
        }
    }
    RopeTables {
        max_t,
        half,
        cos: Arc::new(cos),
        sin: Arc::new(sin),
    }
}

impl RopeTables {
    fn tensors(&self, t: usize, device: &Device) -> Result<(Tensor, Tensor)> {
        let n = t * self.half;
        let cos = Tensor::from_slice(&self.cos[..n], (t, self.half), device)?;
        let sin = Tensor::from_slice(&self.sin[..n], (t, self.half), device)?;
        Ok((cos, sin))
    }
}

/// `to_heads`: `(B,T,H,hd) → (B,H,T,hd)` rotating by `+sin`;
/// otherwise `(B,H,T,hd) → (B,T,H,hd)` rotating by `−sin` (the gradient).
struct Rope {
    tables: RopeTables,
    to_heads: bool,
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        if self.to_heads {
            "rope-to-heads"
        } else {
            "rope-from-heads"
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, self.name())?;
        let (b, d1, d2, hd) = layout.shape().dims4()?;
        let t = if self.to_heads { d1 } else { d2 };
        if hd != 2 * self.tables.half || t > self.tables.max_t {
            candle_core::bail!("rope: shape {:?} does not fit the tables", layout.shape());
        }
        let (cos, sin) = (&self.tables.cos, &self.tables.sin);
        let half = self.tables.half;
        let sign = if self.to_heads { 1.0 } else { -1.0 };
        let mut y = vec![0f32; x.len()];
        // Parallel over output rows (one head at one position each).
        y.par_chunks_mut(hd).enumerate().for_each(|(row, out)| {
            // Output row (bi, a, c) of (B, d2, d1) reads input row (bi, c, a) of (B, d1, d2).
            let (bi, a, c) = (row / (d1 * d2), (row / d1) % d2, row % d1);
            let src = ((bi * d1 + c) * d2 + a) * hd;
            let pos = if self.to_heads { c } else { a };
            let xr = &x[src..src + hd];
            let (cr, sr) = (&cos[pos * half..][..half], &sin[pos * half..][..half]);
            for i in 0..half {
                let (x0, x1) = (xr[2 * i], xr[2 * i + 1]);
                let (co, si) = (cr[i], sign * sr[i]);
                out[2 * i] = x0 * co - x1 * si;
                out[2 * i + 1] = x0 * si + x1 * co;
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((b, d2, d1, hd))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let inverse = Rope {
            tables: self.tables.clone(),
            to_heads: !self.to_heads,
        };
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&inverse)?))
    }
}

/// `x: (B,T,H,hd)` → rotated `(B,H,T,hd)`, positions `0..T`.
pub fn rope_to_heads(x: &Tensor, tables: &RopeTables) -> Result<Tensor> {
    if !super::fused(x.device()) {
        return rope_composed(x, tables);
    }
    x.contiguous()?.apply_op1(Rope {
        tables: tables.clone(),
        to_heads: true,
    })
}

/// The same from differentiable candle ops (any device; the test reference).
pub fn rope_composed(x: &Tensor, tables: &RopeTables) -> Result<Tensor> {
    let t = x.dim(1)?;
    let (cos, sin) = tables.tensors(t, x.device())?;
    let x = x.transpose(1, 2)?.contiguous()?;
    candle_nn::rotary_emb::rope_i_slow(&x, &cos, &sin)
}
