//! Random-weight model blobs for tests and benchmarks (feature `alloc`).
//!
//! ```
//! # #[cfg(feature = "alloc")] {
//! use runtime::{testing, DType, Model};
//! let config = testing::tiny_config();
//! let blob = testing::random_blob(&config, DType::Q8, 32, 7).unwrap();
//! let model = Model::from_blob(&blob).unwrap();
//! assert_eq!(model.config().dim, 64);
//! # }
//! ```
//!
//! Weights are uniform in `±1/sqrt(cols)` (embeddings `±1`), norm gains near
//! 1, so activations stay in a realistic range. The tokenizer is thinkling's
//! byte-level BPE with the merges of [`MERGES`] (as many as the vocab holds;
//! none, i.e. [`TokenizerData::None`], when the vocab is below 264 tokens).

use crate::blob::{self, EncodeError};
use crate::format::*;
use crate::kernels::QuantizedActivations;
use crate::quant;
use alloc::vec;
use alloc::vec::Vec;

/// The test tokenizer's merges, in rank order, as `(left, right)` texts.
pub const MERGES: [(&str, &str); 12] = [
    ("t", "h"),
    ("h", "e"),
    ("th", "e"),
    (" ", "t"),
    (" t", "he"),
    ("i", "n"),
    ("e", "r"),
    ("a", "n"),
    (" ", "a"),
    (" a", "n"),
    (" an", "d"),
    ("o", "n"),
];

/// Reference shape "tiny": dim 64, 5 layers, 8 heads, 4 kv heads, hidden 172
/// (a short last quantization group at group 32), vocab 512, context 512.
pub fn tiny_config() -> ModelConfig {
    ModelConfig {
        dim: 64,
        n_layers: 5,
        n_heads: 8,
        n_kv_heads: 4,
        hidden_dim: 172,
        vocab_size: 512,
        max_seq_len: 512,
        rope_theta: 10000.0,
        norm_eps: 1e-6,
        embedding_scale: 8.0,
        tied_embeddings: true,
        moe: None,
    }
}

/// Reference shape "small" (llama2.c's stories15M): dim 288, 6 layers,
/// 6 heads, 6 kv heads, hidden 768, vocab 32000, context 256.
pub fn small_config() -> ModelConfig {
    ModelConfig {
        dim: 288,
        n_layers: 6,
        n_heads: 6,
        n_kv_heads: 6,
        hidden_dim: 768,
        vocab_size: 32000,
        max_seq_len: 256,
        rope_theta: 10000.0,
        norm_eps: 1e-6,
        embedding_scale: 1.0,
        tied_embeddings: true,
        moe: None,
    }
}

/// The small shape of the engine's own tests: dim 32, 2 layers, 4 heads,
/// 2 kv heads, hidden 44, vocab 300, context 24; embeddings tied unless
/// the model is a mixture of experts (`moe`).
pub fn test_config(moe: Option<MoeConfig>) -> ModelConfig {
    ModelConfig {
        dim: 32,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        hidden_dim: 44,
        vocab_size: 300,
        max_seq_len: 24,
        rope_theta: 10000.0,
        norm_eps: 1e-6,
        embedding_scale: 5.0,
        tied_embeddings: moe.is_none(),
        moe,
    }
}

/// Owned buffers for [`QuantizedActivations`] of up to `len` elements (any
/// group size): a test's stand-in for the session arena.
pub struct ActivationBuffers {
    pub q: Vec<i8>,
    pub split: Vec<i8>,
    pub pairs: Vec<u32>,
    pub scales: Vec<f32>,
    pub sums: Vec<i32>,
}

impl ActivationBuffers {
    pub fn new(len: usize) -> Self {
        let n = len + 1;
        Self {
            q: vec![0; n],
            split: vec![0; n],
            pairs: vec![0; crate::kernels::pair_words(n)],
            scales: vec![0.0; n],
            sums: vec![0; n],
        }
    }

    /// The buffers as (empty) quantized activations.
    pub fn acts(&mut self) -> QuantizedActivations<'_> {
        QuantizedActivations::new(
            &mut self.q,
            &mut self.split,
            &mut self.pairs,
            &mut self.scales,
            &mut self.sums,
        )
    }
}

/// A tensor's id, dtype, rows, cols, group, data and scales, owned.
type OwnedTensor = (TensorId, DType, u32, u32, u32, Vec<u8>, Vec<u8>);

/// SplitMix64 uniform floats in `[-1, 1)`.
struct Uniform(crate::sampling::Rng);

impl Uniform {
    fn next(&mut self) -> f32 {
        self.0.next_f32() * 2.0 - 1.0
    }
}

/// Byte-level BPE tables (`merges`, `merge_index`) for [`MERGES`], limited
/// to what `vocab_size` holds.
pub fn test_merges(vocab_size: u32) -> (Vec<u8>, Vec<u8>) {
    let room = (vocab_size as usize).saturating_sub(special::FIRST_MERGE as usize);
    let mut known: Vec<(Vec<u8>, u32)> = Vec::new();
    let id_of = |known: &Vec<(Vec<u8>, u32)>, s: &str| -> u32 {
        match s.as_bytes() {
            [b] => special::FIRST_BYTE + *b as u32,
            bytes => known
                .iter()
                .find(|(k, _)| k.as_slice() == bytes)
                .map_or(special::UNK, |(_, id)| *id),
        }
    };
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    for (r, (l, rt)) in MERGES.iter().take(room).enumerate() {
        let pair = (id_of(&known, l), id_of(&known, rt));
        let mut text = Vec::from(l.as_bytes());
        text.extend_from_slice(rt.as_bytes());
        known.push((text, special::FIRST_MERGE + r as u32));
        pairs.push(pair);
    }
    let mut merges = Vec::new();
    for (l, r) in &pairs {
        merges.extend_from_slice(&l.to_le_bytes());
        merges.extend_from_slice(&r.to_le_bytes());
    }
    let mut ranks: Vec<u32> = (0..pairs.len() as u32).collect();
    ranks.sort_by_key(|r| pairs.get(*r as usize).copied());
    let index = ranks.iter().flat_map(|r| r.to_le_bytes()).collect();
    (merges, index)
}

/// A valid blob of `config` with random weights: every matrix in `dtype`
/// (Q8/Q4 with `group` elements per f32 scale along rows), norms in f32.
pub fn random_blob(
    config: &ModelConfig,
    dtype: DType,
    group: u32,
    seed: u64,
) -> Result<Vec<u8>, EncodeError> {
    random_blob_with_scales(config, dtype, group, ScaleType::F32, seed)
}

/// [`random_blob`] with a choice of scale storage.
pub fn random_blob_with_scales(
    config: &ModelConfig,
    dtype: DType,
    group: u32,
    scale_type: ScaleType,
    seed: u64,
) -> Result<Vec<u8>, EncodeError> {
    let mut rng = Uniform(crate::sampling::Rng::new(seed));
    blob_from_fn(config, dtype, group, scale_type, &mut |id, _row, values| {
        let is_norm = matches!(
            id.kind,
            TensorKind::AttnNorm | TensorKind::FfnNorm | TensorKind::FinalNorm
        );
        let amp = match id.kind {
            TensorKind::Embedding => 1.0,
            _ => 1.0 / libm::sqrtf(values.len().max(1) as f32),
        };
        for v in values.iter_mut() {
            *v = if is_norm {
                1.0 + 0.1 * rng.next()
            } else {
                amp * rng.next()
            };
        }
    })
}

/// A blob whose weights come from `weight(id, row, values)`, which fills one
/// row of tensor `id` (`values.len()` = its columns). Matrices are stored in
/// `dtype` (Q8/Q4 with `group` elements per scale), norm gains in f32. The
/// tokenizer is the one described in the module docs.
pub fn blob_from_fn(
    config: &ModelConfig,
    dtype: DType,
    group: u32,
    scale_type: ScaleType,
    weight: &mut dyn FnMut(TensorId, usize, &mut [f32]),
) -> Result<Vec<u8>, EncodeError> {
    let mut ids = Vec::new();
    TensorId::for_each_canonical(config, |id| ids.push(id));
    // Own every tensor's bytes first; the records borrow them.
    let mut owned: Vec<OwnedTensor> = Vec::new();
    for id in ids {
        let (rows, cols) = id.shape(config);
        let is_norm = matches!(
            id.kind,
            TensorKind::AttnNorm | TensorKind::FfnNorm | TensorKind::FinalNorm
        );
        let dt = if is_norm { DType::F32 } else { dtype };
        let quantized = matches!(dt, DType::Q8 | DType::Q4);
        let g = if quantized { group.max(1) } else { 0 };
        let rb = row_bytes(dt, cols as usize);
        let gpr = if quantized {
            (cols as usize).div_ceil(g as usize)
        } else {
            0
        };
        let sb = scale_bytes(scale_type);
        let mut data = vec![0u8; rows as usize * rb];
        let mut scales = vec![0u8; rows as usize * gpr * sb];
        let mut row = vec![0f32; cols as usize];
        for r in 0..rows as usize {
            weight(id, r, &mut row);
            let (Some(d), Some(s)) = (
                data.get_mut(r * rb..(r + 1) * rb),
                scales.get_mut(r * gpr * sb..(r + 1) * gpr * sb),
            ) else {
                return Err(EncodeError::Serialize);
            };
            quant::quantize_row(&row, dt, g as usize, scale_type, d, s);
        }
        owned.push((id, dt, rows, cols, g, data, scales));
    }
    let records: Vec<TensorRecord<'_>> = owned
        .iter()
        .map(|(id, dt, rows, cols, g, data, scales)| TensorRecord {
            id: *id,
            dtype: *dt,
            rows: *rows,
            cols: *cols,
            group_size: *g,
            scale_type,
            data,
            scales,
        })
        .collect();
    let (merges, merge_index) = test_merges(config.vocab_size);
    let tokenizer = if config.vocab_size >= special::FIRST_MERGE {
        TokenizerData::ByteBpe {
            merges: &merges,
            merge_index: &merge_index,
        }
    } else {
        TokenizerData::None
    };
    blob::encode(config, tokenizer, &records)
}

/// A [`markov_blob`] chain whose thought never closes: `q` → `<think>` →
/// `a` → `a` → … ; were the answer forced open, `<answer>` → `4` →
/// `</answer>` → `<eos>` (and `</think>` → `<answer>`). Generation from the
/// prompt `q` stops only at a think budget or the token limit.
pub const ENDLESS_THOUGHT: [(u32, u32); 7] = {
    const A: u32 = special::FIRST_BYTE + b'a' as u32;
    const Q: u32 = special::FIRST_BYTE + b'q' as u32;
    const FOUR: u32 = special::FIRST_BYTE + b'4' as u32;
    [
        (Q, special::THINK),
        (special::THINK, A),
        (A, A),
        (special::ANSWER, FOUR),
        (FOUR, special::END_ANSWER),
        (special::END_ANSWER, special::EOS),
        (special::END_THINK, special::ANSWER),
    ]
};

/// A model whose next token depends only on the current one: attention and
/// FFN outputs are zero, embeddings are one-hot, the LM head maps each
/// token's channel to its successor. `chain` lists `(token, next)` pairs
/// (at most 15; tokens outside it share the last channel). Its output is
/// known in advance, so tests can check generation exactly.
pub fn markov_blob(chain: &[(u32, u32)]) -> Result<Vec<u8>, EncodeError> {
    let config = ModelConfig {
        dim: 16,
        n_layers: 1,
        n_heads: 2,
        n_kv_heads: 2,
        hidden_dim: 16,
        vocab_size: 300,
        max_seq_len: 64,
        rope_theta: 10000.0,
        norm_eps: 1e-6,
        embedding_scale: 1.0,
        tied_embeddings: false,
        moe: None,
    };
    blob_from_fn(&config, DType::F32, 0, ScaleType::F32, &mut |id, row, v| {
        v.fill(0.0);
        match id.kind {
            TensorKind::AttnNorm | TensorKind::FfnNorm | TensorKind::FinalNorm => v.fill(1.0),
            TensorKind::Embedding => {
                // Channel j marks token chain[j].0; every other token sits on the last channel.
                let ch = chain
                    .iter()
                    .position(|(t, _)| *t as usize == row)
                    .unwrap_or(15);
                if let Some(c) = v.get_mut(ch) {
                    *c = 1.0;
                }
            }
            TensorKind::Output => {
                for (j, (_, next)) in chain.iter().enumerate() {
                    if *next as usize == row {
                        if let Some(c) = v.get_mut(j) {
                            *c = 10.0;
                        }
                    }
                }
            }
            _ => {}
        }
    })
}

/// An early-exit draft for speculative decoding: the first `n_layers`
/// layers of `blob` with its embeddings, final norm, LM head and tokenizer
/// (so the same token ids), as a blob of its own. A draft that needs no
/// training, for benchmarks and tests.
pub fn truncate_layers(blob_bytes: &[u8], n_layers: u32) -> Result<Vec<u8>, EncodeError> {
    let parsed = blob::parse(blob_bytes).map_err(EncodeError::Invalid)?;
    let mut config = parsed.config;
    config.n_layers = n_layers.clamp(1, config.n_layers.max(1));
    let mut records = Vec::new();
    for r in blob::TensorRecords::new(&parsed) {
        let r = r.map_err(EncodeError::Invalid)?;
        let in_layer = !matches!(
            r.id.kind,
            TensorKind::Embedding | TensorKind::FinalNorm | TensorKind::Output
        );
        if !in_layer || u32::from(r.id.layer) < config.n_layers {
            records.push(r);
        }
    }
    blob::encode(&config, parsed.tokenizer, &records)
}

/// Why [`logits_per_position`] could not run a blob.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LogitsError {
    Blob(crate::BlobError),
    Session(crate::SessionError),
}

/// The logits after each of `tokens`, fed one at a time from position 0 with
/// an f32 KV cache: the runtime side of the export, import and parity tests.
pub fn logits_per_position(
    blob_bytes: &[u8],
    tokens: &[u32],
) -> Result<Vec<Vec<f32>>, LogitsError> {
    use crate::{KvDType, Model, Session};
    let model = Model::from_blob(blob_bytes).map_err(LogitsError::Blob)?;
    let context = tokens.len().max(1);
    let mut arena = vec![0u8; crate::plan(model.config(), context, KvDType::F32).total_bytes];
    let mut session =
        Session::new(&model, &mut arena, context, KvDType::F32).map_err(LogitsError::Session)?;
    tokens
        .iter()
        .map(|&t| {
            session
                .forward(t)
                .map(|l| l.to_vec())
                .map_err(LogitsError::Session)
        })
        .collect()
}
