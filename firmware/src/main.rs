//! thinkling on a Cortex-M: runs the model blob embedded in flash on a list of
//! prompts and streams its reasoning over defmt, token by token.
//!
//! Everything is sized at build time (see build.rs): the blob sits in flash and
//! is read in place, the session arena is one static buffer of exactly
//! `runtime::memory::plan(..).total_bytes`, and there is no heap.
//!
//! On the host this crate builds a stub so that workspace-wide `cargo build`,
//! `test` and `clippy` keep working; the firmware itself only exists for
//! `thumbv7em-none-eabihf`.
#![cfg_attr(target_os = "none", no_std, no_main)]

/// Build-time settings written by build.rs (board, prompts, context, arena size).
#[allow(dead_code)] // Not every setting is used on every board or on the host.
mod settings {
    include!(concat!(env!("OUT_DIR"), "/settings.rs"));
}

#[cfg(all(target_arch = "arm", target_os = "none"))]
mod app;
#[cfg(all(target_arch = "arm", target_os = "none"))]
mod blobs;
#[cfg(all(target_arch = "arm", target_os = "none"))]
mod board;
#[cfg(all(target_arch = "arm", target_os = "none"))]
mod eval;
#[cfg(all(
    target_arch = "arm",
    target_os = "none",
    any(feature = "fault-stack-overflow", feature = "fault-bad-access")
))]
mod fault;
#[cfg(all(target_arch = "arm", target_os = "none"))]
mod report;
#[cfg(all(target_arch = "arm", target_os = "none"))]
mod spec;

#[cfg(not(target_os = "none"))]
fn main() {
    use settings::*;
    let work = if EVAL {
        format!("{} held-out problems", EVAL_PROBLEMS.len())
    } else {
        format!("{} prompts", PROMPTS.len())
    };
    println!(
        "The thinkling firmware runs on Cortex-M; this host build is a stub.\n\
         built for board {BOARD}: model {MODEL_PATH} ({MODEL_BYTES} bytes), context {CONTEXT}, \
         arena {ARENA_BYTES} bytes, {work}.\n\
         run it under QEMU with `cargo qemu` (see firmware/README.md)."
    );
}
