//! Import of Hugging Face Llama-family checkpoints (`LlamaForCausalLM`):
//! `config.json`, `model.safetensors` (or shards listed in
//! `model.safetensors.index.json`) and `tokenizer.json`.
//!
//! The architecture is thinkling's but for two conventions. q and k rows
//! pair RoPE dimensions by halves (`i`, `i + head_dim/2`) where thinkling
//! pairs neighbours (`2i`, `2i + 1`), so their rows are permuted back. And
//! Llama has no embedding scale: a model thinkling exported (marked by a
//! `"thinkling": {"embedding_scale": s}` object in `config.json`) carries
//! the scale folded into its weights, which the import unfolds so that the
//! blob is the one the run itself would give. Folding by a power of two
//! (thinkling's `sqrt(dim)` for `dim` 64, 256, 1024) loses nothing, so that
//! round trip is exact; another scale can round two values to one, and the
//! import then takes the value nearest `y / scale` that folds back to `y`.
//!
//! Anything the runtime cannot compute is refused by name rather than
//! approximated: biases, activations other than SiLU, RoPE scaling, a head
//! dimension other than `hidden_size / num_attention_heads`, sizes past the
//! runtime's limits.
//!
//! Tokenizers: a byte-level BPE laid out as thinkling's (special tokens
//! `0..8`, the 256 bytes, one id per merge in rank order, thinkling's
//! pre-tokenizer) becomes the runtime's byte-level BPE, merge for merge. A
//! sentencepiece-style BPE (Llama 2's: `<unk>`, `<s>`, `</s>`, then
//! `<0x00>`..`<0xFF>`, `▁` for the space) becomes the runtime's piece
//! tokenizer, each merged token scored by its merge rank. Other tokenizers
//! are refused; the weights can still be imported without one.

use crate::checkpoint::{expected_tensors, load_safetensors, Tensors};
use crate::hf::{halves_to_interleaved, hf_tensor_name};
use crate::quantize::build_blob_with_tokenizer;
use crate::vocab::{PieceVocab, Vocab};
use crate::{Checkpoint, ExportOptions, QuantReport};
use anyhow::{bail, Context, Result};
use runtime::blob::{MAX_HEAD_DIM, MAX_LAYERS, MAX_SEQ_LEN};
use runtime::format::{special, TensorKind};
use runtime::ModelConfig;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Tensors Hugging Face checkpoints may hold that carry no weights.
const IGNORED_SUFFIXES: &[&str] = &["rotary_emb.inv_freq"];

/// The tokenizer an imported model carries.
#[derive(Clone, Debug, PartialEq)]
pub enum HfVocab {
    /// thinkling's byte-level BPE: the merges are the checkpoint's.
    ByteBpe,
    Pieces(PieceVocab),
    /// Token ids only (no `tokenizer.json`, or it was left out).
    None,
}

/// An imported Hugging Face model.
#[derive(Clone, Debug, PartialEq)]
pub struct HfImport {
    pub checkpoint: Checkpoint,
    pub vocab: HfVocab,
    /// Whether `config.json` marks the model as exported by thinkling.
    pub thinkling_export: bool,
}

impl HfImport {
    /// Quantizes the model into a blob carrying its tokenizer.
    pub fn build_blob(&self, opts: &ExportOptions) -> Result<(Vec<u8>, QuantReport)> {
        let vocab = match &self.vocab {
            HfVocab::ByteBpe => Vocab::ByteBpe(&self.checkpoint.merges),
            HfVocab::Pieces(p) => Vocab::Pieces(p),
            HfVocab::None => Vocab::None,
        };
        build_blob_with_tokenizer(&self.checkpoint, vocab, opts)
    }
}

/// Reads the model directory `dir`; `with_tokenizer: false` ignores its
/// `tokenizer.json` (a blob of token ids only).
pub fn import(dir: &Path, with_tokenizer: bool) -> Result<HfImport> {
    let read_json = |name: &str| -> Result<Value> {
        let p = dir.join(name);
        let b = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
        serde_json::from_slice(&b).with_context(|| format!("{} is not JSON", p.display()))
    };
    let cfg_json = read_json("config.json")?;
    let hf = parse_config(&cfg_json)
        .with_context(|| format!("{}", dir.join("config.json").display()))?;
    let tensors = load_weights(dir)?;
    let mut checkpoint = checkpoint_from(&hf, tensors)?;
    let (vocab, merges) = if with_tokenizer && dir.join("tokenizer.json").exists() {
        parse_tokenizer(&read_json("tokenizer.json")?, &hf)
            .with_context(|| format!("{}", dir.join("tokenizer.json").display()))?
    } else {
        (HfVocab::None, Vec::new())
    };
    checkpoint.merges = merges;
    crate::checkpoint::check(&checkpoint)?;
    Ok(HfImport {
        checkpoint,
        vocab,
        thinkling_export: hf.embedding_scale.is_some(),
    })
}

/// Reads one model directory and writes its blob: `import` then `build_blob`.
pub fn import_blob(
    dir: &Path,
    with_tokenizer: bool,
    opts: &ExportOptions,
) -> Result<(Vec<u8>, QuantReport)> {
    import(dir, with_tokenizer)?.build_blob(opts)
}

/// What `config.json` says, checked against what the runtime computes.
#[derive(Clone, Debug, PartialEq)]
pub struct HfConfig {
    pub config: ModelConfig,
    /// thinkling's embedding scale, folded into the weights by its export.
    pub embedding_scale: Option<f32>,
    pub bos_token_id: Option<u64>,
    pub eos_token_id: Option<u64>,
}

fn field_u32(c: &Value, name: &str, default: Option<u32>) -> Result<u32> {
    match c.get(name) {
        None | Some(Value::Null) => default.with_context(|| format!("\"{name}\" is missing")),
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 && n <= u32::MAX as u64 => Ok(n as u32),
            _ => bail!("\"{name}\" is {v}; expected a positive integer"),
        },
    }
}

fn field_f32(c: &Value, name: &str, default: f32) -> Result<f32> {
    match c.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() && x > 0.0 => Ok(x as f32),
            _ => bail!("\"{name}\" is {v}; expected a positive number"),
        },
    }
}

/// A token id field, which Hugging Face also writes as a list (several eos ids).
fn token_id(c: &Value, name: &str) -> Result<Option<u64>> {
    match c.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) if a.len() == 1 => a[0]
            .as_u64()
            .map(Some)
            .with_context(|| format!("\"{name}\" is {}; expected a token id", a[0])),
        Some(v) => v
            .as_u64()
            .map(Some)
            .with_context(|| format!("\"{name}\" is {v}; the runtime takes one id")),
    }
}

/// Parses and checks `config.json`.
pub fn parse_config(c: &Value) -> Result<HfConfig> {
    match c.get("model_type").and_then(Value::as_str) {
        Some("llama") => {}
        Some(other) => bail!(
            "\"model_type\" is {other:?}; thinkling imports the Llama architecture (\"llama\")"
        ),
        None => bail!("\"model_type\" is missing; thinkling imports \"llama\" models"),
    }
    if let Some(act) = c.get("hidden_act") {
        if act.as_str() != Some("silu") {
            bail!("\"hidden_act\" is {act}; the runtime's MLP is SwiGLU with \"silu\" only");
        }
    }
    for norm in ["layer_norm_eps", "layer_norm_epsilon", "norm_type"] {
        if let Some(v) = c.get(norm) {
            bail!("\"{norm}\" is {v}; the runtime's norms are RMSNorm (\"rms_norm_eps\") only");
        }
    }
    for bias in ["attention_bias", "mlp_bias"] {
        if let Some(v) = c.get(bias) {
            if v.as_bool() != Some(false) && !v.is_null() {
                bail!("\"{bias}\" is {v}; the runtime's layers have no biases");
            }
        }
    }
    if let Some(v) = c.get("rope_scaling") {
        if !v.is_null() {
            bail!("\"rope_scaling\" is {v}; the runtime implements plain RoPE only (rope_scaling null)");
        }
    }
    let dim = field_u32(c, "hidden_size", None)?;
    let n_heads = field_u32(c, "num_attention_heads", None)?;
    let n_kv_heads = field_u32(c, "num_key_value_heads", Some(n_heads))?;
    if dim % n_heads != 0 {
        bail!("\"num_attention_heads\" {n_heads} does not divide \"hidden_size\" {dim}");
    }
    if n_heads % n_kv_heads != 0 {
        bail!("\"num_key_value_heads\" {n_kv_heads} does not divide \"num_attention_heads\" {n_heads}");
    }
    let head_dim = field_u32(c, "head_dim", Some(dim / n_heads))?;
    if head_dim != dim / n_heads {
        bail!(
            "\"head_dim\" is {head_dim}; the runtime's heads are hidden_size / num_attention_heads = {}",
            dim / n_heads
        );
    }
    if head_dim % 2 != 0 {
        bail!("head dimension {head_dim} is odd: RoPE turns pairs of dimensions");
    }
    if head_dim > MAX_HEAD_DIM {
        bail!("head dimension {head_dim} is past the runtime's limit of {MAX_HEAD_DIM}");
    }
    let n_layers = field_u32(c, "num_hidden_layers", None)?;
    if n_layers > MAX_LAYERS {
        bail!("\"num_hidden_layers\" is {n_layers}, past the runtime's limit of {MAX_LAYERS}");
    }
    let max_seq_len = field_u32(c, "max_position_embeddings", None)?;
    if max_seq_len > MAX_SEQ_LEN {
        bail!(
            "\"max_position_embeddings\" is {max_seq_len}, past the runtime's limit of {MAX_SEQ_LEN}"
        );
    }
    let hidden_dim = field_u32(c, "intermediate_size", None)?;
    let vocab_size = field_u32(c, "vocab_size", None)?;
    for (name, v) in [
        ("hidden_size", dim),
        ("intermediate_size", hidden_dim),
        ("vocab_size", vocab_size),
    ] {
        if v > 1 << 24 {
            bail!("\"{name}\" is {v}, past the runtime's limit of 2^24");
        }
    }
    let rope_theta = field_f32(c, "rope_theta", 10000.0)?;
    if rope_theta <= 1.0 {
        bail!("\"rope_theta\" is {rope_theta}; the runtime needs a RoPE base above 1");
    }
    let tied = match c.get("tie_word_embeddings") {
        None | Some(Value::Null) => false,
        Some(v) => v
            .as_bool()
            .with_context(|| format!("\"tie_word_embeddings\" is {v}; expected true or false"))?,
    };
    let embedding_scale = match c.get("thinkling").and_then(|t| t.get("embedding_scale")) {
        None => None,
        Some(v) => match v.as_f64() {
            Some(s) if s.is_finite() && s > 0.0 => Some(s as f32),
            _ => bail!("\"thinkling.embedding_scale\" is {v}; expected a positive number"),
        },
    };
    Ok(HfConfig {
        config: ModelConfig {
            dim,
            n_layers,
            n_heads,
            n_kv_heads,
            hidden_dim,
            vocab_size,
            max_seq_len,
            rope_theta,
            norm_eps: field_f32(c, "rms_norm_eps", 1e-6)?,
            embedding_scale: embedding_scale.unwrap_or(1.0),
            tied_embeddings: tied,
            moe: None,
        },
        embedding_scale,
        bos_token_id: token_id(c, "bos_token_id")?,
        eos_token_id: token_id(c, "eos_token_id")?,
    })
}

/// All tensors of `model.safetensors`, or of the shards its index lists.
fn load_weights(dir: &Path) -> Result<Tensors> {
    let single = dir.join("model.safetensors");
    if single.exists() {
        return load_safetensors(&single);
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.exists() {
        bail!(
            "{} has neither model.safetensors nor model.safetensors.index.json",
            dir.display()
        );
    }
    let v: Value = serde_json::from_slice(
        &std::fs::read(&index).with_context(|| format!("cannot read {}", index.display()))?,
    )
    .with_context(|| format!("{} is not JSON", index.display()))?;
    let map = v
        .get("weight_map")
        .and_then(Value::as_object)
        .with_context(|| format!("{} has no \"weight_map\" object", index.display()))?;
    let mut files: Vec<&str> = map.values().filter_map(Value::as_str).collect();
    files.sort_unstable();
    files.dedup();
    let mut out = BTreeMap::new();
    for f in files {
        out.extend(load_safetensors(&dir.join(f))?);
    }
    Ok(out)
}

/// `x` such that `x * factor` rounds to `y` in f32, nearest `y / factor`
/// first: the exact inverse of the export's folding wherever one exists.
fn unfold(y: f32, factor: f32) -> f32 {
    let guess = (y as f64 / factor as f64) as f32;
    if guess * factor == y || !guess.is_finite() {
        return guess;
    }
    let step = |x: f32, up: bool| {
        let b = x.to_bits() as i64;
        // Moving the bit pattern moves by one ulp away from or toward zero.
        let away = up == (x >= 0.0);
        f32::from_bits((b + if away { 1 } else { -1 }) as u32)
    };
    let (mut lo, mut hi) = (guess, guess);
    for _ in 0..4 {
        lo = step(lo, false);
        hi = step(hi, true);
        for c in [lo, hi] {
            if c * factor == y {
                return c;
            }
        }
    }
    guess
}

/// The weights under thinkling's names, in thinkling's RoPE pairing, with a
/// thinkling export's embedding scale unfolded.
fn checkpoint_from(hf: &HfConfig, mut tensors: Tensors) -> Result<Checkpoint> {
    let c = &hf.config;
    tensors.retain(|n, _| !IGNORED_SUFFIXES.iter().any(|s| n.ends_with(s)));
    if let Some(b) = tensors.keys().find(|n| n.ends_with(".bias")) {
        bail!("tensor {b} is a bias; the runtime's layers have none");
    }
    let has_head = tensors.contains_key("lm_head.weight");
    if c.tied_embeddings && has_head {
        bail!(
            "\"tie_word_embeddings\" is true but the checkpoint has its own lm_head.weight; \
             set it to false to keep the separate head"
        );
    }
    if !c.tied_embeddings && !has_head {
        bail!(
            "\"tie_word_embeddings\" is false but lm_head.weight is missing; \
             set it to true if the head is the embedding table"
        );
    }
    let hd = c.head_dim() as usize;
    let mut out = BTreeMap::new();
    for (id, name) in expected_tensors(c) {
        let hf_name = hf_tensor_name(&id);
        let (rows, cols) = id.shape(c);
        let (shape, values) = tensors.remove(&hf_name).with_context(|| {
            format!("tensor {hf_name} is missing (the config needs it with shape [{rows}, {cols}])")
        })?;
        let want: Vec<usize> = if rows == 1
            && matches!(
                id.kind,
                TensorKind::AttnNorm | TensorKind::FfnNorm | TensorKind::FinalNorm
            ) {
            vec![cols as usize]
        } else {
            vec![rows as usize, cols as usize]
        };
        if shape != want {
            bail!("tensor {hf_name} has shape {shape:?}; config.json needs {want:?}");
        }
        let values = match id.kind {
            TensorKind::Wq => halves_to_interleaved(&values, c.n_heads as usize, hd),
            TensorKind::Wk => halves_to_interleaved(&values, c.n_kv_heads as usize, hd),
            _ => values,
        };
        let values = match (hf.embedding_scale, id.kind) {
            (Some(s), TensorKind::Embedding) => values.iter().map(|&v| unfold(v, s)).collect(),
            (Some(s), TensorKind::FinalNorm) if c.tied_embeddings => {
                values.iter().map(|&v| unfold(v, 1.0 / s)).collect()
            }
            _ => values,
        };
        out.insert(name, (shape, values));
    }
    if let Some(extra) = tensors.keys().next() {
        bail!(
            "tensor {extra} is not part of the Llama architecture the runtime computes \
             ({} such tensors)",
            tensors.len()
        );
    }
    Ok(Checkpoint {
        config: *c,
        merges: Vec::new(),
        tensors: out,
    })
}

/// Whether any object in `v` has `"type": ty`.
fn has_type(v: &Value, ty: &str) -> bool {
    match v {
        Value::Object(m) => {
            m.get("type").and_then(Value::as_str) == Some(ty) || m.values().any(|x| has_type(x, ty))
        }
        Value::Array(a) => a.iter().any(|x| has_type(x, ty)),
        _ => false,
    }
}

/// The merges of a BPE model as string pairs (`"a b"` or `["a", "b"]`).
fn merge_pairs(model: &Value) -> Result<Vec<(String, String)>> {
    let Some(list) = model.get("merges").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    list.iter()
        .enumerate()
        .map(|(r, m)| match m {
            Value::String(s) => s
                .split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .with_context(|| format!("merge {r} {s:?} is not two tokens")),
            Value::Array(p) if p.len() == 2 => match (p[0].as_str(), p[1].as_str()) {
                (Some(a), Some(b)) => Ok((a.to_string(), b.to_string())),
                _ => bail!("merge {r} is {m}; expected two strings"),
            },
            _ => bail!("merge {r} is {m}; expected \"a b\" or [a, b]"),
        })
        .collect()
}

/// Fits `tokenizer.json` into one of the runtime's tokenizers.
pub fn parse_tokenizer(t: &Value, hf: &HfConfig) -> Result<(HfVocab, Vec<(u32, u32)>)> {
    let model = t.get("model").context("no \"model\" object")?;
    match model.get("type").and_then(Value::as_str) {
        Some("BPE") => {}
        other => bail!(
            "model type {other:?}: the runtime runs byte-level BPE or sentencepiece-style BPE \
             (import the weights alone with --no-tokenizer)"
        ),
    }
    let mut ids: HashMap<String, u32> = HashMap::new();
    if let Some(v) = model.get("vocab").and_then(Value::as_object) {
        for (s, id) in v {
            let id = id
                .as_u64()
                .with_context(|| format!("vocab entry {s:?} is {id}"))?;
            ids.insert(s.clone(), id as u32);
        }
    }
    for a in t
        .get("added_tokens")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(s), Some(id)) = (
            a.get("content").and_then(Value::as_str),
            a.get("id").and_then(Value::as_u64),
        ) {
            ids.insert(s.to_string(), id as u32);
        }
    }
    let vocab_size = hf.config.vocab_size as usize;
    if let Some((s, &id)) = ids.iter().find(|(_, id)| **id as usize >= vocab_size) {
        bail!("token {s:?} has id {id}, past \"vocab_size\" {vocab_size}");
    }
    let merges = merge_pairs(model)?;
    if has_type(t, "ByteLevel") {
        let merges = byte_level_merges(t, &ids, &merges)?;
        for (field, id, want) in [
            ("bos_token_id", hf.bos_token_id, special::BOS),
            ("eos_token_id", hf.eos_token_id, special::EOS),
        ] {
            if id.is_some_and(|id| id != want as u64) {
                bail!(
                    "config.json's \"{field}\" is {}; thinkling's byte-level BPE has it at {want}",
                    id.unwrap_or_default()
                );
            }
        }
        Ok((HfVocab::ByteBpe, merges))
    } else if model.get("byte_fallback").and_then(Value::as_bool) == Some(true)
        || ids.contains_key("<0x00>")
    {
        Ok((HfVocab::Pieces(piece_vocab(&ids, &merges, hf)?), Vec::new()))
    } else {
        bail!(
            "a BPE without byte-level encoding or byte fallback: the runtime cannot encode \
             every text with it (import the weights alone with --no-tokenizer)"
        )
    }
}

/// A byte-level BPE in thinkling's layout as merges of ids.
fn byte_level_merges(
    t: &Value,
    ids: &HashMap<String, u32>,
    merges: &[(String, String)],
) -> Result<Vec<(u32, u32)>> {
    let layout = "thinkling's byte-level layout (ids 0..8 its special tokens, 8..264 the bytes, \
                  then one id per merge in rank order) is what the runtime's byte-level BPE runs; \
                  import the weights alone with --no-tokenizer";
    for (id, name) in special::NAMES.iter().enumerate() {
        if ids.get(*name) != Some(&(id as u32)) {
            bail!("special token {name} is not id {id}: {layout}");
        }
    }
    for (b, ch) in crate::hf_tokenizer::byte_chars().iter().enumerate() {
        let want = special::FIRST_BYTE + b as u32;
        if ids.get(&ch.to_string()) != Some(&want) {
            bail!("byte {b:#04x} ({ch:?}) is not id {want}: {layout}");
        }
    }
    let split = t
        .get("pre_tokenizer")
        .map(|p| p.to_string())
        .unwrap_or_default();
    let regex = crate::hf_tokenizer::pretokenizer_regex();
    if !split.contains(&serde_json::to_string(&regex)?) {
        bail!(
            "the pre-tokenizer is not thinkling's: the runtime would split text differently \
             (import the weights alone with --no-tokenizer)"
        );
    }
    let id_of = |s: &str, r: usize| {
        ids.get(s)
            .copied()
            .with_context(|| format!("merge {r} uses {s:?}, which is not in the vocab"))
    };
    merges
        .iter()
        .enumerate()
        .map(|(r, (a, b))| {
            let want = special::FIRST_MERGE + r as u32;
            if id_of(&format!("{a}{b}"), r)? != want {
                bail!("merge {r} ({a:?}, {b:?}) does not make id {want}: {layout}");
            }
            Ok((id_of(a, r)?, id_of(b, r)?))
        })
        .collect()
}

/// A sentencepiece-style vocabulary as runtime pieces: `▁` is the space,
/// a merged token scores minus its merge rank (earlier merges first, as the
/// runtime merges the best-scoring pair), other tokens score below all.
fn piece_vocab(
    ids: &HashMap<String, u32>,
    merges: &[(String, String)],
    hf: &HfConfig,
) -> Result<PieceVocab> {
    let n = hf.config.vocab_size as usize;
    let layout =
        "the runtime's piece tokenizer needs <unk> 0, <s> 1, </s> 2 and <0x00>..<0xFF> at 3..259";
    for (name, id) in [("<unk>", 0u32), ("<s>", 1), ("</s>", 2)] {
        if ids.get(name) != Some(&id) {
            bail!("{name} is not id {id}: {layout}");
        }
    }
    for b in 0..=255u32 {
        let name = format!("<0x{b:02X}>");
        if ids.get(&name) != Some(&(b + 3)) {
            bail!("{name} is not id {}: {layout}", b + 3);
        }
    }
    for (field, id, want) in [
        ("bos_token_id", hf.bos_token_id, 1u64),
        ("eos_token_id", hf.eos_token_id, 2),
    ] {
        if id.is_some_and(|id| id != want) {
            bail!(
                "config.json's \"{field}\" is {}; {layout}",
                id.unwrap_or_default()
            );
        }
    }
    let mut pieces: Vec<Option<Vec<u8>>> = vec![None; n];
    for (s, &id) in ids {
        pieces[id as usize] = Some(s.replace('\u{2581}', " ").into_bytes());
    }
    let floor = -(merges.len() as f32) - 1.0;
    let mut scores = vec![floor; n];
    for (r, (a, b)) in merges.iter().enumerate() {
        if let Some(&id) = ids.get(&format!("{a}{b}")) {
            scores[id as usize] = scores[id as usize].max(-(r as f32));
        }
    }
    let pieces: Vec<Vec<u8>> = pieces.into_iter().map(Option::unwrap_or_default).collect();
    Ok(PieceVocab {
        max_token_length: pieces.iter().map(Vec::len).max().unwrap_or(0) as u32,
        pieces,
        scores,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfold_inverts_the_export_folding() {
        // A power-of-two scale folds without loss: the originals come back.
        for i in 0..20000 {
            let x = (i as f32 * 0.731).sin() * 0.05;
            assert_eq!(unfold(x * 8.0, 8.0), x, "{x}");
            assert_eq!(unfold(x * 0.125, 0.125), x, "{x}");
        }
        // Another scale can map two values to one; the value found folds
        // back to exactly what the export wrote.
        let s = 11.313708f32;
        let mut same = 0;
        for i in 0..20000 {
            let x = (i as f32 * 0.731).sin() * 0.05;
            let back = unfold(x * s, s);
            assert_eq!(back * s, x * s, "{x}");
            same += (back == x) as usize;
            let g = 1.0 + (i as f32 * 0.37).cos() * 0.3;
            assert_eq!(unfold(g * (1.0 / s), 1.0 / s) * (1.0 / s), g * (1.0 / s));
        }
        assert!(same > 15000, "{same}");
    }
}
