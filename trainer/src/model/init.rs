//! Weight initialisation from the run's seed: normal(0, 0.02) for matrices,
//! residual output projections (wo, w2) scaled by 1/sqrt(2·layers) as in
//! GPT-2, norms at 1. Drawn from our own ChaCha8 stream (in name order) so the
//! same seed gives the same weights on any device.

use super::Params;
use anyhow::Result;
use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use runtime::format::ModelConfig;

const STD: f64 = 0.02;

/// `(name, shape)` of every parameter of `c`, with the contract's names.
pub fn param_shapes(c: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let (d, hd) = (c.dim as usize, c.head_dim() as usize);
    let (q, kv, h, v) = (
        c.n_heads as usize * hd,
        c.n_kv_heads as usize * hd,
        c.hidden_dim as usize,
        c.vocab_size as usize,
    );
    let mut out = vec![("tok_embeddings.weight".to_string(), vec![v, d])];
    for i in 0..c.n_layers {
        let p = format!("layers.{i}.");
        out.push((format!("{p}attention_norm.weight"), vec![d]));
        out.push((format!("{p}attention.wq.weight"), vec![q, d]));
        out.push((format!("{p}attention.wk.weight"), vec![kv, d]));
        out.push((format!("{p}attention.wv.weight"), vec![kv, d]));
        out.push((format!("{p}attention.wo.weight"), vec![d, q]));
        out.push((format!("{p}ffn_norm.weight"), vec![d]));
        match c.moe {
            Some(m) if c.is_moe_layer(i) => {
                let n = m.n_experts as usize;
                out.push((format!("{p}feed_forward.router.weight"), vec![n, d]));
                for e in 0..n {
                    let q = format!("{p}feed_forward.experts.{e}.");
                    out.push((format!("{q}w1.weight"), vec![h, d]));
                    out.push((format!("{q}w3.weight"), vec![h, d]));
                    out.push((format!("{q}w2.weight"), vec![d, h]));
                }
            }
            _ => {
                out.push((format!("{p}feed_forward.w1.weight"), vec![h, d]));
                out.push((format!("{p}feed_forward.w3.weight"), vec![h, d]));
                out.push((format!("{p}feed_forward.w2.weight"), vec![d, h]));
            }
        }
    }
    out.push(("norm.weight".to_string(), vec![d]));
    if !c.tied_embeddings {
        out.push(("output.weight".to_string(), vec![v, d]));
    }
    out
}

/// Standard normal by Box–Muller (rand_distr is not needed for one function).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]: ln never sees 0
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

pub fn init_params(c: &ModelConfig, seed: u64, device: &Device) -> Result<Params> {
    let mut shapes = param_shapes(c);
    shapes.sort_by(|a, b| a.0.cmp(&b.0));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let residual_std = STD / (2.0 * c.n_layers as f64).sqrt();
    let mut params = Params::default();
    for (name, shape) in shapes {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = if shape.len() == 1 {
            vec![1.0; n]
        } else {
            let std = if name.ends_with("wo.weight") || name.ends_with("w2.weight") {
                residual_std
            } else {
                STD
            };
            (0..n).map(|_| (normal(&mut rng) * std) as f32).collect()
        };
        let t = Tensor::from_vec(data, shape, device)?;
        params.insert(name, Var::from_tensor(&t)?);
    }
    Ok(params)
}
