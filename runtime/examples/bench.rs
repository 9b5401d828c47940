//! Single-thread speed and memory of the engine.
//!
//! ```text
//! cargo run --release -p runtime --features std --example bench -- MODEL.bin [--json] [--tokens N] [--kv f32|f16|q8]
//! cargo run --release -p runtime --features std --example bench -- --shape tiny|small --dtype f32|f16|q8|q4 [--group G]
//! ```
//! Prefill runs N prompt tokens from position 0 (LM head on the last only);
//! decode runs N tokens one at a time, also from position 0, with logits for
//! each (generation speed, the llama2.c convention). Both repeat for at least
//! a second (or `--reps N` times, for instruction counts under
//! `valgrind --tool=callgrind`); the first repetition is a warm-up.

use runtime::{plan, testing, DType, KvDType, Model, Session};
use std::time::{Duration, Instant};

fn usage() -> ! {
    eprintln!(
        "usage: bench MODEL.bin [--json] [--tokens N] [--kv f32|f16|q8] [--reps N]\n       bench --shape tiny|small --dtype f32|f16|q8|q4 [--group G] [--json] [--tokens N] [--kv f32|f16|q8] [--reps N]"
    );
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut path, mut shape, mut dtype, mut group) = (None, None, DType::F32, 32u32);
    let (mut json, mut tokens, mut kv, mut fixed_reps) = (false, None, KvDType::F32, None);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--json" => json = true,
            "--tokens" => tokens = Some(value().parse::<usize>().unwrap_or_else(|_| usage())),
            "--reps" => {
                fixed_reps = Some(value().parse::<u32>().unwrap_or_else(|_| usage()).max(1))
            }
            "--shape" => shape = Some(value()),
            "--group" => group = value().parse().unwrap_or_else(|_| usage()),
            "--kv" => kv = KvDType::from_name(&value()).unwrap_or_else(|| usage()),
            "--dtype" => {
                dtype = match value().as_str() {
                    "f32" => DType::F32,
                    "f16" => DType::F16,
                    "q8" => DType::Q8,
                    "q4" => DType::Q4,
                    _ => usage(),
                }
            }
            s if !s.starts_with("--") && path.is_none() => path = Some(s.to_string()),
            _ => usage(),
        }
    }
    let (blob, label) = match (&path, &shape) {
        (Some(p), None) => match std::fs::read(p) {
            Ok(b) => (b, p.clone()),
            Err(e) => {
                eprintln!("cannot read {p}: {e}");
                std::process::exit(1)
            }
        },
        (None, Some(s)) => {
            let config = match s.as_str() {
                "tiny" => testing::tiny_config(),
                "small" => testing::small_config(),
                _ => usage(),
            };
            match testing::random_blob(&config, dtype, group, 1) {
                Ok(b) => (b, format!("{s} {dtype:?}").to_lowercase()),
                Err(e) => {
                    eprintln!("cannot build the blob: {e}");
                    std::process::exit(1)
                }
            }
        }
        _ => usage(),
    };
    let model = match Model::from_blob(&blob) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{label}: {e}");
            std::process::exit(1)
        }
    };
    let c = *model.config();
    let context = c.max_seq_len as usize;
    let n = tokens.unwrap_or(context / 2).clamp(1, context / 2);
    let memory = plan(&c, context, kv);
    let mut arena = vec![0u8; memory.total_bytes];
    let mut session = match Session::new(&model, &mut arena, context, kv) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    };
    let ids: Vec<u32> = (0..2 * n as u32)
        .map(|i| (i * 7919 + 11) % c.vocab_size)
        .collect();
    let (mut prefill, mut decode, mut reps) = (Duration::ZERO, Duration::ZERO, 0u32);
    let more = |reps: u32, spent: Duration| match fixed_reps {
        Some(r) => reps < r + 1,
        None => reps < 2 || spent < Duration::from_secs(1),
    };
    while more(reps, prefill + decode) {
        session.reset();
        let t = Instant::now();
        if let Err(e) = session.prefill(&ids[..n]) {
            eprintln!("{e}");
            std::process::exit(1)
        }
        let t1 = Instant::now();
        session.reset();
        let t1 = t1 + (Instant::now() - t1);
        for id in &ids[n..] {
            if let Err(e) = session.forward(*id) {
                eprintln!("{e}");
                std::process::exit(1)
            }
        }
        // The first repetition warms caches and is not counted.
        if reps > 0 {
            prefill += t1 - t;
            decode += t1.elapsed();
        }
        reps += 1;
    }
    let counted = (reps - 1) as f64;
    let prefill_tps = n as f64 * counted / prefill.as_secs_f64();
    let decode_tps = n as f64 * counted / decode.as_secs_f64();
    let model_bytes = std::mem::size_of::<Model>();
    if json {
        println!(
            "{{\"model\":\"{label}\",\"dim\":{},\"layers\":{},\"vocab\":{},\"context\":{context},\"kv\":\"{}\",\"tokens\":{n},\"prefill_tok_s\":{prefill_tps:.1},\"decode_tok_s\":{decode_tps:.1},\"session_ram_bytes\":{},\"kv_cache_bytes\":{},\"model_struct_bytes\":{model_bytes},\"blob_bytes\":{}}}",
            c.dim,
            c.n_layers,
            c.vocab_size,
            kv.name(),
            memory.total_bytes,
            memory.kv_cache_bytes,
            blob.len()
        );
    } else {
        println!(
            "model    {label}: dim {} layers {} vocab {} context {context}",
            c.dim, c.n_layers, c.vocab_size
        );
        println!("prefill  {prefill_tps:.0} tok/s ({n} tokens)");
        println!("decode   {decode_tps:.0} tok/s ({n} tokens from position 0)");
        println!(
            "ram      {} bytes session arena ({} KV cache, {:?} KV) + {model_bytes} bytes Model struct",
            memory.total_bytes, memory.kv_cache_bytes, kv
        );
        println!("blob     {} bytes", blob.len());
    }
}
