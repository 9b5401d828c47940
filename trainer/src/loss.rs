//! The dual loss: weighted cross-entropy over predicted tokens, with the
//! think span weighted α and the answer span 1 (weights come with the batch),
//! divided by the sum of weights.

use anyhow::Result;
use candle_core::Tensor;

/// Which span a predicted token belongs to (for logging the two losses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SpanKind {
    /// Padding: weight 0.
    Ignore = 0,
    Think = 1,
    Answer = 2,
    /// The problem text: weight `prompt_weight` (0 by default).
    Prompt = 3,
}

pub struct LossParts {
    /// The differentiable weighted loss (scalar).
    pub loss: Tensor,
    /// Mean negative log-likelihood over think-span tokens (NaN if none).
    pub think: f32,
    /// Mean negative log-likelihood over answer-span tokens (NaN if none).
    pub answer: f32,
}

/// Per-token negative log-likelihood `(N)` of `targets (N)` under `logits (N, V)`.
pub fn token_nll(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    Ok(crate::ops::token_nll(logits, targets)?)
}

/// `Σ wᵢ·nllᵢ / Σ wᵢ`, plus the per-span means for the log.
pub fn dual_loss(
    logits: &Tensor,
    targets: &Tensor,
    weights: &Tensor,
    spans: &[SpanKind],
) -> Result<LossParts> {
    let nll = token_nll(logits, targets)?;
    let wsum = weights.sum_all()?.to_scalar::<f32>()?;
    let loss = ((&nll * weights)?.sum_all()? / wsum.max(1e-9) as f64)?;
    let values = nll.to_vec1::<f32>()?;
    let mean = |kind: SpanKind| {
        let (s, n) = values
            .iter()
            .zip(spans)
            .filter(|(_, k)| **k == kind)
            .fold((0f64, 0usize), |(s, n), (v, _)| (s + *v as f64, n + 1));
        if n == 0 {
            f32::NAN
        } else {
            (s / n as f64) as f32
        }
    };
    Ok(LossParts {
        loss,
        think: mean(SpanKind::Think),
        answer: mean(SpanKind::Answer),
    })
}
