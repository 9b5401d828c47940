//! Mixture of experts in place of a dense FFN: a linear router
//! (`router.weight`, `[experts, dim]`) picks the `top_k` largest logits per
//! token (lowest index on ties, as the runtime does), the gates are the
//! softmax over those k logits, and the output is `Σ gate_e · expert_e(x)`.
//!
//! Training computes every expert densely for every token and masks the
//! result by the gates (zero for the experts not chosen): for these tiny
//! models that is simple and every op has a backward. The runtime computes
//! only the k chosen experts. The top-k choice itself is made on the host
//! from the router logits (it has no gradient); the gate softmax and the
//! load-balancing loss are differentiable tensor ops.

use super::{mlp::Mlp, Params};
use anyhow::Result;
use candle_core::{Tensor, D};

pub struct Moe {
    router: Tensor,
    experts: Vec<Mlp>,
    top_k: usize,
}

/// What an MoE layer reports besides its output.
pub struct MoeStats {
    /// The Switch load-balancing loss `N · Σ_e f_e · P_e` (scalar tensor).
    pub aux: Tensor,
    /// `f_e`: share of the layer's token→expert assignments that went to each
    /// expert (sums to 1).
    pub usage: Vec<f32>,
}

/// Row-major `(n, e)` 0/1 mask of the `k` largest logits of each row, lowest
/// index first on ties (the runtime's `choose_experts`).
pub fn top_k_mask(logits: &[f32], n: usize, e: usize, k: usize) -> Vec<f32> {
    let mut mask = vec![0f32; n * e];
    let mut order: Vec<usize> = Vec::with_capacity(e);
    for r in 0..n {
        let row = &logits[r * e..(r + 1) * e];
        order.clear();
        order.extend(0..e);
        // Stable sort, descending: equal logits keep index order.
        order.sort_by(|&a, &b| {
            row[b]
                .partial_cmp(&row[a])
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        for &i in order.iter().take(k) {
            mask[r * e + i] = 1.0;
        }
    }
    mask
}

/// `N · Σ_e f_e · P_e` for router probabilities `probs (n, N)` and the
/// routing mask `mask (n, N)` with `k` ones per row: `f_e` is the share of
/// assignments to expert e (a constant), `P_e` the mean probability of e.
/// Equals 1 for uniform routing and grows as routing concentrates.
pub fn load_balance_loss(probs: &Tensor, mask: &Tensor, k: usize) -> Result<(Tensor, Vec<f32>)> {
    let (n, e) = probs.dims2()?;
    let f = (mask.sum(0)? / (n.max(1) * k.max(1)) as f64)?;
    let p = probs.mean(0)?;
    let aux = ((&f * &p)?.sum_all()? * e as f64)?;
    Ok((aux, f.to_vec1::<f32>()?))
}

impl Moe {
    pub fn new(params: &Params, prefix: &str, n_experts: usize, top_k: usize) -> Result<Self> {
        Ok(Self {
            router: params.tensor(&format!("{prefix}.router.weight"))?,
            experts: (0..n_experts)
                .map(|e| Mlp::new(params, &format!("{prefix}.experts.{e}")))
                .collect::<Result<_>>()?,
            top_k,
        })
    }

    /// `x: (N, dim)` → `(N, dim)` and the layer's balance statistics.
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, MoeStats)> {
        let logits = x.matmul(&self.router.t()?)?; // (N, E)
        let (n, e) = logits.dims2()?;
        let host: Vec<f32> = logits.flatten_all()?.to_vec1()?;
        let mask = Tensor::from_vec(top_k_mask(&host, n, e, self.top_k), (n, e), x.device())?;
        // Softmax over the chosen logits only: the others get -1e9 (exp → 0,
        // and so does their gradient).
        let masked = (&logits + ((&mask - 1.0)? * 1e9)?)?;
        let gates = candle_nn::ops::softmax(&masked, D::Minus1)?;
        let mut out: Option<Tensor> = None;
        for (i, expert) in self.experts.iter().enumerate() {
            let y = expert.forward(x)?.broadcast_mul(&gates.narrow(1, i, 1)?)?;
            out = Some(match out {
                None => y,
                Some(o) => (o + y)?,
            });
        }
        let probs = candle_nn::ops::softmax(&logits, D::Minus1)?;
        let (aux, usage) = load_balance_loss(&probs, &mask, self.top_k)?;
        let out = out.ok_or_else(|| anyhow::anyhow!("mixture of experts without experts"))?;
        Ok((out, MoeStats { aux, usage }))
    }
}
