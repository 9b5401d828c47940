//! The llama2.c importer: `model.bin` and `tokenizer.bin` parsing, and a
//! model that parses is exported to a blob (f32 or q8) and run for a few
//! tokens. The input is `split (2 bytes LE) · model.bin · tokenizer.bin`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use thinkling_fuzz::{run_blob, Counting};

#[global_allocator]
static A: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let split = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
    let (model, tok) = data[2..].split_at(split);
    let vocab = export::llama2c::parse_tokenizer(tok, 1 + (split % 512));
    let Ok(checkpoint) = export::llama2c::parse_model(model) else {
        return;
    };
    // Keep the export small: the fuzzer looks for parser bugs, not big models.
    let c = checkpoint.config;
    if (c.vocab_size as u64) * (c.dim as u64) > 1 << 16 {
        return;
    }
    let vocab = export::llama2c::parse_tokenizer(tok, c.vocab_size as usize)
        .ok()
        .or(vocab.ok());
    let l = export::llama2c::Llama2c {
        checkpoint,
        vocab: vocab.filter(|v| v.pieces.len() == c.vocab_size as usize),
    };
    // One weight type an input, picked by the length's parity: exporting and
    // running both doubled the cost of an execution for no new parser path.
    let quant = if data.len() % 2 == 0 {
        export::Quant::F32
    } else {
        export::Quant::Q8
    };
    if let Ok((blob, _)) = l.build_blob(&export::ExportOptions::with_quant(quant)) {
        run_blob(&blob, &[]);
    }
});
