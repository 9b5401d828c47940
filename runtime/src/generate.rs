//! Generation with thinkling's reasoning format: the model writes
//! `<think> steps </think> <answer> answer </answer> <eos>`; the engine streams
//! every token with its text and span, collects the thought and the answer,
//! and closes the thought itself when the think budget runs out.

use crate::format::special;
use crate::sampling::{Sampler, SamplerConfig};
use crate::session::{Session, SessionError};
use crate::tokenizer::{pretokenize, Utf8Stream};
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
    let model = session.model();
    let tokenizer = *model.tokenizer();
    if !tokenizer.has_reasoning_tokens() {
        return Err(GenerateError::NoReasoningTokens);
    }
    let context = session.context();
    session.reset();
    let buf = session.token_buffer();
    let (first, rest) = buf.split_first_mut().ok_or(SessionError::ZeroContext)?;
    *first = special::BOS;
    let prompt_tokens = match tokenizer.encode(prompt.as_bytes(), rest) {
        Ok(n) => n + 1,
        Err(_) => {
            return Err(GenerateError::PromptTooLong {
                tokens: 1 + count_tokens(&tokenizer, prompt),
                context,
            })
        }
    };
    session.prefill_token_buffer(prompt_tokens)?;

    let mut sampler = Sampler::new(cfg.sampler);
    let mut sink = TextSink {
        buf: text,
        think_end: 0,
        len: 0,
        answer_started: false,
    };
    let mut stream = Utf8Stream::new();
    let mut span = Span::Other;
    let mut think_tokens = 0usize;
    let mut budget_hit = false;
    let mut forced: [u32; 2] = [0; 2];
    let mut n_forced = 0usize;
    let mut generated = 0usize;
    let mut prev = session.tokens().last().copied();
    let stop = loop {
        if generated >= cfg.max_new_tokens {
            break StopReason::TokenLimit;
        }
        let id = if n_forced > 0 {
            let t = forced
                .get(forced.len() - n_forced)
                .copied()
                .unwrap_or(special::EOS);
            n_forced -= 1;
            t
        } else {
            session.sample(&mut sampler)
        };
        generated += 1;

        // Span bookkeeping: tags switch spans, and text streams per span.
        let new_span = match id {
            special::THINK | special::END_THINK => Span::Think,
            special::ANSWER | special::END_ANSWER => Span::Answer,
            special::EOS | special::BOS | special::PAD | special::UNK => Span::Other,
            _ => span,
        };
        let mut piece = PieceBuf {
            bytes: [0; 256],
            len: 0,
        };
        if id < special::COUNT {
            // A tag ends the text of the span before it.
            stream.finish(&mut |s| {
                sink.push(span, s);
                piece.push(s);
            });
            if let Some(name) = tokenizer.special_name(id) {
                piece.push(name);
            }
        } else {
            tokenizer.decode(prev, id, &mut |bytes| {
                stream.push(bytes, &mut |s| {
                    sink.push(new_span, s);
                    piece.push(s);
                })
            });
        }
        span = match id {
            special::END_THINK | special::END_ANSWER => Span::Other,
            _ => new_span,
        };
        on_token(&TokenEvent {
            id,
            text: piece.as_str(),
            span: new_span,
        });
        prev = Some(id);
        if id == special::EOS {
            break StopReason::Eos;
        }
        if id != special::THINK && span == Span::Think {
            think_tokens += 1;
        }
        if session.pos() >= context {
            break StopReason::ContextFull;
        }
        session.forward(id)?;
        if let Some(budget) = cfg.think_budget {
            if span == Span::Think
                && think_tokens >= budget
                && n_forced == 0
                && id != special::END_THINK
            {
                forced = [special::END_THINK, special::ANSWER];
                n_forced = 2;
                budget_hit = true;
            }
        }
    };
    stream.finish(&mut |s| sink.push(span, s));
    let TextSink {
        buf,
        think_end,
        len,
        ..
    } = sink;
    let (think_bytes, answer_bytes) = buf.split_at(think_end.min(buf.len()));
    let answer_bytes = answer_bytes
        .get(..len.saturating_sub(think_end))
        .unwrap_or(&[]);
    Ok(Generation {
        think: core::str::from_utf8(think_bytes).unwrap_or(""),
        answer: core::str::from_utf8(answer_bytes).unwrap_or(""),
        stop,
        prompt_tokens,
        generated_tokens: generated,
        think_budget_hit: budget_hit,
    })
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
