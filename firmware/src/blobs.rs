//! The model blobs in flash, embedded at build time (build.rs).

/// 16-byte alignment for the blob in flash and the arena in RAM: the runtime
/// reads f32/f16 tensors in place and carves aligned buffers from the arena.
#[repr(C, align(16))]
pub struct Aligned<T: ?Sized>(pub T);

// `MODEL`: the blob, from THINKLING_MODEL at build time.
include!(concat!(env!("OUT_DIR"), "/model.rs"));
// `DRAFT`: the draft blob of THINKLING_DRAFT_MODEL (empty without one).
include!(concat!(env!("OUT_DIR"), "/draft.rs"));
