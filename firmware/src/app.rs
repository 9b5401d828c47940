//! The program: check the blob, report the memory it needs, then generate on
//! every prompt while streaming each token with its cost.
//!
//! Log lines the tests parse (tests/firmware.rs) start with a fixed word:
//! `prompt <i>`, `token <i> <id> <span> <cost>` and `done <i>`; everything
//! else is for people.

use crate::board::{self, exit_code, Counter};
use crate::settings::*;
use cortex_m_rt::entry;
use defmt::{error, info, Display2Format};
use runtime::generate::{generate, GenerateConfig, Span, StopReason, TokenEvent};
use runtime::model::Model;
use runtime::sampling::SamplerConfig;
use runtime::session::Session;

/// 16-byte alignment for the blob in flash and the arena in RAM: the runtime
/// reads f32/f16 tensors in place and carves aligned buffers from the arena.
#[repr(C, align(16))]
pub struct Aligned<T: ?Sized>(pub T);

// `MODEL`: the blob, from THINKLING_MODEL at build time.
include!(concat!(env!("OUT_DIR"), "/model.rs"));
// `DRAFT`: the draft blob of THINKLING_DRAFT_MODEL (empty without one).
include!(concat!(env!("OUT_DIR"), "/draft.rs"));

pub(crate) fn span_name(span: Span) -> &'static str {
    match span {
        Span::Prompt => "prompt",
        Span::Think => "think",
        Span::Answer => "answer",
        Span::Other => "other",
    }
}

/// One streamed token: `token <prompt> <id> <span> <cost> <text>` (the tests
/// parse this line to compare the board's tokens with the host's).
pub(crate) fn log_token(prompt: usize, ev: &TokenEvent, cost: u64) {
    info!(
        "token {=usize} {=u32} {=str} {=u64} {:?}",
        prompt,
        ev.id,
        span_name(ev.span),
        cost,
        ev.text
    );
}

pub(crate) fn stop_name(stop: StopReason) -> &'static str {
    match stop {
        StopReason::Eos => "eos",
        StopReason::TokenLimit => "token-limit",
        StopReason::ContextFull => "context-full",
    }
}

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
    let mut counter = Counter::start(core.SYST, core.DCB, core.DWT);

    info!(
        "thinkling firmware on {=str}; costs in {=str}",
        BOARD,
        board::COUNT_UNIT
    );
    let flash_used = flash_used();
    info!(
        "flash: model {=usize} bytes, code and data {=usize} bytes, {=usize} of {=usize} bytes used",
        MODEL_BYTES,
        flash_used - MODEL_BYTES,
        flash_used,
        FLASH_BYTES
    );

    let model = match Model::from_blob(&MODEL.0) {
        Ok(m) => m,
        Err(e) => {
            error!("blob error: {}", Display2Format(&e));
            board::exit(exit_code::BLOB)
        }
    };
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
    let kv_name = match KV {
        runtime::memory::KvDType::F16 => "f16",
        runtime::memory::KvDType::F32 => "f32",
    };
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

    let cfg = GenerateConfig {
        // Greedy: the tests compare the tokens with the host's one for one.
        sampler: SamplerConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        },
        max_new_tokens: MAX_NEW_TOKENS,
        think_budget: THINK_BUDGET,
    };
    if SPECULATIVE {
        crate::spec::run(
            &model,
            &mut ARENA.0[..],
            &mut DRAFT_ARENA.0[..],
            &mut TEXT[..],
            &cfg,
            &mut counter,
        );
    }
    let mut session = match Session::new(&model, &mut ARENA.0[..], CONTEXT, KV) {
        Ok(s) => s,
        Err(e) => {
            error!("session error: {}", Display2Format(&e));
            board::exit(exit_code::ENGINE)
        }
    };

    let mut total_tokens = 0usize;
    let mut total_cost = 0u64;
    for (i, prompt) in PROMPTS.iter().enumerate() {
        info!("prompt {=usize}: {=str}", i, prompt);
        // Cost of a token: from the end of the previous callback (or the call)
        // to the start of this one, so logging is not counted. The first
        // generated token carries the prompt's prefill.
        let mut resumed = counter.now();
        let mut first = 0u64;
        let mut decode = 0u64;
        let mut decode_max = 0u64;
        let mut generated = 0usize;
        let result = generate(
            &mut session,
            prompt,
            &cfg,
            &mut TEXT[..],
            &mut |ev: &TokenEvent| {
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
            },
        );
        let g = generated_or_exit(result, i);
        info!("think: {=str}", g.think);
        info!("answer: {=str}", g.answer);
        let per_token = per_token(decode, generated);
        info!(
            "done {=usize}: {=usize} prompt tokens, {=usize} generated, stop {=str}, think budget hit {=bool}; prefill+first token {=u64}, then {=u64} {=str} per token (max {=u64})",
            i,
            g.prompt_tokens,
            g.generated_tokens,
            stop_name(g.stop),
            g.think_budget_hit,
            first,
            per_token,
            board::COUNT_UNIT,
            decode_max
        );
        total_tokens += generated.saturating_sub(1);
        total_cost += decode;
    }
    let stack = board::stack_high_water();
    let statics = RAM_BYTES - board::stack_room();
    info!(
        "summary: {=usize} decoded tokens, {=u64} {=str} per token; RAM: static {=usize} bytes (arena {=usize}), stack high water {=usize} bytes, total {=usize} of {=usize} bytes",
        total_tokens,
        if total_tokens > 0 { total_cost / total_tokens as u64 } else { 0 },
        board::COUNT_UNIT,
        statics,
        ARENA_BYTES,
        stack,
        statics + stack,
        RAM_BYTES
    );
    board::exit(exit_code::OK)
}

/// Bytes of flash the image occupies: vector table, code, constants (the
/// blob among them) and the initial values of .data, from cortex-m-rt's
/// section symbols.
/// Decode cost per token after the first (which carries the prefill), from
/// the cost of the tokens after the first.
pub(crate) fn per_token(decode: u64, generated: usize) -> u64 {
    if generated > 1 {
        decode / (generated as u64 - 1)
    } else {
        0
    }
}

/// A prompt's generation result, or its error logged and the engine's exit.
pub(crate) fn generated_or_exit<T, E: core::fmt::Display>(
    result: Result<T, E>,
    prompt: usize,
) -> T {
    match result {
        Ok(g) => g,
        Err(e) => {
            error!(
                "generation error on prompt {=usize}: {}",
                prompt,
                Display2Format(&e)
            );
            board::exit(exit_code::ENGINE)
        }
    }
}

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
