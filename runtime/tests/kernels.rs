//! Kernels against plain f64 references, and the error budget of quantized
//! dot products.

#![allow(unused_imports)]

mod common;

use common::*;
use runtime::format::{special, ModelConfig, MoeConfig, TensorId, TensorKind, TokenizerData};
use runtime::kernels::{self, QuantizedActivations, TensorView};
use runtime::sampling::{Rng, Sampler, SamplerConfig};
use runtime::*;

/// Every kernel equals a plain f64 product of its dequantized weights with the
/// input it sees (for Q8/Q4: the int8-quantized input), on shapes with short
/// last groups (172 = 5·32 + 12, 37 odd with group 8 for Q8).
#[test]
fn kernels_match_plain_reference() {
    let mut rng = Rng::new(1);
    for (rows, cols, group) in [
        (64, 172, 32),
        (172, 64, 32),
        (5, 37, 8),
        (3, 38, 8),
        (7, 8, 2),
        (9, 200, 64),
    ] {
        let w = rand_vec(&mut rng, rows * cols, 0.5);
        let x = rand_vec(&mut rng, cols, 2.0);
        for dtype in [DType::F32, DType::F16, DType::Q8, DType::Q4] {
            if dtype == DType::Q4 && cols % 2 == 1 && group % 2 == 1 {
                continue;
            }
            let t = Owned::quantize(&w, rows, cols, dtype, group);
            let got = matvec_vec(&t.view(), &x);
            // The input the integer kernels see: x quantized per group.
            let xin: Vec<f32> = if matches!(dtype, DType::Q8 | DType::Q4) {
                x.chunks(group)
                    .flat_map(|g| {
                        let s = g.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
                        g.iter()
                            .map(move |v| if s > 0.0 { (v / s).round() * s } else { 0.0 })
                    })
                    .collect()
            } else {
                x.clone()
            };
            let want = reference_matvec(&t.dequantized(), &xin);
            for (r, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (*g as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()),
                    "{dtype:?} {rows}x{cols}/{group} row {r}: {g} vs {w}"
                );
            }
        }
    }
}

/// Error budget of quantized dot products, measured per element: for each row,
/// `|q·x − w·x| / Σ|w_i x_i|`, i.e. the error relative to the magnitude of the
/// terms summed (so cancellation in the exact sum does not inflate it). Q8
/// stays below 1e-2 of that scale on average (≈1e-4 per element over ~100
/// elements), Q4 below 1e-1 (≈1e-3 per element).
#[test]
fn quantized_dot_product_error_budget() {
    let mut rng = Rng::new(2);
    let (rows, cols, group) = (256, 172, 32);
    let w = rand_vec(&mut rng, rows * cols, 1.0);
    let x = rand_vec(&mut rng, cols, 1.0);
    let exact = reference_matvec(&w, &x);
    for (dtype, budget) in [(DType::Q8, 1e-4), (DType::Q4, 1e-3)] {
        let t = Owned::quantize(&w, rows, cols, dtype, group);
        let got = matvec_vec(&t.view(), &x);
        let mut mean_rel = 0f64;
        for (r, (g, e)) in got.iter().zip(&exact).enumerate() {
            let scale: f64 = w[r * cols..(r + 1) * cols]
                .iter()
                .zip(&x)
                .map(|(a, b)| (*a as f64 * *b as f64).abs())
                .sum();
            mean_rel += (*g as f64 - e).abs() / scale / cols as f64;
        }
        mean_rel /= rows as f64;
        assert!(
            mean_rel < budget,
            "{dtype:?}: per-element relative error {mean_rel:e} over budget {budget:e}"
        );
    }
}
