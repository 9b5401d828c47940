//! Training configuration: presets, TOML overlay, command-line overrides,
//! validation, and the model config the run records.

use anyhow::{bail, Context, Result};
use runtime::format::{ModelConfig, MoeConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Everything a run depends on. Recorded as `"train"` in `config.json`; the
/// model shape is also recorded as `"model"` (runtime's `ModelConfig`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Name of the preset the run started from (informational).
    pub preset: String,
    // --- model ---
    pub vocab_size: u32,
    pub dim: u32,
    pub n_layers: u32,
    pub n_heads: u32,
    pub n_kv_heads: u32,
    /// SwiGLU hidden width; 0 means `int(dim·8/3)`.
    pub hidden_dim: u32,
    /// Longest training sequence (tokens); longer samples are skipped.
    pub context: u32,
    pub rope_theta: f32,
    pub tied_embeddings: bool,
    /// Mixture of experts: experts per MoE layer (0: dense FFN everywhere).
    #[serde(default)]
    pub moe_experts: u32,
    /// Experts each token is routed to (softmax over the chosen k logits).
    #[serde(default = "one")]
    pub moe_top_k: u32,
    /// Layers that use experts: `all` or a comma list like `0,2`.
    #[serde(default = "all_layers")]
    pub moe_layers: String,
    /// Weight of the Switch load-balancing loss `N · Σ_e f_e · P_e`.
    #[serde(default = "aux_weight")]
    pub moe_aux_weight: f64,
    // --- optimisation ---
    pub seed: u64,
    pub steps: u64,
    /// Sequences per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate as a fraction of the peak (cosine floor).
    pub min_lr_ratio: f64,
    pub warmup_steps: u64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Global gradient-norm clip (0 disables).
    pub grad_clip: f64,
    /// Residual dropout probability (masks from the run's seeded RNG).
    pub dropout: f32,
    /// Loss weight of the think span (the answer span weighs 1).
    pub alpha: f32,
    /// Parts of each batch that run forward and backward side by side, one
    /// per core (CPU only; part of the run, not of the machine: the same
    /// config gives the same model on any number of cores).
    #[serde(default = "one_shard")]
    pub shards: usize,
    /// Loss weight of the problem text (0: the model only learns to answer).
    #[serde(default)]
    pub prompt_weight: f32,
    // --- data ---
    /// Task mix (`tasks::Mix::parse` syntax).
    pub tasks: String,
    /// JSONL files of user problems mixed into training.
    pub data: Vec<PathBuf>,
    /// Train answer-only sequences (no reasoning steps).
    pub no_think: bool,
    /// Problems sampled to train the BPE tokenizer.
    pub tokenizer_samples: usize,
    /// An existing `tokenizer.json` to reuse instead of training one (the
    /// vocabulary follows it); empty: train one.
    #[serde(default)]
    pub tokenizer: String,
    // --- bookkeeping ---
    /// Held-out accuracy every N steps (0: never).
    pub eval_every: u64,
    /// Problems in each periodic evaluation.
    pub eval_n: usize,
    /// Problems in the final evaluation.
    pub final_eval_n: usize,
    /// Checkpoint every N steps (0: only at the end).
    pub checkpoint_every: u64,
    /// Compute threads (0: all cores).
    pub threads: usize,
    /// `cpu` or `cuda`.
    pub device: String,
    /// Export the final model to `model.q8.bin`.
    pub export: bool,
}

fn one_shard() -> usize {
    1
}

impl TrainConfig {
    /// The default run: what fits in 20 minutes on 2 cores. Depth buys word
    /// problems (at 12,500 steps, 2, 3 and 4 layers of width 64 reach 71, 88
    /// and 97 % on them); with the batch in two shards, one per core, five
    /// layers train 20,000 steps in that time (the README has the
    /// measurements), while the wider `wide` model gets too few steps.
    pub fn default_preset() -> Self {
        Self {
            preset: "default".into(),
            vocab_size: 512,
            dim: 64,
            n_layers: 5,
            n_heads: 4,
            n_kv_heads: 2,
            hidden_dim: 0,
            context: 256,
            rope_theta: 10000.0,
            tied_embeddings: true,
            moe_experts: 0,
            moe_top_k: 1,
            moe_layers: all_layers(),
            moe_aux_weight: aux_weight(),
            seed: 1,
            steps: 20_000,
            batch_size: 32,
            lr: 3e-3,
            min_lr_ratio: 0.1,
            warmup_steps: 100,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            grad_clip: 1.0,
            dropout: 0.0,
            alpha: 0.5,
            prompt_weight: 0.0,
            shards: 2,
            tasks: "default".into(),
            data: Vec::new(),
            no_think: false,
            tokenizer_samples: 20_000,
            tokenizer: String::new(),
            eval_every: 500,
            eval_n: 64,
            final_eval_n: 500,
            checkpoint_every: 500,
            threads: 0,
            device: "cpu".into(),
            export: true,
        }
    }

    /// A tiny model on an easy task that trains in seconds (tests, CI).
    pub fn smoke_preset() -> Self {
        Self {
            preset: "smoke".into(),
            vocab_size: 300,
            dim: 64,
            n_layers: 2,
            n_heads: 4,
            n_kv_heads: 2,
            // The problems of the built-in forms take 65 to 90 tokens with
            // this small vocabulary: at 64 almost every sample was skipped.
            context: 96,
            steps: 300,
            batch_size: 16,
            lr: 3e-3,
            warmup_steps: 20,
            tasks: "add".into(),
            tokenizer_samples: 500,
            eval_every: 0,
            eval_n: 32,
            final_eval_n: 64,
            checkpoint_every: 50,
            export: false,
            ..Self::default_preset()
        }
    }

    /// The wider model the default run used before (787 k parameters), for
    /// the 20-minute budget: 3300 steps.
    pub fn wide_preset() -> Self {
        Self {
            preset: "wide".into(),
            dim: 128,
            n_layers: 4,
            steps: 3300,
            ..Self::default_preset()
        }
    }

    /// A two-layer model of the default width trained 6000 steps (a few
    /// minutes): a quick model, and a draft for speculative decoding with a
    /// deeper or wider target. Train it
    /// with the target's tokenizer (`--tokenizer runs/wide/tokenizer.json`)
    /// so both share one vocabulary.
    pub fn draft_preset() -> Self {
        Self {
            preset: "draft".into(),
            dim: 64,
            n_layers: 2,
            n_heads: 4,
            n_kv_heads: 2,
            steps: 6000,
            batch_size: 32,
            lr: 3e-3,
            warmup_steps: 50,
            eval_every: 500,
            final_eval_n: 200,
            ..Self::default_preset()
        }
    }

    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "default" => Ok(Self::default_preset()),
            "smoke" => Ok(Self::smoke_preset()),
            "draft" => Ok(Self::draft_preset()),
            "wide" => Ok(Self::wide_preset()),
            other => bail!("unknown preset {other:?} (expected default, smoke, draft or wide)"),
        }
    }

    /// Bit `i` set: layer `i` uses experts (0 for a dense model).
    pub fn moe_layer_mask(&self) -> Result<u64> {
        if self.moe_experts == 0 {
            return Ok(0);
        }
        let spec = self.moe_layers.trim();
        if spec == "all" {
            return Ok(if self.n_layers >= 64 {
                u64::MAX
            } else {
                (1u64 << self.n_layers) - 1
            });
        }
        let mut mask = 0u64;
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let i: u32 = part
                .parse()
                .with_context(|| format!("moe_layers: {part:?} is not a layer index"))?;
            if i >= self.n_layers || i >= 64 {
                bail!(
                    "moe_layers: layer {i} does not exist ({} layers)",
                    self.n_layers
                );
            }
            mask |= 1 << i;
        }
        if mask == 0 {
            bail!("moe_layers {spec:?} names no layer (use `all` or e.g. `0,2`)");
        }
        Ok(mask)
    }

    /// Overlays the keys of a TOML document (flat, the field names of this
    /// struct) on `self`; unknown keys and wrong types are errors.
    pub fn apply_toml(&self, text: &str, name: &str) -> Result<Self> {
        let overlay: toml::Table =
            toml::from_str(text).with_context(|| format!("{name}: not valid TOML"))?;
        let mut base = toml::Table::try_from(self).context("config to TOML")?;
        for (k, v) in overlay {
            if !base.contains_key(&k) {
                let known: Vec<&str> = base.keys().map(String::as_str).collect();
                bail!(
                    "{name}: unknown key {k:?} (known keys: {})",
                    known.join(", ")
                );
            }
            base.insert(k, v);
        }
        toml::Value::Table(base)
            .try_into()
            .with_context(|| format!("{name}: bad value"))
    }

    pub fn apply_toml_file(&self, path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        self.apply_toml(&text, &path.display().to_string())
    }

    pub fn hidden(&self) -> u32 {
        if self.hidden_dim == 0 {
            self.dim * 8 / 3
        } else {
            self.hidden_dim
        }
    }

    /// Rejects shapes and values no run can use, naming the field.
    pub fn validate(&self) -> Result<()> {
        let min_vocab = runtime::format::special::FIRST_MERGE;
        if self.vocab_size < min_vocab {
            bail!(
                "vocab_size {} is below {min_vocab} (8 special tokens + 256 bytes)",
                self.vocab_size
            );
        }
        if self.dim == 0 || self.n_layers == 0 || self.n_heads == 0 || self.n_kv_heads == 0 {
            bail!("dim, n_layers, n_heads and n_kv_heads must be positive");
        }
        if self.dim % self.n_heads != 0 {
            bail!("n_heads {} does not divide dim {}", self.n_heads, self.dim);
        }
        if (self.dim / self.n_heads) % 2 != 0 {
            bail!("head dim {} must be even for RoPE", self.dim / self.n_heads);
        }
        if self.n_heads % self.n_kv_heads != 0 {
            bail!(
                "n_kv_heads {} does not divide n_heads {}",
                self.n_kv_heads,
                self.n_heads
            );
        }
        if self.context < 16 {
            bail!("context {} is too short (at least 16)", self.context);
        }
        if self.batch_size == 0 || self.steps == 0 {
            bail!("batch_size and steps must be positive");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            bail!("lr must be a positive number");
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            bail!("min_lr_ratio must be in 0..=1");
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            bail!("beta1 and beta2 must be in [0, 1)");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail!("dropout must be in [0, 1)");
        }
        if !(self.alpha >= 0.0 && self.alpha.is_finite()) {
            bail!("alpha must be a non-negative number");
        }
        if self.shards == 0 || self.shards > self.batch_size {
            bail!(
                "shards must be in 1..={} (batch_size), got {}",
                self.batch_size,
                self.shards
            );
        }
        if !(self.prompt_weight >= 0.0 && self.prompt_weight.is_finite()) {
            bail!("prompt_weight must be a non-negative number");
        }
        if self.weight_decay < 0.0 || self.grad_clip < 0.0 {
            bail!("weight_decay and grad_clip must be non-negative");
        }
        if self.device != "cpu" && self.device != "cuda" {
            bail!("unknown device {:?} (expected cpu or cuda)", self.device);
        }
        if self.moe_experts > 0 {
            if self.moe_experts > runtime::blob::MAX_EXPERTS {
                bail!(
                    "moe_experts {} is above the runtime's limit of {}",
                    self.moe_experts,
                    runtime::blob::MAX_EXPERTS
                );
            }
            if self.moe_top_k == 0 || self.moe_top_k > self.moe_experts {
                bail!(
                    "moe_top_k {} must be in 1..={} (moe_experts)",
                    self.moe_top_k,
                    self.moe_experts
                );
            }
            if !(self.moe_aux_weight >= 0.0 && self.moe_aux_weight.is_finite()) {
                bail!("moe_aux_weight must be a non-negative number");
            }
            self.moe_layer_mask()?;
        }
        tasks::Mix::parse(&self.tasks)?;
        Ok(())
    }

    /// The architecture in the runtime's terms.
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig {
            dim: self.dim,
            n_layers: self.n_layers,
            n_heads: self.n_heads,
            n_kv_heads: self.n_kv_heads,
            hidden_dim: self.hidden(),
            vocab_size: self.vocab_size,
            max_seq_len: self.context,
            rope_theta: self.rope_theta,
            norm_eps: 1e-6,
            embedding_scale: (self.dim as f32).sqrt(),
            tied_embeddings: self.tied_embeddings,
            moe: match self.moe_layer_mask() {
                Ok(mask) if mask != 0 => Some(MoeConfig {
                    n_experts: self.moe_experts,
                    top_k: self.moe_top_k,
                    layer_mask: mask,
                }),
                _ => None,
            },
        }
    }
}

fn one() -> u32 {
    1
}

fn all_layers() -> String {
    "all".into()
}

fn aux_weight() -> f64 {
    0.01
}

/// `config.json` of a run directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunConfig {
    pub model: ModelConfig,
    pub train: TrainConfig,
}
