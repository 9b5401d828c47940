//! Mixture of experts: gradients reach the router and every expert, the
//! balance loss is minimal for uniform routing, candle agrees with the
//! runtime (which computes only the chosen experts), config flags.

use candle_core::{Device, Tensor};
use runtime::{KvDType, Model, Session};
use trainer::config::TrainConfig;
use trainer::eval;
use trainer::loss::token_nll;
use trainer::model::moe::{load_balance_loss, top_k_mask};
use trainer::model::Transformer;

mod common;

fn moe_config(experts: u32, top_k: u32, layers: &str) -> TrainConfig {
    TrainConfig {
        moe_experts: experts,
        moe_top_k: top_k,
        moe_layers: layers.into(),
        ..TrainConfig::smoke_preset()
    }
}

#[test]
fn every_moe_parameter_gets_a_gradient() {
    let c = moe_config(4, 2, "0");
    c.validate().unwrap();
    let cfg = c.model_config();
    assert_eq!(cfg.moe.unwrap().layer_mask, 0b01);
    let (model, params) = Transformer::init(&cfg, 1, &Device::Cpu).unwrap();
    let (x, y) = common::successor_batch(4, 16);
    let (logits, stats) = model.forward_with_stats(&x, None).unwrap();
    assert_eq!(stats.len(), 1);
    let usage: f32 = stats[0].usage.iter().sum();
    assert!((usage - 1.0).abs() < 1e-5, "usage sums to {usage}");
    let loss = (token_nll(&logits, &y).unwrap().mean_all().unwrap() + &stats[0].aux).unwrap();
    let grads = loss.backward().unwrap();
    let mut moe_params = 0;
    for (name, var) in params.iter() {
        let g = grads
            .get(var)
            .unwrap_or_else(|| panic!("{name} received no gradient"));
        let n: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(n > 0.0 && n.is_finite(), "{name}: gradient norm² {n}");
        moe_params += usize::from(name.contains("router") || name.contains("experts"));
    }
    // Layer 0: a router and 4 experts × 3 matrices; layer 1 stays dense.
    assert_eq!(moe_params, 1 + 4 * 3);
    assert!(params.get("layers.1.feed_forward.w1.weight").is_ok());
    assert!(params.get("layers.0.feed_forward.w1.weight").is_err());
}

#[test]
fn balance_loss_is_minimal_for_uniform_routing() {
    let dev = Device::Cpu;
    let (n, e) = (8usize, 4usize);
    let aux = |probs: Vec<f32>, k: usize| {
        let mask = top_k_mask(&probs, n, e, k);
        let p = Tensor::from_vec(probs, (n, e), &dev).unwrap();
        let m = Tensor::from_vec(mask, (n, e), &dev).unwrap();
        let (a, usage) = load_balance_loss(&p, &m, k).unwrap();
        (a.to_scalar::<f32>().unwrap(), usage)
    };
    // Uniform: every token's probabilities uniform, assignments spread evenly
    // (token r prefers expert r mod 4 by a hair).
    let uniform: Vec<f32> = (0..n * e)
        .map(|i| {
            if i % e == (i / e) % e {
                0.2501
            } else {
                0.2499667
            }
        })
        .collect();
    let (u, usage) = aux(uniform, 1);
    assert!((u - 1.0).abs() < 1e-3, "uniform routing gives {u}");
    assert!(usage.iter().all(|f| (f - 0.25).abs() < 1e-6));
    // Collapsed onto expert 0.
    let collapsed: Vec<f32> = (0..n * e)
        .map(|i| if i % e == 0 { 0.7 } else { 0.1 })
        .collect();
    let (c, _) = aux(collapsed, 1);
    assert!((c - 2.8).abs() < 1e-5, "collapsed routing gives {c}");
    // Every way of routing the 8 tokens (top-1, each token giving its expert
    // probability 0.6 and the others 0.4/3): the loss is smallest, 1, for the
    // balanced routing (2 tokens per expert) and larger for every other.
    let mut seen = 0;
    for a in 0..=n {
        for b in 0..=n - a {
            for c in 0..=n - a - b {
                let counts = [a, b, c, n - a - b - c];
                let probs: Vec<f32> = counts
                    .iter()
                    .enumerate()
                    .flat_map(|(ex, &cnt)| std::iter::repeat_n(ex, cnt))
                    .flat_map(|ex| (0..e).map(move |j| if j == ex { 0.6 } else { 0.4 / 3.0 }))
                    .collect();
                let (v, _) = aux(probs, 1);
                if counts == [2, 2, 2, 2] {
                    assert!((v - 1.0).abs() < 1e-5, "balanced routing gives {v}");
                } else {
                    assert!(v > 1.0 + 1e-3, "routing {counts:?} gives {v} <= 1");
                }
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 165);
}

#[test]
fn top_k_mask_breaks_ties_by_lowest_index() {
    let m = top_k_mask(&[1.0, 3.0, 3.0, 0.0, 2.0, 2.0, 2.0, 2.0], 2, 4, 2);
    assert_eq!(m, vec![0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
}

fn parity(experts: u32, top_k: u32, layers: &str) {
    let c = moe_config(experts, top_k, layers);
    c.validate().unwrap();
    let cfg = c.model_config();
    let (model, params) = Transformer::init(&cfg, 5, &Device::Cpu).unwrap();
    // Larger router weights than the init's so that routing is decisive
    // (no near-ties that float rounding could flip).
    for (name, var) in params.iter() {
        if name.contains("router") {
            var.set(&(var.as_tensor() * 50.0).unwrap()).unwrap();
        }
    }
    let ckpt = eval::checkpoint(&cfg, &[], &params).unwrap();
    let blob = eval::f32_blob(&ckpt).unwrap();
    let rt = Model::from_blob(&blob).unwrap();
    assert_eq!(rt.config().moe, cfg.moe);
    let mut arena = vec![0u8; runtime::plan(rt.config(), 32, KvDType::F32).total_bytes];
    let mut session = Session::new(&rt, &mut arena, 32, KvDType::F32).unwrap();
    let ids: Vec<u32> = vec![2, 20, 31, 45, 60, 17, 4, 90, 33, 12, 250, 7, 99, 140];
    let x = Tensor::from_vec(ids.clone(), (1, ids.len()), &Device::Cpu).unwrap();
    let (logits, stats) = model.forward_with_stats(&x, None).unwrap();
    assert!(!stats.is_empty());
    for (pos, &id) in ids.iter().enumerate() {
        let want: Vec<f32> = logits.get(pos).unwrap().to_vec1().unwrap();
        let got = session.forward(id).unwrap();
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = want
            .iter()
            .zip(got)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            err <= 1e-4 * scale,
            "position {pos}: max logit difference {err} (max |logit| {scale})"
        );
    }
}

#[test]
fn candle_moe_matches_the_runtime_top1_all_layers() {
    parity(4, 1, "all");
}

#[test]
fn candle_moe_matches_the_runtime_top2_one_layer() {
    parity(4, 2, "1");
}

#[test]
fn moe_flags_and_errors() {
    use clap::Parser;
    let cli = trainer::cli::Cli::parse_from([
        "trainer",
        "train",
        "--preset",
        "smoke",
        "--moe-experts",
        "4",
        "--moe-top-k",
        "2",
        "--moe-layers",
        "0,1",
        "--moe-aux-weight",
        "0.02",
    ]);
    let Some(trainer::cli::Command::Train(args)) = cli.command else {
        panic!("not a train command")
    };
    let c = args.resolve().unwrap();
    assert_eq!((c.moe_experts, c.moe_top_k, c.moe_aux_weight), (4, 2, 0.02));
    let m = c.model_config().moe.unwrap();
    assert_eq!((m.n_experts, m.top_k, m.layer_mask), (4, 2, 0b11));
    let t = TrainConfig::smoke_preset()
        .apply_toml(
            "moe_experts = 8\nmoe_top_k = 2\nmoe_layers = \"1\"\n",
            "x.toml",
        )
        .unwrap();
    assert_eq!(t.model_config().moe.unwrap().layer_mask, 0b10);
    assert!(moe_config(4, 5, "all")
        .validate()
        .unwrap_err()
        .to_string()
        .contains("moe_top_k"));
    assert!(moe_config(4, 1, "7")
        .validate()
        .unwrap_err()
        .to_string()
        .contains("does not exist"));
    assert!(TrainConfig::smoke_preset().model_config().moe.is_none());
}
