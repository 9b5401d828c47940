//! `export RUN_DIR [options]`: quantize a training run into a model blob and
//! report what the quantization cost (size, per-tensor error, logit
//! agreement and accuracy against the f32 model).
//!
//! `export --from-llama2c MODEL.bin [--tokenizer tokenizer.bin] --out FILE`:
//! convert a llama2.c checkpoint.
//!
//! `export --from-hf DIR --out FILE`: convert a Hugging Face Llama-family
//! checkpoint (config.json, safetensors, tokenizer.json).
//!
//! `export --blob FILE --kv f32,f16,q8`: measure an existing blob with each
//! KV cache type (held-out accuracy, logits against the f32 cache).
//! `export RUN_DIR --format hf|gguf`: the run as a Hugging Face model
//! directory or a llama.cpp GGUF file.

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use export::compare::{self, Agreement};
use export::eval::{self, EvalOptions, EvalResult};
use export::{ExportOptions, Quant, QuantReport};
use runtime::KvDType;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(
    name = "export",
    version,
    about = "Quantize a thinkling run (or a llama2.c or Hugging Face Llama model) into a \
             runtime blob, or export it as a Hugging Face model or a GGUF file"
)]
struct Cli {
    /// Training run directory (config.json, tokenizer.json, model.safetensors).
    #[arg(
        required_unless_present_any = ["from_llama2c", "from_hf", "blob"],
        conflicts_with_all = ["from_llama2c", "from_hf", "blob"]
    )]
    run_dir: Option<PathBuf>,
    /// What to write.
    #[arg(long, value_enum, default_value_t = Format::Blob)]
    format: Format,
    /// Weight storage. blob: f32, f16, q8 or q4 (default q8); gguf: q8_0,
    /// q4_0, f16 or f32 (default q8_0); hf: f32 or f16 (default f32).
    #[arg(long)]
    quant: Option<String>,
    /// Elements per quantization group along a row.
    #[arg(long = "group", default_value_t = 32)]
    group: usize,
    /// Storage of the group scales: f16 or f32.
    #[arg(long = "scales", default_value = "f16", value_parser = parse_scales)]
    scales: runtime::ScaleType,
    /// Keep tensors matching this glob in f32 (repeatable), e.g. `output` or `layers.*.attention.wo`.
    #[arg(long = "keep-f32", value_name = "PATTERN")]
    keep_f32: Vec<String>,
    /// Storage of the token embedding table, if different from --quant.
    #[arg(long = "embedding-quant")]
    embedding_quant: Option<Quant>,
    /// Output file (default RUN_DIR/model.<quant>.bin, RUN_DIR/model.<quant>.gguf),
    /// or directory for --format hf (default RUN_DIR/hf).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Held-out problems whose answers are checked, for the blob and the f32 model (0: skip).
    #[arg(long = "eval-n", default_value_t = 32)]
    eval_n: usize,
    /// Held-out sequences for the logit comparison against f32 (0: skip).
    #[arg(long = "compare-n", default_value_t = 64)]
    compare_n: usize,
    /// Task mix of the held-out problems (default: the run's training mix).
    #[arg(long)]
    mix: Option<String>,
    /// Seed of the held-out problems.
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    /// Thinking tokens before the engine closes the thought (evaluation).
    #[arg(long = "think-budget")]
    think_budget: Option<usize>,
    /// KV cache types to measure the blob with, e.g. `f32,f16,q8`: held-out
    /// accuracy with each, and for each but f32 the logits against the blob
    /// with an f32 cache.
    #[arg(long = "kv", value_delimiter = ',', default_value = "f32", value_parser = parse_kv)]
    kv: Vec<KvDType>,
    /// Measure this blob instead of exporting one: held-out accuracy and
    /// logit agreement with each --kv cache type.
    #[arg(long = "blob", value_name = "FILE", conflicts_with_all = ["from_llama2c", "from_hf"])]
    blob: Option<PathBuf>,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    json: bool,
    /// Convert a llama2.c model.bin (legacy fp32 format) instead of a run.
    #[arg(long = "from-llama2c", value_name = "MODEL.bin", requires = "out")]
    from_llama2c: Option<PathBuf>,
    /// Convert a Hugging Face Llama-family model directory (config.json,
    /// model.safetensors or its shards, tokenizer.json) instead of a run.
    /// q and k go back to thinkling's RoPE pairing; a model thinkling
    /// exported gets its embedding scale back. Biases, activations other
    /// than silu, rope_scaling and sizes past the runtime's limits are refused.
    #[arg(
        long = "from-hf",
        value_name = "DIR",
        requires = "out",
        conflicts_with = "from_llama2c"
    )]
    from_hf: Option<PathBuf>,
    /// With --from-hf: leave tokenizer.json out (a blob of token ids only),
    /// for tokenizers the runtime cannot run.
    #[arg(long = "no-tokenizer", requires = "from_hf")]
    no_tokenizer: bool,
    /// llama2.c tokenizer.bin to embed (with --from-llama2c).
    #[arg(long, requires = "from_llama2c")]
    tokenizer: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// The runtime's checksummed blob (quantization report, logit agreement, accuracy).
    Blob,
    /// A Hugging Face `transformers` directory (LlamaForCausalLM, tokenizer.json).
    Hf,
    /// A GGUF v3 file for llama.cpp's `llama` architecture, tokenizer inside.
    Gguf,
}

fn parse_scales(s: &str) -> Result<runtime::ScaleType, String> {
    match s.to_ascii_lowercase().as_str() {
        "f16" => Ok(runtime::ScaleType::F16),
        "f32" => Ok(runtime::ScaleType::F32),
        _ => Err(format!("unknown scale type {s:?}: expected f16 or f32")),
    }
}

fn parse_kv(s: &str) -> Result<KvDType, String> {
    KvDType::from_name(s)
        .ok_or_else(|| format!("unknown KV cache type {s:?}: expected f32, f16 or q8"))
}

/// A blob measured with a KV cache type.
#[derive(Serialize)]
struct KvMeasure {
    kv: &'static str,
    /// Logits against the same blob with an f32 cache, at the positions that
    /// predict trained tokens (none for f32 itself).
    agreement: Option<Agreement>,
    accuracy: Option<EvalResult>,
}

#[derive(Serialize)]
struct Accuracy {
    blob: EvalResult,
    f32: EvalResult,
    mix: String,
    seed: u64,
}

#[derive(Serialize)]
struct Summary {
    out: PathBuf,
    source: String,
    seconds: f64,
    report: QuantReport,
    /// Logits of the blob against the f32 model at the positions that predict
    /// trained tokens (`<think>` onwards; every position for llama2.c).
    agreement: Option<Agreement>,
    /// The same over every position, problem text included.
    agreement_all_positions: Option<Agreement>,
    accuracy: Option<Accuracy>,
    /// The blob with the KV cache types of `--kv` other than f32.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    kv: Vec<KvMeasure>,
}

/// `--blob`: an existing blob measured with each KV cache type.
#[derive(Serialize)]
struct BlobSummary {
    blob: PathBuf,
    bytes: usize,
    seconds: f64,
    mix: String,
    seed: u64,
    kv: Vec<KvMeasure>,
}

/// Writes `bytes` next to `path` and renames it into place, so a reader (or
/// a flashing tool) never sees a half-written blob.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(bytes)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("cannot sync {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The run's training mix and answer-only flag from `config.json`'s `train` object.
fn run_training_data(dir: &Path) -> (Option<String>, bool) {
    let v: Option<serde_json::Value> = std::fs::read(dir.join(export::checkpoint::CONFIG_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let train = v.as_ref().and_then(|v| v.get("train"));
    let mix = train
        .and_then(|t| t.get("tasks"))
        .and_then(|m| m.as_str())
        .map(str::to_string);
    let no_think = train
        .and_then(|t| t.get("no_think"))
        .and_then(|b| b.as_bool())
        .unwrap_or(false);
    (mix, no_think)
}

/// Whether `opts` store every tensor in f32 (then the blob is its own reference).
fn is_f32(opts: &ExportOptions) -> bool {
    opts.quant == Quant::F32 && opts.embedding_quant.is_none_or(|q| q == Quant::F32)
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let start = Instant::now();
    if cli.format != Format::Blob {
        return run_travel(&cli, start);
    }
    let quant: Quant = cli.quant.as_deref().unwrap_or("q8").parse()?;
    let opts = ExportOptions {
        quant,
        group_size: cli.group,
        scale_type: cli.scales,
        keep_f32: cli.keep_f32.clone(),
        embedding_quant: cli.embedding_quant,
    };
    let f32_opts = ExportOptions::with_quant(Quant::F32);
    if let Some(model) = &cli.from_llama2c {
        return run_llama2c(&cli, model, &opts, &f32_opts, start);
    }
    if let Some(dir) = &cli.from_hf {
        return run_hf(&cli, dir, &opts, &f32_opts, start);
    }
    if let Some(path) = &cli.blob {
        return run_blob(&cli, path, start);
    }
    let Some(dir) = &cli.run_dir else {
        bail!("give a run directory or --from-llama2c MODEL.bin")
    };
    let ckpt = export::load_run(dir)?;
    let (blob, report) = export::build_blob(&ckpt, &opts)?;
    let out = cli
        .out
        .clone()
        .unwrap_or_else(|| dir.join(format!("model.{quant}.bin")));
    write_atomic(&out, &blob)?;

    let need_reference = cli.compare_n > 0 || cli.eval_n > 0;
    let reference = if need_reference && !is_f32(&opts) {
        Some(export::build_blob(&ckpt, &f32_opts)?.0)
    } else {
        None
    };
    let reference = reference.as_deref().unwrap_or(&blob);
    let (run_mix, no_think) = run_training_data(dir);
    let mix_spec = cli
        .mix
        .clone()
        .or(run_mix)
        .unwrap_or_else(|| "default".into());
    let mut mix = tasks::Mix::parse(&mix_spec).with_context(|| format!("task mix {mix_spec:?}"))?;
    // Held-out problems come from generators; loaded user data has none.
    mix.tasks.retain(|(k, _)| k.is_builtin());
    if mix.tasks.is_empty() {
        mix = tasks::Mix::default_mix();
    }
    let n_problems = cli.compare_n.max(cli.eval_n);
    let problems = tasks::held_out_set(&mix, n_problems, cli.seed);

    let seqs = if cli.compare_n > 0 {
        compare::encode_problems(&blob, &problems[..cli.compare_n], !no_think)?
    } else {
        Vec::new()
    };
    let starts: Vec<usize> = seqs.iter().map(|s| compare::reasoning_start(s)).collect();
    let (agreement, agreement_all_positions) = if cli.compare_n > 0 {
        (
            Some(compare::logits_agreement_from(
                reference, &blob, &seqs, &starts,
            )?),
            Some(compare::logits_agreement(reference, &blob, &seqs)?),
        )
    } else {
        (None, None)
    };
    let max_seq = ckpt.config.max_seq_len as usize;
    let eo = EvalOptions {
        max_new_tokens: max_seq,
        think_budget: cli.think_budget,
        context: max_seq,
        kv: KvDType::F32,
    };
    let subset = &problems[..cli.eval_n];
    let kv = cli
        .kv
        .iter()
        .filter(|k| **k != KvDType::F32)
        .map(|k| measure_kv(&blob, *k, &seqs, &starts, subset, &eo))
        .collect::<Result<Vec<_>>>()?;
    let accuracy = if cli.eval_n > 0 {
        let b = eval::evaluate_blob(&blob, subset, &eo)?;
        let f = if std::ptr::eq(reference, blob.as_slice()) {
            b.clone()
        } else {
            eval::evaluate_blob(reference, subset, &eo)?
        };
        Some(Accuracy {
            blob: b,
            f32: f,
            mix: mix_spec,
            seed: cli.seed,
        })
    } else {
        None
    };
    let summary = Summary {
        out,
        source: dir.display().to_string(),
        seconds: start.elapsed().as_secs_f64(),
        report,
        agreement,
        agreement_all_positions,
        accuracy,
        kv,
    };
    print_summary(&summary, cli.json)
}

/// `blob` with a `kv` cache: its logits on `seqs` against the f32 cache
/// (from `starts`; none for f32 itself or without sequences) and its
/// accuracy on `problems` (none without problems).
fn measure_kv(
    blob: &[u8],
    kv: KvDType,
    seqs: &[Vec<u32>],
    starts: &[usize],
    problems: &[tasks::Problem],
    eo: &EvalOptions,
) -> Result<KvMeasure> {
    let agreement = if kv != KvDType::F32 && !seqs.is_empty() {
        Some(compare::kv_agreement_from(blob, kv, seqs, starts)?)
    } else {
        None
    };
    let accuracy = if problems.is_empty() {
        None
    } else {
        Some(eval::evaluate_blob(
            blob,
            problems,
            &EvalOptions { kv, ..eo.clone() },
        )?)
    };
    Ok(KvMeasure {
        kv: kv.name(),
        agreement,
        accuracy,
    })
}

fn run_blob(cli: &Cli, path: &Path, start: Instant) -> Result<()> {
    let blob = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let model =
        runtime::Model::from_blob(&blob).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let max_seq = model.config().max_seq_len as usize;
    let mix_spec = cli.mix.clone().unwrap_or_else(|| "default".into());
    let mix = tasks::Mix::parse(&mix_spec).with_context(|| format!("task mix {mix_spec:?}"))?;
    let problems = tasks::held_out_set(&mix, cli.compare_n.max(cli.eval_n), cli.seed);
    // A blob does not say whether its model thinks: the sequences have the
    // trained reasoning of each problem, which an answer-only model reads as
    // text.
    let seqs = compare::encode_problems(&blob, &problems[..cli.compare_n], true)?;
    let starts: Vec<usize> = seqs.iter().map(|s| compare::reasoning_start(s)).collect();
    let eo = EvalOptions {
        max_new_tokens: max_seq,
        think_budget: cli.think_budget,
        context: max_seq,
        kv: KvDType::F32,
    };
    let kv = cli
        .kv
        .iter()
        .map(|k| measure_kv(&blob, *k, &seqs, &starts, &problems[..cli.eval_n], &eo))
        .collect::<Result<Vec<_>>>()?;
    let s = BlobSummary {
        blob: path.to_path_buf(),
        bytes: blob.len(),
        seconds: start.elapsed().as_secs_f64(),
        mix: mix_spec,
        seed: cli.seed,
        kv,
    };
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    let c = model.config();
    println!(
        "{} ({} bytes, {:.1} s): dim {}, {} layers, {}/{} heads, vocab {}, context {}",
        s.blob.display(),
        s.bytes,
        s.seconds,
        c.dim,
        c.n_layers,
        c.n_heads,
        c.n_kv_heads,
        c.vocab_size,
        max_seq
    );
    print_kv(&s.kv, cli.eval_n, &s.mix, s.seed);
    Ok(())
}

/// The agreement and accuracy lines of each KV cache type.
fn print_kv(kv: &[KvMeasure], eval_n: usize, mix: &str, seed: u64) {
    for m in kv {
        if let Some(a) = &m.agreement {
            println!(
                "{} KV against f32 KV, think/answer positions ({}): top-1 agreement {:.2}%, \
                 max |dlogit| {:.4} (mean per position {:.4}, max |logit| {:.2})",
                m.kv,
                a.positions,
                100.0 * a.top1,
                a.max_abs_dlogit,
                a.mean_max_abs_dlogit,
                a.max_abs_logit
            );
        }
    }
    if kv.iter().any(|m| m.accuracy.is_some()) {
        println!("held-out accuracy by KV cache ({eval_n} problems, mix {mix}, seed {seed}):");
    }
    for m in kv {
        if let Some(r) = &m.accuracy {
            print_accuracy(&format!("{} KV", m.kv), r);
        }
    }
}

fn print_accuracy(name: &str, r: &EvalResult) {
    let tasks: Vec<String> = r
        .per_task
        .iter()
        .map(|(t, (c, n))| format!("{t} {c}/{n}"))
        .collect();
    println!(
        "  {name:<6} {:6.2}%  well-formed {:6.2}%  think tokens {:6.1}  [{}]",
        100.0 * r.accuracy,
        100.0 * r.well_formed,
        r.mean_think_tokens,
        tasks.join(", ")
    );
}

#[derive(Serialize)]
#[serde(untagged)]
enum TravelReport {
    Hf(export::hf::HfExport),
    Gguf(export::gguf::GgufReport),
}

#[derive(Serialize)]
struct TravelSummary {
    out: PathBuf,
    source: String,
    format: &'static str,
    seconds: f64,
    report: TravelReport,
}

/// `--format hf|gguf`: the run as the Llama architecture other runtimes load.
fn run_travel(cli: &Cli, start: Instant) -> Result<()> {
    let format = match cli.format {
        Format::Hf => "hf",
        _ => "gguf",
    };
    if cli.from_llama2c.is_some() || cli.from_hf.is_some() {
        bail!(
            "--format {format} exports a thinkling run directory, not --from-llama2c or --from-hf"
        );
    }
    if !cli.keep_f32.is_empty() || cli.embedding_quant.is_some() {
        bail!("--keep-f32 and --embedding-quant apply to the runtime blob, not --format {format}");
    }
    let Some(dir) = &cli.run_dir else {
        bail!("give a run directory to export")
    };
    let ckpt = export::load_run(dir)?;
    let (out, report) = match cli.format {
        Format::Hf => {
            let dtype: export::hf::HfDType = cli.quant.as_deref().unwrap_or("f32").parse()?;
            let out = cli.out.clone().unwrap_or_else(|| dir.join("hf"));
            let r = export::hf::write_dir(&ckpt, &out, dtype)?;
            (out, TravelReport::Hf(r))
        }
        _ => {
            let quant: export::gguf::GgufQuant = cli.quant.as_deref().unwrap_or("q8_0").parse()?;
            let out = cli
                .out
                .clone()
                .unwrap_or_else(|| dir.join(format!("model.{quant}.gguf")));
            let name = dir
                .file_name()
                .map_or("thinkling".into(), |n| n.to_string_lossy().into_owned());
            let (bytes, r) = export::gguf::build(&ckpt, quant, &name)?;
            write_atomic(&out, &bytes)?;
            (out, TravelReport::Gguf(r))
        }
    };
    let s = TravelSummary {
        out,
        source: dir.display().to_string(),
        format,
        seconds: start.elapsed().as_secs_f64(),
        report,
    };
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!("{} -> {} ({:.1} s)", s.source, s.out.display(), s.seconds);
    match &s.report {
        TravelReport::Hf(r) => println!(
            "Hugging Face LlamaForCausalLM, {} weights: {} tensors, {} bytes; tokenizer: {} tokens, {} merges",
            r.dtype, r.tensors, r.weights_bytes, r.vocab, r.merges
        ),
        TravelReport::Gguf(r) => {
            println!(
                "GGUF v3 (llama), {}: {} tensors, {} bytes",
                r.quant,
                r.tensors.len(),
                r.bytes
            );
            if !r.f16_fallback.is_empty() {
                println!(
                    "kept in f16 (rows not a multiple of 32): {}",
                    r.f16_fallback.join(", ")
                );
            }
        }
    }
    Ok(())
}

fn run_llama2c(
    cli: &Cli,
    model: &Path,
    opts: &ExportOptions,
    f32_opts: &ExportOptions,
    start: Instant,
) -> Result<()> {
    let imported = export::llama2c::import(model, cli.tokenizer.as_deref())?;
    write_imported(
        cli,
        model,
        "--from-llama2c",
        |o| imported.build_blob(o),
        opts,
        f32_opts,
        start,
    )
}

/// `--from-hf`: a Hugging Face Llama-family checkpoint as a blob.
fn run_hf(
    cli: &Cli,
    dir: &Path,
    opts: &ExportOptions,
    f32_opts: &ExportOptions,
    start: Instant,
) -> Result<()> {
    let imported = export::hf_import::import(dir, !cli.no_tokenizer)?;
    write_imported(
        cli,
        dir,
        "--from-hf",
        |o| imported.build_blob(o),
        opts,
        f32_opts,
        start,
    )
}

/// Writes an imported model's blob to `--out` and reports it. An imported
/// model need not reason, so the blob is compared with the f32 model on that
/// model's own greedy continuations, not on reasoning problems.
fn write_imported(
    cli: &Cli,
    source: &Path,
    flag: &str,
    build_blob: impl Fn(&ExportOptions) -> Result<(Vec<u8>, QuantReport)>,
    opts: &ExportOptions,
    f32_opts: &ExportOptions,
    start: Instant,
) -> Result<()> {
    let (blob, report) = build_blob(opts)?;
    let out = cli
        .out
        .clone()
        .with_context(|| format!("--out is required with {flag}"))?;
    write_atomic(&out, &blob)?;
    let agreement = if cli.compare_n > 0 && !is_f32(opts) {
        let (reference, _) = build_blob(f32_opts)?;
        let n = cli.compare_n.min(8);
        let seqs = compare::greedy_sequences(&reference, n, 64)?;
        Some(compare::logits_agreement(&reference, &blob, &seqs)?)
    } else {
        None
    };
    let summary = Summary {
        out,
        source: source.display().to_string(),
        seconds: start.elapsed().as_secs_f64(),
        report,
        agreement,
        agreement_all_positions: None,
        accuracy: None,
        kv: Vec::new(),
    };
    print_summary(&summary, cli.json)
}

fn print_summary(s: &Summary, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    println!("{} -> {} ({:.1} s)", s.source, s.out.display(), s.seconds);
    print!("{}", s.report);
    let line = |what: &str, a: &Agreement| {
        println!(
            "against f32, {what} ({} positions): top-1 agreement {:.2}%, max |dlogit| {:.4} \
             (mean per position {:.4}, max |logit| {:.2})",
            a.positions,
            100.0 * a.top1,
            a.max_abs_dlogit,
            a.mean_max_abs_dlogit,
            a.max_abs_logit
        );
    };
    if s.agreement.is_some() {
        println!();
    }
    if let Some(a) = &s.agreement {
        line(
            if s.agreement_all_positions.is_some() {
                "think/answer positions"
            } else {
                "all positions"
            },
            a,
        );
    }
    if let Some(a) = &s.agreement_all_positions {
        line("all positions", a);
    }
    if let Some(acc) = &s.accuracy {
        println!();
        println!(
            "held-out accuracy ({} problems, mix {}, seed {}):",
            acc.blob.n, acc.mix, acc.seed
        );
        print_accuracy("blob", &acc.blob);
        print_accuracy("f32", &acc.f32);
    }
    if !s.kv.is_empty() {
        println!();
        let (n, mix, seed) = s
            .accuracy
            .as_ref()
            .map_or((0, "", 0), |a| (a.blob.n, a.mix.as_str(), a.seed));
        print_kv(&s.kv, n, mix, seed);
    }
    Ok(())
}
