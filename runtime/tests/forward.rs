//! The forward pass against a plain transformer: KV cache, grouped-query
//! attention, prefill, KV precision, and the memory plan.

#![allow(unused_imports)]

mod common;

use common::*;
use runtime::format::{special, ModelConfig, MoeConfig, TensorId, TensorKind, TokenizerData};
use runtime::kernels::{self, QuantizedActivations, TensorView};
use runtime::sampling::{Rng, Sampler, SamplerConfig};
use runtime::*;

/// Decoding with the KV cache equals recomputing the whole sequence without
/// a cache at every position (dense and mixture-of-experts, all dtypes).
#[test]
fn cached_decode_equals_full_recomputation() {
    let moe = Some(MoeConfig {
        n_experts: 4,
        top_k: 2,
        layer_mask: 0b10,
    });
    for (config, dtype) in [
        (test_config(None), DType::F32),
        (test_config(moe), DType::F32),
        (test_config(None), DType::Q8),
        (test_config(moe), DType::Q4),
        (testing::tiny_config(), DType::F16),
    ] {
        let blob = testing::random_blob(&config, dtype, 16, 3).unwrap();
        let tokens: Vec<u32> = (0..12).map(|i| (i * 37 + 5) % config.vocab_size).collect();
        let cached = session_logits(&blob, &tokens, KvDType::F32);
        // Quantized matvecs see int8 activations; the reference does not.
        let tol = if matches!(dtype, DType::Q8 | DType::Q4) {
            3e-2
        } else {
            1e-4
        };
        for n in [1, 2, 5, 12] {
            let want = reference_logits(&blob, &tokens[..n]);
            assert_close(
                &cached[n - 1],
                &want,
                tol,
                &format!("{dtype:?} moe={} pos {n}", config.moe.is_some()),
            );
        }
    }
}

/// Grouped-query attention with kv heads = heads/2 equals plain multi-head
/// attention whose key/value heads are the shared ones duplicated.
#[test]
fn gqa_equals_plain_attention_with_duplicated_heads() {
    let gqa = test_config(None);
    let mha = ModelConfig {
        n_kv_heads: gqa.n_heads,
        ..gqa
    };
    let hd = gqa.head_dim() as usize;
    let group = (gqa.n_heads / gqa.n_kv_heads) as usize;
    let mut rng = Rng::new(9);
    let weights = std::cell::RefCell::new(std::collections::HashMap::new());
    let mut fill = |id: TensorId, row: usize, v: &mut [f32]| {
        let key = (format!("{:?}{}", id.kind, id.layer), row);
        let mut w = weights.borrow_mut();
        let vals = w
            .entry(key)
            .or_insert_with(|| rand_vec(&mut rng, v.len(), 0.3));
        v.copy_from_slice(vals);
    };
    let blob_gqa = testing::blob_from_fn(&gqa, DType::F32, 0, ScaleType::F32, &mut fill).unwrap();
    let mut fill_mha = |id: TensorId, row: usize, v: &mut [f32]| {
        // Keys/values of head h in the plain model are kv head h / group.
        let row = if matches!(id.kind, TensorKind::Wk | TensorKind::Wv) {
            (row / hd / group) * hd + row % hd
        } else {
            row
        };
        let key = (format!("{:?}{}", id.kind, id.layer), row);
        v.copy_from_slice(&weights.borrow()[&key]);
    };
    let blob_mha =
        testing::blob_from_fn(&mha, DType::F32, 0, ScaleType::F32, &mut fill_mha).unwrap();
    let tokens = [2u32, 100, 101, 7, 250, 33];
    let a = session_logits(&blob_gqa, &tokens, KvDType::F32);
    let b = session_logits(&blob_mha, &tokens, KvDType::F32);
    assert_eq!(a, b, "GQA and duplicated-head attention differ");
}

/// Prefill gives bit-identical logits and cache to token-by-token decoding.
#[test]
fn prefill_equals_token_by_token() {
    let c = testing::tiny_config();
    let blob = testing::random_blob(&c, DType::Q4, 32, 4).unwrap();
    let model = Model::from_blob(&blob).unwrap();
    let tokens: Vec<u32> = (0..40).map(|i| (i * 91 + 3) % c.vocab_size).collect();
    let p = plan(&c, 64, KvDType::F16);
    let (mut a1, mut a2) = (vec![0u8; p.total_bytes], vec![0u8; p.total_bytes]);
    let mut s1 = Session::new(&model, &mut a1, 64, KvDType::F16).unwrap();
    let mut s2 = Session::new(&model, &mut a2, 64, KvDType::F16).unwrap();
    let pre = s1.prefill(&tokens).unwrap().to_vec();
    let mut last = vec![];
    for t in &tokens {
        last = s2.forward(*t).unwrap().to_vec();
    }
    assert_eq!(pre, last);
    assert_eq!(s1.forward(5).unwrap(), s2.forward(5).unwrap());
    // Rewind and replay reproduce the same logits.
    s1.rewind(10);
    assert_eq!(s1.pos(), 10);
    let replay = s1.prefill(&tokens[10..]).unwrap().to_vec();
    assert_eq!(replay, pre);
}

/// An f16 KV cache stays close to the f32 one.
#[test]
fn f16_kv_cache_close_to_f32() {
    let c = testing::tiny_config();
    let blob = testing::random_blob(&c, DType::F32, 0, 5).unwrap();
    let tokens: Vec<u32> = (0..30).map(|i| (i * 53 + 11) % c.vocab_size).collect();
    let a = session_logits(&blob, &tokens, KvDType::F32);
    let b = session_logits(&blob, &tokens, KvDType::F16);
    for (x, y) in a.iter().zip(&b) {
        assert_close(y, x, 5e-3, "f16 kv");
    }
}

/// The largest logit and its lead over the runner-up.
fn top_and_margin(logits: &[f32]) -> (u32, f32) {
    let best = runtime::sampling::argmax(logits);
    let second = logits
        .iter()
        .enumerate()
        .filter(|(i, _)| *i as u32 != best)
        .fold(f32::NEG_INFINITY, |m, (_, v)| m.max(*v));
    (best, logits[best as usize] - second)
}

/// A q8 KV cache keeps every logit of the f16 one within 1 % of the largest
/// logit, and greedy decoding with it picks the f16 token at every step
/// whose f16 choice is not a near tie (a lead under twice that bound), which
/// is most steps: the two generations are the same up to the first near tie.
#[test]
fn q8_kv_cache_keeps_the_f16_greedy_tokens() {
    const BOUND: f32 = 0.01;
    let moe = Some(MoeConfig {
        n_experts: 4,
        top_k: 2,
        layer_mask: 0b10,
    });
    for (config, dtype, seed) in [
        (testing::tiny_config(), DType::F32, 5u64),
        (testing::tiny_config(), DType::Q8, 8),
        (testing::tiny_config(), DType::Q4, 9),
        (test_config(None), DType::Q8, 3),
        (test_config(moe), DType::Q4, 4),
    ] {
        let what = format!("{dtype:?}, {} layers", config.n_layers);
        let blob = testing::random_blob(&config, dtype, 32, seed).unwrap();
        let model = Model::from_blob(&blob).unwrap();
        let context = (config.max_seq_len as usize).min(128);
        let mut a16 = vec![0u8; plan(&config, context, KvDType::F16).total_bytes];
        let mut a8 = vec![0u8; plan(&config, context, KvDType::Q8).total_bytes];
        let mut s16 = Session::new(&model, &mut a16, context, KvDType::F16).unwrap();
        let mut s8 = Session::new(&model, &mut a8, context, KvDType::Q8).unwrap();
        // Both follow the f16 choices, so both caches hold the same tokens;
        // where the choices agree this is each one's own greedy generation.
        let (mut t, mut decided) = (1u32, 0usize);
        for step in 0..context {
            let a = s16.forward(t).unwrap().to_vec();
            let b = s8.forward(t).unwrap().to_vec();
            let peak = a.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = a
                .iter()
                .zip(&b)
                .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(
                d <= BOUND * peak,
                "{what}, step {step}: logits moved by {d} (largest {peak})"
            );
            let (best, lead) = top_and_margin(&a);
            if lead >= 2.0 * BOUND * peak {
                assert_eq!(
                    runtime::sampling::argmax(&b),
                    best,
                    "{what}, step {step}: the q8 cache picks another token"
                );
                decided += 1;
            }
            t = best;
        }
        assert!(
            decided * 2 >= context,
            "{what}: {decided} of {context} steps are not near ties"
        );
    }
}

/// A q8 KV cache stays close to the f32 one too (the same bound as against
/// f16: its error is the int8 rounding, not the f16 one).
#[test]
fn q8_kv_cache_close_to_f32() {
    let c = testing::tiny_config();
    let blob = testing::random_blob(&c, DType::F32, 0, 5).unwrap();
    let tokens: Vec<u32> = (0..30).map(|i| (i * 53 + 11) % c.vocab_size).collect();
    let a = session_logits(&blob, &tokens, KvDType::F32);
    let b = session_logits(&blob, &tokens, KvDType::Q8);
    for (x, y) in a.iter().zip(&b) {
        assert_close(y, x, 0.01, "q8 kv");
    }
}

#[test]
fn memory_plan_is_exact_and_errors_name_sizes() {
    let c = testing::tiny_config();
    let blob = testing::random_blob(&c, DType::F32, 0, 6).unwrap();
    let model = Model::from_blob(&blob).unwrap();
    for kv in [KvDType::F32, KvDType::F16, KvDType::Q8] {
        let p = plan(&c, 100, kv);
        assert_eq!(p.total_bytes, p.kv_cache_bytes + p.scratch_bytes + 15);
        // Q8: int8 keys and values, then an f16 scale per 32 values of each
        // (the 1,000 bytes of scales rounded up to 1,008).
        let kv_bytes = match kv {
            KvDType::F32 => 2 * 5 * 100 * 32 * 4,
            KvDType::F16 => 2 * 5 * 100 * 32 * 2,
            KvDType::Q8 => 2 * 5 * 100 * 32 + 2 * 1008,
        };
        assert_eq!(p.kv_cache_bytes, kv_bytes, "{kv:?}");
        let mut big = vec![0u8; p.total_bytes + 16];
        // Every misalignment of the arena start works with exactly total_bytes.
        for off in 0..16 {
            let arena = &mut big[off..off + p.total_bytes];
            let mut s = Session::new(&model, arena, 100, kv).unwrap();
            s.forward(1).unwrap();
        }
        let short = &mut big[..p.total_bytes - 1];
        let err = Session::new(&model, short, 100, kv).err().unwrap();
        assert_eq!(
            err,
            SessionError::ArenaTooSmall {
                needed: p.total_bytes,
                available: p.total_bytes - 1
            }
        );
        assert!(err.to_string().contains(&p.total_bytes.to_string()));
    }
    let mut arena = vec![0u8; plan(&c, 600, KvDType::F32).total_bytes];
    let err = Session::new(&model, &mut arena, 600, KvDType::F32)
        .err()
        .unwrap();
    assert_eq!(
        err,
        SessionError::ContextTooLong {
            context: 600,
            max: 512
        }
    );
    let mut s = Session::new(&model, &mut arena, 2, KvDType::F32).unwrap();
    assert_eq!(
        s.forward(512).err(),
        Some(SessionError::TokenOutOfRange {
            token: 512,
            vocab: 512
        })
    );
    s.forward(1).unwrap();
    s.forward(1).unwrap();
    assert_eq!(
        s.forward(1).err(),
        Some(SessionError::ContextFull { context: 2 })
    );
}
