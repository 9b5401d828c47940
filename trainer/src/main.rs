use anyhow::{Context, Result};
use clap::Parser;
use trainer::cli::{Cli, Command, TrainArgs};
use trainer::{ablate, bench, checkpoint, config::RunConfig, device, dpo, eval, sample, train};

fn main() {
    device::tune_allocator();
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    let default = || {
        Command::Train(Box::new(TrainArgs {
            preset: "default".into(),
            ..Default::default()
        }))
    };
    match cli.command.unwrap_or_else(default) {
        Command::Train(args) => {
            let cfg = args.resolve()?;
            device::set_threads(cfg.threads);
            let out = args.out_dir(&cfg);
            train::prepare_out_dir(&out, args.resume, args.force)?;
            let t = std::time::Instant::now();
            let o = train::run(
                &cfg,
                &train::Options {
                    out: out.clone(),
                    resume: args.resume,
                    progress: !args.quiet,
                    stop_after: None,
                },
            )?;
            println!(
                "trained {} steps of a {}-parameter model in {:.0}s ({:.0}s wall in total); run directory {}",
                o.steps,
                o.params,
                o.train_s,
                t.elapsed().as_secs_f64(),
                out.display()
            );
            if let Some(r) = &o.final_eval {
                println!("{}", eval::evaluation_summary(r));
            }
        }
        Command::Eval(args) if !args.data.is_empty() => {
            let ckpt = export::load_run(&args.dir)?;
            let mut set = Vec::new();
            for p in &args.data {
                set.extend(tasks::load_jsonl(p)?);
            }
            if set.is_empty() {
                anyhow::bail!("no problems in {:?}", args.data);
            }
            if let Some(n) = args.n {
                set.truncate(n);
            }
            let r = eval::evaluate_with_budget(&ckpt, &set, args.think_budget)?;
            if args.json {
                println!("{}", eval::to_json(&r));
            } else {
                println!("{}", eval::summary(&r));
                print!("{}", eval::mistakes_text("", &r, args.mistakes));
            }
        }
        Command::Eval(args) => {
            let ckpt = export::load_run(&args.dir)?;
            let rc = read_run_config(&args.dir)?;
            let mix = match &args.task {
                Some(t) => tasks::Mix::parse(t)?,
                None => tasks::Mix::parse(&rc.train.tasks)?,
            };
            let mut user = Vec::new();
            if args.task.is_none() {
                for p in &rc.train.data {
                    user.extend(tasks::load_jsonl(p)?);
                }
            }
            let (_, user_held) = tasks::split_problems(user);
            let r = eval::evaluate_both(
                &ckpt,
                &mix,
                args.n.unwrap_or(500),
                &user_held,
                args.think_budget,
            )?;
            if args.json {
                println!("{}", eval::evaluation_json(&r));
            } else {
                println!("{}", eval::evaluation_summary(&r));
                print!(
                    "{}",
                    eval::mistakes_text("in-distribution ", &r.in_dist, args.mistakes)
                );
                if let Some(ood) = &r.ood {
                    print!(
                        "{}",
                        eval::mistakes_text("out-of-template ", ood, args.mistakes)
                    );
                }
            }
        }
        Command::Sample(args) => {
            let ckpt = export::load_run(&args.dir)?;
            let blob = eval::f32_blob(&ckpt)?;
            let opts = sample::SampleOptions {
                sampler: runtime::SamplerConfig {
                    temperature: args.temperature,
                    top_k: args.top_k,
                    top_p: args.top_p,
                    seed: args.seed,
                },
                think_budget: args.think_budget,
                max_tokens: args.max_tokens,
            };
            sample::sample(&blob, &args.prompt, &opts)?;
        }
        Command::Bench(args) => {
            device::set_threads(args.threads);
            bench::run(&args.shape, args.steps, args.shards)?;
        }
        Command::Dpo(args) => {
            device::set_threads(args.threads);
            if args.steps == 0 || args.batch == 0 || args.samples < 2 {
                anyhow::bail!("--steps and --batch must be positive and --samples at least 2");
            }
            let out = args.out.clone().unwrap_or_else(|| {
                let mut name = args.dir.file_name().unwrap_or_default().to_os_string();
                name.push("-dpo");
                args.dir.with_file_name(name)
            });
            let r = dpo::run(&dpo::DpoOptions {
                dir: args.dir.clone(),
                out: out.clone(),
                samples: args.samples,
                prompts: args.prompts,
                temperature: args.temperature,
                settings: dpo::DpoSettings {
                    beta: args.beta,
                    steps: args.steps,
                    lr: args.lr,
                    batch_pairs: args.batch,
                    grad_clip: 1.0,
                    warmup: (args.steps / 10).max(1),
                    seed: args.seed,
                },
                eval_n: args.eval_n,
            })?;
            println!(
                "{} pairs; DPO loss {:.4} -> {:.4}, margin {:.3}; run directory {}",
                r["pairs"],
                r["first_loss"].as_f64().unwrap_or(f64::NAN),
                r["final_loss"].as_f64().unwrap_or(f64::NAN),
                r["final_margin"].as_f64().unwrap_or(f64::NAN),
                out.display()
            );
            for (k, label) in [("eval_before", "before"), ("eval_after", "after")] {
                if let Some(a) = r[k]["accuracy"].as_f64() {
                    println!("held-out exact match {label}: {:.1}%", 100.0 * a);
                }
            }
        }
        Command::Ablate(args) => {
            device::set_threads(args.threads);
            if args.budgets_only && args.budget_model.is_none() {
                anyhow::bail!("--budgets-only needs --budget-model DIR");
            }
            ablate::run(&ablate::AblateOptions {
                out: args.out.clone(),
                steps: args
                    .steps
                    .unwrap_or(trainer::config::TrainConfig::default_preset().steps),
                eval_n: args.eval_n,
                budget_model: args.budget_model.clone(),
                budgets: args.budgets.clone(),
                budgets_only: args.budgets_only,
                seed: args.seed,
                tasks: args.tasks.clone(),
            })?;
        }
    }
    Ok(())
}

fn read_run_config(dir: &std::path::Path) -> Result<RunConfig> {
    let path = dir.join(checkpoint::CONFIG_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a run config", path.display()))
}
