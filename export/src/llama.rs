//! A thinkling checkpoint as the plain Llama computation other runtimes
//! implement (Hugging Face `LlamaForCausalLM`, llama.cpp's `llama`).
//!
//! The one difference in the arithmetic is thinkling's embedding scale
//! (inputs are multiplied by `embedding_scale`, sqrt(dim)): Llama has none,
//! so the scale goes into the embedding table. With tied embeddings that
//! table is also the LM head, so the final norm's gain takes `1 / scale`:
//! `(norm(x) · g/s) · (s·E)ᵀ = (norm(x) · g) · Eᵀ`, the same logits, and the
//! head stays tied (no second copy of the table).
//!
//! Tensors stay in thinkling's layout here; the RoPE pairing of q and k is
//! each format's business (see [`crate::hf`] and [`crate::gguf`]).

use crate::checkpoint::expected_tensors;
use crate::Checkpoint;
use anyhow::{bail, Context, Result};
use runtime::format::{TensorId, TensorKind};

/// One tensor: its role, shape (`[rows, cols]`, or `[n]` for a norm gain)
/// and row-major values.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaTensor {
    pub id: TensorId,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// The checkpoint's tensors in canonical order with the embedding scale
/// folded in. Mixture-of-experts models are refused: Llama has no experts.
pub fn llama_tensors(ckpt: &Checkpoint) -> Result<Vec<LlamaTensor>> {
    let c = &ckpt.config;
    if let Some(moe) = c.moe {
        bail!(
            "this model has mixture-of-experts layers ({} experts, top {}, layer mask {:#x}); \
             the Llama architecture has none, so it cannot be exported to Hugging Face or GGUF \
             (export a dense model, or use the runtime blob)",
            moe.n_experts,
            moe.top_k,
            moe.layer_mask
        );
    }
    crate::checkpoint::check(ckpt)?;
    let s = c.embedding_scale;
    if !(s.is_finite() && s > 0.0) {
        bail!("embedding scale {s} cannot be folded into the weights: it must be positive");
    }
    let mut out = Vec::new();
    for (id, name) in expected_tensors(c) {
        let (shape, values) = ckpt
            .tensors
            .get(&name)
            .with_context(|| format!("tensor {name} is missing"))?;
        let factor = match id.kind {
            TensorKind::Embedding => s,
            TensorKind::FinalNorm if c.tied_embeddings => 1.0 / s,
            _ => 1.0,
        };
        let values = if factor == 1.0 {
            values.clone()
        } else {
            values.iter().map(|v| v * factor).collect()
        };
        out.push(LlamaTensor {
            id,
            shape: shape.clone(),
            values,
        });
    }
    Ok(out)
}
