//! Trainer ↔ export ↔ runtime: the runtime running an exported f32 blob
//! computes the trainer's candle model (logits at every position, greedy
//! generations token for token); quantized blobs keep the trained model's
//! top-1 choices; a blob changed after export is refused.

use candle_core::{Device, Tensor, Var};
use export::{build_blob, compare, Checkpoint, ExportOptions, Quant};
use runtime::format::special;
use runtime::{GenerateConfig, KvDType, Model, SamplerConfig, Session};
use std::path::PathBuf;
use std::sync::OnceLock;
use trainer::config::TrainConfig;
use trainer::model::{Params, Transformer};

/// The candle model holding exactly the checkpoint's weights.
fn candle_model(ckpt: &Checkpoint) -> Transformer {
    let mut params = Params::default();
    for (name, (shape, values)) in &ckpt.tensors {
        let t = Tensor::from_vec(values.clone(), shape.as_slice(), &Device::Cpu).unwrap();
        params.insert(name.clone(), Var::from_tensor(&t).unwrap());
    }
    Transformer::from_params(&ckpt.config, &params).unwrap()
}

/// A freshly initialised trainer model as a checkpoint (the trainer's own init).
fn random_init(config: runtime::ModelConfig, seed: u64) -> Checkpoint {
    let (_, params) = Transformer::init(&config, seed, &Device::Cpu).unwrap();
    let tensors = params
        .tensors()
        .into_iter()
        .map(|(name, t)| {
            let shape = t.dims().to_vec();
            (
                name,
                (shape, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()),
            )
        })
        .collect();
    let merges = (0..20u32)
        .map(|r| (8 + b'a' as u32 + r, 8 + b'a' as u32 + r + 1))
        .collect();
    Checkpoint {
        config,
        merges,
        tensors,
    }
}

fn candle_logits(model: &Transformer, tokens: &[u32]) -> Vec<Vec<f32>> {
    let t = Tensor::new(tokens, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    model.forward(&t, None).unwrap().to_vec2::<f32>().unwrap()
}

fn runtime_logits(blob: &[u8], tokens: &[u32]) -> Vec<Vec<f32>> {
    runtime::testing::logits_per_position(blob, tokens).unwrap()
}

/// Argmax, lowest id on ties (the runtime's greedy rule).
fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// Greedy decoding with candle, recomputing the whole prefix each step.
fn candle_greedy(model: &Transformer, prompt: &[u32], max_new: usize, context: usize) -> Vec<u32> {
    let mut seq = prompt.to_vec();
    let mut out = Vec::new();
    // A full context still gives the logits of its last position: the
    // runtime samples one token from it (the token is not fed back), and so
    // does this reference.
    while out.len() < max_new && seq.len() <= context {
        let logits = candle_logits(model, &seq);
        let t = argmax(logits.last().unwrap());
        out.push(t);
        seq.push(t);
        if t == special::EOS {
            break;
        }
    }
    out
}

fn runtime_greedy(blob: &[u8], prompt: &[u32], max_new: usize, context: usize) -> Vec<u32> {
    let model = Model::from_blob(blob).unwrap();
    let mut arena = vec![0u8; runtime::plan(model.config(), context, KvDType::F32).total_bytes];
    let mut s = Session::new(&model, &mut arena, context, KvDType::F32).unwrap();
    let cfg = GenerateConfig {
        sampler: SamplerConfig::GREEDY,
        max_new_tokens: max_new,
        think_budget: None,
    };
    let mut out = Vec::new();
    runtime::generate_ids(&mut s, prompt, &cfg, &mut |t| out.push(t)).unwrap();
    out
}

/// Every position's logits within `rel × max|logit|` of candle's.
fn assert_logits_match(ckpt: &Checkpoint, blob: &[u8], tokens: &[u32], rel: f32) -> f32 {
    let want = candle_logits(&candle_model(ckpt), tokens);
    let got = runtime_logits(blob, tokens);
    let mut worst = 0f32;
    for (pos, (g, w)) in got.iter().zip(&want).enumerate() {
        let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = g.iter().zip(w).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            diff <= rel * scale,
            "position {pos}: max |Δlogit| {diff:e} > {rel:e} × max|logit| {scale}"
        );
        worst = worst.max(diff / scale);
    }
    worst
}

fn random_config() -> runtime::ModelConfig {
    runtime::ModelConfig {
        dim: 64,
        n_layers: 3,
        n_heads: 4,
        n_kv_heads: 2,
        hidden_dim: 172,
        vocab_size: 300,
        max_seq_len: 128,
        rope_theta: 10000.0,
        norm_eps: 1e-6,
        embedding_scale: 8.0,
        tied_embeddings: true,
        moe: None,
    }
}

#[test]
fn f32_blob_logits_equal_candle_random_init() {
    for (tied, seed) in [(true, 1), (false, 2)] {
        let cfg = runtime::ModelConfig {
            tied_embeddings: tied,
            ..random_config()
        };
        let ckpt = random_init(cfg, seed);
        let (blob, _) = build_blob(&ckpt, &ExportOptions::with_quant(Quant::F32)).unwrap();
        let tokens: Vec<u32> = (0..128).map(|i| (i * 131 + 7) % 300).collect();
        let worst = assert_logits_match(&ckpt, &blob, &tokens, 1e-4);
        eprintln!("random init, tied={tied}: worst |Δlogit| / max|logit| = {worst:.2e} over 128 positions");
    }
}

#[test]
fn greedy_generation_identical_random_init() {
    let ckpt = random_init(random_config(), 3);
    let (blob, _) = build_blob(&ckpt, &ExportOptions::with_quant(Quant::F32)).unwrap();
    let model = candle_model(&ckpt);
    for prompt in [
        vec![2u32],
        vec![2, 120, 121, 122],
        vec![2, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50],
    ] {
        let want = candle_greedy(&model, &prompt, 64, 128);
        let got = runtime_greedy(&blob, &prompt, 64, 128);
        assert_eq!(got, want, "prompt {prompt:?}");
    }
}

/// The trainer's smoke preset, trained once per test binary into a temp dir.
fn smoke_run() -> &'static PathBuf {
    static RUN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let mut cfg = TrainConfig::smoke_preset();
        cfg.final_eval_n = 0;
        cfg.eval_every = 0;
        let opts = trainer::train::Options {
            out: out.clone(),
            resume: false,
            progress: false,
            stop_after: None,
        };
        trainer::train::run(&cfg, &opts).unwrap();
        (dir, out)
    })
    .1
}

fn held_out(n: usize) -> Vec<tasks::Problem> {
    tasks::held_out_set(&tasks::Mix::parse("add").unwrap(), n, 99)
}

#[test]
fn smoke_trained_f32_blob_matches_candle_and_generates_identically() {
    let ckpt = export::load_run(smoke_run()).unwrap();
    let (blob, _) = build_blob(&ckpt, &ExportOptions::with_quant(Quant::F32)).unwrap();
    let context = ckpt.config.max_seq_len as usize;
    let seqs = compare::encode_problems(&blob, &held_out(6), true).unwrap();
    let mut worst = 0f32;
    for seq in &seqs {
        let seq = &seq[..seq.len().min(context)];
        worst = worst.max(assert_logits_match(&ckpt, &blob, seq, 1e-4));
    }
    eprintln!("smoke-trained: worst |Δlogit| / max|logit| = {worst:.2e}");
    // Greedy from `<bos> problem`: the model opens <think> itself.
    let model = candle_model(&ckpt);
    for seq in &seqs {
        let think = seq.iter().position(|&t| t == special::THINK).unwrap();
        let prompt = &seq[..think];
        let want = candle_greedy(&model, prompt, 64, context);
        let got = runtime_greedy(&blob, prompt, 64, context);
        assert_eq!(got, want, "prompt {prompt:?}");
        assert!(!got.is_empty());
    }
}

#[test]
fn quantized_blobs_keep_top1_on_held_out_positions() {
    let ckpt = export::load_run(smoke_run()).unwrap();
    let (reference, _) = build_blob(&ckpt, &ExportOptions::with_quant(Quant::F32)).unwrap();
    let seqs = compare::encode_problems(&reference, &held_out(64), true).unwrap();
    // Positions that predict trained tokens (<think> onwards); the problem's
    // own digits are random, their logits flat and their argmax meaningless.
    let starts: Vec<usize> = seqs.iter().map(|s| compare::reasoning_start(s)).collect();
    // q4 is checked as recommended (q4 matrices, q8 embedding, which is also
    // the tied LM head: the most sensitive tensor, ~15 % of the bytes) and,
    // with a lower floor, plain. The smoke model is briefly trained and many
    // of its predictions are near ties, which q4's rounding flips.
    let q4_emb8 = ExportOptions {
        embedding_quant: Some(Quant::Q8),
        ..ExportOptions::with_quant(Quant::Q4)
    };
    for (name, opts, min_top1) in [
        ("f16", ExportOptions::with_quant(Quant::F16), 0.995),
        ("q8", ExportOptions::with_quant(Quant::Q8), 0.99),
        ("q4+q8 embedding", q4_emb8, 0.95),
        ("q4", ExportOptions::with_quant(Quant::Q4), 0.85),
    ] {
        let quant = name;
        let (blob, report) = build_blob(&ckpt, &opts).unwrap();
        let all = compare::logits_agreement(&reference, &blob, &seqs).unwrap();
        let a = compare::logits_agreement_from(&reference, &blob, &seqs, &starts).unwrap();
        eprintln!(
            "{quant}: {} bytes, {:.2} bits/weight, top-1 {:.2}% over {} think/answer positions \
             ({:.2}% over all {}), max |Δlogit| {:.3} (max |logit| {:.1})",
            report.blob_bytes,
            report.bits_per_weight,
            100.0 * a.top1,
            a.positions,
            100.0 * all.top1,
            all.positions,
            a.max_abs_dlogit,
            a.max_abs_logit
        );
        assert!(
            a.top1 >= min_top1,
            "{quant}: top-1 agreement {:.4} < {min_top1}",
            a.top1
        );
    }
}

#[test]
fn any_changed_byte_is_refused() {
    let cfg = runtime::ModelConfig {
        dim: 16,
        n_layers: 1,
        n_heads: 2,
        n_kv_heads: 1,
        hidden_dim: 40,
        vocab_size: 300,
        max_seq_len: 16,
        ..random_config()
    };
    let ckpt = random_init(cfg, 4);
    let (blob, _) = build_blob(&ckpt, &ExportOptions::default()).unwrap();
    assert!(Model::from_blob(&blob).is_ok());
    let mut bad = blob.clone();
    for i in 0..blob.len() {
        for flip in [0x01u8, 0x80] {
            bad[i] ^= flip;
            let r = Model::from_blob(&bad);
            assert!(
                r.is_err(),
                "flipping bit {flip:#x} of byte {i} of {} was accepted",
                blob.len()
            );
            bad[i] ^= flip;
        }
    }
    // Past the header, the checksum is what catches it.
    bad[blob.len() / 2] ^= 0x10;
    let e = Model::from_blob(&bad).err().unwrap();
    assert!(matches!(e, runtime::BlobError::BadChecksum { .. }), "{e}");
    assert!(e.to_string().contains("checksum"));
    for cut in [1, 4, blob.len() / 2] {
        assert!(
            Model::from_blob(&blob[..blob.len() - cut]).is_err(),
            "truncated by {cut} accepted"
        );
    }
}
