//! Errors of the runtime: every malformed input is a value naming what is
//! wrong ([`BlobError`] for a blob, [`SessionError`] for running one).

use crate::format::TensorId;
use core::fmt;

/// A blob that cannot be run, and why.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BlobError {
    /// Fewer bytes than a header and checksum need.
    TooShort { len: usize },
    /// The first bytes are not `THINKLNG`.
    BadMagic,
    /// Written by another format version.
    UnsupportedVersion { found: u32, supported: u32 },
    /// The bytes changed after export (or the blob is truncated).
    BadChecksum { stored: u32, computed: u32 },
    /// The postcard document does not decode.
    Malformed { what: &'static str },
    /// Bytes left between the document and its checksum.
    TrailingBytes { count: usize },
    /// The config is inconsistent (zero sizes, heads not dividing dim, ...).
    BadConfig { what: &'static str },
    /// The config is larger than this build of the runtime supports.
    Unsupported {
        what: &'static str,
        value: u32,
        max: u32,
    },
    /// The tensor table holds the wrong number of tensors.
    TensorCount { found: u32, expected: u32 },
    /// A tensor sits where another was expected.
    UnexpectedTensor { expected: TensorId, found: TensorId },
    /// A tensor's shape differs from the config's.
    BadShape {
        id: TensorId,
        expected: (u32, u32),
        found: (u32, u32),
    },
    /// A tensor's byte or scale count does not match its shape.
    BadTensorSize {
        id: TensorId,
        what: &'static str,
        expected: usize,
        found: usize,
    },
    /// A dtype or group size that is not allowed for this tensor.
    BadDType { id: TensorId, what: &'static str },
    /// The tokenizer tables are inconsistent.
    BadTokenizer { what: &'static str },
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use BlobError::*;
        match self {
            TooShort { len } => write!(f, "blob too short ({len} bytes): not a thinkling model"),
            BadMagic => write!(f, "not a thinkling model blob (bad magic)"),
            UnsupportedVersion { found, supported } => write!(
                f,
                "blob format version {found} is not supported (this runtime reads version {supported})"
            ),
            BadChecksum { stored, computed } => write!(
                f,
                "blob checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the file is corrupt or truncated"
            ),
            Malformed { what } => write!(f, "malformed blob: {what}"),
            TrailingBytes { count } => write!(f, "malformed blob: {count} unexpected trailing bytes"),
            BadConfig { what } => write!(f, "invalid model config: {what}"),
            Unsupported { what, value, max } => {
                write!(f, "unsupported model: {what} is {value}, this runtime supports at most {max}")
            }
            TensorCount { found, expected } => {
                write!(f, "blob holds {found} tensors, the config needs {expected}")
            }
            UnexpectedTensor { expected, found } => write!(
                f,
                "expected tensor {:?} (layer {}, expert {}), found {:?} (layer {}, expert {})",
                expected.kind, expected.layer, expected.expert, found.kind, found.layer, found.expert
            ),
            BadShape { id, expected, found } => write!(
                f,
                "tensor {:?} (layer {}, expert {}) has shape {}x{}, the config needs {}x{}",
                id.kind, id.layer, id.expert, found.0, found.1, expected.0, expected.1
            ),
            BadTensorSize { id, what, expected, found } => write!(
                f,
                "tensor {:?} (layer {}, expert {}): {what} is {found} bytes, its shape needs {expected}",
                id.kind, id.layer, id.expert
            ),
            BadDType { id, what } => write!(
                f,
                "tensor {:?} (layer {}, expert {}): {what}",
                id.kind, id.layer, id.expert
            ),
            BadTokenizer { what } => write!(f, "invalid tokenizer: {what}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for BlobError {}

/// Why a session cannot be created or run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionError {
    /// A context of zero positions.
    ZeroContext,
    /// The context exceeds what the model was trained for.
    ContextTooLong { context: usize, max: usize },
    /// The arena is smaller than [`memory::plan`] says.
    ArenaTooSmall { needed: usize, available: usize },
    /// A token id outside the vocabulary.
    TokenOutOfRange { token: u32, vocab: u32 },
    /// Every position of the context is used.
    ContextFull { context: usize },
    /// `prefill` with no tokens.
    EmptyInput,
    /// `forward_batch` with more tokens than the session was made for
    /// ([`Session::with_batch`]).
    BatchTooLarge { tokens: usize, capacity: usize },
    /// A broken internal invariant: buffers, tensors or the cache do not fit
    /// together. The session sizes everything from the validated config, so
    /// this is a bug of the engine, reported instead of a wrong answer.
    Invariant { what: &'static str },
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::ZeroContext => {
                write!(f, "a session needs a context of at least one position")
            }
            SessionError::ContextTooLong { context, max } => {
                write!(
                    f,
                    "context of {context} positions exceeds the model's maximum of {max}"
                )
            }
            SessionError::ArenaTooSmall { needed, available } => {
                write!(
                    f,
                    "session arena too small: needs {needed} bytes, got {available}"
                )
            }
            SessionError::TokenOutOfRange { token, vocab } => {
                write!(
                    f,
                    "token id {token} is outside the vocabulary of {vocab} tokens"
                )
            }
            SessionError::ContextFull { context } => {
                write!(f, "context full: all {context} positions are used")
            }
            SessionError::EmptyInput => write!(f, "no tokens to run"),
            SessionError::BatchTooLarge { tokens, capacity } => write!(
                f,
                "a batch of {tokens} tokens exceeds the session's batch capacity of {capacity}"
            ),
            SessionError::Invariant { what } => {
                write!(f, "internal inconsistency of the engine: {what}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SessionError {}

impl From<crate::kernels::Mismatch> for SessionError {
    fn from(m: crate::kernels::Mismatch) -> Self {
        SessionError::Invariant { what: m.0 }
    }
}
