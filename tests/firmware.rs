//! The firmware, end to end: build it for Cortex-M with a freshly made blob,
//! run it under QEMU (mps2-an386), and check that it generates exactly the
//! tokens the host runtime generates; check that a corrupt blob is reported,
//! that both real boards build and that a blob too big for a board fails the
//! build with its size.
//!
//! The QEMU tests need `qemu-system-arm` and `defmt-print` (scripts/test.sh
//! installs them). Without them they are skipped with a message, unless `CI`
//! is set, where a missing tool is a failure.
//!
//! Not run by default (`--ignored`), for docs/benchmarks.md:
//! - `measure_tiny_shape` prints the instructions per token of the tiny shape.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use runtime::format::{DType, ModelConfig, MoeConfig, ScaleType};
use runtime::generate::{generate, GenerateConfig, Span};
use runtime::memory::{plan, KvDType};
use runtime::model::Model;
use runtime::sampling::SamplerConfig;
use runtime::session::Session;

const TARGET: &str = "thumbv7em-none-eabihf";

/// Builds share one target dir (the dependencies compile once) but each
/// writes the same ELF path: a build and the copy of its ELF must not
/// interleave with another test's build.
static BUILD_LOCK: Mutex<()> = Mutex::new(());

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A target dir of its own: the outer `cargo test` holds the lock of target/.
fn firmware_target_dir() -> PathBuf {
    workspace().join("target").join("firmware-tests")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether the QEMU tests can run; panics on CI when a tool is missing.
fn qemu_tools() -> bool {
    let missing: Vec<&str> = ["qemu-system-arm", "defmt-print"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(
        !ci,
        "CI is set but {} not installed (scripts/test.sh installs them)",
        missing.join(" and ")
    );
    eprintln!(
        "SKIPPED: firmware QEMU test: {} not installed (install with scripts/test.sh, or apt-get install qemu-system-arm; cargo install defmt-print)",
        missing.join(" and ")
    );
    false
}

// ---------------------------------------------------------------------------
// Blobs: random weights (runtime::testing) in a few shapes.

/// dim 64, 5 layers, 8 heads, 4 kv heads, hidden 172, vocab 512.
fn tiny() -> ModelConfig {
    runtime::testing::tiny_config()
}

/// A small shape for quick QEMU runs.
fn small() -> ModelConfig {
    ModelConfig {
        dim: 32,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        hidden_dim: 86,
        vocab_size: 320,
        max_seq_len: 256,
        embedding_scale: (32f32).sqrt(),
        ..tiny()
    }
}

/// Matrices in `dtype` (groups of 32 along rows for Q8/Q4), norms in f32.
fn random_blob(config: ModelConfig, dtype: DType, seed: u64) -> Vec<u8> {
    runtime::testing::random_blob(&config, dtype, 32, seed).expect("the random blob encodes")
}

// ---------------------------------------------------------------------------
// Building and running the firmware.

struct Settings<'a> {
    board: &'a str,
    prompts: &'a [&'a str],
    context: usize,
    max_new_tokens: usize,
    /// The KV cache of the board (`THINKLING_KV`) and of the host run it is
    /// compared with.
    kv: KvDType,
}

const DEFAULT_SETTINGS: Settings<'static> = Settings {
    board: "qemu",
    prompts: &["12+35=", "Ann has 3 bags of 4 pears. How many pears?"],
    context: 96,
    max_new_tokens: 96,
    kv: KvDType::F16,
};

/// Builds the firmware with `model` embedded; on success returns a private
/// copy of the ELF.
fn build_firmware(model: &Path, s: &Settings<'_>, out_dir: &Path) -> (Output, Option<PathBuf>) {
    build_firmware_env(model, s, out_dir, &[])
}

/// [`build_firmware`] with extra build environment (e.g. a draft model).
fn build_firmware_env(
    model: &Path,
    s: &Settings<'_>,
    out_dir: &Path,
    extra_env: &[(&str, String)],
) -> (Output, Option<PathBuf>) {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    // From the workspace root, so .cargo/config.toml's link arguments apply.
    cmd.current_dir(workspace())
        .args([
            "build",
            "--profile",
            "firmware",
            "-p",
            "firmware",
            "--target",
            TARGET,
        ])
        .env("CARGO_TARGET_DIR", firmware_target_dir())
        .env("THINKLING_MODEL", model)
        .env("THINKLING_PROMPTS", s.prompts.join("|"))
        .env("THINKLING_CONTEXT", s.context.to_string())
        .env("THINKLING_MAX_NEW_TOKENS", s.max_new_tokens.to_string())
        .env("THINKLING_KV", s.kv.name())
        .env("DEFMT_LOG", "info")
        .env_remove("THINKLING_THINK_BUDGET")
        .env_remove("THINKLING_TEXT_BYTES")
        .env_remove("THINKLING_DRAFT_MODEL")
        .env_remove("THINKLING_SPEC_K")
        // RUSTFLAGS would replace the config's link arguments.
        .env_remove("RUSTFLAGS");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    if s.board != "qemu" {
        cmd.args([
            "--no-default-features",
            "--features",
            &format!("board-{}", s.board),
        ]);
    }
    let out = cmd.output().expect("cargo runs");
    if !out.status.success() {
        return (out, None);
    }
    let elf = firmware_target_dir()
        .join(TARGET)
        .join("firmware")
        .join("firmware");
    let copy = out_dir.join(format!("firmware-{}.elf", s.board));
    std::fs::copy(&elf, &copy).expect("copy the firmware ELF");
    (out, Some(copy))
}

/// Runs an ELF under QEMU through the cargo runner; returns the exit code and
/// the decoded log (one line per message).
fn run_qemu(elf: &Path) -> (i32, String) {
    let out = Command::new(workspace().join("scripts/qemu-run.sh"))
        .arg(elf)
        .args(["--log-format", "{L} {s}"])
        .env("THINKLING_QEMU_TIMEOUT", "240")
        .output()
        .expect("scripts/qemu-run.sh runs");
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), log)
}

/// Generated token ids per prompt, from the firmware's `token <prompt> <id> <span> ...` lines.
fn firmware_tokens(log: &str, prompts: usize) -> Vec<Vec<u32>> {
    let mut tokens = vec![Vec::new(); prompts];
    for line in log.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = words.iter().position(|w| *w == "token") else {
            continue;
        };
        let (Some(p), Some(id), Some(span)) =
            (words.get(at + 1), words.get(at + 2), words.get(at + 3))
        else {
            continue;
        };
        let (Ok(p), Ok(id)) = (p.parse::<usize>(), id.parse::<u32>()) else {
            continue;
        };
        if *span != "prompt" && p < prompts {
            tokens[p].push(id);
        }
    }
    tokens
}

/// What the host runtime generates with the firmware's settings.
fn host_tokens(blob: &[u8], s: &Settings<'_>) -> Vec<Vec<u32>> {
    let model = Model::from_blob(blob).expect("blob loads on the host");
    let mut arena = vec![0u8; plan(model.config(), s.context, s.kv).total_bytes];
    let mut session = Session::new(&model, &mut arena, s.context, s.kv).expect("session");
    let cfg = GenerateConfig {
        sampler: SamplerConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        },
        max_new_tokens: s.max_new_tokens,
        think_budget: None,
    };
    let mut text = vec![0u8; 1024];
    s.prompts
        .iter()
        .map(|p| {
            let mut ids = Vec::new();
            generate(&mut session, p, &cfg, &mut text, &mut |ev| {
                if ev.span != Span::Prompt {
                    ids.push(ev.id)
                }
            })
            .expect("host generation");
            ids
        })
        .collect()
}

/// Builds the firmware with `model` (whose bytes are `blob`) embedded, runs
/// it under QEMU, checks exit code 0 and that every prompt's generated tokens
/// equal the host runtime's greedy tokens (the target alone, when `env`
/// names a draft); returns the log and the tokens per prompt.
fn run_and_match_host(
    model: &Path,
    blob: &[u8],
    s: &Settings<'_>,
    env: &[(&str, String)],
    dir: &Path,
) -> (String, Vec<Vec<u32>>) {
    let (out, elf) = build_firmware_env(model, s, dir, env);
    let elf = elf.unwrap_or_else(|| panic!("firmware build failed:\n{}", stderr(&out)));
    let (code, log) = run_qemu(&elf);
    assert_eq!(code, 0, "firmware exit code {code}; log:\n{log}");
    let expected = host_tokens(blob, s);
    let got = firmware_tokens(&log, s.prompts.len());
    assert_eq!(got.len(), expected.len());
    for (p, (got, expected)) in got.iter().zip(&expected).enumerate() {
        assert!(
            !expected.is_empty(),
            "the host generated nothing for prompt {p}"
        );
        assert_eq!(
            got, expected,
            "prompt {p}: firmware tokens differ from the host's; log:\n{log}"
        );
    }
    (log, got)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ---------------------------------------------------------------------------

#[test]
fn firmware_generates_the_host_tokens_under_qemu() {
    if !qemu_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let blob = random_blob(small(), DType::Q8, 7);
    let model = dir.path().join("model.bin");
    std::fs::write(&model, &blob).unwrap();
    let (log, _) = run_and_match_host(&model, &blob, &DEFAULT_SETTINGS, &[], dir.path());
    assert!(log.contains("summary:"), "no summary line; log:\n{log}");
}

/// Q4 blobs with half-precision scales (as export writes them) and with
/// f32 scales, and an odd hidden size, so every Q4 row of the FFN's down
/// projection ends in a short group of odd length: the board's Q4 kernels
/// must give the host's tokens.
#[test]
fn q4_firmware_generates_the_host_tokens_under_qemu() {
    if !qemu_tools() {
        return;
    }
    let config = ModelConfig {
        hidden_dim: 87,
        ..small()
    };
    for scales in [ScaleType::F16, ScaleType::F32] {
        let dir = tempfile::tempdir().unwrap();
        let blob = runtime::testing::random_blob_with_scales(&config, DType::Q4, 32, scales, 12)
            .expect("the random blob encodes");
        let model = dir.path().join("model.bin");
        std::fs::write(&model, &blob).unwrap();
        let (log, _) = run_and_match_host(&model, &blob, &DEFAULT_SETTINGS, &[], dir.path());
        assert!(
            log.contains("summary:"),
            "{scales:?}: no summary line; log:\n{log}"
        );
    }
}

/// A mixture-of-experts blob (4 experts, top 2, in the second layer only)
/// runs on the board with the host's tokens: the router, the choice of
/// experts and their weighted sum are the same on both.
#[test]
fn moe_firmware_generates_the_host_tokens_under_qemu() {
    if !qemu_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = ModelConfig {
        moe: Some(MoeConfig {
            n_experts: 4,
            top_k: 2,
            layer_mask: 0b10,
        }),
        ..small()
    };
    let blob = random_blob(config, DType::Q8, 13);
    let model = dir.path().join("model.bin");
    std::fs::write(&model, &blob).unwrap();
    let (log, _) = run_and_match_host(&model, &blob, &DEFAULT_SETTINGS, &[], dir.path());
    assert!(log.contains("moe true"), "not an MoE model; log:\n{log}");
}

/// Speculative decoding on the board (THINKLING_DRAFT_MODEL): a q8 target
/// with the same weights quantized to q4 as its draft. The tokens must be the
/// host's target-only greedy tokens; the log compares instructions per token.
#[test]
fn speculative_firmware_generates_the_target_tokens_under_qemu() {
    if !qemu_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // An LM head of its own: with tied random embeddings every model just
    // repeats its input token and any draft would be right.
    let config = ModelConfig {
        tied_embeddings: false,
        ..small()
    };
    let target = random_blob(config, DType::Q8, 7);
    let draft = random_blob(config, DType::Q4, 7);
    let (tp, dp) = (dir.path().join("target.bin"), dir.path().join("draft.bin"));
    std::fs::write(&tp, &target).unwrap();
    std::fs::write(&dp, &draft).unwrap();
    let s = Settings {
        max_new_tokens: 60,
        ..DEFAULT_SETTINGS
    };
    let env = [
        ("THINKLING_DRAFT_MODEL", dp.display().to_string()),
        ("THINKLING_SPEC_K", "3".to_string()),
    ];
    let (log, _) = run_and_match_host(&tp, &target, &s, &env, dir.path());
    let spec_lines: Vec<&str> = log.lines().filter(|l| l.contains(" spec ")).collect();
    assert_eq!(spec_lines.len(), s.prompts.len(), "log:\n{log}");
    for line in spec_lines.iter().chain(
        log.lines()
            .filter(|l| l.contains("summary:"))
            .collect::<Vec<_>>()
            .iter(),
    ) {
        println!("{line}");
    }
}

#[test]
fn corrupt_blob_is_reported_with_the_runtime_error() {
    if !qemu_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut blob = random_blob(small(), DType::Q8, 8);
    let mid = blob.len() / 2;
    blob[mid] ^= 0x40;
    let expected = Model::from_blob(&blob)
        .expect_err("a flipped byte is detected")
        .to_string();
    let model = dir.path().join("corrupt.bin");
    std::fs::write(&model, &blob).unwrap();
    let (out, elf) = build_firmware(&model, &DEFAULT_SETTINGS, dir.path());
    let elf = elf.unwrap_or_else(|| {
        panic!(
            "a corrupt blob must still build (it is reported at boot):\n{}",
            stderr(&out)
        )
    });
    let (code, log) = run_qemu(&elf);
    assert_eq!(code, 3, "a blob error exits with code 3; log:\n{log}");
    assert!(
        log.contains(&expected),
        "the log lacks the runtime's error {expected:?}; log:\n{log}"
    );
}

#[test]
fn both_real_boards_build() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.bin");
    std::fs::write(&model, random_blob(tiny(), DType::Q8, 9)).unwrap();
    for board in ["nrf52840", "stm32h743"] {
        let s = Settings {
            board,
            prompts: &["12+35="],
            context: 256,
            max_new_tokens: 256,
            ..DEFAULT_SETTINGS
        };
        let (out, elf) = build_firmware(&model, &s, dir.path());
        assert!(elf.is_some(), "{board} build failed:\n{}", stderr(&out));
    }
}

#[test]
fn blob_too_big_for_the_board_fails_the_build() {
    let dir = tempfile::tempdir().unwrap();
    // f32 weights of dim 128 x 4 layers: about 3.3 MB, over the nRF52840's 1 MiB.
    let big = ModelConfig {
        dim: 128,
        n_layers: 4,
        hidden_dim: 344,
        ..tiny()
    };
    let blob = random_blob(big, DType::F32, 10);
    let model = dir.path().join("big.bin");
    std::fs::write(&model, &blob).unwrap();
    let s = Settings {
        board: "nrf52840",
        prompts: &["1+1="],
        context: 64,
        max_new_tokens: 8,
        ..DEFAULT_SETTINGS
    };
    let (out, elf) = build_firmware(&model, &s, dir.path());
    let err = stderr(&out);
    assert!(
        elf.is_none(),
        "a {} byte blob must not build for the nrf52840",
        blob.len()
    );
    assert!(
        err.contains(&format!(
            "is {} bytes, too big for board nrf52840",
            blob.len()
        )) && err.contains("bytes are room for a blob"),
        "the build error must give the blob size and the room:\n{err}"
    );
}

/// The committed reference blob (a model trained and exported by the
/// project's pipeline, see README) reasons on the board exactly as on the
/// host: same tokens, and every trace opens and closes its think and answer
/// spans and ends with `<eos>`.
#[test]
fn reference_model_reasons_on_the_board_as_on_the_host() {
    if !qemu_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = workspace().join("firmware/models/reference.bin");
    let blob = std::fs::read(&model).expect("firmware/models/reference.bin");
    let s = Settings {
        board: "qemu",
        prompts: &["What is 347 + 589?", "512 minus 498", "347 x 6"],
        context: 128,
        max_new_tokens: 96,
        ..DEFAULT_SETTINGS
    };
    let (_, tokens) = run_and_match_host(&model, &blob, &s, &[], dir.path());
    use runtime::format::special::{ANSWER, END_ANSWER, END_THINK, EOS, THINK};
    for (p, got) in tokens.iter().enumerate() {
        for t in [THINK, END_THINK, ANSWER, END_ANSWER] {
            assert!(
                got.contains(&t),
                "prompt {p}: token {t} missing from the trace {got:?}"
            );
        }
        assert_eq!(
            got.last(),
            Some(&EOS),
            "prompt {p}: the trace does not end with <eos>"
        );
    }
}

/// The q8 KV cache (`THINKLING_KV=q8`) on the board gives the host's tokens
/// with the same cache: on the reference model (a head of 16 values, one
/// group of 32 per position) it still reasons to `<eos>`, and on the small
/// random model (a row of 16 values: one short group).
#[test]
fn q8_kv_firmware_generates_the_host_tokens_under_qemu() {
    if !qemu_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = workspace().join("firmware/models/reference.bin");
    let blob = std::fs::read(&model).expect("firmware/models/reference.bin");
    let s = Settings {
        prompts: &["What is 347 + 589?", "347 x 6"],
        context: 128,
        kv: KvDType::Q8,
        ..DEFAULT_SETTINGS
    };
    let (log, tokens) = run_and_match_host(&model, &blob, &s, &[], dir.path());
    assert!(
        log.contains("q8 KV cache"),
        "the memory plan does not name the q8 cache; log:\n{log}"
    );
    for (p, got) in tokens.iter().enumerate() {
        assert_eq!(
            got.last(),
            Some(&runtime::format::special::EOS),
            "prompt {p}: the trace does not end with <eos>"
        );
    }
    let blob = random_blob(small(), DType::Q8, 7);
    let model = dir.path().join("model.bin");
    std::fs::write(&model, &blob).unwrap();
    let s = Settings {
        kv: KvDType::Q8,
        ..DEFAULT_SETTINGS
    };
    run_and_match_host(&model, &blob, &s, &[], dir.path());
}

/// `cargo test --release --test firmware -- --ignored --nocapture measure_tiny_shape`
#[test]
#[ignore = "measurement for docs/benchmarks.md (about two minutes)"]
fn measure_tiny_shape() {
    assert!(qemu_tools(), "needs qemu-system-arm and defmt-print");
    let dir = tempfile::tempdir().unwrap();
    let blob = random_blob(tiny(), DType::Q8, 11);
    let model = dir.path().join("tiny.bin");
    std::fs::write(&model, &blob).unwrap();
    for kv in [KvDType::F16, KvDType::Q8] {
        let s = Settings {
            board: "qemu",
            prompts: &["12+35="],
            context: 256,
            max_new_tokens: 256,
            kv,
        };
        let (out, elf) = build_firmware(&model, &s, dir.path());
        let elf = elf.unwrap_or_else(|| panic!("build failed:\n{}", stderr(&out)));
        let (code, log) = run_qemu(&elf);
        assert_eq!(code, 0, "log:\n{log}");
        println!(
            "tiny shape q8, {} KV cache, blob {} bytes",
            kv.name(),
            blob.len()
        );
        for line in log.lines().filter(|l| !l.contains("INFO  token ")) {
            println!("{line}");
        }
        assert_eq!(firmware_tokens(&log, 1), host_tokens(&blob, &s));
    }
}
