//! Export unit tests: quantization error budgets, short groups, determinism,
//! tensor names, load errors.

use export::checkpoint::{self, random_checkpoint, tensor_id, tensor_name, tensor_name_in};
use export::{build_blob, load_run, save_run, Checkpoint, ExportOptions, Quant};
use runtime::blob::{parse, TensorRecords};
use runtime::format::{MoeConfig, TensorId, TensorKind, TensorRecord};
use runtime::quant::dequantize_row;
use runtime::{DType, ModelConfig, ScaleType};

fn config(hidden: u32) -> ModelConfig {
    ModelConfig {
        dim: 64,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        hidden_dim: hidden,
        vocab_size: 300,
        max_seq_len: 128,
        rope_theta: 10000.0,
        norm_eps: 1e-6,
        embedding_scale: 8.0,
        tied_embeddings: true,
        moe: None,
    }
}

fn records(blob: &[u8]) -> Vec<TensorRecord<'_>> {
    let b = parse(blob).expect("blob parses");
    TensorRecords::new(&b).map(|r| r.expect("record")).collect()
}

fn dequant(rec: &TensorRecord<'_>) -> Vec<f32> {
    let (r, k) = (rec.rows as usize, rec.cols as usize);
    let rb = rec.row_bytes();
    let sb = rec.scales.len() / r;
    let mut out = vec![0f32; r * k];
    for i in 0..r {
        dequantize_row(
            &rec.data[i * rb..(i + 1) * rb],
            &rec.scales[i * sb..(i + 1) * sb],
            rec.dtype,
            rec.group_size.max(1) as usize,
            rec.scale_type,
            &mut out[i * k..(i + 1) * k],
        );
    }
    out
}

fn find<'a>(recs: &'a [TensorRecord<'a>], kind: TensorKind, layer: u16) -> &'a TensorRecord<'a> {
    recs.iter()
        .find(|r| r.id.kind == kind && r.id.layer == layer)
        .expect("tensor present")
}

#[test]
fn f32_export_is_exact_and_norms_stay_f32() {
    let ckpt = random_checkpoint(config(172), 20, 1);
    for q in [Quant::F32, Quant::F16, Quant::Q8, Quant::Q4] {
        let (blob, report) = build_blob(&ckpt, &ExportOptions::with_quant(q)).unwrap();
        let recs = records(&blob);
        for rec in &recs {
            let name = checkpoint::tensor_name_in(&rec.id, &ckpt.config);
            let is_norm = matches!(
                rec.id.kind,
                TensorKind::AttnNorm | TensorKind::FfnNorm | TensorKind::FinalNorm
            );
            if is_norm {
                assert_eq!(rec.dtype, DType::F32, "{name}");
            } else {
                assert_eq!(rec.dtype, q.dtype(), "{name}");
            }
            if q == Quant::F32 || is_norm {
                assert_eq!(
                    dequant(rec),
                    ckpt.tensors[&name].1,
                    "{name} must be bit exact"
                );
            }
        }
        assert_eq!(report.blob_bytes, blob.len());
        assert_eq!(report.tensors.len(), recs.len());
    }
}

/// Dot-product error of a quantized matrix on random inputs, per element of
/// the dot product: `|w·x − ŵ·x| / K`, averaged over rows and inputs, for
/// weights and inputs uniform on [-1, 1]; relative to the mean |w_i x_i|.
fn dot_error(q: Quant, k: usize) -> f64 {
    let mut cfg = config(k as u32);
    cfg.dim = 256;
    cfg.n_heads = 4;
    let ckpt = random_checkpoint(cfg, 0, 7);
    let (blob, _) = build_blob(&ckpt, &ExportOptions::with_quant(q)).unwrap();
    let recs = records(&blob);
    let rec = find(&recs, TensorKind::Gate, 0);
    let w = &ckpt.tensors["layers.0.feed_forward.w1.weight"].1;
    let wq = dequant(rec);
    let cols = rec.cols as usize;
    let (mut err, mut mag, mut n) = (0f64, 0f64, 0usize);
    let mut s = 12345u64;
    for _ in 0..8 {
        let x: Vec<f64> = (0..cols)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect();
        for r in 0..rec.rows as usize {
            let row = &w[r * cols..(r + 1) * cols];
            let rowq = &wq[r * cols..(r + 1) * cols];
            let exact: f64 = row.iter().zip(&x).map(|(a, b)| *a as f64 * b).sum();
            let approx: f64 = rowq.iter().zip(&x).map(|(a, b)| *a as f64 * b).sum();
            err += (exact - approx).abs() / cols as f64;
            mag += row
                .iter()
                .zip(&x)
                .map(|(a, b)| (*a as f64 * b).abs())
                .sum::<f64>()
                / cols as f64;
            n += 1;
        }
    }
    let rel = err / mag;
    eprintln!("{q}: relative dot-product error per element {rel:.3e} (over {n} rows)");
    rel
}

#[test]
fn quantization_error_budgets() {
    // Measured at K = 256, group 32, f16 scales: q8 2.5e-4, q4 4.6e-3, f16
    // 1.3e-5 (the error per element falls as 1/sqrt(K): rounding errors of
    // the K products add like a random walk). Budgets leave ~1.5x headroom; a
    // misaligned scale or a dropped tail group would be off by orders of magnitude.
    let q8 = dot_error(Quant::Q8, 256);
    let q4 = dot_error(Quant::Q4, 256);
    let f16 = dot_error(Quant::F16, 256);
    assert!(q8 < 4e-4, "q8 dot-product error {q8:.3e}");
    assert!(q4 < 7e-3, "q4 dot-product error {q4:.3e}");
    assert!(f16 < 2e-5, "f16 dot-product error {f16:.3e}");
    assert!(q4 > q8 && q8 > f16);
}

#[test]
fn short_last_group_keeps_its_own_scale() {
    // hidden 172 = 5·32 + 12: the down projection's rows end in a 12-wide group.
    let mut ckpt = random_checkpoint(config(172), 0, 3);
    // Make the tail of every row much larger than the rest: a scale shared
    // with (or shifted from) another group would show as a large error.
    let (_, w2) = ckpt
        .tensors
        .get_mut("layers.1.feed_forward.w2.weight")
        .unwrap();
    for row in w2.chunks_mut(172) {
        for v in &mut row[160..] {
            *v *= 50.0;
        }
    }
    for (q, qmax) in [(Quant::Q8, 127.0f32), (Quant::Q4, 7.0)] {
        for st in [ScaleType::F16, ScaleType::F32] {
            let opts = ExportOptions {
                quant: q,
                scale_type: st,
                ..Default::default()
            };
            let (blob, _) = build_blob(&ckpt, &opts).unwrap();
            let recs = records(&blob);
            let rec = find(&recs, TensorKind::Down, 1);
            assert_eq!((rec.rows, rec.cols), (64, 172));
            assert_eq!(rec.groups_per_row(), 6);
            let sb = if st == ScaleType::F16 { 2 } else { 4 };
            assert_eq!(rec.scales.len(), 64 * 6 * sb);
            let back = dequant(rec);
            let w = &ckpt.tensors["layers.1.feed_forward.w2.weight"].1;
            for (r, (row, rowq)) in w.chunks(172).zip(back.chunks(172)).enumerate() {
                for (g, (xs, ys)) in row.chunks(32).zip(rowq.chunks(32)).enumerate() {
                    let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
                    for (a, b) in xs.iter().zip(ys) {
                        let tol = amax / qmax * 0.5 * 1.002 + 1e-7;
                        assert!(
                            (a - b).abs() <= tol,
                            "{q} {st:?} row {r} group {g}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn export_is_deterministic() {
    let ckpt = random_checkpoint(config(172), 30, 5);
    let dir = tempfile::tempdir().unwrap();
    save_run(dir.path(), &ckpt).unwrap();
    let loaded = load_run(dir.path()).unwrap();
    assert_eq!(loaded.config, ckpt.config);
    assert_eq!(loaded.merges, ckpt.merges);
    for q in [Quant::F32, Quant::F16, Quant::Q8, Quant::Q4] {
        let opts = ExportOptions::with_quant(q);
        let (a, _) = build_blob(&ckpt, &opts).unwrap();
        let (b, _) = build_blob(&ckpt, &opts).unwrap();
        let (c, _) = build_blob(&loaded, &opts).unwrap();
        assert_eq!(a, b, "{q}: two exports differ");
        assert_eq!(a, c, "{q}: export after a save/load round trip differs");
    }
}

#[test]
fn tensor_names_round_trip() {
    let mut cfg = config(96);
    cfg.n_layers = 3;
    cfg.tied_embeddings = false;
    cfg.moe = Some(MoeConfig {
        n_experts: 4,
        top_k: 2,
        layer_mask: 0b010,
    });
    let mut names = Vec::new();
    TensorId::for_each_canonical(&cfg, |id| {
        let name = tensor_name_in(&id, &cfg);
        assert_eq!(tensor_id(&name), Some(id), "{name}");
        names.push(name);
    });
    let distinct: std::collections::BTreeSet<_> = names.iter().collect();
    assert_eq!(distinct.len(), names.len(), "names must be unique");
    for want in [
        "tok_embeddings.weight",
        "layers.0.attention_norm.weight",
        "layers.0.attention.wq.weight",
        "layers.0.attention.wk.weight",
        "layers.0.attention.wv.weight",
        "layers.0.attention.wo.weight",
        "layers.0.ffn_norm.weight",
        "layers.0.feed_forward.w1.weight",
        "layers.0.feed_forward.w2.weight",
        "layers.0.feed_forward.w3.weight",
        "layers.1.feed_forward.router.weight",
        "layers.1.feed_forward.experts.0.w1.weight",
        "layers.1.feed_forward.experts.3.w2.weight",
        "norm.weight",
        "output.weight",
    ] {
        assert!(names.iter().any(|n| n == want), "missing {want}");
    }
    assert_eq!(
        tensor_name(&TensorId::new(TensorKind::Up, 2, 0)),
        "layers.2.feed_forward.w3.weight"
    );
    assert_eq!(
        tensor_name(&TensorId::new(TensorKind::Up, 1, 2)),
        "layers.1.feed_forward.experts.2.w3.weight"
    );
    assert_eq!(tensor_id("layers.x.attention.wq.weight"), None);
    assert_eq!(tensor_id("tok_embeddings"), None);
}

#[test]
fn moe_checkpoint_exports_with_f32_router() {
    let mut cfg = config(64);
    cfg.moe = Some(MoeConfig {
        n_experts: 3,
        top_k: 2,
        layer_mask: 0b10,
    });
    let ckpt = random_checkpoint(cfg, 5, 9);
    let (blob, _) = build_blob(&ckpt, &ExportOptions::default()).unwrap();
    let recs = records(&blob);
    assert_eq!(find(&recs, TensorKind::Router, 1).dtype, DType::F32);
    assert_eq!(
        recs.iter()
            .filter(|r| r.id.kind == TensorKind::Gate)
            .count(),
        1 + 3
    );
}

#[test]
fn keep_f32_and_embedding_quant() {
    let mut cfg = config(96);
    cfg.tied_embeddings = false;
    let ckpt = random_checkpoint(cfg, 0, 11);
    let opts = ExportOptions {
        quant: Quant::Q4,
        keep_f32: vec!["output".into(), "layers.1.attention.w?.weight".into()],
        embedding_quant: Some(Quant::Q8),
        ..Default::default()
    };
    let (blob, report) = build_blob(&ckpt, &opts).unwrap();
    let recs = records(&blob);
    assert_eq!(find(&recs, TensorKind::Output, 0).dtype, DType::F32);
    assert_eq!(find(&recs, TensorKind::Embedding, 0).dtype, DType::Q8);
    assert_eq!(find(&recs, TensorKind::Wq, 1).dtype, DType::F32);
    assert_eq!(find(&recs, TensorKind::Wo, 1).dtype, DType::F32);
    assert_eq!(find(&recs, TensorKind::Wq, 0).dtype, DType::Q4);
    assert_eq!(find(&recs, TensorKind::Gate, 1).dtype, DType::Q4);
    let text = report.to_string();
    assert!(
        text.contains("output.weight") && text.contains("bits per weight"),
        "{text}"
    );
}

#[test]
fn bits_per_weight_and_report_totals() {
    let ckpt = random_checkpoint(config(128), 0, 2);
    let (_, r8) = build_blob(&ckpt, &ExportOptions::default()).unwrap();
    let (_, r4) = build_blob(&ckpt, &ExportOptions::with_quant(Quant::Q4)).unwrap();
    let (_, r32) = build_blob(
        &ckpt,
        &ExportOptions {
            scale_type: ScaleType::F32,
            ..Default::default()
        },
    )
    .unwrap();
    // q8 with f16 scales per 32: 8 + 16/32 bits per matrix weight; norms are f32.
    let matrix = |r: &export::QuantReport| {
        let t: Vec<_> = r.tensors.iter().filter(|t| t.dtype != "f32").collect();
        t.iter().map(|t| t.bytes).sum::<usize>() as f64 * 8.0
            / t.iter().map(|t| t.params).sum::<usize>() as f64
    };
    assert!((matrix(&r8) - 8.5).abs() < 1e-9, "{}", matrix(&r8));
    assert!((matrix(&r4) - 4.5).abs() < 1e-9, "{}", matrix(&r4));
    assert!((matrix(&r32) - 9.0).abs() < 1e-9, "{}", matrix(&r32));
    let sum: usize = r8.groups.values().map(|g| g.bytes).sum();
    assert_eq!(sum, r8.tensor_bytes);
    assert!(r8.blob_bytes > r8.tensor_bytes);
    assert!(
        r8.flash.iter().all(|f| f.fits),
        "a tiny model fits every flash size"
    );
    let json = serde_json::to_string(&r8).unwrap();
    assert!(json.contains("\"bits_per_weight\""));
}

fn expect_err(dir: &std::path::Path, needle: &str) {
    let e = format!("{:#}", load_run(dir).unwrap_err());
    assert!(e.contains(needle), "error {e:?} should mention {needle:?}");
}

#[test]
fn load_run_errors_name_what_is_wrong() {
    let ckpt = random_checkpoint(config(96), 3, 4);
    let root = tempfile::tempdir().unwrap();
    expect_err(&root.path().join("nope"), "does not exist");

    let fresh = |name: &str, ck: &Checkpoint| {
        let d = root.path().join(name);
        save_run(&d, ck).unwrap();
        d
    };
    let d = fresh("no_config", &ckpt);
    std::fs::remove_file(d.join("config.json")).unwrap();
    expect_err(&d, "config.json");

    let d = fresh("no_tok", &ckpt);
    std::fs::remove_file(d.join("tokenizer.json")).unwrap();
    expect_err(&d, "tokenizer.json");

    let d = fresh("no_weights", &ckpt);
    std::fs::remove_file(d.join("model.safetensors")).unwrap();
    expect_err(&d, "model.safetensors");

    let d = fresh("bad_json", &ckpt);
    std::fs::write(d.join("config.json"), b"{\"train\": {}}").unwrap();
    expect_err(&d, "\"model\"");

    let mut missing = ckpt.clone();
    missing.tensors.remove("layers.1.attention.wk.weight");
    expect_err(
        &fresh("missing", &missing),
        "layers.1.attention.wk.weight is missing",
    );

    let mut shape = ckpt.clone();
    let t = shape
        .tensors
        .get_mut("layers.0.feed_forward.w2.weight")
        .unwrap();
    t.0 = vec![96, 64];
    expect_err(
        &fresh("shape", &shape),
        "layers.0.feed_forward.w2.weight has shape [96, 64]",
    );

    let mut nan = ckpt.clone();
    nan.tensors.get_mut("norm.weight").unwrap().1[3] = f32::NAN;
    expect_err(&fresh("nan", &nan), "norm.weight holds a non-finite value");

    let mut tied = ckpt.clone();
    let emb = tied.tensors["tok_embeddings.weight"].clone();
    tied.tensors.insert("output.weight".into(), emb);
    expect_err(&fresh("tied", &tied), "tied");

    let mut vocab = ckpt.clone();
    vocab.merges = (0..40).map(|i| (8 + i, 9 + i)).collect();
    expect_err(&fresh("vocab", &vocab), "merges");

    let err = build_blob(
        &ckpt,
        &ExportOptions {
            quant: Quant::Q4,
            group_size: 33,
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("even"), "{err}");
}
