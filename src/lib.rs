//! Cross-crate integration tests of thinkling live in `tests/*.rs`; this
//! library is empty and exists only so the root package can hold them.
