//! Malformed blobs are errors, never panics.

#![allow(unused_imports)]

mod common;

use common::*;
use runtime::format::{special, ModelConfig, MoeConfig, TensorId, TensorKind, TokenizerData};
use runtime::kernels::{self, QuantizedActivations, TensorView};
use runtime::sampling::{Rng, Sampler, SamplerConfig};
use runtime::*;

#[test]
fn truncated_and_corrupted_blobs_are_errors_not_panics() {
    let moe = Some(MoeConfig {
        n_experts: 3,
        top_k: 2,
        layer_mask: 0b1,
    });
    let blob = testing::random_blob(&test_config(moe), DType::Q4, 8, 12).unwrap();
    for n in 0..blob.len() {
        assert!(
            Model::from_blob(&blob[..n]).is_err(),
            "truncated to {n} bytes"
        );
    }
    let mut rng = Rng::new(13);
    for i in 0..2000 {
        let mut b = blob.clone();
        for _ in 0..1 + i % 3 {
            let at = (rng.next_u64() % b.len() as u64) as usize;
            b[at] ^= 1 << (rng.next_u64() % 8);
        }
        assert!(
            Model::from_blob(&b).is_err(),
            "flip without checksum fix must fail"
        );
        // With the checksum fixed the flip reaches the decoder and validation.
        recrc(&mut b);
        try_run(&b);
    }
    // Random bytes, with a valid header and checksum.
    for _ in 0..500 {
        let len = 16 + (rng.next_u64() % 300) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        b[..8].copy_from_slice(b"THINKLNG");
        b[8] = 1;
        recrc(&mut b);
        try_run(&b);
    }
}
