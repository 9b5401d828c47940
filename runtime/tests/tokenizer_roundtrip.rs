//! Byte-level BPE: encode then decode gives back any input exactly, and
//! digits are always tokens of their own.

use proptest::prelude::*;
use runtime::format::{special, TokenizerData};
use runtime::testing;
use runtime::tokenizer::Tokenizer;

/// The test tokenizer over a vocab of 512 (`tables` from
/// [`testing::test_merges`]).
fn tokenizer((merges, merge_index): &(Vec<u8>, Vec<u8>)) -> Tokenizer<'_> {
    Tokenizer::new(
        TokenizerData::ByteBpe {
            merges,
            merge_index,
        },
        512,
    )
}

fn decode_all(t: &Tokenizer<'_>, ids: &[u32]) -> Vec<u8> {
    let mut out = vec![];
    let mut prev = None;
    for id in ids {
        t.decode(prev, *id, &mut |b| out.extend_from_slice(b));
        prev = Some(*id);
    }
    out
}

fn check(bytes: &[u8]) {
    let tables = testing::test_merges(512);
    let t = tokenizer(&tables);
    let mut ids = vec![0u32; bytes.len() + 1];
    let n = t.encode(bytes, &mut ids).unwrap();
    assert_eq!(decode_all(&t, &ids[..n]), bytes);
    for (id, piece) in ids[..n].iter().map(|id| (*id, decode_all(&t, &[*id]))) {
        assert!(
            id >= special::FIRST_BYTE,
            "text never encodes to a special token"
        );
        if piece.iter().any(u8::is_ascii_digit) {
            assert_eq!(piece.len(), 1, "digit merged into {piece:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn strings_round_trip(s in "\\PC*") {
        check(s.as_bytes());
    }
    #[test]
    fn byte_strings_round_trip(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        check(&b);
    }
    #[test]
    fn english_with_numbers_round_trips(s in "( the| and| an|in|on|er|[0-9]{1,4}|[a-z]{1,6}|[ .,+=\n])*") {
        check(s.as_bytes());
    }
}

#[test]
fn merges_apply() {
    let tables = testing::test_merges(512);
    let t = tokenizer(&tables);
    let mut ids = [0u32; 16];
    let n = t.encode(b"the 12", &mut ids).unwrap();
    assert_eq!(n, 4, "{:?}", &ids[..n]); // "the", " ", "1", "2"
    assert!(ids[0] >= special::FIRST_MERGE);
}
