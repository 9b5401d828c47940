//! The kernels against each other and against their definitions.

use super::activations::{abs_max, fill_pairs, TokenActivations};
use super::*;
use crate::format::{DType, ScaleType};
use crate::testing::ActivationBuffers;
extern crate std;
use std::vec;
use std::vec::Vec;

/// A tensor's bytes and shape, owned.
struct Tensor {
    data: Vec<u8>,
    scales: Vec<u8>,
    rows: usize,
    cols: usize,
    /// 0 for F32/F16.
    group: usize,
    dtype: DType,
    st: ScaleType,
}

impl Tensor {
    fn view(&self) -> TensorView<'_> {
        TensorView {
            data: &self.data,
            scales: &self.scales,
            rows: self.rows as u32,
            cols: self.cols as u32,
            group: self.group as u32,
            dtype: self.dtype,
            scale_type: self.st,
        }
    }
}

/// Random weights of `rows × cols` stored as `dtype` (groups of `group`,
/// scales as `st`), with a few extreme values (−128 bytes, zeros).
fn tensor(
    rows: usize,
    cols: usize,
    dtype: DType,
    group: usize,
    st: ScaleType,
    seed: u64,
) -> Tensor {
    let mut rng = crate::sampling::Rng::new(seed);
    let rb = crate::format::row_bytes(dtype, cols);
    let g = if matches!(dtype, DType::Q8 | DType::Q4) {
        group
    } else {
        0
    };
    let gpr = if g == 0 { 0 } else { cols.div_ceil(g) };
    let sb = crate::format::scale_bytes(st);
    let mut data = vec![0u8; rows * rb];
    let mut scales = vec![0u8; rows * gpr * sb];
    for r in 0..rows {
        let w: Vec<f32> = (0..cols).map(|_| rng.next_f32() * 2.0 - 1.0).collect();
        crate::quant::quantize_row(
            &w,
            dtype,
            g,
            st,
            &mut data[r * rb..(r + 1) * rb],
            &mut scales[r * gpr * sb..(r + 1) * gpr * sb],
        );
    }
    if dtype == DType::Q8 {
        for b in data.iter_mut().step_by(7) {
            *b = 0x80; // −128: the extreme a blob may hold
        }
    }
    Tensor {
        data,
        scales,
        rows,
        cols,
        group: g,
        dtype,
        st,
    }
}

#[test]
fn native_matvecs_equal_portable_bit_for_bit() {
    let mut rng = crate::sampling::Rng::new(7);
    for dtype in [DType::F32, DType::F16, DType::Q8, DType::Q4] {
        for st in [ScaleType::F32, ScaleType::F16] {
            for group in [16usize, 32, 64, 96] {
                for cols in [8usize, 32, 64, 70, 96, 172, 288, 300] {
                    if dtype == DType::Q4 && cols % 2 == 1 {
                        continue;
                    }
                    for rows in [1usize, 3, 4, 5, 8, 11] {
                        let owned = tensor(rows, cols, dtype, group, st, rng.next_u64());
                        let w = owned.view();
                        let x: Vec<f32> = (0..cols)
                            .map(|_| (rng.next_f32() * 2.0 - 1.0) * 3.0)
                            .collect();
                        let mut bufs = ActivationBuffers::new(cols);
                        let mut acts = bufs.acts();
                        let (mut a, mut b) = (vec![0f32; rows], vec![0f32; rows]);
                        match dtype {
                            DType::F32 | DType::F16 => {
                                matvec_float(&mut a, &w, &x).unwrap();
                                matvec_float_portable(&mut b, &w, &x).unwrap();
                            }
                            DType::Q8 | DType::Q4 => {
                                acts.quantize(&x, group);
                                matvec_quantized(&mut a, &w, &acts).unwrap();
                                matvec_quantized_portable(&mut b, &w, &acts).unwrap();
                            }
                        }
                        let (a, b): (Vec<u32>, Vec<u32>) = (
                            a.iter().map(|v| v.to_bits()).collect(),
                            b.iter().map(|v| v.to_bits()).collect(),
                        );
                        assert_eq!(a, b, "{dtype:?} {st:?} group {group} {rows}x{cols}");
                    }
                }
            }
        }
    }
}

#[test]
fn abs_max_equals_the_sequential_fold_nans_included() {
    let mut rng = crate::sampling::Rng::new(3);
    for len in [0usize, 1, 7, 8, 9, 32, 341] {
        let mut x: Vec<f32> = (0..len).map(|_| rng.next_f32() * 8.0 - 4.0).collect();
        if len > 3 {
            x[len / 2] = f32::NAN;
            x[1] = -0.0;
        }
        let want = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert_eq!(abs_max(&x).to_bits(), want.to_bits(), "len {len}");
    }
}

/// Activations quantized for one dtype do not pass for the other's
/// layout: a Q4 product over Q8-only activations is an error, not a read
/// of a stale split.
#[test]
fn quantization_layouts_follow_the_weight_dtype() {
    let mut rng = crate::sampling::Rng::new(4);
    let (rows, cols, group) = (4usize, 64usize, 32usize);
    let owned = tensor(rows, cols, DType::Q4, group, ScaleType::F32, 9);
    let w = owned.view();
    let x: Vec<f32> = (0..cols).map(|_| rng.next_f32() - 0.5).collect();
    let mut bufs = ActivationBuffers::new(cols);
    let mut acts = bufs.acts();
    acts.quantize_for(&x, group, DType::Q8);
    assert!(acts.holds(DType::Q8, group) && !acts.holds(DType::Q4, group));
    assert!(!acts.holds(DType::Q8, 16));
    let mut out = vec![f32::NAN; rows];
    assert!(matvec_quantized(&mut out, &w, &acts).is_err());
    acts.quantize_for(&x, group, DType::Q4);
    assert!(acts.holds(DType::Q4, group));
    matvec_quantized(&mut out, &w, &acts).unwrap();
    let mut want = vec![0f32; rows];
    acts.quantize(&x, group);
    matvec_quantized(&mut want, &w, &acts).unwrap();
    assert_eq!(out, want);
    assert!(out.iter().any(|v| *v != 0.0));
}

/// SXTB16 of a weight word gives its bytes 0 and 2 (then, rotated by 8,
/// 1 and 3) as signed halves; SMLAD multiplies halves pairwise. Emulated
/// here, the pair layout must give every dot product exactly, including
/// lengths that are not a multiple of 4 (zero padding).
#[test]
fn sxtb16_pair_layout_gives_exact_dot_products() {
    let sxtb16 = |v: u32| [(v as u8 as i8) as i32, ((v >> 16) as u8 as i8) as i32];
    let halves = |v: u32| [(v as u16 as i16) as i32, ((v >> 16) as u16 as i16) as i32];
    let mut rng = crate::sampling::Rng::new(5);
    for len in [1usize, 3, 4, 7, 16, 21, 32, 341] {
        let q: Vec<i8> = (0..len).map(|_| (rng.next_u64() % 255) as i8).collect();
        let w: Vec<u8> = (0..len.div_ceil(4) * 4)
            .map(|i| if i < len { rng.next_u64() as u8 } else { 0 })
            .collect();
        let mut pairs = vec![u32::MAX; pair_words(len)];
        fill_pairs(&q, &mut pairs);
        let mut got = 0i32;
        for (wb, p) in w.chunks_exact(4).zip(pairs.chunks_exact(2)) {
            let word = u32::from_le_bytes([wb[0], wb[1], wb[2], wb[3]]);
            let (w02, w13) = (sxtb16(word), sxtb16(word >> 8));
            let (x02, x13) = (halves(p[0]), halves(p[1]));
            got += w02[0] * x02[0] + w02[1] * x02[1] + w13[0] * x13[0] + w13[1] * x13[1];
        }
        let want: i32 = w
            .iter()
            .zip(&q)
            .map(|(a, b)| (*a as i8 as i32) * (*b as i32))
            .sum();
        assert_eq!(got, want, "len {len}");
    }
}

#[test]
fn multi_token_matmul_equals_one_matvec_per_token_bit_for_bit() {
    let mut rng = crate::sampling::Rng::new(11);
    for st in [ScaleType::F32, ScaleType::F16] {
        for cols in [32usize, 64, 70, 128, 341] {
            for rows in [1usize, 4, 7, 12] {
                for tokens in [1usize, 2, 3, 4, 5, 9] {
                    let group = 32;
                    let owned = tensor(rows, cols, DType::Q8, group, st, rng.next_u64());
                    let w = owned.view();
                    // Per-token buffers at strides wider than needed, as in a session.
                    let (qs, ss) = (cols + 5, cols.div_ceil(group) + 2);
                    let (mut q_all, mut s_all) = (vec![0i8; tokens * qs], vec![0f32; tokens * ss]);
                    let mut want = vec![0f32; tokens * rows];
                    for t in 0..tokens {
                        let x: Vec<f32> = (0..cols)
                            .map(|_| (rng.next_f32() * 2.0 - 1.0) * 3.0)
                            .collect();
                        let mut bufs = ActivationBuffers::new(cols);
                        let mut acts = bufs.acts();
                        acts.quantize(&x, group);
                        matvec_quantized(&mut want[t * rows..(t + 1) * rows], &w, &acts).unwrap();
                        q_all[t * qs..t * qs + cols].copy_from_slice(&bufs.q[..cols]);
                        let g = cols.div_ceil(group);
                        s_all[t * ss..t * ss + g].copy_from_slice(&bufs.scales[..g]);
                    }
                    let view = TokenActivations {
                        q: &q_all,
                        q_stride: qs,
                        scales: &s_all,
                        s_stride: ss,
                        tokens,
                        len: cols,
                        group,
                    };
                    let mut got = vec![f32::NAN; tokens * rows];
                    if !matmul_quantized(&mut got, rows, &w, &view) {
                        // No multi-token kernel on this target: nothing to compare.
                        #[cfg(target_arch = "x86_64")]
                        assert!(!x86::avx2());
                        continue;
                    }
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{st:?} {rows}x{cols}, {tokens} tokens"
                    );
                }
            }
        }
    }
}

#[test]
fn exp_is_accurate() {
    let mut x = -87.0f32;
    while x < 88.0 {
        let want = libm::exp(x as f64);
        let got = exp(x) as f64;
        assert!(
            ((got - want) / want).abs() < 3e-7,
            "exp({x}) = {got}, want {want}"
        );
        x += 0.0137;
    }
    assert_eq!(exp(0.0), 1.0);
    assert!(exp(-1000.0) >= 0.0 && exp(1000.0).is_finite());
}

#[test]
fn f16_conversion_matches_half_for_every_value() {
    for h in 0..=u16::MAX {
        let want = half::f16::from_bits(h).to_f32();
        let got = f16_bits_to_f32(h);
        assert!(
            want.to_bits() == got.to_bits() || (want.is_nan() && got.is_nan()),
            "{h:#06x}: {want} vs {got}"
        );
    }
}

/// Operands that do not fit are errors, not zeros.
#[test]
fn mismatched_operands_are_errors() {
    let (rows, cols) = (3usize, 32usize);
    let owned = tensor(rows, cols, DType::F32, 0, ScaleType::F32, 1);
    let w = owned.view();
    let x = vec![1f32; cols];
    assert!(matvec_float(&mut [0f32; 3], &w, &x).is_ok());
    assert!(matvec_float(&mut [0f32; 2], &w, &x).is_err());
    assert!(matvec_float(&mut [0f32; 3], &w, &x[..cols - 1]).is_err());
    let mut row = vec![0f32; cols];
    assert!(w.dequantize_row(2, &mut row).is_ok());
    assert!(w.dequantize_row(3, &mut row).is_err());
    assert!(w.row_range(1, 4).is_err());
    assert_eq!(w.row_range(1, 3).unwrap().rows(), 2);
}
