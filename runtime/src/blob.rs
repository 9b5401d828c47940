//! Reading (and, with `alloc`, writing) model blobs, with every check done once
//! up front so the engine can trust shapes and lengths afterwards.

use crate::error::BlobError;
use crate::format::*;

/// Upper bounds of this build; they size fixed tables, not weights.
pub const MAX_LAYERS: u32 = 32;
pub const MAX_HEAD_DIM: u32 = 256;
pub const MAX_EXPERTS: u32 = 64;
/// Longest context a blob may announce. The KV cache a session plans grows
/// with it while the blob does not (it holds no per-position data), so a
/// small blob announcing a huge context is refused here, before any caller
/// plans or allocates for it.
pub const MAX_SEQ_LEN: u32 = 1 << 16;

/// Checks magic, version and CRC, decodes the document and validates the config,
/// the tokenizer and every tensor record.
pub fn parse(bytes: &[u8]) -> Result<Blob<'_>, BlobError> {
    if bytes.len() < MAGIC.len() + 1 + 4 {
        return Err(BlobError::TooShort { len: bytes.len() });
    }
    if bytes.get(..MAGIC.len()) != Some(&MAGIC[..]) {
        return Err(BlobError::BadMagic);
    }
    // The version follows the magic as a postcard varint: read it before the
    // checksum so a newer file says "newer", not "corrupt".
    let (version, _) = postcard::take_from_bytes::<u32>(crate::bytes::suffix(bytes, MAGIC.len()))
        .map_err(|_| BlobError::Malformed {
        what: "format version",
    })?;
    if version != FORMAT_VERSION {
        return Err(BlobError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let split = bytes.len() - 4;
    let (doc, crc_bytes) = bytes.split_at(split);
    let stored = u32::from_le_bytes(crate::bytes::arr4(crc_bytes));
    let computed = BLOB_CRC.checksum(doc);
    if stored != computed {
        return Err(BlobError::BadChecksum { stored, computed });
    }
    let (blob, rest) =
        postcard::take_from_bytes::<Blob<'_>>(doc).map_err(|_| BlobError::Malformed {
            what: "document does not decode",
        })?;
    if !rest.is_empty() {
        return Err(BlobError::TrailingBytes { count: rest.len() });
    }
    validate_config(&blob.config)?;
    validate_tokenizer(&blob.tokenizer, &blob.config)?;
    validate_tensors(&blob)?;
    Ok(blob)
}

fn validate_config(c: &ModelConfig) -> Result<(), BlobError> {
    let bad = |what| Err(BlobError::BadConfig { what });
    if c.dim == 0 || c.n_layers == 0 || c.n_heads == 0 || c.n_kv_heads == 0 {
        return bad("dim, layers, heads and kv heads must be positive");
    }
    if c.hidden_dim == 0 || c.vocab_size == 0 || c.max_seq_len == 0 {
        return bad("hidden dim, vocab size and max context must be positive");
    }
    if !c.dim.is_multiple_of(c.n_heads) {
        return bad("heads must divide dim");
    }
    if !c.n_heads.is_multiple_of(c.n_kv_heads) {
        return bad("kv heads must divide heads");
    }
    if !c.head_dim().is_multiple_of(2) {
        return bad("head dim must be even for RoPE");
    }
    if !(c.rope_theta.is_finite() && c.rope_theta > 1.0) {
        return bad("rope base must be finite and > 1");
    }
    if !(c.norm_eps.is_finite() && c.norm_eps > 0.0) {
        return bad("norm eps must be finite and > 0");
    }
    if !c.embedding_scale.is_finite() {
        return bad("embedding scale must be finite");
    }
    if c.n_layers > MAX_LAYERS {
        return Err(BlobError::Unsupported {
            what: "layer count",
            value: c.n_layers,
            max: MAX_LAYERS,
        });
    }
    if c.head_dim() > MAX_HEAD_DIM {
        return Err(BlobError::Unsupported {
            what: "head dim",
            value: c.head_dim(),
            max: MAX_HEAD_DIM,
        });
    }
    if c.max_seq_len > MAX_SEQ_LEN {
        return Err(BlobError::Unsupported {
            what: "max context",
            value: c.max_seq_len,
            max: MAX_SEQ_LEN,
        });
    }
    // Keep every index product inside u32 (and so inside usize on a 32-bit MCU).
    let big = |v: u32| v > 1 << 24;
    if big(c.dim) || big(c.hidden_dim) || big(c.vocab_size) || big(c.max_seq_len) {
        return bad("a dimension exceeds 2^24");
    }
    if let Some(m) = c.moe {
        if m.n_experts == 0 || m.top_k == 0 || m.top_k > m.n_experts {
            return bad("moe needs 0 < top_k <= n_experts");
        }
        if m.n_experts > MAX_EXPERTS {
            return Err(BlobError::Unsupported {
                what: "expert count",
                value: m.n_experts,
                max: MAX_EXPERTS,
            });
        }
        if c.n_layers < 64 && m.layer_mask >> c.n_layers != 0 {
            return bad("moe layer mask names layers beyond n_layers");
        }
    }
    Ok(())
}

fn validate_tokenizer(t: &TokenizerData<'_>, c: &ModelConfig) -> Result<(), BlobError> {
    let bad = |what| Err(BlobError::BadTokenizer { what });
    match *t {
        TokenizerData::ByteBpe {
            merges,
            merge_index,
        } => {
            if merges.len() % 8 != 0 {
                return bad("merge table is not a whole number of pairs");
            }
            let n = merges.len() / 8;
            if merge_index.len() != n * 4 {
                return bad("merge index length differs from merge count");
            }
            let vocab = special::FIRST_MERGE as usize + n;
            if vocab > c.vocab_size as usize {
                return bad("tokenizer has more tokens than the model's vocab");
            }
            for (r, pair) in merges.chunks_exact(8).enumerate() {
                let l = u32::from_le_bytes(crate::bytes::arr4(pair));
                let rt = u32::from_le_bytes(crate::bytes::arr4_at(pair, 4));
                let produced = special::FIRST_MERGE as usize + r;
                // A merge may only combine byte or earlier merged tokens: this
                // bounds decode recursion and rules out cycles.
                let ok = |id: u32| id >= special::FIRST_BYTE && (id as usize) < produced;
                if !ok(l) || !ok(rt) {
                    return bad("a merge refers to a special or later token");
                }
            }
            let mut prev: Option<(u32, u32)> = None;
            for rank in merge_index.chunks_exact(4) {
                let r = u32::from_le_bytes(crate::bytes::arr4(rank)) as usize;
                let Some(pair) = merges.get(r * 8..r * 8 + 8) else {
                    return bad("merge index refers past the merge table");
                };
                let key = (
                    u32::from_le_bytes(crate::bytes::arr4(pair)),
                    u32::from_le_bytes(crate::bytes::arr4_at(pair, 4)),
                );
                if prev.is_some_and(|p| p >= key) {
                    return bad("merge index is not strictly sorted");
                }
                prev = Some(key);
            }
        }
        TokenizerData::Pieces {
            bytes,
            offsets,
            scores,
            sorted,
        } => {
            if offsets.len() % 4 != 0 || offsets.len() < 4 {
                return bad("piece offsets are not u32s");
            }
            let n = offsets.len() / 4 - 1;
            if n != c.vocab_size as usize {
                return bad("piece count differs from vocab size");
            }
            if scores.len() != n * 4 || sorted.len() != n * 4 {
                return bad("scores or sorted index length differs from piece count");
            }
            let mut prev = 0u32;
            for o in offsets.chunks_exact(4) {
                let o = u32::from_le_bytes(crate::bytes::arr4(o));
                if o < prev || o as usize > bytes.len() {
                    return bad("piece offsets are not increasing within the piece bytes");
                }
                prev = o;
            }
            for s in sorted.chunks_exact(4) {
                if u32::from_le_bytes(crate::bytes::arr4(s)) as usize >= n {
                    return bad("sorted index refers past the vocab");
                }
            }
        }
        TokenizerData::None => {}
    }
    Ok(())
}

/// Walks the tensor records of a blob in order.
#[derive(Clone)]
pub struct TensorRecords<'a> {
    rest: &'a [u8],
    left: u32,
}

impl<'a> TensorRecords<'a> {
    pub fn new(blob: &Blob<'a>) -> Self {
        Self {
            rest: blob.tensors,
            left: blob.tensor_count,
        }
    }

    /// The encoded records not yet walked (the next one first).
    pub fn remaining_bytes(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for TensorRecords<'a> {
    type Item = Result<TensorRecord<'a>, BlobError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        match postcard::take_from_bytes::<TensorRecord<'a>>(self.rest) {
            Ok((rec, rest)) => {
                self.rest = rest;
                Some(Ok(rec))
            }
            Err(_) => {
                self.left = 0;
                Some(Err(BlobError::Malformed {
                    what: "tensor record does not decode",
                }))
            }
        }
    }
}

/// Checks one record against the id and shape the config expects.
pub fn validate_record(
    rec: &TensorRecord<'_>,
    expected: TensorId,
    c: &ModelConfig,
) -> Result<(), BlobError> {
    if rec.id != expected {
        return Err(BlobError::UnexpectedTensor {
            expected,
            found: rec.id,
        });
    }
    let shape = expected.shape(c);
    if (rec.rows, rec.cols) != shape {
        return Err(BlobError::BadShape {
            id: rec.id,
            expected: shape,
            found: (rec.rows, rec.cols),
        });
    }
    let is_norm = matches!(
        rec.id.kind,
        TensorKind::AttnNorm | TensorKind::FfnNorm | TensorKind::FinalNorm
    );
    if is_norm && rec.dtype != DType::F32 {
        return Err(BlobError::BadDType {
            id: rec.id,
            what: "norm gains must be f32",
        });
    }
    let quantized = matches!(rec.dtype, DType::Q8 | DType::Q4);
    if quantized && (rec.group_size == 0 || rec.group_size > 1 << 16) {
        return Err(BlobError::BadDType {
            id: rec.id,
            what: "quantized tensor needs a group size in 1..=65536",
        });
    }
    if quantized && rec.dtype == DType::Q4 && !rec.group_size.is_multiple_of(2) {
        return Err(BlobError::BadDType {
            id: rec.id,
            what: "q4 group size must be even",
        });
    }
    if !quantized && rec.group_size != 0 {
        return Err(BlobError::BadDType {
            id: rec.id,
            what: "unquantized tensor must have group size 0",
        });
    }
    let rows = rec.rows as usize;
    let data = rows * rec.row_bytes();
    if rec.data.len() != data {
        return Err(BlobError::BadTensorSize {
            id: rec.id,
            what: "data",
            expected: data,
            found: rec.data.len(),
        });
    }
    let scales = if quantized {
        rows * rec.groups_per_row() * scale_bytes(rec.scale_type)
    } else {
        0
    };
    if rec.scales.len() != scales {
        return Err(BlobError::BadTensorSize {
            id: rec.id,
            what: "scales",
            expected: scales,
            found: rec.scales.len(),
        });
    }
    Ok(())
}

fn validate_tensors(blob: &Blob<'_>) -> Result<(), BlobError> {
    let c = &blob.config;
    let expected = TensorId::canonical_count(c);
    if blob.tensor_count as usize != expected {
        return Err(BlobError::TensorCount {
            found: blob.tensor_count,
            expected: expected as u32,
        });
    }
    let mut records = TensorRecords::new(blob);
    let mut result = Ok(());
    TensorId::for_each_canonical(c, |id| {
        if result.is_err() {
            return;
        }
        result = match records.next() {
            Some(Ok(rec)) => validate_record(&rec, id, c),
            Some(Err(e)) => Err(e),
            None => Err(BlobError::Malformed {
                what: "tensor table ends early",
            }),
        };
    });
    result?;
    if !records.rest.is_empty() {
        return Err(BlobError::Malformed {
            what: "bytes after the last tensor record",
        });
    }
    Ok(())
}

/// Serializes a blob: postcard document plus CRC32. `tensors` must be in
/// canonical order; the result is checked by [`parse`] before it is returned.
#[cfg(feature = "alloc")]
pub fn encode(
    config: &ModelConfig,
    tokenizer: TokenizerData<'_>,
    tensors: &[TensorRecord<'_>],
) -> Result<alloc::vec::Vec<u8>, EncodeError> {
    use alloc::vec::Vec;
    let mut table = Vec::new();
    for t in tensors {
        let rec = postcard::to_allocvec(t).map_err(|_| EncodeError::Serialize)?;
        table.extend_from_slice(&rec);
    }
    let blob = Blob {
        magic: MAGIC,
        version: FORMAT_VERSION,
        config: *config,
        tokenizer,
        tensor_count: tensors.len() as u32,
        tensors: &table,
    };
    let mut out = postcard::to_allocvec(&blob).map_err(|_| EncodeError::Serialize)?;
    let crc = BLOB_CRC.checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    parse(&out).map_err(EncodeError::Invalid)?;
    Ok(out)
}

/// Why a blob could not be written.
#[cfg(feature = "alloc")]
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EncodeError {
    Serialize,
    /// The written blob does not pass the reader's own checks.
    Invalid(BlobError),
}

#[cfg(feature = "alloc")]
impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EncodeError::Serialize => write!(f, "postcard serialization failed"),
            EncodeError::Invalid(e) => write!(f, "the exported blob would not load: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EncodeError {}
