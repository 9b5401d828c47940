//! Build script of the firmware: picks the board's memory layout, embeds the
//! model blob, and sizes the session arena from the blob's own config so that
//! all RAM use is static and checked before anything is linked.
//!
//! Settings (environment, read at build time):
//! - `THINKLING_MODEL`: path of the blob (relative paths are taken from the
//!   workspace root); default `firmware/models/reference.bin`.
//! - `THINKLING_PROMPTS`: prompts separated by `|`; default a small built-in list.
//! - `THINKLING_CONTEXT`: session context in tokens; default min(256, model max).
//! - `THINKLING_KV`: `f16` (default), `f32` or `q8` (int8 with a scale per
//!   group of 32 values, about half the f16 cache) KV cache.
//! - `THINKLING_MAX_NEW_TOKENS`: per prompt; default the context (runs until full).
//! - `THINKLING_THINK_BUDGET`: think tokens before the answer is forced; default none.
//! - `THINKLING_TEXT_BYTES`: buffer for the decoded think/answer text; default 1024.
//! - `THINKLING_DRAFT_MODEL`: a draft blob with the target's tokenizer; the
//!   prompts then run with speculative decoding (and once more with the target
//!   alone, for the cost comparison). Default none.
//! - `THINKLING_SPEC_K`: draft tokens per step with a draft model; default 4.
//! - `THINKLING_EVAL`: a number N > 0 puts the firmware in evaluation mode:
//!   instead of the prompts it runs N held-out problems of the `tasks` crate,
//!   generated here and compiled into the image, and counts the answers its
//!   own check accepts. Default none.
//! - `THINKLING_EVAL_SEED`: seed of the held-out problems; default 1234 (the
//!   default of `export --seed`).
//! - `THINKLING_EVAL_MIX`: their task mix; default `default`.

use runtime::memory::{KvDType, MemoryPlan};
use runtime::ModelConfig;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

/// RAM kept free for the stack (below the static data: flip-link). The
/// engine keeps its buffers in the arena, but the stack holds the `Model`
/// table (about 8 KiB on Cortex-M, and copied once when it is returned), call
/// frames and defmt encoding; the painted high-water mark, logged at the end
/// of a run, is about 18 KiB.
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
    /// The target the board's core needs (its architecture).
    target: &'static str,
}

const BOARDS: &[(&str, Board)] = &[
    (
        "CARGO_FEATURE_BOARD_QEMU",
        Board {
            name: "qemu",
            memory_x: "memory/qemu.x",
            counter: "systick",
            target: "thumbv7em-none-eabihf",
        },
    ),
    (
        "CARGO_FEATURE_BOARD_QEMU_M33",
        Board {
            name: "qemu-m33",
            memory_x: "memory/qemu-an505.x",
            counter: "systick",
            target: "thumbv8m.main-none-eabihf",
        },
    ),
    (
        "CARGO_FEATURE_BOARD_NRF52840",
        Board {
            name: "nrf52840",
            memory_x: "memory/nrf52840.x",
            counter: "dwt",
            target: "thumbv7em-none-eabihf",
        },
    ),
    (
        "CARGO_FEATURE_BOARD_STM32H743",
        Board {
            name: "stm32h743",
            memory_x: "memory/stm32h743.x",
            counter: "dwt",
            target: "thumbv7em-none-eabihf",
        },
    ),
    (
        "CARGO_FEATURE_BOARD_RP2350",
        Board {
            name: "rp2350",
            memory_x: "memory/rp2350.x",
            counter: "dwt",
            target: "thumbv8m.main-none-eabihf",
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
    println!("cargo:rerun-if-changed=build.rs");
    // Armv8-M (Cortex-M33): a PMSAv8 MPU and the MSPLIM stack limit.
    println!("cargo::rustc-check-cfg=cfg(thinkling_armv8m)");
    if env::var("TARGET").is_ok_and(|t| t.starts_with("thumbv8m")) {
        println!("cargo::rustc-cfg=thinkling_armv8m");
    }
    let paths = Paths::from_env();
    let on_mcu = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none")
        && env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("arm");
    let board = choose_board();
    if on_mcu {
        check_target(board);
    }
    let memory = read_memory_x(&paths, board, on_mcu);
    let target = read_target(&paths);
    let kv = kv_dtype();
    let context = env_usize("THINKLING_CONTEXT").unwrap_or_else(|| {
        target
            .config
            .map_or(256, |c| 256.min(c.max_seq_len as usize))
    });
    if context == 0 {
        fail("THINKLING_CONTEXT must be positive");
    }
    let draft = read_draft(&paths, &target, context);
    let eval = read_eval();
    if eval.is_some() && draft.k > 0 {
        fail("THINKLING_EVAL runs the model alone: unset THINKLING_DRAFT_MODEL");
    }
    let run = Run::from_env(context, kv, &target, &draft, eval);
    if on_mcu {
        check_fit(board, &memory, &target, &draft, &run);
    }
    write_settings(&paths, board, &memory, &target, &draft, &run);
    write_blobs(&paths, &target, &draft);
}

/// Where the build reads and writes.
struct Paths {
    manifest: PathBuf,
    workspace: PathBuf,
    out: PathBuf,
}

impl Paths {
    fn from_env() -> Self {
        let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
        let workspace = manifest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| manifest.clone());
        let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_default());
        Paths {
            manifest,
            workspace,
            out,
        }
    }

    /// A path from the environment: relative paths from the workspace root.
    fn resolve(&self, p: String) -> PathBuf {
        if Path::new(&p).is_absolute() {
            PathBuf::from(p)
        } else {
            self.workspace.join(p)
        }
    }
}

/// The board of the one board feature enabled.
fn choose_board() -> &'static Board {
    let chosen: Vec<&Board> = BOARDS
        .iter()
        .filter(|(f, _)| env::var_os(f).is_some())
        .map(|(_, b)| b)
        .collect();
    match chosen.as_slice() {
        [b] => b,
        [] => fail("no board feature: enable one of board-qemu, board-qemu-m33, board-nrf52840, board-stm32h743, board-rp2350"),
        _ => fail("more than one board feature: use --no-default-features --features board-<name>"),
    }
}

/// Fails the build when the target is not the board's core: an image for
/// the other architecture would not boot (or would, in QEMU, on the wrong
/// machine model).
fn check_target(board: &Board) {
    let target = env::var("TARGET").unwrap_or_default();
    // Also the soft-float ABI of the same architecture (thumbv7em-none-eabi).
    let arch = |t: &str| t.split('-').next().unwrap_or("").to_owned();
    if arch(&target) != arch(board.target) {
        fail(&format!(
            "board {} is built for {}, not {target}: use --target {}",
            board.name, board.target, board.target
        ));
    }
}

/// The board's flash and RAM sizes.
struct Memory {
    flash_bytes: usize,
    ram_bytes: usize,
}

/// Reads the board's memory.x (and hands it to the linker on the MCU).
fn read_memory_x(paths: &Paths, board: &Board, on_mcu: bool) -> Memory {
    let memory_path = paths.manifest.join(board.memory_x);
    println!("cargo:rerun-if-changed={}", memory_path.display());
    let memory_x = fs::read_to_string(&memory_path)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", memory_path.display())));
    if on_mcu {
        // cortex-m-rt's link.x INCLUDEs memory.x from the link search path.
        fs::write(paths.out.join("memory.x"), &memory_x)
            .unwrap_or_else(|e| fail(&format!("writing memory.x: {e}")));
        println!("cargo:rustc-link-search={}", paths.out.display());
    }
    Memory {
        flash_bytes: region_length(&memory_x, "FLASH"),
        ram_bytes: region_length(&memory_x, "RAM"),
    }
}

/// The model blob: its bytes and, when it loads, its config.
struct Target {
    path: PathBuf,
    blob: Vec<u8>,
    config: Option<ModelConfig>,
    /// Why the blob does not load (the firmware reports it at boot).
    error: Option<String>,
}

fn read_target(paths: &Paths) -> Target {
    let path = match env_var("THINKLING_MODEL") {
        Some(p) => paths.resolve(p),
        None => paths.manifest.join("models/reference.bin"),
    };
    println!("cargo:rerun-if-changed={}", path.display());
    let blob = fs::read(&path).unwrap_or_else(|e| {
        fail(&format!(
            "cannot read the model blob {}: {e} (set THINKLING_MODEL)",
            path.display()
        ))
    });
    // A blob that does not load is still embedded: the firmware must report
    // the runtime's error at boot (and the tests check that it does).
    let (config, error) = match runtime::blob::parse(&blob) {
        Ok(b) => (Some(b.config), None),
        Err(e) => {
            println!("cargo:warning=model blob {} does not load ({e}); the firmware will report it at boot", path.display());
            (None, Some(e.to_string()))
        }
    };
    Target {
        path,
        blob,
        config,
        error,
    }
}

fn kv_dtype() -> KvDType {
    match env_var("THINKLING_KV")
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("f16") => KvDType::F16,
        Some("f32") => KvDType::F32,
        Some("q8") => KvDType::Q8,
        Some(other) => fail(&format!("THINKLING_KV={other:?}: expected f16, f32 or q8")),
    }
}

/// The draft model of speculative decoding (none without
/// `THINKLING_DRAFT_MODEL`).
struct Draft {
    path: Option<PathBuf>,
    blob: Option<Vec<u8>>,
    config: Option<ModelConfig>,
    /// Draft tokens per step (0: no speculative decoding).
    k: usize,
}

fn read_draft(paths: &Paths, target: &Target, context: usize) -> Draft {
    let path = env_var("THINKLING_DRAFT_MODEL").map(|p| paths.resolve(p));
    let spec_k_env = env_usize("THINKLING_SPEC_K");
    let blob = path.as_ref().map(|p| {
        println!("cargo:rerun-if-changed={}", p.display());
        fs::read(p).unwrap_or_else(|e| {
            fail(&format!(
                "cannot read the draft blob {}: {e} (THINKLING_DRAFT_MODEL)",
                p.display()
            ))
        })
    });
    let k = match (&blob, spec_k_env) {
        (None, _) => 0,
        (Some(_), Some(0)) => fail("THINKLING_SPEC_K must be at least 1"),
        (Some(_), Some(k)) => k.min(runtime::speculative::MAX_K),
        (Some(_), None) => 4,
    };
    let config = blob.as_ref().map(|b| {
        runtime::blob::parse(b)
            .map(|d| d.config)
            .unwrap_or_else(|e| {
                fail(&format!(
                    "draft blob {} does not load: {e}",
                    path.as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ))
            })
    });
    if let (Some(d), Some(c)) = (config, target.config) {
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
    Draft {
        path,
        blob,
        config,
        k,
    }
}

/// The held-out problems of evaluation mode (`THINKLING_EVAL`).
struct Eval {
    seed: u64,
    mix: String,
    problems: Vec<tasks::Problem>,
}

fn read_eval() -> Option<Eval> {
    let n = env_usize("THINKLING_EVAL").filter(|&n| n > 0)?;
    let seed = env_var("THINKLING_EVAL_SEED").map_or(1234, |v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| fail(&format!("THINKLING_EVAL_SEED={v:?} is not a u64")))
    });
    let mix = env_var("THINKLING_EVAL_MIX").unwrap_or_else(|| "default".to_owned());
    let parsed = tasks::Mix::parse(&mix)
        .unwrap_or_else(|e| fail(&format!("THINKLING_EVAL_MIX={mix:?}: {e}")));
    if parsed.builtin().is_empty() {
        fail(&format!(
            "THINKLING_EVAL_MIX={mix:?} has no built-in task (user data is not compiled in)"
        ));
    }
    // The same set `export --blob B --eval-n N --seed S --mix M` scores (with
    // `--compare-n` at most N: export draws max(compare-n, eval-n) problems).
    let problems = tasks::held_out_set(&parsed, n, seed);
    Some(Eval {
        seed,
        mix,
        problems,
    })
}

/// What a run needs: the arenas (the target's grows by the batch region of
/// `k + 1` rows with a draft), buffers and generation settings.
struct Run {
    context: usize,
    kv: KvDType,
    plan: Option<MemoryPlan>,
    arena_bytes: usize,
    draft_arena_bytes: usize,
    text_bytes: usize,
    max_new_tokens: usize,
    think_budget: Option<usize>,
    prompts: Vec<String>,
    eval: Option<Eval>,
}

impl Run {
    fn from_env(
        context: usize,
        kv: KvDType,
        target: &Target,
        draft: &Draft,
        eval: Option<Eval>,
    ) -> Self {
        let draft_arena_bytes = draft.config.map_or(0, |d| {
            runtime::memory::plan_draft(&d, context, kv, draft.k).total_bytes
        });
        let plan = target.config.map(|c| {
            if draft.k > 0 {
                runtime::memory::plan_speculative(&c, context, kv, draft.k)
            } else {
                runtime::memory::plan(&c, context, kv)
            }
        });
        let prompts = match env_var("THINKLING_PROMPTS") {
            Some(p) => p
                .split('|')
                .map(str::to_owned)
                .filter(|p| !p.is_empty())
                .collect(),
            None => DEFAULT_PROMPTS.iter().map(|p| (*p).to_owned()).collect(),
        };
        Run {
            context,
            kv,
            plan,
            arena_bytes: plan.map_or(0, |p| p.total_bytes),
            draft_arena_bytes,
            // Evaluation defaults to the buffer of the host's evaluation
            // (export/src/eval.rs): a thought long enough to cut the answer
            // off then cuts it on both.
            text_bytes: env_usize("THINKLING_TEXT_BYTES").unwrap_or(if eval.is_some() {
                8192
            } else {
                1024
            }),
            max_new_tokens: env_usize("THINKLING_MAX_NEW_TOKENS").unwrap_or(context),
            think_budget: env_usize("THINKLING_THINK_BUDGET"),
            prompts,
            eval,
        }
    }

    fn kv_name(&self) -> &'static str {
        match self.kv {
            KvDType::F16 => "F16",
            KvDType::F32 => "F32",
            KvDType::Q8 => "Q8",
        }
    }
}

/// Fails the build, with the numbers a user needs to pick a smaller model,
/// when the blobs do not fit the flash or the run does not fit the RAM.
fn check_fit(board: &Board, memory: &Memory, target: &Target, draft: &Draft, run: &Run) {
    let blob_len = target.blob.len();
    let room = memory.flash_bytes.saturating_sub(CODE_RESERVE);
    let draft_len = draft.blob.as_ref().map_or(0, Vec::len);
    if draft_len > 0 && blob_len + draft_len > room {
        fail(&format!(
            "model blob ({blob_len} bytes) and draft blob ({draft_len} bytes) are too big for board {}: {room} bytes of its flash are room for blobs",
            board.name
        ));
    }
    if blob_len > room {
        fail(&format!(
            "model blob {} is {blob_len} bytes, too big for board {}: its flash is {} bytes, of which {room} bytes are room \
             for a blob ({CODE_RESERVE} kept for code). Use a smaller model or a stronger quantization (q4).",
            target.path.display(),
            board.name,
            memory.flash_bytes,
        ));
    }
    let stack_reserve = STACK_RESERVE + if draft.k > 0 { SPEC_STACK_EXTRA } else { 0 };
    let (text_bytes, draft_arena_bytes) = (run.text_bytes, run.draft_arena_bytes);
    let ram_needed =
        run.arena_bytes + draft_arena_bytes + text_bytes + OTHER_STATIC + stack_reserve;
    if ram_needed > memory.ram_bytes {
        let (kv_cache, scratch) = run
            .plan
            .map_or((0, 0), |p| (p.kv_cache_bytes, p.scratch_bytes));
        // A smaller KV cache is a remedy until it is q8.
        let remedy = match run.kv {
            KvDType::F32 => "Lower THINKLING_CONTEXT or use THINKLING_KV=f16 or q8.",
            KvDType::F16 => "Lower THINKLING_CONTEXT or use THINKLING_KV=q8.",
            KvDType::Q8 => "Lower THINKLING_CONTEXT or use a board with more RAM.",
        };
        fail(&format!(
            "model needs {ram_needed} bytes of RAM at context {} with a {} KV cache (KV cache {kv_cache}, scratch {scratch}, \
             text {text_bytes}, draft arena {draft_arena_bytes}, other static {OTHER_STATIC}, stack {stack_reserve}), board {} has {} bytes. \
             {remedy}",
            run.context,
            run.kv_name(),
            board.name,
            memory.ram_bytes
        ));
    }
}

/// The generated settings, included by src/main.rs.
fn write_settings(
    paths: &Paths,
    board: &Board,
    memory: &Memory,
    target: &Target,
    draft: &Draft,
    run: &Run,
) {
    let consts: [(&str, &str, String); 24] = [
        ("BOARD", "&str", format!("{:?}", board.name)),
        ("COUNTER", "&str", format!("{:?}", board.counter)),
        ("FLASH_BYTES", "usize", memory.flash_bytes.to_string()),
        ("RAM_BYTES", "usize", memory.ram_bytes.to_string()),
        (
            "MODEL_PATH",
            "&str",
            format!("{:?}", target.path.display().to_string()),
        ),
        ("MODEL_BYTES", "usize", target.blob.len().to_string()),
        (
            "MODEL_BUILD_ERROR",
            "Option<&str>",
            format!("{:?}", target.error),
        ),
        ("PROMPTS", "&[&str]", format!("&{:?}", run.prompts)),
        ("CONTEXT", "usize", run.context.to_string()),
        (
            "KV",
            "runtime::memory::KvDType",
            format!("runtime::memory::KvDType::{}", run.kv_name()),
        ),
        ("MAX_NEW_TOKENS", "usize", run.max_new_tokens.to_string()),
        (
            "THINK_BUDGET",
            "Option<usize>",
            format!("{:?}", run.think_budget),
        ),
        ("TEXT_BYTES", "usize", run.text_bytes.to_string()),
        ("ARENA_BYTES", "usize", run.arena_bytes.to_string()),
        (
            "KV_CACHE_BYTES",
            "usize",
            run.plan.map_or(0, |p| p.kv_cache_bytes).to_string(),
        ),
        (
            "SCRATCH_BYTES",
            "usize",
            run.plan.map_or(0, |p| p.scratch_bytes).to_string(),
        ),
        ("SPEC_K", "usize", draft.k.to_string()),
        ("SPECULATIVE", "bool", (draft.k > 0).to_string()),
        (
            "DRAFT_ARENA_BYTES",
            "usize",
            run.draft_arena_bytes.to_string(),
        ),
        (
            "DRAFT_MODEL_BYTES",
            "usize",
            draft.blob.as_ref().map_or(0, Vec::len).to_string(),
        ),
        ("EVAL", "bool", run.eval.is_some().to_string()),
        (
            "EVAL_SEED",
            "u64",
            run.eval.as_ref().map_or(0, |e| e.seed).to_string(),
        ),
        (
            "EVAL_MIX",
            "&str",
            format!("{:?}", run.eval.as_ref().map_or("", |e| e.mix.as_str())),
        ),
        ("EVAL_PROBLEMS", "&[EvalProblem]", eval_problems(run)),
    ];
    let mut s =
        String::from("// Generated by build.rs from the environment; see firmware/build.rs.\n");
    s.push_str(EVAL_PROBLEM_TYPE);
    for (name, ty, value) in consts {
        let _ = writeln!(s, "pub const {name}: {ty} = {value};");
    }
    fs::write(paths.out.join("settings.rs"), s)
        .unwrap_or_else(|e| fail(&format!("writing settings.rs: {e}")));
}

/// One compiled-in held-out problem (defined here so that the settings
/// compile on the host stub as well as on the board).
const EVAL_PROBLEM_TYPE: &str = "\
/// A held-out problem of evaluation mode: its task, prompt, expected answer
/// and how the answer is compared.
pub struct EvalProblem {
    pub task: &'static str,
    pub prompt: &'static str,
    pub answer: &'static str,
    pub kind: runtime::answer::AnswerKind,
}
";

/// The `EVAL_PROBLEMS` slice (empty outside evaluation mode).
fn eval_problems(run: &Run) -> String {
    let mut s = String::from("&[\n");
    for p in run.eval.iter().flat_map(|e| &e.problems) {
        let kind = match p.task.answer_kind() {
            Some(runtime::answer::AnswerKind::Quotient) => "Quotient",
            Some(runtime::answer::AnswerKind::Integer) => "Integer",
            None => fail("a held-out problem of user data cannot be compiled in"),
        };
        let _ = writeln!(
            s,
            "    EvalProblem {{ task: {:?}, prompt: {:?}, answer: {:?}, kind: runtime::answer::AnswerKind::{kind} }},",
            p.task.name(),
            p.problem,
            p.answer
        );
    }
    s.push(']');
    s
}

/// The blobs themselves: `include_bytes!` of the files in place, wrapped so
/// that they land in flash 16-byte aligned (the runtime reads f32/f16 data
/// in place).
fn write_blobs(paths: &Paths, target: &Target, draft: &Draft) {
    let model_rs = format!(
        "pub static MODEL: Aligned<[u8; {}]> = Aligned(*include_bytes!({:?}));\n",
        target.blob.len(),
        target.path.display().to_string()
    );
    fs::write(paths.out.join("model.rs"), model_rs)
        .unwrap_or_else(|e| fail(&format!("writing model.rs: {e}")));
    let draft_rs = match (&draft.path, &draft.blob) {
        (Some(p), Some(b)) => format!(
            "pub static DRAFT: Aligned<[u8; {}]> = Aligned(*include_bytes!({:?}));\n",
            b.len(),
            p.display().to_string()
        ),
        _ => "pub static DRAFT: Aligned<[u8; 0]> = Aligned([]);\n".to_owned(),
    };
    fs::write(paths.out.join("draft.rs"), draft_rs)
        .unwrap_or_else(|e| fail(&format!("writing draft.rs: {e}")));
}
