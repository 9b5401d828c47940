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

    /// `x: (B·T, dim)` → `(B·T, dim)`: one linear layer for q, k and v
    /// together, the fused attention kernel, the output projection.
    pub fn forward(&self, x: &Tensor, b: usize, t: usize, rope: &RopeTables) -> Result<Tensor> {
        let wqkv = Tensor::cat(&[&self.wq, &self.wk, &self.wv], 0)?;
        let qkv = ops::linear(x, &wqkv)?;
        let shape = ops::AttnShape {
            batch: b,
            seq: t,
            heads: self.n_heads,
            kv_heads: self.n_kv_heads,
            head_dim: self.head_dim,
        };
        let y = ops::causal_attention(&qkv, shape, rope)?;
        Ok(ops::linear(&y, &self.wo)?)
    }
}
