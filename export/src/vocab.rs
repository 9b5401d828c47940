//! The vocabularies a blob can carry, shared by the blob builder
//! (`quantize`) and the llama2.c import (`llama2c`).

/// The tokenizer to embed in a blob.
#[derive(Clone, Copy, Debug)]
pub enum Vocab<'a> {
    /// thinkling's byte-level BPE merges, in rank order.
    ByteBpe(&'a [(u32, u32)]),
    /// A llama2.c piece vocabulary.
    Pieces(&'a PieceVocab),
    /// Token ids only.
    None,
}

/// A sentencepiece vocabulary from llama2.c's `tokenizer.bin`.
#[derive(Clone, Debug, PartialEq)]
pub struct PieceVocab {
    pub max_token_length: u32,
    pub pieces: Vec<Vec<u8>>,
    pub scores: Vec<f32>,
}
