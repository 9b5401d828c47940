//! Evaluation mode (`THINKLING_EVAL=N`): the board scores itself on N
//! held-out problems compiled into the image, generating greedily and
//! checking each answer span with the runtime's allocation-free version of
//! the tasks' verifier. One short line per problem and the count at the end:
//!
//! ```text
//! eval 2 mul ok: 35 tokens, ids fnv 0x1f82505d, 30483880 instructions; answer "153"
//! eval: 7/8 correct; 445 generated tokens, 540397880 instructions, 1214377 per token
//! ```
//!
//! Tokens are not streamed: the hash of each problem's generated ids (FNV-1a
//! over their little-endian bytes) lets the host check them one for one
//! (tests/firmware.rs) without a line per token.

use crate::board::{self, Counter};
use crate::report::{generated_or_exit, mean};
use crate::settings::*;
use defmt::info;
use runtime::answer::answer_matches;
use runtime::generate::{generate, GenerateConfig, GenerateError, Span};
use runtime::session::Session;

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

fn fnv1a(mut h: u32, id: u32) -> u32 {
    for b in id.to_le_bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// Inlined into `main`: as a call of its own, LTO no longer inlines
/// `Model::from_blob` into `main` either, and the two 16 KB frames of model
/// loading then stack up (measured high water 32.7 KB against the build's
/// 24 KiB stack reserve; 19.2 KB inlined, as in the prompt mode).
#[inline(always)]
pub fn run(
    session: &mut Session<'_, '_>,
    cfg: &GenerateConfig,
    text: &mut [u8],
    counter: &mut Counter,
) {
    info!(
        "eval: {=usize} held-out problems (mix {=str}, seed {=u64}), context {=usize}, {=str} KV cache, greedy, at most {=usize} new tokens",
        EVAL_PROBLEMS.len(),
        EVAL_MIX,
        EVAL_SEED,
        CONTEXT,
        KV.name(),
        MAX_NEW_TOKENS
    );
    let (mut correct, mut tokens, mut cost) = (0usize, 0usize, 0u64);
    for (i, p) in EVAL_PROBLEMS.iter().enumerate() {
        let (mut hash, mut n) = (FNV_OFFSET, 0usize);
        let start = counter.now();
        let result = generate(session, p.prompt, cfg, text, &mut |ev| {
            if ev.span != Span::Prompt {
                hash = fnv1a(hash, ev.id);
                n += 1;
            }
            // Keeps the board's 32-bit cycle counter extended (it must be
            // read more often than it wraps); costs a few instructions.
            counter.now();
        });
        let spent = counter.now() - start;
        let (ok, answer) = match result {
            Ok(g) => (answer_matches(p.kind, p.answer, g.answer), g.answer),
            // Counted wrong, as the host's evaluation does.
            Err(GenerateError::PromptTooLong { .. }) => (false, "(prompt too long)"),
            Err(e) => generated_or_exit(Err(e), i),
        };
        correct += usize::from(ok);
        tokens += n;
        cost += spent;
        info!(
            "eval {=usize} {=str} {=str}: {=usize} tokens, ids fnv {=u32:#x}, {=u64} {=str}; answer {:?}",
            i,
            p.task,
            if ok { "ok" } else { "wrong" },
            n,
            hash,
            spent,
            board::COUNT_UNIT,
            answer
        );
        if !ok {
            info!("eval {=usize} expected {:?}", i, p.answer);
        }
    }
    info!(
        "eval: {=usize}/{=usize} correct; {=usize} generated tokens, {=u64} {=str}, {=u64} per token",
        correct,
        EVAL_PROBLEMS.len(),
        tokens,
        cost,
        board::COUNT_UNIT,
        mean(cost, tokens)
    );
}
