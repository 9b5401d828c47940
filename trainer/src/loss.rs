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
    /// Sums and counts behind the two means, for combining shards of a batch.
    pub think_sum: SpanSum,
    pub answer_sum: SpanSum,
}

/// Summed negative log-likelihood and token count of one span kind.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SpanSum {
    pub nll: f64,
    pub tokens: usize,
}

impl std::ops::Add for SpanSum {
    type Output = SpanSum;

    fn add(self, o: SpanSum) -> SpanSum {
        SpanSum {
            nll: self.nll + o.nll,
            tokens: self.tokens + o.tokens,
        }
    }
}

impl SpanSum {
    /// The mean (NaN if no token).
    pub fn mean(self) -> f32 {
        if self.tokens == 0 {
            f32::NAN
        } else {
            (self.nll / self.tokens as f64) as f32
        }
    }
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
    let wsum = weights.sum_all()?.to_scalar::<f32>()?;
    dual_loss_over(logits, targets, weights, spans, wsum)
}

/// `Σ wᵢ·nllᵢ / total_weight`: the share of one shard of a batch whose
/// weights sum to `total_weight`, so that the shards' losses add up to the
/// batch's [`dual_loss`].
pub fn dual_loss_over(
    logits: &Tensor,
    targets: &Tensor,
    weights: &Tensor,
    spans: &[SpanKind],
    total_weight: f32,
) -> Result<LossParts> {
    let nll = token_nll(logits, targets)?;
    let loss = ((&nll * weights)?.sum_all()? / total_weight.max(1e-9) as f64)?;
    let values = nll.to_vec1::<f32>()?;
    let sum = |kind: SpanKind| {
        values.iter().zip(spans).filter(|(_, k)| **k == kind).fold(
            SpanSum::default(),
            |s, (v, _)| SpanSum {
                nll: s.nll + *v as f64,
                tokens: s.tokens + 1,
            },
        )
    };
    let (think_sum, answer_sum) = (sum(SpanKind::Think), sum(SpanKind::Answer));
    Ok(LossParts {
        loss,
        think: think_sum.mean(),
        answer: answer_sum.mean(),
        think_sum,
        answer_sum,
    })
}
