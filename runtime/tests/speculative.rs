//! Speculative decoding: the batched pass equals single steps bit for bit,
//! greedy speculative output equals the target alone for every draft and k,
//! caches roll back cleanly, tokenizers are checked, sampling is seeded.

use runtime::blob::{self, TensorRecords};
use runtime::format::{special, DType, ModelConfig, TokenizerData};
use runtime::generate::{generate, GenerateConfig, Generation, Span, StopReason};
use runtime::memory::{plan, plan_batch, plan_draft, plan_speculative, KvDType};
use runtime::model::Model;
use runtime::sampling::SamplerConfig;
use runtime::session::{Session, SessionError};
use runtime::speculative::{generate_speculative, SpecStats, SpeculativeError};
use runtime::testing;

const CONTEXT: usize = 96;
const PROMPTS: [&str; 3] = [
    "12+35=",
    "Ann has 3 bags of 4 pears. How many pears?",
    "the answer",
];

/// The tiny shape with its own LM head: tied random embeddings make every
/// random model repeat its input token, which any draft guesses.
fn tiny() -> ModelConfig {
    ModelConfig {
        tied_embeddings: false,
        ..testing::tiny_config()
    }
}

fn blob(dtype: DType, seed: u64) -> Vec<u8> {
    testing::random_blob(&tiny(), dtype, 32, seed).unwrap()
}

type Events = Vec<(u32, Span, String)>;
type Outcome = (Events, String, String, StopReason, usize, bool);

/// Target alone: events, think, answer, stop, generated count.
fn target_only(target: &[u8], prompt: &str, cfg: &GenerateConfig) -> Outcome {
    let model = Model::from_blob(target).unwrap();
    let context = CONTEXT.min(model.config().max_seq_len as usize);
    let mut arena = vec![0u8; plan(model.config(), context, KvDType::F32).total_bytes];
    let mut s = Session::new(&model, &mut arena, context, KvDType::F32).unwrap();
    let mut events = vec![];
    let mut text = [0u8; 512];
    let g = generate(&mut s, prompt, cfg, &mut text, &mut |e| {
        events.push((e.id, e.span, e.text.to_string()))
    })
    .unwrap();
    outcome(events, &g)
}

/// What a generation produced, as the tests compare it.
fn outcome(events: Events, g: &Generation<'_>) -> Outcome {
    (
        events,
        g.think.to_string(),
        g.answer.to_string(),
        g.stop,
        g.generated_tokens,
        g.think_budget_hit,
    )
}

/// Speculative generation, plus its stats.
fn speculative(
    target: &[u8],
    draft: &[u8],
    prompt: &str,
    cfg: &GenerateConfig,
    k: usize,
) -> (Outcome, SpecStats) {
    let tm = Model::from_blob(target).unwrap();
    let dm = Model::from_blob(draft).unwrap();
    let context = CONTEXT.min(tm.config().max_seq_len as usize);
    let mut ta = vec![0u8; plan_speculative(tm.config(), context, KvDType::F32, k).total_bytes];
    let mut da = vec![0u8; plan_draft(dm.config(), context, KvDType::F32, k).total_bytes];
    let mut ts = Session::with_batch(&tm, &mut ta, context, KvDType::F32, k + 1).unwrap();
    let mut ds = Session::draft(&dm, &mut da, context, KvDType::F32, k).unwrap();
    let mut events = vec![];
    let mut text = [0u8; 512];
    let (g, stats) = generate_speculative(&mut ts, &mut ds, prompt, cfg, k, &mut text, &mut |e| {
        events.push((e.id, e.span, e.text.to_string()))
    })
    .unwrap();
    (outcome(events, &g), stats)
}

#[test]
fn forward_batch_equals_forward_bitwise() {
    let prompt = [special::BOS, 300, 17, 42, 99];
    let next = [5u32, 511, 8, 264, 3, 77, 120];
    let cfgs = [
        (tiny(), "dense"),
        (
            ModelConfig {
                n_kv_heads: 8,
                moe: Some(runtime::format::MoeConfig {
                    n_experts: 4,
                    top_k: 2,
                    layer_mask: 0b10110,
                }),
                tied_embeddings: false,
                ..tiny()
            },
            "moe",
        ),
    ];
    for (config, what) in cfgs {
        for dtype in [DType::F32, DType::F16, DType::Q8, DType::Q4] {
            let b = testing::random_blob(&config, dtype, 32, 3).unwrap();
            let model = Model::from_blob(&b).unwrap();
            for kv in [KvDType::F32, KvDType::F16, KvDType::Q8] {
                let mut a1 = vec![0u8; plan(&config, 64, kv).total_bytes];
                let mut s1 = Session::new(&model, &mut a1, 64, kv).unwrap();
                let mut a2 = vec![0u8; plan_batch(&config, 64, kv, 8).total_bytes];
                let mut s2 = Session::with_batch(&model, &mut a2, 64, kv, 8).unwrap();
                s1.prefill(&prompt).unwrap();
                s2.prefill(&prompt).unwrap();
                let mut expected = vec![];
                for t in next {
                    expected.extend_from_slice(s1.forward(t).unwrap());
                }
                let got = s2.forward_batch(&next).unwrap().to_vec();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&expected), "{what} {dtype:?} {kv:?}");
                assert_eq!(bits(s2.logits()), bits(s1.logits()));
                assert_eq!(s2.pos(), s1.pos());
                assert_eq!(s2.tokens(), s1.tokens());
                // The caches agree too: the next step is the same.
                let a = s1.forward(9).unwrap().to_vec();
                let b = s2.forward(9).unwrap().to_vec();
                assert_eq!(
                    bits(&a),
                    bits(&b),
                    "{what} {dtype:?} {kv:?} after the batch"
                );
            }
        }
    }
}

#[test]
fn forward_batch_errors() {
    let b = blob(DType::Q8, 1);
    let model = Model::from_blob(&b).unwrap();
    let mut a = vec![0u8; plan_batch(model.config(), 8, KvDType::F32, 3).total_bytes];
    let mut s = Session::with_batch(&model, &mut a, 8, KvDType::F32, 3).unwrap();
    assert_eq!(s.batch_capacity(), 3);
    assert_eq!(
        s.forward_batch(&[1, 2, 3, 4]).err(),
        Some(SessionError::BatchTooLarge {
            tokens: 4,
            capacity: 3
        })
    );
    assert_eq!(s.forward_batch(&[]).err(), Some(SessionError::EmptyInput));
    s.prefill(&[1, 2, 3, 4, 5, 6]).unwrap();
    assert_eq!(
        s.forward_batch(&[1, 2, 3]).err(),
        Some(SessionError::ContextFull { context: 8 })
    );
    assert_eq!(s.pos(), 6);
    // One byte less than the batch plan is too small; plan_batch(0) == plan.
    let config = tiny();
    assert_eq!(
        plan_batch(&config, 64, KvDType::F16, 0),
        plan(&config, 64, KvDType::F16)
    );
    let need = plan_batch(&config, 64, KvDType::F16, 5).total_bytes;
    let mut small = vec![0u8; need - 1];
    assert!(matches!(
        Session::with_batch(&model, &mut small, 64, KvDType::F16, 5).err(),
        Some(SessionError::ArenaTooSmall { .. })
    ));
    let mut exact = vec![0u8; need + 15];
    for start in 0..16 {
        let arena = &mut exact[start..start + need];
        assert!(Session::with_batch(&model, arena, 64, KvDType::F16, 5).is_ok());
    }
    // The draft's plan: k logits rows, no batch activations.
    let need = plan_draft(&config, 64, KvDType::F16, 3).total_bytes;
    assert_eq!(
        need - plan(&config, 64, KvDType::F16).total_bytes,
        3 * 512 * 4
    );
    let mut small = vec![0u8; need - 1];
    assert!(Session::draft(&model, &mut small, 64, KvDType::F16, 3).is_err());
    let mut exact = vec![0u8; need + 15];
    for start in 0..16 {
        let arena = &mut exact[start..start + need];
        let s = Session::draft(&model, arena, 64, KvDType::F16, 3).unwrap();
        assert_eq!((s.batch_capacity(), s.logit_rows()), (0, 3));
    }
}

#[test]
fn greedy_speculative_equals_target_alone() {
    let target = blob(DType::Q8, 1);
    let drafts = [
        ("self", target.clone()),
        ("unrelated", blob(DType::Q8, 99)),
        ("q4 of the same weights", blob(DType::Q4, 1)),
    ];
    let cfg = GenerateConfig {
        max_new_tokens: 60,
        ..Default::default()
    };
    for prompt in PROMPTS {
        let expected = target_only(&target, prompt, &cfg);
        assert!(expected.0.len() > 10);
        for (name, draft) in &drafts {
            for k in 1..=6 {
                let (got, stats) = speculative(&target, draft, prompt, &cfg, k);
                assert_eq!(got, expected, "draft {name}, k {k}, prompt {prompt:?}");
                assert!(stats.accepted <= stats.proposed);
                if *name == "self" {
                    assert_eq!(stats.accepted, stats.proposed, "k {k} {stats:?}");
                    assert!(stats.target_passes * (k + 1) >= got.4);
                }
                if *name == "unrelated" {
                    assert!(stats.acceptance_rate() < 0.5, "{stats:?}");
                }
            }
        }
    }
    // Up to a full context too (stop reason ContextFull), with an f16 draft.
    let cfg = GenerateConfig {
        max_new_tokens: 1000,
        ..Default::default()
    };
    let expected = target_only(&target, PROMPTS[0], &cfg);
    assert_eq!(expected.3, StopReason::ContextFull);
    for k in [1, 4, 7] {
        let (got, _) = speculative(&target, &blob(DType::F16, 1), PROMPTS[0], &cfg, k);
        assert_eq!(got, expected, "k {k}");
    }
}

#[test]
fn acceptance_of_a_q4_draft_is_high() {
    let target = blob(DType::Q8, 1);
    let draft = blob(DType::Q4, 1);
    let cfg = GenerateConfig {
        max_new_tokens: 80,
        ..Default::default()
    };
    let (_, stats) = speculative(&target, &draft, PROMPTS[1], &cfg, 4);
    assert!(stats.acceptance_rate() > 0.5, "{stats:?}");
}

#[test]
fn think_budget_and_eos_match_the_target() {
    const A: u32 = special::FIRST_BYTE + b'a' as u32;
    const Q: u32 = special::FIRST_BYTE + b'q' as u32;
    const FOUR: u32 = special::FIRST_BYTE + b'4' as u32;
    let target = testing::markov_blob(&testing::ENDLESS_THOUGHT).unwrap();
    // A draft that always guesses `a`, and one that knows the chain.
    let wrong = testing::markov_blob(&[(Q, A), (special::THINK, A), (A, A), (FOUR, A)]).unwrap();
    for budget in [None, Some(0), Some(1), Some(3), Some(7)] {
        for max_new_tokens in [3, 6, 10, 40] {
            let cfg = GenerateConfig {
                max_new_tokens,
                think_budget: budget,
                ..Default::default()
            };
            let expected = target_only(&target, "q", &cfg);
            for draft in [&target, &wrong] {
                for k in 1..=5 {
                    let (got, _) = speculative(&target, draft, "q", &cfg, k);
                    assert_eq!(
                        got, expected,
                        "budget {budget:?}, limit {max_new_tokens}, k {k}"
                    );
                }
            }
        }
    }
}

#[test]
fn caches_roll_back_to_a_fresh_state() {
    let target = blob(DType::Q8, 1);
    let draft = blob(DType::Q8, 99);
    let tm = Model::from_blob(&target).unwrap();
    let dm = Model::from_blob(&draft).unwrap();
    let k = 5;
    let mut ta = vec![0u8; plan_speculative(tm.config(), CONTEXT, KvDType::F16, k).total_bytes];
    let mut da = vec![0u8; plan_draft(dm.config(), CONTEXT, KvDType::F16, k).total_bytes];
    let mut ts = Session::with_batch(&tm, &mut ta, CONTEXT, KvDType::F16, k + 1).unwrap();
    let mut ds = Session::draft(&dm, &mut da, CONTEXT, KvDType::F16, k).unwrap();
    let cfg = GenerateConfig {
        max_new_tokens: 40,
        ..Default::default()
    };
    let mut text = [0u8; 256];
    let mut ids = vec![];
    let (_, stats) =
        generate_speculative(&mut ts, &mut ds, PROMPTS[1], &cfg, k, &mut text, &mut |e| {
            ids.push(e.id)
        })
        .unwrap();
    assert!(
        stats.proposed > stats.accepted,
        "rejections happened: {stats:?}"
    );
    // The target holds the prompt and every generated token but the last.
    let history = ts.tokens().to_vec();
    assert_eq!(
        &history[history.len() - ids.len() + 1..],
        &ids[..ids.len() - 1]
    );
    // Continuing equals a fresh session over the same history.
    let mut fa = vec![0u8; plan(tm.config(), CONTEXT, KvDType::F16).total_bytes];
    let mut fresh = Session::new(&tm, &mut fa, CONTEXT, KvDType::F16).unwrap();
    fresh.prefill(&history).unwrap();
    for t in [*ids.last().unwrap(), 300, 7] {
        let a = ts.forward(t).unwrap().to_vec();
        let b = fresh.forward(t).unwrap().to_vec();
        assert_eq!(
            a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }
    // The draft's cache is a prefix of the same history.
    let dt = ds.tokens().to_vec();
    assert_eq!(&history[..dt.len()], &dt[..]);
}

#[test]
fn tokenizer_mismatch_is_an_error() {
    let target = blob(DType::Q8, 1);
    let tm = Model::from_blob(&target).unwrap();
    let check = |draft: &[u8]| {
        let dm = Model::from_blob(draft).unwrap();
        let mut ta = vec![0u8; plan_speculative(tm.config(), 32, KvDType::F32, 2).total_bytes];
        let mut da = vec![0u8; plan_speculative(dm.config(), 32, KvDType::F32, 2).total_bytes];
        let mut ts = Session::with_batch(&tm, &mut ta, 32, KvDType::F32, 3).unwrap();
        let mut ds = Session::with_batch(&dm, &mut da, 32, KvDType::F32, 3).unwrap();
        generate_speculative(
            &mut ts,
            &mut ds,
            "1+1=",
            &GenerateConfig::default(),
            2,
            &mut [0u8; 64],
            &mut |_| {},
        )
        .map(|_| ())
    };
    // Another vocabulary size.
    let other_vocab = testing::random_blob(
        &ModelConfig {
            vocab_size: 400,
            ..tiny()
        },
        DType::Q8,
        32,
        1,
    )
    .unwrap();
    let err = check(&other_vocab).unwrap_err();
    assert_eq!(
        err,
        SpeculativeError::VocabMismatch {
            target: 512,
            draft: 400
        }
    );
    assert!(err.to_string().contains("vocabulary of 400 tokens vs 512"));
    // Same vocabulary, other merges.
    let parsed = blob::parse(&target).unwrap();
    let records: Vec<_> = TensorRecords::new(&parsed).map(|r| r.unwrap()).collect();
    let (merges, merge_index) = testing::test_merges(special::FIRST_MERGE + 11);
    let other_merges = blob::encode(
        &parsed.config,
        TokenizerData::ByteBpe {
            merges: &merges,
            merge_index: &merge_index,
        },
        &records,
    )
    .unwrap();
    let err = check(&other_merges).unwrap_err();
    assert_eq!(
        err,
        SpeculativeError::TokenizerMismatch { what: "BPE merges" }
    );
    assert!(err.to_string().contains("tokenizers differ: BPE merges"));
    // The same tokenizer passes; bad k and a short draft context are errors.
    assert!(check(&blob(DType::Q4, 5)).is_ok());
    let dm = Model::from_blob(&target).unwrap();
    let mut ta = vec![0u8; plan_speculative(tm.config(), 32, KvDType::F32, 2).total_bytes];
    let mut da = vec![0u8; plan_speculative(dm.config(), 16, KvDType::F32, 2).total_bytes];
    let mut ts = Session::with_batch(&tm, &mut ta, 32, KvDType::F32, 3).unwrap();
    let mut ds = Session::with_batch(&dm, &mut da, 16, KvDType::F32, 3).unwrap();
    let cfg = GenerateConfig::default();
    let mut run = |k| {
        generate_speculative(&mut ts, &mut ds, "1", &cfg, k, &mut [0u8; 8], &mut |_| {})
            .map(|_| ())
            .unwrap_err()
    };
    assert_eq!(run(3), SpeculativeError::BadK { k: 3, max: 2 });
    assert_eq!(run(0), SpeculativeError::BadK { k: 0, max: 2 });
    assert_eq!(
        run(2),
        SpeculativeError::DraftContext {
            draft: 16,
            target: 32
        }
    );
}

#[test]
fn sampling_is_deterministic_for_a_seed() {
    let target = blob(DType::Q8, 1);
    let draft = blob(DType::Q4, 1);
    for (top_k, top_p) in [(0, 1.0), (20, 1.0), (0, 0.9)] {
        let cfg = |seed| GenerateConfig {
            sampler: SamplerConfig {
                temperature: 1.0,
                top_k,
                top_p,
                seed,
            },
            max_new_tokens: 50,
            think_budget: None,
        };
        let (a, sa) = speculative(&target, &draft, PROMPTS[0], &cfg(5), 4);
        let (b, sb) = speculative(&target, &draft, PROMPTS[0], &cfg(5), 4);
        assert_eq!(a, b);
        assert_eq!(sa, sb);
        let (c, _) = speculative(&target, &draft, PROMPTS[0], &cfg(6), 4);
        assert_ne!(a.0, c.0, "another seed, other tokens");
        assert!(sa.accepted > 0 && sa.accepted <= sa.proposed, "{sa:?}");
        // A draft equal to the target is always accepted (p = q).
        let (_, ss) = speculative(&target, &target, PROMPTS[0], &cfg(5), 4);
        assert_eq!(ss.accepted, ss.proposed, "top_k {top_k} top_p {top_p}");
    }
}
