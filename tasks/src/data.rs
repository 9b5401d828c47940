//! User data: JSONL files, one problem per line, in either of two shapes:
//!
//! - thinkling's own: `{"problem": "...", "think": "...", "answer": "..."}`
//!   (`think` may be absent or empty; other fields such as `task` are ignored);
//! - GSM8K's: `{"question": "...", "answer": "working\n#### 72"}`. The working
//!   becomes the think text and the text after the last `#### ` the answer.
//!   GSM8K's calculator annotations `<<48/2=24>>` are removed: the text
//!   around each one already states the calculation and its result
//!   (`48/2 = <<48/2=24>>24 clips` becomes `48/2 = 24 clips`), so keeping them
//!   would only teach the model to write every result twice.
//!
//! Blank lines are skipped. Any other line that is not one of these shapes
//! is an error naming the file and line (`data.jsonl:3: ...`). Loaded problems
//! have task [`TaskKind::User`].

use crate::{Problem, TaskKind};
use anyhow::Context;
use serde_json::Value;
use std::path::Path;

/// Reads a JSONL file of problems (see the module documentation).
pub fn load_jsonl(path: &Path) -> anyhow::Result<Vec<Problem>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    parse_jsonl(&text, &path.display().to_string())
}

/// Parses JSONL text; `name` is used in error messages (`name:LINE: ...`).
pub fn parse_jsonl(text: &str, name: &str) -> anyhow::Result<Vec<Problem>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let p = parse_line(line).map_err(|e| anyhow::anyhow!("{name}:{}: {e}", i + 1))?;
        out.push(p);
    }
    Ok(out)
}

fn field<'a>(
    obj: &'a serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        // GSM8K-like files sometimes store a numeric answer as a number.
        Some(Value::Number(_)) if key == "answer" => {
            Err("\"answer\" must be a string (write it in quotes)".into())
        }
        Some(_) => Err(format!("\"{key}\" must be a string")),
    }
}

fn parse_line(line: &str) -> Result<Problem, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(obj) = v else {
        return Err(
            "expected a JSON object with \"problem\"/\"answer\" or \"question\"/\"answer\"".into(),
        );
    };
    let answer = field(&obj, "answer")?.ok_or("missing \"answer\"")?;
    if let Some(problem) = field(&obj, "problem")? {
        let think = field(&obj, "think")?.unwrap_or("");
        let p = Problem {
            task: TaskKind::User,
            problem: problem.trim().to_string(),
            think: think.trim().to_string(),
            answer: answer.trim().to_string(),
            form: String::new(),
        };
        check(&p)?;
        return Ok(p);
    }
    let question =
        field(&obj, "question")?.ok_or("missing \"problem\" (or GSM8K's \"question\")")?;
    let (working, result) = answer
        .rsplit_once("####")
        .ok_or("GSM8K \"answer\" has no \"#### \" line with the final answer")?;
    let p = Problem {
        task: TaskKind::User,
        problem: question.trim().to_string(),
        think: strip_calculator_notes(working).trim().to_string(),
        answer: result.trim().to_string(),
        form: String::new(),
    };
    check(&p)?;
    Ok(p)
}

fn check(p: &Problem) -> Result<(), String> {
    if p.problem.is_empty() {
        return Err("empty problem".into());
    }
    if p.answer.is_empty() {
        return Err("empty answer".into());
    }
    Ok(())
}

/// Removes GSM8K calculator annotations `<<expr=result>>` (an unclosed `<<`
/// is kept as text).
pub fn strip_calculator_notes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("<<") {
        let Some(len) = rest[start..].find(">>") else {
            break;
        };
        out.push_str(&rest[..start]);
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calculator_notes_are_removed() {
        assert_eq!(
            strip_calculator_notes("48/2 = <<48/2=24>>24 clips"),
            "48/2 = 24 clips"
        );
        assert_eq!(
            strip_calculator_notes("a <<1+1=2>>2 and <<2*3=6>>6"),
            "a 2 and 6"
        );
        assert_eq!(strip_calculator_notes("x << y"), "x << y");
    }

    #[test]
    fn both_shapes_parse() {
        let text = "{\"problem\":\"1+1\",\"think\":\"1+1=2\",\"answer\":\"2\"}\n\n\
                    {\"question\":\"q?\",\"answer\":\"3*4 = <<3*4=12>>12\\n#### 12\"}\n";
        let ps = parse_jsonl(text, "t.jsonl").unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[1].think, "3*4 = 12");
        assert_eq!(ps[1].answer, "12");
        assert!(ps.iter().all(|p| p.task == TaskKind::User));
    }

    #[test]
    fn errors_name_the_line() {
        for (bad, what) in [
            ("{\"problem\":\"x\"}", "missing \"answer\""),
            ("[1,2]", "expected a JSON object"),
            ("{\"question\":\"q\",\"answer\":\"no marker\"}", "####"),
            ("{\"problem\":\"x\",\"answer\":5}", "must be a string"),
            ("{\"problem\":\"\",\"answer\":\"5\"}", "empty problem"),
            ("{\"answer\":\"5\"}", "missing \"problem\""),
            ("{oops", "not valid JSON"),
        ] {
            let text = format!("{{\"problem\":\"a\",\"answer\":\"1\"}}\n{bad}\n");
            let e = parse_jsonl(&text, "f.jsonl").unwrap_err().to_string();
            assert!(e.starts_with("f.jsonl:2: "), "{e}");
            assert!(e.contains(what), "{e} should mention {what}");
        }
    }
}
