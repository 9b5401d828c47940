//! Column arithmetic written out one digit column per step, least significant
//! column first: the primitive every built-in task's trace is made of.
//!
//! Each step is `x OP y ± c=` followed by exactly two digits, so every step has
//! the same shape and each of its tokens depends only on tokens a few positions
//! back (the operand digits of that column and the previous step's first
//! digit):
//!
//! | op | step | the two digits |
//! |---|---|---|
//! | add | `x+y+c=CD` | `10·C + D = x + y + c`; C is the carry into the next column |
//! | sub | `x-y-b=BD` | `D − 10·B = x − y − b`; B is the borrow from the next column |
//! | mul | `x*m+c=CD` | `10·C + D = x·m + c`; C (0..=8) is the carry into the next column |
//!
//! The first column always starts with carry/borrow 0, written out, so the
//! step shape never changes. The result is read back from the steps: the last
//! step's C (add, mul) followed by every step's D from the last to the first,
//! without leading zeros.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_match_the_design_notes() {
        assert_eq!(add_steps(347, 589, 3), "7+9+0=16 4+8+1=13 3+5+1=09");
        assert_eq!(sub_steps(512, 498, 3), "2-8-0=14 1-9-1=11 5-4-1=00");
        assert_eq!(mul_steps(347, 6, 3), "7*6+0=42 4*6+4=28 3*6+2=20");
        assert_eq!(digits(0), 1);
        assert_eq!(digits(100), 3);
        assert_eq!(padded(7, 3), "007");
    }
}
