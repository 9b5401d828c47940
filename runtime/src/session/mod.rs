//! A running model: the forward pass with a KV cache, in the caller's arena.
//!
//! Every buffer is carved from the arena by [`crate::arena`], the code
//! [`crate::memory::plan`] measures; nothing is allocated. Weights are read
//! in place through [`Model`]'s tensor views. The forward pass itself is in
//! `forward.rs`: one function per transformer block, run with one row to
//! decode and with `n` rows to check `n` tokens at once.

mod forward;
#[cfg(test)]
mod tests;

use crate::arena::{self, Buffers, Carver, Layout, ALIGN};
use crate::kv_cache::{KvCache, KvDType};
use crate::memory::{self, MemoryPlan};
use crate::model::Model;
use crate::sampling::Sampler;

pub use crate::error::SessionError;
use forward::Head;

/// A model running in an arena: the KV cache and all scratch buffers.
pub struct Session<'m, 'a> {
    model: &'m Model<'a>,
    plan: MemoryPlan,
    kv: KvDType,
    context: usize,
    /// Position the next token goes to.
    pos: usize,
    cache: KvCache<'m>,
    buf: Buffers<'m>,
}

impl<'m, 'a> Session<'m, 'a> {
    /// Lays out the arena (it needs [`memory::plan`]`(..).total_bytes`; any
    /// alignment is fine) and computes the RoPE tables once.
    pub fn new(
        model: &'m Model<'a>,
        arena: &'m mut [u8],
        context: usize,
        kv: KvDType,
    ) -> Result<Self, SessionError> {
        Self::with_batch(model, arena, context, kv, 0)
    }

    /// [`Self::new`] with room to run up to `batch` tokens in one
    /// [`Self::forward_batch`] pass (the arena needs
    /// [`memory::plan_batch`]`(.., batch).total_bytes`).
    pub fn with_batch(
        model: &'m Model<'a>,
        arena: &'m mut [u8],
        context: usize,
        kv: KvDType,
        batch: usize,
    ) -> Result<Self, SessionError> {
        Self::with_rows(model, arena, context, kv, batch, batch)
    }

    /// The draft session of speculative decoding with `k` draft tokens per
    /// step: [`Self::new`] plus `k` logits rows (no batched pass); the arena
    /// needs [`memory::plan_draft`]`(.., k).total_bytes`.
    pub fn draft(
        model: &'m Model<'a>,
        arena: &'m mut [u8],
        context: usize,
        kv: KvDType,
        k: usize,
    ) -> Result<Self, SessionError> {
        Self::with_rows(model, arena, context, kv, 0, k)
    }

    fn with_rows(
        model: &'m Model<'a>,
        arena: &'m mut [u8],
        context: usize,
        kv: KvDType,
        batch: usize,
        logit_rows: usize,
    ) -> Result<Self, SessionError> {
        let c = *model.config();
        if context == 0 {
            return Err(SessionError::ZeroContext);
        }
        if context > c.max_seq_len as usize {
            return Err(SessionError::ContextTooLong {
                context,
                max: c.max_seq_len as usize,
            });
        }
        let plan = memory::plan_rows(&c, context, kv, batch, logit_rows);
        let too_small = SessionError::ArenaTooSmall {
            needed: plan.total_bytes,
            available: arena.len(),
        };
        if arena.len() < plan.total_bytes {
            return Err(too_small);
        }
        let skip = arena.as_ptr().align_offset(ALIGN).min(ALIGN - 1);
        let mut carver = Carver {
            rest: arena.get_mut(skip..).ok_or(too_small)?,
        };
        let l = Layout::new(&c, context, kv);
        let cache = arena::carve_cache(&mut carver, &l, kv).ok_or(too_small)?;
        let buf = Buffers::carve(&mut carver, &l, batch, logit_rows).ok_or(too_small)?;
        fill_rope(
            buf.rope_cos,
            buf.rope_sin,
            c.head_dim() as usize,
            c.rope_theta,
        );
        Ok(Session {
            model,
            plan,
            kv,
            context,
            pos: 0,
            cache,
            buf,
        })
    }

    pub fn model(&self) -> &'m Model<'a> {
        self.model
    }

    /// Position the next token goes to (= tokens in the cache).
    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn context(&self) -> usize {
        self.context
    }

    pub fn kv_dtype(&self) -> KvDType {
        self.kv
    }

    /// The arena plan this session was laid out with.
    pub fn memory_plan(&self) -> MemoryPlan {
        self.plan
    }

    /// Logits of the last `forward`/`prefill` (probabilities after sampling
    /// with a temperature).
    pub fn logits(&self) -> &[f32] {
        self.buf.logits()
    }

    /// Tokens at positions `0..pos()`.
    pub fn tokens(&self) -> &[u32] {
        let tokens: &[u32] = self.buf.tokens;
        debug_assert!(self.pos <= tokens.len(), "pos never passes the context");
        tokens.split_at(self.pos.min(tokens.len())).0
    }

    /// Runs `token` at position `pos()` and returns the logits for the next
    /// token; `pos` advances by one.
    pub fn forward(&mut self, token: u32) -> Result<&[f32], SessionError> {
        self.check(core::slice::from_ref(&token))?;
        self.run(core::slice::from_ref(&token), Head::Last)?;
        Ok(self.buf.logits())
    }

    /// Runs `tokens` from `pos()` on; returns the logits after the last one.
    /// Identical to calling [`Self::forward`] on each (the LM head is just
    /// skipped for all but the last). Nothing runs if a token is invalid or
    /// the context would overflow.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<&[f32], SessionError> {
        self.check(tokens)?;
        let last = tokens.len() - 1;
        for (i, t) in tokens.iter().enumerate() {
            let head = if i == last { Head::Last } else { Head::None };
            self.run(core::slice::from_ref(t), head)?;
        }
        Ok(self.buf.logits())
    }

    /// Tokens one [`Self::forward_batch`] pass can take (0 for [`Self::new`]).
    pub fn batch_capacity(&self) -> usize {
        self.buf.batch.n
    }

    /// Logits rows of the batch region (the batch capacity, or `k` for
    /// [`Self::draft`]).
    pub fn logit_rows(&self) -> usize {
        self.buf.batch_logits.len() / self.buf.logits().len().max(1)
    }

    /// Runs `tokens` from `pos()` on in one pass and returns the logits after
    /// each of them: `tokens.len()` rows of `vocab`, in the session's batch
    /// region ([`memory::plan_batch`]). Bit-identical to calling
    /// [`Self::forward`] on each token in turn: every matrix is read once per
    /// block of rows for all tokens, with the same per-row kernels.
    /// [`Self::logits`] afterwards holds the last row. Nothing runs if a
    /// token is invalid, the context would overflow or the batch is too long.
    pub fn forward_batch(&mut self, tokens: &[u32]) -> Result<&mut [f32], SessionError> {
        if tokens.len() > self.buf.batch.n {
            return Err(SessionError::BatchTooLarge {
                tokens: tokens.len(),
                capacity: self.buf.batch.n,
            });
        }
        self.check(tokens)?;
        self.run(tokens, Head::All)?;
        let rows = tokens.len() * self.buf.logits().len();
        self.buf
            .batch_logits
            .get_mut(..rows)
            .ok_or(SessionError::Invariant {
                what: "batch logits shorter than the batch",
            })
    }

    /// The batch logits rows and the sampler's candidate buffer, for
    /// speculative decoding (the draft keeps its distributions there).
    pub(crate) fn batch_rows_and_candidates(&mut self) -> (&mut [f32], &mut [u32]) {
        (self.buf.batch_logits, self.buf.candidates)
    }

    /// Copies the current logits into batch row `row`.
    pub(crate) fn logits_to_batch_row(&mut self, row: usize) -> Result<(), SessionError> {
        let vocab = self.buf.logits().len();
        let r = self
            .buf
            .batch_logits
            .get_mut(row * vocab..(row + 1) * vocab)
            .ok_or(SessionError::Invariant {
                what: "logits row outside the batch region",
            })?;
        let logits = self.buf.att_logits.get(self.buf.att_len..);
        r.copy_from_slice(logits.unwrap_or_default());
        Ok(())
    }

    /// Forgets cache entries at positions `>= pos` (no-op past `pos()`).
    pub fn rewind(&mut self, pos: usize) {
        self.pos = self.pos.min(pos);
    }

    /// Empties the cache.
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// Samples the next token from the current logits with the session's
    /// candidate buffer.
    pub fn sample(&mut self, sampler: &mut Sampler) -> u32 {
        let logits = self.buf.att_logits.get_mut(self.buf.att_len..);
        sampler.sample(logits.unwrap_or_default(), self.buf.candidates)
    }

    /// The token buffer (context entries) for callers that encode in place.
    pub(crate) fn token_buffer(&mut self) -> &mut [u32] {
        self.buf.tokens
    }

    /// Runs the first `n` entries of the token buffer from position 0.
    pub(crate) fn prefill_token_buffer(&mut self, n: usize) -> Result<(), SessionError> {
        self.pos = 0;
        let ids = self.buf.tokens.get(..n).ok_or(SessionError::ContextFull {
            context: self.context,
        })?;
        let vocab = self.model.config().vocab_size;
        if let Some(bad) = ids.iter().find(|t| **t >= vocab) {
            return Err(SessionError::TokenOutOfRange { token: *bad, vocab });
        }
        if n == 0 {
            return Err(SessionError::EmptyInput);
        }
        // Each token is read from the buffer the pass writes it back into
        // (at the same position).
        for i in 0..n {
            let t = *self.buf.tokens.get(i).ok_or(SessionError::Invariant {
                what: "prompt longer than the token buffer",
            })?;
            let head = if i + 1 == n { Head::Last } else { Head::None };
            self.run(&[t], head)?;
        }
        Ok(())
    }

    /// Tokens in the vocabulary, at least one, and room for them in the
    /// context.
    fn check(&self, tokens: &[u32]) -> Result<(), SessionError> {
        if tokens.is_empty() {
            return Err(SessionError::EmptyInput);
        }
        let vocab = self.model.config().vocab_size;
        if let Some(bad) = tokens.iter().find(|t| **t >= vocab) {
            return Err(SessionError::TokenOutOfRange { token: *bad, vocab });
        }
        if self.pos + tokens.len() > self.context {
            return Err(SessionError::ContextFull {
                context: self.context,
            });
        }
        Ok(())
    }
}

/// RoPE: pair `i` of a head at position `p` turns by `p · theta^(-2i / hd)`.
/// Computed in f64 once per session (sin/cos are far too slow per token on a
/// microcontroller), rounded to f32; `[position][hd / 2]`.
fn fill_rope(cos: &mut [f32], sin: &mut [f32], hd: usize, theta: f32) {
    let half = hd / 2;
    if half == 0 {
        return;
    }
    for (p, (cr, sr)) in cos
        .chunks_exact_mut(half)
        .zip(sin.chunks_exact_mut(half))
        .enumerate()
    {
        for (i, (co, si)) in cr.iter_mut().zip(sr.iter_mut()).enumerate() {
            let freq = libm::pow(theta as f64, -((2 * i) as f64) / hd as f64);
            let angle = p as f64 * freq;
            *co = libm::cos(angle) as f32;
            *si = libm::sin(angle) as f32;
        }
    }
}
