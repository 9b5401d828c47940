//! The thinkling decoder (docs/contracts.md), one module per layer kind.
//!
//! Parameters live in a [`Params`] map keyed by the contract's tensor names
//! (`docs/contracts.md`), so checkpoints are written and read without renaming.

mod attention;
mod block;
mod dropout;
mod init;
mod mlp;
pub mod moe;
mod params;

pub use dropout::Dropout;
pub use moe::MoeStats;
pub use params::Params;

use crate::ops::{self, RopeTables};
use anyhow::Result;
use block::Block;
use candle_core::{Device, Tensor};
use runtime::format::ModelConfig;

/// The whole model: embedding, blocks, final norm, LM head.
pub struct Transformer {
    pub config: ModelConfig,
    embedding: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    output: Tensor,
    rope: RopeTables,
}

impl Transformer {
    /// Fresh parameters drawn from a ChaCha8 stream seeded by `seed`.
    pub fn init(config: &ModelConfig, seed: u64, device: &Device) -> Result<(Self, Params)> {
        let params = init::init_params(config, seed, device)?;
        let model = Self::from_params(config, &params)?;
        Ok((model, params))
    }

    /// A model whose weights are the variables of `params` (shared storage:
    /// optimizer updates are seen by the model).
    pub fn from_params(config: &ModelConfig, params: &Params) -> Result<Self> {
        let blocks = (0..config.n_layers as usize)
            .map(|i| Block::new(config, params, i))
            .collect::<Result<Vec<_>>>()?;
        let embedding = params.tensor("tok_embeddings.weight")?;
        let output = if config.tied_embeddings {
            embedding.clone()
        } else {
            params.tensor("output.weight")?
        };
        Ok(Self {
            config: *config,
            embedding,
            blocks,
            norm: params.tensor("norm.weight")?,
            output,
            rope: ops::rope_tables(
                config.max_seq_len as usize,
                config.head_dim() as usize,
                config.rope_theta,
            ),
        })
    }

    /// Logits `(B·T, vocab)` for token ids `(B, T)`. `dropout` is `None` at
    /// inference.
    pub fn forward(&self, tokens: &Tensor, dropout: Option<&mut Dropout>) -> Result<Tensor> {
        Ok(self.forward_with_stats(tokens, dropout)?.0)
    }

    /// [`Self::forward`] plus the statistics of each mixture-of-experts
    /// layer (empty for a dense model).
    pub fn forward_with_stats(
        &self,
        tokens: &Tensor,
        mut dropout: Option<&mut Dropout>,
    ) -> Result<(Tensor, Vec<MoeStats>)> {
        let (b, t) = tokens.dims2()?;
        let ids = tokens.flatten_all()?;
        let mut x = self
            .embedding
            .index_select(&ids, 0)?
            .affine(self.config.embedding_scale as f64, 0.0)?;
        let mut stats = Vec::new();
        for block in &self.blocks {
            x = block.forward(&x, b, t, &self.rope, dropout.as_deref_mut(), &mut stats)?;
        }
        let x = ops::rms_norm(&x, &self.norm, self.config.norm_eps)?;
        Ok((ops::linear(&x, &self.output)?, stats))
    }
}
