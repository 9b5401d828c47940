//! Multiplication of a number in `0..=999` (zero-padded to three digits) by a
//! single digit `2..=9`. One step per column of the long operand, least
//! significant first: `x*m+c=CD` is "digit x times m plus carry c gives
//! `10·C + D`"; the answer is the last carry followed by the D digits read
//! back, without leading zeros. Each step is a lookup over 10·8·9 cases, the
//! same shape as an addition column, which a small model learns reliably
//! (a 2×2-digit product would need partial products and a second addition,
//! roughly tripling the trace):
//!
//! ```text
//! <bos>347*6<think>7*6+0=42 4*6+4=28 3*6+2=20</think><answer>2082</answer><eos>
//! ```

use crate::columns::{mul_steps, padded};
use crate::{Problem, TaskKind};
use rand::Rng;

/// Digits of the long operand.
pub const WIDTH: usize = 3;
const MAX: u64 = 10u64.pow(WIDTH as u32) - 1;
/// Range of the single-digit multiplier (0 and 1 teach nothing).
pub const MULTIPLIER: std::ops::RangeInclusive<u64> = 2..=9;

pub(crate) fn sample<R: Rng + ?Sized>(rng: &mut R) -> Problem {
    let a = rng.gen_range(0..=MAX);
    let m = rng.gen_range(MULTIPLIER);
    Problem {
        task: TaskKind::Mul,
        problem: format!("{}*{m}", padded(a, WIDTH)),
        think: mul_steps(a, m, WIDTH),
        answer: (a * m).to_string(),
    }
}
