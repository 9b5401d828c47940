//! `trainer dpo`: direct preference optimisation on the model's own
//! reasoning traces.
//!
//! For training-split prompts the current model samples `K` traces at a
//! temperature (through the runtime engine on an in-memory f32 blob, as eval
//! does); the task verifier marks each answer; a correct trace (chosen) is
//! paired with an incorrect one (rejected) of the same prompt. Training
//! minimises `−log σ(β·[(log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) −
//! log π_ref(y_l|x))])` against the frozen starting model, with log-probs
//! summed over the generated tokens (think and answer spans, tags included).

use crate::bpe;
use crate::checkpoint::{self, TrainState, CONFIG_FILE, TOKENIZER_FILE};
use crate::config::RunConfig;
use crate::data::{make_batch, ProblemSource, Sequence};
use crate::device;
use crate::eval;
use crate::fsutil::write_atomic;
use crate::loss::{token_nll, SpanKind};
use crate::metrics::MetricRow;
use crate::model::{Params, Transformer};
use crate::optim::{clip_grad_norm, lr_at, AdamW, AdamWConfig};
use anyhow::{anyhow, bail, Context, Result};
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use runtime::{GenerateConfig, KvDType, Model, SamplerConfig, Session};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tasks::{ChaCha8Rng, Mix, Problem};

/// AdamW for DPO (no weight decay: the reference model anchors the policy),
/// used by the training loop and for the fresh moments a finished run saves.
const DPO_ADAMW: AdamWConfig = AdamWConfig {
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
    weight_decay: 0.0,
};

/// A preference pair: two sampled continuations of one prompt.
#[derive(Clone, Debug)]
pub struct Pair {
    pub chosen: Sequence,
    pub rejected: Sequence,
}

/// `<bos> prompt` followed by a generation, weighted 1 on every position
/// that predicts a generated token (0 on the prompt).
pub fn scoring_sequence(prompt_ids: &[u32], generated: &[u32]) -> Sequence {
    let ids: Vec<u32> = prompt_ids.iter().chain(generated).copied().collect();
    let n = ids.len().saturating_sub(1);
    let first = prompt_ids.len().saturating_sub(1);
    let spans: Vec<SpanKind> = (0..n)
        .map(|i| {
            if i >= first {
                SpanKind::Answer
            } else {
                SpanKind::Ignore
            }
        })
        .collect();
    let weights = spans
        .iter()
        .map(|k| if *k == SpanKind::Ignore { 0.0 } else { 1.0 })
        .collect();
    Sequence {
        ids,
        weights,
        spans,
    }
}

/// `log π(y|x)` of each sequence, summed over its weighted positions: `(n)`.
pub fn sequence_logps(model: &Transformer, seqs: &[&Sequence], device: &Device) -> Result<Tensor> {
    let batch = make_batch(seqs, device)?;
    let (b, t) = batch.inputs.dims2()?;
    let logits = model.forward(&batch.inputs, None)?;
    let nll = token_nll(&logits, &batch.targets)?;
    Ok((nll * &batch.weights)?.reshape((b, t))?.sum(1)?.neg()?)
}

#[derive(Clone, Copy, Debug)]
pub struct DpoSettings {
    pub beta: f64,
    pub steps: u64,
    pub lr: f64,
    /// Pairs per step.
    pub batch_pairs: usize,
    pub grad_clip: f64,
    pub warmup: u64,
    pub seed: u64,
}

/// One logged DPO step.
#[derive(Clone, Debug, PartialEq)]
pub struct DpoRow {
    pub step: u64,
    pub loss: f32,
    /// Mean of `(log π/π_ref)(y_w) − (log π/π_ref)(y_l)` over the batch.
    pub margin: f32,
    pub chosen_logratio: f32,
    pub rejected_logratio: f32,
    /// Share of the batch's pairs with a positive margin.
    pub reward_accuracy: f32,
    pub lr: f64,
}

pub const DPO_HEADER: &str =
    "step,loss,margin,chosen_logratio,rejected_logratio,reward_accuracy,lr";

impl DpoRow {
    pub fn to_csv(&self) -> String {
        format!(
            "{},{:.5},{:.5},{:.5},{:.5},{:.4},{:.6e}",
            self.step,
            self.loss,
            self.margin,
            self.chosen_logratio,
            self.rejected_logratio,
            self.reward_accuracy,
            self.lr
        )
    }
}

/// `softplus(z) = log(1 + eˣ)`, stable for large |z|: `max(z,0) + log(1 + e^−|z|)`.
fn softplus(z: &Tensor) -> Result<Tensor> {
    let pos = z.relu()?;
    let tail = ((z.abs()?.neg()?.exp()? + 1.0)?).log()?;
    Ok((pos + tail)?)
}

/// DPO on `pairs`, starting from (and referenced against) the current
/// weights of `params`. Calls `on_row` after every step.
pub fn train_pairs(
    model: &Transformer,
    params: &Params,
    pairs: &[Pair],
    s: &DpoSettings,
    mut on_row: impl FnMut(&DpoRow) -> Result<()>,
) -> Result<Vec<DpoRow>> {
    if pairs.is_empty() {
        bail!("no preference pairs to train on");
    }
    let device = params
        .iter()
        .next()
        .map(|(_, v)| v.device().clone())
        .unwrap_or(Device::Cpu);
    // The frozen reference: log-probs of the starting model, computed once.
    let mut ref_w = Vec::with_capacity(pairs.len());
    let mut ref_l = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(16) {
        let w: Vec<&Sequence> = chunk.iter().map(|p| &p.chosen).collect();
        let l: Vec<&Sequence> = chunk.iter().map(|p| &p.rejected).collect();
        ref_w.extend(sequence_logps(model, &w, &device)?.to_vec1::<f32>()?);
        ref_l.extend(sequence_logps(model, &l, &device)?.to_vec1::<f32>()?);
    }
    let mut opt = AdamW::new(params, DPO_ADAMW)?;
    let mut order: Vec<usize> = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed ^ 0x6470_6f21);
    let mut rows = Vec::new();
    for step in 0..s.steps {
        let mut idx = Vec::with_capacity(s.batch_pairs);
        while idx.len() < s.batch_pairs.min(pairs.len()) {
            if order.is_empty() {
                order = (0..pairs.len()).collect();
                order.shuffle(&mut rng);
            }
            idx.push(order.pop().expect("refilled above"));
        }
        let p = idx.len();
        let seqs: Vec<&Sequence> = idx
            .iter()
            .map(|&i| &pairs[i].chosen)
            .chain(idx.iter().map(|&i| &pairs[i].rejected))
            .collect();
        let logps = sequence_logps(model, &seqs, &device)?;
        let rw = Tensor::from_vec(idx.iter().map(|&i| ref_w[i]).collect(), p, &device)?;
        let rl = Tensor::from_vec(idx.iter().map(|&i| ref_l[i]).collect(), p, &device)?;
        let chosen = (logps.narrow(0, 0, p)? - rw)?;
        let rejected = (logps.narrow(0, p, p)? - rl)?;
        let margin = (&chosen - &rejected)?;
        let loss = softplus(&(&margin * -s.beta)?)?.mean_all()?;
        let mut grads = loss.backward()?;
        clip_grad_norm(&mut grads, params, s.grad_clip)?;
        let lr = lr_at(step, s.lr, s.warmup, s.steps, 1.0);
        opt.step(&grads, lr)?;
        let m: Vec<f32> = margin.to_vec1()?;
        let row = DpoRow {
            step: step + 1,
            loss: loss.to_scalar()?,
            margin: m.iter().sum::<f32>() / p as f32,
            chosen_logratio: chosen.mean_all()?.to_scalar()?,
            rejected_logratio: rejected.mean_all()?.to_scalar()?,
            reward_accuracy: m.iter().filter(|v| **v > 0.0).count() as f32 / p as f32,
            lr,
        };
        if !row.loss.is_finite() {
            bail!("DPO loss became {} at step {}", row.loss, row.step);
        }
        on_row(&row)?;
        rows.push(row);
    }
    Ok(rows)
}

/// What sampling produced.
#[derive(Clone, Debug, Default)]
pub struct SampleStats {
    pub prompts: usize,
    pub samples: usize,
    pub correct: usize,
    /// Prompts with at least one correct and one incorrect trace.
    pub mixed_prompts: usize,
    pub pairs: usize,
}

/// Samples `k` traces per problem at `temperature` and pairs correct with
/// incorrect ones of the same problem (as many pairs as the smaller side has
/// traces). Spread over the machine's cores; each trace's sampler seed is a
/// function of `(seed, problem, sample)`, so the result does not depend on
/// the thread count.
pub fn sample_pairs(
    blob: &[u8],
    problems: &[Problem],
    k: usize,
    temperature: f32,
    seed: u64,
) -> Result<(Vec<Pair>, SampleStats)> {
    let model = Model::from_blob(blob).map_err(|e| anyhow!("{e}"))?;
    let context = model.config().max_seq_len as usize;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, problems.len().max(1));
    let chunk = problems.len().div_ceil(threads).max(1);
    // Per problem: (prompt ids, [(generated ids, correct)]).
    type Traces = (Vec<u32>, Vec<(Vec<u32>, bool)>);
    let parts: Vec<Result<Vec<Traces>>> = std::thread::scope(|sc| {
        let handles: Vec<_> = problems
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                let model = &model;
                sc.spawn(move || -> Result<Vec<Traces>> {
                    let mut arena =
                        vec![0u8; runtime::plan(model.config(), context, KvDType::F32).total_bytes];
                    let mut session = Session::new(model, &mut arena, context, KvDType::F32)
                        .map_err(|e| anyhow!("{e}"))?;
                    let mut text = vec![0u8; 8192];
                    let mut out = Vec::with_capacity(part.len());
                    for (j, p) in part.iter().enumerate() {
                        let index = (c * chunk + j) as u64;
                        let mut prompt_ids = Vec::new();
                        let mut traces = Vec::with_capacity(k);
                        for s in 0..k as u64 {
                            let cfg = GenerateConfig {
                                sampler: SamplerConfig {
                                    temperature,
                                    top_k: 0,
                                    top_p: 1.0,
                                    seed: seed
                                        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                                        .wrapping_add(index * 1_000_003 + s),
                                },
                                max_new_tokens: context,
                                think_budget: None,
                            };
                            let mut ids = Vec::new();
                            let g = runtime::generate(
                                &mut session,
                                &p.problem,
                                &cfg,
                                &mut text,
                                &mut |e| ids.push(e.id),
                            );
                            let Ok(g) = g else {
                                break; // prompt too long: no traces
                            };
                            let correct = tasks::verify(p, g.answer);
                            let prompt_tokens = g.prompt_tokens;
                            if prompt_ids.is_empty() {
                                prompt_ids = session.tokens()[..prompt_tokens].to_vec();
                            }
                            // Only sequences the model can be trained on.
                            if prompt_tokens + ids.len() <= context + 1 {
                                traces.push((ids, correct));
                            }
                        }
                        out.push((prompt_ids, traces));
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("sampling thread panicked")))
            })
            .collect()
    });
    let mut pairs = Vec::new();
    let mut stats = SampleStats {
        prompts: problems.len(),
        ..Default::default()
    };
    for part in parts {
        for (prompt, traces) in part? {
            stats.samples += traces.len();
            let good: Vec<&Vec<u32>> = traces.iter().filter(|t| t.1).map(|t| &t.0).collect();
            let bad: Vec<&Vec<u32>> = traces.iter().filter(|t| !t.1).map(|t| &t.0).collect();
            stats.correct += good.len();
            if !good.is_empty() && !bad.is_empty() {
                stats.mixed_prompts += 1;
            }
            for (w, l) in good.iter().zip(&bad) {
                pairs.push(Pair {
                    chosen: scoring_sequence(&prompt, w),
                    rejected: scoring_sequence(&prompt, l),
                });
            }
        }
    }
    stats.pairs = pairs.len();
    Ok((pairs, stats))
}

pub struct DpoOptions {
    pub dir: PathBuf,
    pub out: PathBuf,
    pub samples: usize,
    pub prompts: usize,
    pub temperature: f32,
    pub settings: DpoSettings,
    /// Held-out problems for the before/after evaluation (0: skip).
    pub eval_n: usize,
}

fn read_run(dir: &Path) -> Result<RunConfig> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a run config", path.display()))
}

/// The whole command: sample, pair, train, evaluate, write a run directory.
pub fn run(o: &DpoOptions) -> Result<serde_json::Value> {
    if o.out == o.dir {
        bail!("--out must differ from the run directory (the starting model is kept)");
    }
    let rc = read_run(&o.dir)?;
    let device = device::select(&rc.train.device)?;
    let merges = bpe::load_tokenizer(&o.dir.join(TOKENIZER_FILE))?;
    let (tensors, _) = checkpoint::read_safetensors(&o.dir.join(checkpoint::MODEL_FILE), &device)?;
    let (model, params) = Transformer::init(&rc.model, rc.train.seed, &device)?;
    params.load(&tensors, &device)?;
    let mix = Mix::parse(&rc.train.tasks)?;
    let mut user = Vec::new();
    for p in &rc.train.data {
        user.extend(tasks::load_jsonl(p)?);
    }
    let (user_train, user_held) = tasks::split_problems(user);
    let source = ProblemSource::new(&mix, user_train, false)?;
    let mut rng = ChaCha8Rng::seed_from_u64(o.settings.seed ^ 0x7072_6566);
    let prompts: Vec<Problem> = (0..o.prompts).map(|_| source.sample(&mut rng)).collect();

    let held = eval::held_out(&mix, o.eval_n, &user_held);
    let start = eval::checkpoint(&rc.model, &merges, &params)?;
    let before = if held.is_empty() {
        None
    } else {
        let t = Instant::now();
        let r = eval::evaluate(&start, &held)?;
        eprintln!(
            "before ({:.0}s): {}",
            t.elapsed().as_secs_f64(),
            eval::summary(&r)
        );
        Some(r)
    };

    let t = Instant::now();
    let blob = eval::f32_blob(&start)?;
    let (pairs, stats) = sample_pairs(&blob, &prompts, o.samples, o.temperature, o.settings.seed)?;
    let sample_s = t.elapsed().as_secs_f64();
    eprintln!(
        "sampled {} traces for {} prompts in {sample_s:.0}s: {:.1}% correct; {} prompts with both outcomes → {} pairs",
        stats.samples,
        stats.prompts,
        100.0 * stats.correct as f64 / stats.samples.max(1) as f64,
        stats.mixed_prompts,
        stats.pairs
    );
    if pairs.is_empty() {
        bail!(
            "no preference pairs: every prompt's {} samples were all correct or all wrong \
             (raise --temperature or --prompts)",
            o.samples
        );
    }

    std::fs::create_dir_all(&o.out)
        .with_context(|| format!("{}: cannot create", o.out.display()))?;
    let mut csv = String::from(DPO_HEADER);
    csv.push('\n');
    let t = Instant::now();
    let rows = train_pairs(&model, &params, &pairs, &o.settings, |r| {
        if r.step % 10 == 0 || r.step == 1 || r.step == o.settings.steps {
            eprintln!(
                "dpo step {}: loss {:.4} margin {:.3} (chosen {:+.3} rejected {:+.3}) reward acc {:.2}",
                r.step, r.loss, r.margin, r.chosen_logratio, r.rejected_logratio, r.reward_accuracy
            );
        }
        Ok(())
    })?;
    let train_s = t.elapsed().as_secs_f64();
    for r in &rows {
        csv.push_str(&r.to_csv());
        csv.push('\n');
    }
    write_atomic(&o.out.join("dpo_metrics.csv"), csv.as_bytes())?;

    // A normal run directory: eval, sample, export and resume read it.
    write_atomic(
        &o.out.join(CONFIG_FILE),
        serde_json::to_string_pretty(&rc)?.as_bytes(),
    )?;
    let tok = std::fs::read(o.dir.join(TOKENIZER_FILE))?;
    write_atomic(&o.out.join(TOKENIZER_FILE), &tok)?;
    let metric_rows: Vec<MetricRow> = rows
        .iter()
        .map(|r| MetricRow {
            step: r.step,
            loss: r.loss,
            think_loss: f32::NAN,
            answer_loss: f32::NAN,
            lr: r.lr,
            tokens_per_s: 0.0,
            accuracy: None,
            moe_aux_loss: f32::NAN,
            expert_usage: String::new(),
        })
        .collect();
    // The state says the schedule is complete, so a `--resume` has nothing
    // left to do; fresh AdamW moments (the pretraining ones do not apply).
    let opt = AdamW::new(&params, DPO_ADAMW)?;
    let state = TrainState {
        step: rc.train.steps,
        optimizer_t: 0,
        seed: rc.train.seed,
        elapsed_s: train_s,
        tokens_seen: 0,
    };
    checkpoint::save(
        &o.out,
        &params.tensors(),
        &opt.state_tensors(),
        &state,
        &metric_rows,
    )?;

    let end = eval::checkpoint(&rc.model, &merges, &params)?;
    let after = if held.is_empty() {
        None
    } else {
        let r = eval::evaluate(&end, &held)?;
        eprintln!("after: {}", eval::summary(&r));
        write_atomic(
            &o.out.join("eval.json"),
            serde_json::to_string_pretty(&eval::to_json(&r))?.as_bytes(),
        )?;
        Some(r)
    };
    let last = rows.last().expect("steps > 0");
    let report = json!({
        "from": o.dir.display().to_string(),
        "prompts": stats.prompts,
        "samples_per_prompt": o.samples,
        "temperature": o.temperature,
        "samples": stats.samples,
        "sample_accuracy": stats.correct as f64 / stats.samples.max(1) as f64,
        "mixed_prompts": stats.mixed_prompts,
        "pairs": stats.pairs,
        "beta": o.settings.beta,
        "steps": o.settings.steps,
        "lr": o.settings.lr,
        "batch_pairs": o.settings.batch_pairs,
        "sample_s": sample_s,
        "train_s": train_s,
        "first_loss": rows[0].loss,
        "final_loss": last.loss,
        "final_margin": last.margin,
        "eval_before": before.as_ref().map(eval::to_json),
        "eval_after": after.as_ref().map(eval::to_json),
    });
    write_atomic(
        &o.out.join("dpo.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    Ok(report)
}
