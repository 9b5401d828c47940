//! Held-out evaluation and sampling run through the runtime engine on an f32
//! blob built by `export`: training, export and the board share one
//! generation implementation.

use crate::model::Params;
use anyhow::Result;
use export::eval::{EvalOptions, EvalResult};
use export::{Checkpoint, ExportOptions, Quant};
use runtime::format::ModelConfig;
use serde_json::json;
use std::collections::BTreeMap;
use tasks::{Mix, Problem};

/// The trained weights as an export checkpoint (host f32 copies).
pub fn checkpoint(
    config: &ModelConfig,
    merges: &[(u32, u32)],
    params: &Params,
) -> Result<Checkpoint> {
    let mut tensors = BTreeMap::new();
    for (name, var) in params.iter() {
        let t = var.as_tensor().to_device(&candle_core::Device::Cpu)?;
        tensors.insert(
            name.clone(),
            (t.dims().to_vec(), t.flatten_all()?.to_vec1::<f32>()?),
        );
    }
    Ok(Checkpoint {
        config: *config,
        merges: merges.to_vec(),
        tensors,
    })
}

/// An unquantized blob of the checkpoint.
pub fn f32_blob(ckpt: &Checkpoint) -> Result<Vec<u8>> {
    Ok(export::build_blob(ckpt, &ExportOptions::with_quant(Quant::F32))?.0)
}

/// Greedy exact match on `problems`.
pub fn evaluate(ckpt: &Checkpoint, problems: &[Problem]) -> Result<EvalResult> {
    evaluate_with_budget(ckpt, problems, None)
}

/// [`evaluate`] with the engine's think budget: after `budget` thinking
/// tokens the engine closes the thought itself (`Some(0)`: no thinking).
pub fn evaluate_with_budget(
    ckpt: &Checkpoint,
    problems: &[Problem],
    budget: Option<usize>,
) -> Result<EvalResult> {
    let blob = f32_blob(ckpt)?;
    let opts = EvalOptions {
        max_new_tokens: ckpt.config.max_seq_len as usize,
        think_budget: budget,
        context: ckpt.config.max_seq_len as usize,
    };
    export::eval::evaluate_blob(&blob, problems, &opts)
}

/// Held-out problems: `n` from the built-in tasks of the mix (a fixed seed,
/// so every evaluation of every run sees the same set) plus held-out user
/// problems, at most `n` of them.
pub fn held_out(mix: &Mix, n: usize, user_held_out: &[Problem]) -> Vec<Problem> {
    let mut out = if mix.builtin().is_empty() {
        Vec::new()
    } else {
        tasks::held_out_set(mix, n, 0x5eed)
    };
    out.extend(user_held_out.iter().take(n).cloned());
    out
}

/// `{"accuracy", "n", "per_task": {task: {"accuracy","correct","n"}}, "well_formed", "mean_think_tokens"}`.
pub fn to_json(r: &EvalResult) -> serde_json::Value {
    let per_task: serde_json::Map<String, serde_json::Value> = r
        .per_task
        .iter()
        .map(|(k, (c, n))| {
            let acc = if *n == 0 { 0.0 } else { *c as f64 / *n as f64 };
            (k.clone(), json!({"accuracy": acc, "correct": c, "n": n}))
        })
        .collect();
    json!({
        "accuracy": r.accuracy,
        "n": r.n,
        "per_task": per_task,
        "well_formed": r.well_formed,
        "mean_think_tokens": r.mean_think_tokens,
    })
}

/// One line per task plus the overall numbers.
pub fn summary(r: &EvalResult) -> String {
    let mut s = format!(
        "exact match {:.1}% of {} (well-formed {:.1}%, mean thinking {:.1} tokens)",
        100.0 * r.accuracy,
        r.n,
        100.0 * r.well_formed,
        r.mean_think_tokens
    );
    for (k, (c, n)) in &r.per_task {
        s.push_str(&format!(
            "\n  {k:<5} {:5.1}%  ({c}/{n})",
            100.0 * *c as f64 / (*n).max(1) as f64
        ));
    }
    s
}
