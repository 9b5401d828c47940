//! One pre-norm block: `x += attn(norm(x)); x += ffn(norm(x))`.

use super::moe::{Moe, MoeStats};
use super::{attention::Attention, mlp::Mlp, Dropout, Params};
use crate::ops::{self, RopeTables};
use anyhow::Result;
use candle_core::Tensor;
use runtime::format::ModelConfig;

pub struct Block {
    attention_norm: Tensor,
    attention: Attention,
    ffn_norm: Tensor,
    feed_forward: Ffn,
    eps: f32,
}

enum Ffn {
    Dense(Mlp),
    Moe(Moe),
}

impl Block {
    pub fn new(c: &ModelConfig, params: &Params, i: usize) -> Result<Self> {
        Ok(Self {
            attention_norm: params.tensor(&format!("layers.{i}.attention_norm.weight"))?,
            attention: Attention::new(c, params, &format!("layers.{i}.attention"))?,
            ffn_norm: params.tensor(&format!("layers.{i}.ffn_norm.weight"))?,
            feed_forward: match c.moe {
                Some(m) if c.is_moe_layer(i as u32) => Ffn::Moe(Moe::new(
                    params,
                    &format!("layers.{i}.feed_forward"),
                    m.n_experts as usize,
                    m.top_k as usize,
                )?),
                _ => Ffn::Dense(Mlp::new(params, &format!("layers.{i}.feed_forward"))?),
            },
            eps: c.norm_eps,
        })
    }

    pub fn forward(
        &self,
        x: &Tensor,
        b: usize,
        t: usize,
        rope: &RopeTables,
        mut dropout: Option<&mut Dropout>,
        stats: &mut Vec<MoeStats>,
    ) -> Result<Tensor> {
        let h = ops::rms_norm(x, &self.attention_norm, self.eps)?;
        let mut a = self.attention.forward(&h, b, t, rope)?;
        if let Some(d) = dropout.as_deref_mut() {
            a = d.apply(&a)?;
        }
        let x = (x + a)?;
        let h = ops::rms_norm(&x, &self.ffn_norm, self.eps)?;
        let mut f = match &self.feed_forward {
            Ffn::Dense(mlp) => mlp.forward(&h)?,
            Ffn::Moe(moe) => {
                let (f, s) = moe.forward(&h)?;
                stats.push(s);
                f
            }
        };
        if let Some(d) = dropout {
            f = d.apply(&f)?;
        }
        Ok((x + f)?)
    }
}
