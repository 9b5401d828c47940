//! Causal self-attention with RoPE and grouped-query heads.

use super::Params;
use crate::ops::{self, RopeTables};
use anyhow::Result;
use candle_core::Tensor;
use runtime::format::ModelConfig;

pub struct Attention {
    wq: Tensor,
    wk: Tensor,
    wv: Tensor,
    wo: Tensor,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    pub fn new(c: &ModelConfig, params: &Params, prefix: &str) -> Result<Self> {
        Ok(Self {
            wq: params.tensor(&format!("{prefix}.wq.weight"))?,
            wk: params.tensor(&format!("{prefix}.wk.weight"))?,
            wv: params.tensor(&format!("{prefix}.wv.weight"))?,
            wo: params.tensor(&format!("{prefix}.wo.weight"))?,
            n_heads: c.n_heads as usize,
            n_kv_heads: c.n_kv_heads as usize,
            head_dim: c.head_dim() as usize,
        })
    }

    /// `x: (B·T, dim)` → `(B·T, dim)`.
    pub fn forward(&self, x: &Tensor, b: usize, t: usize, rope: &RopeTables) -> Result<Tensor> {
        let (h, kv, hd) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let rep = h / kv;
        let q = x.matmul(&self.wq.t()?)?.reshape((b, t, h, hd))?;
        let k = x.matmul(&self.wk.t()?)?.reshape((b, t, kv, hd))?;
        let v = x.matmul(&self.wv.t()?)?.reshape((b, t, kv, hd))?;
        let q = ops::rope_to_heads(&q, rope)?; // (B, H, T, hd)
        let k = ops::rope_to_heads(&k, rope)?; // (B, KV, T, hd)
        let v = v.transpose(1, 2)?.contiguous()?;
        // Query head j uses kv head j / rep: stacking a kv head's `rep` query
        // heads along time lets one batched matmul serve them without
        // repeating K and V.
        let q = q.reshape((b, kv, rep * t, hd))?;
        let scores = q.matmul(&k.t()?)?.reshape((b, h, t, t))?;
        let probs = ops::causal_softmax(&scores, 1.0 / (hd as f32).sqrt())?;
        let y = probs
            .reshape((b, kv, rep * t, t))?
            .matmul(&v)?
            .reshape((b, h, t, hd))?
            .transpose(1, 2)?
            .reshape((b * t, h * hd))?;
        Ok(y.matmul(&self.wo.t()?)?)
    }
}
