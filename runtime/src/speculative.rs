//! Speculative decoding: a small draft model proposes `k` tokens one by one,
//! the target checks all of them in one batched pass
//! ([`Session::forward_batch`], weights read once for the `k + 1` tokens),
//! and both KV caches roll back ([`Session::rewind`]) past the first
//! rejected token.
//!
//! Greedy: the longest prefix of the proposal where the target's argmax
//! agrees is accepted, then the target's own next token is appended, so the
//! output is exactly the target's greedy output. With a temperature the
//! standard rule keeps the target's distribution: a proposed token `d` drawn
//! from the draft's `q` is accepted with probability `min(1, p(d) / q(d))`,
//! otherwise the token is drawn from `max(0, p − q)` normalized; after `k`
//! acceptances one more token comes from `p`. One seeded [`Rng`] drives all
//! draws, so a seed gives the same tokens on every target.

use crate::format::TokenizerData;
use crate::generate::{
    encode_prompt, Emitter, GenerateConfig, GenerateError, Generation, StopReason, TokenEvent,
};
use crate::sampling::{argmax, sample_probs, Rng};
use crate::session::{Session, SessionError};
use core::fmt;

/// Most draft tokens per step.
pub const MAX_K: usize = 16;

/// Counters of one speculative generation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpecStats {
    /// Draft tokens the target checked (proposals past the end of
    /// generation or a forced `</think>` are not counted).
    pub proposed: usize,
    /// Proposed tokens the target accepted.
    pub accepted: usize,
    /// Batched target passes (each yields at least one token).
    pub target_passes: usize,
    /// Single-token draft forward passes (catching up and proposing).
    pub draft_forwards: usize,
}

impl SpecStats {
    /// `accepted / proposed` (0 when nothing was proposed).
    pub fn acceptance_rate(&self) -> f64 {
        if self.proposed == 0 {
            0.0
        } else {
            self.accepted as f64 / self.proposed as f64
        }
    }
}

/// Why speculative generation could not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpeculativeError {
    /// Draft and target vocabularies differ in size.
    VocabMismatch {
        target: u32,
        draft: u32,
    },
    /// Draft and target tokenizers differ (`what`: kind, merges, pieces…).
    TokenizerMismatch {
        what: &'static str,
    },
    /// `k` is 0, above [`MAX_K`], the target's batch capacity is below
    /// `k + 1` or the draft has fewer than `k` logits rows (create them with
    /// [`Session::with_batch`] / [`crate::memory::plan_speculative`] and
    /// [`Session::draft`] / [`crate::memory::plan_draft`]).
    BadK {
        k: usize,
        max: usize,
    },
    /// The draft session's context is shorter than the target's.
    DraftContext {
        draft: usize,
        target: usize,
    },
    Generate(GenerateError),
}

impl From<GenerateError> for SpeculativeError {
    fn from(e: GenerateError) -> Self {
        SpeculativeError::Generate(e)
    }
}

impl From<SessionError> for SpeculativeError {
    fn from(e: SessionError) -> Self {
        SpeculativeError::Generate(GenerateError::Session(e))
    }
}

impl fmt::Display for SpeculativeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpeculativeError::VocabMismatch { target, draft } => write!(
                f,
                "draft and target tokenizers differ: vocabulary of {draft} tokens vs {target}"
            ),
            SpeculativeError::TokenizerMismatch { what } => {
                write!(f, "draft and target tokenizers differ: {what}")
            }
            SpeculativeError::BadK { k, max } => write!(
                f,
                "k = {k} draft tokens per step is not possible here: 1 to {max} (sessions need a batch capacity of k + 1)"
            ),
            SpeculativeError::DraftContext { draft, target } => write!(
                f,
                "the draft's context of {draft} positions is shorter than the target's {target}"
            ),
            SpeculativeError::Generate(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SpeculativeError {}

/// Checks that two tokenizers map text to the same ids: same vocabulary
/// size, same kind, same tables byte for byte.
pub fn check_tokenizers(
    target: &crate::model::Model<'_>,
    draft: &crate::model::Model<'_>,
) -> Result<(), SpeculativeError> {
    let (tv, dv) = (target.config().vocab_size, draft.config().vocab_size);
    if tv != dv {
        return Err(SpeculativeError::VocabMismatch {
            target: tv,
            draft: dv,
        });
    }
    let what = match (target.tokenizer().data(), draft.tokenizer().data()) {
        (
            TokenizerData::ByteBpe {
                merges: m1,
                merge_index: i1,
            },
            TokenizerData::ByteBpe {
                merges: m2,
                merge_index: i2,
            },
        ) => {
            if m1 != m2 {
                Some("BPE merges")
            } else if i1 != i2 {
                Some("BPE merge index")
            } else {
                None
            }
        }
        (TokenizerData::None, TokenizerData::None) => None,
        (a @ TokenizerData::Pieces { .. }, b @ TokenizerData::Pieces { .. }) => {
            (a != b).then_some("piece vocabularies")
        }
        _ => Some("tokenizer kinds (BPE, pieces, none)"),
    };
    match what {
        Some(what) => Err(SpeculativeError::TokenizerMismatch { what }),
        None => Ok(()),
    }
}

/// [`crate::generate::generate`] with a draft model: same prompt handling,
/// think budget, stop reasons, spans, streaming and text buffer, and (greedy)
/// the same tokens as the target alone. Each step the draft proposes up to
/// `k` tokens and the target checks them in one [`Session::forward_batch`].
/// The target needs a batch capacity of `k + 1` ([`Session::with_batch`],
/// [`crate::memory::plan_speculative`]), the draft `k` logits rows
/// ([`Session::draft`], [`crate::memory::plan_draft`]); the draft's context
/// must be at least the target's.
pub fn generate_speculative<'t>(
    target: &mut Session<'_, '_>,
    draft: &mut Session<'_, '_>,
    prompt: &str,
    cfg: &GenerateConfig,
    k: usize,
    text: &'t mut [u8],
    on_token: &mut dyn FnMut(&TokenEvent<'_>),
) -> Result<(Generation<'t>, SpecStats), SpeculativeError> {
    check_tokenizers(target.model(), draft.model())?;
    let max = MAX_K
        .min(target.batch_capacity().saturating_sub(1))
        .min(draft.logit_rows());
    if k == 0 || k > max {
        return Err(SpeculativeError::BadK { k, max });
    }
    if draft.context() < target.context() {
        return Err(SpeculativeError::DraftContext {
            draft: draft.context(),
            target: target.context(),
        });
    }
    let prompt_tokens = encode_prompt(target, prompt)?;
    // The last prompt token stays pending: it opens the first batch.
    if prompt_tokens > 1 {
        target.prefill_token_buffer(prompt_tokens - 1)?;
    }
    let last_prompt = target
        .token_buffer()
        .get(prompt_tokens - 1)
        .copied()
        .unwrap_or(0);
    draft.reset();

    let tokenizer = *target.model().tokenizer();
    let context = target.context();
    let greedy = cfg.sampler.is_greedy();
    let mut rng = Rng::new(cfg.sampler.seed);
    let mut stats = SpecStats::default();
    let mut em = Emitter::new(tokenizer, text, cfg, context, Some(last_prompt));
    // Committed tokens the target has not run yet (the last emitted one,
    // plus forced tags).
    let mut pending = [0u32; 4];
    pending[0] = last_prompt;
    let mut n_pending = 1usize;
    let mut batch = [0u32; MAX_K + 4];

    let stop = 'outer: loop {
        if em.at_limit() {
            break StopReason::TokenLimit;
        }
        if let Some(t) = em.take_forced() {
            let pos = target.pos() + n_pending;
            if let Some(stop) = em.emit(t, pos, on_token) {
                break stop;
            }
            if let Some(slot) = pending.get_mut(n_pending) {
                *slot = t;
                n_pending += 1;
            }
            continue;
        }
        if n_pending > 1 {
            // Forced tags: run all but the last pending token on their own.
            let (Some(head), Some(last)) = (
                pending.get(..n_pending - 1),
                pending.get(n_pending - 1).copied(),
            ) else {
                break StopReason::Eos;
            };
            target.prefill(head)?;
            stats.target_passes += 1;
            pending[0] = last;
            n_pending = 1;
        }
        if n_pending == 0 {
            // Unreachable: a step always leaves its last token pending or
            // forced tags to come.
            break StopReason::Eos;
        }
        let base = target.pos();
        let fed = base + n_pending; // positions the target holds after the pending run
        let remaining = cfg.max_new_tokens.saturating_sub(em.generated());
        let kk = k
            .min(context.saturating_sub(fed))
            .min(remaining.saturating_sub(1));
        let pend = pending.get(..n_pending).ok_or(SessionError::Invariant {
            what: "more pending tokens than the pending buffer holds",
        })?;

        // Draft: catch up on committed tokens, then propose `kk` tokens.
        if kk > 0 {
            let dpos = draft.pos().min(base);
            draft.rewind(dpos);
            if let Some(missing) = target.tokens().get(dpos..base) {
                if !missing.is_empty() {
                    draft.prefill(missing)?;
                    stats.draft_forwards += missing.len();
                }
            }
            draft.prefill(pend)?;
            stats.draft_forwards += pend.len();
        }
        if let Some(dst) = batch.get_mut(..n_pending) {
            dst.copy_from_slice(pend);
        }
        for i in 0..kk {
            let d = if greedy {
                argmax(draft.logits())
            } else {
                propose(draft, i, cfg, &mut rng)?
            };
            if let Some(slot) = batch.get_mut(n_pending + i) {
                *slot = d;
            }
            if i + 1 < kk {
                draft.forward(d)?;
                stats.draft_forwards += 1;
            }
        }

        // Target: one pass over the pending tokens and the proposal.
        let run = batch.get(..n_pending + kk).ok_or(SessionError::Invariant {
            what: "a speculative batch longer than its buffer",
        })?;
        let vocab = target.logits().len();
        target.forward_batch(run)?;
        stats.target_passes += 1;
        let (rows, cand) = target.batch_rows_and_candidates();
        let (drows, _) = draft.batch_rows_and_candidates();
        let mut accepted = 0usize;
        let mut next: Option<u32> = None;
        for i in 0..=kk {
            let row_at = (n_pending - 1 + i) * vocab;
            let Some(p) = rows.get_mut(row_at..row_at + vocab) else {
                break;
            };
            let proposal = if i < kk {
                stats.proposed += 1;
                batch.get(n_pending + i).copied()
            } else {
                None
            };
            let verdict = if greedy {
                let t = argmax(p);
                match proposal {
                    Some(d) if d == t => Verdict::Accept(d),
                    _ => Verdict::Emit(t),
                }
            } else {
                cfg.sampler.distribution(p, cand);
                match (proposal, drows.get(i * vocab..(i + 1) * vocab)) {
                    (Some(d), Some(q)) => {
                        let pd = p.get(d as usize).copied().unwrap_or(0.0);
                        let qd = q.get(d as usize).copied().unwrap_or(0.0);
                        let u = rng.next_f32();
                        if u * qd < pd {
                            Verdict::Accept(d)
                        } else {
                            let mut mass = 0f32;
                            for (pv, qv) in p.iter_mut().zip(q) {
                                *pv = (*pv - qv).max(0.0);
                                mass += *pv;
                            }
                            let r = rng.next_f32();
                            if mass > 0.0 {
                                Verdict::Emit(sample_probs(p, r))
                            } else {
                                Verdict::Emit(d)
                            }
                        }
                    }
                    _ => Verdict::Emit(sample_probs(p, rng.next_f32())),
                }
            };
            match verdict {
                Verdict::Accept(d) => {
                    // `d` runs at position fed + i: the pass already did.
                    if em.at_limit() {
                        target.rewind(fed + accepted);
                        break 'outer StopReason::TokenLimit;
                    }
                    stats.accepted += 1;
                    if let Some(stop) = em.emit(d, fed + i, on_token) {
                        target.rewind(fed + accepted);
                        break 'outer stop;
                    }
                    accepted += 1;
                    if em.has_forced() {
                        break;
                    }
                }
                Verdict::Emit(t) => {
                    next = Some(t);
                    break;
                }
            }
        }
        target.rewind(fed + accepted);
        n_pending = 0;
        if let Some(t) = next {
            if em.at_limit() {
                break StopReason::TokenLimit;
            }
            if let Some(stop) = em.emit(t, fed + accepted, on_token) {
                break stop;
            }
            pending[0] = t;
            n_pending = 1;
        }
        // The draft keeps what matches the committed tokens.
        let keep = draft.pos().min(target.pos());
        draft.rewind(keep);
    };
    let keep = draft.pos().min(target.pos());
    draft.rewind(keep);
    Ok((em.finish(stop, prompt_tokens), stats))
}

enum Verdict {
    /// The proposed token stands.
    Accept(u32),
    /// The target's own token (a correction, or the one after a full accept).
    Emit(u32),
}

/// Samples proposal `i` from the draft's current logits: their filtered
/// distribution is kept in the draft's batch row `i` for the acceptance test.
fn propose(
    draft: &mut Session<'_, '_>,
    i: usize,
    cfg: &GenerateConfig,
    rng: &mut Rng,
) -> Result<u32, SessionError> {
    let vocab = draft.logits().len();
    draft.logits_to_batch_row(i)?;
    let (rows, cand) = draft.batch_rows_and_candidates();
    let q = rows
        .get_mut(i * vocab..(i + 1) * vocab)
        .ok_or(SessionError::Invariant {
            what: "a draft row outside the logits rows",
        })?;
    cfg.sampler.distribution(q, cand);
    Ok(sample_probs(q, rng.next_f32()))
}
