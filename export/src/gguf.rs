//! A run as a GGUF v3 file for llama.cpp's `llama` architecture: the
//! hyperparameters and the tokenizer as metadata, the weights as ggml
//! tensors (`token_embd.weight`, `blk.N.attn_q.weight`, ...), matrices in
//! f32, f16, q8_0 or q4_0 with ggml's block layouts.
//!
//! RoPE: ggml's `llama` rotates neighbouring dimensions (2i, 2i+1), as
//! thinkling does, so q and k go in unpermuted. (llama.cpp's converter
//! permutes a Hugging Face checkpoint's q and k with
//! [`crate::hf::halves_to_interleaved`] to get back to this same layout.)

use crate::hf_tokenizer::{self, PROMPT_TEMPLATE};
use crate::llama::{llama_tensors, LlamaTensor};
use crate::Checkpoint;
use anyhow::{bail, Result};
use runtime::format::{special, TensorKind};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// Alignment of the tensor data (GGUF's default, `general.alignment`).
pub const ALIGNMENT: usize = 32;
/// Elements per q8_0 / q4_0 block.
pub const BLOCK: usize = 32;

/// How the weight matrices are stored (norm gains are always f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GgufQuant {
    F32,
    F16,
    Q8_0,
    Q4_0,
}

impl GgufQuant {
    /// The tensor type id (`ggml_type`).
    pub fn ggml_type(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q8_0 => 8,
        }
    }

    /// `general.file_type` (`llama_ftype`).
    fn file_type(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q8_0 => 7,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Q8_0 => "q8_0",
            Self::Q4_0 => "q4_0",
        }
    }

    fn is_block(self) -> bool {
        matches!(self, Self::Q8_0 | Self::Q4_0)
    }
}

impl fmt::Display for GgufQuant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for GgufQuant {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(Self::F32),
            "f16" => Ok(Self::F16),
            "q8_0" => Ok(Self::Q8_0),
            "q4_0" => Ok(Self::Q4_0),
            _ => bail!("unknown GGUF quantization {s:?}: expected one of q8_0, q4_0, f16, f32"),
        }
    }
}

/// Rows of q8_0 blocks: per 32 values an f16 scale `d = max|x| / 127` and
/// 32 int8 `round(x / d)` (ggml's `quantize_row_q8_0_ref`).
pub fn quantize_q8_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / BLOCK * 34);
    for block in values.chunks_exact(BLOCK) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|v| (v * id).round() as i8 as u8));
    }
    out
}

/// Rows of q4_0 blocks: per 32 values an f16 scale `d = max / -8` (`max` the
/// value of largest magnitude, sign kept) and 16 bytes whose low nibbles
/// hold elements 0..16 and high nibbles 16..32, each `x / d + 8` in 0..=15
/// (ggml's `quantize_row_q4_0_ref`).
pub fn quantize_q4_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / BLOCK * 18);
    for block in values.chunks_exact(BLOCK) {
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in block {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        let q = |v: f32| ((v * id + 8.5) as i8).min(15) as u8;
        for j in 0..BLOCK / 2 {
            out.push(q(block[j]) | (q(block[j + BLOCK / 2]) << 4));
        }
    }
    out
}

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    StrArray(Vec<String>),
    I32Array(Vec<i32>),
}

/// A GGUF file being assembled: metadata in order, then tensors.
#[derive(Default)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(ALIGNMENT), 0);
}

impl GgufWriter {
    pub fn kv(&mut self, key: &str, v: Value) {
        self.metadata.push((key.to_string(), v));
    }

    /// Adds a tensor of PyTorch shape `shape` (outermost first) whose bytes
    /// are already in ggml type `ggml_type`.
    pub fn tensor(&mut self, name: &str, shape: &[usize], ggml_type: u32, data: Vec<u8>) {
        // GGUF lists dimensions innermost first.
        let dims = shape.iter().rev().map(|&d| d as u64).collect();
        self.tensors.push((name.to_string(), dims, ggml_type, data));
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Value type ids of the GGUF spec.
        const U32: u32 = 4;
        const I32: u32 = 5;
        const F32: u32 = 6;
        const BOOL: u32 = 7;
        const STRING: u32 = 8;
        const ARRAY: u32 = 9;
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, v) in &self.metadata {
            put_str(&mut out, key);
            let (ty, body): (u32, Vec<u8>) = match v {
                Value::U32(x) => (U32, x.to_le_bytes().to_vec()),
                Value::I32(x) => (I32, x.to_le_bytes().to_vec()),
                Value::F32(x) => (F32, x.to_le_bytes().to_vec()),
                Value::Bool(b) => (BOOL, vec![*b as u8]),
                Value::Str(s) => {
                    let mut b = Vec::new();
                    put_str(&mut b, s);
                    (STRING, b)
                }
                Value::StrArray(items) => {
                    let mut b = STRING.to_le_bytes().to_vec();
                    b.extend_from_slice(&(items.len() as u64).to_le_bytes());
                    for s in items {
                        put_str(&mut b, s);
                    }
                    (ARRAY, b)
                }
                Value::I32Array(items) => {
                    let mut b = I32.to_le_bytes().to_vec();
                    b.extend_from_slice(&(items.len() as u64).to_le_bytes());
                    for x in items {
                        b.extend_from_slice(&x.to_le_bytes());
                    }
                    (ARRAY, b)
                }
            };
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&body);
        }
        let mut offset = 0usize;
        for (name, dims, ty, data) in &self.tensors {
            put_str(&mut out, name);
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&(offset as u64).to_le_bytes());
            offset = (offset + data.len()).next_multiple_of(ALIGNMENT);
        }
        pad(&mut out);
        for (_, _, _, data) in &self.tensors {
            out.extend_from_slice(data);
            pad(&mut out);
        }
        out
    }
}

/// llama.cpp's name of a tensor.
pub fn gguf_name(t: &LlamaTensor) -> String {
    use TensorKind::*;
    let l = t.id.layer;
    let blk = |rest: &str| format!("blk.{l}.{rest}.weight");
    match t.id.kind {
        Embedding => "token_embd.weight".into(),
        AttnNorm => blk("attn_norm"),
        Wq => blk("attn_q"),
        Wk => blk("attn_k"),
        Wv => blk("attn_v"),
        Wo => blk("attn_output"),
        FfnNorm => blk("ffn_norm"),
        Gate => blk("ffn_gate"),
        Up => blk("ffn_up"),
        Down => blk("ffn_down"),
        FinalNorm => "output_norm.weight".into(),
        Output => "output.weight".into(),
        Router => blk("ffn_gate_inp"),
    }
}

/// One tensor of the file and how it was stored.
#[derive(Clone, Debug, Serialize)]
pub struct GgufTensorReport {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: &'static str,
    pub bytes: usize,
}

/// What [`build`] produced.
#[derive(Clone, Debug, Serialize)]
pub struct GgufReport {
    pub quant: GgufQuant,
    pub bytes: usize,
    pub tensors: Vec<GgufTensorReport>,
    /// Matrices whose rows are not a multiple of 32 values, kept in f16 as
    /// llama.cpp's converter does.
    pub f16_fallback: Vec<String>,
}

/// Stores `values` (rows of `cols`) as `quant`; blocks need whole blocks per row.
fn encode(values: &[f32], quant: GgufQuant) -> Vec<u8> {
    match quant {
        GgufQuant::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgufQuant::F16 => values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
        GgufQuant::Q8_0 => quantize_q8_0(values),
        GgufQuant::Q4_0 => quantize_q4_0(values),
    }
}

/// The GGUF file of `ckpt` with its matrices in `quant`.
pub fn build(ckpt: &Checkpoint, quant: GgufQuant, name: &str) -> Result<(Vec<u8>, GgufReport)> {
    let c = &ckpt.config;
    let tensors = llama_tensors(ckpt)?;
    let vocab = hf_tokenizer::byte_level_vocab(&ckpt.merges, c.vocab_size as usize)?;
    let mut w = GgufWriter::default();
    let arch = "llama";
    let key = |k: &str| format!("{arch}.{k}");
    w.kv("general.architecture", Value::Str(arch.into()));
    w.kv("general.name", Value::Str(name.into()));
    w.kv("general.alignment", Value::U32(ALIGNMENT as u32));
    w.kv("general.file_type", Value::U32(quant.file_type()));
    w.kv("general.quantization_version", Value::U32(2));
    w.kv(&key("vocab_size"), Value::U32(c.vocab_size));
    w.kv(&key("context_length"), Value::U32(c.max_seq_len));
    w.kv(&key("embedding_length"), Value::U32(c.dim));
    w.kv(&key("block_count"), Value::U32(c.n_layers));
    w.kv(&key("feed_forward_length"), Value::U32(c.hidden_dim));
    w.kv(&key("rope.dimension_count"), Value::U32(c.head_dim()));
    w.kv(&key("rope.freq_base"), Value::F32(c.rope_theta));
    w.kv(&key("attention.head_count"), Value::U32(c.n_heads));
    w.kv(&key("attention.head_count_kv"), Value::U32(c.n_kv_heads));
    w.kv(
        &key("attention.layer_norm_rms_epsilon"),
        Value::F32(c.norm_eps),
    );
    w.kv("tokenizer.ggml.model", Value::Str("gpt2".into()));
    // llama.cpp picks its pre-tokenizer by name from a fixed list and none
    // is thinkling's. GPT-2's is the nearest: digits, letters and
    // punctuation never share a thinkling merge, so its other boundaries
    // there change nothing; it differs on whitespace runs that end in a
    // newline before text, runs over 32 bytes and non-ASCII symbols.
    w.kv("tokenizer.ggml.pre", Value::Str("gpt-2".into()));
    w.kv(
        "tokenizer.ggml.tokens",
        Value::StrArray(vocab.tokens.clone()),
    );
    w.kv(
        "tokenizer.ggml.token_type",
        Value::I32Array(vocab.kinds.iter().map(|k| *k as i32).collect()),
    );
    w.kv(
        "tokenizer.ggml.merges",
        Value::StrArray(
            vocab
                .merges
                .iter()
                .map(|(a, b)| format!("{a} {b}"))
                .collect(),
        ),
    );
    w.kv("tokenizer.ggml.bos_token_id", Value::U32(special::BOS));
    w.kv("tokenizer.ggml.eos_token_id", Value::U32(special::EOS));
    w.kv("tokenizer.ggml.unknown_token_id", Value::U32(special::UNK));
    w.kv("tokenizer.ggml.padding_token_id", Value::U32(special::PAD));
    w.kv("tokenizer.ggml.add_bos_token", Value::Bool(true));
    w.kv("tokenizer.ggml.add_eos_token", Value::Bool(false));
    w.kv(
        "tokenizer.chat_template",
        Value::Str(PROMPT_TEMPLATE.into()),
    );

    let mut report = GgufReport {
        quant,
        bytes: 0,
        tensors: Vec::new(),
        f16_fallback: Vec::new(),
    };
    for t in &tensors {
        let name = gguf_name(t);
        let is_matrix = t.shape.len() == 2;
        let cols = *t.shape.last().unwrap_or(&0);
        let q = if !is_matrix {
            GgufQuant::F32
        } else if quant.is_block() && cols % BLOCK != 0 {
            report.f16_fallback.push(name.clone());
            GgufQuant::F16
        } else {
            quant
        };
        let data = encode(&t.values, q);
        report.tensors.push(GgufTensorReport {
            name: name.clone(),
            shape: t.shape.clone(),
            dtype: q.name(),
            bytes: data.len(),
        });
        w.tensor(&name, &t.shape, q.ggml_type(), data);
    }
    let bytes = w.to_bytes();
    report.bytes = bytes.len();
    Ok((bytes, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_block_layout() {
        let x: Vec<f32> = (0..32).map(|i| i as f32 - 16.0).collect();
        let b = quantize_q8_0(&x);
        assert_eq!(b.len(), 34);
        let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
        assert!((d - 16.0 / 127.0).abs() < 1e-4);
        assert_eq!(b[2] as i8, -127);
        assert_eq!(b[2 + 16] as i8, 0);
    }

    #[test]
    fn q4_0_block_layout() {
        // Element j in the low nibble of byte j, element j + 16 in its high nibble.
        let mut x = vec![0f32; 32];
        x[0] = -8.0; // largest magnitude: d = -8 / -8 = 1
        x[16] = 7.0;
        x[1] = 3.0;
        let b = quantize_q4_0(&x);
        assert_eq!(b.len(), 18);
        assert_eq!(half::f16::from_le_bytes([b[0], b[1]]).to_f32(), 1.0);
        assert_eq!(b[2] & 0xF, 0); // -8 + 8
        assert_eq!(b[2] >> 4, 15); // 7 + 8
        assert_eq!(b[3] & 0xF, 11); // 3 + 8
        assert_eq!(b[3] >> 4, 8); // 0 + 8
    }

    #[test]
    fn header_and_alignment() {
        let mut w = GgufWriter::default();
        w.kv("general.architecture", Value::Str("llama".into()));
        w.tensor("a", &[2, 3], 0, vec![0u8; 24]);
        w.tensor("b", &[4], 0, vec![1u8; 16]);
        let bytes = w.to_bytes();
        assert_eq!(&bytes[..4], b"GGUF");
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 3);
        assert_eq!(bytes.len() % ALIGNMENT, 0);
        // Tensor b's data starts 32 bytes after a's (24 rounded up).
        let end = bytes.len();
        assert_eq!(&bytes[end - 32..end - 16], &[1u8; 16]);
    }
}
