//! The training run: tokenizer, model, optimizer, loop, checkpoints, final
//! evaluation and export.

use crate::bpe;
use crate::checkpoint::{self, TrainState, CONFIG_FILE, METRICS_FILE, TOKENIZER_FILE};
use crate::config::{RunConfig, TrainConfig};
use crate::data::{Batcher, ProblemSource, SpanWeights};
use crate::device;
use crate::eval::{self, Evaluation};
use crate::fsutil::write_atomic;
use crate::metrics::{MetricRow, HEADER};
use crate::model::Transformer;
use crate::optim::{clip_grad_norm, lr_at, AdamW, AdamWConfig};
use crate::plot;
use crate::step::{self, StepSettings};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use runtime::format::ModelConfig;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tasks::{ChaCha8Rng, Mix, Problem};

/// Log a metrics row every this many steps.
const LOG_EVERY: u64 = 10;

pub struct Options {
    pub out: PathBuf,
    pub resume: bool,
    /// Show a progress bar (otherwise plain log lines).
    pub progress: bool,
    /// Stop after this many steps of the schedule (for tests of resume:
    /// the schedule still spans `config.steps`).
    pub stop_after: Option<u64>,
}

pub struct Outcome {
    pub steps: u64,
    pub train_s: f64,
    pub final_eval: Option<Evaluation>,
    pub model_config: ModelConfig,
    pub params: usize,
}

/// Fields that may change between a run and its resume: they do not affect
/// the weights.
fn resume_view(c: &TrainConfig) -> TrainConfig {
    let mut c = c.clone();
    c.eval_every = 0;
    c.eval_n = 0;
    c.final_eval_n = 0;
    c.checkpoint_every = 0;
    c.threads = 0;
    c.export = false;
    c.device = String::new();
    c.preset = String::new();
    c
}

fn describe_diff(a: &TrainConfig, b: &TrainConfig) -> String {
    let (ta, tb) = (
        toml::Table::try_from(a).unwrap_or_default(),
        toml::Table::try_from(b).unwrap_or_default(),
    );
    ta.iter()
        .filter(|(k, v)| tb.get(*k) != Some(*v))
        .map(|(k, v)| {
            format!(
                "{k}: run has {}, now {v}",
                tb.get(k).map(|x| x.to_string()).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn load_user_data(cfg: &TrainConfig) -> Result<(Vec<Problem>, Vec<Problem>)> {
    let mut all = Vec::new();
    for path in &cfg.data {
        all.extend(tasks::load_jsonl(path)?);
    }
    Ok(tasks::split_problems(all))
}

/// Trains the BPE on problems drawn from a stream of its own (not the
/// training batches' streams).
fn train_tokenizer(cfg: &TrainConfig, source: &ProblemSource) -> Result<Vec<(u32, u32)>> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x746f_6b65_6e69_7a65);
    let texts: Vec<String> = (0..cfg.tokenizer_samples)
        .flat_map(|_| {
            let p = source.sample(&mut rng);
            [p.problem, p.think, p.answer]
        })
        .collect();
    bpe::train_bpe(&texts, cfg.vocab_size as usize)
}

fn fmt_loss(v: f32) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "-".into()
    }
}

pub fn run(cfg: &TrainConfig, opts: &Options) -> Result<Outcome> {
    cfg.validate()?;
    let device = device::select(&cfg.device)?;
    let out = &opts.out;
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let mix = Mix::parse(&cfg.tasks)?;
    let (user_train, user_held) = load_user_data(cfg)?;
    let source = ProblemSource::new(&mix, user_train, cfg.no_think)?;

    // Config and tokenizer: recorded once, checked on resume.
    let (merges, resumed) = if opts.resume {
        let text = std::fs::read_to_string(out.join(CONFIG_FILE))
            .with_context(|| format!("{}: no run to resume", out.join(CONFIG_FILE).display()))?;
        let old: RunConfig = serde_json::from_str(&text).context("config.json of the run")?;
        if resume_view(&old.train) != resume_view(cfg) {
            bail!(
                "cannot resume {}: the configuration differs from the run's ({})",
                out.display(),
                describe_diff(&resume_view(cfg), &resume_view(&old.train))
            );
        }
        let merges = bpe::load_tokenizer(&out.join(TOKENIZER_FILE))?;
        // Finishes (or discards) a save that was interrupted, so that the
        // question below has a true answer.
        if let Some(step) = checkpoint::recover(out)? {
            eprintln!(
                "{}: finished saving the checkpoint of step {step}, which was interrupted after its commit",
                out.display()
            );
        }
        if out.join(checkpoint::STATE_FILE).exists() {
            (merges, Some(checkpoint::load(out, &device)?))
        } else {
            // Stopped before its first checkpoint: batches and weights are
            // functions of the seed, so starting over is the same run.
            eprintln!("{}: no checkpoint yet, starting at step 0", out.display());
            (merges, None)
        }
    } else if !cfg.tokenizer.is_empty() {
        // A shared tokenizer (e.g. a draft model for speculative decoding):
        // copied byte for byte, so both runs hold the identical file.
        let src = Path::new(&cfg.tokenizer);
        let merges = bpe::load_tokenizer(src)?;
        let bytes =
            std::fs::read(src).with_context(|| format!("{}: cannot read", src.display()))?;
        write_atomic(&out.join(TOKENIZER_FILE), &bytes)?;
        eprintln!("tokenizer: {} merges from {}", merges.len(), src.display());
        (merges, None)
    } else {
        let t = Instant::now();
        let merges = train_tokenizer(cfg, &source)?;
        bpe::save_tokenizer(&out.join(TOKENIZER_FILE), &merges)?;
        eprintln!(
            "tokenizer: {} merges from {} samples in {:.1}s",
            merges.len(),
            cfg.tokenizer_samples,
            t.elapsed().as_secs_f64()
        );
        (merges, None)
    };
    let mut model_cfg = cfg.model_config();
    // A small corpus may yield fewer merges than asked: the vocabulary is what
    // the tokenizer can produce.
    model_cfg.vocab_size = bpe::BASE_VOCAB as u32 + merges.len() as u32;
    let run_config = RunConfig {
        model: model_cfg,
        train: cfg.clone(),
    };
    write_atomic(
        &out.join(CONFIG_FILE),
        serde_json::to_string_pretty(&run_config)?.as_bytes(),
    )?;

    let (model, params) = Transformer::init(&model_cfg, cfg.seed, &device)?;
    let mut opt = AdamW::new(
        &params,
        AdamWConfig {
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps,
            weight_decay: cfg.weight_decay,
        },
    )?;
    let mut state = TrainState {
        step: 0,
        optimizer_t: 0,
        seed: cfg.seed,
        elapsed_s: 0.0,
        tokens_seen: 0,
    };
    let mut rows: Vec<MetricRow> = Vec::new();
    if let Some(l) = resumed {
        params.load(&l.model, &device)?;
        opt.load_state(&l.optimizer, l.state.optimizer_t, &device)?;
        state = l.state;
        rows = l.rows;
        eprintln!("resuming {} at step {}", out.display(), state.step);
    }
    let owned = bpe::OwnedTokenizer::from_merges(&merges);
    let mut batcher = Batcher::new(
        source,
        owned.tokenizer(),
        cfg.seed,
        cfg.batch_size,
        cfg.context as usize,
        SpanWeights {
            think: cfg.alpha,
            prompt: cfg.prompt_weight,
        },
    );
    let eval_set = eval::held_out(&mix, cfg.eval_n, &user_held);
    let ood_set = eval::out_of_template(&mix, cfg.eval_n);

    eprintln!(
        "model: {} parameters, dim {} layers {} heads {}/{} hidden {} vocab {}; {} steps × {} sequences",
        params.num_elements(),
        model_cfg.dim,
        model_cfg.n_layers,
        model_cfg.n_heads,
        model_cfg.n_kv_heads,
        model_cfg.hidden_dim,
        model_cfg.vocab_size,
        cfg.steps,
        cfg.batch_size
    );
    // Live log: rows are appended as they come; each checkpoint rewrites the
    // file so that it matches the checkpoint exactly.
    let metrics_path = out.join(METRICS_FILE);
    let cannot_write = || format!("{}: cannot write", metrics_path.display());
    std::fs::write(&metrics_path, crate::metrics::to_csv(&rows)).with_context(cannot_write)?;
    let mut live = std::fs::OpenOptions::new()
        .append(true)
        .open(&metrics_path)
        .with_context(cannot_write)?;
    debug_assert!(HEADER.starts_with("step"));

    let end = opts.stop_after.unwrap_or(cfg.steps).min(cfg.steps);
    let bar = if opts.progress {
        ProgressBar::new(cfg.steps)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(state.step);
    let mut window = (0usize, 0f64, 0f32, 0f32, 0f32, 0u32); // tokens, secs, loss, think, answer, n
                                                             // MoE: summed aux loss, steps, per-layer per-expert usage sums.
    let mut moe_window: (f64, u32, Vec<Vec<f64>>) = (0.0, 0, Vec::new());
    let step_settings = StepSettings {
        shards: if device.is_cpu() { cfg.shards } else { 1 },
        dropout: cfg.dropout,
        seed: cfg.seed,
        moe_aux_weight: cfg.moe_aux_weight,
    };
    while state.step < end {
        let step = state.step;
        let t0 = Instant::now();
        let seqs = batcher.sequences(step)?;
        let done = step::gradients(&model, &params, seqs, step, step_settings, &device)?;
        if let Some((aux, usage)) = &done.moe {
            moe_window.0 += *aux as f64;
            moe_window.1 += 1;
            if moe_window.2.len() != usage.len() {
                moe_window.2 = usage.iter().map(|u| vec![0f64; u.len()]).collect();
            }
            for (acc, layer) in moe_window.2.iter_mut().zip(usage) {
                for (a, u) in acc.iter_mut().zip(layer) {
                    *a += *u as f64;
                }
            }
        }
        let mut grads = done.grads;
        clip_grad_norm(&mut grads, &params, cfg.grad_clip)?;
        let lr = lr_at(step, cfg.lr, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio);
        opt.step(&grads, lr)?;
        let loss = done.loss;
        if !loss.is_finite() {
            bail!("loss became {loss} at step {step}: lower the learning rate");
        }
        let secs = t0.elapsed().as_secs_f64();
        state.step += 1;
        state.optimizer_t = opt.t;
        state.elapsed_s += secs;
        state.tokens_seen += done.tokens as u64;
        window.0 += done.tokens;
        window.1 += secs;
        window.2 += loss;
        let (think, answer) = (done.think.mean(), done.answer.mean());
        window.3 += if think.is_finite() { think } else { 0.0 };
        window.4 += if answer.is_finite() { answer } else { 0.0 };
        window.5 += 1;

        let s = state.step;
        let eval_now =
            cfg.eval_every > 0 && s % cfg.eval_every == 0 && s < cfg.steps && !eval_set.is_empty();
        if s % LOG_EVERY == 0 || s == end || eval_now {
            let n = window.5.max(1) as f32;
            let think = if cfg.no_think { f32::NAN } else { window.3 / n };
            let mut row = MetricRow {
                step: s,
                loss: window.2 / n,
                think_loss: think,
                answer_loss: window.4 / n,
                lr,
                tokens_per_s: window.0 as f64 / window.1.max(1e-9),
                accuracy: None,
                moe_aux_loss: f32::NAN,
                expert_usage: String::new(),
            };
            window = (0, 0.0, 0.0, 0.0, 0.0, 0);
            if moe_window.1 > 0 {
                let n = moe_window.1 as f64;
                row.moe_aux_loss = (moe_window.0 / n) as f32;
                row.expert_usage = moe_window
                    .2
                    .iter()
                    .map(|layer| {
                        layer
                            .iter()
                            .map(|u| format!("{:.3}", u / n))
                            .collect::<Vec<_>>()
                            .join("/")
                    })
                    .collect::<Vec<_>>()
                    .join(";");
                moe_window = (0.0, 0, Vec::new());
            }
            if eval_now {
                let t = Instant::now();
                let ckpt = eval::checkpoint(&model_cfg, &merges, &params)?;
                let r = eval::evaluate(&ckpt, &eval_set)?;
                row.accuracy = Some(r.accuracy as f32);
                let ood = if ood_set.is_empty() {
                    String::new()
                } else {
                    let o = eval::evaluate(&ckpt, &ood_set)?;
                    format!(", out-of-template {:.1}%", 100.0 * o.accuracy)
                };
                let line = format!(
                    "step {s}: held-out exact match {:.1}%{ood} (n={}, well-formed {:.0}%, {:.1}s)",
                    100.0 * r.accuracy,
                    r.n,
                    100.0 * r.well_formed,
                    t.elapsed().as_secs_f64()
                );
                // A hidden bar swallows println.
                if opts.progress {
                    bar.println(line);
                } else {
                    eprintln!("{line}");
                }
            }
            let mut msg = format!(
                "loss {:.3} (think {} answer {}) lr {:.2e} {:.0} tok/s",
                row.loss,
                fmt_loss(row.think_loss),
                fmt_loss(row.answer_loss),
                lr,
                row.tokens_per_s
            );
            if !row.expert_usage.is_empty() {
                msg.push_str(&format!(
                    " aux {:.3} experts {}",
                    row.moe_aux_loss, row.expert_usage
                ));
            }
            bar.set_message(msg);
            if !opts.progress {
                eprintln!("step {s} {}", bar.message());
            }
            writeln!(live, "{}", row.to_csv()).with_context(cannot_write)?;
            rows.push(row);
        }
        bar.set_position(s);
        checkpoint::kill_point(s, "step");
        let ckpt_now = (cfg.checkpoint_every > 0 && s % cfg.checkpoint_every == 0) || s == end;
        if ckpt_now {
            checkpoint::save(out, &params.tensors(), &opt.state_tensors(), &state, &rows)?;
            // Announced only once it is on the disk.
            if !opts.progress {
                eprintln!("checkpoint: step {s} saved in {}", out.display());
            }
            live = std::fs::OpenOptions::new()
                .append(true)
                .open(&metrics_path)
                .with_context(cannot_write)?;
        }
    }
    bar.finish_and_clear();
    if batcher.skipped > 0 {
        eprintln!(
            "{} samples longer than the context were skipped",
            batcher.skipped
        );
    }

    let mut final_eval = None;
    if state.step >= cfg.steps {
        let ckpt = eval::checkpoint(&model_cfg, &merges, &params)?;
        if cfg.final_eval_n > 0 {
            let t = Instant::now();
            let r = eval::evaluate_both(&ckpt, &mix, cfg.final_eval_n, &user_held, None)?;
            eprintln!("final evaluation ({:.0}s)", t.elapsed().as_secs_f64());
            write_atomic(
                &out.join("eval.json"),
                serde_json::to_string_pretty(&eval::evaluation_json(&r))?.as_bytes(),
            )?;
            if let Some(last) = rows.last_mut() {
                last.accuracy = Some(r.in_dist.accuracy as f32);
            }
            write_atomic(
                &out.join(METRICS_FILE),
                crate::metrics::to_csv(&rows).as_bytes(),
            )?;
            final_eval = Some(r);
        }
        if cfg.export {
            export_q8(out, &ckpt)?;
        }
    }
    plot::write(&out.join("plot.svg"), &rows)?;
    Ok(Outcome {
        steps: state.step,
        train_s: state.elapsed_s,
        final_eval,
        model_config: model_cfg,
        params: params.num_elements(),
    })
}

/// `model.q8.bin` and its quantization report.
fn export_q8(out: &Path, ckpt: &export::Checkpoint) -> Result<()> {
    let (blob, report) =
        export::build_blob(ckpt, &export::ExportOptions::with_quant(export::Quant::Q8))?;
    write_atomic(&out.join("model.q8.bin"), &blob)?;
    write_atomic(
        &out.join("model.q8.report.txt"),
        format!("{report}\n").as_bytes(),
    )?;
    eprintln!(
        "exported {} ({} bytes)",
        out.join("model.q8.bin").display(),
        blob.len()
    );
    Ok(())
}

/// Files a training run writes into its run directory; `--force` removes
/// them before a new run starts, so nothing of the old run survives to be
/// mixed with the new one (by a later `--resume`, say). Other files in the
/// directory are left alone.
pub const RUN_FILES: &[&str] = &[
    checkpoint::STATE_FILE,
    checkpoint::MODEL_FILE,
    checkpoint::OPTIMIZER_FILE,
    checkpoint::METRICS_FILE,
    CONFIG_FILE,
    TOKENIZER_FILE,
    "eval.json",
    "plot.svg",
    "model.q8.bin",
    "model.q8.report.txt",
];

/// Refuses to train over a run directory that already holds a model unless
/// asked to (`resume`: continue it; `force`: replace it). With `force`, the
/// old run's files are removed first.
pub fn prepare_out_dir(out: &Path, resume: bool, force: bool) -> Result<()> {
    if resume {
        return Ok(());
    }
    let has_model = [checkpoint::MODEL_FILE, checkpoint::STATE_FILE]
        .iter()
        .any(|f| out.join(f).exists());
    if !has_model {
        return Ok(());
    }
    if !force {
        let step = std::fs::read_to_string(out.join(checkpoint::STATE_FILE))
            .ok()
            .and_then(|t| serde_json::from_str::<TrainState>(&t).ok())
            .map(|s| s.step);
        let of = std::fs::read_to_string(out.join(CONFIG_FILE))
            .ok()
            .and_then(|t| serde_json::from_str::<RunConfig>(&t).ok())
            .map(|c| c.train.steps);
        let what = match (step, of) {
            (Some(s), Some(n)) if s >= n => format!("a finished model ({s} steps)"),
            (Some(s), Some(n)) => format!("a model checkpointed at step {s} of {n}"),
            (Some(s), None) => format!("a model checkpointed at step {s}"),
            _ => "a model".to_string(),
        };
        bail!(
            "{} already holds {what}: nothing was overwritten. \
             Continue that run with --resume, train a new model over it with --force, \
             or choose another directory with --out",
            out.display()
        );
    }
    for f in RUN_FILES {
        let p = out.join(f);
        let _ = std::fs::remove_file(crate::fsutil::tmp_path(&p));
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("{}: cannot remove", p.display())),
        }
    }
    eprintln!("--force: the previous run in {} was removed", out.display());
    Ok(())
}
