//! Checkpoint → blob bytes, with the error each tensor's storage introduces.

use crate::checkpoint;
use crate::report::{QuantReport, TensorGroup, TensorReport};
use crate::vocab::Vocab;
use crate::{glob_match, Checkpoint, ExportOptions, Quant};
use anyhow::{bail, Context, Result};
use runtime::format::{row_bytes, scale_bytes, TensorId, TensorKind, TensorRecord, TokenizerData};
use runtime::quant::{dequantize_row, quantize_row};
use runtime::{DType, ScaleType};

/// Quantizes a checkpoint into a blob with its BPE tokenizer. The bytes depend
/// only on the checkpoint and the options (no maps with random order, no
/// timestamps), so the same inputs always give the same blob.
pub fn build_blob(ckpt: &Checkpoint, opts: &ExportOptions) -> Result<(Vec<u8>, QuantReport)> {
    build_blob_with_tokenizer(ckpt, Vocab::ByteBpe(&ckpt.merges), opts)
}

/// [`build_blob`] with any tokenizer (llama2.c pieces, or none).
pub fn build_blob_with_tokenizer(
    ckpt: &Checkpoint,
    vocab: Vocab<'_>,
    opts: &ExportOptions,
) -> Result<(Vec<u8>, QuantReport)> {
    checkpoint::check(ckpt)?;
    if opts.group_size == 0 {
        bail!("group size must be positive");
    }
    if opts.group_size > 1 << 16 {
        bail!(
            "group size {} is larger than the runtime allows (65536)",
            opts.group_size
        );
    }
    let uses_q4 = opts.quant == Quant::Q4 || opts.embedding_quant == Some(Quant::Q4);
    if uses_q4 && opts.group_size % 2 != 0 {
        bail!(
            "q4 needs an even group size (two values share a byte), got {}",
            opts.group_size
        );
    }
    let c = &ckpt.config;

    struct Stored {
        id: TensorId,
        dtype: DType,
        rows: u32,
        cols: u32,
        group: u32,
        scale_type: ScaleType,
        data: Vec<u8>,
        scales: Vec<u8>,
    }
    let mut stored = Vec::new();
    let mut reports = Vec::new();
    for (id, name) in checkpoint::expected_tensors(c) {
        let (rows, cols) = id.shape(c);
        let (_, values) = ckpt
            .tensors
            .get(&name)
            .with_context(|| format!("tensor {name} is missing"))?;
        let dtype = choose_dtype(&id, &name, opts);
        let quantized = matches!(dtype, DType::Q8 | DType::Q4);
        let group = if quantized { opts.group_size } else { 0 };
        // Unquantized tensors carry no scales; a fixed scale type keeps their
        // records independent of the option.
        let scale_type = if quantized {
            opts.scale_type
        } else {
            ScaleType::F32
        };
        let (r, k) = (rows as usize, cols as usize);
        let rb = row_bytes(dtype, k);
        let gpr = if quantized { k.div_ceil(group) } else { 0 };
        let sb = gpr * scale_bytes(scale_type);
        let mut data = vec![0u8; r * rb];
        let mut scales = vec![0u8; r * sb];
        let mut back = vec![0f32; k];
        let (mut max_err, mut sum_sq_err, mut sum_sq) = (0f64, 0f64, 0f64);
        for row in 0..r {
            let x = &values[row * k..(row + 1) * k];
            let d = &mut data[row * rb..(row + 1) * rb];
            let s = &mut scales[row * sb..(row + 1) * sb];
            quantize_row(x, dtype, group.max(1), scale_type, d, s);
            // Measure the error through the reader's own dequantizer, so the
            // report describes exactly what the engine will compute with.
            dequantize_row(d, s, dtype, group.max(1), scale_type, &mut back);
            for (a, b) in x.iter().zip(&back) {
                let e = (*a as f64 - *b as f64).abs();
                max_err = max_err.max(e);
                sum_sq_err += e * e;
                sum_sq += (*a as f64) * (*a as f64);
            }
        }
        let n = (r * k).max(1) as f64;
        reports.push(TensorReport {
            name: name.clone(),
            group: TensorGroup::of(id.kind),
            dtype: dtype_name(dtype).to_string(),
            shape: [r, k],
            params: r * k,
            bytes: data.len() + scales.len(),
            max_abs_err: max_err as f32,
            rms_err: (sum_sq_err / n).sqrt() as f32,
            rel_rms_err: if sum_sq > 0.0 {
                (sum_sq_err / sum_sq).sqrt() as f32
            } else {
                0.0
            },
        });
        stored.push(Stored {
            id,
            dtype,
            rows,
            cols,
            group: group as u32,
            scale_type,
            data,
            scales,
        });
    }

    let tok = TokenizerTables::new(vocab, c.vocab_size)?;
    let records: Vec<TensorRecord<'_>> = stored
        .iter()
        .map(|s| TensorRecord {
            id: s.id,
            dtype: s.dtype,
            rows: s.rows,
            cols: s.cols,
            group_size: s.group,
            scale_type: s.scale_type,
            data: &s.data,
            scales: &s.scales,
        })
        .collect();
    let blob =
        runtime::blob::encode(c, tok.data(), &records).map_err(|e| anyhow::anyhow!("{e}"))?;
    let report = QuantReport::new(reports, blob.len(), checkpoint::unused_tensors(ckpt), opts);
    Ok((blob, report))
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::Q8 => "q8",
        DType::Q4 => "q4",
    }
}

fn choose_dtype(id: &TensorId, name: &str, opts: &ExportOptions) -> DType {
    match id.kind {
        // The runtime requires f32 gains, and they are a few hundred bytes.
        TensorKind::AttnNorm | TensorKind::FfnNorm | TensorKind::FinalNorm => return DType::F32,
        // The router is `n_experts × dim` (tiny) and a quantization error that
        // flips its top-k choice swaps a whole FFN: keep it exact.
        TensorKind::Router => return DType::F32,
        _ => {}
    }
    let short = name.strip_suffix(".weight").unwrap_or(name);
    if opts
        .keep_f32
        .iter()
        .any(|p| glob_match(p, name) || glob_match(p, short))
    {
        return DType::F32;
    }
    match id.kind {
        TensorKind::Embedding => opts.embedding_quant.unwrap_or(opts.quant).dtype(),
        _ => opts.quant.dtype(),
    }
}

/// Owned tokenizer tables in the blob's byte layout.
enum TokenizerTables {
    ByteBpe {
        merges: Vec<u8>,
        index: Vec<u8>,
    },
    Pieces {
        bytes: Vec<u8>,
        offsets: Vec<u8>,
        scores: Vec<u8>,
        sorted: Vec<u8>,
    },
    None,
}

impl TokenizerTables {
    fn new(vocab: Vocab<'_>, vocab_size: u32) -> Result<Self> {
        Ok(match vocab {
            Vocab::ByteBpe(m) => {
                let mut merges = Vec::with_capacity(m.len() * 8);
                for &(l, r) in m {
                    merges.extend_from_slice(&l.to_le_bytes());
                    merges.extend_from_slice(&r.to_le_bytes());
                }
                let mut ranks: Vec<u32> = (0..m.len() as u32).collect();
                ranks.sort_by_key(|&r| m[r as usize]);
                if let Some(w) = ranks
                    .windows(2)
                    .find(|w| m[w[0] as usize] == m[w[1] as usize])
                {
                    bail!(
                        "tokenizer merges {} and {} are the same pair {:?}",
                        w[0],
                        w[1],
                        m[w[0] as usize]
                    );
                }
                let index = ranks.iter().flat_map(|r| r.to_le_bytes()).collect();
                TokenizerTables::ByteBpe { merges, index }
            }
            Vocab::Pieces(p) => {
                if p.pieces.len() != vocab_size as usize || p.scores.len() != p.pieces.len() {
                    bail!(
                        "tokenizer has {} pieces and {} scores, the model's vocab is {}",
                        p.pieces.len(),
                        p.scores.len(),
                        vocab_size
                    );
                }
                let mut bytes = Vec::new();
                let mut offsets = Vec::with_capacity((p.pieces.len() + 1) * 4);
                offsets.extend_from_slice(&0u32.to_le_bytes());
                for piece in &p.pieces {
                    bytes.extend_from_slice(piece);
                    offsets.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                }
                let scores = p.scores.iter().flat_map(|s| s.to_le_bytes()).collect();
                let mut ids: Vec<u32> = (0..p.pieces.len() as u32).collect();
                // Stable on equal pieces (lowest id first) so the bytes are deterministic.
                ids.sort_by(|&a, &b| {
                    p.pieces[a as usize]
                        .cmp(&p.pieces[b as usize])
                        .then(a.cmp(&b))
                });
                let sorted = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
                TokenizerTables::Pieces {
                    bytes,
                    offsets,
                    scores,
                    sorted,
                }
            }
            Vocab::None => TokenizerTables::None,
        })
    }

    fn data(&self) -> TokenizerData<'_> {
        match self {
            TokenizerTables::ByteBpe { merges, index } => TokenizerData::ByteBpe {
                merges,
                merge_index: index,
            },
            TokenizerTables::Pieces {
                bytes,
                offsets,
                scores,
                sorted,
            } => TokenizerData::Pieces {
                bytes,
                offsets,
                scores,
                sorted,
            },
            TokenizerTables::None => TokenizerData::None,
        }
    }
}
