//! llama2.c's tokenizer: sentencepiece pieces with scores, encoded by greedy
//! merging of the best-scoring adjacent pair, with `<0xXX>` byte fallback.
//!
//! This follows `encode`/`decode` of llama2.c's `run.c` token for token, but
//! reads the tables in place from the blob and needs no allocation: pieces
//! are looked up by binary search over the `sorted` index, comparing against
//! the two halves of a candidate pair directly instead of concatenating them
//! into a scratch string.

use super::TooManyTokens;
use core::cmp::Ordering;

pub(super) struct Pieces<'a> {
    pub bytes: &'a [u8],
    pub offsets: &'a [u8],
    pub scores: &'a [u8],
    pub sorted: &'a [u8],
}

/// `<unk>` in sentencepiece vocabularies; stands in for a byte-fallback id the
/// vocabulary is too small to have.
const UNK: u32 = 0;
/// Byte `b` falls back to piece `b + 3` (after `<unk>`, `<s>`, `</s>`).
const BYTE_OFFSET: u32 = 3;
/// llama2.c's bos id: the piece after it loses its leading space on decode.
const BOS: u32 = 1;
/// `run.c` starts its search at this score and merges only pairs scoring above it.
const NO_SCORE: f32 = -1e10;

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    let start = i.checked_mul(4)?;
    let s: [u8; 4] = b.get(start..start.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(s))
}

/// Orders `piece` against the concatenation `a ++ b` without building it.
fn cmp_concat(piece: &[u8], a: &[u8], b: &[u8]) -> Ordering {
    piece.iter().cmp(a.iter().chain(b.iter()))
}

impl<'a> Pieces<'a> {
    fn len(&self) -> usize {
        (self.offsets.len() / 4).saturating_sub(1)
    }

    fn piece(&self, id: u32) -> Option<&'a [u8]> {
        let i = id as usize;
        let (a, b) = (
            u32_at(self.offsets, i)? as usize,
            u32_at(self.offsets, i.checked_add(1)?)? as usize,
        );
        self.bytes.get(a..b)
    }

    fn score(&self, id: u32) -> f32 {
        u32_at(self.scores, id as usize).map_or(f32::NAN, f32::from_bits)
    }

    /// Id of the piece equal to `a ++ b`, by binary search over `sorted`.
    fn lookup(&self, a: &[u8], b: &[u8]) -> Option<u32> {
        let (mut lo, mut hi) = (0usize, (self.sorted.len() / 4).min(self.len()));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let id = u32_at(self.sorted, mid)?;
            let p = self.piece(id)?;
            match cmp_concat(p, a, b) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Some(id),
            }
        }
        None
    }

    fn byte_id(&self, b: u8) -> u32 {
        let id = b as u32 + BYTE_OFFSET;
        if (id as usize) < self.len() {
            id
        } else {
            UNK
        }
    }
}

/// Encodes like `run.c` (without `<s>`/`</s>`, which the caller adds): a dummy
/// prefix space, one piece per UTF-8 character (or its bytes as `<0xXX>`
/// pieces), then repeatedly the best-scoring adjacent pair whose
/// concatenation is a piece is merged, leftmost first on equal scores.
///
/// `out` must hold the tokens *before* merging (characters + 1); the result
/// is never longer.
pub(super) fn encode(p: &Pieces<'_>, text: &[u8], out: &mut [u32]) -> Result<usize, TooManyTokens> {
    let capacity = out.len();
    let mut n = 0usize;
    let mut push = |out: &mut [u32], id: u32| -> Result<(), TooManyTokens> {
        let slot = out.get_mut(n).ok_or(TooManyTokens { capacity })?;
        *slot = id;
        n += 1;
        Ok(())
    };
    if text.is_empty() {
        return Ok(0);
    }
    // sentencepiece's add_dummy_prefix: the text is encoded as if it started
    // with a space, so a word is the same piece at the start and mid-text.
    let space = p.lookup(b" ", b"").unwrap_or_else(|| p.byte_id(b' '));
    push(out, space)?;
    let mut i = 0usize;
    while i < text.len() {
        // One UTF-8 character: a byte plus the continuation bytes after it,
        // at most four in all (run.c's rule, also for invalid UTF-8).
        let mut j = i + 1;
        while j < text.len() && j - i < 4 && text.get(j).is_some_and(|b| b & 0xC0 == 0x80) {
            j += 1;
        }
        let ch = crate::bytes::prefix(crate::bytes::suffix(text, i), j - i);
        match p.lookup(ch, b"") {
            Some(id) => push(out, id)?,
            None => {
                for &b in ch {
                    push(out, p.byte_id(b))?;
                }
            }
        }
        i = j;
    }
    let ids = crate::bytes::prefix_mut(out, n);
    Ok(merge(p, ids))
}

/// Greedy merging in place; returns the new length.
fn merge(p: &Pieces<'_>, ids: &mut [u32]) -> usize {
    let mut len = ids.len();
    loop {
        let mut best: Option<(usize, u32)> = None;
        let mut best_score = NO_SCORE;
        for i in 0..len.saturating_sub(1) {
            let (Some(&l), Some(&r)) = (ids.get(i), ids.get(i + 1)) else {
                break;
            };
            let (Some(a), Some(b)) = (p.piece(l), p.piece(r)) else {
                continue;
            };
            if let Some(id) = p.lookup(a, b) {
                let s = p.score(id);
                if s > best_score {
                    best_score = s;
                    best = Some((i, id));
                }
            }
        }
        let Some((i, id)) = best else { return len };
        if let Some(slot) = ids.get_mut(i) {
            *slot = id;
        }
        if i + 2 <= len {
            ids.copy_within(i + 2..len, i + 1);
        }
        len -= 1;
    }
}

/// Parses a byte-fallback piece `<0xXX>`.
fn byte_piece(piece: &[u8]) -> Option<u8> {
    match piece {
        [b'<', b'0', b'x', h, l, b'>'] => {
            let hex = |c: u8| (c as char).to_digit(16);
            Some((hex(*h)? * 16 + hex(*l)?) as u8)
        }
        _ => None,
    }
}

/// Bytes of token `id` like `run.c`'s `decode`: the leading space of the piece
/// right after `<s>` is dropped (it is the dummy prefix), and `<0xXX>` pieces
/// stand for their raw byte.
pub(super) fn decode(p: &Pieces<'_>, prev: Option<u32>, id: u32, emit: &mut dyn FnMut(&[u8])) {
    let Some(mut piece) = p.piece(id) else { return };
    if prev == Some(BOS) {
        if let [b' ', rest @ ..] = piece {
            piece = rest;
        }
    }
    match byte_piece(piece) {
        Some(b) => emit(&[b]),
        None => emit(piece),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    struct Owned {
        bytes: Vec<u8>,
        offsets: Vec<u8>,
        scores: Vec<u8>,
        sorted: Vec<u8>,
    }

    impl Owned {
        fn new(pieces: &[(&[u8], f32)]) -> Self {
            let mut bytes = Vec::new();
            let mut offsets = 0u32.to_le_bytes().to_vec();
            for (p, _) in pieces {
                bytes.extend_from_slice(p);
                offsets.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            }
            let scores = pieces.iter().flat_map(|(_, s)| s.to_le_bytes()).collect();
            let mut ids: Vec<u32> = (0..pieces.len() as u32).collect();
            ids.sort_by(|&a, &b| {
                pieces[a as usize]
                    .0
                    .cmp(pieces[b as usize].0)
                    .then(a.cmp(&b))
            });
            let sorted = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
            Self {
                bytes,
                offsets,
                scores,
                sorted,
            }
        }
        fn view(&self) -> Pieces<'_> {
            Pieces {
                bytes: &self.bytes,
                offsets: &self.offsets,
                scores: &self.scores,
                sorted: &self.sorted,
            }
        }
    }

    /// `<unk> <s> </s>`, 256 byte pieces, then a few merges with scores.
    fn vocab() -> Owned {
        let mut names: Vec<Vec<u8>> =
            [b"<unk>".to_vec(), b"\n<s>\n".to_vec(), b"\n</s>\n".to_vec()].to_vec();
        for b in 0..=255u8 {
            names.push(std::format!("<0x{b:02X}>").into_bytes());
        }
        let merges: [(&[u8], f32); 9] = [
            (b" ", -1.0),
            (b"a", -2.0),
            (b"b", -3.0),
            (b"c", -4.0),
            (b" a", -5.0),
            (b"ab", -1.5),
            (b" ab", -0.5),
            (b"\xc3\xa9", -6.0),
            (b"bc", -1.0),
        ];
        let mut all: Vec<(&[u8], f32)> = names.iter().map(|n| (n.as_slice(), 0.0)).collect();
        all.extend_from_slice(&merges);
        Owned::new(&all)
    }

    fn enc(o: &Owned, text: &[u8]) -> Vec<u32> {
        let mut out = [0u32; 64];
        let n = encode(&o.view(), text, &mut out).unwrap();
        out[..n].to_vec()
    }

    fn dec(o: &Owned, ids: &[u32]) -> Vec<u8> {
        let mut s = Vec::new();
        let mut prev = Some(BOS);
        for &id in ids {
            decode(&o.view(), prev, id, &mut |b| s.extend_from_slice(b));
            prev = Some(id);
        }
        s
    }

    #[test]
    fn merges_best_score_first() {
        let o = vocab();
        // ids: ' '=259 a=260 b=261 c=262 ' a'=263 ab=264 ' ab'=265 é=266 bc=267
        // " abc": [' ', a, b, c]; best pair is bc (-1.0) over ab (-1.5) and ' a' (-5):
        // [' ', a, bc], then ' a' -> [' a', bc]; ' abc' and ' a'+'bc' are not pieces.
        assert_eq!(enc(&o, b"abc"), [263, 267]);
        // " ab": ab (-1.5) beats ' a' (-5) -> [' ', ab] -> ' ab'.
        assert_eq!(enc(&o, b"ab"), [265]);
        assert_eq!(enc(&o, b""), [] as [u32; 0]);
    }

    #[test]
    fn utf8_characters_and_byte_fallback() {
        let o = vocab();
        // é is a piece; ü (c3 bc) is not and falls back to its two bytes.
        assert_eq!(enc(&o, "é".as_bytes()), [259, 266]);
        assert_eq!(enc(&o, "ü".as_bytes()), [259, 0xc3 + 3, 0xbc + 3]);
        assert_eq!(dec(&o, &enc(&o, "ü".as_bytes())), "ü".as_bytes());
    }

    #[test]
    fn decode_strips_dummy_space_after_bos_only() {
        let o = vocab();
        let ids = enc(&o, b"ab ab");
        assert_eq!(dec(&o, &ids), b"ab ab");
        let mut s = Vec::new();
        decode(&o.view(), Some(260), 265, &mut |b| s.extend_from_slice(b));
        assert_eq!(s, b" ab");
    }

    #[test]
    fn too_small_buffer_is_an_error() {
        let o = vocab();
        let mut out = [0u32; 2];
        assert_eq!(
            encode(&o.view(), b"abc", &mut out),
            Err(TooManyTokens { capacity: 2 })
        );
    }

    #[test]
    fn empty_tables_never_panic() {
        let p = Pieces {
            bytes: &[],
            offsets: &[],
            scores: &[],
            sorted: &[],
        };
        let mut out = [0u32; 8];
        assert_eq!(encode(&p, b"hi", &mut out), Ok(3));
        assert_eq!(out[..3], [0, 0, 0]);
        decode(&p, None, 5, &mut |_| panic!("no bytes expected"));
    }

    proptest::proptest! {
        #[test]
        fn round_trip(text in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            let o = vocab();
            let ids = enc(&o, &text);
            proptest::prop_assert!(ids.len() <= text.len() + 1);
            proptest::prop_assert_eq!(dec(&o, &ids), text);
        }
    }
}
