//! The log lines shared by the plain and the speculative run, and the one
//! way a failure ends the program: logged, then the board exits with its
//! code.
//!
//! Log lines the tests parse (tests/firmware.rs) start with a fixed word:
//! `prompt <i>`, `token <i> <id> <span> <cost>` and `done <i>`; everything
//! else is for people.

use crate::board::{self, exit_code};
use defmt::{error, info, Display2Format};
use runtime::generate::{Span, StopReason, TokenEvent};

/// The value of `result`, or `what` and the error logged and the board's
/// exit with `code`.
pub fn or_exit<T, E: core::fmt::Display>(result: Result<T, E>, what: &str, code: i32) -> T {
    match result {
        Ok(v) => v,
        Err(e) => {
            error!("{=str}: {}", what, Display2Format(&e));
            board::exit(code)
        }
    }
}

/// A prompt's generation result, or its error logged and the engine's exit.
pub fn generated_or_exit<T, E: core::fmt::Display>(result: Result<T, E>, prompt: usize) -> T {
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

fn span_name(span: Span) -> &'static str {
    match span {
        Span::Prompt => "prompt",
        Span::Think => "think",
        Span::Answer => "answer",
        Span::Other => "other",
    }
}

/// One streamed token: `token <prompt> <id> <span> <cost> <text>` (the tests
/// parse this line to compare the board's tokens with the host's).
pub fn log_token(prompt: usize, ev: &TokenEvent, cost: u64) {
    info!(
        "token {=usize} {=u32} {=str} {=u64} {:?}",
        prompt,
        ev.id,
        span_name(ev.span),
        cost,
        ev.text
    );
}

pub fn stop_name(stop: StopReason) -> &'static str {
    match stop {
        StopReason::Eos => "eos",
        StopReason::TokenLimit => "token-limit",
        StopReason::ContextFull => "context-full",
    }
}

/// Decode cost per token after the first (which carries the prefill), from
/// the cost of the tokens after the first.
pub fn per_token(decode: u64, generated: usize) -> u64 {
    if generated > 1 {
        decode / (generated as u64 - 1)
    } else {
        0
    }
}

/// `cost / n`, 0 for no tokens.
pub fn mean(cost: u64, n: usize) -> u64 {
    if n > 0 {
        cost / n as u64
    } else {
        0
    }
}
