//! Checkpoint → quantized blob.
