//! Little-endian reads from byte-aligned blob slices that cannot panic: a
//! short slice reads as zeros (callers validated lengths up front; this only
//! keeps a bad length from becoming a panic).

#[inline(always)]
pub(crate) fn arr4(b: &[u8]) -> [u8; 4] {
    b.get(..4).and_then(|s| s.try_into().ok()).unwrap_or([0; 4])
}

#[inline(always)]
pub(crate) fn arr2(b: &[u8]) -> [u8; 2] {
    b.get(..2).and_then(|s| s.try_into().ok()).unwrap_or([0; 2])
}
