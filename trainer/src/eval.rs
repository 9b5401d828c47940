//! Held-out evaluation and sampling run through the runtime engine on an f32
//! blob built by `export`: training, export and the board share one
//! generation implementation.
//!
//! A model is measured twice: on held-out problems in the trained surface
//! forms (in-distribution) and on problems written in phrasings, wrappers
//! and word templates that training never used (out-of-template, "ood"):
//! the second figure is the one a person typing their own question meets.

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
        ..EvalOptions::default()
    };
    export::eval::evaluate_blob(&blob, problems, &opts)
}

/// The fixed seed of every evaluation set: every evaluation of every run
/// sees the same problems.
pub const EVAL_SEED: u64 = 0x5eed;

/// Held-out problems: `n` from the built-in tasks of the mix (a fixed seed,
/// so every evaluation of every run sees the same set) plus held-out user
/// problems, at most `n` of them.
pub fn held_out(mix: &Mix, n: usize, user_held_out: &[Problem]) -> Vec<Problem> {
    let mut out = if mix.builtin().is_empty() {
        Vec::new()
    } else {
        tasks::held_out_set(mix, n, EVAL_SEED)
    };
    out.extend(user_held_out.iter().take(n).cloned());
    out
}

/// Out-of-template problems: `n` from the built-in tasks of the mix, each
/// written in a form training never used (none for a user-only mix).
pub fn out_of_template(mix: &Mix, n: usize) -> Vec<Problem> {
    if mix.builtin().is_empty() {
        Vec::new()
    } else {
        tasks::ood_set(mix, n, EVAL_SEED)
    }
}

/// In-distribution and out-of-template results of one model.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Held-out problems in trained forms (and held-out user problems).
    pub in_dist: EvalResult,
    /// Problems in held-out forms; `None` when there are none (user data only).
    pub ood: Option<EvalResult>,
}

/// Both evaluations of `ckpt`: `n` held-out problems of `mix` (plus held-out
/// user problems) and `n` out-of-template problems.
pub fn evaluate_both(
    ckpt: &Checkpoint,
    mix: &Mix,
    n: usize,
    user_held_out: &[Problem],
    budget: Option<usize>,
) -> Result<Evaluation> {
    let in_dist = evaluate_with_budget(ckpt, &held_out(mix, n, user_held_out), budget)?;
    let ood_set = out_of_template(mix, n);
    let ood = if ood_set.is_empty() {
        None
    } else {
        Some(evaluate_with_budget(ckpt, &ood_set, budget)?)
    };
    Ok(Evaluation { in_dist, ood })
}

fn counts_json(m: &BTreeMap<String, (usize, usize)>) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = m
        .iter()
        .map(|(k, (c, n))| {
            let acc = if *n == 0 { 0.0 } else { *c as f64 / *n as f64 };
            (k.clone(), json!({"accuracy": acc, "correct": c, "n": n}))
        })
        .collect();
    serde_json::Value::Object(map)
}

/// `{"accuracy", "n", "per_task": {task: {"accuracy","correct","n"}}, "per_form": {…}, "well_formed", "mean_think_tokens"}`.
pub fn to_json(r: &EvalResult) -> serde_json::Value {
    json!({
        "accuracy": r.accuracy,
        "n": r.n,
        "per_task": counts_json(&r.per_task),
        "per_form": counts_json(&r.per_form),
        "well_formed": r.well_formed,
        "mean_think_tokens": r.mean_think_tokens,
    })
}

/// The in-distribution object of [`to_json`] with `"ood": {"accuracy", "n",
/// "per_task", "per_form", …}` beside its keys (`null` without one).
pub fn evaluation_json(e: &Evaluation) -> serde_json::Value {
    let mut v = to_json(&e.in_dist);
    v["ood"] = e.ood.as_ref().map_or(serde_json::Value::Null, to_json);
    v
}

fn pct(c: usize, n: usize) -> f64 {
    100.0 * c as f64 / n.max(1) as f64
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
        s.push_str(&format!("\n  {k:<5} {:5.1}%  ({c}/{n})", pct(*c, *n)));
    }
    s
}

/// Both figures, per task side by side, then the out-of-template forms.
pub fn evaluation_summary(e: &Evaluation) -> String {
    let Some(ood) = &e.ood else {
        return format!("held-out (in-distribution): {}", summary(&e.in_dist));
    };
    let mut s = format!(
        "held-out exact match: in-distribution {:.1}% of {}, out-of-template {:.1}% of {} \
         (well-formed {:.1}% / {:.1}%)\n  task   in-dist        out-of-template",
        100.0 * e.in_dist.accuracy,
        e.in_dist.n,
        100.0 * ood.accuracy,
        ood.n,
        100.0 * e.in_dist.well_formed,
        100.0 * ood.well_formed,
    );
    let tasks: std::collections::BTreeSet<&String> = e
        .in_dist
        .per_task
        .keys()
        .chain(ood.per_task.keys())
        .collect();
    for k in tasks {
        let cell = |m: &BTreeMap<String, (usize, usize)>| match m.get(k) {
            Some(&(c, n)) => format!("{:5.1}% ({c}/{n})", pct(c, n)),
            None => "-".to_string(),
        };
        s.push_str(&format!(
            "\n  {k:<5}  {:<14} {}",
            cell(&e.in_dist.per_task),
            cell(&ood.per_task)
        ));
    }
    s.push_str("\n  out-of-template forms:");
    for (form, (c, n)) in &ood.per_form {
        s.push_str(&format!("\n    {:5.1}% ({c}/{n})  {form}", pct(*c, *n)));
    }
    s
}

/// The first `n` mistakes of `r`, one block each: the problem (and its form),
/// what the model thought and answered, and the expected answer.
pub fn mistakes_text(set: &str, r: &EvalResult, n: usize) -> String {
    let mut out = String::new();
    if n == 0 || r.mistakes.is_empty() {
        return out;
    }
    let shown = n.min(r.mistakes.len());
    out.push_str(&format!(
        "\n{set}mistakes ({shown} of {}):\n",
        r.mistakes.len()
    ));
    for m in r.mistakes.iter().take(n) {
        out.push_str(&format!("  problem:  {}\n", m.problem));
        if !m.form.is_empty() {
            out.push_str(&format!("  form:     {}\n", m.form));
        }
        out.push_str(&format!("  thinking: {}\n", m.think));
        out.push_str(&format!(
            "  answer:   {}   (expected {})\n\n",
            m.answer, m.expected
        ));
    }
    out
}
