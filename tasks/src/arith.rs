//! Arithmetic problems written the way people type them: addition and
//! subtraction of numbers of 1 to 4 digits, multiplication of a 1–4 digit
//! number by 2..=9, division of a 1–4 digit number by 2..=9 (exact or with a
//! remainder), each in a surface form from [`crate::forms`]. The trace
//! restates the problem in the canonical aligned form and works it column by
//! column ([`crate::columns::worked`]):
//!
//! ```text
//! <bos>What is 12 plus 34?<think>0012+0034: 2+4+0=06 1+3+0=04 0+0+0=00 0+0+0=00 =46</think><answer>46</answer><eos>
//! <bos>subtract 7 from 56<think>0056-0007: 6-7-0=19 5-0-1=04 0-0-0=00 0-0-0=00 =49</think><answer>49</answer><eos>
//! <bos>How many groups of 4 are in 51?<think>51/4: 05/4=1r1 11/4=2r3 =12 R 3</think><answer>12 R 3</answer><eos>
//! ```

use crate::columns::{worked, Op};
use crate::{forms, Forms, Problem, TaskKind};
use rand::Rng;

/// Most digits of an operand.
pub const MAX_DIGITS: u32 = 4;
/// Range of the single-digit multiplier and divisor (0 and 1 teach nothing).
pub const SMALL: std::ops::RangeInclusive<u64> = 2..=9;

/// A number with a uniformly drawn count of 1..=4 digits, so that short
/// operands are as common as long ones. One in eight is a number people
/// like to type and uniform draws almost never give: a run of one digit
/// (`999`, `55`), a round number (`300`, `1000`) or one below it (`99`,
/// `4999`). Copying `999` digit for digit is where a small model miscounts.
fn operand<R: Rng + ?Sized>(rng: &mut R) -> u64 {
    let d = rng.gen_range(1..=MAX_DIGITS);
    if d > 1 && rng.gen_bool(0.125) {
        return round_number(rng, d);
    }
    let lo = if d == 1 { 0 } else { 10u64.pow(d - 1) };
    rng.gen_range(lo..10u64.pow(d))
}

/// A `d`-digit (`d` ≥ 2) run of one digit, round number, or round number
/// minus one.
fn round_number<R: Rng + ?Sized>(rng: &mut R, d: u32) -> u64 {
    let lead = rng.gen_range(1..=9u64);
    let unit = 10u64.pow(d - 1);
    match rng.gen_range(0..3u32) {
        0 => lead * (10u64.pow(d) - 1) / 9,
        1 => lead * unit,
        // `lead·10^(d-1) - 1` has d-1 digits when lead is 1: take d nines then.
        _ if lead == 1 => 10u64.pow(d) - 1,
        _ => lead * unit - 1,
    }
}

/// The operation of a task.
pub fn op_of(kind: TaskKind) -> Option<Op> {
    match kind {
        TaskKind::Add => Some(Op::Add),
        TaskKind::Sub => Some(Op::Sub),
        TaskKind::Mul => Some(Op::Mul),
        TaskKind::Div => Some(Op::Div),
        TaskKind::Word | TaskKind::User => None,
    }
}

/// Operands of `op`: subtraction never goes below zero; half the divisions
/// are exact.
fn operands<R: Rng + ?Sized>(rng: &mut R, op: Op) -> (u64, u64) {
    match op {
        Op::Add => (operand(rng), operand(rng)),
        Op::Sub => {
            let (x, y) = (operand(rng), operand(rng));
            (x.max(y), x.min(y))
        }
        Op::Mul => (operand(rng), rng.gen_range(SMALL)),
        Op::Div => {
            let d = rng.gen_range(SMALL);
            let a = operand(rng);
            if rng.gen_bool(0.5) {
                (a - a % d, d)
            } else {
                (a, d)
            }
        }
    }
}

pub(crate) fn sample<R: Rng + ?Sized>(rng: &mut R, kind: TaskKind, forms: Forms) -> Problem {
    let op = op_of(kind).unwrap_or(Op::Add);
    let (a, b) = operands(rng, op);
    let (problem, form) = forms::render(rng, op, a, b, forms);
    // Operands are in range by construction: `worked` cannot refuse them.
    let (think, value) = worked(a, op, b).unwrap_or_default();
    Problem {
        task: kind,
        problem,
        think,
        answer: value.to_string(),
        form,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn round_numbers_have_the_digits_asked_for() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let d = rng.gen_range(2..=MAX_DIGITS);
            let n = round_number(&mut rng, d);
            assert_eq!(crate::columns::digits(n), d as usize, "{n}");
            seen.insert(n);
        }
        for n in [99, 999, 9999, 55, 300, 1000, 4999] {
            assert!(seen.contains(&n), "{n} never drawn");
        }
    }
}
