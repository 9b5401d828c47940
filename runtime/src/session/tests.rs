//! The session on its own: the arena it carves is the one the plan counts,
//! one-row and many-row passes agree bit for bit, and every misuse is an
//! error that leaves the session as it was.

extern crate std;
use std::vec;
use std::vec::Vec;

use super::*;
use crate::format::{DType, MoeConfig, ScaleType};
use crate::memory::{plan, plan_batch, plan_draft};
use crate::testing::{random_blob_with_scales, test_config};

fn moe() -> Option<MoeConfig> {
    Some(MoeConfig {
        n_experts: 4,
        top_k: 2,
        layer_mask: 0b10,
    })
}

fn blob(moe: Option<MoeConfig>, dtype: DType) -> Vec<u8> {
    random_blob_with_scales(&test_config(moe), dtype, 16, ScaleType::F16, 3).unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

const TOKENS: [u32; 7] = [1, 17, 299, 4, 4, 120, 33];

/// The arena of exactly the plan's size works at every alignment, one byte
/// less is refused with the sizes, and the carved buffers use it up.
#[test]
fn the_plan_is_exactly_what_the_session_carves() {
    let b = blob(None, DType::Q8);
    let model = Model::from_blob(&b).unwrap();
    let c = *model.config();
    for (batch, rows) in [(0usize, 0usize), (0, 3), (4, 4)] {
        for kv in [KvDType::F32, KvDType::F16, KvDType::Q8] {
            let p = memory::plan_rows(&c, 20, kv, batch, rows);
            for offset in 0..ALIGN {
                let mut arena = vec![0u8; p.total_bytes + offset];
                let slice = &mut arena[offset..];
                assert!(Session::with_rows(&model, slice, 20, kv, batch, rows).is_ok());
                let short = &mut arena[offset..offset + p.total_bytes - 1];
                let Err(e) = Session::with_rows(&model, short, 20, kv, batch, rows) else {
                    panic!("an arena one byte short was accepted");
                };
                assert_eq!(
                    e,
                    SessionError::ArenaTooSmall {
                        needed: p.total_bytes,
                        available: p.total_bytes - 1
                    }
                );
            }
        }
    }
    assert_eq!(
        plan(&c, 20, KvDType::F32),
        plan_batch(&c, 20, KvDType::F32, 0)
    );
    assert_eq!(
        plan_draft(&c, 20, KvDType::F32, 0),
        plan(&c, 20, KvDType::F32)
    );
}

/// `forward_batch` (n rows per pass) and `forward` (one row) give the same
/// bits, dense and mixture-of-experts, float and quantized, with f16 and
/// q8 KV caches.
#[test]
fn one_row_and_many_row_passes_agree_bit_for_bit() {
    for (moe, dtype, kv) in [
        (None, DType::F32, KvDType::F16),
        (None, DType::Q8, KvDType::F16),
        (None, DType::Q4, KvDType::F16),
        (moe(), DType::Q8, KvDType::F16),
        (moe(), DType::F16, KvDType::F16),
        (None, DType::Q8, KvDType::Q8),
        (moe(), DType::Q4, KvDType::Q8),
    ] {
        let b = blob(moe, dtype);
        let model = Model::from_blob(&b).unwrap();
        let c = *model.config();
        let mut a1 = vec![0u8; plan(&c, 24, kv).total_bytes];
        let mut one = Session::new(&model, &mut a1, 24, kv).unwrap();
        let mut a2 = vec![0u8; plan_batch(&c, 24, kv, 4).total_bytes];
        let mut many = Session::with_batch(&model, &mut a2, 24, kv, 4).unwrap();
        let want: Vec<Vec<u32>> = TOKENS
            .iter()
            .map(|t| bits(one.forward(*t).unwrap()))
            .collect();
        let mut got = Vec::new();
        for chunk in TOKENS.chunks(4) {
            let rows = many.forward_batch(chunk).unwrap();
            got.extend(rows.chunks(c.vocab_size as usize).map(bits));
            assert_eq!(bits(many.logits()), *got.last().unwrap());
        }
        assert_eq!(got, want, "{dtype:?} {kv:?} KV, moe {}", moe.is_some());
        assert_eq!(many.tokens(), one.tokens());
    }
}

/// Prefill runs the same pass as decoding: the same logits and history.
#[test]
fn prefill_and_rewind_repeat_decoding() {
    let b = blob(None, DType::Q4);
    let model = Model::from_blob(&b).unwrap();
    let c = *model.config();
    let mut arena = vec![0u8; plan(&c, 24, KvDType::F32).total_bytes];
    let mut s = Session::new(&model, &mut arena, 24, KvDType::F32).unwrap();
    let want: Vec<u32> = TOKENS
        .iter()
        .map(|t| bits(s.forward(*t).unwrap()))
        .last()
        .unwrap();
    s.reset();
    assert_eq!(bits(s.prefill(&TOKENS).unwrap()), want);
    assert_eq!(s.tokens(), TOKENS);
    s.rewind(3);
    assert_eq!(s.pos(), 3);
    assert_eq!(bits(s.prefill(&TOKENS[3..]).unwrap()), want);
}

/// Misuse is an error and nothing runs: the position stays.
#[test]
fn misuse_is_an_error_and_changes_nothing() {
    let b = blob(None, DType::Q8);
    let model = Model::from_blob(&b).unwrap();
    let c = *model.config();
    let mut arena = vec![0u8; plan_batch(&c, 8, KvDType::F32, 2).total_bytes];
    let mut s = Session::with_batch(&model, &mut arena, 8, KvDType::F32, 2).unwrap();
    s.prefill(&[1, 2, 3]).unwrap();
    let before = bits(s.logits());
    assert_eq!(s.prefill(&[]).unwrap_err(), SessionError::EmptyInput);
    assert_eq!(s.forward_batch(&[]).unwrap_err(), SessionError::EmptyInput);
    assert_eq!(
        s.forward(300).unwrap_err(),
        SessionError::TokenOutOfRange {
            token: 300,
            vocab: 300
        }
    );
    assert_eq!(
        s.forward_batch(&[1, 2, 3]).unwrap_err(),
        SessionError::BatchTooLarge {
            tokens: 3,
            capacity: 2
        }
    );
    assert_eq!(
        s.prefill(&[1; 6]).unwrap_err(),
        SessionError::ContextFull { context: 8 }
    );
    assert_eq!((s.pos(), bits(s.logits())), (3, before));
    // A pass of more rows than the buffers hold (callers check first) is
    // reported, not run.
    assert!(matches!(
        s.run(&[1, 2, 3], Head::All),
        Err(SessionError::Invariant { .. })
    ));
    assert_eq!(s.pos(), 3);
    assert_eq!(s.logit_rows(), 2);
    assert_eq!(s.batch_capacity(), 2);
}

/// A session needs a context, within the model's.
#[test]
fn context_limits() {
    let b = blob(None, DType::F32);
    let model = Model::from_blob(&b).unwrap();
    let mut arena = vec![0u8; 1 << 20];
    assert_eq!(
        Session::new(&model, &mut arena, 0, KvDType::F32).err(),
        Some(SessionError::ZeroContext)
    );
    assert_eq!(
        Session::new(&model, &mut arena, 25, KvDType::F32).err(),
        Some(SessionError::ContextTooLong {
            context: 25,
            max: 24
        })
    );
}
