//! Speculative decoding against the target alone: acceptance rate, tokens per
//! target pass, tokens per second, and the cost of one batched check pass.
//!
//! ```text
//! cargo run --release -p runtime --features std --example speculative -- TARGET.bin DRAFT.bin
//!     [--k 1,2,4,6] [--prompts 'P1|P2'] [--max-tokens N] [--context N] [--kv f32|f16|q8]
//!     [--temperature T] [--seed S] [--min-secs S]
//! cargo run ... --example speculative -- TARGET.bin --draft-layers N [...]   # early-exit draft: the target's first N layers
//! cargo run ... --example speculative -- TARGET.bin --draft-layers N --write-draft OUT.bin   # only write that draft
//! cargo run ... --example speculative -- --shape tiny|small [...]           # random q8 target, its first layer as draft
//! ```
//! Every configuration repeats all prompts for at least `--min-secs` seconds
//! (default one) after a warm-up. Greedy runs also check that the speculative tokens
//! equal the target's own.

use runtime::{
    generate, generate_speculative, plan, plan_draft, plan_speculative, testing, DType,
    GenerateConfig, KvDType, Model, SamplerConfig, Session,
};
use std::time::{Duration, Instant};

fn usage() -> ! {
    eprintln!(
        "usage: speculative (TARGET.bin (DRAFT.bin | --draft-layers N) | --shape tiny|small) [--k 1,2,4] [--prompts 'P1|P2'] [--max-tokens N] [--context N] [--kv f32|f16|q8] [--temperature T] [--seed S] [--min-secs S]"
    );
    std::process::exit(2)
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1)
}

/// Runs `f` until `min` has passed (after one warm-up run); returns the mean
/// seconds per run and the last result.
fn timed<T>(min: Duration, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut last = f();
    let start = Instant::now();
    let mut n = 0u32;
    while n == 0 || start.elapsed() < min {
        last = f();
        n += 1;
    }
    (start.elapsed().as_secs_f64() / n as f64, last)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut positional: Vec<String> = vec![];
    let (mut ks, mut draft_layers, mut shape) = (vec![1usize, 2, 3, 4, 6], None, None);
    // One problem of each built-in task, in the form the models are trained on.
    let mut prompts: Vec<String> = vec![
        "347+589".into(),
        "805-368".into(),
        "047*6".into(),
        "Mia has 23 pens. She buys 4 bags with 12 pens in each. How many pens does Mia have now?".into(),
        "Sam has 85 coins. He gives away 27 coins and then finds 9 coins. How many coins does Sam have now?".into(),
    ];
    let (mut max_tokens, mut context, mut kv) = (200usize, None, KvDType::F32);
    let mut sampler = SamplerConfig::GREEDY;
    let mut min_secs = 1.0f64;
    let mut write_draft = None;
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--k" => {
                ks = value()
                    .split(',')
                    .map(|s| s.trim().parse().unwrap_or_else(|_| usage()))
                    .collect()
            }
            "--draft-layers" => draft_layers = Some(value().parse().unwrap_or_else(|_| usage())),
            "--shape" => shape = Some(value()),
            "--prompts" => prompts = value().split('|').map(str::to_owned).collect(),
            "--max-tokens" => max_tokens = value().parse().unwrap_or_else(|_| usage()),
            "--context" => context = Some(value().parse::<usize>().unwrap_or_else(|_| usage())),
            "--kv" => kv = KvDType::from_name(&value()).unwrap_or_else(|| usage()),
            "--temperature" => sampler.temperature = value().parse().unwrap_or_else(|_| usage()),
            "--seed" => sampler.seed = value().parse().unwrap_or_else(|_| usage()),
            "--min-secs" => min_secs = value().parse().unwrap_or_else(|_| usage()),
            "--write-draft" => write_draft = Some(value()),
            s if !s.starts_with("--") => positional.push(s.to_owned()),
            _ => usage(),
        }
    }
    let read = |p: &str| std::fs::read(p).unwrap_or_else(|e| fail(format!("cannot read {p}: {e}")));
    let (target_blob, draft_blob, label) = match (positional.as_slice(), &shape, draft_layers) {
        ([t, d], None, None) => (read(t), read(d), format!("target {t}, draft {d}")),
        ([t], None, Some(n)) => {
            let tb = read(t);
            let db = testing::truncate_layers(&tb, n).unwrap_or_else(|e| fail(e));
            (tb, db, format!("target {t}, draft its first {n} layer(s)"))
        }
        ([], Some(s), _) => {
            let config = match s.as_str() {
                "tiny" => testing::tiny_config(),
                "small" => testing::small_config(),
                _ => usage(),
            };
            let tb = testing::random_blob(&config, DType::Q8, 32, 1).unwrap_or_else(|e| fail(e));
            let n = draft_layers.unwrap_or(1);
            let db = testing::truncate_layers(&tb, n).unwrap_or_else(|e| fail(e));
            (
                tb,
                db,
                format!("random q8 {s} target, draft its first {n} layer(s)"),
            )
        }
        _ => usage(),
    };
    if let Some(out) = write_draft {
        std::fs::write(&out, &draft_blob).unwrap_or_else(|e| fail(format!("writing {out}: {e}")));
        println!("wrote {out} ({} bytes): {label}", draft_blob.len());
        return;
    }
    let tm = Model::from_blob(&target_blob).unwrap_or_else(|e| fail(e));
    let dm = Model::from_blob(&draft_blob).unwrap_or_else(|e| fail(e));
    let context = context.unwrap_or(tm.config().max_seq_len as usize);
    let cfg = GenerateConfig {
        sampler,
        max_new_tokens: max_tokens,
        think_budget: None,
    };
    let min = Duration::from_secs_f64(min_secs);
    let greedy = sampler.is_greedy();
    println!("{label}");
    println!(
        "target: {} layers, dim {}, {} bytes; draft: {} layers, dim {}, {} bytes; context {context}, {kv:?} KV, {}",
        tm.config().n_layers,
        tm.config().dim,
        target_blob.len(),
        dm.config().n_layers,
        dm.config().dim,
        draft_blob.len(),
        if greedy { "greedy".to_string() } else { format!("temperature {} seed {}", sampler.temperature, sampler.seed) }
    );

    // The target alone.
    let mut ta = vec![0u8; plan(tm.config(), context, kv).total_bytes];
    let mut ts = Session::new(&tm, &mut ta, context, kv).unwrap_or_else(|e| fail(e));
    let mut text = vec![0u8; 4096];
    let (secs, reference) = timed(min, || {
        prompts
            .iter()
            .map(|p| {
                let mut ids = vec![];
                generate(&mut ts, p, &cfg, &mut text, &mut |e| ids.push(e.id))
                    .unwrap_or_else(|e| fail(e));
                ids
            })
            .collect::<Vec<_>>()
    });
    let tokens: usize = reference.iter().map(Vec::len).sum();
    let base_tps = tokens as f64 / secs;
    println!(
        "target alone: {tokens} tokens over {} prompts, {base_tps:.0} tok/s",
        prompts.len()
    );
    // The draft alone, for scale.
    let mut da0 = vec![0u8; plan(dm.config(), context, kv).total_bytes];
    let mut ds0 = Session::new(&dm, &mut da0, context, kv).unwrap_or_else(|e| fail(e));
    let (dsecs, dtokens) = timed(min, || {
        prompts
            .iter()
            .map(|p| {
                generate(&mut ds0, p, &cfg, &mut text, &mut |_| {})
                    .map(|g| g.generated_tokens)
                    .unwrap_or_else(|e| fail(e))
            })
            .sum::<usize>()
    });
    println!("draft alone: {:.0} tok/s", dtokens as f64 / dsecs);

    println!("k  same-tokens  acceptance  tokens/target-pass  tok/s  speedup  check-pass/forward");
    for &k in &ks {
        let mut ta = vec![0u8; plan_speculative(tm.config(), context, kv, k).total_bytes];
        let mut da = vec![0u8; plan_draft(dm.config(), context, kv, k).total_bytes];
        let mut ts =
            Session::with_batch(&tm, &mut ta, context, kv, k + 1).unwrap_or_else(|e| fail(e));
        let mut ds = Session::draft(&dm, &mut da, context, kv, k).unwrap_or_else(|e| fail(e));
        let (secs, (outs, stats)) = timed(min, || {
            let mut total = runtime::SpecStats::default();
            let outs = prompts
                .iter()
                .map(|p| {
                    let mut ids = vec![];
                    let (_, s) =
                        generate_speculative(&mut ts, &mut ds, p, &cfg, k, &mut text, &mut |e| {
                            ids.push(e.id)
                        })
                        .unwrap_or_else(|e| fail(e));
                    total.proposed += s.proposed;
                    total.accepted += s.accepted;
                    total.target_passes += s.target_passes;
                    total.draft_forwards += s.draft_forwards;
                    ids
                })
                .collect::<Vec<_>>();
            (outs, total)
        });
        let n: usize = outs.iter().map(Vec::len).sum();
        let same = if greedy {
            if outs == reference {
                "yes"
            } else {
                "NO"
            }
        } else {
            "(sampled)"
        };
        // One check pass of k + 1 tokens against k + 1 single steps, from
        // the middle of the context.
        let mid: Vec<u32> = (0..context / 2).map(|i| 8 + (i as u32 % 200)).collect();
        ts.reset();
        ts.prefill(&mid).unwrap_or_else(|e| fail(e));
        let run: Vec<u32> = (0..=k as u32).map(|i| 20 + i).collect();
        let (batch_secs, _) = timed(min / 4, || {
            ts.rewind(mid.len());
            ts.forward_batch(&run)
                .map(|_| ())
                .unwrap_or_else(|e| fail(e));
        });
        let (step_secs, _) = timed(min / 4, || {
            ts.rewind(mid.len());
            for t in &run {
                ts.forward(*t).map(|_| ()).unwrap_or_else(|e| fail(e));
            }
        });
        let tps = n as f64 / secs;
        println!(
            "{k:<2} {same:<12} {:>9.1} % {:>18.2} {:>6.0} {:>7.2}x  {:.2}",
            100.0 * stats.acceptance_rate(),
            n as f64 / stats.target_passes.max(1) as f64,
            tps,
            tps / base_tps,
            batch_secs / (step_secs / (k + 1) as f64),
        );
    }
}
