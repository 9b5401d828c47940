//! Addition of two numbers in `0..=999`, zero-padded to three digits in the
//! problem so column `i` of both operands sits at a fixed offset. One step per
//! column, least significant first, carry written out (see [`crate::columns`]):
//!
//! ```text
//! <bos>347+589<think>7+9+0=16 4+8+1=13 3+5+1=09</think><answer>936</answer><eos>
//! ```

use crate::columns::{add_steps, padded};
use crate::{Problem, TaskKind};
use rand::Rng;

/// Operand digits (operands are `0..10^WIDTH`).
pub const WIDTH: usize = 3;
const MAX: u64 = 10u64.pow(WIDTH as u32) - 1;

pub(crate) fn sample<R: Rng + ?Sized>(rng: &mut R) -> Problem {
    let a = rng.gen_range(0..=MAX);
    let b = rng.gen_range(0..=MAX);
    Problem {
        task: TaskKind::Add,
        problem: format!("{}+{}", padded(a, WIDTH), padded(b, WIDTH)),
        think: add_steps(a, b, WIDTH),
        answer: (a + b).to_string(),
    }
}
