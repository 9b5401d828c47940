//! Subtraction `a-b` with `0 <= b <= a <= 999` (results are never negative),
//! zero-padded to three digits. One step per column, least significant first:
//! `x-y-b=BD` reads "x minus y minus the borrow b gives digit D, borrowing B
//! from the next column" (`D - 10·B = x - y - b`). The answer drops leading
//! zeros:
//!
//! ```text
//! <bos>512-498<think>2-8-0=14 1-9-1=11 5-4-1=00</think><answer>14</answer><eos>
//! ```

use crate::columns::{padded, sub_steps};
use crate::{Problem, TaskKind};
use rand::Rng;

/// Operand digits.
pub const WIDTH: usize = 3;
const MAX: u64 = 10u64.pow(WIDTH as u32) - 1;

pub(crate) fn sample<R: Rng + ?Sized>(rng: &mut R) -> Problem {
    let x = rng.gen_range(0..=MAX);
    let y = rng.gen_range(0..=MAX);
    let (a, b) = if x >= y { (x, y) } else { (y, x) };
    Problem {
        task: TaskKind::Sub,
        problem: format!("{}-{}", padded(a, WIDTH), padded(b, WIDTH)),
        think: sub_steps(a, b, WIDTH),
        answer: (a - b).to_string(),
    }
}
