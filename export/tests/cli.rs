//! The `export` binary end to end on a random-weight run directory.

use export::checkpoint::random_checkpoint;
use runtime::ModelConfig;
use std::process::Command;

fn config() -> ModelConfig {
    ModelConfig {
        dim: 32,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        hidden_dim: 86,
        vocab_size: 280,
        max_seq_len: 64,
        rope_theta: 10000.0,
        norm_eps: 1e-6,
        embedding_scale: 32f32.sqrt(),
        tied_embeddings: true,
        moe: None,
    }
}

#[test]
fn cli_writes_blob_and_json_report() {
    let dir = tempfile::tempdir().unwrap();
    export::save_run(dir.path(), &random_checkpoint(config(), 16, 3)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_export"))
        .arg(dir.path())
        .args([
            "--quant",
            "q4",
            "--eval-n",
            "2",
            "--compare-n",
            "3",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let blob = std::fs::read(dir.path().join("model.q4.bin")).unwrap();
    assert_eq!(
        v["report"]["blob_bytes"].as_u64().unwrap() as usize,
        blob.len()
    );
    assert!(runtime::Model::from_blob(&blob).is_ok());
    assert!(v["agreement"]["positions"].as_u64().unwrap() > 0);
    assert_eq!(v["accuracy"]["blob"]["n"], 2);
    assert_eq!(v["accuracy"]["f32"]["n"], 2);
    // No temporary file is left beside the blob.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names.iter().all(|n| !n.to_string_lossy().contains(".tmp")),
        "{names:?}"
    );

    // The text report names groups, flash sizes and per-tensor errors.
    let out = Command::new(env!("CARGO_BIN_EXE_export"))
        .arg(dir.path())
        .args(["--eval-n", "0", "--compare-n", "2", "--out"])
        .arg(dir.path().join("x.bin"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "embedding",
        "attention",
        "ffn",
        "norms",
        "bits per weight",
        "fits flash",
        "256 KiB",
        "top-1 agreement",
    ] {
        assert!(text.contains(want), "report lacks {want:?}:\n{text}");
    }
}

/// `--kv` measures the blob with each KV cache type, after an export and
/// for an existing blob (`--blob`).
#[test]
fn cli_measures_kv_cache_types() {
    let dir = tempfile::tempdir().unwrap();
    export::save_run(dir.path(), &random_checkpoint(config(), 16, 4)).unwrap();
    let run = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_export"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let d = dir.path().to_str().unwrap();
    let v = run(&[
        d,
        "--eval-n",
        "2",
        "--compare-n",
        "3",
        "--kv",
        "f32,f16,q8",
        "--json",
    ]);
    let kv = v["kv"].as_array().unwrap();
    assert_eq!(kv.len(), 2, "{v}");
    for (m, name) in kv.iter().zip(["f16", "q8"]) {
        assert_eq!(m["kv"], name);
        assert!(m["agreement"]["positions"].as_u64().unwrap() > 0);
        assert_eq!(m["accuracy"]["n"], 2);
    }
    let blob = dir.path().join("model.q8.bin");
    let v = run(&[
        "--blob",
        blob.to_str().unwrap(),
        "--kv",
        "f32,q8",
        "--eval-n",
        "2",
        "--compare-n",
        "2",
        "--json",
    ]);
    let kv = v["kv"].as_array().unwrap();
    assert_eq!(
        (kv[0]["kv"].as_str(), kv[1]["kv"].as_str()),
        (Some("f32"), Some("q8"))
    );
    assert!(kv[0]["agreement"].is_null());
    assert!(kv[1]["agreement"]["top1"].as_f64().unwrap() > 0.0);
    assert_eq!(kv[1]["accuracy"]["n"], 2);
    let out = Command::new(env!("CARGO_BIN_EXE_export"))
        .args(["--blob", blob.to_str().unwrap(), "--kv", "q4"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("q4"));
}

#[test]
fn cli_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_export"))
        .arg(dir.path().join("missing"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let out = Command::new(env!("CARGO_BIN_EXE_export"))
        .arg(dir.path())
        .args(["--quant", "q5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("q5"));
}

#[test]
fn cli_help_lists_formats_and_writes_hf_and_gguf() {
    let help = Command::new(env!("CARGO_BIN_EXE_export"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for word in ["--format", "blob", "hf", "gguf", "q8_0", "q4_0"] {
        assert!(
            help.contains(word),
            "--help does not mention {word}:\n{help}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    export::save_run(dir.path(), &random_checkpoint(config(), 16, 3)).unwrap();
    let hf = dir.path().join("hf");
    let out = Command::new(env!("CARGO_BIN_EXE_export"))
        .arg(dir.path())
        .args(["--format", "hf", "--out"])
        .arg(&hf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(hf.join(f).is_file(), "{f} missing");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_export"))
        .arg(dir.path())
        .args(["--format", "gguf", "--quant", "q4_0", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["report"]["quant"], "q4_0");
    // Rows of 86 values (the FFN down projection) are not whole blocks.
    assert_eq!(v["report"]["f16_fallback"].as_array().unwrap().len(), 2);
    let gguf = std::fs::read(dir.path().join("model.q4_0.gguf")).unwrap();
    assert_eq!(&gguf[..4], b"GGUF");
    let out = Command::new(env!("CARGO_BIN_EXE_export"))
        .arg(dir.path())
        .args(["--format", "hf", "--quant", "q8"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("f32 or f16") && err.contains("q8"), "{err}");
}

#[test]
fn cli_from_hf_gives_back_the_runs_blob() {
    let help = Command::new(env!("CARGO_BIN_EXE_export"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--from-hf") && help.contains("--no-tokenizer"),
        "{help}"
    );
    let dir = tempfile::tempdir().unwrap();
    // A power-of-two embedding scale folds into the weights without loss.
    let cfg = ModelConfig {
        embedding_scale: 4.0,
        ..config()
    };
    export::save_run(dir.path(), &random_checkpoint(cfg, 16, 5)).unwrap();
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let export = || Command::new(env!("CARGO_BIN_EXE_export"));
    let hf = dir.path().join("hf");
    let (direct, imported) = (dir.path().join("direct.bin"), dir.path().join("in.bin"));
    run(export()
        .arg(dir.path())
        .args(["--format", "hf", "--out"])
        .arg(&hf));
    let quiet = [
        "--quant",
        "q4",
        "--eval-n",
        "0",
        "--compare-n",
        "0",
        "--out",
    ];
    run(export().arg(dir.path()).args(quiet).arg(&direct));
    run(export()
        .arg("--from-hf")
        .arg(&hf)
        .args(quiet)
        .arg(&imported));
    assert!(std::fs::read(&direct).unwrap() == std::fs::read(&imported).unwrap());
}
