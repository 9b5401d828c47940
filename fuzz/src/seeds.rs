//! Writes the seed corpora of every fuzz target into `DIR/<target>/`:
//! real blobs of every weight type (f32, f16, q8, q4 with f32 and f16
//! scales), with and without a tokenizer, dense and MoE, a markov model, and
//! llama2.c imports; tokenizer tables and texts; tokenizer.json files;
//! JSONL in both formats; TOML configs. Small models, so the fuzzer mutates
//! kilobytes, not megabytes.
use runtime::format::{ModelConfig, MoeConfig};
use runtime::testing;
use runtime::{DType, ScaleType};
use std::path::Path;

fn config(vocab: u32, layers: u32, moe: Option<MoeConfig>) -> ModelConfig {
    ModelConfig {
        dim: 16,
        n_layers: layers,
        n_heads: 2,
        n_kv_heads: 1,
        hidden_dim: 20,
        vocab_size: vocab,
        max_seq_len: 32,
        rope_theta: 10000.0,
        norm_eps: 1e-5,
        embedding_scale: 1.0,
        tied_embeddings: true,
        moe,
    }
}

fn put(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(name), bytes).unwrap();
}

/// llama2.c's `model.bin` (legacy export) with random weights.
fn llama2c_model(
    dim: usize,
    hidden: usize,
    layers: usize,
    heads: usize,
    kv: usize,
    vocab: usize,
    seq: usize,
    tied: bool,
) -> Vec<u8> {
    let header = [dim, hidden, layers, heads, kv, vocab, seq].map(|v| v as i32);
    let mut header = header;
    if !tied {
        header[5] = -header[5];
    }
    let mut out: Vec<u8> = header.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut x = 0x1234_5678u32;
    let mut put = |n: usize| {
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let v = (x as f32 / u32::MAX as f32 - 0.5) * 0.2;
            out.extend(v.to_le_bytes());
        }
    };
    let kv_dim = dim * kv / heads;
    put(vocab * dim);
    put(layers * dim);
    put(layers * dim * dim);
    put(layers * dim * kv_dim);
    put(layers * dim * kv_dim);
    put(layers * dim * dim);
    put(layers * dim);
    put(layers * hidden * dim);
    put(layers * dim * hidden);
    put(layers * hidden * dim);
    put(dim);
    put(seq * dim / heads);
    if !tied {
        put(vocab * dim);
    }
    out
}

fn llama2c_tokenizer(vocab: usize) -> Vec<u8> {
    let mut pieces: Vec<Vec<u8>> = vec![b"<unk>".to_vec(), b"<s>".to_vec(), b"</s>".to_vec()];
    for b in 0..=255u8 {
        if pieces.len() < vocab {
            pieces.push(format!("<0x{b:02X}>").into_bytes());
        }
    }
    for w in [" the", "th", "he", " a", "an", "in", "er"] {
        if pieces.len() < vocab {
            pieces.push(w.as_bytes().to_vec());
        }
    }
    while pieces.len() < vocab {
        pieces.push(format!("<x{}>", pieces.len()).into_bytes());
    }
    let max = pieces.iter().map(Vec::len).max().unwrap_or(0) as i32;
    let mut out = max.to_le_bytes().to_vec();
    for (i, p) in pieces.iter().enumerate() {
        out.extend_from_slice(&(-(i as f32)).to_le_bytes());
        out.extend_from_slice(&(p.len() as i32).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: seeds DIR");
    let dir = Path::new(&dir);

    // blob: every weight type, tokenizer or not, dense and MoE.
    let moe = Some(MoeConfig {
        n_experts: 2,
        top_k: 1,
        layer_mask: 0b10,
    });
    for (name, c) in [
        ("bpe", config(272, 1, None)),
        ("plain", config(40, 1, None)),
        ("moe", config(272, 2, moe)),
    ] {
        for (dt, scale, dname) in [
            (DType::F32, ScaleType::F32, "f32"),
            (DType::F16, ScaleType::F32, "f16"),
            (DType::Q8, ScaleType::F32, "q8"),
            (DType::Q8, ScaleType::F16, "q8-f16scales"),
            (DType::Q4, ScaleType::F32, "q4"),
            (DType::Q4, ScaleType::F16, "q4-f16scales"),
        ] {
            let blob = testing::random_blob_with_scales(&c, dt, 8, scale, 7).unwrap();
            put(dir, "blob", &format!("{name}-{dname}.bin"), &blob);
        }
    }
    let markov = testing::markov_blob(&[(1, 9), (9, 10), (10, 2)]).unwrap();
    put(dir, "blob", "markov.bin", &markov);
    // llama2.c imports, as blobs and as importer input.
    for (i, (tied, vocab)) in [(true, 300usize), (false, 270)].iter().enumerate() {
        let model = llama2c_model(16, 24, 1, 2, 1, *vocab, 8, *tied);
        let tok = llama2c_tokenizer(*vocab);
        let l = export::llama2c::Llama2c {
            checkpoint: export::llama2c::parse_model(&model).unwrap(),
            vocab: Some(export::llama2c::parse_tokenizer(&tok, *vocab).unwrap()),
        };
        for quant in [export::Quant::F32, export::Quant::Q8, export::Quant::Q4] {
            let (blob, _) = l
                .build_blob(&export::ExportOptions::with_quant(quant))
                .unwrap();
            put(
                dir,
                "blob",
                &format!("llama2c-{i}-{}.bin", quant.name()),
                &blob,
            );
        }
        let mut input = (model.len() as u16).to_le_bytes().to_vec();
        if model.len() <= u16::MAX as usize {
            input.extend_from_slice(&model);
            input.extend_from_slice(&tok);
            put(dir, "llama2c", &format!("llama2c-{i}.bin"), &input);
        }
    }

    // tokenizer: `count · u16 pairs · text`.
    let texts: [&[u8]; 4] = [
        b"What is 347 plus 589?<think>7+9=16</think><answer>936</answer>",
        "the then and an on in; thé café ☕ 12 345".as_bytes(),
        b"\xff\xfe\x00 bad utf-8 \xc3",
        b"  \n\t  the  the",
    ];
    let mut merges: Vec<(u32, u32)> = Vec::new();
    for (l, r) in testing::MERGES {
        let id = |s: &str| -> u32 {
            if s.len() == 1 {
                runtime::format::special::FIRST_BYTE + s.as_bytes()[0] as u32
            } else {
                let k = testing::MERGES
                    .iter()
                    .position(|(a, b)| format!("{a}{b}") == s)
                    .unwrap();
                runtime::format::special::FIRST_MERGE + k as u32
            }
        };
        merges.push((id(l), id(r)));
    }
    for (i, t) in texts.iter().enumerate() {
        let mut input = vec![merges.len() as u8];
        for (l, r) in &merges {
            input.extend_from_slice(&(*l as u16).to_le_bytes());
            input.extend_from_slice(&(*r as u16).to_le_bytes());
        }
        input.extend_from_slice(t);
        put(dir, "tokenizer", &format!("text-{i}"), &input);
    }
    // tokenizer_json: a trained table and small hand-made ones.
    let trained = thinkling_fuzz::trainer_bpe::train_bpe(
        texts
            .iter()
            .map(|t| String::from_utf8_lossy(t).into_owned()),
        300,
    )
    .unwrap();
    let json = |m: &[(u32, u32)]| serde_json::json!({ "merges": m }).to_string();
    put(
        dir,
        "tokenizer_json",
        "trained.json",
        json(&trained).as_bytes(),
    );
    put(
        dir,
        "tokenizer_json",
        "test-merges.json",
        json(&merges).as_bytes(),
    );
    put(dir, "tokenizer_json", "empty.json", br#"{"merges": []}"#);
}
