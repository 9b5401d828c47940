//! Speculative decoding on the board (`THINKLING_DRAFT_MODEL`): every prompt
//! runs with the draft proposing `SPEC_K` tokens per target pass, streaming
//! the same `token` lines as the plain run, then once more with the target
//! alone (not streamed) so the `spec` line compares the cost per token.

use crate::blobs::DRAFT;
use crate::board::{self, exit_code, Counter};
use crate::report::{generated_or_exit, log_token, mean, or_exit, per_token, stop_name};
use crate::settings::*;
use defmt::info;
use runtime::generate::{generate, GenerateConfig, Span, TokenEvent};
use runtime::model::Model;
use runtime::session::Session;
use runtime::speculative::generate_speculative;

pub fn run(
    model: &Model<'_>,
    arena: &mut [u8],
    draft_arena: &mut [u8],
    text: &mut [u8],
    cfg: &GenerateConfig,
    counter: &mut Counter,
) -> ! {
    let draft = or_exit(
        Model::from_blob(&DRAFT.0),
        "draft blob error",
        exit_code::BLOB,
    );
    let d = draft.config();
    info!(
        "speculative: k {=usize}, draft {=usize} bytes (dim {=u32}, layers {=u32}), draft arena {=usize} bytes",
        SPEC_K,
        DRAFT_MODEL_BYTES,
        d.dim,
        d.n_layers,
        DRAFT_ARENA_BYTES
    );
    let target = Session::with_batch(model, arena, CONTEXT, KV, SPEC_K + 1);
    let mut target = or_exit(target, "session error", exit_code::ENGINE);
    let draft_session = Session::draft(&draft, draft_arena, CONTEXT, KV, SPEC_K);
    let mut draft_session = or_exit(draft_session, "draft session error", exit_code::ENGINE);
    let mut totals = Totals::default();
    for (i, prompt) in PROMPTS.iter().enumerate() {
        let t = run_prompt(
            &mut target,
            &mut draft_session,
            i,
            prompt,
            cfg,
            text,
            counter,
        );
        totals.add(&t);
    }
    let stack = board::stack_high_water();
    let statics = board::static_bytes();
    info!(
        "summary: {=usize} decoded tokens, {=u64} {=str} per token speculative (k {=usize}), {=u64} target alone; RAM: static {=usize} bytes (arenas {=usize} + {=usize}), stack high water {=usize} bytes, total {=usize} of {=usize} bytes",
        totals.spec_tokens,
        mean(totals.spec_cost, totals.spec_tokens),
        board::COUNT_UNIT,
        SPEC_K,
        mean(totals.plain_cost, totals.plain_tokens),
        statics,
        ARENA_BYTES,
        DRAFT_ARENA_BYTES,
        stack,
        statics + stack,
        RAM_BYTES
    );
    board::exit(exit_code::OK)
}

/// Decoded tokens after the first and their cost, speculative and with the
/// target alone.
#[derive(Default)]
struct Totals {
    spec_tokens: usize,
    spec_cost: u64,
    plain_tokens: usize,
    plain_cost: u64,
}

impl Totals {
    fn add(&mut self, t: &Totals) {
        self.spec_tokens += t.spec_tokens;
        self.spec_cost += t.spec_cost;
        self.plain_tokens += t.plain_tokens;
        self.plain_cost += t.plain_cost;
    }
}

/// One prompt with speculative decoding, streamed, then with the target
/// alone (not streamed) for the cost comparison.
fn run_prompt(
    target: &mut Session<'_, '_>,
    draft_session: &mut Session<'_, '_>,
    i: usize,
    prompt: &str,
    cfg: &GenerateConfig,
    text: &mut [u8],
    counter: &mut Counter,
) -> Totals {
    info!("prompt {=usize}: {=str}", i, prompt);
    let mut resumed = counter.now();
    let (mut total, mut first, mut generated) = (0u64, 0u64, 0usize);
    let result = generate_speculative(
        target,
        draft_session,
        prompt,
        cfg,
        SPEC_K,
        text,
        &mut |ev: &TokenEvent| {
            let cost = counter.now() - resumed;
            if !matches!(ev.span, Span::Prompt) {
                if generated == 0 {
                    first = cost;
                }
                total += cost;
                generated += 1;
            }
            log_token(i, ev, cost);
            resumed = counter.now();
        },
    );
    let (g, stats) = generated_or_exit(result, i);
    info!("think: {=str}", g.think);
    info!("answer: {=str}", g.answer);
    let spec = per_token(total.saturating_sub(first), generated);
    let (prompt_tokens, generated_tokens, stop, hit) = (
        g.prompt_tokens,
        g.generated_tokens,
        g.stop,
        g.think_budget_hit,
    );
    // The same prompt with the target alone, for the comparison.
    let start = counter.now();
    let mut first_plain = 0u64;
    let mut n_plain = 0usize;
    let plain = generate(target, prompt, cfg, text, &mut |ev: &TokenEvent| {
        if n_plain == 0 && !matches!(ev.span, Span::Prompt) {
            first_plain = counter.now() - start;
        }
        n_plain += 1;
    });
    let plain_total = counter.now() - start;
    generated_or_exit(plain, i);
    let alone = per_token(plain_total.saturating_sub(first_plain), n_plain);
    info!(
        "done {=usize}: {=usize} prompt tokens, {=usize} generated, stop {=str}, think budget hit {=bool}; prefill+first token {=u64}, then {=u64} {=str} per token",
        i,
        prompt_tokens,
        generated_tokens,
        stop_name(stop),
        hit,
        first,
        spec,
        board::COUNT_UNIT
    );
    info!(
        "spec {=usize}: k {=usize}, accepted {=usize} of {=usize} proposed, {=usize} target passes; {=u64} {=str} per token speculative, {=u64} target alone",
        i,
        SPEC_K,
        stats.accepted,
        stats.proposed,
        stats.target_passes,
        spec,
        board::COUNT_UNIT,
        alone
    );
    Totals {
        spec_tokens: generated.saturating_sub(1),
        spec_cost: total - first,
        plain_tokens: n_plain.saturating_sub(1),
        plain_cost: plain_total - first_plain,
    }
}
