//! Run directories (`docs/contracts.md`): tensor names, loading, saving and
//! the checks that make a bad checkpoint an error naming the file, tensor or
//! shape at fault.

use crate::Checkpoint;
use anyhow::{bail, Context, Result};
use runtime::format::{TensorId, TensorKind};
use runtime::ModelConfig;
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::Path;

/// Tensors by name: shape and row-major f32 values.
pub type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

pub const CONFIG_FILE: &str = "config.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// The checkpoint name of a blob tensor, e.g. `layers.3.attention.wq.weight`
/// (FFN tensors of expert 0 get the dense name; see [`tensor_name_in`]).
pub fn tensor_name(id: &TensorId) -> String {
    use TensorKind::*;
    let (l, e) = (id.layer, id.expert);
    match id.kind {
        Embedding => "tok_embeddings.weight".into(),
        AttnNorm => format!("layers.{l}.attention_norm.weight"),
        Wq => format!("layers.{l}.attention.wq.weight"),
        Wk => format!("layers.{l}.attention.wk.weight"),
        Wv => format!("layers.{l}.attention.wv.weight"),
        Wo => format!("layers.{l}.attention.wo.weight"),
        FfnNorm => format!("layers.{l}.ffn_norm.weight"),
        Router => format!("layers.{l}.feed_forward.router.weight"),
        FinalNorm => "norm.weight".into(),
        Output => "output.weight".into(),
        Gate | Up | Down => {
            let w = match id.kind {
                Gate => "w1",
                Up => "w3",
                _ => "w2",
            };
            // A `TensorId` does not say whether its layer is a mixture of
            // experts, so expert 0 is read as the dense FFN here; code that
            // has the config uses [`tensor_name_in`], which knows.
            if id.expert == 0 {
                format!("layers.{l}.feed_forward.{w}.weight")
            } else {
                format!("layers.{l}.feed_forward.experts.{e}.{w}.weight")
            }
        }
    }
}

/// The checkpoint name of a blob tensor under `config` (expert 0 of a
/// mixture-of-experts layer gets its `experts.0` path).
pub fn tensor_name_in(id: &TensorId, config: &ModelConfig) -> String {
    if matches!(
        id.kind,
        TensorKind::Gate | TensorKind::Up | TensorKind::Down
    ) && config.is_moe_layer(id.layer as u32)
    {
        let w = match id.kind {
            TensorKind::Gate => "w1",
            TensorKind::Up => "w3",
            _ => "w2",
        };
        return format!(
            "layers.{}.feed_forward.experts.{}.{w}.weight",
            id.layer, id.expert
        );
    }
    tensor_name(id)
}

/// Inverse of [`tensor_name`]/[`tensor_name_in`].
pub fn tensor_id(name: &str) -> Option<TensorId> {
    use TensorKind::*;
    let base = name.strip_suffix(".weight")?;
    match base {
        "tok_embeddings" => return Some(TensorId::new(Embedding, 0, 0)),
        "norm" => return Some(TensorId::new(FinalNorm, 0, 0)),
        "output" => return Some(TensorId::new(Output, 0, 0)),
        _ => {}
    }
    let rest = base.strip_prefix("layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: u16 = layer.parse().ok()?;
    let kind = |k| Some(TensorId::new(k, layer, 0));
    match rest {
        "attention_norm" => kind(AttnNorm),
        "attention.wq" => kind(Wq),
        "attention.wk" => kind(Wk),
        "attention.wv" => kind(Wv),
        "attention.wo" => kind(Wo),
        "ffn_norm" => kind(FfnNorm),
        "feed_forward.w1" => kind(Gate),
        "feed_forward.w3" => kind(Up),
        "feed_forward.w2" => kind(Down),
        "feed_forward.router" => kind(Router),
        _ => {
            let rest = rest.strip_prefix("feed_forward.experts.")?;
            let (e, w) = rest.split_once('.')?;
            let expert: u16 = e.parse().ok()?;
            let k = match w {
                "w1" => Gate,
                "w3" => Up,
                "w2" => Down,
                _ => return None,
            };
            Some(TensorId::new(k, layer, expert))
        }
    }
}

/// Loads a run directory written by the trainer.
pub fn load_run(dir: &Path) -> Result<Checkpoint> {
    if !dir.is_dir() {
        bail!("run directory {} does not exist", dir.display());
    }
    let config = load_config(&dir.join(CONFIG_FILE))?;
    let merges = load_merges(&dir.join(TOKENIZER_FILE))?;
    let tensors = load_safetensors(&dir.join(WEIGHTS_FILE))?;
    let ckpt = Checkpoint {
        config,
        merges,
        tensors,
    };
    check(&ckpt).with_context(|| format!("checkpoint in {}", dir.display()))?;
    Ok(ckpt)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// `config.json`: `{"model": ModelConfig, ...}`.
pub fn load_config(path: &Path) -> Result<ModelConfig> {
    let bytes = read(path)?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    let model = v
        .get("model")
        .with_context(|| format!("{} has no \"model\" object", path.display()))?;
    serde_json::from_value(model.clone()).with_context(|| {
        format!(
            "the \"model\" object in {} is not a model config",
            path.display()
        )
    })
}

/// `tokenizer.json`: `{"merges": [[left, right], ...]}` in rank order.
pub fn load_merges(path: &Path) -> Result<Vec<(u32, u32)>> {
    parse_merges(&read(path)?, &path.display().to_string())
}

/// [`load_merges`] of the bytes of a file called `name` (for messages).
pub fn parse_merges(bytes: &[u8], name: &str) -> Result<Vec<(u32, u32)>> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).with_context(|| format!("{name} is not valid JSON"))?;
    let merges = v
        .get("merges")
        .with_context(|| format!("{name} has no \"merges\" list"))?;
    serde_json::from_value(merges.clone())
        .with_context(|| format!("\"merges\" in {name} is not a list of [left, right] id pairs"))
}

/// All tensors of a safetensors file as f32 (f16 and bf16 are widened).
pub fn load_safetensors(path: &Path) -> Result<Tensors> {
    let bytes = read(path)?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{} is not a safetensors file: {e}", path.display()))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.iter() {
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => bail!(
                "tensor {name} in {} has dtype {other:?}; expected f32",
                path.display()
            ),
        };
        out.insert(name.to_string(), (view.shape().to_vec(), values));
    }
    Ok(out)
}

/// Writes `ckpt` as a run directory (`config.json`, `tokenizer.json`,
/// `model.safetensors`); used by tests and tools that build checkpoints in memory.
pub fn save_run(dir: &Path, ckpt: &Checkpoint) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let config = serde_json::json!({ "model": ckpt.config });
    std::fs::write(dir.join(CONFIG_FILE), serde_json::to_vec_pretty(&config)?)
        .with_context(|| format!("cannot write {}", dir.join(CONFIG_FILE).display()))?;
    let merges: Vec<[u32; 2]> = ckpt.merges.iter().map(|&(l, r)| [l, r]).collect();
    std::fs::write(
        dir.join(TOKENIZER_FILE),
        serde_json::to_vec(&serde_json::json!({ "merges": merges }))?,
    )
    .with_context(|| format!("cannot write {}", dir.join(TOKENIZER_FILE).display()))?;
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = ckpt
        .tensors
        .iter()
        .map(|(n, (s, v))| {
            (
                n.clone(),
                s.clone(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views = raw
        .iter()
        .map(|(n, s, b)| {
            Ok((
                n.as_str(),
                safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b)?,
            ))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| anyhow::anyhow!("cannot build safetensors views: {e}"))?;
    let bytes = safetensors::serialize(views, None)
        .map_err(|e| anyhow::anyhow!("cannot serialize safetensors: {e}"))?;
    std::fs::write(dir.join(WEIGHTS_FILE), bytes)
        .with_context(|| format!("cannot write {}", dir.join(WEIGHTS_FILE).display()))?;
    Ok(())
}

/// Every tensor the config needs, by name, in blob order.
pub fn expected_tensors(config: &ModelConfig) -> Vec<(TensorId, String)> {
    let mut v = Vec::new();
    TensorId::for_each_canonical(config, |id| v.push((id, tensor_name_in(&id, config))));
    v
}

/// Checks that the checkpoint holds every tensor its config needs, with the
/// right shape, finite values and a tokenizer that fits the vocab.
pub fn check(ckpt: &Checkpoint) -> Result<()> {
    let c = &ckpt.config;
    if c.dim == 0 || c.n_heads == 0 || c.n_kv_heads == 0 || c.n_layers == 0 {
        bail!("model config has zero dim, layers or heads: {c:?}");
    }
    if c.dim % c.n_heads != 0 || c.n_heads % c.n_kv_heads != 0 {
        bail!(
            "model config: heads ({}) must divide dim ({}) and kv heads ({}) must divide heads",
            c.n_heads,
            c.dim,
            c.n_kv_heads
        );
    }
    let n_tokens = runtime::format::special::FIRST_MERGE as usize + ckpt.merges.len();
    if !ckpt.merges.is_empty() && n_tokens > c.vocab_size as usize {
        bail!(
            "tokenizer has {} merges ({} tokens) but the model's vocab is {}",
            ckpt.merges.len(),
            n_tokens,
            c.vocab_size
        );
    }
    for (id, name) in expected_tensors(c) {
        let (rows, cols) = id.shape(c);
        let Some((shape, values)) = ckpt.tensors.get(&name) else {
            bail!("tensor {name} is missing (the config needs it with shape [{rows}, {cols}])");
        };
        let is_vector = rows == 1;
        let ok =
            shape == &[rows as usize, cols as usize] || (is_vector && shape == &[cols as usize]);
        if !ok {
            let want = if is_vector {
                format!("[{cols}]")
            } else {
                format!("[{rows}, {cols}]")
            };
            bail!("tensor {name} has shape {shape:?}, the config needs {want}");
        }
        if values.len() != rows as usize * cols as usize {
            bail!(
                "tensor {name} holds {} values, its shape {shape:?} needs {}",
                values.len(),
                rows * cols
            );
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            bail!(
                "tensor {name} holds a non-finite value ({}) at flat index {i}",
                values[i]
            );
        }
    }
    if c.tied_embeddings && ckpt.tensors.contains_key("output.weight") {
        bail!("config says the LM head is tied to the embedding, but the checkpoint has its own output.weight");
    }
    Ok(())
}

/// Tensors of the checkpoint the config does not use (reported, not exported).
pub fn unused_tensors(ckpt: &Checkpoint) -> Vec<String> {
    let wanted: std::collections::BTreeSet<String> = expected_tensors(&ckpt.config)
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    ckpt.tensors
        .keys()
        .filter(|n| !wanted.contains(*n))
        .cloned()
        .collect()
}

/// A checkpoint with synthetic weights: matrices uniform with the variance of
/// a `1/sqrt(fan_in)` init, norm gains near 1, and `n_merges` merges of
/// byte pairs. Deterministic in `seed`; for tests and benchmarks.
pub fn random_checkpoint(config: ModelConfig, n_merges: usize, seed: u64) -> Checkpoint {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        // xorshift64*: enough for test weights, no dependency.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let x = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let mut tensors = BTreeMap::new();
    for (id, name) in expected_tensors(&config) {
        let (rows, cols) = id.shape(&config);
        let n = rows as usize * cols as usize;
        let is_norm = rows == 1 && !matches!(id.kind, TensorKind::Router);
        let values: Vec<f32> = if is_norm {
            (0..n).map(|_| 1.0 + 0.1 * next()).collect()
        } else {
            // Uniform on [-a, a] has variance a²/3: a = sqrt(3 / fan_in).
            let a = (3.0 / cols as f32).sqrt();
            (0..n).map(|_| a * next()).collect()
        };
        let shape = if is_norm {
            vec![cols as usize]
        } else {
            vec![rows as usize, cols as usize]
        };
        tensors.insert(name, (shape, values));
    }
    let first = runtime::format::special::FIRST_BYTE;
    let max_merges =
        (config.vocab_size as usize).saturating_sub(runtime::format::special::FIRST_MERGE as usize);
    // Pairs of two lowercase letters: 676 distinct merges at most.
    let merges = (0..n_merges.min(max_merges).min(26 * 26) as u32)
        .map(|r| {
            (
                first + b'a' as u32 + r % 26,
                first + b'a' as u32 + r / 26 % 26,
            )
        })
        .collect();
    Checkpoint {
        config,
        merges,
        tensors,
    }
}
