//! Helpers shared by the engine tests: random tensors, plain f64
//! references of a matvec and of a whole transformer, small configs.
#![allow(dead_code, unused_imports)]

use runtime::format::{special, ModelConfig, MoeConfig, TensorId, TensorKind, TokenizerData};
use runtime::kernels::{self, QuantizedActivations, TensorView};
use runtime::sampling::{Rng, Sampler, SamplerConfig};
use runtime::*;

pub fn rand_vec(rng: &mut Rng, n: usize, amp: f32) -> Vec<f32> {
    (0..n).map(|_| (rng.next_f32() * 2.0 - 1.0) * amp).collect()
}

/// A tensor view over owned bytes.
pub struct Owned {
    data: Vec<u8>,
    scales: Vec<u8>,
    rows: u32,
    cols: u32,
    group: u32,
    dtype: DType,
}

impl Owned {
    pub fn quantize(w: &[f32], rows: usize, cols: usize, dtype: DType, group: usize) -> Owned {
        let rb = runtime::format::row_bytes(dtype, cols);
        let g = if matches!(dtype, DType::Q8 | DType::Q4) {
            group
        } else {
            0
        };
        let gpr = if g == 0 { 0 } else { cols.div_ceil(g) };
        let mut data = vec![0u8; rows * rb];
        let mut scales = vec![0u8; rows * gpr * 4];
        for r in 0..rows {
            runtime::quant::quantize_row(
                &w[r * cols..(r + 1) * cols],
                dtype,
                g,
                ScaleType::F32,
                &mut data[r * rb..(r + 1) * rb],
                &mut scales[r * gpr * 4..(r + 1) * gpr * 4],
            );
        }
        Owned {
            data,
            scales,
            rows: rows as u32,
            cols: cols as u32,
            group: g as u32,
            dtype,
        }
    }
    pub fn view(&self) -> TensorView<'_> {
        TensorView {
            data: &self.data,
            scales: &self.scales,
            rows: self.rows,
            cols: self.cols,
            group: self.group,
            dtype: self.dtype,
            scale_type: ScaleType::F32,
        }
    }
    pub fn dequantized(&self) -> Vec<f32> {
        let v = self.view();
        let mut out = vec![0f32; v.rows() * v.cols()];
        for (r, row) in out.chunks_exact_mut(v.cols()).enumerate() {
            v.dequantize_row(r, row).unwrap();
        }
        out
    }
}

pub fn matvec_vec(w: &TensorView<'_>, x: &[f32]) -> Vec<f32> {
    let mut bufs = testing::ActivationBuffers::new(x.len());
    let mut acts = bufs.acts();
    let mut out = vec![0f32; w.rows()];
    kernels::matvec(&mut out, w, x, &mut acts).unwrap();
    out
}

pub fn reference_matvec(w: &[f32], x: &[f32]) -> Vec<f64> {
    w.chunks_exact(x.len())
        .map(|row| row.iter().zip(x).map(|(a, b)| *a as f64 * *b as f64).sum())
        .collect()
}

pub fn session_logits(blob: &[u8], tokens: &[u32], kv: KvDType) -> Vec<Vec<f32>> {
    let model = Model::from_blob(blob).unwrap();
    let context = model.config().max_seq_len as usize;
    let mut arena = vec![0u8; plan(model.config(), context, kv).total_bytes];
    let mut s = Session::new(&model, &mut arena, context, kv).unwrap();
    tokens
        .iter()
        .map(|t| s.forward(*t).unwrap().to_vec())
        .collect()
}

/// A plain transformer: all positions recomputed from scratch, no cache,
/// f64 accumulation, weights dequantized whole.
pub fn reference_logits(blob: &[u8], tokens: &[u32]) -> Vec<f32> {
    let model = Model::from_blob(blob).unwrap();
    let c = *model.config();
    let deq = |t: &TensorView<'_>| -> Vec<f32> {
        let mut out = vec![0f32; t.rows() * t.cols()];
        for (r, row) in out.chunks_exact_mut(t.cols().max(1)).enumerate() {
            t.dequantize_row(r, row).unwrap();
        }
        out
    };
    let gains = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let mv = |w: &[f32], x: &[f32]| -> Vec<f32> {
        reference_matvec(w, x)
            .into_iter()
            .map(|v| v as f32)
            .collect()
    };
    let norm = |x: &[f32], g: &[f32]| -> Vec<f32> {
        let ms: f64 = x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / x.len() as f64;
        let inv = 1.0 / (ms + c.norm_eps as f64).sqrt();
        x.iter()
            .zip(g)
            .map(|(v, g)| (*v as f64 * inv * *g as f64) as f32)
            .collect()
    };
    let (dim, hd, nh, nkv) = (
        c.dim as usize,
        c.head_dim() as usize,
        c.n_heads as usize,
        c.n_kv_heads as usize,
    );
    let emb = deq(model.embedding());
    let n = tokens.len();
    let mut xs: Vec<Vec<f32>> = tokens
        .iter()
        .map(|t| {
            emb[*t as usize * dim..(*t as usize + 1) * dim]
                .iter()
                .map(|v| v * c.embedding_scale)
                .collect()
        })
        .collect();
    let rope = |v: &mut [f32], p: usize| {
        for h in v.chunks_exact_mut(hd) {
            for i in 0..hd / 2 {
                let a = p as f64 * (c.rope_theta as f64).powf(-((2 * i) as f64) / hd as f64);
                let (x0, x1) = (h[2 * i] as f64, h[2 * i + 1] as f64);
                h[2 * i] = (x0 * a.cos() - x1 * a.sin()) as f32;
                h[2 * i + 1] = (x0 * a.sin() + x1 * a.cos()) as f32;
            }
        }
    };
    let ffn = |w: &runtime::model::FfnWeights<'_>, x: &[f32]| -> Vec<f32> {
        let g = mv(&deq(&w.gate), x);
        let u = mv(&deq(&w.up), x);
        let h: Vec<f32> = g
            .iter()
            .zip(&u)
            .map(|(g, u)| ((*g as f64 / (1.0 + (-*g as f64).exp())) * *u as f64) as f32)
            .collect();
        mv(&deq(&w.down), &h)
    };
    for l in 0..c.n_layers as usize {
        let lw = model.layer(l).unwrap();
        let (wq, wk, wv, wo) = (deq(&lw.wq), deq(&lw.wk), deq(&lw.wv), deq(&lw.wo));
        let mut qs = vec![];
        let mut ks = vec![];
        let mut vs = vec![];
        for (p, x) in xs.iter().enumerate() {
            let h = norm(x, &gains(lw.attn_norm));
            let mut q = mv(&wq, &h);
            let mut k = mv(&wk, &h);
            rope(&mut q, p);
            rope(&mut k, p);
            qs.push(q);
            ks.push(k);
            vs.push(mv(&wv, &h));
        }
        for p in 0..n {
            let mut att_out = vec![0f32; dim];
            for h in 0..nh {
                let kvh = h * nkv / nh;
                let q = &qs[p][h * hd..(h + 1) * hd];
                let scores: Vec<f64> = (0..=p)
                    .map(|t| {
                        let k = &ks[t][kvh * hd..(kvh + 1) * hd];
                        q.iter()
                            .zip(k)
                            .map(|(a, b)| *a as f64 * *b as f64)
                            .sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for i in 0..hd {
                    att_out[h * hd + i] = (0..=p)
                        .map(|t| e[t] / z * vs[t][kvh * hd + i] as f64)
                        .sum::<f64>() as f32;
                }
            }
            let o = mv(&wo, &att_out);
            for (a, b) in xs[p].iter_mut().zip(o) {
                *a += b;
            }
            let h = norm(&xs[p], &gains(lw.ffn_norm));
            let out = match lw.ffn {
                runtime::model::Ffn::Dense(w) => ffn(&w, &h),
                runtime::model::Ffn::Moe { router, experts } => {
                    let logits = mv(&deq(&router), &h);
                    let k = c.moe.unwrap().top_k as usize;
                    let mut order: Vec<usize> = (0..logits.len()).collect();
                    order.sort_by(|a, b| logits[*b].total_cmp(&logits[*a]).then(a.cmp(b)));
                    let chosen = &order[..k];
                    let m = logits[chosen[0]] as f64;
                    let z: f64 = chosen.iter().map(|e| (logits[*e] as f64 - m).exp()).sum();
                    let mut acc = vec![0f32; dim];
                    for e in chosen {
                        let wgt = (logits[*e] as f64 - m).exp() / z;
                        let y = ffn(&runtime::model::Model::expert(experts, *e).unwrap(), &h);
                        for (a, b) in acc.iter_mut().zip(y) {
                            *a += (wgt * b as f64) as f32;
                        }
                    }
                    acc
                }
            };
            for (a, b) in xs[p].iter_mut().zip(out) {
                *a += b;
            }
        }
    }
    let h = norm(&xs[n - 1], &gains(model.final_norm()));
    mv(&deq(model.output()), &h)
}

pub fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1.0);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * scale,
            "{what}: logit {i}: {x} vs {y}"
        );
    }
}

pub use runtime::testing::test_config;

pub const A: u32 = special::FIRST_BYTE + b'a' as u32;
pub const Q: u32 = special::FIRST_BYTE + b'q' as u32;
pub const FOUR: u32 = special::FIRST_BYTE + b'4' as u32;

#[allow(clippy::type_complexity)]
pub fn run_generate(
    blob: &[u8],
    cfg: GenerateConfig,
) -> (String, String, StopReason, bool, Vec<(u32, Span, String)>) {
    let model = Model::from_blob(blob).unwrap();
    let mut arena = vec![0u8; plan(model.config(), 64, KvDType::F32).total_bytes];
    let mut s = Session::new(&model, &mut arena, 64, KvDType::F32).unwrap();
    let mut events = vec![];
    let mut text = [0u8; 256];
    let g = generate(&mut s, "q", &cfg, &mut text, &mut |e| {
        events.push((e.id, e.span, e.text.to_string()))
    })
    .unwrap();
    (
        g.think.to_string(),
        g.answer.to_string(),
        g.stop,
        g.think_budget_hit,
        events,
    )
}

/// Walks a blob through parsing and a few decode steps; any outcome but a
/// panic is fine.
pub fn try_run(bytes: &[u8]) {
    if let Ok(model) = Model::from_blob(bytes) {
        let c = *model.config();
        let context = (c.max_seq_len as usize).min(8);
        for kv in [KvDType::F16, KvDType::Q8] {
            let p = plan(&c, context, kv);
            if p.total_bytes > 64 << 20 {
                return;
            }
            let mut arena = vec![0u8; p.total_bytes];
            if let Ok(mut s) = Session::new(&model, &mut arena, context, kv) {
                for t in [2u32, 9, 300] {
                    let _ = s.forward(t % c.vocab_size);
                }
                let mut sampler = Sampler::new(SamplerConfig {
                    temperature: 1.0,
                    top_k: 3,
                    top_p: 0.9,
                    seed: 1,
                });
                let _ = s.sample(&mut sampler);
            }
        }
    }
}

pub fn recrc(bytes: &mut [u8]) {
    let n = bytes.len() - 4;
    let crc = runtime::format::BLOB_CRC.checksum(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
}
