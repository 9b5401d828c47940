//! The surface forms of an arithmetic problem: the ways people write `a OP b`.
//!
//! A prompt is a *phrasing* of the operation (`12+34`, `12 plus 34`, `the sum
//! of 12 and 34`, `Add 12 and 34`) inside a *wrapper* (`What is …?`,
//! `Compute …`, `… =`). Expressions take any expression wrapper; commands
//! (`Add 12 and 34`, `Subtract 7 from 56`) stand alone with a command
//! wrapper. Symbols are written with or without spaces, numbers are never
//! zero-padded and four-digit numbers sometimes carry a thousands comma.
//!
//! Some phrasings and wrappers are **held out**: training never sees them,
//! and the out-of-template evaluation uses only problems with at least one of
//! them. Each held-out entry reuses words that trained entries also use (the
//! held-out `Find the sum of … and …` next to the trained `the sum of … and …`),
//! so the split measures whether the model reads a sentence it has not seen,
//! not whether it can guess words it never met. [`held_out_list`] names them
//! for reports and documentation.

use crate::columns::Op;
use crate::Forms;
use rand::Rng;

/// One way to write an operation: `{a}` and `{b}` are replaced by the numbers.
#[derive(Clone, Copy, Debug)]
pub struct Phrasing {
    pub text: &'static str,
    /// A command (`Add {a} and {b}`) rather than an expression.
    pub command: bool,
    pub held_out: bool,
    /// Uses the operator symbol: written with varied spacing.
    pub symbol: bool,
}

const fn expr(text: &'static str) -> Phrasing {
    Phrasing {
        text,
        command: false,
        held_out: false,
        symbol: false,
    }
}

const fn sym(text: &'static str) -> Phrasing {
    Phrasing {
        symbol: true,
        ..expr(text)
    }
}

const fn cmd(text: &'static str) -> Phrasing {
    Phrasing {
        command: true,
        ..expr(text)
    }
}

const fn held(p: Phrasing) -> Phrasing {
    Phrasing {
        held_out: true,
        ..p
    }
}

impl Phrasing {
    /// The wrappers this phrasing takes: commands stand alone.
    pub fn wrappers(&self) -> &'static [Wrapper] {
        if self.command {
            COMMAND_WRAPPERS
        } else {
            EXPRESSION_WRAPPERS
        }
    }
}

/// `a + b`.
pub const ADD: &[Phrasing] = &[
    sym("{a}+{b}"),
    expr("{a} plus {b}"),
    expr("the sum of {a} and {b}"),
    expr("the total of {a} and {b}"),
    expr("{a} added to {b}"),
    expr("{a} and {b} added together"),
    expr("{a} more than {b}"),
    expr("{a} increased by {b}"),
    expr("{a} and {b} combined"),
    expr("{a} together with {b}"),
    expr("the sum of {a} plus {b}"),
    expr("{a} and {b} altogether"),
    cmd("Add {a} and {b}"),
    cmd("Add {a} to {b}"),
    cmd("Add {b} onto {a}"),
    cmd("Find the total of {a} and {b}"),
    cmd("Sum {a} and {b}"),
    cmd("Increase {a} by {b}"),
    cmd("Combine {a} and {b}"),
    cmd("Put {a} and {b} together"),
    cmd("Total {a} and {b}"),
    cmd("To {a} add {b}"),
    expr("the result of {a} plus {b}"),
    expr("{a} and {b} summed"),
    expr("{a} plus another {b}"),
    expr("{a} with {b} more"),
    cmd("Add up {a} and {b}"),
    cmd("Find the result of adding {a} and {b}"),
    // `from` in the frames of addition, multiplication and division too
    // (alone, it read as subtraction: `… make from {a}` was worked as `a-b`).
    expr("the total from adding {a} and {b}"),
    cmd("Starting from {a}, add {b}"),
    held(expr("{a} with {b} added")),
    held(cmd("Find the sum of {a} and {b}")),
    held(cmd("Add together {a} and {b}")),
];

/// `a - b`, `a >= b`.
pub const SUB: &[Phrasing] = &[
    sym("{a}-{b}"),
    expr("{a} minus {b}"),
    expr("the difference between {a} and {b}"),
    expr("{a} take away {b}"),
    expr("{b} less than {a}"),
    expr("{a} decreased by {b}"),
    expr("{a} less {b}"),
    expr("{a} subtract {b}"),
    expr("{a} reduced by {b}"),
    expr("{b} subtracted from {a}"),
    expr("{a} with {b} taken away"),
    expr("the gap between {a} and {b}"),
    cmd("Subtract {b} from {a}"),
    cmd("Take {b} away from {a}"),
    cmd("Take away {b} from {a}"),
    cmd("Find the difference between {a} and {b}"),
    cmd("Deduct {b} from {a}"),
    cmd("Remove {b} from {a}"),
    cmd("Reduce {a} by {b}"),
    cmd("From {a} take away {b}"),
    cmd("Start with {a} and subtract {b}"),
    expr("the result of {a} minus {b}"),
    expr("the result of taking {b} from {a}"),
    expr("the difference when {b} is taken from {a}"),
    expr("{a} with {b} removed"),
    expr("{a} after removing {b}"),
    expr("the amount by which {a} exceeds {b}"),
    cmd("Find the gap between {a} and {b}"),
    cmd("Find how far apart {a} and {b} are"),
    expr("the difference from {b} to {a}"),
    expr("the difference you get from {a} and {b}"),
    cmd("Give the difference for {a} and {b}"),
    held(cmd("From {a} subtract {b}")),
    held(cmd("Take {b} from {a}")),
    held(expr("the difference of {a} and {b}")),
];

/// `a * b`, `b` a digit 2..=9.
pub const MUL: &[Phrasing] = &[
    sym("{a}*{b}"),
    sym("{a}x{b}"),
    sym("{a}×{b}"),
    sym("{b}*{a}"),
    sym("{b}x{a}"),
    expr("{a} times {b}"),
    expr("{b} times {a}"),
    expr("{a} multiplied by {b}"),
    expr("{b} multiplied by {a}"),
    held(expr("the product of {a} and {b}")),
    held(expr("{b} groups of {a}")),
    expr("{b} lots of {a}"),
    expr("{a} lots of {b}"),
    expr("{b} sets of {a}"),
    expr("{a} sets of {b}"),
    expr("{a} repeated {b} times"),
    held(cmd("Multiply {a} by {b}")),
    cmd("Multiply {a} and {b}"),
    cmd("Multiply {b} and {a}"),
    cmd("Find the product of {a} and {b}"),
    cmd("Take {a} {b} times"),
    cmd("Times {a} by {b}"),
    sym("{b}×{a}"),
    expr("the result of {a} times {b}"),
    expr("{b} equal groups of {a}"),
    expr("{b} groups with {a} in each"),
    expr("{a} in each of {b} groups"),
    expr("{a} taken {b} times"),
    expr("{b} rows of {a}"),
    cmd("Find the result of multiplying {a} by {b}"),
    expr("the result of {b} times {a}"),
    cmd("Find the result of multiplying {b} and {a}"),
    cmd("Count {b} lots of {a}"),
    expr("the result from multiplying {a} by {b}"),
    cmd("Starting from {a}, multiply by {b}"),
    // `groups of`, `bags of`, `boxes of` with the big number first as well as
    // second: without them every trained `{a} ... groups of {b}` was a
    // division (`{a} in groups of {b}`), and the model read the held-out
    // `{a} groups of {b}` as one.
    expr("{a} equal groups of {b}"),
    expr("{b} bags of {a}"),
    expr("{a} bags of {b}"),
    expr("{a} boxes of {b}"),
    expr("{b} boxes of {a}"),
    // The digit first after `by` and in `product of`: the restatement must
    // swap the numbers into the canonical order.
    cmd("Times {b} by {a}"),
    cmd("Find the result of multiplying {b} by {a}"),
    cmd("Find the product of {b} and {a}"),
    expr("the result from multiplying {b} by {a}"),
    // Held out in both orders, as the twins of held-out forms that differ
    // only in the order of the numbers (see `held_out_templates`).
    held(expr("{a} groups of {b}")),
    held(cmd("Multiply {b} by {a}")),
    held(expr("the product of {b} and {a}")),
];

/// `a / b`, `b` a digit 2..=9 (with a remainder or without).
pub const DIV: &[Phrasing] = &[
    sym("{a}/{b}"),
    sym("{a}÷{b}"),
    expr("{a} divided by {b}"),
    expr("the quotient of {a} and {b}"),
    expr("{a} shared equally among {b}"),
    expr("{a} split into {b} equal groups"),
    expr("{a} shared between {b}"),
    expr("{a} split {b} ways"),
    expr("{a} over {b}"),
    expr("{a} divided into {b} equal parts"),
    cmd("Divide {a} by {b}"),
    cmd("Share {a} equally between {b}"),
    cmd("Split {a} into {b} equal parts"),
    cmd("Share {a} among {b}"),
    cmd("Divide {a} into groups of {b}"),
    cmd("Divide {a} between {b}"),
    cmd("How many groups of {b} are in {a}?"),
    cmd("How many times does {b} go into {a}?"),
    cmd("How many lots of {b} fit into {a}?"),
    cmd("How many {b}s are there in {a}?"),
    expr("the result of {a} divided by {b}"),
    expr("{a} in groups of {b}"),
    expr("{a} split between {b}"),
    cmd("Put {a} into groups of {b}"),
    cmd("Share {a} out among {b}"),
    cmd("How many bags of {b} can you fill with {a}?"),
    expr("the result from dividing {a} by {b}"),
    cmd("Starting from {a}, divide by {b}"),
    cmd("How many {b}s can you get from {a}?"),
    held(expr("{a} shared equally between {b}")),
    held(cmd("How many groups of {b} can you make from {a}?")),
    held(cmd("Divide {a} into {b} equal groups")),
];

/// The phrasings of `op`.
pub fn phrasings(op: Op) -> &'static [Phrasing] {
    match op {
        Op::Add => ADD,
        Op::Sub => SUB,
        Op::Mul => MUL,
        Op::Div => DIV,
    }
}

/// A wrapper around an expression or a command: `{}` is the phrasing.
#[derive(Clone, Copy, Debug)]
pub struct Wrapper {
    pub text: &'static str,
    pub held_out: bool,
}

const fn w(text: &'static str) -> Wrapper {
    Wrapper {
        text,
        held_out: false,
    }
}

const fn held_w(text: &'static str) -> Wrapper {
    Wrapper {
        text,
        held_out: true,
    }
}

/// Wrappers of expressions. The bare expression comes first: it is drawn
/// more often than the others (see [`render`]).
pub const EXPRESSION_WRAPPERS: &[Wrapper] = &[
    w("{}"),
    w("{} ="),
    w("{}="),
    w("What is {}?"),
    w("what is {}"),
    w("What's {}?"),
    w("Compute {}."),
    w("compute {}"),
    w("Calculate {}."),
    w("Find {}."),
    w("Evaluate {}."),
    w("Solve {}"),
    w("Please compute {}."),
    w("{}?"),
    w("What do you get for {}?"),
    w("Quick question: what is {}?"),
    w("Can you calculate {}?"),
    w("Figure out {}."),
    w("Determine {}."),
    w("Tell me {}."),
    w("Find the value of {}."),
    w("What does {} equal?"),
    w("What's the answer to {}?"),
    w("{} equals what?"),
    w("Solve this: {}"),
    w("I need {}."),
    w("How much is {}?"),
    held_w("Tell me what {} is."),
    held_w("{} = ?"),
    held_w("Work out {}."),
    held_w("Please calculate {}"),
];

/// Wrappers of commands (`{}` is the command with a capital first letter;
/// `{lc}` the same in lower case).
pub const COMMAND_WRAPPERS: &[Wrapper] = &[
    w("{}"),
    w("{}."),
    w("Please {lc}."),
    w("{}, please."),
    w("Can you {lc}?"),
    w("Now {lc}."),
    w("I need you to {lc}."),
    w("Help me {lc}."),
    w("{} now."),
    w("Kindly {lc}."),
    held_w("Could you {lc}?"),
    held_w("{} for me."),
];

/// Words around a trained prompt that do not change it: training sees some
/// prompts inside them, so the model learns to read the numbers and the
/// operation wherever they sit. None of them writes a held-out wrapper.
const PREFIXES: &[&str] = &[
    "Hi! ",
    "Hey, ",
    "OK so ",
    "Question: ",
    "Help: ",
    "Maths: ",
    "Quick one. ",
    "Hello. ",
    "Try this: ",
    "Homework: ",
    "Hmm, ",
    "Next: ",
];
const SUFFIXES: &[&str] = &[
    " thanks",
    " Thanks!",
    " please",
    "!",
    " :)",
    " ??",
    " (show your steps)",
    " quickly",
    " thank you.",
];

/// Every held-out phrasing and wrapper, for reports and docs.
pub fn held_out_list() -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    for (op, name) in [
        (Op::Add, "add"),
        (Op::Sub, "sub"),
        (Op::Mul, "mul"),
        (Op::Div, "div"),
    ] {
        for p in phrasings(op).iter().filter(|p| p.held_out) {
            out.push((name, p.text));
        }
    }
    for wr in EXPRESSION_WRAPPERS.iter().chain(COMMAND_WRAPPERS) {
        if wr.held_out {
            out.push(("wrapper", wr.text));
        }
    }
    out
}

/// A number as people type it: plain, or (four digits, sometimes) with a
/// thousands comma.
fn number<R: Rng + ?Sized>(rng: &mut R, n: u64) -> String {
    if n >= 1000 && rng.gen_bool(0.15) {
        format!("{},{:03}", n / 1000, n % 1000)
    } else {
        n.to_string()
    }
}

/// The symbol phrasing with the spacing people use: `12+34`, `12 + 34`, `12 +34`.
fn spaced<R: Rng + ?Sized>(rng: &mut R, text: &str) -> String {
    let (left, right) = match rng.gen_range(0..10u32) {
        0..=4 => ("", ""),
        5..=8 => (" ", " "),
        _ => (" ", ""),
    };
    let op_at = text
        .find(['+', '-', '*', 'x', '×', '/', '÷'])
        .unwrap_or(text.len());
    let (l, r) = text.split_at(op_at);
    let mut ops = r.chars();
    let op = ops.next().map(String::from).unwrap_or_default();
    format!("{l}{left}{op}{right}{}", ops.as_str())
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

/// Common words that say nothing about the operation. Training slips one into
/// some prompts, so that the model learns that a word it does not expect
/// changes nothing, and reads the operation from the words that name it
/// rather than from the frame around them. Words that name or order an
/// operation (`more`, `less`, `than`, `by`, `into`, `each`, `and`) are not
/// here, nor any word of a held-out wrapper.
const FILLERS: &[&str] = &[
    "the", "of", "a", "to", "with", "from", "on", "at", "in", "it", "this", "that", "just", "now",
    "so", "then", "here", "also", "again", "really", "exactly", "simply", "can", "do", "get",
    "make", "will", "all", "some", "if", "as", "very", "well",
];

/// A trained prompt, sometimes with words around it, a stray common word in
/// it or in lower case, so that no position, frame or casing is the only one
/// the model ever reads.
fn noisy<R: Rng + ?Sized>(rng: &mut R, mut text: String) -> String {
    if rng.gen_bool(0.1) {
        let spaces: Vec<usize> = text.match_indices(' ').map(|(i, _)| i).collect();
        if !spaces.is_empty() {
            let at = spaces[rng.gen_range(0..spaces.len())];
            let word = FILLERS[rng.gen_range(0..FILLERS.len())];
            text.insert_str(at, &format!(" {word}"));
        }
    }
    if rng.gen_bool(0.15) {
        text = format!("{}{text}", PREFIXES[rng.gen_range(0..PREFIXES.len())]);
    }
    if rng.gen_bool(0.15) {
        text.push_str(SUFFIXES[rng.gen_range(0..SUFFIXES.len())]);
    }
    if rng.gen_bool(0.05) {
        text = text.to_lowercase();
    }
    text
}

/// Which held-out entries a rendered problem used: its form label.
fn label(op: Op, p: &Phrasing, wr: &Wrapper) -> String {
    let name = match op {
        Op::Add => "add",
        Op::Sub => "sub",
        Op::Mul => "mul",
        Op::Div => "div",
    };
    if wr.held_out && !p.held_out {
        format!("wrapper: {}", wr.text)
    } else {
        format!("{name}: {}", p.text)
    }
}

/// A text reduced to what tells forms apart: lower case, no spaces or commas.
fn squeeze(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && *c != ',')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Every text the forms of one side can write for `a OP b` or `b OP a`,
/// squeezed (see [`squeeze`]). A held-out form that happens to write a
/// trained text (the held-out `{b}×{a}` is the trained `{a}×{b}` when both
/// are digits) is not out of template, and is drawn again.
fn form_texts(op: Op, a: u64, b: u64, forms: Forms) -> std::collections::HashSet<String> {
    let mut out = std::collections::HashSet::new();
    for (x, y) in [(a, b), (b, a)] {
        for p in phrasings(op) {
            for wr in p.wrappers() {
                if (p.held_out || wr.held_out) != (forms == Forms::HeldOut) {
                    continue;
                }
                let text = template(p, wr)
                    .replace("{a}", &x.to_string())
                    .replace("{b}", &y.to_string());
                out.insert(squeeze(&text));
            }
        }
    }
    out
}

/// The text of phrasing `p` in wrapper `wr`, numbers left as `{a}`, `{b}`.
fn template(p: &Phrasing, wr: &Wrapper) -> String {
    wr.text.replace("{lc}", p.text).replace("{}", p.text)
}

/// Every held-out template, squeezed, in both orders of its numbers (so that
/// `{a}×{b}` and `{b}×{a}` fall on one side together). Some trained pairs
/// write one (the trained wrapper `Find {}.` around the trained
/// `the sum of {a} and {b}` is the held-out command `Find the sum of {a} and
/// {b}`): training never draws those pairs.
fn held_out_templates() -> &'static std::collections::HashSet<String> {
    static SET: std::sync::OnceLock<std::collections::HashSet<String>> = std::sync::OnceLock::new();
    SET.get_or_init(|| {
        let mut out = std::collections::HashSet::new();
        for op in [Op::Add, Op::Sub, Op::Mul, Op::Div] {
            for p in phrasings(op) {
                for wr in p.wrappers().iter().filter(|wr| p.held_out || wr.held_out) {
                    let t = squeeze(&template(p, wr));
                    out.insert(
                        t.replace("{a}", "{x}")
                            .replace("{b}", "{a}")
                            .replace("{x}", "{b}"),
                    );
                    out.insert(t);
                }
            }
        }
        out
    })
}

/// A prompt for `a OP b` in a random surface form of the given side of the
/// split (held out: the phrasing, the wrapper or both are held out, and no
/// trained form writes the same text up to case and spacing), with its form
/// label.
pub fn render<R: Rng + ?Sized>(
    rng: &mut R,
    op: Op,
    a: u64,
    b: u64,
    forms: Forms,
) -> (String, String) {
    let trained = (forms == Forms::HeldOut).then(|| form_texts(op, a, b, Forms::Trained));
    loop {
        let ps = phrasings(op);
        let p = &ps[rng.gen_range(0..ps.len())];
        let wrappers = p.wrappers();
        // The bare form is what people type most: a quarter of the draws.
        // A phrasing that is a question already takes no wrapper.
        let wr = if rng.gen_bool(0.25) || p.text.ends_with('?') {
            &wrappers[0]
        } else {
            &wrappers[rng.gen_range(0..wrappers.len())]
        };
        let held_out = p.held_out || wr.held_out;
        if held_out != (forms == Forms::HeldOut)
            || (!held_out && held_out_templates().contains(&squeeze(&template(p, wr))))
        {
            continue;
        }
        let mut core = p
            .text
            .replace("{a}", &number(rng, a))
            .replace("{b}", &number(rng, b));
        if p.symbol {
            core = spaced(rng, &core);
        }
        let text = if p.command {
            wr.text
                .replace("{lc}", &lower_first(&core))
                .replace("{}", &core)
        } else {
            let inner = if wr.text == "{}" && !p.symbol {
                upper_first(&core)
            } else {
                core
            };
            wr.text.replace("{}", &inner)
        };
        // People do not always capitalize or punctuate.
        let mut text = if rng.gen_bool(0.1) {
            lower_first(&text)
        } else {
            text
        };
        if forms == Forms::Trained {
            text = noisy(rng, text);
        }
        if trained
            .as_ref()
            .is_some_and(|t| t.contains(&squeeze(&text)))
        {
            continue;
        }
        return (text, label(op, p, wr));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn every_op_has_held_out_and_trained_phrasings() {
        for op in [Op::Add, Op::Sub, Op::Mul, Op::Div] {
            let ps = phrasings(op);
            assert!(ps.iter().filter(|p| p.held_out).count() >= 3);
            assert!(ps.iter().filter(|p| !p.held_out).count() >= 8);
            for p in ps {
                assert!(
                    p.text.contains("{a}") && p.text.contains("{b}"),
                    "{}",
                    p.text
                );
            }
        }
        assert!(EXPRESSION_WRAPPERS.iter().any(|w| w.held_out));
        assert!(!EXPRESSION_WRAPPERS[0].held_out && EXPRESSION_WRAPPERS[0].text == "{}");
    }

    #[test]
    fn rendered_forms_keep_the_numbers_and_their_side() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for forms in [Forms::Trained, Forms::HeldOut] {
            for _ in 0..2000 {
                let (text, form) = render(&mut rng, Op::Add, 1234, 56, forms);
                assert!(text.contains("1234") || text.contains("1,234"), "{text}");
                assert!(text.contains("56"), "{text}");
                let held = held_out_list()
                    .iter()
                    .any(|(k, t)| form == format!("{k}: {t}") || form == format!("wrapper: {t}"));
                assert_eq!(held, forms == Forms::HeldOut, "{text} {form}");
            }
        }
    }

    #[test]
    fn trained_prompts_never_write_a_held_out_form() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for op in [Op::Add, Op::Sub, Op::Mul, Op::Div] {
            let held = form_texts(op, 1234, 7, Forms::HeldOut);
            for _ in 0..3000 {
                let (text, _) = render(&mut rng, op, 1234, 7, Forms::Trained);
                assert!(!held.contains(&squeeze(&text)), "{text}");
                for (_, form) in held_out_list() {
                    if form.contains("{}") || form.contains("{lc}") {
                        // A held-out wrapper's own words, e.g. `How much is`.
                        let words = form
                            .split("{}")
                            .chain(form.split("{lc}"))
                            .map(|w| w.trim().trim_end_matches(['?', '.']).to_lowercase())
                            .filter(|w| w.len() > 3)
                            .collect::<Vec<_>>();
                        for w in words {
                            assert!(!text.to_lowercase().contains(&w), "{text} has {w:?}");
                        }
                    }
                }
            }
        }
    }
}
