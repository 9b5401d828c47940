//! A run as a Hugging Face `transformers` model directory
//! (`LlamaForCausalLM`): `config.json`, `generation_config.json`,
//! `model.safetensors` with Hugging Face's tensor names, `tokenizer.json`
//! and `tokenizer_config.json`.

use crate::hf_tokenizer::{self, ByteLevelVocab};
use crate::llama::{llama_tensors, LlamaTensor};
use crate::Checkpoint;
use anyhow::{bail, Context, Result};
use runtime::format::{special, TensorId, TensorKind};
use safetensors::Dtype;
use serde::Serialize;
use serde_json::{json, Value};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Storage of the exported weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HfDType {
    F32,
    F16,
}

impl FromStr for HfDType {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(Self::F32),
            "f16" => Ok(Self::F16),
            _ => bail!("the Hugging Face format stores f32 or f16 weights, not {s:?}"),
        }
    }
}

impl fmt::Display for HfDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
        })
    }
}

/// Hugging Face's name of a tensor.
pub fn hf_name(t: &LlamaTensor) -> String {
    hf_tensor_name(&t.id)
}

/// Hugging Face's name of the tensor `id`.
pub fn hf_tensor_name(id: &TensorId) -> String {
    use TensorKind::*;
    let l = id.layer;
    let layer = |rest: &str| format!("model.layers.{l}.{rest}.weight");
    match id.kind {
        Embedding => "model.embed_tokens.weight".into(),
        AttnNorm => layer("input_layernorm"),
        Wq => layer("self_attn.q_proj"),
        Wk => layer("self_attn.k_proj"),
        Wv => layer("self_attn.v_proj"),
        Wo => layer("self_attn.o_proj"),
        FfnNorm => layer("post_attention_layernorm"),
        Gate => layer("mlp.gate_proj"),
        Up => layer("mlp.up_proj"),
        Down => layer("mlp.down_proj"),
        FinalNorm => "model.norm.weight".into(),
        Output => "lm_head.weight".into(),
        Router => format!("model.layers.{l}.mlp.router.weight"),
    }
}

/// Reorders the rows of each head from thinkling's RoPE pairing (rows `2i`,
/// `2i + 1` turn together) to Hugging Face's (rows `i`, `i + head_dim/2`):
/// row `2i + j` of a head moves to `j · head_dim/2 + i`. This is the
/// `permute` of Hugging Face's Llama conversion script; llama.cpp's
/// converter applies [`halves_to_interleaved`] to undo it.
pub fn interleaved_to_halves(w: &[f32], n_heads: usize, head_dim: usize) -> Vec<f32> {
    permute_rows(w, n_heads, head_dim, |i, j| {
        (2 * i + j, j * head_dim / 2 + i)
    })
}

/// Inverse of [`interleaved_to_halves`].
pub fn halves_to_interleaved(w: &[f32], n_heads: usize, head_dim: usize) -> Vec<f32> {
    permute_rows(w, n_heads, head_dim, |i, j| {
        (j * head_dim / 2 + i, 2 * i + j)
    })
}

/// Moves row `from` of each head to row `to`, `(from, to) = map(i, j)` for
/// pair `i` and member `j`.
fn permute_rows(
    w: &[f32],
    n_heads: usize,
    head_dim: usize,
    map: impl Fn(usize, usize) -> (usize, usize),
) -> Vec<f32> {
    let cols = w.len() / (n_heads * head_dim).max(1);
    let mut out = vec![0f32; w.len()];
    for h in 0..n_heads {
        for i in 0..head_dim / 2 {
            for j in 0..2 {
                let (from, to) = map(i, j);
                let src = (h * head_dim + from) * cols;
                let dst = (h * head_dim + to) * cols;
                out[dst..dst + cols].copy_from_slice(&w[src..src + cols]);
            }
        }
    }
    out
}

/// The tensors under Hugging Face's names, q and k in its RoPE pairing.
pub fn hf_tensors(ckpt: &Checkpoint) -> Result<Vec<(String, LlamaTensor)>> {
    let c = &ckpt.config;
    let hd = c.head_dim() as usize;
    if hd % 2 != 0 {
        bail!("head dimension {hd} is odd: RoPE needs pairs");
    }
    Ok(llama_tensors(ckpt)?
        .into_iter()
        .map(|mut t| {
            match t.id.kind {
                TensorKind::Wq => {
                    t.values = interleaved_to_halves(&t.values, c.n_heads as usize, hd)
                }
                TensorKind::Wk => {
                    t.values = interleaved_to_halves(&t.values, c.n_kv_heads as usize, hd)
                }
                _ => {}
            }
            (hf_name(&t), t)
        })
        .collect())
}

/// A float for JSON as its shortest f32 spelling (1e-6, not 9.99999997e-7).
fn f32_json(x: f32) -> Value {
    x.to_string()
        .parse::<f64>()
        .map_or(Value::Null, |v| json!(v))
}

/// `config.json` of a `LlamaForCausalLM`.
pub fn config_json(ckpt: &Checkpoint, dtype: HfDType) -> Value {
    let c = &ckpt.config;
    json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": c.vocab_size,
        "hidden_size": c.dim,
        "intermediate_size": c.hidden_dim,
        "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads,
        "num_key_value_heads": c.n_kv_heads,
        "head_dim": c.head_dim(),
        "hidden_act": "silu",
        "max_position_embeddings": c.max_seq_len,
        "rms_norm_eps": f32_json(c.norm_eps),
        "rope_theta": f32_json(c.rope_theta),
        "rope_scaling": null,
        "attention_bias": false,
        "attention_dropout": 0.0,
        "mlp_bias": false,
        "pretraining_tp": 1,
        "initializer_range": 0.02,
        "tie_word_embeddings": c.tied_embeddings,
        "bos_token_id": special::BOS,
        "eos_token_id": special::EOS,
        "pad_token_id": special::PAD,
        "torch_dtype": match dtype { HfDType::F32 => "float32", HfDType::F16 => "float16" },
        "use_cache": true,
        // Llama has no embedding scale, so it is folded into the weights
        // above; the scale recorded here lets thinkling's import unfold it.
        "thinkling": { "embedding_scale": f32_json(c.embedding_scale) }
    })
}

/// `generation_config.json`: greedy decoding up to the trained context,
/// stopping at `<eos>` as thinkling's engine does.
pub fn generation_config_json(ckpt: &Checkpoint) -> Value {
    json!({
        "bos_token_id": special::BOS,
        "eos_token_id": special::EOS,
        "pad_token_id": special::PAD,
        "do_sample": false,
        "max_length": ckpt.config.max_seq_len
    })
}

/// The safetensors bytes of `tensors` in `dtype`.
pub fn safetensors_bytes(tensors: &[(String, LlamaTensor)], dtype: HfDType) -> Result<Vec<u8>> {
    let raw: Vec<(&str, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, t)| {
            let bytes = match dtype {
                HfDType::F32 => t.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                HfDType::F16 => t
                    .values
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect(),
            };
            (n.as_str(), t.shape.clone(), bytes)
        })
        .collect();
    let st_dtype = match dtype {
        HfDType::F32 => Dtype::F32,
        HfDType::F16 => Dtype::F16,
    };
    let views = raw
        .iter()
        .map(|(n, s, b)| {
            Ok((
                *n,
                safetensors::tensor::TensorView::new(st_dtype, s.clone(), b)?,
            ))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| anyhow::anyhow!("cannot build safetensors views: {e}"))?;
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views, Some(meta))
        .map_err(|e| anyhow::anyhow!("cannot serialize safetensors: {e}"))
}

/// What [`write_dir`] wrote.
#[derive(Clone, Debug, Serialize)]
pub struct HfExport {
    pub dir: PathBuf,
    pub dtype: HfDType,
    pub tensors: usize,
    pub weights_bytes: usize,
    pub vocab: usize,
    pub merges: usize,
}

/// Writes the model directory `dir` (created if missing; existing files of
/// the same names are replaced).
pub fn write_dir(ckpt: &Checkpoint, dir: &Path, dtype: HfDType) -> Result<HfExport> {
    let tensors = hf_tensors(ckpt)?;
    let vocab: ByteLevelVocab =
        hf_tokenizer::byte_level_vocab(&ckpt.merges, ckpt.config.vocab_size as usize)?;
    let weights = safetensors_bytes(&tensors, dtype)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
    };
    let pretty = |v: &Value| serde_json::to_vec_pretty(v).map_err(anyhow::Error::from);
    write("config.json", &pretty(&config_json(ckpt, dtype))?)?;
    write(
        "generation_config.json",
        &pretty(&generation_config_json(ckpt))?,
    )?;
    write("model.safetensors", &weights)?;
    write(
        "tokenizer.json",
        &serde_json::to_vec(&hf_tokenizer::tokenizer_json(&vocab))?,
    )?;
    write(
        "tokenizer_config.json",
        &pretty(&hf_tokenizer::tokenizer_config_json(
            ckpt.config.max_seq_len as usize,
        ))?,
    )?;
    write(
        "special_tokens_map.json",
        &pretty(&json!({
            "bos_token": special::NAMES[special::BOS as usize],
            "eos_token": special::NAMES[special::EOS as usize],
            "pad_token": special::NAMES[special::PAD as usize],
            "unk_token": special::NAMES[special::UNK as usize],
            "additional_special_tokens": special::NAMES[special::THINK as usize..].to_vec()
        }))?,
    )?;
    Ok(HfExport {
        dir: dir.to_path_buf(),
        dtype,
        tensors: tensors.len(),
        weights_bytes: weights.len(),
        vocab: vocab.tokens.len(),
        merges: vocab.merges.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_permutations_are_inverse_and_move_pairs_to_halves() {
        // 2 heads of 4 rows, 1 column: row r holds r.
        let w: Vec<f32> = (0..8).map(|r| r as f32).collect();
        let h = interleaved_to_halves(&w, 2, 4);
        assert_eq!(h, [0., 2., 1., 3., 4., 6., 5., 7.]);
        assert_eq!(halves_to_interleaved(&h, 2, 4), w);
        let w: Vec<f32> = (0..48).map(|r| r as f32).collect();
        assert_eq!(
            halves_to_interleaved(&interleaved_to_halves(&w, 2, 8), 2, 8),
            w
        );
    }
}
