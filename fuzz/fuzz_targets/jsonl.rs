//! The JSONL / GSM8K line parser of user data.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static A: thinkling_fuzz::Counting = thinkling_fuzz::Counting;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(problems) = tasks::parse_jsonl(&text, "fuzz.jsonl") {
        for p in &problems {
            let _ = tasks::data::strip_calculator_notes(&p.answer);
        }
    }
    let _ = tasks::data::strip_calculator_notes(&text);
});
