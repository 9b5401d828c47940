//! The sampler: reproducible, and top-k / top-p respected.

#![allow(unused_imports)]

mod common;

use common::*;
use runtime::format::{special, ModelConfig, MoeConfig, TensorId, TensorKind, TokenizerData};
use runtime::kernels::{self, QuantizedActivations, TensorView};
use runtime::sampling::{Rng, Sampler, SamplerConfig};
use runtime::*;

#[test]
fn sampler_is_reproducible_and_respects_top_k_and_top_p() {
    let mut rng = Rng::new(11);
    let logits = rand_vec(&mut rng, 500, 4.0);
    let draw = |cfg: SamplerConfig, n: usize| -> Vec<u32> {
        let mut s = Sampler::new(cfg);
        let mut cand = vec![0u32; logits.len()];
        (0..n)
            .map(|_| s.sample(&mut logits.clone(), &mut cand))
            .collect()
    };
    let cfg = SamplerConfig {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        seed: 42,
    };
    assert_eq!(draw(cfg, 200), draw(cfg, 200));
    assert_ne!(draw(cfg, 200), draw(SamplerConfig { seed: 43, ..cfg }, 200));
    // Greedy is the argmax.
    let best = runtime::sampling::argmax(&logits);
    assert!(draw(SamplerConfig::GREEDY, 3).iter().all(|t| *t == best));
    // Top-k: only the k most likely ids.
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    order.sort_by(|a, b| logits[*b as usize].total_cmp(&logits[*a as usize]));
    let top5 = &order[..5];
    let got = draw(SamplerConfig { top_k: 5, ..cfg }, 300);
    assert!(got.iter().all(|t| top5.contains(t)));
    assert!(top5.iter().filter(|t| got.contains(t)).count() >= 3);
    // Top-p: only the smallest prefix whose probability reaches p.
    let mut probs = logits.clone();
    kernels::softmax(&mut probs);
    let mut cum = 0.0;
    let mut nucleus = vec![];
    for id in &order {
        nucleus.push(*id);
        cum += probs[*id as usize];
        if cum >= 0.5 {
            break;
        }
    }
    let got = draw(SamplerConfig { top_p: 0.5, ..cfg }, 300);
    assert!(
        got.iter().all(|t| nucleus.contains(t)),
        "nucleus {nucleus:?}"
    );
    assert_eq!(
        draw(
            SamplerConfig {
                top_p: 0.5,
                top_k: 40,
                ..cfg
            },
            50
        ),
        draw(
            SamplerConfig {
                top_p: 0.5,
                top_k: 40,
                ..cfg
            },
            50
        )
    );
}
