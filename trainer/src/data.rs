//! Training data: problems from the task generators and user files, encoded
//! into sequences with per-token loss weights, batched by similar length.
//!
//! Every batch is a pure function of `(seed, step)`: batches come from pools
//! of [`POOL_BATCHES`] batches, each pool drawn from its own ChaCha8 stream.
//! A resumed run therefore sees exactly the batches an uninterrupted run would,
//! without saving any data-loader state.

use crate::loss::SpanKind;
use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use rand::{seq::SliceRandom, Rng, SeedableRng};
use runtime::format::special;
use runtime::tokenizer::Tokenizer;
use tasks::{ChaCha8Rng, Mix, Problem, Split, TaskKind};

/// Batches per pool: sorting a pool by length keeps padding small while
/// batches stay well mixed across tasks.
pub const POOL_BATCHES: u64 = 16;

/// One encoded training sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct Sequence {
    /// `<bos> problem <think> … <eos>`.
    pub ids: Vec<u32>,
    /// For each position `i < len-1`: weight of predicting `ids[i+1]`.
    pub weights: Vec<f32>,
    pub spans: Vec<SpanKind>,
}

fn encode_text(tok: &Tokenizer, text: &str) -> Vec<u32> {
    let mut out = vec![0u32; text.len()];
    // Every byte is at most one token, so the buffer always suffices.
    let n = tok.encode(text.as_bytes(), &mut out).unwrap_or(0);
    out.truncate(n);
    out
}

/// Loss weights of the spans of a sequence (the answer span weighs 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpanWeights {
    /// The think span (α of the dual loss).
    pub think: f32,
    /// The problem text.
    pub prompt: f32,
}

impl SpanWeights {
    /// The dual loss alone: problem text unweighted.
    pub fn think(alpha: f32) -> Self {
        Self {
            think: alpha,
            prompt: 0.0,
        }
    }
}

/// Lays out a problem per `docs/contracts.md`. An empty `think` gives the
/// answer-only layout `<bos> problem <answer> answer </answer> <eos>`.
pub fn encode_problem(tok: &Tokenizer, p: &Problem, w: SpanWeights) -> Sequence {
    let mut ids = vec![special::BOS];
    let mut kinds = vec![SpanKind::Ignore];
    let mut push = |ids_: &[u32], k: SpanKind| {
        ids.extend_from_slice(ids_);
        kinds.extend(std::iter::repeat_n(k, ids_.len()));
    };
    push(&encode_text(tok, &p.problem), SpanKind::Prompt);
    if !p.think.is_empty() {
        push(&[special::THINK], SpanKind::Think);
        push(&encode_text(tok, &p.think), SpanKind::Think);
        push(&[special::END_THINK], SpanKind::Think);
    }
    push(&[special::ANSWER], SpanKind::Answer);
    push(&encode_text(tok, &p.answer), SpanKind::Answer);
    push(&[special::END_ANSWER, special::EOS], SpanKind::Answer);
    // Position i predicts token i+1, so it takes that token's span.
    let spans: Vec<SpanKind> = kinds[1..].to_vec();
    let weights = spans
        .iter()
        .map(|k| match k {
            SpanKind::Ignore => 0.0,
            SpanKind::Prompt => w.prompt,
            SpanKind::Think => w.think,
            SpanKind::Answer => 1.0,
        })
        .collect();
    Sequence {
        ids,
        weights,
        spans,
    }
}

/// A padded batch: inputs `(B, T)`, targets/weights `(B·T)`.
pub struct Batch {
    pub inputs: Tensor,
    pub targets: Tensor,
    pub weights: Tensor,
    pub spans: Vec<SpanKind>,
    /// Non-padding input tokens (for tokens/s).
    pub tokens: usize,
}

/// Pads to the longest sequence of the batch (pad id 0, weight 0).
pub fn make_batch(seqs: &[&Sequence], device: &Device) -> Result<Batch> {
    let t = seqs.iter().map(|s| s.ids.len() - 1).max().unwrap_or(1);
    let b = seqs.len();
    let mut inputs = vec![special::PAD; b * t];
    let mut targets = vec![special::PAD; b * t];
    let mut weights = vec![0f32; b * t];
    let mut spans = vec![SpanKind::Ignore; b * t];
    let mut tokens = 0;
    for (r, s) in seqs.iter().enumerate() {
        let n = s.ids.len() - 1;
        inputs[r * t..r * t + n].copy_from_slice(&s.ids[..n]);
        targets[r * t..r * t + n].copy_from_slice(&s.ids[1..]);
        weights[r * t..r * t + n].copy_from_slice(&s.weights);
        spans[r * t..r * t + n].copy_from_slice(&s.spans);
        tokens += n;
    }
    Ok(Batch {
        inputs: Tensor::from_vec(inputs, (b, t), device)?,
        targets: Tensor::from_vec(targets, b * t, device)?,
        weights: Tensor::from_vec(weights, b * t, device)?,
        spans,
        tokens,
    })
}

/// Where training problems come from.
pub struct ProblemSource {
    mix: Mix,
    user: Vec<Problem>,
    no_think: bool,
}

impl ProblemSource {
    /// `user` are the training-side user problems. When the mix does not
    /// name `user` but files were given, user data gets the built-in tasks'
    /// total weight (half the samples).
    pub fn new(mix: &Mix, user: Vec<Problem>, no_think: bool) -> Result<Self> {
        let mut mix = mix.clone();
        if mix.has_user() && user.is_empty() {
            bail!("the task mix names `user` but no --data file gave training problems");
        }
        if !user.is_empty() && !mix.has_user() {
            let total: f32 = mix.tasks.iter().map(|(_, w)| w).sum();
            mix.tasks.push((TaskKind::User, total));
        }
        Ok(Self {
            mix,
            user,
            no_think,
        })
    }

    pub fn sample(&self, rng: &mut ChaCha8Rng) -> Problem {
        let p = match self.mix.sample(rng) {
            TaskKind::User => self.user[rng.gen_range(0..self.user.len())].clone(),
            kind => tasks::generate(kind, rng, Split::Train),
        };
        if self.no_think {
            tasks::answer_only(&p)
        } else {
            p
        }
    }
}

/// Deterministic batches for any step.
pub struct Batcher<'t> {
    source: ProblemSource,
    tok: Tokenizer<'t>,
    seed: u64,
    batch_size: usize,
    context: usize,
    weights: SpanWeights,
    cached: Option<(u64, Vec<Vec<Sequence>>)>,
    /// Samples dropped for exceeding the context.
    pub skipped: u64,
}

impl<'t> Batcher<'t> {
    pub fn new(
        source: ProblemSource,
        tok: Tokenizer<'t>,
        seed: u64,
        batch_size: usize,
        context: usize,
        weights: SpanWeights,
    ) -> Self {
        Self {
            source,
            tok,
            seed,
            batch_size,
            context,
            weights,
            cached: None,
            skipped: 0,
        }
    }

    fn pool(&mut self, index: u64) -> Result<Vec<Vec<Sequence>>> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(index + 1);
        let want = self.batch_size * POOL_BATCHES as usize;
        let mut seqs = Vec::with_capacity(want);
        let mut misses = 0usize;
        while seqs.len() < want {
            let s = encode_problem(&self.tok, &self.source.sample(&mut rng), self.weights);
            if s.ids.len() <= self.context {
                seqs.push(s);
            } else {
                self.skipped += 1;
                misses += 1;
                if misses > 100 * want {
                    bail!(
                        "almost every sample is longer than the context of {} tokens",
                        self.context
                    );
                }
            }
        }
        // Stable sort: equal lengths keep their (random) draw order.
        seqs.sort_by_key(|s| s.ids.len());
        let mut batches: Vec<Vec<Sequence>> = Vec::with_capacity(POOL_BATCHES as usize);
        let mut it = seqs.into_iter();
        for _ in 0..POOL_BATCHES {
            batches.push(it.by_ref().take(self.batch_size).collect());
        }
        batches.shuffle(&mut rng);
        Ok(batches)
    }

    /// The sequences of training step `step` (counted from 0).
    pub fn sequences(&mut self, step: u64) -> Result<&[Sequence]> {
        let index = step / POOL_BATCHES;
        if self.cached.as_ref().map(|(i, _)| *i) != Some(index) {
            let pool = self.pool(index)?;
            self.cached = Some((index, pool));
        }
        let (_, pool) = self.cached.as_ref().expect("filled above");
        Ok(&pool[(step % POOL_BATCHES) as usize])
    }
}
