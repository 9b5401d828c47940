//! The program: check the blob, report the memory it needs, then generate on
//! every prompt while streaming each token with its cost (or hand over to
//! the speculative run, `spec.rs`, or to evaluation mode, `eval.rs`).

use crate::blobs::{Aligned, MODEL};
use crate::board::{self, exit_code, Counter};
use crate::report::{generated_or_exit, log_token, mean, or_exit, per_token, stop_name};
use crate::settings::*;
use cortex_m_rt::entry;
use defmt::info;
use runtime::generate::{generate, GenerateConfig, Span, TokenEvent};
use runtime::model::Model;
use runtime::sampling::SamplerConfig;
use runtime::session::Session;

#[entry]
fn main() -> ! {
    // cortex-m-rt turns these into `&'static mut`, handed out once: the
    // arena and text buffer are plain .bss, sized by build.rs, no heap.
    static mut ARENA: Aligned<[u8; ARENA_BYTES]> = Aligned([0; ARENA_BYTES]);
    static mut TEXT: [u8; TEXT_BYTES] = [0; TEXT_BYTES];
    static mut DRAFT_ARENA: Aligned<[u8; DRAFT_ARENA_BYTES]> = Aligned([0; DRAFT_ARENA_BYTES]);

    board::paint_stack();
    let Some(core) = cortex_m::Peripherals::take() else {
        board::exit(exit_code::PANIC)
    };
    #[cfg(all(feature = "qemu", not(thinkling_armv8m)))]
    board::guard_below_ram(core.MPU);
    let mut counter = Counter::start(core.SYST, core.DCB, core.DWT);
    log_image();
    let model = or_exit(Model::from_blob(&MODEL.0), "blob error", exit_code::BLOB);
    log_model(&model);
    log_memory_plan();
    // The fault builds end here, in the HardFault handler.
    #[cfg(any(feature = "fault-stack-overflow", feature = "fault-bad-access"))]
    crate::fault::provoke();
    let cfg = greedy();
    if SPECULATIVE {
        let (arena, draft_arena) = (&mut ARENA.0[..], &mut DRAFT_ARENA.0[..]);
        crate::spec::run(
            &model,
            arena,
            draft_arena,
            &mut TEXT[..],
            &cfg,
            &mut counter,
        );
    }
    let session = Session::new(&model, &mut ARENA.0[..], CONTEXT, KV);
    let mut session = or_exit(session, "session error", exit_code::ENGINE);
    if EVAL {
        crate::eval::run(&mut session, &cfg, &mut TEXT[..], &mut counter);
        log_ram();
        board::exit(exit_code::OK)
    }
    let (mut tokens, mut cost) = (0usize, 0u64);
    for (i, prompt) in PROMPTS.iter().enumerate() {
        let (n, c) = run_prompt(&mut session, i, prompt, &cfg, &mut TEXT[..], &mut counter);
        tokens += n;
        cost += c;
    }
    log_summary(tokens, cost);
    board::exit(exit_code::OK)
}

/// Greedy decoding: the tests compare the tokens with the host's one for one.
fn greedy() -> GenerateConfig {
    GenerateConfig {
        sampler: SamplerConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        },
        max_new_tokens: MAX_NEW_TOKENS,
        think_budget: THINK_BUDGET,
    }
}

/// Generates on one prompt, streaming every token with its cost: from the
/// end of the previous callback (or the call) to the start of this one, so
/// logging is not counted; the first generated token carries the prefill.
/// Returns the decoded tokens after the first and their cost.
fn run_prompt(
    session: &mut Session<'_, '_>,
    i: usize,
    prompt: &str,
    cfg: &GenerateConfig,
    text: &mut [u8],
    counter: &mut Counter,
) -> (usize, u64) {
    info!("prompt {=usize}: {=str}", i, prompt);
    let mut resumed = counter.now();
    let (mut first, mut decode, mut decode_max, mut generated) = (0u64, 0u64, 0u64, 0usize);
    let result = generate(session, prompt, cfg, text, &mut |ev: &TokenEvent| {
        let cost = counter.now() - resumed;
        if !matches!(ev.span, Span::Prompt) {
            if generated == 0 {
                first = cost;
            } else {
                decode += cost;
                decode_max = decode_max.max(cost);
            }
            generated += 1;
        }
        log_token(i, ev, cost);
        resumed = counter.now();
    });
    let g = generated_or_exit(result, i);
    info!("think: {=str}", g.think);
    info!("answer: {=str}", g.answer);
    info!(
        "done {=usize}: {=usize} prompt tokens, {=usize} generated, stop {=str}, think budget hit {=bool}; prefill+first token {=u64}, then {=u64} {=str} per token (max {=u64})",
        i,
        g.prompt_tokens,
        g.generated_tokens,
        stop_name(g.stop),
        g.think_budget_hit,
        first,
        per_token(decode, generated),
        board::COUNT_UNIT,
        decode_max
    );
    (generated.saturating_sub(1), decode)
}

fn log_image() {
    info!(
        "thinkling firmware on {=str}; costs in {=str}",
        BOARD,
        board::COUNT_UNIT
    );
    info!("kernels: {=str}", runtime::kernels::NATIVE_KERNELS);
    let flash_used = flash_used();
    info!(
        "flash: model {=usize} bytes, code and data {=usize} bytes, {=usize} of {=usize} bytes used",
        MODEL_BYTES,
        flash_used - MODEL_BYTES,
        flash_used,
        FLASH_BYTES
    );
}

fn log_model(model: &Model<'_>) {
    let c = model.config();
    info!(
        "model: dim {=u32}, layers {=u32}, heads {=u32}, kv heads {=u32}, hidden {=u32}, vocab {=u32}, max context {=u32}, tied {=bool}, moe {=bool}",
        c.dim,
        c.n_layers,
        c.n_heads,
        c.n_kv_heads,
        c.hidden_dim,
        c.vocab_size,
        c.max_seq_len,
        c.tied_embeddings,
        c.moe.is_some()
    );
}

fn log_memory_plan() {
    let kv_name = KV.name();
    info!(
        "memory plan: context {=usize}, {=str} KV cache {=usize} bytes, scratch {=usize} bytes, arena {=usize} bytes; text buffer {=usize} bytes; RAM {=usize} bytes",
        CONTEXT,
        kv_name,
        KV_CACHE_BYTES,
        SCRATCH_BYTES,
        ARENA_BYTES,
        TEXT_BYTES,
        RAM_BYTES
    );
}

/// RAM use at the end of evaluation mode (the summary line carries it otherwise).
fn log_ram() {
    let stack = board::stack_high_water();
    let statics = board::static_bytes();
    info!(
        "RAM: static {=usize} bytes (arena {=usize}), stack high water {=usize} bytes, total {=usize} of {=usize} bytes",
        statics,
        ARENA_BYTES,
        stack,
        statics + stack,
        RAM_BYTES
    );
}

fn log_summary(tokens: usize, cost: u64) {
    let stack = board::stack_high_water();
    let statics = board::static_bytes();
    info!(
        "summary: {=usize} decoded tokens, {=u64} {=str} per token; RAM: static {=usize} bytes (arena {=usize}), stack high water {=usize} bytes, total {=usize} of {=usize} bytes",
        tokens,
        mean(cost, tokens),
        board::COUNT_UNIT,
        statics,
        ARENA_BYTES,
        stack,
        statics + stack,
        RAM_BYTES
    );
}

/// Bytes of flash the image occupies: vector table, code, constants (the
/// blob among them) and the initial values of .data, from cortex-m-rt's
/// section symbols.
fn flash_used() -> usize {
    extern "C" {
        static __vector_table: u32;
        static __sidata: u32;
        static __sdata: u32;
        static __edata: u32;
    }
    let origin = core::ptr::addr_of!(__vector_table) as usize;
    let data_load = core::ptr::addr_of!(__sidata) as usize;
    let data_len = core::ptr::addr_of!(__edata) as usize - core::ptr::addr_of!(__sdata) as usize;
    data_load + data_len - origin
}
