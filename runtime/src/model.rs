//! A validated blob with its weights located: a fixed table of tensor views
//! per layer (no allocation), the bytes themselves stay in the blob.
//!
//! RAM: the table holds [`blob::MAX_LAYERS`] [`LayerWeights`]; each tensor
//! view is two slices plus four small fields (32 bytes on a 32-bit MCU, 48 on
//! a 64-bit host), so a whole [`Model`] is about 8 KiB on Cortex-M and 13 KiB
//! on x86-64 (`core::mem::size_of::<Model>()`; the README lists the figure).
//! Mixture-of-experts layers keep only the position of their first expert
//! record and look the chosen experts up per token.

use crate::blob::{self, TensorRecords, MAX_LAYERS};
use crate::error::BlobError;
use crate::format::{Blob, ModelConfig, TensorKind, TensorRecord};
use crate::kernels::TensorView;
use crate::tokenizer::Tokenizer;

/// A dense SwiGLU feed-forward block (one expert of a mixture, or the FFN).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FfnWeights<'a> {
    /// w1 `[hidden, dim]`
    pub gate: TensorView<'a>,
    /// w3 `[hidden, dim]`
    pub up: TensorView<'a>,
    /// w2 `[dim, hidden]`
    pub down: TensorView<'a>,
}

impl FfnWeights<'_> {
    const EMPTY: FfnWeights<'static> = FfnWeights {
        gate: TensorView::EMPTY,
        up: TensorView::EMPTY,
        down: TensorView::EMPTY,
    };
}

/// The feed-forward part of a layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ffn<'a> {
    Dense(FfnWeights<'a>),
    /// `experts` are the encoded tensor records from the first expert's gate
    /// on (gate, up, down per expert, validated by [`blob::parse`]).
    Moe {
        router: TensorView<'a>,
        experts: &'a [u8],
    },
}

/// The weights of one transformer block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerWeights<'a> {
    /// f32 gains `[dim]`
    pub attn_norm: &'a [u8],
    pub wq: TensorView<'a>,
    pub wk: TensorView<'a>,
    pub wv: TensorView<'a>,
    pub wo: TensorView<'a>,
    /// f32 gains `[dim]`
    pub ffn_norm: &'a [u8],
    pub ffn: Ffn<'a>,
}

impl LayerWeights<'_> {
    const EMPTY: LayerWeights<'static> = LayerWeights {
        attn_norm: &[],
        wq: TensorView::EMPTY,
        wk: TensorView::EMPTY,
        wv: TensorView::EMPTY,
        wo: TensorView::EMPTY,
        ffn_norm: &[],
        ffn: Ffn::Dense(FfnWeights::EMPTY),
    };
}

/// A validated blob, weights borrowed in place.
#[derive(Clone, Debug)]
pub struct Model<'a> {
    config: ModelConfig,
    tokenizer: Tokenizer<'a>,
    embedding: TensorView<'a>,
    final_norm: &'a [u8],
    /// The LM head: the embedding itself when tied.
    output: TensorView<'a>,
    layers: [LayerWeights<'a>; MAX_LAYERS as usize],
    blob_len: usize,
}

impl<'a> Model<'a> {
    /// Parses and validates `bytes` (see [`blob::parse`]) and locates every
    /// tensor. No weight byte is copied.
    pub fn from_blob(bytes: &'a [u8]) -> Result<Model<'a>, BlobError> {
        let blob = blob::parse(bytes)?;
        Self::from_parsed(&blob, bytes.len())
    }

    fn from_parsed(blob: &Blob<'a>, blob_len: usize) -> Result<Model<'a>, BlobError> {
        let config = blob.config;
        let mut model = Model {
            config,
            tokenizer: Tokenizer::new(blob.tokenizer, config.vocab_size),
            embedding: TensorView::EMPTY,
            final_norm: &[],
            output: TensorView::EMPTY,
            layers: [LayerWeights::EMPTY; MAX_LAYERS as usize],
            blob_len,
        };
        let malformed = BlobError::Malformed {
            what: "tensor table changed after validation",
        };
        let mut records = TensorRecords::new(blob);
        // The position (in `blob.tensors`) of the record `records` yields next.
        let offset_of = |r: &TensorRecords<'a>| blob.tensors.len() - r.remaining_bytes().len();
        let next = |records: &mut TensorRecords<'a>| -> Result<TensorRecord<'a>, BlobError> {
            records.next().unwrap_or(Err(malformed))
        };
        model.embedding = TensorView::from_record(&next(&mut records)?);
        for l in 0..config.n_layers {
            let attn_norm = next(&mut records)?.data;
            let wq = TensorView::from_record(&next(&mut records)?);
            let wk = TensorView::from_record(&next(&mut records)?);
            let wv = TensorView::from_record(&next(&mut records)?);
            let wo = TensorView::from_record(&next(&mut records)?);
            let ffn_norm = next(&mut records)?.data;
            let ffn = if config.is_moe_layer(l) {
                let router = TensorView::from_record(&next(&mut records)?);
                let start = offset_of(&records);
                let n_experts = config.moe.map_or(0, |m| m.n_experts);
                for _ in 0..n_experts * 3 {
                    next(&mut records)?;
                }
                let end = offset_of(&records);
                let experts = blob.tensors.get(start..end).ok_or(malformed)?;
                Ffn::Moe { router, experts }
            } else {
                let gate = TensorView::from_record(&next(&mut records)?);
                let up = TensorView::from_record(&next(&mut records)?);
                let down = TensorView::from_record(&next(&mut records)?);
                Ffn::Dense(FfnWeights { gate, up, down })
            };
            let slot = model.layers.get_mut(l as usize).ok_or(malformed)?;
            *slot = LayerWeights {
                attn_norm,
                wq,
                wk,
                wv,
                wo,
                ffn_norm,
                ffn,
            };
        }
        model.final_norm = next(&mut records)?.data;
        model.output = if config.tied_embeddings {
            model.embedding
        } else {
            let rec = next(&mut records)?;
            if rec.id.kind != TensorKind::Output {
                return Err(malformed);
            }
            TensorView::from_record(&rec)
        };
        Ok(model)
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn tokenizer(&self) -> &Tokenizer<'a> {
        &self.tokenizer
    }

    /// Size of the blob the model reads.
    pub fn blob_bytes(&self) -> usize {
        self.blob_len
    }

    pub fn embedding(&self) -> &TensorView<'a> {
        &self.embedding
    }

    /// The LM head (the embedding when tied).
    pub fn output(&self) -> &TensorView<'a> {
        &self.output
    }

    pub fn final_norm(&self) -> &'a [u8] {
        self.final_norm
    }

    /// Weights of layer `l` (`None` past the last layer).
    pub fn layer(&self, l: usize) -> Option<&LayerWeights<'a>> {
        self.layers.get(l..self.config.n_layers as usize)?.first()
    }

    /// Expert `e` of a mixture-of-experts layer's record bytes, read by
    /// walking the records (three per expert) from the first.
    pub fn expert(experts: &'a [u8], e: usize) -> Option<FfnWeights<'a>> {
        let mut rest = experts;
        let take = |rest: &mut &'a [u8]| -> Option<TensorView<'a>> {
            let (rec, tail) = postcard::take_from_bytes::<TensorRecord<'a>>(rest).ok()?;
            *rest = tail;
            Some(TensorView::from_record(&rec))
        };
        for _ in 0..e * 3 {
            take(&mut rest)?;
        }
        Some(FfnWeights {
            gate: take(&mut rest)?,
            up: take(&mut rest)?,
            down: take(&mut rest)?,
        })
    }
}
