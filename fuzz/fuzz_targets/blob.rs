//! Blob load → memory plan → session → a few generated tokens. The input is
//! a blob; its last four bytes are replaced by the CRC of the rest so that
//! mutations reach the decoder and the validation. The first bytes also
//! steer the session (context, KV type, batch, sampler).
#![no_main]
use libfuzzer_sys::fuzz_target;
use thinkling_fuzz::{fix_crc, run_blob, Counting};

#[global_allocator]
static A: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    let mut blob = data.to_vec();
    fix_crc(&mut blob);
    let knobs: Vec<u8> = data.iter().rev().skip(4).take(8).copied().collect();
    run_blob(&blob, &knobs);
});
