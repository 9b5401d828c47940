//! One training step's loss and gradients, computed in shards.
//!
//! The batch is cut into `shards` equal parts that run forward and backward
//! side by side on the rayon pool, and their gradients are summed. At the
//! default model's size (dim 64) each of candle's ops is too small to share
//! well between cores: two whole shards, one per core, keep both cores busy
//! where two threads inside every op mostly wait on each other. Each shard's
//! loss is divided by the whole batch's weight, so the summed gradient is
//! the batch's gradient. The shard count belongs to the config, not to the
//! machine, so a run gives the same model on any number of cores.

use crate::data::{make_batch, Sequence};
use crate::loss::{dual_loss_over, SpanSum};
use crate::model::{Dropout, Params, Transformer};
use anyhow::{bail, Result};
use candle_core::backprop::GradStore;
use candle_core::Device;

/// What one step computed.
pub struct StepResult {
    /// The gradient of the batch's loss (plus the MoE balance loss).
    pub grads: GradStore,
    /// The batch's weighted loss.
    pub loss: f32,
    pub think: SpanSum,
    pub answer: SpanSum,
    /// Non-padding input tokens.
    pub tokens: usize,
    /// MoE only: the balance loss (mean over layers and shards) and each
    /// MoE layer's expert usage (mean over shards).
    pub moe: Option<(f32, Vec<Vec<f32>>)>,
}

/// Settings of the step that do not change between steps.
#[derive(Clone, Copy, Debug)]
pub struct StepSettings {
    pub shards: usize,
    pub dropout: f32,
    pub seed: u64,
    pub moe_aux_weight: f64,
}

/// Forward and backward of training step `step` over `seqs`.
pub fn gradients(
    model: &Transformer,
    params: &Params,
    seqs: &[Sequence],
    step: u64,
    s: StepSettings,
    device: &Device,
) -> Result<StepResult> {
    if seqs.is_empty() {
        bail!("training step {step} has no sequences");
    }
    let total_weight: f32 = seqs.iter().flat_map(|q| q.weights.iter()).sum();
    let per = seqs.len().div_ceil(s.shards.clamp(1, seqs.len()));
    let parts: Vec<&[Sequence]> = seqs.chunks(per).collect();
    let results = run_shards(&parts, 0, &|i, part| {
        shard(model, part, (total_weight, seqs.len()), step, i, s, device)
    })?;
    let n = results.len() as f32;
    let mut iter = results.into_iter();
    let Some(mut out) = iter.next() else {
        bail!("training step {step} ran no shard");
    };
    for r in iter {
        for (_, var) in params.iter() {
            if let Some(g) = r.grads.get(var) {
                let sum = match out.grads.remove(var) {
                    Some(acc) => (acc + g)?,
                    None => g.clone(),
                };
                out.grads.insert(var, sum);
            }
        }
        out.loss += r.loss;
        out.think = out.think + r.think;
        out.answer = out.answer + r.answer;
        out.tokens += r.tokens;
        if let (Some((aux, usage)), Some((raux, rusage))) = (out.moe.as_mut(), r.moe) {
            *aux += raux;
            for (layer, rlayer) in usage.iter_mut().zip(rusage) {
                for (u, ru) in layer.iter_mut().zip(rlayer) {
                    *u += ru;
                }
            }
        }
    }
    if let Some((aux, usage)) = out.moe.as_mut() {
        *aux /= n;
        for u in usage.iter_mut().flatten() {
            *u /= n;
        }
    }
    Ok(out)
}

/// Runs `f(index, part)` on every shard, halving the list across the pool
/// with `rayon::join`; results in shard order. `first` is the index of
/// `parts[0]`.
fn run_shards<F>(parts: &[&[Sequence]], first: usize, f: &F) -> Result<Vec<StepResult>>
where
    F: Fn(usize, &[Sequence]) -> Result<StepResult> + Sync,
{
    match parts.len() {
        0 => Ok(Vec::new()),
        1 => Ok(vec![f(first, parts[0])?]),
        n => {
            let (a, b) = parts.split_at(n / 2);
            let (ra, rb) = rayon::join(
                || run_shards(a, first, f),
                || run_shards(b, first + n / 2, f),
            );
            let mut ra = ra?;
            ra.extend(rb?);
            Ok(ra)
        }
    }
}

fn shard(
    model: &Transformer,
    seqs: &[Sequence],
    (total_weight, batch_seqs): (f32, usize),
    step: u64,
    index: usize,
    s: StepSettings,
    device: &Device,
) -> Result<StepResult> {
    let refs: Vec<&Sequence> = seqs.iter().collect();
    let batch = make_batch(&refs, device)?;
    let mut dropout = Dropout::for_shard(s.dropout, s.seed, step, index);
    let (logits, moe) = model.forward_with_stats(&batch.inputs, Some(&mut dropout))?;
    let parts = dual_loss_over(
        &logits,
        &batch.targets,
        &batch.weights,
        &batch.spans,
        total_weight,
    )?;
    let mut objective = parts.loss.clone();
    let mut moe_out = None;
    if !moe.is_empty() {
        // Mean over the MoE layers of the Switch balance loss; each shard
        // carries its share of the batch's mean.
        let mut aux = moe[0].aux.clone();
        for m in &moe[1..] {
            aux = (aux + &m.aux)?;
        }
        let aux = (aux / moe.len() as f64)?;
        let usage = moe.iter().map(|m| m.usage.clone()).collect();
        moe_out = Some((aux.to_scalar::<f32>()?, usage));
        if s.moe_aux_weight > 0.0 {
            let share = s.moe_aux_weight * seqs.len() as f64 / batch_seqs as f64;
            objective = (objective + (aux * share)?)?;
        }
    }
    let grads = objective.backward()?;
    Ok(StepResult {
        grads,
        loss: parts.loss.to_scalar::<f32>()?,
        think: parts.think_sum,
        answer: parts.answer_sum,
        tokens: batch.tokens,
        moe: moe_out,
    })
}
