//! Build script of the firmware: picks the board's memory layout, embeds the
//! model blob, and sizes the session arena from the blob's own config so that
//! all RAM use is static and checked before anything is linked.
//!
//! Settings (environment, read at build time):
//! - `THINKLING_MODEL`: path of the blob (relative paths are taken from the
//!   workspace root); default `firmware/models/reference.bin`.
//! - `THINKLING_PROMPTS`: prompts separated by `|`; default a small built-in list.
//! - `THINKLING_CONTEXT`: session context in tokens; default min(256, model max).
//! - `THINKLING_KV`: `f16` (default) or `f32` KV cache.
//! - `THINKLING_MAX_NEW_TOKENS`: per prompt; default the context (runs until full).
//! - `THINKLING_THINK_BUDGET`: think tokens before the answer is forced; default none.
//! - `THINKLING_TEXT_BYTES`: buffer for the decoded think/answer text; default 1024.
//! - `THINKLING_DRAFT_MODEL`: a draft blob with the target's tokenizer; the
//!   prompts then run with speculative decoding (and once more with the target
//!   alone, for the cost comparison). Default none.
//! - `THINKLING_SPEC_K`: draft tokens per step with a draft model; default 4.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

/// Stack kept free above the static data. The engine keeps its buffers in the
/// arena, but the stack holds the `Model` table (about 8 KiB on Cortex-M, and
/// copied once when it is returned), call frames and defmt encoding; the
/// painted high-water mark, logged at the end of a run, is about 18 KiB.
const STACK_RESERVE: usize = 24 * 1024;
/// More stack with a draft model: a second `Model` table and session, and
/// the speculative loop (measured high water ≈ 49 KiB with the reference blob).
const SPEC_STACK_EXTRA: usize = 32 * 1024;
/// Static data besides the arena and text buffer: the defmt RTT buffer (1 KiB)
/// and a few counters.
const OTHER_STATIC: usize = 2 * 1024;
/// Flash kept for code and constant data besides the blob (measured: about
/// 100 KiB at opt-level 3; see firmware/README.md).
const CODE_RESERVE: usize = 128 * 1024;

/// Problems written the way people type them (the built-in tasks train on
/// such forms), so a model trained by the trainer answers them.
const DEFAULT_PROMPTS: &[&str] = &[
    "What is 347 + 589?",
    "512 minus 498",
    "347 x 6",
    "Tom has 5 apples and eats 2. How many are left?",
];

struct Board {
    name: &'static str,
    memory_x: &'static str,
    /// Cycle counter the firmware uses, and whether its ticks are instructions.
    counter: &'static str,
}

const BOARDS: &[(&str, Board)] = &[
    (
        "CARGO_FEATURE_BOARD_QEMU",
        Board {
            name: "qemu",
            memory_x: "memory/qemu.x",
            counter: "systick",
        },
    ),
    (
        "CARGO_FEATURE_BOARD_NRF52840",
        Board {
            name: "nrf52840",
            memory_x: "memory/nrf52840.x",
            counter: "dwt",
        },
    ),
    (
        "CARGO_FEATURE_BOARD_STM32H743",
        Board {
            name: "stm32h743",
            memory_x: "memory/stm32h743.x",
            counter: "dwt",
        },
    ),
];

fn fail(msg: &str) -> ! {
    // stderr of a failed build script is what cargo shows the user.
    eprintln!("error: {msg}");
    std::process::exit(1);
}

fn env_var(name: &str) -> Option<String> {
    println!("cargo:rerun-if-env-changed={name}");
    env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_usize(name: &str) -> Option<usize> {
    env_var(name).map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| fail(&format!("{name}={v:?} is not a non-negative integer")))
    })
}

/// `LENGTH` of a region in a memory.x (`1024K`, `2M` or a plain number).
fn region_length(memory_x: &str, region: &str) -> usize {
    let line = memory_x
        .lines()
        .find(|l| l.trim_start().starts_with(region) && l.contains("LENGTH"))
        .unwrap_or_else(|| fail(&format!("memory.x has no {region} region")));
    let value = line
        .split("LENGTH")
        .nth(1)
        .and_then(|s| s.split('=').nth(1))
        .unwrap_or("")
        .trim();
    let (digits, unit) = match value.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()) {
        v if v.ends_with('K') => (&v[..v.len() - 1], 1024),
        v if v.ends_with('M') => (&v[..v.len() - 1], 1024 * 1024),
        v => (v, 1),
    };
    digits
        .parse::<usize>()
        .map(|n| n * unit)
        .unwrap_or_else(|_| fail(&format!("cannot read {region} LENGTH in memory.x")))
}

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let workspace = manifest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.clone());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_default());
    println!("cargo:rerun-if-changed=build.rs");
    let on_mcu = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none")
        && env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("arm");

    // Board: exactly one feature.
    let chosen: Vec<&Board> = BOARDS
        .iter()
        .filter(|(f, _)| env::var_os(f).is_some())
        .map(|(_, b)| b)
        .collect();
    let board = match chosen.as_slice() {
        [b] => *b,
        [] => fail("no board feature: enable one of board-qemu, board-nrf52840, board-stm32h743"),
        _ => fail("more than one board feature: use --no-default-features --features board-<name>"),
    };
    let memory_path = manifest.join(board.memory_x);
    println!("cargo:rerun-if-changed={}", memory_path.display());
    let memory_x = fs::read_to_string(&memory_path)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", memory_path.display())));
    let flash_bytes = region_length(&memory_x, "FLASH");
    let ram_bytes = region_length(&memory_x, "RAM");
    if on_mcu {
        // cortex-m-rt's link.x INCLUDEs memory.x from the link search path.
        fs::write(out.join("memory.x"), &memory_x)
            .unwrap_or_else(|e| fail(&format!("writing memory.x: {e}")));
        println!("cargo:rustc-link-search={}", out.display());
    }

    // The blob.
    let model_path = match env_var("THINKLING_MODEL") {
        Some(p) if Path::new(&p).is_absolute() => PathBuf::from(p),
        Some(p) => workspace.join(p),
        None => manifest.join("models/reference.bin"),
    };
    println!("cargo:rerun-if-changed={}", model_path.display());
    let blob = fs::read(&model_path).unwrap_or_else(|e| {
        fail(&format!(
            "cannot read the model blob {}: {e} (set THINKLING_MODEL)",
            model_path.display()
        ))
    });

    let kv = match env_var("THINKLING_KV")
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("f16") => runtime::memory::KvDType::F16,
        Some("f32") => runtime::memory::KvDType::F32,
        Some(other) => fail(&format!("THINKLING_KV={other:?}: expected f16 or f32")),
    };
    let kv_name = if kv == runtime::memory::KvDType::F16 {
        "F16"
    } else {
        "F32"
    };

    // A blob that does not load is still embedded: the firmware must report the
    // runtime's error at boot (and the tests check that it does).
    let (config, blob_error) = match runtime::blob::parse(&blob) {
        Ok(b) => (Some(b.config), None),
        Err(e) => {
            println!("cargo:warning=model blob {} does not load ({e}); the firmware will report it at boot", model_path.display());
            (None, Some(e.to_string()))
        }
    };
    let context = env_usize("THINKLING_CONTEXT")
        .unwrap_or_else(|| config.map_or(256, |c| 256.min(c.max_seq_len as usize)));
    if context == 0 {
        fail("THINKLING_CONTEXT must be positive");
    }
    // Speculative decoding: a draft blob and its own arena; the target's
    // arena grows by the batch region (k + 1 rows).
    let draft_path = env_var("THINKLING_DRAFT_MODEL").map(|p| {
        if Path::new(&p).is_absolute() {
            PathBuf::from(p)
        } else {
            workspace.join(p)
        }
    });
    let spec_k_env = env_usize("THINKLING_SPEC_K");
    let draft_blob = draft_path.as_ref().map(|p| {
        println!("cargo:rerun-if-changed={}", p.display());
        fs::read(p).unwrap_or_else(|e| {
            fail(&format!(
                "cannot read the draft blob {}: {e} (THINKLING_DRAFT_MODEL)",
                p.display()
            ))
        })
    });
    let spec_k = match (&draft_blob, spec_k_env) {
        (None, _) => 0,
        (Some(_), Some(0)) => fail("THINKLING_SPEC_K must be at least 1"),
        (Some(_), Some(k)) => k.min(runtime::speculative::MAX_K),
        (Some(_), None) => 4,
    };
    let draft_config = draft_blob.as_ref().map(|b| {
        runtime::blob::parse(b)
            .map(|d| d.config)
            .unwrap_or_else(|e| {
                fail(&format!(
                    "draft blob {} does not load: {e}",
                    draft_path
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ))
            })
    });
    if let (Some(d), Some(c)) = (draft_config, config) {
        if d.vocab_size != c.vocab_size {
            fail(&format!(
                "draft vocabulary of {} tokens differs from the target's {}: the draft needs the target's tokenizer",
                d.vocab_size, c.vocab_size
            ));
        }
        if (d.max_seq_len as usize) < context {
            fail(&format!(
                "the draft model's context of {} is below THINKLING_CONTEXT {context}",
                d.max_seq_len
            ));
        }
    }
    let draft_arena_bytes = draft_config.map_or(0, |d| {
        runtime::memory::plan_draft(&d, context, kv, spec_k).total_bytes
    });
    let plan = config.map(|c| {
        if spec_k > 0 {
            runtime::memory::plan_speculative(&c, context, kv, spec_k)
        } else {
            runtime::memory::plan(&c, context, kv)
        }
    });
    let arena_bytes = plan.map_or(0, |p| p.total_bytes);
    let text_bytes = env_usize("THINKLING_TEXT_BYTES").unwrap_or(1024);
    let max_new_tokens = env_usize("THINKLING_MAX_NEW_TOKENS").unwrap_or(context);
    let think_budget = env_usize("THINKLING_THINK_BUDGET");
    let prompts: Vec<String> = match env_var("THINKLING_PROMPTS") {
        Some(p) => p
            .split('|')
            .map(str::to_owned)
            .filter(|p| !p.is_empty())
            .collect(),
        None => DEFAULT_PROMPTS.iter().map(|p| (*p).to_owned()).collect(),
    };

    // Fit checks, with the numbers a user needs to pick a smaller model.
    if on_mcu {
        let room = flash_bytes.saturating_sub(CODE_RESERVE);
        let draft_len = draft_blob.as_ref().map_or(0, Vec::len);
        if draft_len > 0 && blob.len() + draft_len > room {
            fail(&format!(
                "model blob ({} bytes) and draft blob ({draft_len} bytes) are too big for board {}: {room} bytes of its flash are room for blobs",
                blob.len(),
                board.name
            ));
        }
        if blob.len() > room {
            fail(&format!(
                "model blob {} is {} bytes, too big for board {}: its flash is {} bytes, of which {} bytes are room \
                 for a blob ({} kept for code). Use a smaller model or a stronger quantization (q4).",
                model_path.display(),
                blob.len(),
                board.name,
                flash_bytes,
                room,
                CODE_RESERVE
            ));
        }
        let stack_reserve = STACK_RESERVE + if spec_k > 0 { SPEC_STACK_EXTRA } else { 0 };
        let ram_needed =
            arena_bytes + draft_arena_bytes + text_bytes + OTHER_STATIC + stack_reserve;
        if ram_needed > ram_bytes {
            let p = plan.unwrap_or(runtime::memory::MemoryPlan {
                kv_cache_bytes: 0,
                scratch_bytes: 0,
                total_bytes: 0,
            });
            // Halving the KV cache is only a remedy while it is f32.
            let remedy = if kv_name == "F32" {
                "Lower THINKLING_CONTEXT or use THINKLING_KV=f16."
            } else {
                "Lower THINKLING_CONTEXT or use a board with more RAM."
            };
            fail(&format!(
                "model needs {} bytes of RAM at context {context} with a {kv_name} KV cache (KV cache {}, scratch {}, \
                 text {text_bytes}, draft arena {draft_arena_bytes}, other static {OTHER_STATIC}, stack {stack_reserve}), board {} has {} bytes. \
                 {remedy}",
                ram_needed, p.kv_cache_bytes, p.scratch_bytes, board.name, ram_bytes
            ));
        }
    }

    // The generated settings, included by src/main.rs.
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "// Generated by build.rs from the environment; see firmware/build.rs."
    );
    let _ = writeln!(w, "pub const BOARD: &str = {:?};", board.name);
    let _ = writeln!(w, "pub const COUNTER: &str = {:?};", board.counter);
    let _ = writeln!(w, "pub const FLASH_BYTES: usize = {flash_bytes};");
    let _ = writeln!(w, "pub const RAM_BYTES: usize = {ram_bytes};");
    let _ = writeln!(
        w,
        "pub const MODEL_PATH: &str = {:?};",
        model_path.display().to_string()
    );
    let _ = writeln!(w, "pub const MODEL_BYTES: usize = {};", blob.len());
    let _ = writeln!(
        w,
        "pub const MODEL_BUILD_ERROR: Option<&str> = {blob_error:?};"
    );
    let _ = writeln!(w, "pub const PROMPTS: &[&str] = &{prompts:?};");
    let _ = writeln!(w, "pub const CONTEXT: usize = {context};");
    let _ = writeln!(
        w,
        "pub const KV: runtime::memory::KvDType = runtime::memory::KvDType::{kv_name};"
    );
    let _ = writeln!(w, "pub const MAX_NEW_TOKENS: usize = {max_new_tokens};");
    let _ = writeln!(
        w,
        "pub const THINK_BUDGET: Option<usize> = {think_budget:?};"
    );
    let _ = writeln!(w, "pub const TEXT_BYTES: usize = {text_bytes};");
    let _ = writeln!(w, "pub const ARENA_BYTES: usize = {arena_bytes};");
    let _ = writeln!(
        w,
        "pub const KV_CACHE_BYTES: usize = {};",
        plan.map_or(0, |p| p.kv_cache_bytes)
    );
    let _ = writeln!(
        w,
        "pub const SCRATCH_BYTES: usize = {};",
        plan.map_or(0, |p| p.scratch_bytes)
    );
    let _ = writeln!(w, "pub const SPEC_K: usize = {spec_k};");
    let _ = writeln!(w, "pub const SPECULATIVE: bool = {};", spec_k > 0);
    let _ = writeln!(
        w,
        "pub const DRAFT_ARENA_BYTES: usize = {draft_arena_bytes};"
    );
    let _ = writeln!(
        w,
        "pub const DRAFT_MODEL_BYTES: usize = {};",
        draft_blob.as_ref().map_or(0, Vec::len)
    );
    fs::write(out.join("settings.rs"), s)
        .unwrap_or_else(|e| fail(&format!("writing settings.rs: {e}")));

    // The blob itself: include_bytes! of the file in place, wrapped so that it
    // lands in flash 16-byte aligned (the runtime reads f32/f16 data in place).
    let model_rs = format!(
        "pub static MODEL: Aligned<[u8; {}]> = Aligned(*include_bytes!({:?}));\n",
        blob.len(),
        model_path.display().to_string()
    );
    fs::write(out.join("model.rs"), model_rs)
        .unwrap_or_else(|e| fail(&format!("writing model.rs: {e}")));
    let draft_rs = match (&draft_path, &draft_blob) {
        (Some(p), Some(b)) => format!(
            "pub static DRAFT: Aligned<[u8; {}]> = Aligned(*include_bytes!({:?}));\n",
            b.len(),
            p.display().to_string()
        ),
        _ => "pub static DRAFT: Aligned<[u8; 0]> = Aligned([]);\n".to_owned(),
    };
    fs::write(out.join("draft.rs"), draft_rs)
        .unwrap_or_else(|e| fail(&format!("writing draft.rs: {e}")));
}
