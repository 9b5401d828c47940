//! Checking a generated answer against the expected one without an
//! allocator, so a board can score itself: the rule of the `tasks` crate's
//! verifier for its built-in tasks (`tasks::verify`), which the tasks
//! crate's tests hold this module to.
//!
//! Whitespace runs count as one space and the ends are trimmed; integers
//! compare as numbers (`042` equals `42`, `1,200` equals `1200`, a leading
//! `+` is allowed); a division's answer compares quotient and remainder
//! (`12 R 3`, `12r3` and `12 remainder 3` are equal, a plain `12` has
//! remainder 0).

/// How an expected answer is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerKind {
    /// An integer; texts that are not integers compare word for word.
    Integer,
    /// A quotient with its remainder; a text that does not parse is wrong.
    Quotient,
}

impl AnswerKind {
    pub fn name(self) -> &'static str {
        match self {
            AnswerKind::Integer => "integer",
            AnswerKind::Quotient => "quotient",
        }
    }
}

/// Whether `got` (the text of the answer span) is right when `expected` is.
pub fn answer_matches(kind: AnswerKind, expected: &str, got: &str) -> bool {
    match kind {
        AnswerKind::Quotient => matches!(
            (parse_quotient(expected), parse_quotient(got)),
            (Some(want), Some(have)) if want == have
        ),
        AnswerKind::Integer => match (parse_integer(expected), parse_integer(got)) {
            (Some(want), Some(have)) => want == have,
            _ => same_words(expected, got),
        },
    }
}

/// The texts are equal once whitespace is normalized.
pub fn same_words(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

/// An integer written as one word, thousands commas anywhere in it, after
/// an optional `+` and then an optional sign: the grammar of
/// `tasks::parse_integer` (which strips commas and one `+` and hands the
/// rest to `i128::from_str`). `None` when it is not one or does not fit.
pub fn parse_integer(s: &str) -> Option<i128> {
    let mut words = s.split_whitespace();
    let word = words.next()?;
    if words.next().is_some() {
        return None;
    }
    let mut bytes = word.bytes().filter(|&b| b != b',').peekable();
    if bytes.peek() == Some(&b'+') {
        bytes.next();
    }
    let negative = match bytes.peek() {
        Some(b'-') => {
            bytes.next();
            true
        }
        Some(b'+') => {
            bytes.next();
            false
        }
        _ => false,
    };
    let mut value: i128 = 0;
    let mut digits = 0usize;
    for b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        let d = i128::from(b - b'0');
        // Accumulated on the side of its sign, as `from_str` does, so that
        // `i128::MIN` parses too.
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(d)?
        } else {
            value.checked_add(d)?
        };
        digits += 1;
    }
    (digits > 0).then_some(value)
}

/// A quotient and remainder: the text is split at the first `remainder`,
/// else at the first `r` (either case), and both sides must be integers;
/// without either it is an integer with remainder 0.
pub fn parse_quotient(s: &str) -> Option<(i128, i128)> {
    for sep in ["remainder", "r"] {
        if let Some(at) = find_ignore_ascii_case(s, sep) {
            let quotient = s.get(..at)?;
            let remainder = s.get(at + sep.len()..)?;
            return Some((parse_integer(quotient)?, parse_integer(remainder)?));
        }
    }
    Some((parse_integer(s)?, 0))
}

/// Byte offset of the first match of the ASCII pattern `pat`, ignoring
/// ASCII case. The pattern has no whitespace, so a match in `s` is a match
/// in its normalized form and the other way round; and ASCII bytes never
/// occur inside a multi-byte character, so the offset is a boundary.
fn find_ignore_ascii_case(s: &str, pat: &str) -> Option<usize> {
    let (s, p) = (s.as_bytes(), pat.as_bytes());
    let last = s.len().checked_sub(p.len())?;
    (0..=last).find(|&i| {
        s.get(i..i + p.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(p))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        for (s, v) in [
            ("42", Some(42)),
            (" 042\n", Some(42)),
            ("1,200", Some(1200)),
            ("+7", Some(7)),
            ("++7", Some(7)),
            ("+-7", Some(-7)),
            ("-+7", None),
            ("-0", Some(0)),
            ("4 2", None),
            ("", None),
            ("+", None),
            (",", None),
            ("5 ,", None),
            ("12a", None),
            ("١٢", None),
            ("-170141183460469231731687303715884105728", Some(i128::MIN)),
            ("170141183460469231731687303715884105728", None),
        ] {
            assert_eq!(parse_integer(s), v, "{s:?}");
        }
    }

    #[test]
    fn quotients() {
        for (s, v) in [
            ("12 R 3", Some((12, 3))),
            ("12r3", Some((12, 3))),
            ("12 Remainder 3", Some((12, 3))),
            ("12", Some((12, 0))),
            ("12 R", None),
            ("12 remainder x", None),
            ("r", None),
        ] {
            assert_eq!(parse_quotient(s), v, "{s:?}");
        }
    }

    #[test]
    fn matching() {
        use AnswerKind::*;
        assert!(answer_matches(Integer, "42", " 042 "));
        assert!(!answer_matches(Integer, "42", "43"));
        assert!(!answer_matches(Integer, "42", ""));
        assert!(answer_matches(Integer, "a  b", " a b"));
        assert!(answer_matches(Quotient, "12 R 3", "12 remainder 3"));
        assert!(answer_matches(Quotient, "12 R 0", "12"));
        assert!(!answer_matches(Quotient, "12 R 3", "12 R 4"));
        // No word-for-word fallback for a quotient.
        assert!(!answer_matches(Quotient, "x", "x"));
    }
}
