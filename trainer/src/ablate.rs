//! `trainer ablate`: does thinking help? Trains the default-size model with
//! equal training-token budgets — thinking with α ∈ {0.5, 0.3, 1.0} and
//! answer-only — evaluates each on the same held-out problems, and measures
//! accuracy against the engine's think budget. Writes `ablation.md`,
//! `ablation.json` and `ablation.svg` into the output directory.
//!
//! All variants share the tokenizer of the first (α = 0.5) run. The thinking
//! variants train `steps` steps; the answer-only variant's sequences are much
//! shorter, so it trains as many steps as the same number of training tokens
//! takes (from the measured tokens of the α = 0.5 run and the mean length of
//! answer-only sequences).
//!
//! Each variant checkpoints; rerunning the command resumes where it stopped
//! and only evaluates variants that finished.

use crate::bpe;
use crate::checkpoint::{TrainState, STATE_FILE, TOKENIZER_FILE};
use crate::config::TrainConfig;
use crate::data::{encode_problem, ProblemSource, SpanWeights};
use crate::eval;
use crate::fsutil::write_atomic;
use crate::train;
use anyhow::{anyhow, Context, Result};
use export::eval::EvalResult;
use plotters::prelude::*;
use rand::SeedableRng;
use serde_json::json;
use std::path::{Path, PathBuf};
use tasks::{ChaCha8Rng, Mix};

pub struct AblateOptions {
    pub out: PathBuf,
    /// Steps of the thinking variants (the token budget follows).
    pub steps: u64,
    /// Held-out problems per evaluation.
    pub eval_n: usize,
    /// Model for the think-budget sweep (default: this ablation's α = 0.5 run).
    pub budget_model: Option<PathBuf>,
    pub budgets: Vec<usize>,
    /// Skip the training variants (think-budget sweep only).
    pub budgets_only: bool,
    pub seed: u64,
    /// Task mix of the training variants (`default` for the default mix).
    pub tasks: String,
}

struct Variant {
    name: &'static str,
    alpha: f32,
    no_think: bool,
}

const VARIANTS: [Variant; 4] = [
    Variant {
        name: "think a=0.5",
        alpha: 0.5,
        no_think: false,
    },
    Variant {
        name: "think a=0.3",
        alpha: 0.3,
        no_think: false,
    },
    Variant {
        name: "think a=1.0",
        alpha: 1.0,
        no_think: false,
    },
    Variant {
        name: "answer-only",
        alpha: 0.5,
        no_think: true,
    },
];

fn dir_name(v: &Variant) -> String {
    if v.no_think {
        "answer-only".into()
    } else {
        format!("think-a{}", v.alpha)
    }
}

/// Mean training-sequence length (input tokens) of the mix under `tok`.
fn mean_len(mix: &Mix, merges: &[(u32, u32)], no_think: bool, context: usize) -> Result<f64> {
    let source = ProblemSource::new(mix, Vec::new(), no_think)?;
    let owned = bpe::OwnedTokenizer::from_merges(merges);
    let tok = owned.tokenizer();
    let mut rng = ChaCha8Rng::seed_from_u64(0xab1a7e);
    let lens: Vec<usize> = (0..4000)
        .map(|_| {
            encode_problem(&tok, &source.sample(&mut rng), SpanWeights::think(0.5))
                .ids
                .len()
        })
        .filter(|&n| n <= context)
        .map(|n| n - 1)
        .collect();
    Ok(lens.iter().sum::<usize>() as f64 / lens.len().max(1) as f64)
}

fn acc_of(r: &EvalResult, task: &str) -> f64 {
    r.per_task
        .get(task)
        .map(|(c, n)| *c as f64 / (*n).max(1) as f64)
        .unwrap_or(f64::NAN)
}

pub fn run(o: &AblateOptions) -> Result<serde_json::Value> {
    std::fs::create_dir_all(&o.out)
        .with_context(|| format!("{}: cannot create", o.out.display()))?;
    let base = TrainConfig {
        steps: o.steps,
        seed: o.seed,
        eval_every: 0,
        final_eval_n: o.eval_n,
        // Checkpoints make the hour-long ablation resumable variant by variant.
        checkpoint_every: 500,
        export: false,
        tasks: o.tasks.clone(),
        ..TrainConfig::default_preset()
    };
    base.validate()?;
    let mix = Mix::parse(&base.tasks)?;
    let tasks: Vec<String> = mix
        .builtin()
        .iter()
        .map(|(k, _)| k.name().to_string())
        .collect();
    let mut variants = Vec::new();
    let mut shared_tok: Option<PathBuf> = None;
    let mut budget_tokens = 0u64;
    if !o.budgets_only {
        for v in &VARIANTS {
            let dir = o.out.join(dir_name(v));
            let mut cfg = TrainConfig {
                alpha: v.alpha,
                no_think: v.no_think,
                ..base.clone()
            };
            if let Some(t) = &shared_tok {
                cfg.tokenizer = t.display().to_string();
            }
            if v.no_think {
                let merges = bpe::load_tokenizer(shared_tok.as_ref().ok_or_else(|| {
                    anyhow!("the answer-only variant needs the first run's tokenizer")
                })?)?;
                let len = mean_len(&mix, &merges, true, cfg.context as usize)?;
                cfg.steps =
                    ((budget_tokens as f64 / (len * cfg.batch_size as f64)).round() as u64).max(1);
                cfg.warmup_steps = cfg.warmup_steps.min(cfg.steps / 2);
                eprintln!(
                    "answer-only: mean sequence {len:.1} tokens → {} steps for {budget_tokens} tokens",
                    cfg.steps
                );
            }
            // A variant with a checkpoint resumes (or, finished, is only
            // evaluated); resume refuses a checkpoint of another configuration.
            let resume = dir.join(STATE_FILE).exists();
            eprintln!(
                "== {} ({} steps) → {}{}",
                v.name,
                cfg.steps,
                dir.display(),
                if resume { " (resuming)" } else { "" }
            );
            let outcome = train::run(
                &cfg,
                &train::Options {
                    out: dir.clone(),
                    resume,
                    progress: false,
                    stop_after: None,
                },
            )?;
            let state: TrainState =
                serde_json::from_str(&std::fs::read_to_string(dir.join(STATE_FILE))?)?;
            if shared_tok.is_none() {
                shared_tok = Some(dir.join(TOKENIZER_FILE));
                budget_tokens = state.tokens_seen;
            }
            let r = outcome
                .final_eval
                .map(|e| e.in_dist)
                .ok_or_else(|| anyhow!("{}: no final evaluation", v.name))?;
            eprintln!("{}: {}", v.name, eval::summary(&r));
            variants.push((v, cfg.steps, state.tokens_seen, state.elapsed_s, r));
        }
    }

    // Accuracy against the engine's think budget.
    let budget_dir = match (&o.budget_model, o.budgets_only) {
        (Some(d), _) => Some(d.clone()),
        (None, false) => Some(o.out.join(dir_name(&VARIANTS[0]))),
        (None, true) => None,
    };
    let mut sweep: Vec<(Option<usize>, EvalResult)> = Vec::new();
    let mut sweep_tasks = tasks.clone();
    if let Some(dir) = &budget_dir {
        let ckpt = export::load_run(dir)?;
        // The sweep model's own task mix.
        let text = std::fs::read_to_string(dir.join(crate::checkpoint::CONFIG_FILE))?;
        let rc: crate::config::RunConfig = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a run config", dir.display()))?;
        let sweep_mix = Mix::parse(&rc.train.tasks)?;
        sweep_tasks = sweep_mix
            .builtin()
            .iter()
            .map(|(k, _)| k.name().to_string())
            .collect();
        let set = eval::held_out(&sweep_mix, o.eval_n, &[]);
        let mut budgets: Vec<Option<usize>> = o.budgets.iter().map(|b| Some(*b)).collect();
        budgets.push(None);
        for b in budgets {
            let r = eval::evaluate_with_budget(&ckpt, &set, b)?;
            eprintln!(
                "think budget {}: {}",
                b.map_or("none".to_string(), |b| b.to_string()),
                eval::summary(&r)
            );
            sweep.push((b, r));
        }
    }

    // Table, JSON, plot.
    let mut md = String::new();
    md.push_str(&format!(
        "Held-out exact match ({} problems, task mix `{}`, greedy), default-size model, seed {}.\n\n",
        o.eval_n, o.tasks, o.seed
    ));
    if !variants.is_empty() {
        md.push_str(&format!(
            "| variant | steps | training tokens | train s | all | {} | mean think tokens |\n|---|---|---|---|---|{}---|\n",
            tasks.join(" | "),
            "---|".repeat(tasks.len())
        ));
        for (v, steps, tokens, secs, r) in &variants {
            let per: Vec<String> = tasks
                .iter()
                .map(|t| format!("{:.1} %", 100.0 * acc_of(r, t)))
                .collect();
            md.push_str(&format!(
                "| {} | {steps} | {tokens} | {secs:.0} | {:.1} % | {} | {:.1} |\n",
                v.name,
                100.0 * r.accuracy,
                per.join(" | "),
                r.mean_think_tokens
            ));
        }
        md.push('\n');
    }
    if let Some(dir) = &budget_dir {
        md.push_str(&format!(
            "Think budget sweep on `{}` (the engine closes the thought after N thinking tokens):\n\n| think budget | all | {} | mean think tokens |\n|---|---|{}---|\n",
            dir.display(),
            sweep_tasks.join(" | "),
            "---|".repeat(sweep_tasks.len())
        ));
        for (b, r) in &sweep {
            let per: Vec<String> = sweep_tasks
                .iter()
                .map(|t| format!("{:.1} %", 100.0 * acc_of(r, t)))
                .collect();
            md.push_str(&format!(
                "| {} | {:.1} % | {} | {:.1} |\n",
                b.map_or("none".to_string(), |b| b.to_string()),
                100.0 * r.accuracy,
                per.join(" | "),
                r.mean_think_tokens
            ));
        }
    }
    let report = json!({
        "eval_n": o.eval_n,
        "tasks": o.tasks,
        "seed": o.seed,
        "think_steps": o.steps,
        "token_budget": budget_tokens,
        "variants": variants.iter().map(|(v, steps, tokens, secs, r)| json!({
            "name": v.name, "alpha": v.alpha, "no_think": v.no_think, "steps": steps,
            "training_tokens": tokens, "train_s": secs, "eval": eval::to_json(r),
        })).collect::<Vec<_>>(),
        "think_budget_model": budget_dir.as_ref().map(|d| d.display().to_string()),
        "think_budget": sweep.iter().map(|(b, r)| json!({
            "budget": b, "eval": eval::to_json(r),
        })).collect::<Vec<_>>(),
    });
    write_atomic(&o.out.join("ablation.md"), md.as_bytes())?;
    write_atomic(
        &o.out.join("ablation.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    let bars: Vec<(String, Vec<f64>)> = variants
        .iter()
        .map(|(v, _, _, _, r)| {
            let mut a = vec![r.accuracy];
            a.extend(tasks.iter().map(|t| acc_of(r, t)));
            (v.name.to_string(), a)
        })
        .collect();
    plot(
        &o.out.join("ablation.svg"),
        &tasks,
        &sweep_tasks,
        &bars,
        &sweep,
    )?;
    print!("{md}");
    Ok(report)
}

const COLORS: [RGBColor; 5] = [
    BLACK,
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
];

/// Left: accuracy per variant (overall and per task) as grouped bars.
/// Right: accuracy against the think budget.
fn plot(
    path: &Path,
    tasks: &[String],
    sweep_tasks: &[String],
    bars: &[(String, Vec<f64>)],
    sweep: &[(Option<usize>, EvalResult)],
) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("plot {}: {e}", path.display());
    let root = SVGBackend::new(path, (1100, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (left, right) = root.split_horizontally(550);
    let groups: Vec<String> = std::iter::once("all".to_string())
        .chain(tasks.iter().cloned())
        .collect();
    {
        let n = bars.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&left)
            .caption("exact match by variant (equal tokens)", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(45)
            .build_cartesian_2d(0f64..groups.len() as f64, 0f64..1.5)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&|_| String::new())
            .y_desc("held-out exact match")
            .draw()
            .map_err(|e| err(&e))?;
        for (vi, (name, accs)) in bars.iter().enumerate() {
            let color = COLORS[vi % COLORS.len()];
            let w = 0.8 / n;
            chart
                .draw_series(accs.iter().enumerate().map(|(g, a)| {
                    let x0 = g as f64 + 0.1 + vi as f64 * w;
                    let a = if a.is_finite() { *a } else { 0.0 };
                    Rectangle::new([(x0, 0.0), (x0 + w * 0.9, a)], color.filled())
                }))
                .map_err(|e| err(&e))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart
            .draw_series(groups.iter().enumerate().map(|(g, name)| {
                Text::new(name.clone(), (g as f64 + 0.4, 1.05), ("sans-serif", 14))
            }))
            .map_err(|e| err(&e))?;
        // Above the group labels (y 1.05), which the bars never reach.
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| err(&e))?;
    }
    {
        let finite: Vec<f64> = sweep
            .iter()
            .filter_map(|(b, _)| b.map(|b| b as f64))
            .collect();
        let max_b = finite.iter().cloned().fold(1.0, f64::max);
        // "none" (no budget) is drawn at 1.25 × the largest budget.
        let x_of = |b: &Option<usize>| b.map_or(max_b * 1.25, |b| b as f64);
        let mut chart = ChartBuilder::on(&right)
            .caption(
                "exact match vs think budget (rightmost: none)",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(45)
            .build_cartesian_2d(0f64..max_b * 1.3, 0f64..1.0)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("think budget (tokens)")
            .draw()
            .map_err(|e| err(&e))?;
        let sweep_groups: Vec<String> = std::iter::once("all".to_string())
            .chain(sweep_tasks.iter().cloned())
            .collect();
        for (gi, g) in sweep_groups.iter().enumerate() {
            let color = COLORS[gi % COLORS.len()];
            let pts: Vec<(f64, f64)> = sweep
                .iter()
                .map(|(b, r)| {
                    let a = if gi == 0 { r.accuracy } else { acc_of(r, g) };
                    (x_of(b), a)
                })
                .filter(|p| p.1.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(g.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                .map_err(|e| err(&e))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
