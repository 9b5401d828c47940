//! Import of llama2.c checkpoints (`run.c`'s legacy fp32 `model.bin`) and
//! vocabularies (`tokenizer.bin`).
//!
//! llama2.c's model is thinkling's without the reasoning tokens: RMSNorm (eps
//! 1e-5), RoPE on interleaved pairs `(x[i], x[i+1])` with frequency
//! `10000^(-(i mod hs)/hs)` (`run.c` rotates `vec[i], vec[i+1]` for even `i`),
//! grouped-query attention, SwiGLU `w2(silu(w1 x) * w3 x)`, no embedding
//! scale. Matrices are `[out, in]` row-major, as in a thinkling checkpoint, so
//! the weights map one to one.

use crate::quantize::build_blob_with_tokenizer;
use crate::vocab::Vocab;
use crate::{Checkpoint, ExportOptions, QuantReport};
use anyhow::{bail, Context, Result};
use runtime::ModelConfig;
use std::collections::BTreeMap;
use std::path::Path;

pub use crate::vocab::PieceVocab;

/// llama2.c's newer `export.py` formats start with this magic ("ak42").
const VERSIONED_MAGIC: u32 = 0x616b_3432;
/// `run.c`'s RMSNorm epsilon.
pub const NORM_EPS: f32 = 1e-5;
pub const ROPE_THETA: f32 = 10000.0;

/// An imported llama2.c model.
#[derive(Clone, Debug, PartialEq)]
pub struct Llama2c {
    /// Weights under thinkling's names (no merges: the vocabulary is `vocab`).
    pub checkpoint: Checkpoint,
    pub vocab: Option<PieceVocab>,
}

impl Llama2c {
    /// Quantizes the model into a blob carrying its piece vocabulary (or none).
    pub fn build_blob(&self, opts: &ExportOptions) -> Result<(Vec<u8>, QuantReport)> {
        let vocab = match &self.vocab {
            Some(v) => Vocab::Pieces(v),
            None => Vocab::None,
        };
        build_blob_with_tokenizer(&self.checkpoint, vocab, opts)
    }
}

/// Reads a llama2.c `model.bin` and, optionally, its `tokenizer.bin`.
pub fn import(model: &Path, tokenizer: Option<&Path>) -> Result<Llama2c> {
    let bytes = std::fs::read(model).with_context(|| format!("cannot read {}", model.display()))?;
    let checkpoint =
        parse_model(&bytes).with_context(|| format!("llama2.c model {}", model.display()))?;
    let vocab = match tokenizer {
        Some(p) => {
            let b = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            let v = parse_tokenizer(&b, checkpoint.config.vocab_size as usize)
                .with_context(|| format!("llama2.c tokenizer {}", p.display()))?;
            Some(v)
        }
        None => None,
    };
    Ok(Llama2c { checkpoint, vocab })
}

/// Reads one model and writes its blob: `import` then `build_blob`.
pub fn import_blob(
    model: &Path,
    tokenizer: Option<&Path>,
    opts: &ExportOptions,
) -> Result<(Vec<u8>, QuantReport)> {
    import(model, tokenizer)?.build_blob(opts)
}

fn i32_at(b: &[u8], i: usize) -> i32 {
    i32::from_le_bytes([b[i * 4], b[i * 4 + 1], b[i * 4 + 2], b[i * 4 + 3]])
}

/// Parses the legacy format: 7 × i32 header, then f32 weights in `run.c`'s order.
pub fn parse_model(bytes: &[u8]) -> Result<Checkpoint> {
    if bytes.len() < 28 {
        bail!(
            "file is {} bytes, shorter than the 28-byte llama2.c header",
            bytes.len()
        );
    }
    if i32_at(bytes, 0) as u32 == VERSIONED_MAGIC {
        bail!(
            "this is llama2.c export format version {} (magic \"ak42\"); only the legacy fp32 format \
             (export.py --version 0 / legacy_export) is supported",
            i32_at(bytes, 1)
        );
    }
    let h: Vec<i32> = (0..7).map(|i| i32_at(bytes, i)).collect();
    let (dim, hidden, n_layers, n_heads, n_kv_heads, vocab_signed, seq_len) =
        (h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
    let names = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads"];
    for (n, v) in names.iter().zip(&h) {
        if *v <= 0 {
            bail!("header field {n} is {v}; expected a positive number (is this a llama2.c model.bin?)");
        }
    }
    if vocab_signed == 0 || seq_len <= 0 {
        bail!("header says vocab_size {vocab_signed}, seq_len {seq_len}; both must be non-zero (seq_len positive)");
    }
    if dim % n_heads != 0 || n_heads % n_kv_heads != 0 {
        bail!("header: n_heads {n_heads} must divide dim {dim} and n_kv_heads {n_kv_heads} must divide n_heads");
    }
    // A negative vocab size is llama2.c's flag for an untied classifier.
    let tied = vocab_signed > 0;
    let vocab = vocab_signed.unsigned_abs() as usize;
    let (d, hd, l, nh, nkv, seq) = (
        dim as usize,
        hidden as usize,
        n_layers as usize,
        n_heads as usize,
        n_kv_heads as usize,
        seq_len as usize,
    );
    let hs = d / nh;
    let kv = nkv * hs;
    let q = nh * hs;
    // The sizes in u128 first, where no product of the header's fields
    // (each below 2^31) can wrap around: a header announcing more (or less)
    // than the file holds is refused before any size is used.
    let wide = |xs: &[usize]| xs.iter().map(|&x| x as u128).product::<u128>();
    let wide_floats = wide(&[vocab, d]) * if tied { 1 } else { 2 }
        + 2 * wide(&[l, d])
        + 2 * wide(&[l, q, d])
        + 2 * wide(&[l, kv, d])
        + 3 * wide(&[l, hd, d])
        + wide(&[d])
        + wide(&[seq, hs]);
    if 28 + 4 * wide_floats != bytes.len() as u128 {
        bail!(
            "file is {} bytes; the header (dim {dim}, hidden {hidden}, layers {n_layers}, heads {n_heads}, \
             kv heads {n_kv_heads}, vocab {vocab_signed}, seq_len {seq_len}) needs exactly {}",
            bytes.len(),
            28 + 4 * wide_floats
        );
    }
    let sizes: [(&str, usize); 13] = [
        ("token_embedding_table", vocab * d),
        ("rms_att_weight", l * d),
        ("wq", l * q * d),
        ("wk", l * kv * d),
        ("wv", l * kv * d),
        ("wo", l * d * q),
        ("rms_ffn_weight", l * d),
        ("w1", l * hd * d),
        ("w2", l * d * hd),
        ("w3", l * hd * d),
        ("rms_final_weight", d),
        // Old RoPE tables `freq_cis_real`/`freq_cis_imag`, skipped as run.c does.
        ("freq_cis", seq * hs),
        ("wcls", if tied { 0 } else { vocab * d }),
    ];
    let floats: usize = sizes.iter().map(|s| s.1).sum();
    let expected = 28 + floats * 4;
    if bytes.len() != expected {
        bail!(
            "file is {} bytes; the header (dim {dim}, hidden {hidden}, layers {n_layers}, heads {n_heads}, \
             kv heads {n_kv_heads}, vocab {vocab_signed}, seq_len {seq_len}) needs exactly {expected}",
            bytes.len()
        );
    }
    let mut at = 28usize;
    let mut take = |n: usize| -> Vec<f32> {
        let v = bytes[at..at + n * 4]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        at += n * 4;
        v
    };
    let mut tensors = BTreeMap::new();
    let mut put = |name: String, shape: Vec<usize>, v: Vec<f32>| {
        tensors.insert(name, (shape, v));
    };
    put(
        "tok_embeddings.weight".into(),
        vec![vocab, d],
        take(vocab * d),
    );
    // Per-kind arrays hold all layers back to back: split them by layer.
    let per_layer = |kind: &str,
                     rows: usize,
                     cols: usize,
                     all: Vec<f32>,
                     put: &mut dyn FnMut(String, Vec<usize>, Vec<f32>)| {
        for (i, chunk) in all.chunks_exact(rows * cols).enumerate() {
            let shape = if rows == 1 {
                vec![cols]
            } else {
                vec![rows, cols]
            };
            put(format!("layers.{i}.{kind}.weight"), shape, chunk.to_vec());
        }
    };
    per_layer("attention_norm", 1, d, take(l * d), &mut put);
    per_layer("attention.wq", q, d, take(l * q * d), &mut put);
    per_layer("attention.wk", kv, d, take(l * kv * d), &mut put);
    per_layer("attention.wv", kv, d, take(l * kv * d), &mut put);
    per_layer("attention.wo", d, q, take(l * d * q), &mut put);
    per_layer("ffn_norm", 1, d, take(l * d), &mut put);
    per_layer("feed_forward.w1", hd, d, take(l * hd * d), &mut put);
    per_layer("feed_forward.w2", d, hd, take(l * d * hd), &mut put);
    per_layer("feed_forward.w3", hd, d, take(l * hd * d), &mut put);
    put("norm.weight".into(), vec![d], take(d));
    let _ = take(seq * hs);
    if !tied {
        put("output.weight".into(), vec![vocab, d], take(vocab * d));
    }
    let config = ModelConfig {
        dim: dim as u32,
        n_layers: n_layers as u32,
        n_heads: n_heads as u32,
        n_kv_heads: n_kv_heads as u32,
        hidden_dim: hidden as u32,
        vocab_size: vocab as u32,
        max_seq_len: seq_len as u32,
        rope_theta: ROPE_THETA,
        norm_eps: NORM_EPS,
        embedding_scale: 1.0,
        tied_embeddings: tied,
        moe: None,
    };
    let ckpt = Checkpoint {
        config,
        merges: Vec::new(),
        tensors,
    };
    crate::checkpoint::check(&ckpt)?;
    Ok(ckpt)
}

/// Parses `tokenizer.bin`: `max_token_length: i32`, then per token
/// `score: f32, len: i32, bytes[len]`.
pub fn parse_tokenizer(bytes: &[u8], vocab_size: usize) -> Result<PieceVocab> {
    let mut at = 0usize;
    let next4 = |at: &mut usize, what: &str, tok: usize| -> Result<[u8; 4]> {
        let b = bytes.get(*at..*at + 4).with_context(|| {
            format!("file ends in the {what} of token {tok} (vocab {vocab_size})")
        })?;
        *at += 4;
        Ok([b[0], b[1], b[2], b[3]])
    };
    let max_len = i32::from_le_bytes(next4(&mut at, "max_token_length header", 0)?);
    if max_len < 0 {
        bail!("max_token_length is {max_len}");
    }
    // Each token takes at least 8 bytes: reserve no more than the file holds.
    let reserve = vocab_size.min(bytes.len() / 8);
    let mut pieces = Vec::with_capacity(reserve);
    let mut scores = Vec::with_capacity(reserve);
    for t in 0..vocab_size {
        let score = f32::from_le_bytes(next4(&mut at, "score", t)?);
        let len = i32::from_le_bytes(next4(&mut at, "length", t)?);
        if len < 0 || len > max_len {
            bail!("token {t} has length {len}, outside 0..={max_len} (max_token_length)");
        }
        let piece = bytes
            .get(at..at + len as usize)
            .with_context(|| format!("file ends inside the bytes of token {t}"))?;
        at += len as usize;
        pieces.push(piece.to_vec());
        scores.push(score);
    }
    if at != bytes.len() {
        bail!(
            "{} bytes left after {vocab_size} tokens: the tokenizer's vocab is larger than the model's",
            bytes.len() - at
        );
    }
    Ok(PieceVocab {
        max_token_length: max_len as u32,
        pieces,
        scores,
    })
}
