//! Checkpoints in a run directory (`docs/contracts.md`):
//! `model.safetensors`, `optimizer.safetensors`, `state.json`, `metrics.csv`.
//!
//! Each file is written to a temporary name first and renamed into place,
//! `state.json` last. Both safetensors files carry the step in their metadata,
//! so a resume that finds files from different checkpoints (a crash between
//! two renames) says so instead of continuing from a mixture.

use crate::fsutil::{rename, tmp_path, write_atomic};
use crate::metrics::{self, MetricRow};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "state.json";
pub const METRICS_FILE: &str = "metrics.csv";
pub const CONFIG_FILE: &str = "config.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// What a resume needs besides weights and moments. Batches and dropout masks
/// are functions of `(seed, step)`, so no RNG state beyond these is needed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    /// Steps completed.
    pub step: u64,
    /// AdamW's step counter.
    pub optimizer_t: u64,
    pub seed: u64,
    /// Training wall time so far (seconds), across resumes.
    pub elapsed_s: f64,
    /// Training tokens (non-padding) seen so far.
    pub tokens_seen: u64,
}

fn metadata(step: u64) -> HashMap<String, String> {
    HashMap::from([("step".to_string(), step.to_string())])
}

fn write_safetensors(path: &Path, tensors: &BTreeMap<String, Tensor>, step: u64) -> Result<()> {
    // Checkpoints live on the host whatever device trained.
    let host: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.to_device(&Device::Cpu)?)))
        .collect::<Result<_>>()?;
    let tmp = tmp_path(path);
    safetensors::serialize_to_file(host, Some(metadata(step)), &tmp)
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    Ok(())
}

/// Tensors and the `step` recorded in a safetensors file's metadata.
pub fn read_safetensors(
    path: &Path,
    device: &Device,
) -> Result<(BTreeMap<String, Tensor>, Option<u64>)> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let step = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("step"))
        .and_then(|s| s.parse().ok());
    let tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .with_context(|| format!("{}: cannot load tensors", path.display()))?;
    Ok((tensors.into_iter().collect(), step))
}

/// Writes one consistent checkpoint into `dir`.
pub fn save(
    dir: &Path,
    model: &BTreeMap<String, Tensor>,
    optimizer: &BTreeMap<String, Tensor>,
    state: &TrainState,
    rows: &[MetricRow],
) -> Result<()> {
    let step = state.step;
    write_safetensors(&dir.join(MODEL_FILE), model, step)?;
    write_safetensors(&dir.join(OPTIMIZER_FILE), optimizer, step)?;
    write_atomic(&dir.join(METRICS_FILE), metrics::to_csv(rows).as_bytes())?;
    rename(&tmp_path(&dir.join(MODEL_FILE)), &dir.join(MODEL_FILE))?;
    rename(
        &tmp_path(&dir.join(OPTIMIZER_FILE)),
        &dir.join(OPTIMIZER_FILE),
    )?;
    write_atomic(
        &dir.join(STATE_FILE),
        serde_json::to_string_pretty(state)?.as_bytes(),
    )
}

/// A checkpoint read back for resuming.
pub struct Loaded {
    pub model: BTreeMap<String, Tensor>,
    pub optimizer: BTreeMap<String, Tensor>,
    pub state: TrainState,
    pub rows: Vec<MetricRow>,
}

pub fn load(dir: &Path, device: &Device) -> Result<Loaded> {
    let state_path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&state_path)
        .with_context(|| format!("{}: no checkpoint to resume from", state_path.display()))?;
    let state: TrainState = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a training state", state_path.display()))?;
    let (model, model_step) = read_safetensors(&dir.join(MODEL_FILE), device)?;
    let (optimizer, opt_step) = read_safetensors(&dir.join(OPTIMIZER_FILE), device)?;
    if model_step != Some(state.step) || opt_step != Some(state.step) {
        bail!(
            "{}: checkpoint files disagree (state step {}, model step {model_step:?}, optimizer step {opt_step:?}); \
             the run was interrupted while saving — start it again without --resume",
            dir.display(),
            state.step
        );
    }
    let rows = match metrics::read(&dir.join(METRICS_FILE)) {
        Ok(rows) => rows.into_iter().filter(|r| r.step <= state.step).collect(),
        Err(_) => Vec::new(),
    };
    Ok(Loaded {
        model,
        optimizer,
        state,
        rows,
    })
}
