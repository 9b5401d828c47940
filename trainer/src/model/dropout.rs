//! Dropout whose masks come from our seeded ChaCha8 stream: candle's CPU
//! device RNG cannot be seeded, and runs must be reproducible (and resumable).

use anyhow::Result;
use candle_core::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub struct Dropout {
    p: f32,
    rng: ChaCha8Rng,
}

impl Dropout {
    /// Masks for one training step: a pure function of `(seed, step)` so a
    /// resumed run draws the same masks as an uninterrupted one.
    pub fn for_step(p: f32, seed: u64, step: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6472_6f70_6f75_7421);
        rng.set_stream(step);
        Self { p, rng }
    }

    /// Masks for shard `shard` of one training step: shard 0 draws what an
    /// unsharded step draws, the others draw from their own streams.
    pub fn for_shard(p: f32, seed: u64, step: u64, shard: usize) -> Self {
        let mut d = Self::for_step(p, seed, step);
        if shard > 0 {
            d.rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6472_6f70_6f75_7421 ^ (shard as u64) << 48);
            d.rng.set_stream(step);
        }
        d
    }

    /// Zeroes each element with probability `p`, scales the rest by `1/(1-p)`.
    pub fn apply(&mut self, x: &Tensor) -> Result<Tensor> {
        if self.p <= 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 / (1.0 - self.p);
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| {
                if self.rng.gen::<f32>() < self.p {
                    0.0
                } else {
                    keep
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?;
        Ok((x * mask)?)
    }
}
