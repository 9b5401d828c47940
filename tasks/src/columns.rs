//! Column arithmetic written out one digit column per step: the primitive
//! every built-in task's trace is made of.
//!
//! A worked operation ([`worked`]) first restates the problem in one canonical,
//! aligned form — both operands of `+` and `-` zero-padded to four digits,
//! the multiplicand or dividend unpadded, the single-digit multiplier or
//! divisor last — then gives one step per digit column, then `=` and the
//! result:
//!
//! ```text
//! 347+589 is written    0347+0589: 7+9+0=16 4+8+1=13 3+5+1=09 0+0+0=00 =936
//! 12 + 7                0012+0007: 2+7+0=09 1+0+0=01 0+0+0=00 0+0+0=00 =19
//! 512 - 498             0512-0498: 2-8-0=14 1-9-1=11 5-4-1=00 0-0-0=00 =14
//! 347 * 6               347*6: 7*6+0=42 4*6+4=28 3*6+2=20 =2082
//! 51 / 4                51/4: 05/4=1r1 11/4=2r3 =12 R 3
//! ```
//!
//! Each step has one fixed shape, and each of its tokens depends only on a
//! few tokens the model can attend to (the operand digits of that column and
//! the previous step):
//!
//! | op | step | meaning | order |
//! |---|---|---|---|
//! | add | `x+y+c=CD` | `10·C + D = x + y + c`; C is the carry into the next column | least significant first |
//! | sub | `x-y-b=BD` | `D − 10·B = x − y − b`; B is the borrow from the next column | least significant first |
//! | mul | `x*m+c=CD` | `10·C + D = x·m + c`; C (0..=8) is the carry into the next column | least significant first |
//! | div | `rx/d=qrR` | `10·r + x = q·d + R`; R is the remainder carried into the next step | most significant first |
//!
//! The first column always starts with carry/borrow/remainder 0, written out,
//! so the step shape never changes. Add and mul read their result back as the
//! last step's C followed by every step's D from the last to the first; div
//! reads the quotient digits q in step order; leading zeros are dropped.

use std::fmt;

/// One arithmetic operation of a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

impl Op {
    /// The operator as the canonical restatement writes it.
    pub fn symbol(self) -> char {
        match self {
            Op::Add => '+',
            Op::Sub => '-',
            Op::Mul => '*',
            Op::Div => '/',
        }
    }
}

/// The value of an operation: a number, or a quotient with its remainder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Value {
    pub value: u64,
    /// Remainder of a division (0 for every other operation).
    pub remainder: u64,
}

impl fmt::Display for Value {
    /// `936`, or `12 R 3` for a division that leaves a remainder.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.remainder == 0 {
            write!(f, "{}", self.value)
        } else {
            write!(f, "{} R {}", self.value, self.remainder)
        }
    }
}

/// `a OP b`; `None` where the trace cannot write it (a negative difference,
/// a multiplier or divisor that is not one digit, division by zero).
pub fn apply(a: u64, op: Op, b: u64) -> Option<Value> {
    let v = |value| Value {
        value,
        remainder: 0,
    };
    match op {
        Op::Add => a.checked_add(b).map(v),
        Op::Sub => a.checked_sub(b).map(v),
        Op::Mul => (b < 10).then(|| a * b).map(v),
        Op::Div => (1..10).contains(&b).then(|| Value {
            value: a / b,
            remainder: a % b,
        }),
    }
}

/// Number of decimal digits of `n` (1 for 0).
pub fn digits(n: u64) -> usize {
    let mut d = 1;
    let mut n = n / 10;
    while n > 0 {
        d += 1;
        n /= 10;
    }
    d
}

/// `n` zero-padded to `width` digits.
pub fn padded(n: u64, width: usize) -> String {
    format!("{n:0width$}")
}

fn digit(n: u64, i: usize) -> u64 {
    (n / 10u64.pow(i as u32)) % 10
}

/// Digits every operand of `+` and `-` is padded to: one width for every
/// problem, so the model pads each number by its own length alone and the
/// trace always has the same number of columns.
pub const WIDTH: usize = 4;

/// Columns of `a ± b`: [`WIDTH`], or more for longer operands.
fn width(a: u64, b: u64) -> usize {
    WIDTH.max(digits(a)).max(digits(b))
}

/// The canonical, aligned restatement: `0347+0589` for `+`/`-` (both operands
/// padded to [`WIDTH`] digits), `347*6` and `51/4` for `*` and `/` (the
/// one-digit factor or divisor last).
pub fn restate(a: u64, op: Op, b: u64) -> String {
    match op {
        Op::Add | Op::Sub => {
            let w = width(a, b);
            format!("{}{}{}", padded(a, w), op.symbol(), padded(b, w))
        }
        Op::Mul | Op::Div => format!("{a}{}{b}", op.symbol()),
    }
}

/// The worked operation: `restatement: steps =result` (see the module
/// documentation). `None` where [`apply`] is.
pub fn worked(a: u64, op: Op, b: u64) -> Option<(String, Value)> {
    let r = apply(a, op, b)?;
    let steps = match op {
        Op::Add => add_steps(a, b, width(a, b)),
        Op::Sub => sub_steps(a, b, width(a, b)),
        Op::Mul => mul_steps(a, b, digits(a)),
        Op::Div => div_steps(a, b),
    };
    Some((format!("{}: {steps} ={r}", restate(a, op, b)), r))
}

/// The steps of `a + b` over `width` columns, space-separated.
pub fn add_steps(a: u64, b: u64, width: usize) -> String {
    let mut steps = Vec::with_capacity(width);
    let mut carry = 0;
    for i in 0..width {
        let (x, y) = (digit(a, i), digit(b, i));
        let s = x + y + carry;
        steps.push(format!("{x}+{y}+{carry}={}{}", s / 10, s % 10));
        carry = s / 10;
    }
    steps.join(" ")
}

/// The steps of `a - b` (`a >= b`) over `width` columns, space-separated.
pub fn sub_steps(a: u64, b: u64, width: usize) -> String {
    debug_assert!(a >= b);
    let mut steps = Vec::with_capacity(width);
    let mut borrow = 0;
    for i in 0..width {
        let (x, y) = (digit(a, i) as i64, digit(b, i) as i64);
        let d = x - y - borrow;
        let (nb, dd) = if d < 0 { (1, d + 10) } else { (0, d) };
        steps.push(format!("{x}-{y}-{borrow}={nb}{dd}"));
        borrow = nb;
    }
    steps.join(" ")
}

/// The steps of `a * m` (`m` a single digit) over `width` columns, space-separated.
pub fn mul_steps(a: u64, m: u64, width: usize) -> String {
    debug_assert!(m < 10);
    let mut steps = Vec::with_capacity(width);
    let mut carry = 0;
    for i in 0..width {
        let x = digit(a, i);
        let p = x * m + carry;
        steps.push(format!("{x}*{m}+{carry}={}{}", p / 10, p % 10));
        carry = p / 10;
    }
    steps.join(" ")
}

/// The long-division steps of `a / d` (`d` in 1..=9), most significant digit
/// of `a` first: `rx/d=qrR`, the remainder and the next digit brought down
/// (always two digits), the quotient digit and the new remainder.
pub fn div_steps(a: u64, d: u64) -> String {
    debug_assert!((1..10).contains(&d));
    let width = digits(a);
    let mut steps = Vec::with_capacity(width);
    let mut rem = 0;
    for i in (0..width).rev() {
        let x = digit(a, i);
        let v = rem * 10 + x;
        steps.push(format!("{rem}{x}/{d}={}r{}", v / d, v % d));
        rem = v % d;
    }
    steps.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_match_the_documentation() {
        assert_eq!(add_steps(347, 589, 3), "7+9+0=16 4+8+1=13 3+5+1=09");
        assert_eq!(sub_steps(512, 498, 3), "2-8-0=14 1-9-1=11 5-4-1=00");
        assert_eq!(mul_steps(347, 6, 3), "7*6+0=42 4*6+4=28 3*6+2=20");
        assert_eq!(div_steps(51, 4), "05/4=1r1 11/4=2r3");
        let w = |a, op, b| worked(a, op, b).unwrap().0;
        assert_eq!(
            w(347, Op::Add, 589),
            "0347+0589: 7+9+0=16 4+8+1=13 3+5+1=09 0+0+0=00 =936"
        );
        assert_eq!(
            w(12, Op::Add, 7),
            "0012+0007: 2+7+0=09 1+0+0=01 0+0+0=00 0+0+0=00 =19"
        );
        assert_eq!(
            w(999, Op::Add, 1),
            "0999+0001: 9+1+0=10 9+0+1=10 9+0+1=10 0+0+1=01 =1000"
        );
        assert_eq!(
            w(347, Op::Mul, 6),
            "347*6: 7*6+0=42 4*6+4=28 3*6+2=20 =2082"
        );
        assert_eq!(w(51, Op::Div, 4), "51/4: 05/4=1r1 11/4=2r3 =12 R 3");
        assert_eq!(w(48, Op::Div, 6), "48/6: 04/6=0r4 48/6=8r0 =8");
        assert_eq!(digits(0), 1);
        assert_eq!(digits(100), 3);
        assert_eq!(padded(7, 3), "007");
    }

    #[test]
    fn impossible_operations_are_refused() {
        assert!(worked(3, Op::Sub, 4).is_none());
        assert!(worked(3, Op::Mul, 12).is_none());
        assert!(worked(3, Op::Div, 0).is_none());
        assert!(worked(3, Op::Div, 10).is_none());
    }
}
