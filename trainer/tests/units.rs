//! Loss weights, schedule, clipping, gradients reaching every parameter,
//! configuration errors.

use candle_core::{Device, Tensor, Var};
use runtime::format::special::*;
use trainer::bpe::OwnedTokenizer;
use trainer::config::TrainConfig;
use trainer::data::{encode_problem, make_batch, SpanWeights};
use trainer::loss::{dual_loss, token_nll, SpanKind};
use trainer::model::Transformer;
use trainer::optim::{clip_grad_norm, lr_at};

mod common;

fn problem(p: &str, think: &str, answer: &str) -> tasks::Problem {
    tasks::Problem {
        task: tasks::TaskKind::User,
        problem: p.into(),
        think: think.into(),
        answer: answer.into(),
        form: String::new(),
    }
}

#[test]
fn sequence_layout_and_loss_weights() {
    let owned = OwnedTokenizer::from_merges(&[]);
    let tok = owned.tokenizer();
    let b = |c: u8| FIRST_BYTE + c as u32;
    let s = encode_problem(&tok, &problem("1+2", "3", "3"), SpanWeights::think(0.5));
    assert_eq!(
        s.ids,
        vec![
            BOS,
            b(b'1'),
            b(b'+'),
            b(b'2'),
            THINK,
            b(b'3'),
            END_THINK,
            ANSWER,
            b(b'3'),
            END_ANSWER,
            EOS
        ]
    );
    // Position i predicts ids[i+1]: problem 0, think span (incl. tags) α, answer span 1.
    assert_eq!(
        s.weights,
        vec![0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0]
    );
    let a = encode_problem(&tok, &problem("1+2", "", "3"), SpanWeights::think(0.5));
    assert_eq!(
        a.ids,
        vec![
            BOS,
            b(b'1'),
            b(b'+'),
            b(b'2'),
            ANSWER,
            b(b'3'),
            END_ANSWER,
            EOS
        ]
    );
    assert_eq!(a.weights, vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
    // A prompt weight puts the problem text into the loss, think and answer unchanged.
    let w = SpanWeights {
        think: 0.5,
        prompt: 0.1,
    };
    let p = encode_problem(&tok, &problem("1+2", "3", "3"), w);
    assert_eq!(
        p.weights,
        vec![0.1, 0.1, 0.1, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0]
    );
    assert_eq!(p.spans[..3], [SpanKind::Prompt; 3]);
}

#[test]
fn dual_loss_is_the_weighted_mean_and_padding_is_ignored() {
    let owned = OwnedTokenizer::from_merges(&[]);
    let tok = owned.tokenizer();
    let long = encode_problem(&tok, &problem("12", "ab", "c"), SpanWeights::think(0.5));
    let short = encode_problem(&tok, &problem("1", "", "c"), SpanWeights::think(0.5));
    let batch = make_batch(&[&long, &short], &Device::Cpu).unwrap();
    let t = long.ids.len() - 1;
    assert_eq!(batch.inputs.dims(), &[2, t]);
    let w: Vec<f32> = batch.weights.to_vec1().unwrap();
    assert!(
        w[t + short.ids.len() - 1..].iter().all(|&x| x == 0.0),
        "padding must weigh 0"
    );
    let v = 300usize;
    let logits: Vec<f32> = (0..2 * t * v)
        .map(|i| ((i * 7919) % 13) as f32 * 0.1)
        .collect();
    let logits = Tensor::from_vec(logits, (2 * t, v), &Device::Cpu).unwrap();
    let parts = dual_loss(&logits, &batch.targets, &batch.weights, &batch.spans).unwrap();
    let nll: Vec<f32> = token_nll(&logits, &batch.targets)
        .unwrap()
        .to_vec1()
        .unwrap();
    let want = nll.iter().zip(&w).map(|(a, b)| a * b).sum::<f32>() / w.iter().sum::<f32>();
    assert!((parts.loss.to_scalar::<f32>().unwrap() - want).abs() < 1e-5);
    let think: Vec<f32> = nll
        .iter()
        .zip(&batch.spans)
        .filter(|(_, k)| **k == SpanKind::Think)
        .map(|(a, _)| *a)
        .collect();
    assert_eq!(think.len(), 4); // <think> a b </think>
    assert!((parts.think - think.iter().sum::<f32>() / 4.0).abs() < 1e-5);
}

#[test]
fn warmup_then_cosine_to_ten_percent() {
    let lr = |s| lr_at(s, 1e-3, 10, 110, 0.1);
    assert!((lr(0) - 1e-4).abs() < 1e-12);
    assert!((lr(9) - 1e-3).abs() < 1e-12);
    assert!((lr(10) - 1e-3).abs() < 1e-12);
    assert!((lr(60) - 0.55e-3).abs() < 1e-12); // halfway: (1 + 0.1) / 2
    assert!((lr(110) - 1e-4).abs() < 1e-12);
    for s in 10..110 {
        assert!(lr(s + 1) <= lr(s));
    }
}

#[test]
fn clipping_scales_to_the_max_norm() {
    let (cfg, _) = (TrainConfig::smoke_preset().model_config(), ());
    let (_, params) = Transformer::init(&cfg, 0, &Device::Cpu).unwrap();
    // A known gradient: loss = Σ 3·w over one matrix → gradient 3 everywhere.
    let (_, var) = params
        .iter()
        .find(|(k, _)| k.ends_with("wq.weight"))
        .unwrap();
    let loss = (var.as_tensor() * 3.0).unwrap().sum_all().unwrap();
    let mut grads = loss.backward().unwrap();
    let n = var.elem_count() as f64;
    let norm = clip_grad_norm(&mut grads, &params, 1.0).unwrap();
    assert!((norm - 3.0 * n.sqrt()).abs() < 1e-3 * norm);
    let g: Vec<f32> = grads
        .get(var)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let expect = 3.0 / (3.0 * n.sqrt());
    assert!(g.iter().all(|&x| (x as f64 - expect).abs() < 1e-6));
    // Below the threshold nothing changes.
    let mut grads = loss.backward().unwrap();
    clip_grad_norm(&mut grads, &params, 1e9).unwrap();
    assert_eq!(
        grads
            .get(var)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[0],
        3.0
    );
}

fn every_param_gets_a_gradient(tied: bool) {
    let mut c = TrainConfig::smoke_preset();
    c.tied_embeddings = tied;
    let cfg = c.model_config();
    let (model, params) = Transformer::init(&cfg, 1, &Device::Cpu).unwrap();
    let (x, y) = common::successor_batch(2, 9);
    let logits = model.forward(&x, None).unwrap();
    let loss = token_nll(&logits, &y).unwrap().mean_all().unwrap();
    let grads = loss.backward().unwrap();
    let mut names = 0;
    for (name, var) in params.iter() {
        let g = grads
            .get(var)
            .unwrap_or_else(|| panic!("{name} received no gradient"));
        let n: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(n > 0.0 && n.is_finite(), "{name}: gradient norm² {n}");
        names += 1;
    }
    assert_eq!(names, params.len());
    assert_eq!(
        params.len(),
        2 + 9 * cfg.n_layers as usize + usize::from(!tied)
    );
}

#[test]
fn every_parameter_gets_a_gradient_tied() {
    every_param_gets_a_gradient(true);
}

#[test]
fn every_parameter_gets_a_gradient_untied() {
    every_param_gets_a_gradient(false);
}

#[test]
fn same_seed_same_weights() {
    let cfg = TrainConfig::smoke_preset().model_config();
    let a = Transformer::init(&cfg, 5, &Device::Cpu)
        .unwrap()
        .1
        .tensors();
    let b = Transformer::init(&cfg, 5, &Device::Cpu)
        .unwrap()
        .1
        .tensors();
    let c = Transformer::init(&cfg, 6, &Device::Cpu)
        .unwrap()
        .1
        .tensors();
    let v = |m: &std::collections::BTreeMap<String, Tensor>| -> Vec<f32> {
        m["layers.0.attention.wq.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    assert_eq!(v(&a), v(&b));
    assert_ne!(v(&a), v(&c));
}

#[test]
fn config_errors_are_clear() {
    let base = TrainConfig::default_preset();
    let err = |c: TrainConfig| c.validate().unwrap_err().to_string();
    assert!(err(TrainConfig {
        n_heads: 5,
        ..base.clone()
    })
    .contains("does not divide dim"));
    assert!(err(TrainConfig {
        n_kv_heads: 3,
        n_heads: 4,
        ..base.clone()
    })
    .contains("n_kv_heads 3 does not divide"));
    assert!(err(TrainConfig {
        tasks: "mod".into(),
        ..base.clone()
    })
    .contains("unknown task"));
    assert!(TrainConfig::preset("huge")
        .unwrap_err()
        .to_string()
        .contains("unknown preset"));
    let e = base
        .apply_toml("dimm = 3\n", "x.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown key \"dimm\""), "{e}");
    let e = format!(
        "{:#}",
        base.apply_toml("dim = \"big\"\n", "x.toml").unwrap_err()
    );
    assert!(e.contains("x.toml"), "{e}");
    let c = base
        .apply_toml("dim = 96\nn_heads = 4\nlr = 0.001\n", "x.toml")
        .unwrap();
    assert_eq!(
        (c.dim, c.n_heads, c.lr, c.n_layers),
        (96, 4, 0.001, base.n_layers)
    );
    let e = err(TrainConfig {
        shards: 0,
        ..base.clone()
    });
    assert!(e.contains("shards must be in 1..=32"), "{e}");
}

#[test]
fn var_updates_are_seen_by_the_model() {
    // The model holds tensors sharing the variables' storage.
    let cfg = TrainConfig::smoke_preset().model_config();
    let (model, params) = Transformer::init(&cfg, 0, &Device::Cpu).unwrap();
    let x = Tensor::from_vec(vec![2u32, 9, 10], (1, 3), &Device::Cpu).unwrap();
    let before: Vec<f32> = model
        .forward(&x, None)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let var: &Var = params.get("norm.weight").unwrap();
    var.set(&(var.as_tensor() * 2.0).unwrap()).unwrap();
    let after: Vec<f32> = model
        .forward(&x, None)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!((after[0] - 2.0 * before[0]).abs() < 1e-4);
}

/// Shards of a batch, run side by side, give the gradient of the whole batch:
/// each shard's loss is divided by the whole batch's weight.
#[test]
fn sharded_gradients_equal_the_whole_batch_gradient() {
    use trainer::step::{gradients, StepSettings};
    let cfg = TrainConfig::smoke_preset().model_config();
    let (model, params) = Transformer::init(&cfg, 3, &Device::Cpu).unwrap();
    let owned = OwnedTokenizer::from_merges(&[]);
    let tok = owned.tokenizer();
    let seqs: Vec<_> = [("12+3", "15", "15"), ("7*8", "56", "56"), ("9-4", "", "5")]
        .iter()
        .map(|(p, t, a)| encode_problem(&tok, &problem(p, t, a), SpanWeights::think(0.5)))
        .collect();
    let run = |shards| {
        let s = StepSettings {
            shards,
            dropout: 0.0,
            seed: 1,
            moe_aux_weight: 0.0,
        };
        gradients(&model, &params, &seqs, 0, s, &Device::Cpu).unwrap()
    };
    let (one, three) = (run(1), run(3));
    assert!(
        (one.loss - three.loss).abs() < 1e-5,
        "{} vs {}",
        one.loss,
        three.loss
    );
    assert_eq!(one.tokens, three.tokens);
    assert_eq!(one.think.tokens, three.think.tokens);
    let grad = |r: &trainer::step::StepResult, var| -> Vec<f32> {
        r.grads
            .get(var)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    for (name, var) in params.iter() {
        let (a, b) = (grad(&one, var), grad(&three, var));
        let scale = a.iter().fold(1e-6f32, |m, x| m.max(x.abs()));
        let diff = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(diff <= 1e-4 * scale, "{name}: max |Δ| {diff} of {scale}");
    }
}
