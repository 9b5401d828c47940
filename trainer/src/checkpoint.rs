//! Checkpoints in a run directory (`docs/contracts.md`):
//! `model.safetensors`, `optimizer.safetensors`, `state.json`, `metrics.csv`.
//!
//! A checkpoint is written in two phases. First every file goes to a
//! temporary name (`*.tmp`) and is flushed to the disk, `state.json.tmp`
//! last: a complete `state.json.tmp` is the commit point, it says that all
//! the other temporary files are complete. Then each file is renamed into
//! place, `state.json` last, and the directory is flushed. A process killed
//! (or a disk filled) at any moment leaves either the previous checkpoint
//! untouched (no complete `state.json.tmp`: [`load`] discards the temporary
//! files) or the new one committed (`load` finishes the renames). Both
//! safetensors files also carry the step in their metadata, so files of
//! different checkpoints are still caught if something else mixed them.

use crate::fsutil::{rename, sync_dir, tmp_path, write_synced, write_synced_with};
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

/// The test hook of the kill/resume tests: with `THINKLING_TEST_KILL` set to
/// `STEP:POINT`, the process sends itself SIGKILL when it reaches that point
/// of that step (`step`: the step is done and not yet checkpointed;
/// `model-half`, `optimizer-half`, `state-half`: half of that checkpoint
/// file is written; `committed`: every temporary file is complete, nothing is
/// renamed yet; `renamed-model`: the model file alone is renamed).
pub fn kill_point(step: u64, point: &str) {
    #[cfg(unix)]
    if let Ok(v) = std::env::var("THINKLING_TEST_KILL") {
        if v == format!("{step}:{point}") {
            // SAFETY: plain system calls without memory arguments.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (step, point);
}

fn safetensors_bytes(tensors: &BTreeMap<String, Tensor>, step: u64) -> Result<Vec<u8>> {
    // Checkpoints live on the host whatever device trained.
    let host: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.to_device(&Device::Cpu)?)))
        .collect::<Result<_>>()?;
    Ok(safetensors::serialize(host, Some(metadata(step)))?)
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

/// The files of a checkpoint, in the order they are renamed into place
/// (`state.json` after them).
const DATA_FILES: [&str; 3] = [MODEL_FILE, OPTIMIZER_FILE, METRICS_FILE];

/// Writes one consistent checkpoint into `dir` (see the module comment): when
/// this returns, the checkpoint is on the disk and [`load`] finds it.
pub fn save(
    dir: &Path,
    model: &BTreeMap<String, Tensor>,
    optimizer: &BTreeMap<String, Tensor>,
    state: &TrainState,
    rows: &[MetricRow],
) -> Result<()> {
    let step = state.step;
    // A stale commit marker (left by an earlier process) must not vouch for
    // the files written below.
    remove_if_present(&tmp_path(&dir.join(STATE_FILE)))?;
    let model = safetensors_bytes(model, step)?;
    write_synced_with(&tmp_path(&dir.join(MODEL_FILE)), &model, |_| {
        kill_point(step, "model-half")
    })?;
    drop(model);
    let optimizer = safetensors_bytes(optimizer, step)?;
    write_synced_with(&tmp_path(&dir.join(OPTIMIZER_FILE)), &optimizer, |_| {
        kill_point(step, "optimizer-half")
    })?;
    drop(optimizer);
    write_synced(
        &tmp_path(&dir.join(METRICS_FILE)),
        metrics::to_csv(rows).as_bytes(),
    )?;
    // The commit point.
    write_synced_with(
        &tmp_path(&dir.join(STATE_FILE)),
        serde_json::to_string_pretty(state)?.as_bytes(),
        |_| kill_point(step, "state-half"),
    )?;
    sync_dir(&dir.join(STATE_FILE))?;
    kill_point(step, "committed");
    commit(dir, step)
}

/// Renames a committed checkpoint's temporary files into place.
fn commit(dir: &Path, step: u64) -> Result<()> {
    for f in DATA_FILES {
        let (tmp, path) = (tmp_path(&dir.join(f)), dir.join(f));
        if tmp.exists() {
            rename(&tmp, &path)?;
        }
        if f == MODEL_FILE {
            kill_point(step, "renamed-model");
        }
    }
    rename(&tmp_path(&dir.join(STATE_FILE)), &dir.join(STATE_FILE))?;
    sync_dir(&dir.join(STATE_FILE))
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("{}: cannot remove", path.display())),
    }
}

/// Brings a run directory whose last save was interrupted to a consistent
/// checkpoint: a committed save is finished, an uncommitted one discarded.
/// Returns the step of a checkpoint it finished.
pub fn recover(dir: &Path) -> Result<Option<u64>> {
    let marker = tmp_path(&dir.join(STATE_FILE));
    let committed = std::fs::read_to_string(&marker)
        .ok()
        .and_then(|t| serde_json::from_str::<TrainState>(&t).ok());
    match committed {
        Some(state) => {
            commit(dir, state.step)?;
            Ok(Some(state.step))
        }
        None => {
            for f in DATA_FILES.iter().chain([&STATE_FILE]) {
                remove_if_present(&tmp_path(&dir.join(f)))?;
            }
            Ok(None)
        }
    }
}

/// A checkpoint read back for resuming.
pub struct Loaded {
    pub model: BTreeMap<String, Tensor>,
    pub optimizer: BTreeMap<String, Tensor>,
    pub state: TrainState,
    pub rows: Vec<MetricRow>,
}

/// Reads the last checkpoint of `dir`, after [`recover`]ing an interrupted save.
pub fn load(dir: &Path, device: &Device) -> Result<Loaded> {
    if let Some(step) = recover(dir)? {
        eprintln!(
            "{}: finished saving the checkpoint of step {step}, which was interrupted after its commit",
            dir.display()
        );
    }
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
