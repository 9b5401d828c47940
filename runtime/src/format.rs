//! The model blob: one postcard document followed by a CRC32 of it.
//!
//! ```text
//! blob = postcard(Blob) ++ crc32_le(postcard(Blob))
//! Blob.tensors = postcard(TensorRecord) ++ postcard(TensorRecord) ++ ...
//! ```
//!
//! Tensor records are nested as a byte string rather than a postcard sequence so
//! a reader without an allocator can walk them in place; every tensor's bytes
//! are borrowed from the blob (flash on a board) and never copied.
//!
//! Tensors appear in one canonical order fixed by the config (see
//! [`TensorId::for_each_canonical`]); the reader checks every id, shape and byte count.

use serde::{Deserialize, Serialize};

/// First bytes of every blob.
pub const MAGIC: [u8; 8] = *b"THINKLNG";
/// Bumped on any incompatible change of the layout below.
pub const FORMAT_VERSION: u32 = 1;
/// CRC-32/ISO-HDLC (the zlib/PNG CRC) over the postcard document.
pub const BLOB_CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Architecture of a decoder-only transformer (see docs/contracts.md).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct ModelConfig {
    pub dim: u32,
    pub n_layers: u32,
    pub n_heads: u32,
    pub n_kv_heads: u32,
    /// SwiGLU hidden width (per expert for mixture-of-experts layers).
    pub hidden_dim: u32,
    pub vocab_size: u32,
    /// Longest context the model was trained for.
    pub max_seq_len: u32,
    pub rope_theta: f32,
    pub norm_eps: f32,
    /// Token embeddings are multiplied by this on input (sqrt(dim) for
    /// thinkling models, 1.0 for llama2.c checkpoints).
    pub embedding_scale: f32,
    /// LM head shares the embedding table.
    pub tied_embeddings: bool,
    pub moe: Option<MoeConfig>,
}

/// Mixture of experts in place of the dense FFN of some layers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct MoeConfig {
    pub n_experts: u32,
    /// Experts evaluated per token (softmax over the chosen k router logits).
    pub top_k: u32,
    /// Bit `i` set: layer `i` uses experts instead of the dense FFN.
    pub layer_mask: u64,
}

impl ModelConfig {
    pub fn head_dim(&self) -> u32 {
        self.dim.checked_div(self.n_heads).unwrap_or(0)
    }
    pub fn kv_dim(&self) -> u32 {
        self.head_dim() * self.n_kv_heads
    }
    pub fn is_moe_layer(&self, layer: u32) -> bool {
        match self.moe {
            Some(m) => layer < 64 && (m.layer_mask >> layer) & 1 == 1,
            None => false,
        }
    }
}

/// How a tensor's elements are stored.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// Little-endian f32.
    F32,
    /// Little-endian IEEE half.
    F16,
    /// Symmetric int8 in groups along each row: `x ≈ q * scale`, `q ∈ [-127, 127]`.
    Q8,
    /// Symmetric int4 in groups along each row, two per byte (element `2j` in the
    /// low nibble of byte `j` of its row, `2j+1` in the high one), each nibble
    /// holding `q + 8`, `q ∈ [-8, 7]`. Every row starts on a byte boundary.
    Q4,
}

/// Storage of the per-group scales of Q8/Q4 tensors.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleType {
    F32,
    F16,
}

/// What a tensor is; together with `layer` and `expert` it names it uniquely.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorKind {
    /// `[vocab, dim]`
    Embedding,
    /// `[1, dim]`
    AttnNorm,
    /// `[n_heads * head_dim, dim]`
    Wq,
    /// `[n_kv_heads * head_dim, dim]`
    Wk,
    /// `[n_kv_heads * head_dim, dim]`
    Wv,
    /// `[dim, n_heads * head_dim]`
    Wo,
    /// `[1, dim]`
    FfnNorm,
    /// `[hidden, dim]` (w1)
    Gate,
    /// `[hidden, dim]` (w3)
    Up,
    /// `[dim, hidden]` (w2)
    Down,
    /// `[n_experts, dim]`
    Router,
    /// `[1, dim]`
    FinalNorm,
    /// `[vocab, dim]`, only when the head is untied
    Output,
}

/// Identity of a tensor in the blob.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorId {
    pub kind: TensorKind,
    /// Layer index (0 for tensors outside the layers).
    pub layer: u16,
    /// Expert index inside a mixture-of-experts layer (0 otherwise).
    pub expert: u16,
}

impl TensorId {
    pub const fn new(kind: TensorKind, layer: u16, expert: u16) -> Self {
        Self {
            kind,
            layer,
            expert,
        }
    }

    /// Shape `[rows, cols]` this tensor must have under `config`.
    pub fn shape(&self, c: &ModelConfig) -> (u32, u32) {
        let hd = c.head_dim();
        match self.kind {
            TensorKind::Embedding | TensorKind::Output => (c.vocab_size, c.dim),
            TensorKind::AttnNorm | TensorKind::FfnNorm | TensorKind::FinalNorm => (1, c.dim),
            TensorKind::Wq => (c.n_heads * hd, c.dim),
            TensorKind::Wk | TensorKind::Wv => (c.n_kv_heads * hd, c.dim),
            TensorKind::Wo => (c.dim, c.n_heads * hd),
            TensorKind::Gate | TensorKind::Up => (c.hidden_dim, c.dim),
            TensorKind::Down => (c.dim, c.hidden_dim),
            TensorKind::Router => (c.moe.map(|m| m.n_experts).unwrap_or(0), c.dim),
        }
    }

    /// Number of tensors a blob of this config holds.
    pub fn canonical_count(c: &ModelConfig) -> usize {
        let mut n = 0usize;
        Self::for_each_canonical(c, |_| n += 1);
        n
    }

    /// Calls `f` with every tensor id in blob order:
    /// embedding; per layer: attn norm, wq, wk, wv, wo, ffn norm, then either
    /// gate, up, down or router and per expert gate, up, down; final norm;
    /// output (untied only).
    pub fn for_each_canonical(c: &ModelConfig, mut f: impl FnMut(TensorId)) {
        use TensorKind::*;
        f(Self::new(Embedding, 0, 0));
        for l in 0..c.n_layers.min(u16::MAX as u32) as u16 {
            for k in [AttnNorm, Wq, Wk, Wv, Wo, FfnNorm] {
                f(Self::new(k, l, 0));
            }
            if c.is_moe_layer(l as u32) {
                f(Self::new(Router, l, 0));
                let n = c.moe.map(|m| m.n_experts).unwrap_or(0).min(u16::MAX as u32) as u16;
                for e in 0..n {
                    for k in [Gate, Up, Down] {
                        f(Self::new(k, l, e));
                    }
                }
            } else {
                for k in [Gate, Up, Down] {
                    f(Self::new(k, l, 0));
                }
            }
        }
        f(Self::new(FinalNorm, 0, 0));
        if !c.tied_embeddings {
            f(Self::new(Output, 0, 0));
        }
    }
}

/// One tensor: its identity, storage and bytes (borrowed from the blob).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct TensorRecord<'a> {
    pub id: TensorId,
    pub dtype: DType,
    pub rows: u32,
    pub cols: u32,
    /// Elements per quantization group along a row (Q8/Q4); 0 for F32/F16.
    /// The last group of a row may be shorter; a group never spans two rows.
    pub group_size: u32,
    pub scale_type: ScaleType,
    #[serde(borrow)]
    pub data: &'a [u8],
    /// `rows * ceil(cols / group_size)` scales, row-major (empty for F32/F16).
    #[serde(borrow)]
    pub scales: &'a [u8],
}

impl TensorRecord<'_> {
    /// Groups per row (0 for unquantized tensors).
    pub fn groups_per_row(&self) -> usize {
        if self.group_size == 0 {
            0
        } else {
            (self.cols as usize).div_ceil(self.group_size as usize)
        }
    }
    /// Bytes one row takes in `data`.
    pub fn row_bytes(&self) -> usize {
        row_bytes(self.dtype, self.cols as usize)
    }
}

/// Bytes one row of `cols` elements takes in `data`.
pub fn row_bytes(dtype: DType, cols: usize) -> usize {
    match dtype {
        DType::F32 => cols * 4,
        DType::F16 => cols * 2,
        DType::Q8 => cols,
        DType::Q4 => cols.div_ceil(2),
    }
}

/// Bytes one scale takes.
pub fn scale_bytes(t: ScaleType) -> usize {
    match t {
        ScaleType::F32 => 4,
        ScaleType::F16 => 2,
    }
}

/// Token ids fixed by docs/contracts.md for thinkling's byte-level BPE.
pub mod special {
    pub const PAD: u32 = 0;
    pub const UNK: u32 = 1;
    pub const BOS: u32 = 2;
    pub const EOS: u32 = 3;
    pub const THINK: u32 = 4;
    pub const END_THINK: u32 = 5;
    pub const ANSWER: u32 = 6;
    pub const END_ANSWER: u32 = 7;
    /// Number of special tokens; byte `b` is token `FIRST_BYTE + b`.
    pub const COUNT: u32 = 8;
    pub const FIRST_BYTE: u32 = COUNT;
    /// Merge of rank `r` produces token `FIRST_MERGE + r`.
    pub const FIRST_MERGE: u32 = FIRST_BYTE + 256;
    /// Texts of the special tokens, indexed by id.
    pub const NAMES: [&str; 8] = [
        "<pad>",
        "<unk>",
        "<bos>",
        "<eos>",
        "<think>",
        "</think>",
        "<answer>",
        "</answer>",
    ];
}

/// The tokenizer a blob carries.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub enum TokenizerData<'a> {
    /// thinkling's byte-level BPE: ids `0..8` special (see [`special`]),
    /// `8..264` the 256 bytes, then one token per merge.
    ByteBpe {
        /// `n_merges` pairs `(left: u32 LE, right: u32 LE)` in rank order;
        /// merge `r` yields token `special::FIRST_MERGE + r`.
        #[serde(borrow)]
        merges: &'a [u8],
        /// The `n_merges` ranks (u32 LE) sorted by `(left, right)`, for binary search.
        #[serde(borrow)]
        merge_index: &'a [u8],
    },
    /// A llama2.c `tokenizer.bin` vocabulary (sentencepiece pieces with scores,
    /// greedy merge by score, byte fallback `<0xXX>` at ids 3..259, bos 1, eos 2).
    Pieces {
        /// All pieces concatenated.
        #[serde(borrow)]
        bytes: &'a [u8],
        /// `vocab + 1` offsets (u32 LE) into `bytes`.
        #[serde(borrow)]
        offsets: &'a [u8],
        /// `vocab` scores (f32 LE).
        #[serde(borrow)]
        scores: &'a [u8],
        /// `vocab` ids (u32 LE) sorted by piece bytes, for binary search.
        #[serde(borrow)]
        sorted: &'a [u8],
    },
    /// No tokenizer: generation takes and gives token ids (bos 1, eos 2).
    None,
}

/// The postcard document.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct Blob<'a> {
    pub magic: [u8; 8],
    pub version: u32,
    pub config: ModelConfig,
    #[serde(borrow)]
    pub tokenizer: TokenizerData<'a>,
    /// Number of tensor records in `tensors`.
    pub tensor_count: u32,
    /// Concatenated postcard-encoded [`TensorRecord`]s in canonical order.
    #[serde(borrow)]
    pub tensors: &'a [u8],
}
