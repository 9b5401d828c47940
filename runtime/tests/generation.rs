//! Generation: think budget, prompt limits, seeds, and a blob without a
//! tokenizer.

#![allow(unused_imports)]

mod common;

use common::*;
use runtime::format::{special, ModelConfig, MoeConfig, TensorId, TensorKind, TokenizerData};
use runtime::kernels::{self, QuantizedActivations, TensorView};
use runtime::sampling::{Rng, Sampler, SamplerConfig};
use runtime::*;

#[test]
fn think_budget_closes_the_thought() {
    let blob = testing::markov_blob(&testing::ENDLESS_THOUGHT).unwrap();
    let cfg = GenerateConfig {
        max_new_tokens: 40,
        think_budget: Some(3),
        ..Default::default()
    };
    let (think, answer, stop, hit, events) = run_generate(&blob, cfg);
    assert_eq!(
        (think.as_str(), answer.as_str(), stop, hit),
        ("aaa", "4", StopReason::Eos, true)
    );
    let ids: Vec<u32> = events.iter().map(|e| e.0).collect();
    assert_eq!(
        ids,
        [
            special::THINK,
            A,
            A,
            A,
            special::END_THINK,
            special::ANSWER,
            FOUR,
            special::END_ANSWER,
            special::EOS
        ]
    );
    assert_eq!(events[1].1, Span::Think);
    assert_eq!(events[6], (FOUR, Span::Answer, "4".to_string()));
    assert_eq!(events[4].2, "</think>");
    // Without a budget the thought runs to the token limit.
    let cfg = GenerateConfig {
        max_new_tokens: 10,
        think_budget: None,
        ..Default::default()
    };
    let (think, answer, stop, hit, _) = run_generate(&blob, cfg);
    assert_eq!(
        (think.len(), answer.as_str(), stop, hit),
        (9, "", StopReason::TokenLimit, false)
    );
    // A budget of zero closes the thought right after <think>.
    let cfg = GenerateConfig {
        max_new_tokens: 40,
        think_budget: Some(0),
        ..Default::default()
    };
    let (think, answer, _, hit, _) = run_generate(&blob, cfg);
    assert_eq!((think.as_str(), answer.as_str(), hit), ("", "4", true));
}

#[test]
fn prompt_too_long_and_generate_ids() {
    let c = testing::tiny_config();
    let blob = testing::random_blob(&c, DType::Q8, 32, 8).unwrap();
    let model = Model::from_blob(&blob).unwrap();
    let mut arena = vec![0u8; plan(&c, 16, KvDType::F16).total_bytes];
    let mut s = Session::new(&model, &mut arena, 16, KvDType::F16).unwrap();
    let mut text = [0u8; 64];
    let err = generate(
        &mut s,
        "1234567890123456789",
        &GenerateConfig::default(),
        &mut text,
        &mut |_| {},
    )
    .err();
    assert_eq!(
        err,
        Some(GenerateError::PromptTooLong {
            tokens: 20,
            context: 16
        })
    );
    let cfg = GenerateConfig {
        max_new_tokens: 100,
        sampler: SamplerConfig {
            temperature: 0.9,
            top_k: 0,
            top_p: 0.9,
            seed: 5,
        },
        ..Default::default()
    };
    let mut ids = vec![];
    let (n, stop) = generate_ids(&mut s, &[2, 50, 60], &cfg, &mut |t| ids.push(t)).unwrap();
    assert_eq!(n, ids.len());
    assert!(stop == StopReason::ContextFull || stop == StopReason::Eos);
}

/// Same blob, prompt and seed give the same tokens; a different seed differs.
#[test]
fn same_seed_same_tokens() {
    let c = testing::tiny_config();
    let blob = testing::random_blob(&c, DType::Q4, 32, 10).unwrap();
    let run = |seed| {
        let model = Model::from_blob(&blob).unwrap();
        let mut arena = vec![0u8; plan(&c, 128, KvDType::F32).total_bytes];
        let mut s = Session::new(&model, &mut arena, 128, KvDType::F32).unwrap();
        let mut text = [0u8; 1024];
        let cfg = GenerateConfig {
            max_new_tokens: 60,
            sampler: SamplerConfig {
                temperature: 8.0,
                top_k: 50,
                top_p: 0.95,
                seed,
            },
            think_budget: Some(20),
        };
        let mut ids = vec![];
        generate(&mut s, "the answer", &cfg, &mut text, &mut |e| {
            ids.push(e.id)
        })
        .unwrap();
        ids
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

/// A tokenizer-less blob still loads and runs from ids.
#[test]
fn blob_without_tokenizer_runs_from_ids() {
    let c = ModelConfig {
        vocab_size: 200,
        ..test_config(None)
    };
    let blob = testing::random_blob(&c, DType::F16, 0, 14).unwrap();
    let model = Model::from_blob(&blob).unwrap();
    assert!(matches!(model.tokenizer().data(), TokenizerData::None));
    let mut arena = vec![0u8; plan(&c, 24, KvDType::F32).total_bytes];
    let mut s = Session::new(&model, &mut arena, 24, KvDType::F32).unwrap();
    let mut text = [0u8; 16];
    assert_eq!(
        generate(
            &mut s,
            "x",
            &GenerateConfig::default(),
            &mut text,
            &mut |_| {}
        )
        .err(),
        Some(GenerateError::NoReasoningTokens)
    );
    let (n, _) = generate_ids(
        &mut s,
        &[1, 5],
        &GenerateConfig {
            max_new_tokens: 5,
            ..Default::default()
        },
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(n, 5);
}
