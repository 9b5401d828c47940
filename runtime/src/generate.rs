//! Generation with thinkling's reasoning format: the model writes
//! `<think> steps </think> <answer> answer </answer> <eos>`; the engine streams
//! every token with its text and span, collects the thought and the answer,
//! and closes the thought itself when the think budget runs out.

use crate::format::special;
use crate::sampling::{Sampler, SamplerConfig};
use crate::session::{Session, SessionError};
use crate::tokenizer::{pretokenize, Tokenizer, Utf8Stream};
use core::fmt;

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GenerateConfig {
    pub sampler: SamplerConfig,
    /// Tokens sampled (or forced) after the prompt, at most.
    pub max_new_tokens: usize,
    /// Thinking tokens (after `<think>`) before the engine feeds
    /// `</think><answer>` itself; `None` for no limit.
    pub think_budget: Option<usize>,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        Self {
            sampler: SamplerConfig::GREEDY,
            max_new_tokens: 256,
            think_budget: None,
        }
    }
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The model emitted `<eos>`.
    Eos,
    /// `max_new_tokens` were generated.
    TokenLimit,
    /// Every position of the session's context is used.
    ContextFull,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Eos => "end of sequence",
            StopReason::TokenLimit => "token limit",
            StopReason::ContextFull => "context full",
        })
    }
}

/// Which part of the sequence a token belongs to. The tags belong to their
/// span (`<think>` and `</think>` to `Think`, `<answer>` and `</answer>` to
/// `Answer`); `<eos>` and text outside both spans are `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Span {
    Prompt,
    Think,
    Answer,
    Other,
}

/// One generated token. `text` is its UTF-8 text (bytes of a character split
/// across tokens arrive with the token that completes it); special tokens
/// carry their name, e.g. `</think>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenEvent<'t> {
    pub id: u32,
    pub text: &'t str,
    pub span: Span,
}

/// The result of [`generate`]: think and answer texts (without tags) live in
/// the caller's `text` buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Generation<'t> {
    pub think: &'t str,
    pub answer: &'t str,
    pub stop: StopReason,
    pub prompt_tokens: usize,
    /// Tokens after the prompt, forced `</think><answer>` included.
    pub generated_tokens: usize,
    /// The engine closed the thought because the budget ran out.
    pub think_budget_hit: bool,
}

/// Why generation could not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GenerateError {
    /// `<bos> prompt` does not fit the session's context.
    PromptTooLong {
        tokens: usize,
        context: usize,
    },
    /// The model's tokenizer has no reasoning tokens (use [`generate_ids`]).
    NoReasoningTokens,
    Session(SessionError),
}

impl From<SessionError> for GenerateError {
    fn from(e: SessionError) -> Self {
        GenerateError::Session(e)
    }
}

impl fmt::Display for GenerateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GenerateError::PromptTooLong { tokens, context } => {
                write!(f, "prompt is {tokens} tokens, the context holds {context}")
            }
            GenerateError::NoReasoningTokens => {
                write!(
                    f,
                    "the model has no think/answer tokens: generate from token ids instead"
                )
            }
            GenerateError::Session(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for GenerateError {}

/// Appends to the caller's text buffer: the thought first, then the answer
/// right after it, truncating at a character boundary when full.
struct TextSink<'b> {
    buf: &'b mut [u8],
    think_end: usize,
    len: usize,
    answer_started: bool,
}

impl TextSink<'_> {
    fn push(&mut self, span: Span, s: &str) {
        match span {
            Span::Think if !self.answer_started => {}
            Span::Answer => {
                if !self.answer_started {
                    self.answer_started = true;
                    self.think_end = self.len;
                }
            }
            _ => return,
        }
        let room = self.buf.len().saturating_sub(self.len);
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        if let (Some(dst), Some(src)) = (
            self.buf.get_mut(self.len..self.len + take),
            s.as_bytes().get(..take),
        ) {
            dst.copy_from_slice(src);
            self.len += take;
        }
        if !self.answer_started {
            self.think_end = self.len;
        }
    }
}

/// Text of one token, gathered from the UTF-8 stream (long tokens are cut at
/// a character boundary for the event; the collected texts stay complete).
struct PieceBuf {
    bytes: [u8; 256],
    len: usize,
}

impl PieceBuf {
    fn push(&mut self, s: &str) {
        let room = self.bytes.len() - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        if let (Some(dst), Some(src)) = (
            self.bytes.get_mut(self.len..self.len + take),
            s.as_bytes().get(..take),
        ) {
            dst.copy_from_slice(src);
            self.len += take;
        }
    }
    fn as_str(&self) -> &str {
        self.bytes
            .get(..self.len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

/// Streams generated tokens: span bookkeeping, text collection, the token
/// limit, `<eos>`, a full context and the think budget. Shared by
/// [`generate`] and [`crate::speculative::generate_speculative`], which only
/// differ in how they get the next token.
pub(crate) struct Emitter<'t, 'k> {
    tokenizer: Tokenizer<'k>,
    sink: TextSink<'t>,
    stream: Utf8Stream,
    span: Span,
    think_tokens: usize,
    budget_hit: bool,
    forced: [u32; 2],
    n_forced: usize,
    generated: usize,
    prev: Option<u32>,
    max_new_tokens: usize,
    think_budget: Option<usize>,
    context: usize,
}

impl<'t, 'k> Emitter<'t, 'k> {
    /// `prev`: the last prompt token (for decoding the first generated one).
    pub(crate) fn new(
        tokenizer: Tokenizer<'k>,
        text: &'t mut [u8],
        cfg: &GenerateConfig,
        context: usize,
        prev: Option<u32>,
    ) -> Self {
        Self {
            tokenizer,
            sink: TextSink {
                buf: text,
                think_end: 0,
                len: 0,
                answer_started: false,
            },
            stream: Utf8Stream::new(),
            span: Span::Other,
            think_tokens: 0,
            budget_hit: false,
            forced: [0; 2],
            n_forced: 0,
            generated: 0,
            prev,
            max_new_tokens: cfg.max_new_tokens,
            think_budget: cfg.think_budget,
            context,
        }
    }

    /// Tokens emitted so far.
    pub(crate) fn generated(&self) -> usize {
        self.generated
    }

    /// Whether `max_new_tokens` are out.
    pub(crate) fn at_limit(&self) -> bool {
        self.generated >= self.max_new_tokens
    }

    /// Whether the engine owes forced tokens (`</think><answer>`).
    pub(crate) fn has_forced(&self) -> bool {
        self.n_forced > 0
    }

    /// The next forced token, if any.
    pub(crate) fn take_forced(&mut self) -> Option<u32> {
        if self.n_forced == 0 {
            return None;
        }
        let t = self
            .forced
            .get(self.forced.len() - self.n_forced)
            .copied()
            .unwrap_or(special::EOS);
        self.n_forced -= 1;
        Some(t)
    }

    /// Streams `id`, which goes to position `pos` of the sequence; returns
    /// why generation ends with it, if it does (`<eos>`, or `pos` beyond the
    /// context so it cannot be run). Otherwise the caller runs `id` next.
    pub(crate) fn emit(
        &mut self,
        id: u32,
        pos: usize,
        on_token: &mut dyn FnMut(&TokenEvent<'_>),
    ) -> Option<StopReason> {
        self.generated += 1;
        let Self {
            tokenizer,
            sink,
            stream,
            span,
            ..
        } = self;
        // Span bookkeeping: tags switch spans, and text streams per span.
        let new_span = match id {
            special::THINK | special::END_THINK => Span::Think,
            special::ANSWER | special::END_ANSWER => Span::Answer,
            special::EOS | special::BOS | special::PAD | special::UNK => Span::Other,
            _ => *span,
        };
        let mut piece = PieceBuf {
            bytes: [0; 256],
            len: 0,
        };
        if id < special::COUNT {
            // A tag ends the text of the span before it.
            let old = *span;
            stream.finish(&mut |s| {
                sink.push(old, s);
                piece.push(s);
            });
            if let Some(name) = tokenizer.special_name(id) {
                piece.push(name);
            }
        } else {
            tokenizer.decode(self.prev, id, &mut |bytes| {
                stream.push(bytes, &mut |s| {
                    sink.push(new_span, s);
                    piece.push(s);
                })
            });
        }
        self.span = match id {
            special::END_THINK | special::END_ANSWER => Span::Other,
            _ => new_span,
        };
        on_token(&TokenEvent {
            id,
            text: piece.as_str(),
            span: new_span,
        });
        self.prev = Some(id);
        if id == special::EOS {
            return Some(StopReason::Eos);
        }
        if id != special::THINK && self.span == Span::Think {
            self.think_tokens += 1;
        }
        if pos >= self.context {
            return Some(StopReason::ContextFull);
        }
        if let Some(budget) = self.think_budget {
            if self.span == Span::Think
                && self.think_tokens >= budget
                && self.n_forced == 0
                && id != special::END_THINK
            {
                self.forced = [special::END_THINK, special::ANSWER];
                self.n_forced = 2;
                self.budget_hit = true;
            }
        }
        None
    }

    /// Flushes the text stream and splits the collected text.
    pub(crate) fn finish(self, stop: StopReason, prompt_tokens: usize) -> Generation<'t> {
        let Self {
            mut sink,
            mut stream,
            span,
            generated,
            budget_hit,
            ..
        } = self;
        stream.finish(&mut |s| sink.push(span, s));
        let TextSink {
            buf,
            think_end,
            len,
            ..
        } = sink;
        let (think_bytes, answer_bytes) = buf.split_at(think_end.min(buf.len()));
        // The sink writes at most `buf.len()` bytes, the think part first.
        let answer_bytes = crate::bytes::prefix(answer_bytes, len.saturating_sub(think_end));
        Generation {
            think: core::str::from_utf8(think_bytes).unwrap_or(""),
            answer: core::str::from_utf8(answer_bytes).unwrap_or(""),
            stop,
            prompt_tokens,
            generated_tokens: generated,
            think_budget_hit: budget_hit,
        }
    }
}

/// Resets `session` and writes `<bos> prompt` into its token buffer; returns
/// the prompt's token count.
pub(crate) fn encode_prompt(
    session: &mut Session<'_, '_>,
    prompt: &str,
) -> Result<usize, GenerateError> {
    let tokenizer = *session.model().tokenizer();
    if !tokenizer.has_reasoning_tokens() {
        return Err(GenerateError::NoReasoningTokens);
    }
    let context = session.context();
    session.reset();
    let buf = session.token_buffer();
    let (first, rest) = buf.split_first_mut().ok_or(SessionError::ZeroContext)?;
    *first = special::BOS;
    match tokenizer.encode(prompt.as_bytes(), rest) {
        Ok(n) => Ok(n + 1),
        Err(_) => Err(GenerateError::PromptTooLong {
            tokens: 1 + count_tokens(&tokenizer, prompt),
            context,
        }),
    }
}

/// Generates a reasoning trace for `prompt`: resets the session, runs
/// `<bos> prompt`, then samples until `<eos>`, `max_new_tokens` or a full
/// context. `on_token` sees every generated token. The thought and answer
/// texts are written into `text` (truncated, never failing, when too small).
pub fn generate<'t>(
    session: &mut Session<'_, '_>,
    prompt: &str,
    cfg: &GenerateConfig,
    text: &'t mut [u8],
    on_token: &mut dyn FnMut(&TokenEvent<'_>),
) -> Result<Generation<'t>, GenerateError> {
    let prompt_tokens = encode_prompt(session, prompt)?;
    session.prefill_token_buffer(prompt_tokens)?;
    let tokenizer = *session.model().tokenizer();
    let mut sampler = Sampler::new(cfg.sampler);
    let prev = session.tokens().last().copied();
    let mut em = Emitter::new(tokenizer, text, cfg, session.context(), prev);
    let stop = loop {
        if em.at_limit() {
            break StopReason::TokenLimit;
        }
        let id = match em.take_forced() {
            Some(t) => t,
            None => session.sample(&mut sampler),
        };
        if let Some(stop) = em.emit(id, session.pos(), on_token) {
            break stop;
        }
        session.forward(id)?;
    };
    Ok(em.finish(stop, prompt_tokens))
}

/// Exact token count of a text too long for the context: BPE merges never
/// cross pre-tokenizer chunks, so chunks are counted one at a time.
fn count_tokens(tokenizer: &crate::tokenizer::Tokenizer<'_>, text: &str) -> usize {
    let mut scratch = [0u32; pretokenize::MAX_CHUNK];
    pretokenize::chunks(text.as_bytes())
        .map(|c| tokenizer.encode(c, &mut scratch).unwrap_or(c.len()))
        .sum()
}

/// Generation over raw token ids, for models without reasoning tokens
/// (llama2.c checkpoints): resets the session, runs `prompt_ids` as given
/// (include the bos id yourself), then samples until the tokenizer's eos id,
/// `max_new_tokens` or a full context. Returns the generated count and why it
/// stopped. The think budget does not apply.
pub fn generate_ids(
    session: &mut Session<'_, '_>,
    prompt_ids: &[u32],
    cfg: &GenerateConfig,
    on_token: &mut dyn FnMut(u32),
) -> Result<(usize, StopReason), GenerateError> {
    let context = session.context();
    if prompt_ids.len() > context {
        return Err(GenerateError::PromptTooLong {
            tokens: prompt_ids.len(),
            context,
        });
    }
    let eos = session.model().tokenizer().eos();
    session.reset();
    session.prefill(prompt_ids)?;
    let mut sampler = Sampler::new(cfg.sampler);
    let mut generated = 0;
    let stop = loop {
        if generated >= cfg.max_new_tokens {
            break StopReason::TokenLimit;
        }
        let id = session.sample(&mut sampler);
        generated += 1;
        on_token(id);
        if id == eos {
            break StopReason::Eos;
        }
        if session.pos() >= session.context() {
            break StopReason::ContextFull;
        }
        session.forward(id)?;
    };
    Ok((generated, stop))
}
