//! AdamW (PyTorch-equivalent, decoupled decay), the learning-rate schedule
//! and global gradient-norm clipping.
//!
//! Weight decay applies to matrices only (embedding included, as it is also
//! the tied LM head); the RMSNorm gains are not decayed: pulling a gain
//! toward 0 only fights the normalisation.

use crate::model::Params;
use anyhow::{anyhow, Result};
use candle_core::{backprop::GradStore, Device, Tensor, Var};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

struct Slot {
    var: Var,
    m: Var,
    v: Var,
    decay: bool,
}

pub struct AdamW {
    cfg: AdamWConfig,
    /// Steps taken (bias correction uses `t`, starting at 1).
    pub t: u64,
    slots: BTreeMap<String, Slot>,
}

impl AdamW {
    pub fn new(params: &Params, cfg: AdamWConfig) -> Result<Self> {
        let mut slots = BTreeMap::new();
        for (name, var) in params.iter() {
            let z = var.zeros_like()?;
            slots.insert(
                name.clone(),
                Slot {
                    var: var.clone(),
                    m: Var::from_tensor(&z)?,
                    v: Var::from_tensor(&z)?,
                    decay: var.rank() >= 2,
                },
            );
        }
        Ok(Self { cfg, t: 0, slots })
    }

    /// One update with learning rate `lr`; variables without a gradient are
    /// left alone (their moments too), as in PyTorch.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.t += 1;
        let c = self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2 = 1.0 - c.beta2.powi(self.t as i32);
        for slot in self.slots.values() {
            let Some(g) = grads.get(&slot.var) else {
                continue;
            };
            let m = ((slot.m.as_tensor() * c.beta1)? + (g * (1.0 - c.beta1))?)?;
            let v = ((slot.v.as_tensor() * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + c.eps)?)?;
            let decay = if slot.decay {
                1.0 - lr * c.weight_decay
            } else {
                1.0
            };
            let w = ((slot.var.as_tensor() * decay)? - (update * lr)?)?;
            slot.var.set(&w)?;
            slot.m.set(&m)?;
            slot.v.set(&v)?;
        }
        Ok(())
    }

    /// Moments as `{name}.m` / `{name}.v` tensors (for `optimizer.safetensors`).
    pub fn state_tensors(&self) -> BTreeMap<String, Tensor> {
        let mut out = BTreeMap::new();
        for (name, s) in &self.slots {
            out.insert(format!("{name}.m"), s.m.as_tensor().clone());
            out.insert(format!("{name}.v"), s.v.as_tensor().clone());
        }
        out
    }

    /// Restores the moments saved by [`Self::state_tensors`] and the step count.
    pub fn load_state(
        &mut self,
        tensors: &BTreeMap<String, Tensor>,
        t: u64,
        device: &Device,
    ) -> Result<()> {
        for (name, s) in &self.slots {
            for (suffix, var) in [("m", &s.m), ("v", &s.v)] {
                let key = format!("{name}.{suffix}");
                let src = tensors
                    .get(&key)
                    .ok_or_else(|| anyhow!("optimizer state lacks {key:?}"))?;
                if src.dims() != var.dims() {
                    return Err(anyhow!(
                        "optimizer state {key:?} has shape {:?}, expected {:?}",
                        src.dims(),
                        var.dims()
                    ));
                }
                var.set(&src.to_device(device)?)?;
            }
        }
        self.t = t;
        Ok(())
    }
}

/// Linear warmup from 0 to `peak` over `warmup` steps, then cosine down to
/// `peak · min_ratio` at `total`. `step` counts from 0.
pub fn lr_at(step: u64, peak: f64, warmup: u64, total: u64, min_ratio: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / span as f64).min(1.0);
    let cos = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    peak * (min_ratio + (1.0 - min_ratio) * cos)
}

/// Global L2 norm of the gradients of `params`; if it exceeds `max_norm`
/// (> 0), every gradient in the store is scaled by `max_norm / norm`.
/// Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut GradStore, params: &Params, max_norm: f64) -> Result<f64> {
    let mut sq = 0f64;
    for (_, var) in params.iter() {
        if let Some(g) = grads.get(var) {
            sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    let norm = sq.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for (_, var) in params.iter() {
            if let Some(g) = grads.remove(var) {
                grads.insert(var, (g * scale)?);
            }
        }
    }
    Ok(norm)
}
