//! The forward pass: `n` tokens from the session's position on, through
//! every transformer block, to logits. One row decodes a token; `n` rows
//! check the `n` tokens of a speculative step in one pass, each matrix read
//! once per block of rows for all of them. Every row's arithmetic is the
//! same either way, so the two are bit-identical.

use super::{Session, SessionError};
use crate::arena::Rows;
use crate::format::{DType, ModelConfig};
use crate::kernels::activations::ActivationRows;
use crate::kernels::nn::{choose_experts, rope, Heads};
use crate::kernels::{self, TensorView};
use crate::kv_cache::KvCache;
use crate::model::{Ffn, FfnWeights, LayerWeights, Model};

/// Which logits a pass computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Head {
    /// None (a prompt token before the last).
    None,
    /// The last row's, into the session's logits.
    Last,
    /// Every row's, into the batch logits rows (the last also into the
    /// session's logits).
    All,
}

/// Weight bytes per block of rows in a multi-row matvec: the block stays in
/// cache (or a flash cache line buffer) while every row uses it.
const BLOCK_BYTES: usize = 16 * 1024;

/// Sizes of the model a pass needs.
#[derive(Clone, Copy)]
struct Shape {
    dim: usize,
    kv_dim: usize,
    hidden: usize,
    vocab: usize,
    /// Head size and its half (RoPE pairs).
    hd: usize,
    half: usize,
}

impl Shape {
    fn new(c: &ModelConfig) -> Self {
        let hd = c.head_dim() as usize;
        Shape {
            dim: c.dim as usize,
            kv_dim: c.kv_dim() as usize,
            hidden: c.hidden_dim as usize,
            vocab: c.vocab_size as usize,
            hd,
            half: hd / 2,
        }
    }
}

/// What every block of a pass reads or writes besides its rows.
struct Pass<'p, 'm> {
    c: ModelConfig,
    s: Shape,
    heads: Heads,
    context: usize,
    /// Position of the first row.
    base: usize,
    cache: &'p mut KvCache<'m>,
    rope_cos: &'p [f32],
    rope_sin: &'p [f32],
    att: &'p mut [f32],
    router: &'p mut [f32],
}

/// The logits after the attention scratch.
#[inline]
fn logits_of(att_logits: &mut [f32], att_len: usize) -> Result<&mut [f32], SessionError> {
    att_logits
        .get_mut(att_len..)
        .ok_or(SessionError::Invariant {
            what: "logits outside their buffer",
        })
}

/// A row buffer's first `n` rows of `width` (an error past its capacity).
#[inline]
fn first(b: &mut [f32], n: usize, width: usize) -> Result<&mut [f32], SessionError> {
    b.get_mut(..n.saturating_mul(width))
        .ok_or(SessionError::Invariant {
            what: "more rows than the buffers hold",
        })
}

impl Session<'_, '_> {
    /// Runs `tokens` (checked: in the vocabulary, room in the context, at
    /// most the batch capacity unless there is one) at positions
    /// `pos()..pos() + n` and computes the logits `head` asks for.
    pub(super) fn run(&mut self, tokens: &[u32], head: Head) -> Result<(), SessionError> {
        let model = self.model;
        let c = *model.config();
        let s = Shape::new(&c);
        let n = tokens.len();
        let base = self.pos;
        let buf = &mut self.buf;
        let rows = if n == 1 { &mut buf.one } else { &mut buf.batch };
        if n == 0 || n > rows.n {
            return Err(SessionError::Invariant {
                what: "a pass of more rows than the buffers hold",
            });
        }
        let mut pass = Pass {
            c,
            s,
            heads: Heads {
                hd: s.hd,
                kv_dim: s.kv_dim,
                group_heads: (c.n_heads / c.n_kv_heads.max(1)).max(1) as usize,
                scale: 1.0 / libm::sqrtf(s.hd as f32),
            },
            context: self.context,
            base,
            cache: &mut self.cache,
            rope_cos: buf.rope_cos,
            rope_sin: buf.rope_sin,
            att: buf.att_logits,
            router: buf.router,
        };

        // Embedding.
        let history = buf
            .tokens
            .get_mut(base..base + n)
            .ok_or(SessionError::Invariant {
                what: "positions past the token buffer",
            })?;
        history.copy_from_slice(tokens);
        for (tok, xt) in tokens.iter().zip(rows.x.chunks_exact_mut(s.dim)) {
            model.embedding().dequantize_row(*tok as usize, xt)?;
            if c.embedding_scale != 1.0 {
                for e in xt.iter_mut() {
                    *e *= c.embedding_scale;
                }
            }
        }

        for l in 0..c.n_layers as usize {
            let lw = model.layer(l).ok_or(SessionError::Invariant {
                what: "fewer layers than the config",
            })?;
            pass.block(l, lw, rows, n)?;
        }

        // LM head.
        let (norm, output) = (model.final_norm(), model.output());
        match head {
            Head::None => {}
            Head::Last => {
                let last = n - 1;
                let x = rows.x.get(last * s.dim..n * s.dim);
                let xb = rows.xb.get_mut(last * s.dim..n * s.dim);
                let (Some(x), Some(xb)) = (x, xb) else {
                    return Err(SessionError::Invariant {
                        what: "last row outside the buffers",
                    });
                };
                kernels::rmsnorm(xb, x, norm, c.norm_eps);
                rows.acts.quantize_for(xb, s.dim, 1, output)?;
                matmul(
                    logits_of(buf.att_logits, buf.att_len)?,
                    output,
                    xb,
                    &mut rows.acts,
                    1,
                )?;
            }
            Head::All => {
                let (x, xb) = (first(rows.x, n, s.dim)?, first(rows.xb, n, s.dim)?);
                for (xbt, xt) in xb.chunks_exact_mut(s.dim).zip(x.chunks_exact(s.dim)) {
                    kernels::rmsnorm(xbt, xt, norm, c.norm_eps);
                }
                let logits = first(buf.batch_logits, n, s.vocab)?;
                rows.acts.quantize_for(xb, s.dim, n, output)?;
                matmul(logits, output, xb, &mut rows.acts, n)?;
                let last = logits
                    .get((n - 1) * s.vocab..)
                    .ok_or(SessionError::Invariant {
                        what: "last logits row outside the batch region",
                    })?;
                logits_of(buf.att_logits, buf.att_len)?.copy_from_slice(last);
            }
        }
        self.pos = base + n;
        Ok(())
    }
}

impl Pass<'_, '_> {
    /// One transformer block over the first `n` rows: attention, then the
    /// feed-forward, each added to the residual stream `x`.
    fn block(
        &mut self,
        l: usize,
        lw: &LayerWeights<'_>,
        rows: &mut Rows<'_>,
        n: usize,
    ) -> Result<(), SessionError> {
        let Shape {
            dim,
            kv_dim,
            hidden,
            ..
        } = self.s;
        let eps = self.c.norm_eps;
        let acts = &mut rows.acts;
        let x = first(rows.x, n, dim)?;
        let xb = first(rows.xb, n, dim)?;
        let xb2 = first(rows.xb2, n, dim)?;
        let q = first(rows.q, n, dim)?;
        let k = first(rows.k, n, kv_dim)?;
        let v = first(rows.v, n, kv_dim)?;

        // Attention: q, k and v share one quantization of the normed input.
        for (xbt, xt) in xb.chunks_exact_mut(dim).zip(x.chunks_exact(dim)) {
            kernels::rmsnorm(xbt, xt, lw.attn_norm, eps);
        }
        acts.quantize_for(xb, dim, n, &lw.wq)?;
        matmul(q, &lw.wq, xb, acts, n)?;
        matmul(k, &lw.wk, xb, acts, n)?;
        matmul(v, &lw.wv, xb, acts, n)?;
        let layer_base = l * self.context * kv_dim;
        let qkv = q
            .chunks_exact_mut(dim)
            .zip(k.chunks_exact_mut(kv_dim))
            .zip(v.chunks_exact(kv_dim));
        for (t, ((qt, kt), vt)) in qkv.enumerate() {
            let pos = self.base + t;
            let (cos, sin) = self.angles(pos)?;
            rope(qt, cos, sin, self.s.hd);
            rope(kt, cos, sin, self.s.hd);
            self.cache.store(layer_base + pos * kv_dim, kt, vt)?;
        }
        for (t, (qt, ot)) in q
            .chunks_exact(dim)
            .zip(xb.chunks_exact_mut(dim))
            .enumerate()
        {
            let pos = self.base + t;
            if self.att.len() <= pos {
                return Err(SessionError::Invariant {
                    what: "position past the attention scores",
                });
            }
            let scores = &mut *self.att;
            let cached = layer_base..layer_base + (pos + 1) * kv_dim;
            self.cache.attend(&self.heads, qt, ot, scores, cached)?;
        }
        acts.quantize_for(xb, dim, n, &lw.wo)?;
        matmul(xb2, &lw.wo, xb, acts, n)?;
        kernels::add_assign(x, xb2);

        // Feed-forward.
        for (xbt, xt) in xb.chunks_exact_mut(dim).zip(x.chunks_exact(dim)) {
            kernels::rmsnorm(xbt, xt, lw.ffn_norm, eps);
        }
        let hb = first(rows.hb, n, hidden)?;
        let hb2 = first(rows.hb2, n, hidden)?;
        match lw.ffn {
            Ffn::Dense(ffn) => {
                swiglu_ffn(&ffn, xb, xb2, hb, hb2, acts, n, self.s)?;
                kernels::add_assign(x, xb2);
            }
            Ffn::Moe { router, experts } => {
                // Experts differ per token: one row at a time.
                let top_k = self.c.moe.map_or(1, |m| m.top_k) as usize;
                let rows = x
                    .chunks_exact_mut(dim)
                    .zip(xb.chunks_exact(dim).zip(xb2.chunks_exact_mut(dim)))
                    .zip(
                        hb.chunks_exact_mut(hidden)
                            .zip(hb2.chunks_exact_mut(hidden)),
                    );
                for ((xt, (xbt, xb2t)), (hbt, hb2t)) in rows {
                    acts.quantize_for(xbt, dim, 1, &router)?;
                    matmul(self.router, &router, xbt, acts, 1)?;
                    let mut chosen = [0usize; crate::blob::MAX_EXPERTS as usize];
                    let mut weight = [0f32; crate::blob::MAX_EXPERTS as usize];
                    let used = choose_experts(self.router, top_k, &mut chosen, &mut weight);
                    for (e, w) in chosen.iter().zip(weight.iter()).take(used) {
                        let ffn = Model::expert(experts, *e).ok_or(SessionError::Invariant {
                            what: "an expert outside the layer's records",
                        })?;
                        swiglu_ffn(&ffn, xbt, xb2t, hbt, hb2t, acts, 1, self.s)?;
                        for (a, b) in xt.iter_mut().zip(xb2t.iter()) {
                            *a += w * b;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The RoPE angles of position `pos`.
    fn angles(&self, pos: usize) -> Result<(&[f32], &[f32]), SessionError> {
        let at = pos * self.s.half..(pos + 1) * self.s.half;
        match (self.rope_cos.get(at.clone()), self.rope_sin.get(at)) {
            (Some(cos), Some(sin)) => Ok((cos, sin)),
            _ => Err(SessionError::Invariant {
                what: "position past the RoPE tables",
            }),
        }
    }
}

/// `xb2 = down(silu(gate · xb) ⊙ (up · xb))` for `n` rows; gate and up share
/// one quantization of `xb`.
#[allow(clippy::too_many_arguments)]
fn swiglu_ffn(
    ffn: &FfnWeights<'_>,
    xb: &[f32],
    xb2: &mut [f32],
    hb: &mut [f32],
    hb2: &mut [f32],
    acts: &mut ActivationRows<'_>,
    n: usize,
    s: Shape,
) -> Result<(), SessionError> {
    acts.quantize_for(xb, s.dim, n, &ffn.gate)?;
    matmul(hb, &ffn.gate, xb, acts, n)?;
    matmul(hb2, &ffn.up, xb, acts, n)?;
    for (g, u) in hb
        .chunks_exact_mut(s.hidden)
        .zip(hb2.chunks_exact(s.hidden))
    {
        kernels::swiglu(g, u);
    }
    acts.quantize_for(hb, s.hidden, n, &ffn.down)?;
    matmul(xb2, &ffn.down, hb, acts, n)
}

/// `out = w · x` for each of `n` rows (`w.rows()` outputs, `w.cols()`
/// inputs per row). A Q8/Q4 `w` reads `acts`, which hold `x` quantized for
/// it by the caller's [`ActivationRows::quantize_for`] (inputs shared by
/// several weights are quantized once); where `w` needs another group size
/// or layout than they hold, `x` is quantized again for it.
///
/// One row is one kernel call over the whole matrix. Several rows go block
/// by block of [`BLOCK_BYTES`] of weights, each block applied to every row
/// (with the multi-token kernel where the target has one) while it is in
/// cache; every output is bit for bit the one-row result.
#[inline]
fn matmul(
    out: &mut [f32],
    w: &TensorView<'_>,
    x: &[f32],
    acts: &mut ActivationRows<'_>,
    n: usize,
) -> Result<(), SessionError> {
    let quantized = matches!(w.dtype, DType::Q8 | DType::Q4);
    if quantized && !acts.holds(w) {
        acts.quantize_for(x, w.cols(), n, w)?;
    }
    if n != 1 {
        return matmul_rows(out, w, x, acts, n);
    }
    if quantized {
        kernels::matvec_quantized(out, w, acts.first())?;
    } else {
        kernels::matvec_float(out, w, x)?;
    }
    Ok(())
}

/// [`matmul`] of several rows, block by block.
fn matmul_rows(
    out: &mut [f32],
    w: &TensorView<'_>,
    x: &[f32],
    acts: &mut ActivationRows<'_>,
    n: usize,
) -> Result<(), SessionError> {
    let quantized = matches!(w.dtype, DType::Q8 | DType::Q4);
    let (rows, cols) = (w.rows(), w.cols());
    let block = (BLOCK_BYTES / w.row_bytes().max(1)).max(4) / 4 * 4;
    let outside = SessionError::Invariant {
        what: "matmul rows outside their buffers",
    };
    let mut r0 = 0;
    while r0 < rows {
        let r1 = (r0 + block).min(rows);
        let wb = w.row_range(r0, r1)?;
        if quantized {
            let o = out.get_mut(r0..).ok_or(outside)?;
            if kernels::matmul_quantized(o, rows, &wb, &acts.tokens(n)) {
                r0 = r1;
                continue;
            }
        }
        for t in 0..n {
            let o = out.get_mut(t * rows + r0..t * rows + r1).ok_or(outside)?;
            if quantized {
                kernels::matvec_quantized(o, &wb, &acts.row(t)?)?;
            } else {
                let xt = x.get(t * cols..(t + 1) * cols).ok_or(outside)?;
                kernels::matvec_float(o, &wb, xt)?;
            }
        }
        r0 = r1;
    }
    Ok(())
}
