//! Properties of every built-in task, checked over thousands of samples:
//! each trace's arithmetic is re-derived by an independent parser, verifiers
//! accept exactly the right answer, splits are disjoint, generation is
//! deterministic, and samples stay within their length bounds.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;
use tasks::{
    generate, held_out_set, is_held_out, load_jsonl, sample_chunks, verify, Mix, Problem, Split,
    TaskKind,
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

/// Re-derives a column trace of `a OP b` and returns the number it reads back.
fn check_columns(op: char, a: u64, b: u64, steps: &str) -> u64 {
    let steps: Vec<&str> = steps.split(' ').collect();
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
    // Every digit of both operands was covered.
    assert!(a < 10u64.pow(steps.len() as u32) && (op == '*' || b < 10u64.pow(steps.len() as u32)));
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
    read
}

fn check_arith(p: &Problem, op: char) {
    let (a, b) = p
        .problem
        .split_once(op)
        .unwrap_or_else(|| panic!("{:?}", p.problem));
    assert_eq!(a.len(), 3, "operand padded: {:?}", p.problem);
    if op != '*' {
        assert_eq!(b.len(), 3, "operand padded: {:?}", p.problem);
    } else {
        assert!((2..=9).contains(&num(b)));
    }
    let r = check_columns(op, num(a), num(b), &p.think);
    assert_eq!(p.answer, r.to_string());
}

fn check_word(p: &Problem) {
    let numbers: HashSet<u64> = p
        .problem
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(num)
        .collect();
    let mut results: Vec<u64> = Vec::new();
    let mut operands: Vec<(u64, u64)> = Vec::new();
    let ops: Vec<&str> = p.think.split("; ").collect();
    assert!((2..=3).contains(&ops.len()), "{}", p.think);
    for op_text in &ops {
        let (header, rest) = op_text
            .split_once(": ")
            .unwrap_or_else(|| panic!("{op_text:?}"));
        let (steps, result) = rest
            .rsplit_once(" =")
            .unwrap_or_else(|| panic!("{op_text:?}"));
        let op = header.chars().find(|c| "+-*".contains(*c)).unwrap();
        let (a, b) = header.split_once(op).unwrap();
        if op != '*' {
            assert_eq!(a.len(), b.len(), "operands padded to one width: {header}");
        }
        let (a, b) = (num(a), num(b));
        let r = check_columns(op, a, b, steps);
        assert_eq!(num(result), r, "{op_text}");
        assert_eq!(result, r.to_string());
        // Operands come from the text or from an earlier result.
        for x in [a, b] {
            assert!(
                numbers.contains(&x) || results.contains(&x),
                "{x} appears nowhere before: {p:?}"
            );
        }
        operands.push((a, b));
        results.push(r);
    }
    // Every result but the last feeds a later operation.
    for (i, r) in results.iter().enumerate().take(results.len() - 1) {
        assert!(
            operands[i + 1..].iter().any(|&(a, b)| a == *r || b == *r),
            "result {r} unused: {p:?}"
        );
    }
    assert_eq!(p.answer, results.last().unwrap().to_string());
}

fn check(p: &Problem) {
    match p.task {
        TaskKind::Add => check_arith(p, '+'),
        TaskKind::Sub => check_arith(p, '-'),
        TaskKind::Mul => check_arith(p, '*'),
        TaskKind::Word => check_word(p),
        TaskKind::User => unreachable!(),
    }
}

#[test]
fn every_trace_is_correct_and_verified() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for kind in TaskKind::BUILTIN {
        for split in [Split::Train, Split::HeldOut] {
            for _ in 0..N {
                let p = generate(kind, &mut rng, split);
                assert_eq!(p.task, kind);
                check(&p);
                assert!(verify(&p, &p.answer));
                assert!(verify(&p, &format!("  {}\n", p.answer)));
                let n: i64 = p.answer.parse().unwrap();
                assert!(
                    !p.answer.starts_with('0') || p.answer == "0",
                    "leading zero: {p:?}"
                );
                for wrong in [n + 1, n - 1, n * 10 + 1, -n - 1] {
                    assert!(
                        !verify(&p, &wrong.to_string()),
                        "{wrong} accepted for {p:?}"
                    );
                }
                assert!(!verify(&p, ""));
                assert!(!verify(&p, &format!("{n} {n}")));
            }
        }
    }
}

#[test]
fn splits_are_disjoint() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for kind in TaskKind::BUILTIN {
        let train: HashSet<String> = (0..N)
            .map(|_| generate(kind, &mut rng, Split::Train).problem)
            .collect();
        let held: HashSet<String> = (0..N)
            .map(|_| generate(kind, &mut rng, Split::HeldOut).problem)
            .collect();
        assert!(train.iter().all(|t| !is_held_out(t)));
        assert!(held.iter().all(|t| is_held_out(t)));
        assert!(train.is_disjoint(&held));
    }
    // About one in eight problem texts is held out.
    let held = (0..8000)
        .filter(|i| is_held_out(&format!("{:03}+{:03}", i % 1000, i / 8)))
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
fn held_out_set_is_deterministic_spread_and_distinct() {
    let mix = Mix::default_mix();
    let a = held_out_set(&mix, 500, 42);
    assert_eq!(a, held_out_set(&mix, 500, 42));
    assert_ne!(a, held_out_set(&mix, 500, 43));
    assert_eq!(a.len(), 500);
    for (kind, want) in mix.allocate(500) {
        assert_eq!(a.iter().filter(|p| p.task == kind).count(), want);
    }
    assert!(a.iter().all(|p| is_held_out(&p.problem)));
    let distinct: HashSet<&str> = a.iter().map(|p| p.problem.as_str()).collect();
    assert_eq!(distinct.len(), a.len());
    // A user-only mix has no generated held-out problems.
    assert!(held_out_set(&Mix::parse("user").unwrap(), 10, 1).is_empty());
}

#[test]
fn lengths_stay_within_bounds() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for kind in TaskKind::BUILTIN {
        let lens: Vec<usize> = (0..N)
            .map(|_| sample_chunks(&generate(kind, &mut rng, Split::Train)))
            .collect();
        let max = *lens.iter().max().unwrap();
        let mean = lens.iter().sum::<usize>() as f64 / lens.len() as f64;
        let bound = if kind == TaskKind::Word {
            tasks::word::MAX_CHUNKS
        } else {
            45
        };
        assert!(max <= bound, "{kind}: {max} chunks");
        if kind == TaskKind::Word {
            // Both two- and three-operation problems survive the length cap.
            assert!((80.0..110.0).contains(&mean), "{kind}: mean {mean}");
        }
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
