//! llama2.c import: a test-written `model.bin` (legacy fp32 format, the
//! layout `run.c` memory-maps) and `tokenizer.bin` go through
//! `export --from-llama2c`'s library path; the runtime's logits must match a
//! plain f64 transcription of `run.c`'s forward pass, for tied and untied
//! heads, and its piece tokenizer must encode like `run.c`'s `encode`.

use export::llama2c;
use export::{ExportOptions, Quant};
use runtime::Model;
use std::collections::HashMap;
use std::path::Path;

/// Header fields of a llama2.c checkpoint.
#[derive(Clone, Copy)]
struct Shape {
    dim: usize,
    hidden: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    vocab: usize,
    seq_len: usize,
    tied: bool,
}

/// The weights in run.c's naming, each array holding all layers back to back.
struct Weights {
    s: Shape,
    emb: Vec<f32>,
    rms_att: Vec<f32>,
    wq: Vec<f32>,
    wk: Vec<f32>,
    wv: Vec<f32>,
    wo: Vec<f32>,
    rms_ffn: Vec<f32>,
    w1: Vec<f32>,
    w2: Vec<f32>,
    w3: Vec<f32>,
    rms_final: Vec<f32>,
    wcls: Vec<f32>,
}

struct Rng(u64);
impl Rng {
    fn uniform(&mut self, a: f32) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a
    }
    fn vec(&mut self, n: usize, a: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(a)).collect()
    }
    fn gains(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| 1.0 + self.uniform(0.2)).collect()
    }
}

impl Weights {
    fn random(s: Shape, seed: u64) -> Self {
        let mut r = Rng(seed);
        let hs = s.dim / s.heads;
        let kv = s.kv_heads * hs;
        let (d, h, l) = (s.dim, s.hidden, s.layers);
        let a = |fan_in: usize| (3.0 / fan_in as f32).sqrt();
        Weights {
            s,
            emb: r.vec(s.vocab * d, 1.0),
            rms_att: r.gains(l * d),
            wq: r.vec(l * d * d, a(d)),
            wk: r.vec(l * kv * d, a(d)),
            wv: r.vec(l * kv * d, a(d)),
            wo: r.vec(l * d * d, a(d)),
            rms_ffn: r.gains(l * d),
            w1: r.vec(l * h * d, a(d)),
            w2: r.vec(l * d * h, a(h)),
            w3: r.vec(l * h * d, a(d)),
            rms_final: r.gains(d),
            wcls: if s.tied {
                Vec::new()
            } else {
                r.vec(s.vocab * d, a(d))
            },
        }
    }

    /// `model.bin` exactly as llama2.c's `legacy_export` writes it.
    fn write(&self, path: &Path) {
        let s = self.s;
        let vocab = if s.tied {
            s.vocab as i32
        } else {
            -(s.vocab as i32)
        };
        let header = [
            s.dim as i32,
            s.hidden as i32,
            s.layers as i32,
            s.heads as i32,
            s.kv_heads as i32,
            vocab,
            s.seq_len as i32,
        ];
        let mut out: Vec<u8> = header.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut put = |v: &[f32]| out.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        put(&self.emb);
        put(&self.rms_att);
        put(&self.wq);
        put(&self.wk);
        put(&self.wv);
        put(&self.wo);
        put(&self.rms_ffn);
        put(&self.w1);
        put(&self.w2);
        put(&self.w3);
        put(&self.rms_final);
        // freq_cis_real and freq_cis_imag: garbage the reader must skip.
        let hs = s.dim / s.heads;
        put(&vec![f32::NAN; s.seq_len * hs]);
        if !s.tied {
            put(&self.wcls);
        }
        std::fs::write(path, out).unwrap();
    }

    /// run.c's `forward`, transcribed in f64: logits at every position.
    fn reference_logits(&self, tokens: &[u32]) -> Vec<Vec<f64>> {
        let s = self.s;
        let (d, h) = (s.dim, s.hidden);
        let hs = d / s.heads;
        let kv_dim = s.kv_heads * hs;
        let kv_mul = s.heads / s.kv_heads;
        let matmul = |w: &[f32], x: &[f64], rows: usize| -> Vec<f64> {
            let n = x.len();
            (0..rows)
                .map(|i| (0..n).map(|j| w[i * n + j] as f64 * x[j]).sum())
                .collect()
        };
        let rmsnorm = |x: &[f64], g: &[f32]| -> Vec<f64> {
            let ss = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64 + 1e-5;
            let inv = 1.0 / ss.sqrt();
            x.iter().zip(g).map(|(v, g)| v * inv * *g as f64).collect()
        };
        let mut key_cache = vec![vec![Vec::<Vec<f64>>::new(); 1]; s.layers];
        let mut value_cache = vec![vec![Vec::<Vec<f64>>::new(); 1]; s.layers];
        let mut out = Vec::new();
        for (pos, &tok) in tokens.iter().enumerate() {
            let mut x: Vec<f64> = self.emb[tok as usize * d..(tok as usize + 1) * d]
                .iter()
                .map(|v| *v as f64)
                .collect();
            for l in 0..s.layers {
                let xb = rmsnorm(&x, &self.rms_att[l * d..(l + 1) * d]);
                let mut q = matmul(&self.wq[l * d * d..(l + 1) * d * d], &xb, d);
                let mut k = matmul(&self.wk[l * kv_dim * d..(l + 1) * kv_dim * d], &xb, kv_dim);
                let v = matmul(&self.wv[l * kv_dim * d..(l + 1) * kv_dim * d], &xb, kv_dim);
                for i in (0..d).step_by(2) {
                    let head_dim = i % hs;
                    let freq = 1.0 / 10000f64.powf(head_dim as f64 / hs as f64);
                    let val = pos as f64 * freq;
                    let (fcr, fci) = (val.cos(), val.sin());
                    let rot = |vec: &mut Vec<f64>| {
                        let (v0, v1) = (vec[i], vec[i + 1]);
                        vec[i] = v0 * fcr - v1 * fci;
                        vec[i + 1] = v0 * fci + v1 * fcr;
                    };
                    rot(&mut q);
                    if i < kv_dim {
                        rot(&mut k);
                    }
                }
                key_cache[l][0].push(k);
                value_cache[l][0].push(v);
                let mut xb2 = vec![0f64; d];
                for hh in 0..s.heads {
                    let qh = &q[hh * hs..(hh + 1) * hs];
                    let kvh = hh / kv_mul;
                    let mut att: Vec<f64> = (0..=pos)
                        .map(|t| {
                            let kt = &key_cache[l][0][t][kvh * hs..(kvh + 1) * hs];
                            qh.iter().zip(kt).map(|(a, b)| a * b).sum::<f64>() / (hs as f64).sqrt()
                        })
                        .collect();
                    let max = att.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let mut sum = 0.0;
                    for a in &mut att {
                        *a = (*a - max).exp();
                        sum += *a;
                    }
                    for (t, a) in att.iter().enumerate() {
                        let vt = &value_cache[l][0][t][kvh * hs..(kvh + 1) * hs];
                        for i in 0..hs {
                            xb2[hh * hs + i] += a / sum * vt[i];
                        }
                    }
                }
                let o = matmul(&self.wo[l * d * d..(l + 1) * d * d], &xb2, d);
                for i in 0..d {
                    x[i] += o[i];
                }
                let xb = rmsnorm(&x, &self.rms_ffn[l * d..(l + 1) * d]);
                let a = matmul(&self.w1[l * h * d..(l + 1) * h * d], &xb, h);
                let b = matmul(&self.w3[l * h * d..(l + 1) * h * d], &xb, h);
                let hb: Vec<f64> = a
                    .iter()
                    .zip(&b)
                    .map(|(a, b)| a / (1.0 + (-a).exp()) * b)
                    .collect();
                let f = matmul(&self.w2[l * d * h..(l + 1) * d * h], &hb, d);
                for i in 0..d {
                    x[i] += f[i];
                }
            }
            let x = rmsnorm(&x, &self.rms_final);
            let cls = if s.tied { &self.emb } else { &self.wcls };
            out.push(matmul(cls, &x, s.vocab));
        }
        out
    }
}

fn runtime_logits(blob: &[u8], tokens: &[u32]) -> Vec<Vec<f32>> {
    runtime::testing::logits_per_position(blob, tokens).unwrap()
}

fn shape(tied: bool) -> Shape {
    // hidden 40 = 32 + 8: the rows of w2 end in a short quantization group.
    Shape {
        dim: 32,
        hidden: 40,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        vocab: 300,
        seq_len: 24,
        tied,
    }
}

fn check_against_reference(tied: bool) {
    let dir = tempfile::tempdir().unwrap();
    let w = Weights::random(shape(tied), if tied { 1 } else { 2 });
    let path = dir.path().join("model.bin");
    w.write(&path);
    let imported = llama2c::import(&path, None).unwrap();
    let c = imported.checkpoint.config;
    assert_eq!(
        (c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads),
        (32, 40, 2, 4, 2)
    );
    assert_eq!(
        (c.vocab_size, c.max_seq_len, c.tied_embeddings),
        (300, 24, tied)
    );
    assert_eq!(
        (c.embedding_scale, c.norm_eps, c.rope_theta),
        (1.0, 1e-5, 10000.0)
    );

    let tokens: Vec<u32> = (0..24).map(|i| (i * 37 + 5) % 300).collect();
    let want = w.reference_logits(&tokens);
    // f32 is the parity claim; f16 and q8 bound the quantized paths (q8 also
    // quantizes activations in the runtime's integer kernels).
    for (quant, tol) in [(Quant::F32, 1e-5), (Quant::F16, 5e-3), (Quant::Q8, 6e-2)] {
        let (blob, _) = imported
            .build_blob(&ExportOptions::with_quant(quant))
            .unwrap();
        let got = runtime_logits(&blob, &tokens);
        let (mut worst, mut top1) = (0f64, 0usize);
        for (pos, (g, r)) in got.iter().zip(&want).enumerate() {
            let scale = r.iter().fold(0f64, |m, v| m.max(v.abs()));
            let diff = g
                .iter()
                .zip(r)
                .fold(0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
            worst = worst.max(diff / scale);
            assert!(
                diff <= tol * scale,
                "{quant} tied={tied} pos {pos}: max |Δlogit| {diff:.3e} > {tol:e} × {scale:.3}"
            );
            let am = |v: &[f64]| {
                v.iter()
                    .enumerate()
                    .fold(0, |b, (i, x)| if *x > v[b] { i } else { b })
            };
            top1 += (am(&g.iter().map(|v| *v as f64).collect::<Vec<_>>()) == am(r)) as usize;
        }
        eprintln!("{quant} tied={tied}: worst |Δlogit|/max|logit| {worst:.2e}, top-1 {top1}/24");
        assert!(top1 >= 22, "{quant}: top-1 agreement {top1}/24");
    }
}

#[test]
fn tied_head_matches_reference_forward() {
    check_against_reference(true);
}

#[test]
fn untied_head_matches_reference_forward() {
    check_against_reference(false);
}

#[test]
fn bad_files_are_refused_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let w = Weights::random(shape(true), 3);
    let path = dir.path().join("model.bin");
    w.write(&path);
    let bytes = std::fs::read(&path).unwrap();
    let err = |b: &[u8]| {
        let p = dir.path().join("bad.bin");
        std::fs::write(&p, b).unwrap();
        format!("{:#}", llama2c::import(&p, None).unwrap_err())
    };
    assert!(err(&bytes[..bytes.len() - 4]).contains("needs exactly"));
    assert!(err(&bytes[..10]).contains("header"));
    let mut v1 = bytes.clone();
    v1[..4].copy_from_slice(&0x616b3432u32.to_le_bytes());
    assert!(err(&v1).contains("version"));
    let mut zero = bytes.clone();
    zero[8..12].copy_from_slice(&0i32.to_le_bytes());
    assert!(err(&zero).contains("n_layers"));
    let e = format!(
        "{:#}",
        llama2c::import(&path, Some(&dir.path().join("none.bin"))).unwrap_err()
    );
    assert!(e.contains("none.bin"), "{e}");
}

/// A 28-byte file whose header announces sizes whose products wrap around
/// `usize` to exactly the file's length (dim 2^30, hidden (2^32 − 1)/3,
/// vocab and seq_len 2^31 − 1): refused by the size check, not a panic.
#[test]
fn a_header_whose_sizes_overflow_is_refused() {
    let header: [i32; 7] = [1 << 30, 1_431_655_765, 1, 1, 1, i32::MAX, i32::MAX];
    let bytes: Vec<u8> = header.iter().flat_map(|v| v.to_le_bytes()).collect();
    let e = format!("{:#}", llama2c::parse_model(&bytes).unwrap_err());
    assert!(e.contains("needs"), "{e}");
    // Every field at i32::MAX (heads dividing dim): refused as well.
    let header: [i32; 7] = [i32::MAX; 7];
    let bytes: Vec<u8> = header.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert!(llama2c::parse_model(&bytes).is_err());
    // The tokenizer reader, asked for a huge vocab, reads what the file
    // holds instead of reserving room for the vocab up front.
    assert!(llama2c::parse_tokenizer(&[0, 0, 0, 0], i32::MAX as usize).is_err());
}

// ---------------------------------------------------------------------------
// Tokenizer

/// A sentencepiece-like vocabulary: `<unk>`, `<s>`, `</s>`, 256 byte pieces,
/// then pieces built from an English sample, longer ones scoring higher.
fn vocab(n: usize) -> (Vec<Vec<u8>>, Vec<f32>) {
    let mut pieces: Vec<Vec<u8>> =
        vec![b"<unk>".to_vec(), b"\n<s>\n".to_vec(), b"\n</s>\n".to_vec()];
    for b in 0..=255u8 {
        pieces.push(format!("<0x{b:02X}>").into_bytes());
    }
    let mut scores = vec![0f32; pieces.len()];
    let words = [
        " ", "e", "t", "a", "o", "n", "h", "s", "r", "i", "l", "d", "u", "y", "w", "é", " t", "th",
        "he", " the", "in", " a", "an", "nd", " and", "er", "on", " o", "ou", " on", "re", "at",
        " s", " w", "is", " is", "it", " it", "ll", "ell", "hell", " hell", " hello", "or", " wor",
        " world", "ld", " d", "ay", " day", "é ",
    ];
    for (i, w) in words.iter().enumerate() {
        if pieces.len() >= n {
            break;
        }
        pieces.push(w.as_bytes().to_vec());
        // Later (longer, rarer) merges score lower, as in sentencepiece.
        scores.push(-(i as f32));
    }
    while pieces.len() < n {
        pieces.push(format!("<extra{}>", pieces.len()).into_bytes());
        scores.push(-1000.0);
    }
    (pieces, scores)
}

fn write_tokenizer(path: &Path, pieces: &[Vec<u8>], scores: &[f32]) {
    let max = pieces.iter().map(Vec::len).max().unwrap() as i32;
    let mut out = max.to_le_bytes().to_vec();
    for (p, s) in pieces.iter().zip(scores) {
        out.extend_from_slice(&s.to_le_bytes());
        out.extend_from_slice(&(p.len() as i32).to_le_bytes());
        out.extend_from_slice(p);
    }
    std::fs::write(path, out).unwrap();
}

/// run.c's `encode` (without bos/eos), transcribed with strings and a hash map.
fn run_c_encode(pieces: &[Vec<u8>], scores: &[f32], text: &[u8]) -> Vec<u32> {
    let lookup: HashMap<&[u8], u32> = pieces
        .iter()
        .enumerate()
        .rev()
        .map(|(i, p)| (p.as_slice(), i as u32))
        .collect();
    let mut tokens = Vec::new();
    if text.is_empty() {
        return tokens;
    }
    tokens.push(lookup[b" ".as_slice()]);
    let mut buf: Vec<u8> = Vec::new();
    for (i, &c) in text.iter().enumerate() {
        if c & 0xC0 != 0x80 {
            buf.clear();
        }
        buf.push(c);
        if text.get(i + 1).is_some_and(|n| n & 0xC0 == 0x80) && buf.len() < 4 {
            continue;
        }
        match lookup.get(buf.as_slice()) {
            Some(&id) => tokens.push(id),
            None => tokens.extend(buf.iter().map(|b| *b as u32 + 3)),
        }
        buf.clear();
    }
    loop {
        let (mut best, mut best_id, mut best_idx) = (-1e10f32, 0u32, None);
        for i in 0..tokens.len().saturating_sub(1) {
            let mut s = pieces[tokens[i] as usize].clone();
            s.extend_from_slice(&pieces[tokens[i + 1] as usize]);
            if let Some(&id) = lookup.get(s.as_slice()) {
                if scores[id as usize] > best {
                    (best, best_id, best_idx) = (scores[id as usize], id, Some(i));
                }
            }
        }
        let Some(i) = best_idx else { break };
        tokens[i] = best_id;
        tokens.remove(i + 1);
    }
    tokens
}

#[test]
fn pieces_tokenizer_encodes_like_run_c_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let w = Weights::random(
        Shape {
            vocab: 320,
            ..shape(true)
        },
        4,
    );
    let model_path = dir.path().join("model.bin");
    w.write(&model_path);
    let (pieces, scores) = vocab(320);
    let tok_path = dir.path().join("tokenizer.bin");
    write_tokenizer(&tok_path, &pieces, &scores);
    let imported = llama2c::import(&model_path, Some(&tok_path)).unwrap();
    assert_eq!(imported.vocab.as_ref().unwrap().pieces, pieces);
    let (blob, _) = imported
        .build_blob(&ExportOptions::with_quant(Quant::Q8))
        .unwrap();
    let model = Model::from_blob(&blob).unwrap();
    let tok = model.tokenizer();
    assert!(!tok.has_reasoning_tokens());
    assert_eq!((tok.bos(), tok.eos()), (1, 2));
    let texts: [&[u8]; 9] = [
        b"hello world",
        b"the day is on and on",
        b"  two  spaces ",
        "café é crème — ünïcödé 🙂".as_bytes(),
        b"",
        b"\x00\x01\xff\xfe binary \x80\x80\x80\x80\x80",
        b"\xf0\x9f\x99",
        b"theatheatheathe",
        b"x",
    ];
    for text in texts {
        let mut ids = vec![0u32; text.len() + 1];
        let n = tok.encode(text, &mut ids).unwrap();
        let ids = &ids[..n];
        assert_eq!(
            ids,
            run_c_encode(&pieces, &scores, text).as_slice(),
            "{:?}",
            String::from_utf8_lossy(text)
        );
        let mut back = Vec::new();
        let mut prev = Some(tok.bos());
        for &id in ids {
            tok.decode(prev, id, &mut |b| back.extend_from_slice(b));
            prev = Some(id);
        }
        assert_eq!(back, text, "{:?} -> {ids:?}", String::from_utf8_lossy(text));
    }
    // Merges happened: " hello" and " world" (the dummy space joins the first word).
    let mut ids = [0u32; 16];
    let n = tok.encode(b"hello world", &mut ids).unwrap();
    assert_eq!(n, 2, "{:?}", &ids[..n]);
}
