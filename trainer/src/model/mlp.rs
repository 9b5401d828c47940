//! SwiGLU feed-forward: `w2(silu(w1 x) · w3 x)`, no biases.

use super::Params;
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

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = x.matmul(&self.w1.t()?)?.silu()?;
        let up = x.matmul(&self.w3.t()?)?;
        Ok((gate * up)?.matmul(&self.w2.t()?)?)
    }
}
