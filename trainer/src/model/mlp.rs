//! SwiGLU feed-forward: `w2(silu(w1 x) · w3 x)`, no biases.

use super::Params;
use crate::ops;
use anyhow::Result;
use candle_core::Tensor;

pub struct Mlp {
    w1: Tensor,
    w2: Tensor,
    w3: Tensor,
}

impl Mlp {
    pub fn new(params: &Params, prefix: &str) -> Result<Self> {
        Ok(Self {
            w1: params.tensor(&format!("{prefix}.w1.weight"))?,
            w2: params.tensor(&format!("{prefix}.w2.weight"))?,
            w3: params.tensor(&format!("{prefix}.w3.weight"))?,
        })
    }

    /// One linear layer for `w1` and `w3` together, the fused gate, `w2`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let w13 = Tensor::cat(&[&self.w1, &self.w3], 0)?;
        let h = ops::swiglu(&ops::linear(x, &w13)?)?;
        Ok(ops::linear(&h, &self.w2)?)
    }
}
