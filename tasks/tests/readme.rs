//! The tasks README states the forms and counts the code uses: every held-out
//! phrasing and wrapper is listed, and the numbers of phrasings, wrappers and
//! word templates are the code's.

use tasks::forms;

fn readme() -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .unwrap()
}

#[test]
fn readme_lists_every_held_out_form() {
    let text = readme();
    let held = forms::held_out_list();
    for (task, form) in &held {
        let row = format!("| {task} | `{form}` |");
        assert!(text.contains(&row), "README misses {row}");
    }
    let section = text
        .split_once("Held-out arithmetic phrasings")
        .expect("README has the held-out section")
        .1;
    let rows = section
        .lines()
        .filter(|l| {
            [
                "| add | `",
                "| sub | `",
                "| mul | `",
                "| div | `",
                "| wrapper | `",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .count();
    assert_eq!(
        rows,
        held.len(),
        "README lists a form the code does not hold out"
    );
}

#[test]
fn readme_counts_are_the_code_counts() {
    let text = readme();
    let phrasings = forms::ADD.len() + forms::SUB.len() + forms::MUL.len() + forms::DIV.len();
    let wrappers = forms::EXPRESSION_WRAPPERS.len() + forms::COMMAND_WRAPPERS.len();
    let counts = tasks::word::template_counts();
    let templates: usize = counts.iter().map(|c| c.1 + c.2).sum();
    let held: usize = counts.iter().map(|c| c.2).sum();
    let min_held_step = counts
        .iter()
        .take(tasks::word::STEP_KINDS.len())
        .map(|c| c.2)
        .min()
        .unwrap();
    for claim in [
        format!("one of {phrasings}\nphrasings"),
        format!("inside one of {wrappers}\nwrappers"),
        format!("from {templates} sentence templates"),
        format!("{held} of the {templates}, at least {min_held_step} of every kind of step"),
    ] {
        let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat(&text).contains(&flat(&claim)),
            "README should say {claim:?}"
        );
    }
}
