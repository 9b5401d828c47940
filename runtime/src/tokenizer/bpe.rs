//! Byte-level BPE with merge ranks, read in place from the blob.

use super::{pretokenize, TooManyTokens};
use crate::format::special;

#[derive(Clone, Copy)]
pub(super) struct Merges<'a> {
    /// `(left, right)` u32 LE pairs in rank order.
    pub merges: &'a [u8],
    /// Ranks (u32 LE) sorted by pair.
    pub index: &'a [u8],
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    let s = b.get(i * 4..i * 4 + 4)?;
    Some(u32::from_le_bytes(crate::bytes::arr4(s)))
}

impl Merges<'_> {
    fn len(&self) -> usize {
        self.index.len() / 4
    }
    fn pair(&self, rank: usize) -> Option<(u32, u32)> {
        Some((
            u32_at(self.merges, rank * 2)?,
            u32_at(self.merges, rank * 2 + 1)?,
        ))
    }
    /// Rank of the merge of `(l, r)`, by binary search: O(log merges).
    fn rank(&self, l: u32, r: u32) -> Option<u32> {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let rank = u32_at(self.index, mid)?;
            let p = self.pair(rank as usize)?;
            match p.cmp(&(l, r)) {
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
                core::cmp::Ordering::Equal => return Some(rank),
            }
        }
        None
    }
}

/// Applies merges inside one chunk held in `ids`; returns its new length.
fn merge_chunk(m: Merges<'_>, ids: &mut [u32]) -> usize {
    let mut len = ids.len();
    loop {
        let mut best: Option<(u32, usize)> = None;
        for (i, pair) in crate::bytes::prefix(ids, len).windows(2).enumerate() {
            if let [l, r] = *pair {
                if let Some(rank) = m.rank(l, r) {
                    if best.is_none_or(|(br, _)| rank < br) {
                        best = Some((rank, i));
                    }
                }
            }
        }
        let Some((rank, i)) = best else { return len };
        if let Some(slot) = ids.get_mut(i) {
            *slot = special::FIRST_MERGE + rank;
        }
        ids.copy_within(i + 2..len, i + 1);
        len -= 1;
    }
}

pub(super) fn encode(m: Merges<'_>, text: &[u8], out: &mut [u32]) -> Result<usize, TooManyTokens> {
    let mut n = 0;
    let capacity = out.len();
    for chunk in pretokenize::chunks(text) {
        let Some(slot) = out.get_mut(n..n + chunk.len()) else {
            // The chunk may still fit after merging: encode it in a scratch.
            let mut scratch = [0u32; pretokenize::MAX_CHUNK];
            let ids = crate::bytes::prefix_mut(&mut scratch, chunk.len());
            for (o, b) in ids.iter_mut().zip(chunk) {
                *o = special::FIRST_BYTE + *b as u32;
            }
            let k = merge_chunk(m, ids);
            let dst = out.get_mut(n..n + k).ok_or(TooManyTokens { capacity })?;
            dst.copy_from_slice(crate::bytes::prefix(ids, k));
            n += k;
            continue;
        };
        for (o, b) in slot.iter_mut().zip(chunk) {
            *o = special::FIRST_BYTE + *b as u32;
        }
        n += merge_chunk(m, slot);
    }
    Ok(n)
}

pub(super) fn decode(m: Merges<'_>, id: u32, emit: &mut dyn FnMut(&[u8])) {
    if id < special::FIRST_BYTE {
        if let Some(name) = special::NAMES.get(id as usize) {
            emit(name.as_bytes());
        }
        return;
    }
    // Expand merges depth-first with an explicit stack: no recursion on a board.
    let mut stack: heapless::Vec<u32, 128> = heapless::Vec::new();
    let _ = stack.push(id);
    while let Some(t) = stack.pop() {
        if t < special::FIRST_MERGE {
            if t >= special::FIRST_BYTE {
                emit(&[(t - special::FIRST_BYTE) as u8]);
            }
            continue;
        }
        let Some((l, r)) = m.pair((t - special::FIRST_MERGE) as usize) else {
            continue;
        };
        if stack.push(r).is_err() || stack.push(l).is_err() {
            return; // deeper than any trained merge tree: stop rather than fail
        }
    }
}
