//! The runtime's byte-level BPE on arbitrary bytes and arbitrary merge
//! tables. The input is `merge count (1 byte) · merges (u16 pairs) · text`;
//! merge tables the trainer's check accepts are built into the runtime's
//! tables, then the text is encoded and decoded: decode(encode(text)) must
//! give the text back byte for byte, and every id (valid or not) decodes
//! without a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static A: thinkling_fuzz::Counting = thinkling_fuzz::Counting;
use runtime::format::special;
use runtime::tokenizer::Utf8Stream;
use thinkling_fuzz::trainer_bpe::{validate_merges, OwnedTokenizer};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = (n as usize).min(rest.len() / 4);
    let (table, text) = rest.split_at(n * 4);
    let merges: Vec<(u32, u32)> = table
        .chunks_exact(4)
        .map(|c| {
            (
                u16::from_le_bytes([c[0], c[1]]) as u32,
                u16::from_le_bytes([c[2], c[3]]) as u32,
            )
        })
        .collect();
    if validate_merges(&merges).is_err() {
        return;
    }
    let owned = OwnedTokenizer::from_merges(&merges);
    let tok = owned.tokenizer();
    let mut ids = vec![0u32; text.len() + 1];
    let n = tok
        .encode(text, &mut ids)
        .expect("a token per byte is always enough");
    let mut back = Vec::new();
    let mut prev = None;
    for &id in &ids[..n] {
        assert!(
            id >= special::FIRST_BYTE && id < owned.vocab_size,
            "id {id} out of range"
        );
        tok.decode(prev, id, &mut |b| back.extend_from_slice(b));
        prev = Some(id);
    }
    assert_eq!(back, text, "decode(encode(text)) differs");
    // A buffer that is too small is an error, not a panic.
    if n > 0 {
        let mut small = vec![0u32; n - 1];
        assert!(tok.encode(text, &mut small).is_err());
    }
    // Any id, including specials and ids past the vocab, decodes.
    for id in [0, 1, 7, owned.vocab_size, owned.vocab_size + 1, u32::MAX] {
        tok.decode(None, id, &mut |_| {});
    }
    // The streaming UTF-8 decoder on arbitrary bytes.
    let mut s = Utf8Stream::new();
    let mut out = String::new();
    for chunk in text.chunks(3) {
        s.push(chunk, &mut |t| out.push_str(t));
    }
    s.finish(&mut |t| out.push_str(t));
    if let Ok(t) = std::str::from_utf8(text) {
        assert_eq!(out, t);
    }
});
