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
    /// Preference optimisation (DPO) on the model's own sampled reasoning traces.
    Dpo(DpoArgs),
    /// Does thinking help? Equal-token runs with and without thinking, and a think-budget sweep.
    Ablate(AblateArgs),
}

#[derive(Args, Debug)]
pub struct DpoArgs {
    /// Run directory of the starting (and reference) model.
    pub dir: PathBuf,
    /// Traces sampled per prompt.
    #[arg(long, default_value_t = 4)]
    pub samples: usize,
    /// DPO β.
    #[arg(long, default_value_t = 0.1)]
    pub beta: f64,
    /// Optimizer steps.
    #[arg(long, default_value_t = 100)]
    pub steps: u64,
    /// Learning rate (constant after a 10 % warmup).
    #[arg(long, default_value_t = 1e-5)]
    pub lr: f64,
    /// Preference pairs per step.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Output run directory (default: DIR-dpo).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Sampling temperature.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Training-split prompts to sample.
    #[arg(long, default_value_t = 2048)]
    pub prompts: usize,
    /// Held-out problems for the before/after evaluation (0: skip).
    #[arg(long, default_value_t = 500)]
    pub eval_n: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Compute threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Batch parts computed side by side (the trainer's `shards`).
    #[arg(long, default_value_t = 2)]
    pub shards: usize,
}

#[derive(Args, Debug)]
pub struct AblateArgs {
    /// Steps of the thinking variants (default: the default preset's, the full ablation).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Output directory.
    #[arg(long, default_value = "runs/ablate")]
    pub out: PathBuf,
    /// Held-out problems per evaluation.
    #[arg(long, default_value_t = 500)]
    pub eval_n: usize,
    /// Model of the think-budget sweep (default: the ablation's α = 0.5 run).
    #[arg(long)]
    pub budget_model: Option<PathBuf>,
    /// Think budgets to sweep (an unlimited run is always added).
    #[arg(long, value_delimiter = ',', default_value = "0,8,16,32,64")]
    pub budgets: Vec<usize>,
    /// Task mix of the training variants (quick versions: e.g. `add,sub`).
    #[arg(long, default_value = "default")]
    pub tasks: String,
    /// Only the think-budget sweep (needs --budget-model).
    #[arg(long)]
    pub budgets_only: bool,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Compute threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Batch parts computed side by side (the trainer's `shards`).
    #[arg(long, default_value_t = 2)]
    pub shards: usize,
}

#[derive(Args, Debug, Default, Clone)]
pub struct TrainArgs {
    /// Starting configuration: `default`, `smoke`, `draft` or `wide`.
    #[arg(long, default_value = "default")]
    pub preset: String,
    /// TOML file of config keys (the field names of config.json's "train") over the preset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run directory (default: `runs/<preset>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue from the run directory's last checkpoint.
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
    /// Train over a run directory that already holds a model (its run files are replaced).
    #[arg(long)]
    pub force: bool,
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
    /// Batch parts computed side by side, one per core (CPU).
    #[arg(long)]
    pub shards: Option<usize>,
    /// Loss weight of the problem text (0: not learned).
    #[arg(long)]
    pub prompt_weight: Option<f32>,
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
    /// Reuse this tokenizer.json instead of training one (vocab size follows it).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Mixture of experts: experts per MoE layer (0: dense).
    #[arg(long)]
    pub moe_experts: Option<u32>,
    /// Experts per token.
    #[arg(long)]
    pub moe_top_k: Option<u32>,
    /// MoE layers: `all` or a comma list like `0,2`.
    #[arg(long)]
    pub moe_layers: Option<String>,
    /// Weight of the load-balancing loss.
    #[arg(long)]
    pub moe_aux_weight: Option<f64>,
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
             context => context, lr => lr, batch => batch_size, alpha => alpha, prompt_weight => prompt_weight, shards => shards, warmup => warmup_steps,
             clip => grad_clip, weight_decay => weight_decay, beta1 => beta1, beta2 => beta2,
             dropout => dropout, eval_every => eval_every, eval_n => final_eval_n,
             checkpoint_every => checkpoint_every, threads => threads, tasks => tasks,
             moe_experts => moe_experts, moe_top_k => moe_top_k, moe_layers => moe_layers,
             moe_aux_weight => moe_aux_weight);
        if let Some(t) = &self.tokenizer {
            c.tokenizer = t.display().to_string();
        }
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
    /// Number of held-out problems, and as many out-of-template ones
    /// [default: 500]; with --data: only the first N problems of the files.
    #[arg(long)]
    pub n: Option<usize>,
    /// Only this task (add, sub, mul, div, word); default: the run's task mix.
    #[arg(long, conflicts_with = "data")]
    pub task: Option<String>,
    /// Exact match on these JSONL files instead (records {"problem","answer"}
    /// with an optional "think", or GSM8K's {"question","answer"}).
    #[arg(long)]
    pub data: Vec<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Thinking tokens before the engine closes the thought itself.
    #[arg(long)]
    pub think_budget: Option<usize>,
    /// Also print the first N problems of each set the model got wrong,
    /// with its reasoning and answer (text output only).
    #[arg(long, default_value_t = 0)]
    pub mistakes: usize,
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
    /// `a` (d256 L6 H8, 16×256), `b` (d128 L4 H4 KV2, 32×128), `c` (the default model, d64 L4 H4 KV2, 32×100) or `all`.
    #[arg(long, default_value = "all")]
    pub shape: String,
    /// Timed steps per shape (after 2 warm-up steps).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Compute threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Batch parts computed side by side (the trainer's `shards`).
    #[arg(long, default_value_t = 2)]
    pub shards: usize,
}
