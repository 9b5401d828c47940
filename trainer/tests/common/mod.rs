//! Fixtures shared by the trainer's integration tests.

use candle_core::{Device, Tensor};

/// A `batch × len` batch of token ids spread over the first 263 ids, and
/// each one's successor (`id + 1`, wrapping) as the flat target: a
/// next-token task every parameter of a model gets a gradient from.
pub fn successor_batch(batch: usize, len: usize) -> (Tensor, Tensor) {
    let ids: Vec<u32> = (0..batch * len).map(|i| (i * 37 % 263) as u32).collect();
    let targets: Vec<u32> = ids.iter().map(|i| (i + 1) % 263).collect();
    let x = Tensor::from_vec(ids, (batch, len), &Device::Cpu).unwrap();
    let y = Tensor::from_vec(targets, batch * len, &Device::Cpu).unwrap();
    (x, y)
}
