//! Multi-step word problems from templates (GSM8K-like: people, items, buying,
//! giving away, groups of items, "N times as many"), two or three arithmetic
//! operations on small numbers.
//!
//! The trace writes each operation as a header with both operands padded to
//! the same width (the model copies numbers from the text or from the previous
//! result), then the column steps of [`crate::columns`], then `=` and the
//! result read back; operations are separated by `; `:
//!
//! ```text
//! <bos>Mia has 23 pens. She buys 4 bags with 12 pens in each. She gives 9 to Tom.
//! How many pens does Mia have now?<think>12*4: 2*4+0=08 1*4+0=04 =48;
//! 23+48: 3+8+0=11 2+4+1=07 =71; 71-09: 1-9-0=12 7-0-1=06 =62</think><answer>62</answer><eos>
//! ```
//! (one line in the data; wrapped here.)
//!
//! Numbers stay small (start 5..=60, changes up to 40, groups up to 6×12,
//! "times" up to 5) so every intermediate result has at most three digits
//! and a sample stays within about 120 tokens.

use crate::columns::{add_steps, digits, mul_steps, padded, sub_steps};
use crate::{Problem, TaskKind};
use rand::seq::SliceRandom;
use rand::Rng;

/// (name, subject pronoun, object pronoun)
const PEOPLE: &[(&str, &str, &str)] = &[
    ("Mia", "She", "her"),
    ("Ana", "She", "her"),
    ("Lily", "She", "her"),
    ("Zoe", "She", "her"),
    ("Eva", "She", "her"),
    ("Nina", "She", "her"),
    ("Ivy", "She", "her"),
    ("Sara", "She", "her"),
    ("Tom", "He", "him"),
    ("Ben", "He", "him"),
    ("Sam", "He", "him"),
    ("Max", "He", "him"),
    ("Leo", "He", "him"),
    ("Omar", "He", "him"),
    ("Raj", "He", "him"),
    ("Liam", "He", "him"),
];

const ITEMS: &[&str] = &[
    "apples", "pears", "plums", "eggs", "cookies", "marbles", "stickers", "cards", "books", "pens",
    "shells", "stamps", "coins", "beads", "toys", "balls",
];

/// Bags, boxes, ...: containers for the groups step.
const GROUPS: &[&str] = &["bags", "boxes", "packs", "jars"];

/// Range of the starting amount.
pub const START: std::ops::RangeInclusive<u64> = 5..=60;
/// Largest amount added or taken away in one step.
pub const CHANGE_MAX: u64 = 40;
/// Range of the number of groups and of items per group.
pub const GROUP_COUNT: std::ops::RangeInclusive<u64> = 2..=6;
pub const GROUP_SIZE: std::ops::RangeInclusive<u64> = 2..=12;
/// Range of the "N times as many" factor.
pub const TIMES: std::ops::RangeInclusive<u64> = 2..=5;
/// Every intermediate result stays below this (three digits).
const LIMIT: u64 = 999;

struct Op {
    a: u64,
    b: u64,
    kind: char,
}

impl Op {
    fn result(&self) -> u64 {
        match self.kind {
            '+' => self.a + self.b,
            '-' => self.a - self.b,
            _ => self.a * self.b,
        }
    }

    /// `A?B: steps =R`, operands padded to a common width (a multiplier is
    /// always one digit and stays unpadded).
    fn render(&self) -> String {
        let r = self.result();
        match self.kind {
            '*' => {
                let w = digits(self.a);
                format!(
                    "{}*{}: {} ={r}",
                    self.a,
                    self.b,
                    mul_steps(self.a, self.b, w)
                )
            }
            k => {
                let w = digits(self.a).max(digits(self.b));
                let steps = if k == '+' {
                    add_steps(self.a, self.b, w)
                } else {
                    sub_steps(self.a, self.b, w)
                };
                format!(
                    "{}{k}{}: {steps} ={r}",
                    padded(self.a, w),
                    padded(self.b, w)
                )
            }
        }
    }
}

fn pick<'a, T, R: Rng + ?Sized>(rng: &mut R, xs: &'a [T]) -> &'a T {
    // Lists are non-empty constants.
    xs.choose(rng).unwrap_or(&xs[0])
}

/// Longest sample (in pretokenizer chunks incl. special tokens, see
/// [`crate::sample_chunks`]); longer draws are redrawn.
pub const MAX_CHUNKS: usize = 120;

pub(crate) fn sample<R: Rng + ?Sized>(rng: &mut R) -> Problem {
    loop {
        let p = draw(rng);
        if crate::sample_chunks(&p) <= MAX_CHUNKS {
            return p;
        }
    }
}

fn draw<R: Rng + ?Sized>(rng: &mut R) -> Problem {
    let &(name, she, her) = pick(rng, PEOPLE);
    let other = loop {
        let p = pick(rng, PEOPLE);
        if p.0 != name {
            break *p;
        }
    };
    let items = *pick(rng, ITEMS);
    let mut cur = rng.gen_range(START);
    let mut text = format!("{name} has {cur} {items}.");
    let mut ops: Vec<Op> = Vec::new();
    let target = rng.gen_range(2..=3usize);
    let mut question = format!(" How many {items} does {name} have now?");
    while ops.len() < target {
        let left = target - ops.len();
        match rng.gen_range(0..4u32) {
            // Add.
            0 => {
                let n = rng.gen_range(2..=CHANGE_MAX);
                if cur + n > LIMIT {
                    continue;
                }
                let s = match rng.gen_range(0..4u32) {
                    0 => format!(" {she} buys {n} more."),
                    1 => format!(" {she} finds {n} more."),
                    2 => format!(" {} gives {her} {n} more.", other.0),
                    _ => format!(" {she} wins {n} more."),
                };
                text += &s;
                ops.push(Op {
                    a: cur,
                    b: n,
                    kind: '+',
                });
                cur += n;
            }
            // Take away.
            1 => {
                if cur < 2 {
                    continue;
                }
                let n = rng.gen_range(1..=cur.min(CHANGE_MAX));
                let s = match rng.gen_range(0..4u32) {
                    0 => format!(" {she} gives {n} to {}.", other.0),
                    1 => format!(" {she} gives away {n}."),
                    2 => format!(" {she} sells {n}."),
                    _ => format!(" {she} loses {n}."),
                };
                text += &s;
                ops.push(Op {
                    a: cur,
                    b: n,
                    kind: '-',
                });
                cur -= n;
            }
            // Groups: a product, then a sum (two operations).
            2 => {
                if left < 2 {
                    continue;
                }
                let k = rng.gen_range(GROUP_COUNT);
                let m = rng.gen_range(GROUP_SIZE);
                if cur + k * m > LIMIT {
                    continue;
                }
                let g = *pick(rng, GROUPS);
                text += &format!(" {she} buys {k} {g} with {m} {items} in each.");
                ops.push(Op {
                    a: m,
                    b: k,
                    kind: '*',
                });
                ops.push(Op {
                    a: cur,
                    b: k * m,
                    kind: '+',
                });
                cur += k * m;
            }
            // "N times as many": only as the last operation, it changes who
            // the question is about.
            _ => {
                if left != 1 {
                    continue;
                }
                let k = rng.gen_range(TIMES);
                if cur * k > LIMIT {
                    continue;
                }
                text += &format!(" {} has {k} times as many {items} as {name}.", other.0);
                question = format!(" How many {items} does {} have?", other.0);
                ops.push(Op {
                    a: cur,
                    b: k,
                    kind: '*',
                });
                cur *= k;
            }
        }
    }
    text += &question;
    let think = ops.iter().map(Op::render).collect::<Vec<_>>().join("; ");
    Problem {
        task: TaskKind::Word,
        problem: text,
        think,
        answer: cur.to_string(),
    }
}
