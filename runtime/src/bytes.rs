//! Slices that cannot panic: little-endian reads from byte-aligned blob
//! slices (a short slice reads as zeros: callers validated lengths up front;
//! this only keeps a bad length from becoming a panic), and prefixes whose
//! length the caller has proven (checked in debug builds).

#[inline(always)]
pub(crate) fn arr4(b: &[u8]) -> [u8; 4] {
    b.get(..4).and_then(|s| s.try_into().ok()).unwrap_or([0; 4])
}

#[inline(always)]
pub(crate) fn arr2(b: &[u8]) -> [u8; 2] {
    b.get(..2).and_then(|s| s.try_into().ok()).unwrap_or([0; 2])
}

/// The 4 bytes at `at` (zeros past the end, as [`arr4`]).
#[inline(always)]
pub(crate) fn arr4_at(b: &[u8], at: usize) -> [u8; 4] {
    b.get(at..at.saturating_add(4))
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0; 4])
}

/// `s[..n]` where the caller has proven `n <= s.len()`: checked in debug
/// builds; never a panic.
#[inline(always)]
pub(crate) fn prefix<T>(s: &[T], n: usize) -> &[T] {
    debug_assert!(n <= s.len(), "prefix of {n} of a slice of {}", s.len());
    s.split_at(n.min(s.len())).0
}

/// [`prefix`] of a mutable slice.
#[inline(always)]
pub(crate) fn prefix_mut<T>(s: &mut [T], n: usize) -> &mut [T] {
    debug_assert!(n <= s.len(), "prefix of {n} of a slice of {}", s.len());
    let n = n.min(s.len());
    s.split_at_mut(n).0
}

/// `s[n..]` where the caller has proven `n <= s.len()` (as [`prefix`]).
#[inline(always)]
pub(crate) fn suffix<T>(s: &[T], n: usize) -> &[T] {
    debug_assert!(n <= s.len(), "suffix from {n} of a slice of {}", s.len());
    s.split_at(n.min(s.len())).1
}

/// [`suffix`] of a mutable slice.
#[inline(always)]
pub(crate) fn suffix_mut<T>(s: &mut [T], n: usize) -> &mut [T] {
    debug_assert!(n <= s.len(), "suffix from {n} of a slice of {}", s.len());
    let n = n.min(s.len());
    s.split_at_mut(n).1
}
