//! Per-token negative log-likelihood `lse(logits) − logits[target]` in one
//! pass per row; the backward pass writes `g · (softmax − onehot)` in one
//! more, from the row's log-sum-exp kept by the forward pass.

use super::f32_slice;
use super::kernels::{exp_inplace, with_f32};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Rows per parallel work item.
const ROWS: usize = 8;

struct TokenNll {
    /// Log-sum-exp of each row from the last forward pass.
    lse: Arc<Mutex<Vec<f32>>>,
    /// The targets of the last forward pass.
    targets: Arc<Mutex<Vec<u32>>>,
}

fn targets_of<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [u32]> {
    let CpuStorage::U32(data) = s else {
        candle_core::bail!("token nll: targets must be u32");
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("token nll: targets must be contiguous"),
    }
}

impl CustomOp2 for TokenNll {
    fn name(&self) -> &'static str {
        "token-nll"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, v) = l1.shape().dims2()?;
        let x = f32_slice(s1, l1, self.name())?;
        let t = targets_of(s2, l2)?;
        if t.len() != n || t.iter().any(|&t| t as usize >= v) {
            candle_core::bail!("token nll: {} targets for {n} rows of {v} logits", t.len());
        }
        let mut lse = vec![0f32; n];
        let mut nll = vec![0f32; n];
        if v > 0 {
            lse.par_chunks_mut(ROWS)
                .zip(nll.par_chunks_mut(ROWS))
                .zip(x.par_chunks(ROWS * v).zip(t.par_chunks(ROWS)))
                .for_each_init(
                    || vec![0f32; v],
                    |e, ((ls, ns), (xr, tr))| {
                        for (((l, o), row), &tg) in ls.iter_mut().zip(ns).zip(xr.chunks(v)).zip(tr)
                        {
                            let max = row.iter().fold(f32::NEG_INFINITY, |m, &a| m.max(a));
                            e.iter_mut().zip(row).for_each(|(e, &a)| *e = a - max);
                            exp_inplace(e);
                            let sum: f32 = e.iter().sum();
                            *l = max + sum.ln();
                            *o = *l - row[tg as usize];
                        }
                    },
                );
        }
        *self.lse.lock().expect("nll lock") = lse;
        *self.targets.lock().expect("nll lock") = t.to_vec();
        Ok((CpuStorage::F32(nll), Shape::from(n)))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        _targets: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, v) = logits.dims2()?;
        let lse = self.lse.lock().expect("nll lock");
        let t = self.targets.lock().expect("nll lock");
        if lse.len() != n || t.len() != n {
            candle_core::bail!("token nll backward without its forward pass");
        }
        let dx = with_f32(logits, |x| {
            with_f32(g, |g| {
                let mut dx = vec![0f32; n * v];
                if v > 0 {
                    dx.par_chunks_mut(ROWS * v)
                        .zip(x.par_chunks(ROWS * v))
                        .enumerate()
                        .for_each(|(c, (dr, xr))| {
                            for (k, (d, row)) in dr.chunks_mut(v).zip(xr.chunks(v)).enumerate() {
                                let i = c * ROWS + k;
                                let (gi, l) = (g[i], lse[i]);
                                if gi == 0.0 {
                                    d.fill(0.0);
                                    continue;
                                }
                                d.iter_mut().zip(row).for_each(|(o, &a)| *o = a - l);
                                exp_inplace(d);
                                d.iter_mut().for_each(|o| *o *= gi);
                                d[t[i] as usize] -= gi;
                            }
                        });
                }
                dx
            })
        })??;
        Ok((Some(Tensor::from_vec(dx, (n, v), logits.device())?), None))
    }
}

/// `−log softmax(logits)[target]` per row of `logits (N, V)`, `targets (N)` u32.
pub fn token_nll(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if !super::fused(logits.device())
        || logits.dtype() != DType::F32
        || targets.dtype() != DType::U32
    {
        return token_nll_composed(logits, targets);
    }
    logits.contiguous()?.apply_op2(
        &targets.contiguous()?,
        TokenNll {
            lse: Arc::new(Mutex::new(Vec::new())),
            targets: Arc::new(Mutex::new(Vec::new())),
        },
    )
}

/// The same from differentiable candle ops (any device; the test reference).
pub fn token_nll_composed(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?.neg()
}
