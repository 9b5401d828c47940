//! `tokenizer.json` loading (the trainer's loader and the exporter's), then
//! the loaded merges used by the runtime's tokenizer.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static A: thinkling_fuzz::Counting = thinkling_fuzz::Counting;
use thinkling_fuzz::trainer_bpe::{parse_tokenizer, OwnedTokenizer};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = export::parse_merges(data, "fuzz");
    let Ok(merges) = parse_tokenizer(text, "fuzz") else {
        return;
    };
    let owned = OwnedTokenizer::from_merges(&merges);
    let s = "What is 347 plus 589?<think>7+9=16</think><answer>936</answer> ünï ☕";
    assert_eq!(owned.decode(&owned.encode(s)), s);
});
