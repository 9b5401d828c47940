//! The firmware, end to end: build it for Cortex-M with a freshly made blob,
//! run it under QEMU (mps2-an386, Cortex-M4F; mps2-an505, Cortex-M33), and
//! check that it generates exactly the tokens the host runtime generates;
//! check that a corrupt blob is reported, that a stack overflow and a bad
//! access end in the HardFault handler (and that flip-link is what makes the
//! overflow fault), that the real boards (nRF52840, STM32H743, RP2350) build
//! and that a blob too big for a board fails the build with its size.
//!
//! The firmware links with `flip-link`, and the QEMU tests also need
//! `qemu-system-arm` and `defmt-print` (scripts/test.sh installs all three);
//! the Cortex-M33 builds need the `thumbv8m.main-none-eabihf` target.
//! Without them the tests that need them are skipped with a message, unless
//! `CI` is set, where a missing tool is a failure.
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
/// The Cortex-M33 boards' target (Armv8-M Mainline): QEMU mps2-an505 and
/// the RP2350.
const TARGET_M33: &str = "thumbv8m.main-none-eabihf";

/// The target a board's firmware is built for.
fn target_of(board: &str) -> &'static str {
    match board {
        "qemu-m33" | "rp2350" => TARGET_M33,
        _ => TARGET,
    }
}

/// Whether the Cortex-M33 target is installed (scripts/test.sh installs it);
/// panics on CI when it is missing.
fn m33_target() -> bool {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == TARGET_M33)
        })
        // Without rustup, a toolchain may still have it: let the build tell.
        .unwrap_or(true);
    if installed {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(
        !ci,
        "CI is set but the {TARGET_M33} target is not installed (scripts/test.sh installs it)"
    );
    eprintln!("SKIPPED: Cortex-M33 firmware test: rustup target {TARGET_M33} not installed (rustup target add {TARGET_M33})");
    false
}

/// Builds share one target dir (the dependencies compile once) but each
/// writes the same ELF path: a build and the copy of its ELF must not
/// interleave with another test's build.
static BUILD_LOCK: Mutex<()> = Mutex::new(());

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A target dir of its own: the outer `cargo test` holds the lock of target/.
/// Builds linked without flip-link get another one: a change of linker
/// rebuilds every crate of the target.
fn firmware_target_dir(flip_link: bool) -> PathBuf {
    let name = if flip_link {
        "firmware-tests"
    } else {
        "firmware-tests-rust-lld"
    };
    workspace().join("target").join(name)
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
    tools(
        &["flip-link", "qemu-system-arm", "defmt-print"],
        "firmware QEMU test",
    )
}

/// Whether the firmware links (flip-link); panics on CI when it is missing.
fn link_tools() -> bool {
    tools(&["flip-link"], "firmware build test")
}

fn tools(needed: &[&str], what: &str) -> bool {
    let missing: Vec<&str> = needed.iter().copied().filter(|t| !have(t)).collect();
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
        "SKIPPED: {what}: {} not installed (install with scripts/test.sh, or cargo install flip-link defmt-print; apt-get install qemu-system-arm)",
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
    /// Firmware features besides the board's (the `fault-*` builds).
    features: &'a [&'a str],
    /// Link with flip-link, as `.cargo/config.toml` does; `false` links with
    /// plain rust-lld (the stack above the static data).
    flip_link: bool,
    /// The KV cache of the board (`THINKLING_KV`) and of the host run it is
    /// compared with.
    kv: KvDType,
}

const DEFAULT_SETTINGS: Settings<'static> = Settings {
    board: "qemu",
    prompts: &["12+35=", "Ann has 3 bags of 4 pears. How many pears?"],
    context: 96,
    max_new_tokens: 96,
    features: &[],
    flip_link: true,
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
    let target = target_of(s.board);
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
            target,
        ])
        .env("CARGO_TARGET_DIR", firmware_target_dir(s.flip_link))
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
        .env_remove("THINKLING_EVAL")
        .env_remove("THINKLING_EVAL_SEED")
        .env_remove("THINKLING_EVAL_MIX")
        // RUSTFLAGS would replace the config's link arguments.
        .env_remove("RUSTFLAGS");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut features = s.features.join(",");
    if s.board != "qemu" {
        cmd.arg("--no-default-features");
        features = format!("board-{},{features}", s.board);
    }
    if !features.is_empty() {
        cmd.args(["--features", &features]);
    }
    if !s.flip_link {
        cmd.args(["--config", &format!("target.{target}.linker=\"rust-lld\"")]);
    }
    let out = cmd.output().expect("cargo runs");
    if !out.status.success() {
        return (out, None);
    }
    let elf = firmware_target_dir(s.flip_link)
        .join(target)
        .join("firmware")
        .join("firmware");
    let mut name = format!("firmware-{}", s.board);
    for f in s.features {
        name = format!("{name}-{f}");
    }
    if !s.flip_link {
        name += "-rust-lld";
    }
    let copy = out_dir.join(format!("{name}.elf"));
    std::fs::copy(&elf, &copy).expect("copy the firmware ELF");
    (out, Some(copy))
}

/// Runs an ELF under QEMU through the cargo runner; returns the exit code and
/// the decoded log (one line per message).
fn run_qemu(elf: &Path) -> (i32, String) {
    run_qemu_for(elf, 240)
}

/// [`run_qemu`] killed after `timeout_s` seconds (exit code 124). The
/// machine is the board's: [`build_firmware`] names the ELF after it.
fn run_qemu_for(elf: &Path, timeout_s: u32) -> (i32, String) {
    let m33 = elf
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("firmware-qemu-m33"));
    let machine = if m33 { "mps2-an505" } else { "mps2-an386" };
    let out = Command::new(workspace().join("scripts/qemu-run.sh"))
        .args(["--machine", machine])
        .arg(elf)
        .args(["--log-format", "{L} {s}"])
        .env("THINKLING_QEMU_TIMEOUT", timeout_s.to_string())
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

/// The figures of the `summary:` line (`RAM: static S bytes (arena A), stack
/// high water H bytes, total T of R bytes`) add up, and the high-water mark
/// is a real measurement: some stack was used, and less than the whole room
/// (the room the stack painted at boot must be found intact at its far end).
fn check_ram_summary(log: &str) {
    let line = log
        .lines()
        .find(|l| l.contains("summary:"))
        .unwrap_or_else(|| panic!("no summary line; log:\n{log}"));
    let after = |key: &str| -> usize {
        let rest = &line[line
            .find(key)
            .unwrap_or_else(|| panic!("{key:?} in {line}"))
            + key.len()..];
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("{key:?} in {line}"))
    };
    let (statics, arena, high_water, total, ram) = (
        after("static"),
        after("(arena"),
        after("stack high water"),
        after("total"),
        after(" of "),
    );
    assert!(arena > 0 && arena <= statics, "{line}");
    assert_eq!(total, statics + high_water, "{line}");
    assert!(
        (1024..ram - statics).contains(&high_water),
        "stack high water outside (1 KiB, room {}): {line}",
        ram - statics
    );
}

/// The ELF's initial stack pointer (the vector table's first word) lies at
/// or below the start of its static data in RAM: flip-link's layout, where
/// the stack grows down away from the statics (without it the stack starts
/// at the top of RAM, above them).
fn assert_stack_below_static_data(elf: &Path) {
    let bytes = std::fs::read(elf).expect("read the ELF");
    let sections = elf32_sections(&bytes);
    let vectors = sections
        .iter()
        .find(|s| s.name == ".vector_table")
        .expect("a .vector_table section");
    let initial_sp = u32_at(&bytes, vectors.offset);
    let statics = sections
        .iter()
        .filter(|s| matches!(s.name.as_str(), ".data" | ".bss" | ".uninit") && s.size > 0)
        .map(|s| s.addr)
        .min()
        .expect("static data in RAM");
    assert!(
        initial_sp <= statics,
        "{}: the stack starts at {initial_sp:#010x}, above the static data at {statics:#010x}: not linked with flip-link",
        elf.display()
    );
}

struct Section {
    name: String,
    addr: u32,
    offset: usize,
    size: u32,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u16_at(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes(b[at..at + 2].try_into().unwrap()))
}

/// The section headers of a little-endian ELF32 file.
fn elf32_sections(b: &[u8]) -> Vec<Section> {
    assert!(
        b.starts_with(b"\x7fELF\x01\x01"),
        "not a little-endian ELF32"
    );
    let (shoff, shentsize, shnum, shstrndx) = (
        u32_at(b, 0x20) as usize,
        u16_at(b, 0x2E),
        u16_at(b, 0x30),
        u16_at(b, 0x32),
    );
    let header = |i: usize| shoff + i * shentsize;
    let strtab = u32_at(b, header(shstrndx) + 0x10) as usize;
    (0..shnum)
        .map(|i| {
            let h = header(i);
            let name_at = strtab + u32_at(b, h) as usize;
            let len = b[name_at..].iter().position(|&c| c == 0).unwrap();
            Section {
                name: String::from_utf8_lossy(&b[name_at..name_at + len]).into_owned(),
                addr: u32_at(b, h + 0x0C),
                offset: u32_at(b, h + 0x10) as usize,
                size: u32_at(b, h + 0x14),
            }
        })
        .collect()
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
    let (out, elf) = build_firmware(&model, &DEFAULT_SETTINGS, dir.path());
    let elf = elf.unwrap_or_else(|| panic!("firmware build failed:\n{}", stderr(&out)));
    assert_stack_below_static_data(&elf);
    let (log, _) = run_and_match_host(&model, &blob, &DEFAULT_SETTINGS, &[], dir.path());
    check_ram_summary(&log);
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

/// The Cortex-M33 build (thumbv8m.main-none-eabihf with the DSP extension,
/// QEMU mps2-an505) generates the host's tokens, token for token: a q8 and
/// a q4 random blob (half-precision scales, an odd hidden size) and the
/// reference model. Its banner names the Arm DSP and FPU kernels, so the
/// match is that of the same assembly kernels as on the Cortex-M4F, not of
/// a portable fallback.
#[test]
fn m33_firmware_generates_the_host_tokens_under_qemu() {
    if !qemu_tools() || !m33_target() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = Settings {
        board: "qemu-m33",
        ..DEFAULT_SETTINGS
    };
    let q8 = random_blob(small(), DType::Q8, 7);
    let config = ModelConfig {
        hidden_dim: 87,
        ..small()
    };
    let q4 = runtime::testing::random_blob_with_scales(&config, DType::Q4, 32, ScaleType::F16, 12)
        .expect("the random blob encodes");
    for (name, blob) in [("q8", &q8), ("q4", &q4)] {
        let model = dir.path().join(format!("{name}.bin"));
        std::fs::write(&model, blob).unwrap();
        let (log, _) = run_and_match_host(&model, blob, &s, &[], dir.path());
        assert!(
            log.contains("thinkling firmware on qemu-m33"),
            "{name}: not the M33 build; log:\n{log}"
        );
        assert!(
            log.contains("kernels: Arm DSP (SXTB16, UXTB16, SMLAD) and FPU half precision"),
            "{name}: the M33 build does not use the Arm DSP/FPU kernels; log:\n{log}"
        );
        check_ram_summary(&log);
    }
    let model = workspace().join("firmware/models/reference.bin");
    let blob = std::fs::read(&model).expect("firmware/models/reference.bin");
    let s = Settings {
        prompts: &["What is 347 + 589?", "347 x 6"],
        context: 128,
        ..s
    };
    let (_, tokens) = run_and_match_host(&model, &blob, &s, &[], dir.path());
    for (p, got) in tokens.iter().enumerate() {
        assert_eq!(
            got.last(),
            Some(&runtime::format::special::EOS),
            "prompt {p}: the trace does not end with <eos>"
        );
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

/// A small blob for the fault builds: they fault after loading it.
fn fault_build(features: &'static [&'static str], flip_link: bool, dir: &Path) -> PathBuf {
    let model = dir.join("model.bin");
    std::fs::write(&model, random_blob(small(), DType::Q8, 14)).unwrap();
    let s = Settings {
        features,
        flip_link,
        ..DEFAULT_SETTINGS
    };
    let (out, elf) = build_firmware(&model, &s, dir);
    elf.unwrap_or_else(|| panic!("{features:?} build failed:\n{}", stderr(&out)))
}

/// Seconds a fault build may run: it faults within a second; a handler that
/// hung would be killed at this point and exit 124.
const FAULT_RUN_TIMEOUT_S: u32 = 60;

/// The `fault-stack-overflow` build recurses 1 KiB past the end of its
/// stack. Linked with flip-link (as `.cargo/config.toml` has it), the stack
/// sits below the static data and the overflow runs off the bottom of RAM: a
/// HardFault, reported as a stack overflow, exit code 6. The same build
/// linked with plain rust-lld has the stack above the static data: the
/// overflow lands in it and the program runs on, finds its static data
/// overwritten and exits 7.
#[test]
fn flip_link_turns_a_stack_overflow_into_a_hard_fault() {
    if !qemu_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let elf = fault_build(&["fault-stack-overflow"], true, dir.path());
    assert_stack_below_static_data(&elf);
    let (code, log) = run_qemu_for(&elf, FAULT_RUN_TIMEOUT_S);
    assert_eq!(
        code, 6,
        "with flip-link a stack overflow must end in the HardFault handler (exit 6); log:\n{log}"
    );
    assert!(
        log.contains("ERROR HardFault: stack overflow: sp 0x"),
        "the HardFault handler's stack overflow message is missing; log:\n{log}"
    );
    // The fault is the first access past the bottom of RAM, not something
    // that happens later (such as a return through a garbage frame).
    let hex_after = |key: &str| {
        log.split(&format!("{key} 0x"))
            .nth(1)
            .and_then(|rest| rest.get(..8))
            .and_then(|digits| u32::from_str_radix(digits, 16).ok())
            .unwrap_or_else(|| panic!("no {key:?} address in the log:\n{log}"))
    };
    let (end, faulted) = (
        hex_after("below the end of the stack"),
        hex_after("memory management fault at address"),
    );
    assert!(
        (end - 4096..end).contains(&faulted),
        "the overflow must fault just below the end of the stack {end:#010x}, not at {faulted:#010x}; log:\n{log}"
    );

    let elf = fault_build(&["fault-stack-overflow"], false, dir.path());
    let (code, log) = run_qemu_for(&elf, FAULT_RUN_TIMEOUT_S);
    assert_eq!(
        code, 7,
        "without flip-link the overflow is expected to go unnoticed (exit 7); log:\n{log}"
    );
    let overwritten = log
        .lines()
        .find_map(|l| l.split("levels deep, ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no 'did not fault' line; log:\n{log}"));
    assert!(
        overwritten >= 1024,
        "the overflow must have overwritten the 1 KiB past the stack; log:\n{log}"
    );
}

/// The `fault-bad-access` build reads an address nothing answers: a bus
/// fault escalated to HardFault, reported with the faulting address and
/// exit code 6, not a hang.
#[test]
fn bad_access_ends_in_the_hard_fault_handler() {
    if !qemu_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let elf = fault_build(&["fault-bad-access"], true, dir.path());
    let (code, log) = run_qemu_for(&elf, FAULT_RUN_TIMEOUT_S);
    assert_eq!(
        code, 6,
        "a bad access must end in the HardFault handler (exit 6); log:\n{log}"
    );
    assert!(
        log.contains("ERROR HardFault at pc 0x"),
        "the HardFault handler's message is missing; log:\n{log}"
    );
    assert!(
        log.contains("bus fault at address 0x3ffffff0"),
        "the fault status must name the address read; log:\n{log}"
    );
}

/// The real boards' profiles build with a tiny blob: nRF52840 and STM32H743
/// (Cortex-M4F/M7, thumbv7em) and RP2350 (Cortex-M33, thumbv8m.main), the
/// latter with the IMAGE_DEF block its boot ROM needs in the first 4 KiB of
/// flash. None is flashed here (no hardware in the tests).
#[test]
fn the_real_boards_build() {
    if !link_tools() {
        return;
    }
    let m33 = m33_target();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.bin");
    std::fs::write(&model, random_blob(tiny(), DType::Q8, 9)).unwrap();
    for board in ["nrf52840", "stm32h743", "rp2350"] {
        if board == "rp2350" && !m33 {
            continue;
        }
        let s = Settings {
            board,
            prompts: &["12+35="],
            context: 256,
            max_new_tokens: 256,
            ..DEFAULT_SETTINGS
        };
        let (out, elf) = build_firmware(&model, &s, dir.path());
        let elf = elf.unwrap_or_else(|| panic!("{board} build failed:\n{}", stderr(&out)));
        assert_stack_below_static_data(&elf);
        if board == "rp2350" {
            assert_rp2350_image_def(&elf);
        }
    }
}

/// The RP2350 image starts at the flash base 0x1000_0000 with its vector
/// table, and carries the minimal IMAGE_DEF block of the RP2350 datasheet
/// (5.9.5.1) inside its first 4 KiB, where the boot ROM looks for it.
fn assert_rp2350_image_def(elf: &Path) {
    const FLASH: u32 = 0x1000_0000;
    const IMAGE_DEF: [u32; 5] = [0xffff_ded3, 0x1021_0142, 0x0000_01ff, 0, 0xab12_3579];
    let bytes = std::fs::read(elf).expect("read the ELF");
    let sections = elf32_sections(&bytes);
    let find = |name: &str| {
        sections
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{}: no {name} section", elf.display()))
    };
    assert_eq!(
        find(".vector_table").addr,
        FLASH,
        "vector table not at the flash base"
    );
    let block = find(".start_block");
    assert_eq!(block.size, 20, "the IMAGE_DEF block is five words");
    assert!(
        (FLASH..FLASH + 4096 - 20).contains(&block.addr),
        "IMAGE_DEF at {:#010x}, outside the first 4 KiB of flash",
        block.addr
    );
    let words: Vec<u32> = (0..5)
        .map(|i| u32_at(&bytes, block.offset + 4 * i))
        .collect();
    assert_eq!(words, IMAGE_DEF);
    // The code follows the block instead of overlapping it.
    assert!(find(".text").addr >= block.addr + block.size);
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

/// FNV-1a (32 bit) over the ids' little-endian bytes: the board's hash of
/// a problem's generated tokens in evaluation mode.
fn ids_hash(ids: &[u32]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in ids.iter().flat_map(|id| id.to_le_bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// One `eval <i> <task> <ok|wrong>: <n> tokens, ids fnv <hash>, ...` line.
#[derive(Debug, PartialEq)]
struct BoardVerdict {
    ok: bool,
    tokens: usize,
    hash: u32,
}

/// The board's per-problem lines and its `eval: k/N correct` count.
fn board_eval(log: &str, n: usize) -> (Vec<BoardVerdict>, usize) {
    let mut verdicts = Vec::new();
    let mut count = None;
    for line in log.lines() {
        let Some(rest) = line.split_once("eval ").map(|(_, r)| r) else {
            if let Some((_, r)) = line.split_once("eval: ") {
                if let Some((k, total)) = r
                    .split_once(" correct")
                    .and_then(|(f, _)| f.split_once('/'))
                {
                    assert_eq!(total.parse::<usize>().ok(), Some(n), "{line}");
                    count = k.parse::<usize>().ok();
                }
            }
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let Some(i) = words.first().and_then(|w| w.parse::<usize>().ok()) else {
            continue;
        };
        let Some(verdict) = words.get(2).map(|w| w.trim_end_matches(':')) else {
            continue;
        };
        if verdict != "ok" && verdict != "wrong" {
            continue;
        }
        assert_eq!(i, verdicts.len(), "eval lines out of order: {line}");
        let tokens = words.get(3).and_then(|w| w.parse().ok());
        let hash = words
            .get(7)
            .and_then(|w| w.trim_end_matches(',').strip_prefix("0x"))
            .and_then(|h| u32::from_str_radix(h, 16).ok());
        let (Some(tokens), Some(hash)) = (tokens, hash) else {
            panic!("malformed eval line: {line}");
        };
        verdicts.push(BoardVerdict {
            ok: verdict == "ok",
            tokens,
            hash,
        });
    }
    let count = count.unwrap_or_else(|| panic!("no 'eval: k/{n} correct' line; log:\n{log}"));
    (verdicts, count)
}

/// Evaluation mode (`THINKLING_EVAL`): the reference blob scores itself on
/// 8 held-out problems on the board. Its count must be the host's, as
/// export's evaluation computes it for the same problems and settings
/// (greedy, context 256, f16 KV cache), and so must every problem's verdict
/// and generated tokens (by their hash and count).
#[test]
fn board_accuracy_equals_the_host_accuracy_under_qemu() {
    if !qemu_tools() {
        return;
    }
    const N: usize = 8;
    const SEED: u64 = 1234;
    let dir = tempfile::tempdir().unwrap();
    let model = workspace().join("firmware/models/reference.bin");
    let blob = std::fs::read(&model).expect("firmware/models/reference.bin");
    let s = Settings {
        prompts: &[],
        context: 256,
        max_new_tokens: 256,
        ..DEFAULT_SETTINGS
    };
    let env = [
        ("THINKLING_EVAL", N.to_string()),
        ("THINKLING_EVAL_SEED", SEED.to_string()),
    ];
    let (out, elf) = build_firmware_env(&model, &s, dir.path(), &env);
    let elf = elf.unwrap_or_else(|| panic!("firmware build failed:\n{}", stderr(&out)));
    let (code, log) = run_qemu_for(&elf, 120);
    assert_eq!(code, 0, "firmware exit code {code}; log:\n{log}");
    let (board, board_count) = board_eval(&log, N);
    assert_eq!(board.len(), N, "log:\n{log}");
    // The build checks the RAM with a 24 KiB stack reserve: the run must stay in it.
    let high_water: usize = log
        .split("stack high water ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no stack high water; log:\n{log}"));
    assert!(
        (1024..24 * 1024).contains(&high_water),
        "stack high water {high_water} bytes; log:\n{log}"
    );

    let problems = tasks::held_out_set(&tasks::Mix::default_mix(), N, SEED);
    let options = export::eval::EvalOptions {
        max_new_tokens: s.max_new_tokens,
        think_budget: None,
        context: s.context,
        kv: s.kv,
    };
    let host = export::eval::evaluate_blob(&blob, &problems, &options).expect("host evaluation");
    let host_count = N - host.mistakes.len();
    assert_eq!(
        board_count, host_count,
        "the board counts {board_count}/{N} correct, the host {host_count}/{N}; log:\n{log}"
    );
    // A model that answers nothing would not exercise the check; whether
    // the check also rejects is tested on the host (runtime::answer against
    // tasks::verify in tasks/tests/answer_check.rs), and every verdict must
    // be the host's below.
    assert!(
        host_count >= 1,
        "expected some right answers, the host has {host_count}/{N}"
    );

    let prompts: Vec<&str> = problems.iter().map(|p| p.problem.as_str()).collect();
    let host_ids = host_tokens(
        &blob,
        &Settings {
            prompts: &prompts,
            ..s
        },
    );
    for (i, (p, got)) in problems.iter().zip(&board).enumerate() {
        let ids = &host_ids[i];
        let right = !host.mistakes.iter().any(|m| m.problem == p.problem);
        let want = BoardVerdict {
            ok: right,
            tokens: ids.len(),
            hash: ids_hash(ids),
        };
        assert_eq!(
            got, &want,
            "problem {i} ({:?}, expected {:?}): board and host differ; log:\n{log}",
            p.problem, p.answer
        );
    }
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
            ..DEFAULT_SETTINGS
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
