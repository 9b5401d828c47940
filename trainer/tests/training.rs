//! End-to-end runs of the smoke preset: learning, checkpoint round trip,
//! exact resume, resume with a changed config.

use candle_core::{Device, Tensor};
use std::path::Path;
use trainer::checkpoint::{read_safetensors, MODEL_FILE};
use trainer::config::TrainConfig;
use trainer::model::Transformer;
use trainer::train::{run, Options};

/// A trivial task as user data: copy a three-digit number.
fn copy_task(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("copy.jsonl");
    let lines: String = (0..1000)
        .map(|n| {
            let s = format!("{n:03}");
            let think = s.chars().map(String::from).collect::<Vec<_>>().join(" ");
            format!("{{\"problem\": \"copy {s}\", \"think\": \"{think}\", \"answer\": \"{s}\"}}\n")
        })
        .collect();
    std::fs::write(&path, lines).unwrap();
    path
}

fn smoke(dir: &Path) -> TrainConfig {
    TrainConfig {
        data: vec![copy_task(dir)],
        tasks: "user".into(),
        ..TrainConfig::smoke_preset()
    }
}

fn opts(out: &Path, resume: bool, stop_after: Option<u64>) -> Options {
    Options {
        out: out.to_path_buf(),
        resume,
        progress: false,
        stop_after,
    }
}

fn weights(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let (t, _) = read_safetensors(&dir.join(MODEL_FILE), &Device::Cpu).unwrap();
    t.into_iter()
        .map(|(k, v)| (k, v.flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

#[test]
fn smoke_run_learns_a_trivial_task() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = run(&smoke(tmp.path()), &opts(&out, false, None)).unwrap();
    let rows = trainer::metrics::read(&out.join("metrics.csv")).unwrap();
    let (first, last) = (rows.first().unwrap().loss, rows.last().unwrap().loss);
    assert!(last < 0.5 * first, "loss {first} -> {last}");
    let acc = o.final_eval.unwrap().in_dist.accuracy;
    // Chance is 1 in 1000.
    assert!(acc > 0.3, "held-out exact match {acc}");
    for f in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "optimizer.safetensors",
        "state.json",
        "plot.svg",
        "eval.json",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    // export reads the run directory we wrote.
    let ckpt = export::load_run(&out).unwrap();
    assert_eq!(ckpt.config, o.model_config);

    // `trainer eval DIR --data FILE`: exact match on every problem of a file.
    let data = tmp.path().join("copy.jsonl");
    let run = |extra: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
            .args([
                "eval",
                out.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
                "--json",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let all = run(&[]);
    assert_eq!(all["n"], 1000, "{all}");
    assert!(all["accuracy"].as_f64().unwrap() > 0.3, "{all}");
    assert_eq!(all["per_task"]["user"]["n"], 1000);
    assert_eq!(run(&["--n", "10"])["n"], 10);
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args([
            "eval",
            out.to_str().unwrap(),
            "--data",
            "no-such-file.jsonl",
        ])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no-such-file.jsonl"));
}

#[test]
fn final_evaluation_reports_in_distribution_and_out_of_template() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let cfg = TrainConfig {
        steps: 10,
        final_eval_n: 12,
        tasks: "add,div".into(),
        ..TrainConfig::smoke_preset()
    };
    let o = run(&cfg, &opts(&out, false, None)).unwrap();
    let e = o.final_eval.unwrap();
    let ood = e.ood.as_ref().expect("built-in tasks have held-out forms");
    assert_eq!((e.in_dist.n, ood.n), (12, 12));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("eval.json")).unwrap()).unwrap();
    for key in ["accuracy", "n", "per_task", "per_form", "well_formed"] {
        assert!(!json[key].is_null(), "{key} missing: {json}");
        assert!(!json["ood"][key].is_null(), "ood.{key} missing: {json}");
    }
    assert_eq!(json["ood"]["n"], 12);
    for task in ["add", "div"] {
        assert_eq!(json["ood"]["per_task"][task]["n"], 6, "{json}");
    }
    // Every out-of-template problem is labelled with a held-out form.
    let held: Vec<String> = tasks::forms::held_out_list()
        .iter()
        .map(|(k, t)| format!("{k}: {t}"))
        .collect();
    let forms = json["ood"]["per_form"].as_object().unwrap();
    assert!(!forms.is_empty());
    for form in forms.keys() {
        assert!(held.contains(form), "{form} is not a held-out form");
    }
    let text = trainer::eval::evaluation_summary(&e);
    assert!(
        text.contains("in-distribution") && text.contains("out-of-template"),
        "{text}"
    );

    // `trainer eval DIR --mistakes N` shows what the model wrote where it
    // was wrong: as many as it got wrong, at most N per set.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args([
            "eval",
            out.to_str().unwrap(),
            "--n",
            "12",
            "--mistakes",
            "3",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    for (set, r) in [("in-distribution", &e.in_dist), ("out-of-template", ood)] {
        let wrong = r.mistakes.len();
        assert_eq!(wrong, r.n - (r.accuracy * r.n as f64).round() as usize);
        if wrong > 0 {
            let head = format!("{set} mistakes ({} of {wrong}):", wrong.min(3));
            assert!(text.contains(&head), "{head} missing: {text}");
        }
    }
    assert_eq!(
        text.matches("  problem:  ").count(),
        e.in_dist.mistakes.len().min(3) + ood.mistakes.len().min(3),
        "{text}"
    );
}

#[test]
fn checkpoint_round_trip_gives_identical_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let cfg = TrainConfig {
        steps: 5,
        final_eval_n: 0,
        ..smoke(tmp.path())
    };
    let o = run(&cfg, &opts(&out, false, None)).unwrap();
    let (tensors, step) = read_safetensors(&out.join(MODEL_FILE), &Device::Cpu).unwrap();
    assert_eq!(step, Some(5));
    // A fresh model with other weights, then loaded from the file.
    let (model, params) = Transformer::init(&o.model_config, 99, &Device::Cpu).unwrap();
    params.load(&tensors, &Device::Cpu).unwrap();
    let x = Tensor::from_vec(vec![2u32, 20, 30, 40, 4], (1, 5), &Device::Cpu).unwrap();
    let a: Vec<f32> = model
        .forward(&x, None)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    // The same weights loaded a second time give the same logits bit for bit.
    let (model2, params2) = Transformer::init(&o.model_config, 7, &Device::Cpu).unwrap();
    params2.load(&tensors, &Device::Cpu).unwrap();
    let b: Vec<f32> = model2
        .forward(&x, None)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(a, b);
    let saved: Vec<f32> = tensors["norm.weight"].to_vec1().unwrap();
    let live: Vec<f32> = params.get("norm.weight").unwrap().to_vec1().unwrap();
    assert_eq!(saved, live);
}

#[test]
fn resume_equals_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        steps: 24,
        checkpoint_every: 8,
        dropout: 0.1,
        final_eval_n: 0,
        ..smoke(tmp.path())
    };
    let full = tmp.path().join("full");
    run(&cfg, &opts(&full, false, None)).unwrap();
    let split = tmp.path().join("split");
    run(&cfg, &opts(&split, false, Some(13))).unwrap();
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(split.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["step"], 13);
    run(&cfg, &opts(&split, true, None)).unwrap();
    assert_eq!(weights(&full), weights(&split), "resumed weights differ");
    let rows = |d: &Path| trainer::metrics::read(&d.join("metrics.csv")).unwrap();
    assert_eq!(
        rows(&full).last().unwrap().step,
        rows(&split).last().unwrap().step
    );

    // A different config cannot resume this run.
    let other = TrainConfig {
        lr: cfg.lr * 2.0,
        ..cfg.clone()
    };
    let err = run(&other, &opts(&split, true, None))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("configuration differs") && err.contains("lr"),
        "{err}"
    );
}

#[test]
fn malformed_data_names_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"problem\": \"a\", \"answer\": \"b\"}\nnot json\n").unwrap();
    let cfg = TrainConfig {
        data: vec![bad],
        tasks: "user".into(),
        ..TrainConfig::smoke_preset()
    };
    let err = run(&cfg, &opts(&tmp.path().join("r"), false, None))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("bad.jsonl:2"), "{err}");
}

#[test]
fn shared_tokenizer_and_a_moe_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("first");
    let cfg = TrainConfig {
        steps: 3,
        final_eval_n: 0,
        ..smoke(tmp.path())
    };
    let a = run(&cfg, &opts(&first, false, None)).unwrap();
    // The second run reuses the first's tokenizer (its own vocab_size and
    // tokenizer samples are ignored) and has experts.
    let second = tmp.path().join("second");
    let cfg2 = TrainConfig {
        vocab_size: 270,
        tokenizer_samples: 3,
        tokenizer: first.join("tokenizer.json").display().to_string(),
        moe_experts: 4,
        moe_top_k: 2,
        moe_layers: "1".into(),
        steps: 10,
        ..cfg
    };
    let b = run(&cfg2, &opts(&second, false, None)).unwrap();
    assert_eq!(
        std::fs::read(first.join("tokenizer.json")).unwrap(),
        std::fs::read(second.join("tokenizer.json")).unwrap()
    );
    assert_eq!(a.model_config.vocab_size, b.model_config.vocab_size);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(second.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(
        config["model"]["moe"],
        serde_json::json!({"n_experts": 4, "top_k": 2, "layer_mask": 2})
    );
    // export reads the MoE run directory, and the runtime loads its blob.
    let ckpt = export::load_run(&second).unwrap();
    let blob = trainer::eval::f32_blob(&ckpt).unwrap();
    runtime::Model::from_blob(&blob).unwrap();
    let rows = trainer::metrics::read(&second.join("metrics.csv")).unwrap();
    let last = rows.last().unwrap();
    assert!(last.moe_aux_loss >= 0.99, "aux {}", last.moe_aux_loss);
    let usage: f32 = last
        .expert_usage
        .split('/')
        .map(|u| u.parse::<f32>().unwrap())
        .sum();
    assert!((usage - 1.0).abs() < 0.01, "{}", last.expert_usage);
}
