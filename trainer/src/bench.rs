//! `trainer bench`: training throughput (forward + backward + clip + AdamW)
//! on random tokens for reference shapes, through the trainer's own step.

use crate::data::Sequence;
use crate::loss::SpanKind;
use crate::model::Transformer;
use crate::optim::{clip_grad_norm, AdamW, AdamWConfig};
use crate::step::{gradients, StepSettings};
use anyhow::{bail, Result};
use candle_core::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use runtime::format::ModelConfig;
use std::time::Instant;

pub struct Shape {
    pub name: &'static str,
    pub dim: u32,
    pub layers: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub batch: usize,
    pub seq: usize,
}

pub const SHAPES: [Shape; 3] = [
    Shape {
        name: "A",
        dim: 256,
        layers: 6,
        heads: 8,
        kv_heads: 8,
        batch: 16,
        seq: 256,
    },
    Shape {
        name: "B",
        dim: 128,
        layers: 4,
        heads: 4,
        kv_heads: 2,
        batch: 32,
        seq: 128,
    },
    // The default preset's model at its mean training length.
    Shape {
        name: "C",
        dim: 64,
        layers: 4,
        heads: 4,
        kv_heads: 2,
        batch: 32,
        seq: 100,
    },
];

/// Tokens per second over `steps` timed steps.
pub fn run_shape(s: &Shape, steps: usize, shards: usize) -> Result<f64> {
    let vocab = 512u32;
    let cfg = ModelConfig {
        dim: s.dim,
        n_layers: s.layers,
        n_heads: s.heads,
        n_kv_heads: s.kv_heads,
        hidden_dim: s.dim * 8 / 3,
        vocab_size: vocab,
        max_seq_len: s.seq as u32,
        rope_theta: 10000.0,
        norm_eps: 1e-6,
        embedding_scale: (s.dim as f32).sqrt(),
        tied_embeddings: true,
        moe: None,
    };
    let dev = Device::Cpu;
    let (model, params) = Transformer::init(&cfg, 0, &dev)?;
    let adam = AdamWConfig {
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.1,
    };
    let mut opt = AdamW::new(&params, adam)?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    // Random sequences of the shape's length, every position weighted, run
    // through the trainer's own step (sharded as the trainer shards).
    let seqs: Vec<Sequence> = (0..s.batch)
        .map(|_| {
            let ids: Vec<u32> = (0..=s.seq).map(|_| rng.gen_range(8..vocab)).collect();
            Sequence {
                ids,
                weights: vec![1.0; s.seq],
                spans: vec![SpanKind::Answer; s.seq],
            }
        })
        .collect();
    let n = s.batch * s.seq;
    let settings = StepSettings {
        shards,
        dropout: 0.0,
        seed: 0,
        moe_aux_weight: 0.0,
    };
    let mut step = || -> Result<()> {
        let mut grads = gradients(&model, &params, &seqs, 0, settings, &dev)?.grads;
        clip_grad_norm(&mut grads, &params, 1.0)?;
        opt.step(&grads, 1e-3)
    };
    for _ in 0..2 {
        step()?;
    }
    let t = Instant::now();
    for _ in 0..steps {
        step()?;
    }
    Ok((steps * n) as f64 / t.elapsed().as_secs_f64())
}

pub fn run(which: &str, steps: usize, shards: usize) -> Result<Vec<(&'static str, f64)>> {
    let picked: Vec<&Shape> = match which.to_ascii_lowercase().as_str() {
        "all" => SHAPES.iter().collect(),
        "a" => vec![&SHAPES[0]],
        "b" => vec![&SHAPES[1]],
        "c" => vec![&SHAPES[2]],
        other => bail!("unknown bench shape {other:?} (expected a, b, c or all)"),
    };
    let mut out = Vec::new();
    for s in picked {
        let tps = run_shape(s, steps, shards)?;
        println!(
            "shape {}: d{} L{} H{} KV{}, batch {}×{}: {:.0} tokens/s",
            s.name, s.dim, s.layers, s.heads, s.kv_heads, s.batch, s.seq, tps
        );
        out.push((s.name, tps));
    }
    Ok(out)
}
