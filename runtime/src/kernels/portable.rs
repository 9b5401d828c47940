//! The portable kernels: plain Rust in the fixed summation order of the
//! module docs. Every native kernel computes these results bit for bit (the
//! unit tests compare them); the dispatch falls back to them wherever no
//! native kernel applies.

use super::activations::Operands;
use super::scalar::{dot_i8, f16_bits_to_f32};
use super::view::{le_f32, le_u16, Scales, TensorView};
use super::{Mismatch, LANES};
use crate::format::DType;

#[inline(always)]
pub(crate) fn combine(acc: [f32; LANES]) -> f32 {
    let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
    ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
}

/// `Σ a[i]·b[i]` over the shorter length, in the fixed order described in the
/// module docs.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let ac = a.chunks_exact(LANES);
    let bc = b.chunks_exact(LANES);
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    let mut sum = combine(acc);
    for (x, y) in ar.iter().zip(br) {
        sum += x * y;
    }
    sum
}

/// Dot product of an f32 row stored as little-endian bytes with `x`.
#[inline]
fn dot_f32_bytes(w: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let wc = w.chunks_exact(4 * LANES);
    let xc = x.chunks_exact(LANES);
    let (wr, xr) = (wc.remainder(), xc.remainder());
    for (wb, xb) in wc.zip(xc) {
        for ((s, b), x) in acc.iter_mut().zip(wb.chunks_exact(4)).zip(xb) {
            *s += le_f32(b) * x;
        }
    }
    let mut sum = combine(acc);
    for (b, x) in wr.chunks_exact(4).zip(xr) {
        sum += le_f32(b) * x;
    }
    sum
}

/// Dot product of an f16 row stored as little-endian bytes with `x`.
#[inline]
fn dot_f16_bytes(w: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let wc = w.chunks_exact(2 * LANES);
    let xc = x.chunks_exact(LANES);
    let (wr, xr) = (wc.remainder(), xc.remainder());
    for (wb, xb) in wc.zip(xc) {
        for ((s, b), x) in acc.iter_mut().zip(wb.chunks_exact(2)).zip(xb) {
            *s += f16_bits_to_f32(le_u16(b)) * x;
        }
    }
    let mut sum = combine(acc);
    for (b, x) in wr.chunks_exact(2).zip(xr) {
        sum += f16_bits_to_f32(le_u16(b)) * x;
    }
    sum
}

/// The checks of a float matvec: `w` is F32/F16, `out` has one entry per
/// row, the data holds every row and `x` at least `cols` entries (returns
/// its first `cols`).
#[inline]
pub(crate) fn check_float<'x>(
    out: &[f32],
    w: &TensorView<'_>,
    x: &'x [f32],
) -> Result<&'x [f32], Mismatch> {
    if !matches!(w.dtype, DType::F32 | DType::F16) {
        return Err(Mismatch("a quantized tensor through the float kernels"));
    }
    if out.len() != w.rows() {
        return Err(Mismatch("output length differs from the tensor's rows"));
    }
    if w.data.len() < w.rows().saturating_mul(w.row_bytes()) {
        return Err(Mismatch("tensor data shorter than its rows"));
    }
    x.get(..w.cols())
        .ok_or(Mismatch("input shorter than the tensor's columns"))
}

/// F32/F16 rows (operands checked by [`check_float`]).
pub(crate) fn float_rows(out: &mut [f32], w: &TensorView<'_>, x: &[f32]) {
    let rb = w.row_bytes();
    if rb == 0 {
        out.fill(0.0); // no columns: every row sums nothing
        return;
    }
    let rows = w.data.chunks_exact(rb);
    match w.dtype {
        DType::F32 => {
            for (o, row) in out.iter_mut().zip(rows) {
                *o = dot_f32_bytes(row, x);
            }
        }
        DType::F16 => {
            for (o, row) in out.iter_mut().zip(rows) {
                *o = dot_f16_bytes(row, x);
            }
        }
        DType::Q8 | DType::Q4 => {}
    }
}

/// Q8/Q4 rows, one group sum at a time (operands checked by
/// [`QuantizedActivations::operands`]).
pub(crate) fn quantized_rows<S: Scales>(
    out: &mut [f32],
    w: &TensorView<'_>,
    ops: &Operands<'_>,
    scales: &S,
) {
    let rb = w.row_bytes();
    if rb == 0 {
        out.fill(0.0);
        return;
    }
    let rows = w.data.chunks_exact(rb);
    let (gpr, group) = (ops.gpr, ops.group);
    match w.dtype {
        DType::Q8 => {
            for (r, (o, row)) in out.iter_mut().zip(rows).enumerate() {
                *o = dot_q8_row(row, scales, r * gpr, ops.xq, ops.xs, group);
            }
        }
        DType::Q4 => {
            for (r, (o, row)) in out.iter_mut().zip(rows).enumerate() {
                *o = dot_q4_row(row, scales, r * gpr, ops.split, ops.xs, ops.xsum, group);
            }
        }
        DType::F32 | DType::F16 => {}
    }
}

#[inline]
fn dot_q8_row<S: Scales>(
    row: &[u8],
    scales: &S,
    first: usize,
    xq: &[i8],
    xs: &[f32],
    group: usize,
) -> f32 {
    let mut acc = 0f32;
    for (g, ((wg, xg), sx)) in row.chunks(group).zip(xq.chunks(group)).zip(xs).enumerate() {
        acc += dot_i8(wg, xg) as f32 * (scales.get(first + g) * sx);
    }
    acc
}

#[inline]
fn dot_q4_row<S: Scales>(
    row: &[u8],
    scales: &S,
    first: usize,
    split: &[i8],
    xs: &[f32],
    xsum: &[i32],
    group: usize,
) -> f32 {
    // Q4 groups have an even size, so group g starts at byte g * group / 2;
    // `split` holds each group's even elements, then its odd ones.
    let group_bytes = group / 2;
    let mut acc = 0f32;
    let groups = row
        .chunks(group_bytes.max(1))
        .zip(split.chunks(group))
        .zip(xs.iter().zip(xsum));
    for (g, ((wg, xg), (sx, sum))) in groups.enumerate() {
        let (evens, odds) = xg.split_at(wg.len().min(xg.len()));
        let isum: i32 = wg
            .iter()
            .zip(evens)
            .zip(odds)
            .map(|((&b, &e), &o)| (b & 0x0f) as i32 * e as i32 + (b >> 4) as i32 * o as i32)
            .sum();
        acc += (isum - 8 * sum) as f32 * (scales.get(first + g) * sx);
    }
    acc
}

/// `e^x` in plain f32 arithmetic (Cephes' polynomial, within 2 ulp): no
/// branches or calls, so softmax and SiLU loops vectorize, and only IEEE
/// add/mul/round-to-nearest are used, so every target gets the same bits.
/// Inputs are clamped to `[-87, 88]` (results stay finite and nonzero).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5·2^23 rounds to the nearest integer in the low mantissa bits.
    const ROUNDER: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUNDER;
    let n = t - ROUNDER;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * (r * r) + r + 1.0;
    let k = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    y * f32::from_bits((k.wrapping_add(127) as u32) << 23)
}

/// Steps per unit of the exponential's table: `2^(k/512)` for `k < 512`.
pub(crate) const EXP2_STEPS: u32 = 512;

/// Fraction bits of the exponential's fixed-point argument: `x · 2^25`
/// saturates at `x = -64` (as VCVT to fixed point does on Cortex-M).
pub(crate) const EXP2_FRAC: u32 = 25;

/// The exponential's table: `2^(k/512)` rounded to f32, less `k << 14`,
/// so that adding the fixed-point argument's integer and table bits,
/// shifted into the exponent field, gives `2^(n + k/512)` in one integer
/// addition. Built at compile time (e^y by its Taylor series in f64,
/// within 1e-16 relative for y < ln 2, then rounded once), the same
/// table on every target.
pub(crate) static EXP2_TABLE: [u32; EXP2_STEPS as usize] = exp2_table();

// Evaluated only at compile time (the static above), where an index out of
// range would stop the build, never a run.
#[allow(clippy::indexing_slicing)]
const fn exp2_table() -> [u32; EXP2_STEPS as usize] {
    let mut table = [0u32; EXP2_STEPS as usize];
    let mut k = 0;
    while k < EXP2_STEPS {
        let y = k as f64 * (core::f64::consts::LN_2 / EXP2_STEPS as f64);
        let (mut term, mut sum, mut i) = (1f64, 1f64, 1);
        while i < 20 {
            term = term * y / i as f64;
            sum += term;
            i += 1;
        }
        table[k as usize] = (sum as f32).to_bits().wrapping_sub(k << 14);
        k += 1;
    }
    table
}

/// `2^x` for `x ≤ 0`, the softmax exponential of the Q8 attention (its
/// scores are in base 2), in integer and f32 operations that every target
/// computes bit for bit: `x · 2^25` truncated to an integer (toward zero,
/// saturating; NaN gives 0), split into `n + k/512` (rounded to the
/// nearest step) and a rest `r` with `|r| ≤ 2^-10`; `2^(n + k/512)` is a
/// table entry with `n` added into its exponent bits, and `2^r` is `1 +
/// r · ln 2` (minimax on that interval for the linear term's coefficient).
/// Within 3.5e-7 relative of libm over `[-64, 0]` (unit test); exactly 1
/// at 0 and never past 1 below. Inputs below -64 give `2^-64` (a weight a
/// sum holding the maximum's 1 cannot see), NaN gives 1; inputs above 0
/// are outside its domain (defined, not meaningful). On Cortex-M4/M7 this
/// is one VCVT to fixed point, five integer instructions, a VCVT back and
/// a multiply and multiply-add.
#[inline(always)]
pub fn exp2(x: f32) -> f32 {
    // Saturating and toward zero, as VCVT.S32.F32 with fraction bits is.
    let m = (x * (1u32 << EXP2_FRAC) as f32) as i32;
    // The low 16 bits as a signed rest, the step above them rounded.
    let rest = (m << 16) >> 16;
    let steps = m.wrapping_sub(rest);
    let k = ((steps >> 16) as u32 % EXP2_STEPS) as usize;
    let entry = EXP2_TABLE.get(k).copied().unwrap_or(0);
    let s = f32::from_bits(entry.wrapping_add((steps >> 2) as u32));
    let r = rest as f32 * (1.0 / (1u32 << EXP2_FRAC) as f32);
    s + (s * r) * core::f32::consts::LN_2
}

/// Softmax in place, the portable body of [`super::softmax`]: the maximum
/// and the sum over [`LANES`] lane accumulators combined in a fixed order.
#[inline(always)]
pub(crate) fn softmax_body(x: &mut [f32]) {
    let mut m = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let mut max = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, v| m.max(*v));
    for c in chunks {
        for (m, v) in m.iter_mut().zip(c) {
            *m = m.max(*v);
        }
    }
    for v in m {
        max = max.max(v);
    }
    for v in x.iter_mut() {
        *v = exp(*v - max);
    }
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (s, v) in acc.iter_mut().zip(c) {
            *s += *v;
        }
    }
    let mut sum = combine(acc);
    for v in rest {
        sum += *v;
    }
    let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
    for v in x.iter_mut() {
        *v *= inv;
    }
}
