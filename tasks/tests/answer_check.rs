//! The runtime's allocation-free answer check (what a board scores itself
//! with) agrees with `tasks::verify` on every built-in task: on the held-out
//! answers and on every short text over the characters that matter to
//! either parser.

use runtime::answer::answer_matches;
use tasks::{held_out_set, verify, Mix, Problem, TaskKind};

fn board_verify(p: &Problem, got: &str) -> bool {
    let kind = p.task.answer_kind().expect("a built-in task");
    answer_matches(kind, &p.answer, got)
}

fn problem(task: TaskKind, answer: &str) -> Problem {
    Problem {
        task,
        problem: String::new(),
        think: String::new(),
        answer: answer.to_string(),
        form: String::new(),
    }
}

/// Every string of up to `len` pieces from `alphabet`.
fn strings(alphabet: &[&str], len: usize) -> Vec<String> {
    let mut all = vec![String::new()];
    let mut last = vec![String::new()];
    for _ in 0..len {
        last = last
            .iter()
            .flat_map(|s| alphabet.iter().map(move |a| format!("{s}{a}")))
            .collect();
        all.extend(last.iter().cloned());
    }
    all
}

#[test]
fn agrees_with_the_verifier_on_every_short_text() {
    let alphabet = [
        "1",
        "0",
        " ",
        ",",
        "+",
        "-",
        "r",
        "R",
        "remainder",
        "x",
        "\t",
        "\u{a0}",
        "é",
    ];
    let expected = [
        "10",
        "-1",
        "1,0",
        "+1",
        "1 R 0",
        "1 r 1",
        "10 remainder 1",
        "x",
        "1 1",
    ];
    let mut texts = strings(&alphabet, 4);
    texts.extend(expected.iter().map(|e| e.to_string()));
    let mut checked = 0;
    for task in TaskKind::BUILTIN {
        for want in expected {
            let p = problem(task, want);
            for got in &texts {
                assert_eq!(
                    board_verify(&p, got),
                    verify(&p, got),
                    "{task} expecting {want:?}, answer {got:?}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100_000, "{checked}");
}

#[test]
fn agrees_with_the_verifier_on_held_out_answers() {
    let mut right = 0;
    let problems = held_out_set(&Mix::default_mix(), 200, 7);
    for p in &problems {
        let answers = [
            p.answer.clone(),
            format!(" {} ", p.answer),
            p.answer.replace(' ', "  "),
            p.answer.to_lowercase(),
            p.answer.replace(" R ", " remainder "),
            format!("0{}", p.answer),
            format!("{}1", p.answer),
            format!("{} R 1", p.answer),
            String::new(),
        ];
        for got in &answers {
            let v = verify(p, got);
            assert_eq!(board_verify(p, got), v, "{:?}: {got:?}", p.answer);
            right += usize::from(v);
        }
    }
    // The perturbations are both right and wrong ones.
    assert!(
        right > problems.len() && right < 8 * problems.len(),
        "{right}"
    );
}
