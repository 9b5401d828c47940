//! Properties of every built-in task, checked over thousands of samples:
//! each trace's restatement and arithmetic are re-derived by an independent
//! parser from the numbers of the problem text, verifiers accept exactly the
//! right answer, splits (held-out problems, held-out forms) are disjoint,
//! generation is deterministic, and samples stay within their length bounds.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{HashMap, HashSet};
use tasks::forms::{self, held_out_list};
use tasks::{
    generate, held_out_set, is_held_out, load_jsonl, ood_set, sample_chunks, split_key, verify,
    Mix, Problem, Split, TaskKind,
};

const N: usize = 3000;

fn num(s: &str) -> u64 {
    assert!(
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
        "not a number: {s:?}"
    );
    s.parse().unwrap()
}

fn digit_at(n: u64, i: usize) -> u64 {
    (n / 10u64.pow(i as u32)) % 10
}

/// The numbers of a problem text as people write them (`1,234` is one number).
fn numbers_in(text: &str) -> Vec<u64> {
    let t = text.replace(',', "\u{0}");
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            cur.push(c);
        } else if c == '\u{0}'
            && !cur.is_empty()
            && chars.peek().is_some_and(|d| d.is_ascii_digit())
        {
            // A thousands comma inside a number.
        } else if !cur.is_empty() {
            out.push(cur.parse().unwrap());
            cur.clear();
        }
    }
    if !cur.is_empty() {
        out.push(cur.parse().unwrap());
    }
    out
}

/// Re-derives the column steps of `a OP b` and returns the value and the
/// remainder they read back.
fn check_columns(op: char, a: u64, b: u64, steps: &str) -> (u64, u64) {
    let steps: Vec<&str> = steps.split(' ').collect();
    if op == '/' {
        let mut rem = 0u64;
        let mut q = 0u64;
        assert_eq!(
            steps.len(),
            a.to_string().len(),
            "one step per digit of {a}"
        );
        for (i, step) in steps.iter().enumerate() {
            let (lhs, rhs) = step.split_once('=').unwrap();
            let (v, d) = lhs.split_once('/').unwrap();
            assert_eq!(v.len(), 2, "{step}");
            let x = digit_at(a, steps.len() - 1 - i);
            assert_eq!(v, format!("{rem}{x}"), "{step}: remainder then digit {x}");
            assert_eq!(num(d), b);
            let (qd, r) = rhs.split_once('r').unwrap();
            let (qd, r) = (num(qd), num(r));
            assert_eq!(qd * b + r, num(v), "{step}");
            assert!(r < b && qd < 10, "{step}");
            q = q * 10 + qd;
            rem = r;
        }
        assert_eq!((q, rem), (a / b, a % b));
        return (q, rem);
    }
    let mut carry = 0u64;
    let mut low = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let (lhs, rhs) = step
            .split_once('=')
            .unwrap_or_else(|| panic!("step {step:?} has no '='"));
        assert_eq!(rhs.len(), 2, "step {step:?}: two result digits");
        let (hi, lo) = (num(&rhs[..1]), num(&rhs[1..]));
        let parts: Vec<&str> = lhs.split(['+', '-', '*']).collect();
        assert_eq!(parts.len(), 3, "step {step:?}");
        let (x, y, c) = (num(parts[0]), num(parts[1]), num(parts[2]));
        assert_eq!(c, carry, "step {step:?}: carry/borrow in");
        assert_eq!(x, digit_at(a, i), "step {step:?}: digit {i} of {a}");
        match op {
            '+' => {
                assert_eq!(lhs, format!("{x}+{y}+{c}"));
                assert_eq!(y, digit_at(b, i), "step {step:?}: digit {i} of {b}");
                assert_eq!(10 * hi + lo, x + y + c, "step {step:?}");
            }
            '-' => {
                assert_eq!(lhs, format!("{x}-{y}-{c}"));
                assert_eq!(y, digit_at(b, i), "step {step:?}: digit {i} of {b}");
                assert!(hi <= 1);
                assert_eq!(
                    lo as i64 - 10 * hi as i64,
                    x as i64 - y as i64 - c as i64,
                    "step {step:?}"
                );
            }
            _ => {
                assert_eq!(lhs, format!("{x}*{y}+{c}"));
                assert_eq!(y, b, "step {step:?}: multiplier");
                assert_eq!(10 * hi + lo, x * y + c, "step {step:?}");
            }
        }
        carry = hi;
        low.push(lo);
    }
    // Every digit of both operands was covered, and no column more.
    let width = match op {
        '*' => a.to_string().len(),
        _ => tasks::columns::WIDTH.max(a.max(b).to_string().len()),
    };
    assert_eq!(steps.len(), width, "{a}{op}{b}: one step per column");
    if op == '-' {
        assert_eq!(carry, 0, "a subtraction must not end with a borrow");
    }
    let mut read = if op == '-' { 0 } else { carry };
    for d in low.iter().rev() {
        read = read * 10 + d;
    }
    let want = match op {
        '+' => a + b,
        '-' => a - b,
        _ => a * b,
    };
    assert_eq!(read, want, "{a}{op}{b}: trace reads back {read}");
    (read, 0)
}

/// Checks one worked operation `restated: steps =result` and returns
/// `(a, op, b, result text)`.
fn check_worked(text: &str) -> (u64, char, u64, String) {
    let (restated, rest) = text
        .split_once(": ")
        .unwrap_or_else(|| panic!("{text:?}: no restatement"));
    let (steps, result) = rest
        .rsplit_once(" =")
        .unwrap_or_else(|| panic!("{text:?}: no result"));
    let op = restated
        .chars()
        .find(|c| "+-*/".contains(*c))
        .unwrap_or_else(|| panic!("{restated:?}: no operator"));
    let (a_txt, b_txt) = restated.split_once(op).unwrap();
    let (a, b) = (num(a_txt), num(b_txt));
    match op {
        '+' | '-' => {
            let w = tasks::columns::WIDTH.max(a.max(b).to_string().len());
            assert_eq!(a_txt.len(), w, "{restated}: aligned");
            assert_eq!(b_txt.len(), w, "{restated}: aligned");
        }
        _ => {
            assert_eq!(a_txt, a.to_string(), "{restated}: unpadded");
            assert!(
                (2..=9).contains(&b),
                "{restated}: one-digit multiplier/divisor"
            );
        }
    }
    let (v, r) = check_columns(op, a, b, steps);
    let want = if r == 0 {
        v.to_string()
    } else {
        format!("{v} R {r}")
    };
    assert_eq!(result, want, "{text}");
    (a, op, b, want)
}

fn check_arith(p: &Problem, op: char) {
    let (a, got_op, b, result) = check_worked(&p.think);
    assert_eq!(got_op, op, "{p:?}");
    let mut want = vec![a, b];
    let mut got = numbers_in(&p.problem);
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(
        got, want,
        "the restatement copies the problem's numbers: {p:?}"
    );
    assert_eq!(p.answer, result);
    assert!(a < 10_000 && b < 10_000);
    // Numbers are never zero-padded in the prompt.
    assert!(
        !p.problem
            .split(|c: char| !c.is_ascii_digit() && c != ',')
            .map(|n| n.trim_matches(','))
            .any(|n| n.len() > 1 && n.starts_with('0')),
        "{p:?}"
    );
}

fn check_word(p: &Problem) {
    let ops: Vec<&str> = p.think.split("; ").collect();
    assert!((1..=4).contains(&ops.len()), "{}", p.think);
    let mut last = String::new();
    for op in ops {
        let (_label, worked) = op
            .split_once(' ')
            .unwrap_or_else(|| panic!("{op:?}: no label"));
        last = check_worked(worked).3;
    }
    assert_eq!(p.answer, last);
}

fn check(p: &Problem) {
    match p.task {
        TaskKind::Add => check_arith(p, '+'),
        TaskKind::Sub => check_arith(p, '-'),
        TaskKind::Mul => check_arith(p, '*'),
        TaskKind::Div => check_arith(p, '/'),
        TaskKind::Word => check_word(p),
        TaskKind::User => unreachable!(),
    }
}

#[test]
fn every_trace_is_correct_and_verified() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for kind in TaskKind::BUILTIN {
        for split in [Split::Train, Split::HeldOut, Split::OutOfTemplate] {
            for _ in 0..N {
                let p = generate(kind, &mut rng, split);
                assert_eq!(p.task, kind);
                check(&p);
                assert!(verify(&p, &p.answer));
                assert!(verify(&p, &format!("  {}\n", p.answer)));
                assert!(!verify(&p, ""));
                let (q, r) = tasks::parse_quotient(&p.answer).unwrap();
                let quotient = p.answer.split(' ').next().unwrap();
                assert!(
                    !quotient.starts_with('0') || quotient == "0",
                    "leading zero: {p:?}"
                );
                for wrong in [q + 1, q - 1, q * 10 + 1, -q - 1] {
                    let w = if r == 0 {
                        wrong.to_string()
                    } else {
                        format!("{wrong} R {r}")
                    };
                    assert!(!verify(&p, &w), "{w} accepted for {p:?}");
                }
                assert!(!verify(&p, &format!("{q} {q}")));
                if r > 0 {
                    assert!(verify(&p, &format!("{q} remainder {r}")));
                    assert!(verify(&p, &format!("{q}r{r}")));
                    assert!(!verify(&p, &q.to_string()), "the remainder counts");
                    assert!(!verify(&p, &format!("{q} R {}", r + 1)));
                }
            }
        }
    }
}

#[test]
fn the_prompts_people_type_are_generated_forms() {
    // The forms of the first prompts a new user tries all exist on the
    // trained side, with the canonical restatement the trace starts with.
    for (text, restated) in [
        ("12+34", "0012+0034"),
        ("5+7", "0005+0007"),
        ("999+1", "0999+0001"),
        ("What is 12+34?", "0012+0034"),
        ("12 plus 34", "0012+0034"),
        ("subtract 7 from 56", "0056-0007"),
        ("3 times 1234", "1234*3"),
        ("51 / 4", "51/4"),
    ] {
        let nums = numbers_in(text);
        assert!(!nums.is_empty());
        let (a, op, b) = match restated.find(['+', '-', '*', '/']) {
            Some(i) => (
                num(&restated[..i]),
                restated.as_bytes()[i] as char,
                num(&restated[i + 1..]),
            ),
            None => unreachable!(),
        };
        let op = match op {
            '+' => tasks::columns::Op::Add,
            '-' => tasks::columns::Op::Sub,
            '*' => tasks::columns::Op::Mul,
            _ => tasks::columns::Op::Div,
        };
        assert_eq!(tasks::columns::restate(a, op, b), restated);
    }
    let trained: Vec<&str> = forms::ADD
        .iter()
        .chain(forms::SUB)
        .chain(forms::MUL)
        .chain(forms::DIV)
        .filter(|p| !p.held_out)
        .map(|p| p.text)
        .collect();
    for t in [
        "{a}+{b}",
        "{a} plus {b}",
        "Subtract {b} from {a}",
        "{b} times {a}",
        "{a}/{b}",
    ] {
        assert!(trained.contains(&t), "{t} is trained");
    }
    assert!(forms::EXPRESSION_WRAPPERS
        .iter()
        .any(|w| w.text == "What is {}?" && !w.held_out));
}

#[test]
fn every_form_is_drawn_on_its_side_only() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let held: HashSet<String> = held_out_list()
        .iter()
        .map(|(k, t)| {
            if *k == "wrapper" {
                format!("wrapper: {t}")
            } else {
                format!("{k}: {t}")
            }
        })
        .collect();
    for kind in [TaskKind::Add, TaskKind::Sub, TaskKind::Mul, TaskKind::Div] {
        let mut seen: HashMap<Split, HashSet<String>> = HashMap::new();
        for split in [Split::Train, Split::OutOfTemplate] {
            for _ in 0..N {
                let p = generate(kind, &mut rng, split);
                assert_eq!(
                    held.contains(&p.form),
                    split == Split::OutOfTemplate,
                    "{split:?}: {p:?}"
                );
                seen.entry(split).or_default().insert(p.form.clone());
            }
        }
        let name = kind.name();
        let op = tasks::arith::op_of(kind).unwrap();
        // Every trained phrasing is drawn in training, every held-out one in the test.
        for ph in forms::phrasings(op) {
            let label = format!("{name}: {}", ph.text);
            let side = if ph.held_out {
                Split::OutOfTemplate
            } else {
                Split::Train
            };
            assert!(seen[&side].contains(&label), "{label} never drawn");
        }
    }
}

#[test]
fn splits_are_disjoint() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for kind in TaskKind::BUILTIN {
        let train: Vec<Problem> = (0..N)
            .map(|_| generate(kind, &mut rng, Split::Train))
            .collect();
        let held: Vec<Problem> = (0..N)
            .map(|_| generate(kind, &mut rng, Split::HeldOut))
            .collect();
        assert!(train.iter().all(|p| !is_held_out(split_key(p))));
        assert!(held.iter().all(|p| is_held_out(split_key(p))));
        let train_keys: HashSet<&str> = train.iter().map(split_key).collect();
        assert!(held.iter().all(|p| !train_keys.contains(split_key(p))));
        let ood: Vec<Problem> = (0..N)
            .map(|_| generate(kind, &mut rng, Split::OutOfTemplate))
            .collect();
        let train_texts: HashSet<&str> = train.iter().map(|p| p.problem.as_str()).collect();
        assert!(ood
            .iter()
            .all(|p| !train_texts.contains(p.problem.as_str())));
    }
    // Arithmetic is split by its canonical restatement: `12 plus 34` is held
    // out exactly when `12+34` is.
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let p = generate(TaskKind::Add, &mut rng, Split::HeldOut);
    assert_eq!(split_key(&p), p.think.split(':').next().unwrap());
    // About one in eight problem texts is held out.
    let held = (0..8000)
        .filter(|i| is_held_out(&format!("{}+{}", i % 1000, i / 8)))
        .count();
    assert!((800..1200).contains(&held), "{held}");
}

#[test]
fn generation_is_deterministic() {
    let run = |seed| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mix = Mix::default_mix();
        (0..500)
            .map(|_| generate(mix.sample(&mut rng), &mut rng, Split::Train))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
}

#[test]
fn test_sets_are_deterministic_spread_and_distinct() {
    let mix = Mix::default_mix();
    for (set, split) in [
        (
            held_out_set as fn(&Mix, usize, u64) -> Vec<Problem>,
            Split::HeldOut,
        ),
        (ood_set, Split::OutOfTemplate),
    ] {
        let a = set(&mix, 500, 42);
        assert_eq!(a, set(&mix, 500, 42));
        assert_ne!(a, set(&mix, 500, 43));
        assert_eq!(a.len(), 500);
        for (kind, want) in mix.allocate(500) {
            assert_eq!(a.iter().filter(|p| p.task == kind).count(), want);
        }
        if split == Split::HeldOut {
            assert!(a.iter().all(|p| is_held_out(split_key(p))));
        }
        let distinct: HashSet<&str> = a.iter().map(|p| p.problem.as_str()).collect();
        assert_eq!(distinct.len(), a.len());
        // A user-only mix has no generated test problems.
        assert!(set(&Mix::parse("user").unwrap(), 10, 1).is_empty());
    }
}

#[test]
fn lengths_stay_within_bounds() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for kind in TaskKind::BUILTIN {
        let lens: Vec<usize> = (0..N)
            .map(|_| sample_chunks(&generate(kind, &mut rng, Split::Train)))
            .collect();
        let max = *lens.iter().max().unwrap();
        let bound = if kind == TaskKind::Word {
            tasks::word::MAX_CHUNKS
        } else {
            90
        };
        assert!(max <= bound, "{kind}: {max} chunks");
    }
}

#[test]
fn answer_only_drops_the_working() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let p = generate(TaskKind::Add, &mut rng, Split::Train);
    let q = tasks::answer_only(&p);
    assert!(q.think.is_empty());
    assert_eq!(
        (q.problem.as_str(), q.answer.as_str()),
        (p.problem.as_str(), p.answer.as_str())
    );
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn gsm8k_file_loads() {
    let ps = load_jsonl(&fixture("gsm8k.jsonl")).unwrap();
    assert_eq!(ps.len(), 2, "the blank line is skipped");
    assert_eq!(ps[0].answer, "54");
    assert_eq!(
        ps[0].think,
        "In the afternoon the baker makes 36/2 = 18 rolls.\nIn all the baker makes 36+18 = 54 rolls."
    );
    assert!(ps[0].problem.starts_with("A baker makes 36 rolls"));
    assert_eq!(ps[1].think, "Ravi pays 400*3 = $1,200.");
    assert!(ps.iter().all(|p| p.task == TaskKind::User));
    assert!(verify(&ps[1], "1200"));
    assert!(verify(&ps[1], "1,200"));
    assert!(!verify(&ps[1], "120"));
}

#[test]
fn thinkling_file_loads() {
    let ps = load_jsonl(&fixture("problems.jsonl")).unwrap();
    assert_eq!(ps.len(), 3, "the whitespace-only line is skipped");
    assert_eq!(ps[0].think, "2+0+0=02 1+3+0=04");
    assert_eq!(ps[1].think, "", "think may be absent");
    assert_eq!(ps[2].task, TaskKind::User, "a task field is ignored");
    assert!(verify(&ps[1], " Paris "));
    assert!(verify(&ps[2], "42.0"));
}

#[test]
fn malformed_line_names_file_and_line() {
    let path = fixture("malformed.jsonl");
    let e = load_jsonl(&path).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:3: ", path.display())), "{e}");
    assert!(e.contains("####"), "{e}");
    let e = load_jsonl(&fixture("missing.jsonl"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.jsonl"), "{e}");
}
