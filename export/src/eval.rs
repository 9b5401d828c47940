//! Exact-match accuracy of a blob on reasoning problems, run by the runtime
//! exactly as a board would (greedy decoding, an f32 KV cache unless the
//! options name another: a board's f16 or q8 cache is measured the same way).

use anyhow::Result;
use runtime::format::special;
use runtime::{GenerateConfig, GenerateError, KvDType, Model, SamplerConfig, Session, Span};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub struct EvalOptions {
    pub max_new_tokens: usize,
    /// Thinking tokens before the engine closes the thought itself.
    pub think_budget: Option<usize>,
    /// Context of the session (capped at the model's maximum).
    pub context: usize,
    /// Element type of the session's KV cache.
    pub kv: KvDType,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 256,
            think_budget: None,
            context: 512,
            kv: KvDType::F32,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EvalResult {
    /// Share of problems whose answer the task's verifier accepts.
    pub accuracy: f64,
    pub n: usize,
    /// Task name → (correct, n).
    pub per_task: BTreeMap<String, (usize, usize)>,
    /// Surface form (`tasks::Problem::form`) → (correct, n); problems
    /// without a form label are not counted here.
    pub per_form: BTreeMap<String, (usize, usize)>,
    /// Share of outputs that closed an answer span, after closing the think
    /// span they opened (answer-only outputs have none).
    pub well_formed: f64,
    /// Mean number of tokens between `<think>` and `</think>`.
    pub mean_think_tokens: f64,
    /// Problems whose prompt did not fit the context (counted as wrong).
    pub prompt_too_long: usize,
    /// Every problem the model got wrong, in the order of the set.
    #[serde(skip)]
    pub mistakes: Vec<Mistake>,
}

/// A problem the model got wrong, with what it wrote.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mistake {
    pub problem: String,
    /// The expected answer.
    pub expected: String,
    pub think: String,
    pub answer: String,
    /// The surface form label, if any.
    pub form: String,
}

struct One {
    correct: bool,
    think: String,
    answer: String,
    well_formed: bool,
    think_tokens: usize,
    too_long: bool,
}

fn run_one(session: &mut Session<'_, '_>, p: &tasks::Problem, cfg: &GenerateConfig) -> Result<One> {
    let mut text = vec![0u8; 8192];
    let mut think_tokens = 0usize;
    // Well formed: `<answer> … </answer>`, preceded by a closed
    // `<think> … </think>` when the model opened one (answer-only models
    // never do).
    let (mut think_open, mut think_closed, mut answer_open, mut answer_closed) =
        (false, false, false, false);
    let mut on_token = |e: &runtime::TokenEvent<'_>| {
        match e.id {
            special::THINK if !answer_open => think_open = true,
            special::END_THINK if think_open => think_closed = true,
            special::ANSWER if think_closed || !think_open => answer_open = true,
            special::END_ANSWER if answer_open => answer_closed = true,
            _ => {}
        }
        if e.span == Span::Think && e.id != special::THINK && e.id != special::END_THINK {
            think_tokens += 1;
        }
    };
    match runtime::generate(session, &p.problem, cfg, &mut text, &mut on_token) {
        Ok(g) => Ok(One {
            correct: tasks::verify(p, g.answer),
            think: g.think.to_string(),
            answer: g.answer.to_string(),
            well_formed: answer_closed,
            think_tokens,
            too_long: false,
        }),
        Err(GenerateError::PromptTooLong { .. }) => Ok(One {
            correct: false,
            think: String::new(),
            answer: "(prompt too long)".to_string(),
            well_formed: false,
            think_tokens: 0,
            too_long: true,
        }),
        Err(e) => Err(anyhow::anyhow!("generating for {:?}: {e}", p.problem)),
    }
}

/// Greedy generation for every problem, answers checked by `tasks::verify`.
/// Problems are spread over the machine's cores; the result does not depend
/// on how (each problem runs in a fresh session).
pub fn evaluate_blob(
    blob: &[u8],
    problems: &[tasks::Problem],
    opts: &EvalOptions,
) -> Result<EvalResult> {
    let model = Model::from_blob(blob).map_err(|e| anyhow::anyhow!("{e}"))?;
    let context = opts.context.clamp(1, model.config().max_seq_len as usize);
    let kv = opts.kv;
    let cfg = GenerateConfig {
        sampler: SamplerConfig::GREEDY,
        max_new_tokens: opts.max_new_tokens,
        think_budget: opts.think_budget,
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, problems.len().max(1));
    let chunk = problems.len().div_ceil(threads).max(1);
    let outcomes: Vec<Result<Vec<One>>> = std::thread::scope(|s| {
        let handles: Vec<_> = problems
            .chunks(chunk)
            .map(|part| {
                let model = &model;
                let cfg = &cfg;
                s.spawn(move || -> Result<Vec<One>> {
                    let mut arena =
                        vec![0u8; runtime::plan(model.config(), context, kv).total_bytes];
                    let mut session = Session::new(model, &mut arena, context, kv)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    part.iter().map(|p| run_one(&mut session, p, cfg)).collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("evaluation thread panicked")))
            })
            .collect()
    });
    let mut r = EvalResult {
        n: problems.len(),
        ..Default::default()
    };
    let (mut correct, mut formed, mut think) = (0usize, 0usize, 0usize);
    let mut i = 0;
    for part in outcomes {
        for one in part? {
            let p = &problems[i];
            let e = r
                .per_task
                .entry(p.task.name().to_string())
                .or_insert((0, 0));
            e.1 += 1;
            e.0 += one.correct as usize;
            if !p.form.is_empty() {
                let f = r.per_form.entry(p.form.clone()).or_insert((0, 0));
                f.1 += 1;
                f.0 += one.correct as usize;
            }
            correct += one.correct as usize;
            if !one.correct {
                r.mistakes.push(Mistake {
                    problem: p.problem.clone(),
                    expected: p.answer.clone(),
                    think: one.think,
                    answer: one.answer,
                    form: p.form.clone(),
                });
            }
            formed += one.well_formed as usize;
            think += one.think_tokens;
            r.prompt_too_long += one.too_long as usize;
            i += 1;
        }
    }
    let n = problems.len().max(1) as f64;
    r.accuracy = correct as f64 / n;
    r.well_formed = formed as f64 / n;
    r.mean_think_tokens = think as f64 / n;
    Ok(r)
}
