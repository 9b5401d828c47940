//! What a quantization cost: bytes per tensor group, bits per weight, which
//! flash sizes the blob fits, and each tensor's reconstruction error.

use crate::ExportOptions;
use runtime::format::TensorKind;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// Tensors grouped the way a memory budget is discussed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TensorGroup {
    Embedding,
    Attention,
    Ffn,
    Norms,
    /// The untied LM head.
    Output,
}

impl TensorGroup {
    pub fn of(kind: TensorKind) -> Self {
        use TensorKind::*;
        match kind {
            Embedding => TensorGroup::Embedding,
            Wq | Wk | Wv | Wo => TensorGroup::Attention,
            Gate | Up | Down | Router => TensorGroup::Ffn,
            AttnNorm | FfnNorm | FinalNorm => TensorGroup::Norms,
            Output => TensorGroup::Output,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            TensorGroup::Embedding => "embedding",
            TensorGroup::Attention => "attention",
            TensorGroup::Ffn => "ffn",
            TensorGroup::Norms => "norms",
            TensorGroup::Output => "output",
        }
    }
}

/// One tensor's storage and error (original f32 vs what the runtime reads back).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TensorReport {
    pub name: String,
    pub group: TensorGroup,
    /// `f32`, `f16`, `q8` or `q4`.
    pub dtype: String,
    pub shape: [usize; 2],
    pub params: usize,
    /// Data plus scale bytes.
    pub bytes: usize,
    pub max_abs_err: f32,
    pub rms_err: f32,
    /// `rms_err / rms(weights)`.
    pub rel_rms_err: f32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupTotal {
    pub bytes: usize,
    pub params: usize,
}

/// Whether the blob fits a flash size (the firmware needs room besides it).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlashFit {
    pub flash: String,
    pub flash_bytes: usize,
    pub fits: bool,
    /// Flash left for code and everything else.
    pub free_bytes: i64,
}

/// Flash sizes of common microcontrollers.
pub const FLASH_SIZES: [(&str, usize); 5] = [
    ("256 KiB", 256 << 10),
    ("512 KiB", 512 << 10),
    ("1 MiB", 1 << 20),
    ("2 MiB", 2 << 20),
    ("4 MiB", 4 << 20),
];

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuantReport {
    pub quant: String,
    pub group_size: usize,
    pub scale_type: String,
    pub embedding_quant: Option<String>,
    pub keep_f32: Vec<String>,
    pub tensors: Vec<TensorReport>,
    /// Bytes and parameters per [`TensorGroup`] name.
    pub groups: BTreeMap<String, GroupTotal>,
    pub params: usize,
    /// Sum of tensor data and scale bytes.
    pub tensor_bytes: usize,
    /// The whole file: tensors, config, tokenizer, record headers, CRC.
    pub blob_bytes: usize,
    /// `tensor_bytes * 8 / params` (scales included).
    pub bits_per_weight: f64,
    pub flash: Vec<FlashFit>,
    /// Checkpoint tensors the config does not use (not exported).
    pub ignored_tensors: Vec<String>,
}

impl QuantReport {
    pub(crate) fn new(
        tensors: Vec<TensorReport>,
        blob_bytes: usize,
        ignored_tensors: Vec<String>,
        opts: &ExportOptions,
    ) -> Self {
        let mut groups: BTreeMap<String, GroupTotal> = BTreeMap::new();
        for t in &tensors {
            let g = groups
                .entry(t.group.name().to_string())
                .or_insert(GroupTotal {
                    bytes: 0,
                    params: 0,
                });
            g.bytes += t.bytes;
            g.params += t.params;
        }
        let params: usize = tensors.iter().map(|t| t.params).sum();
        let tensor_bytes: usize = tensors.iter().map(|t| t.bytes).sum();
        let flash = FLASH_SIZES
            .iter()
            .map(|&(n, b)| FlashFit {
                flash: n.to_string(),
                flash_bytes: b,
                fits: blob_bytes <= b,
                free_bytes: b as i64 - blob_bytes as i64,
            })
            .collect();
        Self {
            quant: opts.quant.name().to_string(),
            group_size: opts.group_size,
            scale_type: match opts.scale_type {
                runtime::ScaleType::F16 => "f16".into(),
                runtime::ScaleType::F32 => "f32".into(),
            },
            embedding_quant: opts.embedding_quant.map(|q| q.name().to_string()),
            keep_f32: opts.keep_f32.clone(),
            tensors,
            groups,
            params,
            tensor_bytes,
            blob_bytes,
            bits_per_weight: if params == 0 {
                0.0
            } else {
                tensor_bytes as f64 * 8.0 / params as f64
            },
            flash,
            ignored_tensors,
        }
    }

    /// The largest per-tensor max error among tensors of `group`.
    pub fn max_abs_err(&self, group: TensorGroup) -> f32 {
        self.tensors
            .iter()
            .filter(|t| t.group == group)
            .map(|t| t.max_abs_err)
            .fold(0.0, f32::max)
    }

    /// Smallest listed flash size the blob fits, if any.
    pub fn smallest_flash(&self) -> Option<&FlashFit> {
        self.flash.iter().find(|f| f.fits)
    }
}

/// Human-readable byte count.
pub fn human_bytes(b: usize) -> String {
    if b >= 1 << 20 {
        format!("{:.2} MiB", b as f64 / (1 << 20) as f64)
    } else if b >= 1 << 10 {
        format!("{:.1} KiB", b as f64 / 1024.0)
    } else {
        format!("{b} B")
    }
}

impl fmt::Display for QuantReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "quantization {} (group {}, {} scales",
            self.quant, self.group_size, self.scale_type
        )?;
        if let Some(e) = &self.embedding_quant {
            write!(f, ", embedding {e}")?;
        }
        if !self.keep_f32.is_empty() {
            write!(f, ", f32: {}", self.keep_f32.join(" "))?;
        }
        writeln!(f, ")")?;
        writeln!(
            f,
            "{:<12} {:>12} {:>12} {:>8}",
            "group", "params", "bytes", "share"
        )?;
        for (name, g) in &self.groups {
            let share = 100.0 * g.bytes as f64 / self.tensor_bytes.max(1) as f64;
            writeln!(
                f,
                "{name:<12} {:>12} {:>12} {share:>7.1}%",
                g.params,
                human_bytes(g.bytes)
            )?;
        }
        writeln!(
            f,
            "{:<12} {:>12} {:>12}",
            "tensors",
            self.params,
            human_bytes(self.tensor_bytes)
        )?;
        writeln!(
            f,
            "blob         {:>12} bytes ({}), {:.3} bits per weight",
            self.blob_bytes,
            human_bytes(self.blob_bytes),
            self.bits_per_weight
        )?;
        let fits: Vec<String> = self
            .flash
            .iter()
            .map(|x| {
                if x.fits {
                    format!("{} yes", x.flash)
                } else {
                    format!("{} no", x.flash)
                }
            })
            .collect();
        writeln!(f, "fits flash:  {}", fits.join(", "))?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<44} {:>5} {:>12} {:>10} {:>11} {:>11} {:>9}",
            "tensor", "dtype", "shape", "bytes", "max |err|", "rms err", "rel rms"
        )?;
        for t in &self.tensors {
            writeln!(
                f,
                "{:<44} {:>5} {:>12} {:>10} {:>11.3e} {:>11.3e} {:>9.2e}",
                t.name,
                t.dtype,
                format!("{}x{}", t.shape[0], t.shape[1]),
                t.bytes,
                t.max_abs_err,
                t.rms_err,
                t.rel_rms_err
            )?;
        }
        if !self.ignored_tensors.is_empty() {
            writeln!(
                f,
                "not exported (unused by the config): {}",
                self.ignored_tensors.join(", ")
            )?;
        }
        Ok(())
    }
}
