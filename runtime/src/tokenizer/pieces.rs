//! llama2.c's tokenizer: sentencepiece pieces with scores, encoded by greedy
//! merging of the best-scoring adjacent pair, with `<0xXX>` byte fallback.

use super::TooManyTokens;

pub(super) struct Pieces<'a> {
    pub bytes: &'a [u8],
    pub offsets: &'a [u8],
    pub scores: &'a [u8],
    pub sorted: &'a [u8],
}

pub(super) fn encode(_p: &Pieces<'_>, text: &[u8], out: &mut [u32]) -> Result<usize, TooManyTokens> {
    // Byte fallback only until the piece vocabulary encoder lands.
    if text.len() > out.len() {
        return Err(TooManyTokens { capacity: out.len() });
    }
    for (o, b) in out.iter_mut().zip(text) {
        *o = *b as u32 + 3;
    }
    Ok(text.len())
}

pub(super) fn decode(p: &Pieces<'_>, _prev: Option<u32>, id: u32, emit: &mut dyn FnMut(&[u8])) {
    let i = id as usize;
    let at = |k: usize| p.offsets.get(k * 4..k * 4 + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize);
    if let (Some(a), Some(b)) = (at(i), at(i + 1)) {
        if let Some(s) = p.bytes.get(a..b) {
            emit(s);
        }
    }
}
