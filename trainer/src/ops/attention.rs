//! Causal grouped-query self-attention with RoPE in one CPU kernel, forward
//! and backward, over the packed projection `qkv (B·T, (H + 2·KV)·hd)` (the
//! output of one linear layer with `[wq; wk; wv]`). Its output is
//! `(B·T, H·hd)`, ready for `wo`.
//!
//! Work is split into (batch, kv head) blocks: each block ropes its K once,
//! serves its `H/KV` query heads, and owns every output element it writes, so
//! results do not depend on thread scheduling. Score rows are computed in
//! tiles that stop at the diagonal (the causal half is never multiplied).
//! The softmax probabilities are kept for the backward pass.

use super::kernels::{exp_inplace, filled, matmul, with_f32, Mat, SharedMut};
use super::{f32_slice, rope_composed, RopeTables};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Query rows per score tile.
const TILE: usize = 32;

#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl AttnShape {
    fn width(&self) -> usize {
        (self.heads + 2 * self.kv_heads) * self.head_dim
    }
    fn rep(&self) -> usize {
        self.heads / self.kv_heads
    }
}

struct Attention {
    s: AttnShape,
    rope: RopeTables,
    scale: f32,
    saved: Arc<Mutex<Saved>>,
}

/// What the forward pass keeps for the backward pass.
#[derive(Default)]
struct Saved {
    /// Softmax probabilities `(B, H, T, T)`.
    probs: Vec<f32>,
    /// Roped K and Q per (batch, kv head) block: K, then its `H/KV` query heads.
    roped_qk: Vec<f32>,
}

/// Rotates one head's row at position `pos` (`sign` −1: the inverse).
fn rope_row(rope: &RopeTables, src: &[f32], pos: usize, sign: f32, out: &mut [f32]) {
    let half = rope.half;
    let (cr, sr) = (
        &rope.cos[pos * half..][..half],
        &rope.sin[pos * half..][..half],
    );
    for i in 0..half {
        let (x0, x1) = (src[2 * i], src[2 * i + 1]);
        let (co, si) = (cr[i], sign * sr[i]);
        out[2 * i] = x0 * co - x1 * si;
        out[2 * i + 1] = x0 * si + x1 * co;
    }
}

/// Roped copy `(T, hd)` of one head: `src` starts at its first element,
/// rows `w` apart.
fn roped(rope: &RopeTables, src: &[f32], w: usize, hd: usize, out: &mut [f32]) {
    for (p, o) in out.chunks_mut(hd).enumerate() {
        rope_row(rope, &src[p * w..][..hd], p, 1.0, o);
    }
}

/// Tiles `[i0, i1)` of `0..t`.
fn tiles(t: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..t).step_by(TILE).map(move |i0| (i0, (i0 + TILE).min(t)))
}

fn check(s: &AttnShape, rope: &RopeTables, shape: &Shape) -> Result<()> {
    let (n, w) = shape.dims2()?;
    if n != s.batch * s.seq
        || w != s.width()
        || s.kv_heads == 0
        || s.heads % s.kv_heads != 0
        || s.head_dim != 2 * rope.half
        || s.seq > rope.max_t
    {
        candle_core::bail!("attention: input {shape:?} does not fit {s:?}");
    }
    Ok(())
}

impl CustomOp1 for Attention {
    fn name(&self) -> &'static str {
        "causal-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        check(&self.s, &self.rope, layout.shape())?;
        let qkv = f32_slice(storage, layout, self.name())?;
        let AttnShape {
            batch: b,
            seq: t,
            heads: h,
            kv_heads: kv,
            head_dim: hd,
        } = self.s;
        let (w, rep, dq) = (self.s.width(), self.s.rep(), h * hd);
        let (pblk, rblk) = (rep * t * t, (rep + 1) * t * hd);
        let mut probs = Vec::new();
        let mut roped_qk = Vec::new();
        let out = filled(b * t * dq, |out| {
            roped_qk = filled(b * kv * rblk, |rq| {
                probs = filled(b * kv * pblk, |pr| {
                    (0..b * kv).into_par_iter().for_each(|blk| {
                        // SAFETY: block `blk` owns these ranges of both buffers.
                        let pb = unsafe { pr.slice(blk * pblk, pblk) };
                        let qk = unsafe { rq.slice(blk * rblk, rblk) };
                        let (bi, g) = (blk / kv, blk % kv);
                        let row0 = bi * t;
                        let (kr, qs) = qk.split_at_mut(t * hd);
                        roped(&self.rope, &qkv[row0 * w + (h + g) * hd..], w, hd, kr);
                        let v = Mat::rows(qkv, row0 * w + (h + kv + g) * hd, w);
                        for (r, qr) in qs.chunks_mut(t * hd).enumerate() {
                            let head = g * rep + r;
                            roped(&self.rope, &qkv[row0 * w + head * hd..], w, hd, qr);
                            let p = &mut pb[r * t * t..(r + 1) * t * t];
                            for (i0, i1) in tiles(t) {
                                unsafe {
                                    matmul(
                                        i1 - i0,
                                        i1,
                                        hd,
                                        SharedMut(p.as_mut_ptr()).dst(i0 * t, t),
                                        Mat::rows(qr, i0 * hd, hd),
                                        Mat::rows_t(kr, 0, hd),
                                        false,
                                        1,
                                    );
                                }
                                for i in i0..i1 {
                                    softmax_row(&mut p[i * t..(i + 1) * t], i + 1, self.scale);
                                }
                                unsafe {
                                    matmul(
                                        i1 - i0,
                                        hd,
                                        i1,
                                        out.dst((row0 + i0) * dq + head * hd, dq),
                                        Mat::rows(p, i0 * t, t),
                                        v,
                                        false,
                                        1,
                                    );
                                }
                            }
                        }
                    });
                });
            });
        });
        *self.saved.lock().expect("attention state lock") = Saved { probs, roped_qk };
        Ok((CpuStorage::F32(out), Shape::from((b * t, dq))))
    }

    fn bwd(&self, qkv: &Tensor, _res: &Tensor, dout: &Tensor) -> Result<Option<Tensor>> {
        let AttnShape {
            batch: b,
            seq: t,
            heads: h,
            kv_heads: kv,
            head_dim: hd,
        } = self.s;
        let (w, rep, dqw) = (self.s.width(), self.s.rep(), h * hd);
        let saved = self.saved.lock().expect("attention state lock");
        let (probs, roped_qk) = (&saved.probs, &saved.roped_qk);
        if probs.len() != b * h * t * t || roped_qk.len() != b * (h + kv) * t * hd {
            candle_core::bail!("attention backward without its forward pass");
        }
        let rblk = (rep + 1) * t * hd;
        let scale = self.scale;
        let rope = &self.rope;
        let dqkv = with_f32(qkv, |qkv| {
            with_f32(dout, |dout| {
                filled(b * t * w, |dqkv| {
                    (0..b * kv).into_par_iter().for_each_init(
                        || {
                            (
                                vec![0f32; t * hd],
                                vec![0f32; t * hd],
                                vec![0f32; t * hd],
                                vec![0f32; t * t],
                            )
                        },
                        |(dk, dv, dq, ds), blk| {
                            let (bi, g) = (blk / kv, blk % kv);
                            let row0 = bi * t;
                            let (kr, qs) = roped_qk[blk * rblk..(blk + 1) * rblk].split_at(t * hd);
                            let vbase = row0 * w + (h + kv + g) * hd;
                            for r in 0..rep {
                                let head = g * rep + r;
                                let p = &probs[(blk * rep + r) * t * t..][..t * t];
                                let dobase = row0 * dqw + head * hd;
                                let qr = &qs[r * t * hd..(r + 1) * t * hd];
                                for (i0, i1) in tiles(t) {
                                    // dv[i0..i1] (+)= pᵀ[i0..i1, i0..t] · do[i0..t]
                                    unsafe {
                                        matmul(
                                            i1 - i0,
                                            hd,
                                            t - i0,
                                            SharedMut(dv.as_mut_ptr()).dst(i0 * hd, hd),
                                            Mat::rows_t(p, i0 * t + i0, t),
                                            Mat::rows(dout, dobase + i0 * dqw, dqw),
                                            r > 0,
                                            1,
                                        );
                                        // dp[i0..i1, 0..i1] = do[i0..i1] · vᵀ
                                        matmul(
                                            i1 - i0,
                                            i1,
                                            hd,
                                            SharedMut(ds.as_mut_ptr()).dst(i0 * t, t),
                                            Mat::rows(dout, dobase + i0 * dqw, dqw),
                                            Mat::rows_t(qkv, vbase, w),
                                            false,
                                            1,
                                        );
                                    }
                                    for i in i0..i1 {
                                        let (pr, dr) =
                                            (&p[i * t..][..=i], &mut ds[i * t..(i + 1) * t]);
                                        let dot: f32 =
                                            pr.iter().zip(dr.iter()).map(|(a, b)| a * b).sum();
                                        for (d, &pv) in dr[..=i].iter_mut().zip(pr) {
                                            *d = scale * pv * (*d - dot);
                                        }
                                        dr[i + 1..].fill(0.0);
                                    }
                                    // dq[i0..i1] = ds[i0..i1, 0..i1] · k[0..i1]
                                    unsafe {
                                        matmul(
                                            i1 - i0,
                                            hd,
                                            i1,
                                            SharedMut(dq.as_mut_ptr()).dst(i0 * hd, hd),
                                            Mat::rows(ds, i0 * t, t),
                                            Mat::rows(kr, 0, hd),
                                            false,
                                            1,
                                        );
                                    }
                                }
                                // dk[i0..i1] (+)= dsᵀ[i0..i1, i0..t] · q[i0..t], after
                                // every row of ds is known.
                                for (i0, i1) in tiles(t) {
                                    unsafe {
                                        matmul(
                                            i1 - i0,
                                            hd,
                                            t - i0,
                                            SharedMut(dk.as_mut_ptr()).dst(i0 * hd, hd),
                                            Mat::rows_t(ds, i0 * t + i0, t),
                                            Mat::rows(qr, i0 * hd, hd),
                                            r > 0,
                                            1,
                                        );
                                    }
                                }
                                for p in 0..t {
                                    let o = unsafe { dqkv.slice((row0 + p) * w + head * hd, hd) };
                                    rope_row(rope, &dq[p * hd..(p + 1) * hd], p, -1.0, o);
                                }
                            }
                            for p in 0..t {
                                let o = unsafe { dqkv.slice((row0 + p) * w + (h + g) * hd, hd) };
                                rope_row(rope, &dk[p * hd..(p + 1) * hd], p, -1.0, o);
                                let o =
                                    unsafe { dqkv.slice((row0 + p) * w + (h + kv + g) * hd, hd) };
                                o.copy_from_slice(&dv[p * hd..(p + 1) * hd]);
                            }
                        },
                    );
                })
            })
        })??;
        Ok(Some(Tensor::from_vec(dqkv, qkv.shape(), qkv.device())?))
    }
}

/// In place: `row[..n]` ← softmax(scale · row[..n]), `row[n..]` ← 0.
fn softmax_row(row: &mut [f32], n: usize, scale: f32) {
    let (keep, rest) = row.split_at_mut(n);
    let max = keep.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    keep.iter_mut().for_each(|v| *v = (*v - max) * scale);
    exp_inplace(keep);
    let inv = 1.0 / keep.iter().sum::<f32>();
    keep.iter_mut().for_each(|v| *v *= inv);
    rest.fill(0.0);
}

/// Causal attention over the packed `qkv (B·T, (H + 2·KV)·hd)`: query head
/// `j` reads kv head `j / (H/KV)`, positions `0..T` are roped, scores are
/// scaled by `1/sqrt(hd)`. Returns `(B·T, H·hd)`.
pub fn causal_attention(qkv: &Tensor, s: AttnShape, rope: &RopeTables) -> Result<Tensor> {
    if !super::fused(qkv.device()) {
        return causal_attention_composed(qkv, s, rope);
    }
    qkv.contiguous()?.apply_op1(Attention {
        s,
        rope: rope.clone(),
        scale: 1.0 / (s.head_dim as f32).sqrt(),
        saved: Arc::new(Mutex::new(Saved::default())),
    })
}

/// The same from differentiable candle ops (any device; the test reference).
pub fn causal_attention_composed(qkv: &Tensor, s: AttnShape, rope: &RopeTables) -> Result<Tensor> {
    let AttnShape {
        batch: b,
        seq: t,
        heads: h,
        kv_heads: kv,
        head_dim: hd,
    } = s;
    let rep = h / kv;
    let q = qkv.narrow(1, 0, h * hd)?.reshape((b, t, h, hd))?;
    let k = qkv.narrow(1, h * hd, kv * hd)?.reshape((b, t, kv, hd))?;
    let v = qkv
        .narrow(1, (h + kv) * hd, kv * hd)?
        .reshape((b, t, kv, hd))?;
    let q = rope_composed(&q.contiguous()?, rope)?.contiguous()?; // (B, H, T, hd)
    let k = rope_composed(&k.contiguous()?, rope)?.contiguous()?; // (B, KV, T, hd)
    let v = v.transpose(1, 2)?.contiguous()?;
    // Query head j uses kv head j / rep: stacking a kv head's `rep` query
    // heads along time lets one batched matmul serve them without
    // repeating K and V.
    let q = q.reshape((b, kv, rep * t, hd))?;
    let scores = q.matmul(&k.t()?)?.reshape((b, h, t, t))?;
    let probs = super::causal_softmax_composed(&scores, 1.0 / (hd as f32).sqrt())?;
    probs
        .reshape((b, kv, rep * t, t))?
        .matmul(&v)?
        .reshape((b, h, t, hd))?
        .transpose(1, 2)?
        .reshape((b * t, h * hd))
}
