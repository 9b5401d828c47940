//! Tokenizers a blob can carry: thinkling's byte-level BPE (training side in
//! the trainer), a llama2.c piece vocabulary, or none (token ids only).
//!
//! Encoding writes into a caller's buffer and never fails for lack of a token:
//! every byte has one. Decoding yields each token's raw bytes; [`Utf8Stream`]
//! turns a token stream into text without splitting a character.

mod bpe;
mod pieces;
pub mod pretokenize;
mod utf8;

pub use utf8::Utf8Stream;

use crate::format::{special, TokenizerData};

/// The caller's output buffer is too small for the encoded text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyTokens {
    /// Capacity of the buffer that overflowed.
    pub capacity: usize,
}

impl core::fmt::Display for TooManyTokens {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "text needs more than {} tokens", self.capacity)
    }
}

/// A tokenizer borrowed from a blob (validated by [`crate::blob::parse`]).
#[derive(Clone, Copy, Debug)]
pub struct Tokenizer<'a> {
    data: TokenizerData<'a>,
    vocab_size: u32,
}

impl<'a> Tokenizer<'a> {
    pub fn new(data: TokenizerData<'a>, vocab_size: u32) -> Self {
        Self { data, vocab_size }
    }

    pub fn data(&self) -> &TokenizerData<'a> {
        &self.data
    }

    /// Whether the model speaks thinkling's reasoning format (fixed special ids).
    pub fn has_reasoning_tokens(&self) -> bool {
        matches!(self.data, TokenizerData::ByteBpe { .. })
    }

    /// Id that starts a sequence.
    pub fn bos(&self) -> u32 {
        match self.data {
            TokenizerData::ByteBpe { .. } => special::BOS,
            _ => 1,
        }
    }

    /// Id that ends a sequence.
    pub fn eos(&self) -> u32 {
        match self.data {
            TokenizerData::ByteBpe { .. } => special::EOS,
            _ => 2,
        }
    }

    /// Encodes `text` (any bytes) into `out`; returns the number of ids written.
    /// Special-token texts such as `<think>` are encoded as plain text.
    pub fn encode(&self, text: &[u8], out: &mut [u32]) -> Result<usize, TooManyTokens> {
        match self.data {
            TokenizerData::ByteBpe {
                merges,
                merge_index,
            } => bpe::encode(
                bpe::Merges {
                    merges,
                    index: merge_index,
                },
                text,
                out,
            ),
            TokenizerData::Pieces {
                bytes,
                offsets,
                scores,
                sorted,
            } => pieces::encode(
                &pieces::Pieces {
                    bytes,
                    offsets,
                    scores,
                    sorted,
                },
                text,
                out,
            ),
            TokenizerData::None => {
                // Without a vocabulary, ids are bytes shifted past the three
                // llama2.c control ids (the `<0xXX>` byte-fallback layout).
                if text.len() > out.len() {
                    return Err(TooManyTokens {
                        capacity: out.len(),
                    });
                }
                for (o, b) in out.iter_mut().zip(text) {
                    *o = *b as u32 + 3;
                }
                Ok(text.len())
            }
        }
    }

    /// Calls `emit` with the bytes of token `id`, in order (possibly several
    /// calls). `prev` is the token before it (llama2.c drops the leading space
    /// of the first piece after `<bos>`). Unknown ids produce no bytes.
    pub fn decode(&self, prev: Option<u32>, id: u32, emit: &mut dyn FnMut(&[u8])) {
        if id >= self.vocab_size {
            return;
        }
        match self.data {
            TokenizerData::ByteBpe {
                merges,
                merge_index,
            } => bpe::decode(
                bpe::Merges {
                    merges,
                    index: merge_index,
                },
                id,
                emit,
            ),
            TokenizerData::Pieces {
                bytes,
                offsets,
                scores,
                sorted,
            } => pieces::decode(
                &pieces::Pieces {
                    bytes,
                    offsets,
                    scores,
                    sorted,
                },
                prev,
                id,
                emit,
            ),
            TokenizerData::None => {
                if (3..259).contains(&id) {
                    emit(&[(id - 3) as u8]);
                }
            }
        }
    }

    /// Text of a special token, if `id` is one.
    pub fn special_name(&self, id: u32) -> Option<&'static str> {
        match self.data {
            TokenizerData::ByteBpe { .. } => special::NAMES.get(id as usize).copied(),
            _ => None,
        }
    }
}
