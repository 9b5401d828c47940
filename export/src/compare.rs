//! Agreement of two blobs' logits on the same token sequences: how far a
//! quantized model drifts from the f32 one (the runtime's f32 path is
//! parity-tested against the trainer, so an f32 blob stands for the model).

use anyhow::{bail, Context, Result};
use runtime::format::special;
use runtime::tokenizer::Tokenizer;
use runtime::{KvDType, Model, Session};
use serde::Serialize;

/// How often the argmax agrees and how far the logits move.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Agreement {
    /// Share of positions whose top-1 token is the same in both models.
    pub top1: f64,
    /// Largest |Δlogit| over all positions and tokens.
    pub max_abs_dlogit: f32,
    /// Mean over positions of the largest |Δlogit| at that position.
    pub mean_max_abs_dlogit: f32,
    /// Largest |logit| of the reference, for scale.
    pub max_abs_logit: f32,
    /// Positions compared.
    pub positions: usize,
}

fn session_arena(model: &Model<'_>, context: usize, kv: KvDType) -> Vec<u8> {
    vec![0u8; runtime::plan(model.config(), context, kv).total_bytes]
}

/// Runs every sequence through both blobs (token by token, f32 KV caches) and
/// compares the next-token logits at every position. Sequences longer than
/// the models' context are cut to it.
pub fn logits_agreement(
    reference_blob: &[u8],
    blob: &[u8],
    sequences: &[Vec<u32>],
) -> Result<Agreement> {
    logits_agreement_from(reference_blob, blob, sequences, &[])
}

/// [`logits_agreement`] counting only positions `>= starts[i]` of sequence
/// `i` (all of them where `starts` is shorter). The earlier positions still
/// run, to fill the KV cache. With [`reasoning_start`] this scores only the
/// tokens a reasoning model is trained to predict, not the problem text,
/// whose next digit no model can know (its logits are flat, so its argmax
/// flips under the smallest perturbation and says nothing about quality).
pub fn logits_agreement_from(
    reference_blob: &[u8],
    blob: &[u8],
    sequences: &[Vec<u32>],
    starts: &[usize],
) -> Result<Agreement> {
    agreement(
        (reference_blob, KvDType::F32),
        (blob, KvDType::F32),
        sequences,
        starts,
    )
}

/// How far a KV cache of element type `kv` moves a blob's logits from the
/// same blob with an f32 cache: [`logits_agreement_from`] of the blob
/// against itself, the cache being the only difference.
pub fn kv_agreement_from(
    blob: &[u8],
    kv: KvDType,
    sequences: &[Vec<u32>],
    starts: &[usize],
) -> Result<Agreement> {
    agreement((blob, KvDType::F32), (blob, kv), sequences, starts)
}

/// The agreement of two blobs, each run with its own KV cache type.
fn agreement(
    (reference_blob, kv_a): (&[u8], KvDType),
    (blob, kv_b): (&[u8], KvDType),
    sequences: &[Vec<u32>],
    starts: &[usize],
) -> Result<Agreement> {
    let a = Model::from_blob(reference_blob).map_err(|e| anyhow::anyhow!("reference blob: {e}"))?;
    let b = Model::from_blob(blob).map_err(|e| anyhow::anyhow!("blob: {e}"))?;
    let (ca, cb) = (a.config(), b.config());
    if ca.vocab_size != cb.vocab_size || ca.dim != cb.dim || ca.n_layers != cb.n_layers {
        bail!(
            "the blobs hold different models (vocab {} vs {}, dim {} vs {}, layers {} vs {})",
            ca.vocab_size,
            cb.vocab_size,
            ca.dim,
            cb.dim,
            ca.n_layers,
            cb.n_layers
        );
    }
    let max_len = ca.max_seq_len.min(cb.max_seq_len) as usize;
    let context = sequences
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(1)
        .clamp(1, max_len);
    let (mut arena_a, mut arena_b) = (
        session_arena(&a, context, kv_a),
        session_arena(&b, context, kv_b),
    );
    let mut sa =
        Session::new(&a, &mut arena_a, context, kv_a).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut sb =
        Session::new(&b, &mut arena_b, context, kv_b).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (mut agree, mut positions) = (0usize, 0usize);
    let (mut max_d, mut sum_max_d, mut max_logit) = (0f32, 0f64, 0f32);
    for (si, seq) in sequences.iter().enumerate() {
        sa.reset();
        sb.reset();
        let start = starts.get(si).copied().unwrap_or(0);
        for (pos, &t) in seq.iter().take(context).enumerate() {
            let la = sa
                .forward(t)
                .with_context(|| format!("reference blob, sequence {si}"))?;
            let lb = sb
                .forward(t)
                .with_context(|| format!("blob, sequence {si}"))?;
            if pos < start {
                continue;
            }
            let mut d = 0f32;
            for (x, y) in la.iter().zip(lb) {
                d = d.max((x - y).abs());
                max_logit = max_logit.max(x.abs());
            }
            max_d = max_d.max(d);
            sum_max_d += d as f64;
            if runtime::sampling::argmax(la) == runtime::sampling::argmax(lb) {
                agree += 1;
            }
            positions += 1;
        }
    }
    Ok(Agreement {
        top1: if positions == 0 {
            1.0
        } else {
            agree as f64 / positions as f64
        },
        max_abs_dlogit: max_d,
        mean_max_abs_dlogit: if positions == 0 {
            0.0
        } else {
            (sum_max_d / positions as f64) as f32
        },
        max_abs_logit: max_logit,
        positions,
    })
}

fn push_text(tok: &Tokenizer<'_>, text: &str, out: &mut Vec<u32>) -> Result<()> {
    // Every byte is at least one token, and merges only shorten: `len + 1`
    // (the llama2.c dummy prefix) always suffices.
    let mut buf = vec![0u32; text.len() + 1];
    let n = tok
        .encode(text.as_bytes(), &mut buf)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    out.extend_from_slice(&buf[..n]);
    Ok(())
}

/// A full training sequence `<bos> problem <think> think </think> <answer>
/// answer </answer> <eos>` in the blob's tokenizer (each text encoded on its
/// own, as the trainer does).
pub fn encode_problem(tok: &Tokenizer<'_>, p: &tasks::Problem) -> Result<Vec<u32>> {
    encode_problem_with(tok, p, true)
}

/// [`encode_problem`], or the answer-only sequence `<bos> problem <answer>
/// answer </answer> <eos>` when `think` is false.
pub fn encode_problem_with(
    tok: &Tokenizer<'_>,
    p: &tasks::Problem,
    think: bool,
) -> Result<Vec<u32>> {
    if !tok.has_reasoning_tokens() {
        bail!("the blob's tokenizer has no think/answer tokens");
    }
    let mut out = vec![special::BOS];
    push_text(tok, &p.problem, &mut out)?;
    if think {
        out.push(special::THINK);
        push_text(tok, &p.think, &mut out)?;
        out.push(special::END_THINK);
    }
    out.push(special::ANSWER);
    push_text(tok, &p.answer, &mut out)?;
    out.push(special::END_ANSWER);
    out.push(special::EOS);
    Ok(out)
}

/// The first position whose logits predict a trained token of `seq`: the
/// last problem token, which predicts `<think>` (or `<answer>`).
pub fn reasoning_start(seq: &[u32]) -> usize {
    seq.iter()
        .position(|&t| t == special::THINK || t == special::ANSWER)
        .map_or(0, |i| i.saturating_sub(1))
}

/// [`encode_problem_with`] for each problem, with the tokenizer of `blob`.
pub fn encode_problems(
    blob: &[u8],
    problems: &[tasks::Problem],
    think: bool,
) -> Result<Vec<Vec<u32>>> {
    let model = Model::from_blob(blob).map_err(|e| anyhow::anyhow!("{e}"))?;
    problems
        .iter()
        .map(|p| encode_problem_with(model.tokenizer(), p, think))
        .collect()
}

/// Sequences for models without reasoning tokens (llama2.c): `n` greedy
/// continuations of `<bos>` (or of `<bos>` and a token) by the reference
/// blob, `len` tokens each, so the comparison runs on text the model finds
/// likely rather than on noise.
pub fn greedy_sequences(reference_blob: &[u8], n: usize, len: usize) -> Result<Vec<Vec<u32>>> {
    let model = Model::from_blob(reference_blob).map_err(|e| anyhow::anyhow!("{e}"))?;
    let c = model.config();
    let len = len.clamp(2, c.max_seq_len as usize);
    let mut arena = session_arena(&model, len, KvDType::F32);
    let mut s =
        Session::new(&model, &mut arena, len, KvDType::F32).map_err(|e| anyhow::anyhow!("{e}"))?;
    let bos = model.tokenizer().bos();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        s.reset();
        let mut seq = vec![bos];
        // Different starts: the i-th sequence is forced to begin with a
        // spread-out token id after bos.
        if i > 0 {
            seq.push((i as u64 * 2654435761 % c.vocab_size as u64) as u32);
        }
        let mut logits = s
            .prefill(&seq)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .to_vec();
        while seq.len() < len {
            let t = runtime::sampling::argmax(&logits);
            seq.push(t);
            if seq.len() == len {
                break;
            }
            logits = s.forward(t).map_err(|e| anyhow::anyhow!("{e}"))?.to_vec();
        }
        out.push(seq);
    }
    Ok(out)
}
