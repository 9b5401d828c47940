//! Choosing the next token: greedy, temperature, top-k and top-p (nucleus)
//! with a small seeded RNG, reproducible on every target (libm `expf`,
//! sequential sums, a total order on candidates).

/// How to pick tokens. `temperature == 0` is greedy (argmax, lowest id on
/// ties); `top_k == 0` and `top_p >= 1` disable those filters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerConfig {
    pub temperature: f32,
    pub top_k: u32,
    pub top_p: f32,
    pub seed: u64,
}

impl SamplerConfig {
    /// Argmax decoding.
    pub const GREEDY: SamplerConfig = SamplerConfig {
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        seed: 0,
    };
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self::GREEDY
    }
}

/// SplitMix64: tiny state, good statistics, identical on every target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 24 random bits (every value exact in f32).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }
}

/// A sampler: its config and RNG state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampler {
    config: SamplerConfig,
    rng: Rng,
}

/// Index of the largest value (the lowest index on ties; NaN never wins).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, v) in values.iter().enumerate() {
        if *v > best_v {
            best = i;
            best_v = *v;
        }
    }
    best as u32
}

impl Sampler {
    pub fn new(config: SamplerConfig) -> Self {
        Self {
            config,
            rng: Rng::new(config.seed),
        }
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// Picks a token from `logits` (overwritten with probabilities unless
    /// greedy). `candidates` is the top-k/top-p sort buffer: one `u32` per
    /// logit (from the session arena); a shorter buffer restricts top-k/top-p
    /// to plain sampling.
    pub fn sample(&mut self, logits: &mut [f32], candidates: &mut [u32]) -> u32 {
        let c = self.config;
        let n = logits.len();
        if n == 0 {
            return 0;
        }
        if c.temperature.is_nan() || c.temperature <= 0.0 || c.top_k == 1 {
            return argmax(logits);
        }
        let inv_t = 1.0 / c.temperature;
        for v in logits.iter_mut() {
            *v *= inv_t;
        }
        crate::kernels::softmax(logits);
        let probs: &[f32] = logits;
        let top_k = c.top_k as usize;
        let use_k = top_k > 0 && top_k < n;
        let use_p = c.top_p > 0.0 && c.top_p < 1.0;
        let r = self.rng.next_f32();
        // Every token in id order: without a cut-off (over their sum), or
        // with no room to sort the candidates (over 1).
        let cand = match candidates.get_mut(..n) {
            Some(cand) if use_k || use_p => cand,
            cand => {
                let total = match cand {
                    Some(_) => probs.iter().fold(0f32, |a, p| a + p),
                    None => 1.0,
                };
                let all = probs.iter().copied().enumerate();
                return sample_cdf(all.map(|(i, p)| (i as u32, p)), total, r);
            }
        };
        // Candidates in decreasing probability, ties by id: a total order, so
        // the result never depends on the sort algorithm.
        let prob = |i: u32| probs.get(i as usize).copied().unwrap_or(0.0);
        let by_prob = |a: &u32, b: &u32| prob(*b).total_cmp(&prob(*a)).then(a.cmp(b));
        let mut m = 0usize;
        if use_k {
            for (i, s) in cand.iter_mut().enumerate() {
                *s = i as u32;
            }
            cand.select_nth_unstable_by(top_k - 1, by_prob);
            m = top_k;
        } else {
            // Only tokens with p >= (1 - top_p) / (n - 1) can be in the
            // nucleus (the rest together hold less than 1 - top_p), so sort
            // just those.
            let cutoff = (1.0 - c.top_p) / (n - 1).max(1) as f32;
            for (i, p) in probs.iter().enumerate() {
                if *p >= cutoff {
                    if let Some(s) = cand.get_mut(m) {
                        *s = i as u32;
                        m += 1;
                    }
                }
            }
            if m == 0 {
                for (i, s) in cand.iter_mut().enumerate() {
                    *s = i as u32;
                }
                m = n;
            }
        }
        let chosen = crate::bytes::prefix_mut(cand, m);
        chosen.sort_unstable_by(by_prob);
        let mut mass = chosen.iter().fold(0f32, |a, i| a + prob(*i));
        let mut keep = chosen.len();
        if use_p {
            keep = nucleus_len(chosen, prob, c.top_p, mass);
            mass = chosen.iter().take(keep).fold(0f32, |a, i| a + prob(*i));
        }
        sample_cdf(chosen.iter().take(keep).map(|i| (*i, prob(*i))), mass, r)
    }
}

impl SamplerConfig {
    /// Whether this config picks the argmax (temperature 0 or NaN, top-k 1).
    pub fn is_greedy(&self) -> bool {
        self.temperature.is_nan() || self.temperature <= 0.0 || self.top_k == 1
    }

    /// Turns `logits` into the distribution [`Sampler::sample`] draws from:
    /// temperature, softmax, then zero outside the top-k / top-p set and the
    /// rest renormalized (sums to 1 up to rounding). `candidates` as for
    /// [`Sampler::sample`]; greedy configs give a one-hot argmax.
    pub fn distribution(&self, logits: &mut [f32], candidates: &mut [u32]) {
        let n = logits.len();
        if n == 0 {
            return;
        }
        if self.is_greedy() {
            let best = argmax(logits) as usize;
            for (i, v) in logits.iter_mut().enumerate() {
                *v = if i == best { 1.0 } else { 0.0 };
            }
            return;
        }
        let inv_t = 1.0 / self.temperature;
        for v in logits.iter_mut() {
            *v *= inv_t;
        }
        crate::kernels::softmax(logits);
        let top_k = self.top_k as usize;
        let use_k = top_k > 0 && top_k < n;
        let use_p = self.top_p > 0.0 && self.top_p < 1.0;
        let Some(cand) = candidates.get_mut(..n) else {
            return;
        };
        if use_k || use_p {
            // The kept set is a prefix of the total order (probability
            // descending, id ascending); find its last member.
            let probs: &[f32] = logits;
            let prob = |i: u32| probs.get(i as usize).copied().unwrap_or(0.0);
            let by_prob = |a: &u32, b: &u32| prob(*b).total_cmp(&prob(*a)).then(a.cmp(b));
            for (i, s) in cand.iter_mut().enumerate() {
                *s = i as u32;
            }
            let m = if use_k {
                cand.select_nth_unstable_by(top_k - 1, by_prob);
                top_k
            } else {
                n
            };
            let chosen = crate::bytes::prefix_mut(cand, m);
            chosen.sort_unstable_by(by_prob);
            let mut keep = chosen.len();
            if use_p {
                let mass = chosen.iter().fold(0f32, |a, i| a + prob(*i));
                keep = nucleus_len(chosen, prob, self.top_p, mass);
            }
            let last = chosen.get(keep.saturating_sub(1)).copied().unwrap_or(0);
            let (pl, il) = (prob(last), last);
            for (i, v) in logits.iter_mut().enumerate() {
                let kept = *v > pl || (*v == pl && i as u32 <= il);
                if !kept {
                    *v = 0.0;
                }
            }
        }
        let total = logits.iter().fold(0f32, |a, p| a + p);
        if total > 0.0 {
            let inv = 1.0 / total;
            for v in logits.iter_mut() {
                *v *= inv;
            }
        }
    }
}

/// How many of `sorted` (probability descending) form the top-p nucleus:
/// the shortest prefix whose cumulative probability reaches `top_p · mass`
/// (all of them when none does).
fn nucleus_len(sorted: &[u32], prob: impl Fn(u32) -> f32, top_p: f32, mass: f32) -> usize {
    let target = top_p * mass;
    let mut cum = 0f32;
    for (j, i) in sorted.iter().enumerate() {
        cum += prob(*i);
        if cum >= target {
            return j + 1;
        }
    }
    sorted.len()
}

/// Draws from unnormalized probabilities `probs` with a uniform `r` in
/// `[0, 1)`: the first id whose cumulative mass passes `r · Σ probs`.
pub fn sample_probs(probs: &[f32], r: f32) -> u32 {
    let total = probs.iter().fold(0f32, |a, p| a + p);
    sample_cdf(
        probs
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, p)| *p > 0.0)
            .map(|(i, p)| (i as u32, p)),
        total,
        r,
    )
}

/// Walks `(id, p)` until the cumulative mass passes `r · total`; the last id
/// if rounding leaves `r · total` beyond the sum.
fn sample_cdf(items: impl Iterator<Item = (u32, f32)>, total: f32, r: f32) -> u32 {
    let target = r * total;
    let mut cum = 0f32;
    let mut last = 0;
    for (i, p) in items {
        cum += p;
        last = i;
        if target < cum {
            return i;
        }
    }
    last
}
