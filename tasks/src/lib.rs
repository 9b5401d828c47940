//! Built-in reasoning tasks: generators that write their working step by step,
//! verifiers, the train/held-out split, and loading of user data (JSONL and
//! GSM8K).
//!
//! A sample is `<bos> problem <think> think </think> <answer> answer </answer> <eos>`
//! (see `docs/contracts.md`); a [`Problem`] holds the three texts. Problems
//! are written the way people write them (any spacing, symbols or words,
//! wrappers such as `What is …?`, word problems in many sentences); the trace
//! first restates each operation in one canonical aligned form and then works
//! it one digit column per step (see [`columns`]), so each token is computable
//! from a few tokens the model can attend to; digits are always single tokens.
//!
//! Two splits keep evaluation honest: held-out *problems* (a stable hash of
//! the canonical problem, see [`is_held_out`]) and held-out *forms* (phrasings,
//! wrappers and word templates that training never uses, see [`forms`] and
//! [`word`]): [`Split::OutOfTemplate`] draws only from the latter.
//!
//! Tasks: [`arith`] (add, sub, mul, div) and [`word`]. User data: [`data`].

pub mod arith;
pub mod columns;
pub mod data;
pub mod forms;
pub mod mix;
pub mod word;

pub use data::{load_jsonl, parse_jsonl};
pub use mix::{describe_mix, held_out_set, ood_set, Mix};
/// The random number generators the API takes, re-exported so callers use the
/// same crate versions.
pub use rand;
pub use rand_chacha::{self, ChaCha8Rng};

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Which task a problem comes from. Names: `add`, `sub`, `mul`, `div`, `word`, `user`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    Add,
    Sub,
    Mul,
    Div,
    Word,
    /// Problems loaded from a file; they have no generator.
    User,
}

impl TaskKind {
    /// The tasks that have a generator, in a fixed order.
    pub const BUILTIN: [TaskKind; 5] = [
        TaskKind::Add,
        TaskKind::Sub,
        TaskKind::Mul,
        TaskKind::Div,
        TaskKind::Word,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Add => "add",
            TaskKind::Sub => "sub",
            TaskKind::Mul => "mul",
            TaskKind::Div => "div",
            TaskKind::Word => "word",
            TaskKind::User => "user",
        }
    }

    pub fn is_builtin(self) -> bool {
        self != TaskKind::User
    }

    /// How [`verify`] compares this task's answers, as the runtime's
    /// allocation-free check has it (a board scores itself with it); `None`
    /// for user data, whose numbers may be decimals.
    pub fn answer_kind(self) -> Option<runtime::answer::AnswerKind> {
        match self {
            TaskKind::Div => Some(runtime::answer::AnswerKind::Quotient),
            TaskKind::User => None,
            _ => Some(runtime::answer::AnswerKind::Integer),
        }
    }
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TaskKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "add" => Ok(TaskKind::Add),
            "sub" => Ok(TaskKind::Sub),
            "mul" => Ok(TaskKind::Mul),
            "div" => Ok(TaskKind::Div),
            "word" => Ok(TaskKind::Word),
            "user" => Ok(TaskKind::User),
            other => {
                anyhow::bail!("unknown task {other:?} (expected add, sub, mul, div, word or user)")
            }
        }
    }
}

/// One problem with its worked steps and its answer (texts without special tokens).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub task: TaskKind,
    pub problem: String,
    pub think: String,
    pub answer: String,
    /// The surface form the problem was written in (`add: {a} plus {b}`,
    /// `wrapper: How much is {}?`, `word:loss`), for reports per form;
    /// empty for user data.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub form: String,
}

/// Which surface forms (phrasings, wrappers, word templates) a generator may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forms {
    /// Only forms training uses.
    Trained,
    /// At least one form training never uses.
    HeldOut,
}

/// Which side of the train/held-out split a generated problem must fall on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// Trained forms, problems outside the held-out hash class.
    Train,
    /// Trained forms, held-out problems: the in-distribution test.
    HeldOut,
    /// Held-out forms (any problem): the out-of-template test.
    OutOfTemplate,
}

impl Split {
    pub fn forms(self) -> Forms {
        match self {
            Split::Train | Split::HeldOut => Forms::Trained,
            Split::OutOfTemplate => Forms::HeldOut,
        }
    }
}

/// One in `HELD_OUT_MODULUS` problem texts is held out.
pub const HELD_OUT_MODULUS: u64 = 8;

/// FNV-1a (64 bit): stable across platforms, Rust versions and runs, unlike
/// `std`'s `DefaultHasher`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Whether a problem text belongs to the held-out split (~1 in 8), decided by
/// a stable hash of the exact text so every tool agrees without a list.
// `u64::is_multiple_of` is newer than the workspace's rust-version (1.85).
#[allow(clippy::manual_is_multiple_of)]
pub fn is_held_out(problem_text: &str) -> bool {
    fnv1a(problem_text.as_bytes()) % HELD_OUT_MODULUS == 0
}

/// The text the held-out hash is taken of: for arithmetic the canonical
/// restatement at the head of the trace (`0012+0034`), so a held-out problem is
/// never trained in any phrasing; for everything else the problem text.
pub fn split_key(p: &Problem) -> &str {
    match p.task {
        TaskKind::Add | TaskKind::Sub | TaskKind::Mul | TaskKind::Div => {
            p.think.split(':').next().unwrap_or(&p.problem)
        }
        TaskKind::Word | TaskKind::User => &p.problem,
    }
}

/// A problem of `kind` on the `split` side: candidates from the other side
/// are drawn again, so training never sees a held-out problem or form.
///
/// # Panics
/// For [`TaskKind::User`], which has no generator (user problems come from
/// [`load_jsonl`]; split them with [`split_problems`]).
pub fn generate<R: Rng + ?Sized>(kind: TaskKind, rng: &mut R, split: Split) -> Problem {
    loop {
        let forms = split.forms();
        let p = match kind {
            TaskKind::Add | TaskKind::Sub | TaskKind::Mul | TaskKind::Div => {
                arith::sample(rng, kind, forms)
            }
            TaskKind::Word => word::sample(rng, forms),
            TaskKind::User => {
                panic!("the user task has no generator: load user problems from a file")
            }
        };
        match split {
            Split::OutOfTemplate => return p,
            _ if is_held_out(split_key(&p)) == (split == Split::HeldOut) => return p,
            _ => {}
        }
    }
}

/// Splits loaded problems by [`is_held_out`]: `(train, held_out)`.
pub fn split_problems(problems: Vec<Problem>) -> (Vec<Problem>, Vec<Problem>) {
    problems.into_iter().partition(|p| !is_held_out(&p.problem))
}

/// The same problem without its working, for answer-only (`--no-think`) training.
pub fn answer_only(p: &Problem) -> Problem {
    Problem {
        think: String::new(),
        ..p.clone()
    }
}

/// Length of the full training sequence of `p` in pretokenizer chunks plus
/// the six special tokens: the token count a BPE reaches when each chunk is
/// one token, and a lower bound otherwise (every digit is one token either way).
pub fn sample_chunks(p: &Problem) -> usize {
    let n = |s: &str| runtime::tokenizer::pretokenize::chunks(s.as_bytes()).count();
    let specials = if p.think.is_empty() { 4 } else { 6 };
    n(&p.problem) + n(&p.think) + n(&p.answer) + specials
}

/// Trims and collapses every whitespace run to one space.
pub fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An integer, allowing a sign, surrounding whitespace and thousands commas
/// (`1,200`), as GSM8K writes them.
pub fn parse_integer(s: &str) -> Option<i128> {
    let t = normalize(s).replace(',', "");
    let t = t.strip_prefix('+').unwrap_or(&t);
    if t.is_empty() || t.contains(' ') {
        return None;
    }
    t.parse().ok()
}

/// A number (integer or decimal, optional `$`/`%` decoration), for user data.
fn parse_number(s: &str) -> Option<f64> {
    let t = normalize(s).replace(',', "");
    let t = t.strip_prefix('$').unwrap_or(&t);
    let t = t.strip_suffix('%').unwrap_or(t);
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.is_empty() || t.contains(' ') || !t.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    // Rust also parses "inf"/"nan": insist on a plain decimal.
    if !t
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return None;
    }
    t.parse().ok()
}

/// A quotient with its remainder as the model or a person writes it:
/// `12 R 3`, `12r3`, `12 remainder 3`, or a plain `12` (remainder 0).
pub fn parse_quotient(s: &str) -> Option<(i128, i128)> {
    let t = normalize(s).to_ascii_lowercase();
    for sep in ["remainder", "r"] {
        if let Some((q, r)) = t.split_once(sep) {
            return Some((parse_integer(q)?, parse_integer(r)?));
        }
    }
    Some((parse_integer(&t)?, 0))
}

/// The task's verifier: is `answer` (the model's text between `<answer>` and
/// `</answer>`) right for `problem`? Whitespace is normalized. Built-in tasks
/// compare integers (`042` equals `42`; a division compares quotient and
/// remainder, `12 R 3` equals `12 remainder 3`); user problems compare
/// numbers when both sides parse as numbers (`1,000` equals `1000.0`), else
/// the normalized strings.
pub fn verify(problem: &Problem, answer: &str) -> bool {
    if problem.task == TaskKind::Div {
        match (parse_quotient(&problem.answer), parse_quotient(answer)) {
            (Some(want), Some(got)) => want == got,
            _ => false,
        }
    } else if problem.task.is_builtin() {
        match (parse_integer(&problem.answer), parse_integer(answer)) {
            (Some(want), Some(got)) => want == got,
            _ => normalize(&problem.answer) == normalize(answer),
        }
    } else {
        match (parse_number(&problem.answer), parse_number(answer)) {
            (Some(want), Some(got)) => want == got,
            _ => normalize(&problem.answer) == normalize(answer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_round_trip() {
        for k in TaskKind::BUILTIN.into_iter().chain([TaskKind::User]) {
            assert_eq!(k.to_string().parse::<TaskKind>().unwrap(), k);
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{k}\""));
        }
        assert!("mod".parse::<TaskKind>().is_err());
    }

    #[test]
    fn numbers_compare_as_numbers() {
        let p = Problem {
            task: TaskKind::Add,
            problem: "001+041".into(),
            think: String::new(),
            answer: "42".into(),
            form: String::new(),
        };
        assert!(verify(&p, "42"));
        assert!(verify(&p, " 042\n"));
        assert!(!verify(&p, "43"));
        assert!(!verify(&p, "4 2"));
        assert!(!verify(&p, ""));
        let u = Problem {
            task: TaskKind::User,
            answer: "1,000".into(),
            ..p.clone()
        };
        assert!(verify(&u, "1000"));
        assert!(verify(&u, "1000.0"));
        assert!(!verify(&u, "100"));
        let t = Problem {
            task: TaskKind::User,
            answer: "Paris  France".into(),
            ..p
        };
        assert!(verify(&t, " Paris France "));
        assert!(!verify(&t, "paris france"));
    }
}
