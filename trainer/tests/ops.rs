//! The fused ops against their composed twins (values and gradients) and
//! against central finite differences.

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use trainer::ops;

fn rand_var(shape: &[usize], seed: u64) -> Var {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// A fixed random projection so the scalar loss depends on every output.
fn probe(y: &Tensor, seed: u64) -> Tensor {
    let w = rand_var(y.dims(), seed);
    (y * w.as_tensor()).unwrap().sum_all().unwrap()
}

/// Gradients of `f` w.r.t. `inputs`, fused vs composed, must agree; and the
/// fused gradient must match central differences in f64 on a few coordinates.
fn check(
    inputs: &[Var],
    fused: &dyn Fn(&[Tensor]) -> Tensor,
    composed: &dyn Fn(&[Tensor]) -> Tensor,
) {
    let ts: Vec<Tensor> = inputs.iter().map(|v| v.as_tensor().clone()).collect();
    let yf = fused(&ts);
    let yc = composed(&ts);
    assert!(
        max_diff(&yf, &yc) < 1e-5,
        "values differ by {}",
        max_diff(&yf, &yc)
    );
    let gf = probe(&yf, 99).backward().unwrap();
    let gc = probe(&yc, 99).backward().unwrap();
    for v in inputs {
        let a = gf.get(v).expect("fused op dropped a gradient");
        let b = gc.get(v).expect("composed op dropped a gradient");
        assert!(
            max_diff(a, b) < 1e-4,
            "gradients differ by {}",
            max_diff(a, b)
        );
    }
    // Finite differences on the fused op through f64 copies of the inputs.
    let eps = 1e-2f64;
    for (vi, v) in inputs.iter().enumerate() {
        let base: Vec<f32> = v.flatten_all().unwrap().to_vec1().unwrap();
        let grad: Vec<f32> = gf.get(v).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        for k in [0, base.len() / 3, base.len() - 1] {
            let eval = |delta: f64| {
                let mut x = base.clone();
                x[k] += delta as f32;
                let mut ins = ts.clone();
                ins[vi] = Tensor::from_vec(x, v.dims(), &Device::Cpu).unwrap();
                let y = probe(&fused(&ins), 99);
                y.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
            };
            let num = (eval(eps) - eval(-eps)) / (2.0 * eps);
            let err = (num - grad[k] as f64).abs();
            assert!(
                err < 2e-2 * (1.0 + num.abs()),
                "input {vi} coord {k}: numeric {num} vs analytic {}",
                grad[k]
            );
        }
    }
}

#[test]
fn causal_softmax_matches_composed_and_finite_differences() {
    let x = rand_var(&[2, 3, 5, 5], 1);
    check(&[x], &|t| ops::causal_softmax(&t[0], 0.7).unwrap(), &|t| {
        ops::causal_softmax_composed(&t[0], 0.7).unwrap()
    });
}

#[test]
fn rms_norm_matches_composed_and_finite_differences() {
    let x = rand_var(&[6, 8], 2);
    let g = rand_var(&[8], 3);
    check(
        &[x, g],
        &|t| ops::rms_norm(&t[0], &t[1], 1e-6).unwrap(),
        &|t| ops::rms_norm_composed(&t[0], &t[1], 1e-6).unwrap(),
    );
}

#[test]
fn rope_matches_composed_and_finite_differences() {
    let tables = ops::rope_tables(16, 8, 10000.0);
    let x = rand_var(&[2, 7, 3, 8], 4);
    check(
        &[x],
        &|t| ops::rope_to_heads(&t[0], &tables).unwrap(),
        &|t| ops::rope_composed(&t[0], &tables).unwrap(),
    );
}

#[test]
fn rope_rotates_pairs_by_position() {
    // One head, hd 2: position t rotates (1, 0) by angle t.
    let tables = ops::rope_tables(4, 2, 10000.0);
    let x = Tensor::from_vec(
        vec![1f32, 0.0, 1.0, 0.0, 1.0, 0.0],
        (1, 3, 1, 2),
        &Device::Cpu,
    )
    .unwrap();
    let y: Vec<f32> = ops::rope_to_heads(&x, &tables)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    for t in 0..3 {
        assert!((y[2 * t] - (t as f32).cos()).abs() < 1e-6);
        assert!((y[2 * t + 1] - (t as f32).sin()).abs() < 1e-6);
    }
}

#[test]
fn linear_matches_composed_and_finite_differences() {
    let x = rand_var(&[2, 5, 6], 5);
    let w = rand_var(&[7, 6], 6);
    check(&[x, w], &|t| ops::linear(&t[0], &t[1]).unwrap(), &|t| {
        ops::linear_composed(&t[0], &t[1]).unwrap()
    });
}

#[test]
fn swiglu_matches_composed_and_finite_differences() {
    let x = rand_var(&[9, 10], 7);
    check(&[x], &|t| ops::swiglu(&t[0]).unwrap(), &|t| {
        ops::swiglu_composed(&t[0]).unwrap()
    });
}

fn attention_case(heads: usize, kv_heads: usize, seq: usize, seed: u64) {
    let s = ops::AttnShape {
        batch: 2,
        seq,
        heads,
        kv_heads,
        head_dim: 8,
    };
    let tables = ops::rope_tables(seq + 3, 8, 10000.0);
    let qkv = rand_var(&[2 * seq, (heads + 2 * kv_heads) * 8], seed);
    check(
        &[qkv],
        &|t| ops::causal_attention(&t[0], s, &tables).unwrap(),
        &|t| ops::causal_attention_composed(&t[0], s, &tables).unwrap(),
    );
}

#[test]
fn attention_matches_composed_and_finite_differences() {
    // Multi-head, grouped-query, and a length that spans several score tiles
    // with a ragged last one.
    attention_case(2, 2, 7, 8);
    attention_case(4, 2, 5, 9);
    attention_case(2, 1, 70, 10);
}

#[test]
fn token_nll_matches_composed_and_finite_differences() {
    let logits = rand_var(&[11, 13], 11);
    let targets = Tensor::from_vec(
        (0..11u32).map(|i| (i * 5) % 13).collect::<Vec<_>>(),
        11,
        &Device::Cpu,
    )
    .unwrap();
    check(
        &[logits],
        &|t| ops::token_nll(&t[0], &targets).unwrap(),
        &|t| ops::token_nll_composed(&t[0], &targets).unwrap(),
    );
}

/// The model as it trains on a GPU, where every op takes its composed form,
/// computed here on the CPU: same loss and same gradients as the fused ops.
#[test]
fn model_with_composed_ops_matches_the_fused_ops() {
    use trainer::config::TrainConfig;
    use trainer::model::Transformer;
    let mut c = TrainConfig::smoke_preset();
    c.n_heads = 4;
    c.n_kv_heads = 2;
    let cfg = c.model_config();
    let (model, params) = Transformer::init(&cfg, 5, &Device::Cpu).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let (b, t) = (2, 24);
    let ids: Vec<u32> = (0..b * (t + 1))
        .map(|_| rng.gen_range(0..cfg.vocab_size))
        .collect();
    let all = Tensor::from_vec(ids, (b, t + 1), &Device::Cpu).unwrap();
    let input = all.narrow(1, 0, t).unwrap();
    let targets = all.narrow(1, 1, t).unwrap().flatten_all().unwrap();
    let loss = || {
        let logits = model.forward(&input, None).unwrap();
        ops::token_nll(&logits, &targets)
            .unwrap()
            .mean_all()
            .unwrap()
    };
    let fused = loss();
    let composed = ops::composed_only(loss);
    let (lf, lc) = (
        fused.to_scalar::<f32>().unwrap(),
        composed.to_scalar::<f32>().unwrap(),
    );
    assert!(
        (lf - lc).abs() < 1e-5,
        "loss {lf} (fused) vs {lc} (composed)"
    );
    let gf = fused.backward().unwrap();
    let gc = composed.backward().unwrap();
    for (name, var) in params.iter() {
        let (a, b) = (gf.get(var).unwrap(), gc.get(var).unwrap());
        let (d, size) = (max_diff(a, b), max_diff(a, &a.zeros_like().unwrap()));
        assert!(size > 0.0, "{name}: no gradient");
        assert!(
            d <= 1e-4 * size,
            "{name}: gradients differ by {d} (largest {size})"
        );
    }
}
