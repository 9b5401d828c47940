//! Checkpoint → quantized blob.
//!
//! A training run directory (`config.json`, `tokenizer.json`,
//! `model.safetensors`, see `docs/contracts.md`) is loaded into a
//! [`Checkpoint`], quantized by [`build_blob`] into the runtime's postcard blob
//! (the same [`runtime::quant`] code the engine dequantizes with), and checked
//! against the f32 model with [`compare`] and [`eval`].
//!
//! The same checkpoint also travels as a Hugging Face `transformers`
//! directory ([`hf`]) or a llama.cpp GGUF file ([`gguf`]), both as the
//! Llama architecture ([`llama`]).

pub mod checkpoint;
pub mod compare;
pub mod eval;
pub mod gguf;
pub mod hf;
pub mod hf_import;
pub mod hf_tokenizer;
pub mod llama;
pub mod llama2c;
mod quantize;
pub mod report;
mod vocab;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

pub use checkpoint::{load_run, parse_merges, save_run};
pub use quantize::{build_blob, build_blob_with_tokenizer};
pub use report::{QuantReport, TensorGroup, TensorReport};
pub use vocab::{PieceVocab, Vocab};

/// Storage of the weight matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Quant {
    F32,
    F16,
    Q8,
    Q4,
}

impl Quant {
    pub fn dtype(self) -> runtime::DType {
        match self {
            Quant::F32 => runtime::DType::F32,
            Quant::F16 => runtime::DType::F16,
            Quant::Q8 => runtime::DType::Q8,
            Quant::Q4 => runtime::DType::Q4,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Quant::F32 => "f32",
            Quant::F16 => "f16",
            Quant::Q8 => "q8",
            Quant::Q4 => "q4",
        }
    }
}

impl fmt::Display for Quant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Quant {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(Quant::F32),
            "f16" => Ok(Quant::F16),
            "q8" => Ok(Quant::Q8),
            "q4" => Ok(Quant::Q4),
            _ => anyhow::bail!("unknown quantization {s:?}: expected one of f32, f16, q8, q4"),
        }
    }
}

/// How to store each tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportOptions {
    /// Storage of the weight matrices (norm gains are always f32).
    pub quant: Quant,
    /// Elements per quantization group along a row (q8/q4). A row whose length
    /// is not a multiple keeps a short last group.
    pub group_size: usize,
    /// Storage of the group scales. f16 by default: it halves the scale bytes
    /// (0.5 instead of 1 bit per weight at group 32) and, because the
    /// quantizer rounds each scale through f16 *before* quantizing, the only
    /// cost is a relative scale error of at most 2^-11, far below the q8 step
    /// of 1/127.
    pub scale_type: runtime::ScaleType,
    /// Tensors kept in f32 whatever `quant` says: glob patterns (`*` any run of
    /// characters, `?` one) on tensor names as in `docs/contracts.md`, e.g.
    /// `output.weight` or `layers.*.attention.wq.weight`; a pattern may omit
    /// the trailing `.weight`.
    pub keep_f32: Vec<String>,
    /// Storage of the token embedding table, when it differs from `quant`.
    /// With tied embeddings this table is also the LM head.
    pub embedding_quant: Option<Quant>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            quant: Quant::Q8,
            group_size: 32,
            scale_type: runtime::ScaleType::F16,
            keep_f32: Vec::new(),
            embedding_quant: None,
        }
    }
}

impl ExportOptions {
    pub fn with_quant(quant: Quant) -> Self {
        Self {
            quant,
            ..Self::default()
        }
    }
}

/// A model's weights in f32 with its config and BPE merges, independent of
/// where they came from (a run directory, memory, a llama2.c file).
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub config: runtime::ModelConfig,
    /// BPE merges in rank order: merge `r` of `(left, right)` yields token
    /// `runtime::format::special::FIRST_MERGE + r`.
    pub merges: Vec<(u32, u32)>,
    /// Tensors by name (`docs/contracts.md`): shape and row-major f32 values.
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

/// Whether a glob pattern (`*`, `?`) matches `name`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    // Iterative matcher with one backtrack point: linear in practice, no recursion.
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quant_parses() {
        assert_eq!("q4".parse::<Quant>().unwrap(), Quant::Q4);
        assert_eq!("F16".parse::<Quant>().unwrap(), Quant::F16);
        let e = "q3".parse::<Quant>().unwrap_err().to_string();
        assert!(e.contains("q3") && e.contains("q8"), "{e}");
    }

    #[test]
    fn globs() {
        assert!(glob_match("output.weight", "output.weight"));
        assert!(glob_match(
            "layers.*.attention.wq.weight",
            "layers.11.attention.wq.weight"
        ));
        assert!(glob_match("*norm*", "layers.0.ffn_norm.weight"));
        assert!(glob_match(
            "layers.?.feed_forward.*",
            "layers.3.feed_forward.w2.weight"
        ));
        assert!(!glob_match(
            "layers.?.feed_forward.*",
            "layers.13.feed_forward.w2.weight"
        ));
        assert!(!glob_match("output", "output.weight"));
        assert!(glob_match("*", ""));
    }
}
