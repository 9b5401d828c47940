//! Command-line interface (clap). With no subcommand the trainer trains the
//! `default` preset into `runs/default/`.

use crate::config::TrainConfig;
use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "trainer",
    version,
    about = "Train, evaluate and sample thinkling reasoning models"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model (the default command).
    Train(Box<TrainArgs>),
    /// Held-out exact match of a run's model (greedy, checked by the task verifiers).
    Eval(EvalArgs),
    /// Generate a reasoning trace and answer for one prompt.
    Sample(SampleArgs),
    /// Measure training throughput (forward + backward + optimizer step).
    Bench(BenchArgs),
}

#[derive(Args, Debug, Default, Clone)]
pub struct TrainArgs {
    /// Starting configuration: `default` or `smoke`.
    #[arg(long, default_value = "default")]
    pub preset: String,
    /// TOML file of config keys (the field names of config.json's "train") over the preset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run directory (default: runs/<preset>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue from the run directory's last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// JSONL files of user problems to mix in (thinkling or GSM8K format).
    #[arg(long, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// Train answer-only sequences (no reasoning steps).
    #[arg(long)]
    pub no_think: bool,
    /// Task mix, e.g. `add,sub` or `add:2,word:1`.
    #[arg(long)]
    pub tasks: Option<String>,
    /// No progress bar; one log line every few steps.
    #[arg(long)]
    pub quiet: bool,
    #[arg(long)]
    pub steps: Option<u64>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// `cpu` or `cuda` (needs the `cuda` feature).
    #[arg(long)]
    pub device: Option<String>,
    #[arg(long)]
    pub vocab_size: Option<u32>,
    #[arg(long)]
    pub dim: Option<u32>,
    #[arg(long)]
    pub heads: Option<u32>,
    #[arg(long)]
    pub kv_heads: Option<u32>,
    #[arg(long)]
    pub layers: Option<u32>,
    /// FFN hidden width (0: dim·8/3).
    #[arg(long)]
    pub hidden_dim: Option<u32>,
    /// Longest training sequence in tokens.
    #[arg(long)]
    pub context: Option<u32>,
    /// Peak learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Sequences per step.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Think-span loss weight.
    #[arg(long)]
    pub alpha: Option<f32>,
    #[arg(long)]
    pub warmup: Option<u64>,
    /// Global gradient-norm clip (0: off).
    #[arg(long)]
    pub clip: Option<f64>,
    #[arg(long)]
    pub weight_decay: Option<f64>,
    #[arg(long)]
    pub beta1: Option<f64>,
    #[arg(long)]
    pub beta2: Option<f64>,
    #[arg(long)]
    pub dropout: Option<f32>,
    /// Held-out evaluation every N steps (0: off).
    #[arg(long)]
    pub eval_every: Option<u64>,
    /// Problems in the final evaluation.
    #[arg(long)]
    pub eval_n: Option<usize>,
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Compute threads (0: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Skip the q8 export at the end.
    #[arg(long)]
    pub no_export: bool,
}

impl TrainArgs {
    /// Preset, then the TOML file, then flags (flags win).
    pub fn resolve(&self) -> Result<TrainConfig> {
        let mut c = TrainConfig::preset(&self.preset)?;
        if let Some(path) = &self.config {
            c = c.apply_toml_file(path)?;
        }
        macro_rules! set {
            ($($flag:ident => $field:ident),*) => {$(
                if let Some(v) = self.$flag.clone() { c.$field = v; }
            )*};
        }
        set!(steps => steps, seed => seed, device => device, vocab_size => vocab_size, dim => dim,
             heads => n_heads, kv_heads => n_kv_heads, layers => n_layers, hidden_dim => hidden_dim,
             context => context, lr => lr, batch => batch_size, alpha => alpha, warmup => warmup_steps,
             clip => grad_clip, weight_decay => weight_decay, beta1 => beta1, beta2 => beta2,
             dropout => dropout, eval_every => eval_every, eval_n => final_eval_n,
             checkpoint_every => checkpoint_every, threads => threads, tasks => tasks);
        if !self.data.is_empty() {
            c.data = self.data.clone();
        }
        if self.no_think {
            c.no_think = true;
        }
        if self.no_export {
            c.export = false;
        }
        c.validate()?;
        Ok(c)
    }

    pub fn out_dir(&self, c: &TrainConfig) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(&c.preset))
    }
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Run directory.
    pub dir: PathBuf,
    /// Number of held-out problems.
    #[arg(long, default_value_t = 500)]
    pub n: usize,
    /// Only this task (add, sub, mul, word); default: the run's task mix.
    #[arg(long)]
    pub task: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Run directory.
    pub dir: PathBuf,
    /// The problem text.
    #[arg(long)]
    pub prompt: String,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub top_k: u32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Thinking tokens before the thought is closed.
    #[arg(long)]
    pub think_budget: Option<usize>,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// `a` (d256 L6 H8, 16×256), `b` (d128 L4 H4 KV2, 32×128) or `all`.
    #[arg(long, default_value = "all")]
    pub shape: String,
    /// Timed steps per shape (after 2 warm-up steps).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Compute threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}
