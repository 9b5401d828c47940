//! Runs a model blob on a prompt, printing the thought (dimmed on a terminal,
//! `think> ` prefixed otherwise) and the answer as they are generated.
//!
//! ```text
//! cargo run --release -p runtime --features std --example generate -- MODEL.bin "PROMPT"
//!     [--temperature T] [--top-p P] [--top-k K] [--seed S] [--think-budget N]
//!     [--max-tokens N] [--context N] [--kv f16|f32|q8] [--ids]
//! ```
//! `--ids`: the prompt is token ids (spaces or commas) and ids are printed,
//! for blobs without a tokenizer.

use runtime::{
    generate, generate_ids, plan, GenerateConfig, KvDType, Model, SamplerConfig, Session, Span,
};
use std::io::{IsTerminal, Write};
use std::time::Instant;

fn usage() -> ! {
    eprintln!("usage: generate MODEL.bin PROMPT [--temperature T] [--top-p P] [--top-k K] [--seed S] [--think-budget N] [--max-tokens N] [--context N] [--kv f16|f32|q8] [--ids]");
    std::process::exit(2)
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1)
}

fn num<T: std::str::FromStr>(v: Option<String>) -> T {
    v.and_then(|s| s.parse().ok()).unwrap_or_else(|| usage())
}

fn main() {
    let mut positional = vec![];
    let mut sampler = SamplerConfig {
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        seed: 0,
    };
    let (mut budget, mut max_tokens, mut context, mut kv, mut ids) =
        (None, 512usize, None, KvDType::F32, false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--temperature" => sampler.temperature = num(args.next()),
            "--top-p" => sampler.top_p = num(args.next()),
            "--top-k" => sampler.top_k = num(args.next()),
            "--seed" => sampler.seed = num(args.next()),
            "--think-budget" => budget = Some(num(args.next())),
            "--max-tokens" => max_tokens = num(args.next()),
            "--context" => context = Some(num::<usize>(args.next())),
            "--kv" => {
                kv = args
                    .next()
                    .and_then(|s| KvDType::from_name(&s))
                    .unwrap_or_else(|| usage())
            }
            "--ids" => ids = true,
            s if s.starts_with("--") => usage(),
            _ => positional.push(a),
        }
    }
    let [path, prompt] = positional.as_slice() else {
        usage()
    };
    let blob = std::fs::read(path).unwrap_or_else(|e| fail(format!("cannot read {path}: {e}")));
    let model = Model::from_blob(&blob).unwrap_or_else(|e| fail(e));
    let context = context.unwrap_or(model.config().max_seq_len as usize);
    let mut arena = vec![0u8; plan(model.config(), context, kv).total_bytes];
    let mut session = Session::new(&model, &mut arena, context, kv).unwrap_or_else(|e| fail(e));
    let cfg = GenerateConfig {
        sampler,
        max_new_tokens: max_tokens,
        think_budget: budget,
    };
    let tty = std::io::stdout().is_terminal();
    let mut out = std::io::stdout();
    let start = Instant::now();
    let (generated, stop) = if ids {
        let prompt_ids: Vec<u32> = prompt
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .unwrap_or_else(|_| fail(format!("not a token id: {s}")))
            })
            .collect();
        let r = generate_ids(&mut session, &prompt_ids, &cfg, &mut |id| {
            let _ = write!(out, "{id} ");
            let _ = out.flush();
        });
        let _ = writeln!(out);
        r.unwrap_or_else(|e| fail(e))
    } else {
        let mut text = vec![0u8; 64 * 1024];
        let mut span = Span::Other;
        let g = generate(&mut session, prompt, &cfg, &mut text, &mut |e| {
            if e.span != span {
                if tty {
                    let _ = write!(
                        out,
                        "{}",
                        if e.span == Span::Think {
                            "\x1b[2m"
                        } else {
                            "\x1b[0m"
                        }
                    );
                } else if e.span == Span::Think {
                    let _ = write!(out, "think> ");
                }
                span = e.span;
            }
            let _ = write!(out, "{}", e.text);
            if !tty && e.span == Span::Think && e.text.contains('\n') {
                let _ = write!(out, "think> ");
            }
            let _ = out.flush();
        })
        .unwrap_or_else(|e| fail(e));
        let _ = writeln!(out, "{}", if tty { "\x1b[0m" } else { "" });
        if g.think_budget_hit {
            eprintln!(
                "(think budget of {} tokens reached: the thought was closed)",
                budget.unwrap_or(0)
            );
        }
        eprintln!("answer: {}", g.answer.trim());
        (g.generated_tokens, g.stop)
    };
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "stop: {stop} after {generated} tokens, {:.1} tok/s (prefill included)",
        generated as f64 / secs.max(1e-9)
    );
}
