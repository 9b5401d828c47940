//! Matrix–vector products over weights read in place from the blob, plus the
//! small vector helpers of the forward pass.
//!
//! Determinism: every f32 sum has a fixed shape on every target — dot
//! products use [`LANES`] independent accumulators over consecutive elements,
//! combined pairwise in a fixed order, then the tail added in order. Rust never
//! contracts `a * b + c` into a fused multiply-add on its own, so x86-64 and
//! Cortex-M compute bit-identical results. Integer sums (Q8/Q4) are exact, so
//! the compiler may reorder them freely.
//!
//! Q8/Q4 weights: the activation vector is quantized once per matvec to int8
//! with the weight's group size (groups along the row, the last one possibly
//! short, exactly as the weight rows are grouped), each group is an exact i32
//! dot product, and the group sums are scaled and added in row order.

use crate::format::{DType, ScaleType, TensorRecord};

/// Independent f32 accumulators of a dot product (enough for two 4-wide SIMD
/// registers; fixed so the summation order never depends on the target).
pub const LANES: usize = 8;

/// A weight matrix borrowed from the blob: `rows × cols`, row-major, in its
/// stored dtype. Rows start on byte boundaries (see [`DType::Q4`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensorView<'a> {
    pub data: &'a [u8],
    /// Per-group scales (Q8/Q4), `rows * ceil(cols / group)` of `scale_type`.
    pub scales: &'a [u8],
    pub rows: u32,
    pub cols: u32,
    /// Elements per quantization group (0 for F32/F16).
    pub group: u32,
    pub dtype: DType,
    pub scale_type: ScaleType,
}

impl<'a> TensorView<'a> {
    /// A 0×0 tensor: the placeholder of unused table slots.
    pub const EMPTY: TensorView<'static> = TensorView {
        data: &[],
        scales: &[],
        rows: 0,
        cols: 0,
        group: 0,
        dtype: DType::F32,
        scale_type: ScaleType::F32,
    };

    pub fn from_record(r: &TensorRecord<'a>) -> Self {
        Self {
            data: r.data,
            scales: r.scales,
            rows: r.rows,
            cols: r.cols,
            group: r.group_size,
            dtype: r.dtype,
            scale_type: r.scale_type,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows as usize
    }

    pub fn cols(&self) -> usize {
        self.cols as usize
    }

    /// Bytes one row takes in `data`.
    pub fn row_bytes(&self) -> usize {
        crate::format::row_bytes(self.dtype, self.cols())
    }

    /// Groups per row (0 when unquantized).
    pub fn groups_per_row(&self) -> usize {
        if self.group == 0 {
            0
        } else {
            self.cols().div_ceil(self.group as usize)
        }
    }

    /// Dequantizes row `r` into `out` (one embedding lookup); a row outside
    /// the tensor leaves `out` zero.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        out.fill(0.0);
        let rb = self.row_bytes();
        let Some(data) = self.data.get(r * rb..(r + 1) * rb) else {
            return;
        };
        match self.dtype {
            DType::F32 => {
                for (o, b) in out.iter_mut().zip(data.chunks_exact(4)) {
                    *o = le_f32(b);
                }
            }
            DType::F16 => {
                for (o, b) in out.iter_mut().zip(data.chunks_exact(2)) {
                    *o = f16_bits_to_f32(le_u16(b));
                }
            }
            DType::Q8 | DType::Q4 => {
                let g = self.groups_per_row();
                let sb = crate::format::scale_bytes(self.scale_type);
                let scales = self.scales.get(r * g * sb..(r + 1) * g * sb).unwrap_or(&[]);
                crate::quant::dequantize_row(
                    data,
                    scales,
                    self.dtype,
                    self.group as usize,
                    self.scale_type,
                    out,
                );
            }
        }
    }
}

/// Reads a little-endian f32 from a 4-byte slice (0.0 for any other length;
/// callers pass `chunks_exact(4)` pieces, so the check compiles away).
#[inline(always)]
pub fn le_f32(b: &[u8]) -> f32 {
    match b {
        [a, b, c, d] => f32::from_le_bytes([*a, *b, *c, *d]),
        _ => 0.0,
    }
}

#[inline(always)]
pub fn le_u16(b: &[u8]) -> u16 {
    match b {
        [a, b] => u16::from_le_bytes([*a, *b]),
        _ => 0,
    }
}

/// Exact IEEE half → single conversion without branches on the value (so it
/// vectorizes): the magnitude bits are shifted into place and rescaled by
/// 2^112, which also maps half subnormals exactly; infinities and NaNs are
/// patched with a select.
#[inline(always)]
pub fn f16_bits_to_f32(h: u16) -> f32 {
    let h = h as u32;
    let mag = (h & 0x7fff) << 13;
    let scaled = f32::from_bits(mag) * f32::from_bits(0x7780_0000); // 2^112
    let v = if h & 0x7c00 == 0x7c00 {
        f32::from_bits(mag | 0x7f80_0000)
    } else {
        scaled
    };
    f32::from_bits(v.to_bits() | ((h & 0x8000) << 16))
}

/// Reads scale `index` of a scale table (0.0 past its end).
#[inline(always)]
fn scale_at(bytes: &[u8], index: usize, t: ScaleType) -> f32 {
    match t {
        ScaleType::F32 => bytes.get(index * 4..index * 4 + 4).map_or(0.0, le_f32),
        ScaleType::F16 => bytes
            .get(index * 2..index * 2 + 2)
            .map_or(0.0, |b| f16_bits_to_f32(le_u16(b))),
    }
}

#[inline(always)]
fn combine(acc: [f32; LANES]) -> f32 {
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

/// An activation vector quantized to int8 in groups along its length, for
/// Q8/Q4 matvecs. Buffers come from the session arena (or a test's vectors).
pub struct QuantizedActivations<'s> {
    q: &'s mut [i8],
    /// `q` with each group's even-indexed elements first, then its odd ones
    /// (a short odd-length last group padded with a zero), so a Q4 byte's
    /// low and high nibbles meet two straight streams (vectorizes).
    split: &'s mut [i8],
    scales: &'s mut [f32],
    /// `Σ q` per group: Q4 stores nibbles `q + 8`, so its dot product is
    /// `Σ nibble·x − 8·Σ x` and the second term is computed once here.
    sums: &'s mut [i32],
    len: usize,
    group: usize,
}

impl<'s> QuantizedActivations<'s> {
    /// `q` and `split` need `len + 1` entries (the one for Q4 pair padding);
    /// `scales` and `sums` one per group. With group size 1 (the worst case)
    /// that is `len` each.
    pub fn new(
        q: &'s mut [i8],
        split: &'s mut [i8],
        scales: &'s mut [f32],
        sums: &'s mut [i32],
    ) -> Self {
        Self {
            q,
            split,
            scales,
            sums,
            len: 0,
            group: 0,
        }
    }

    /// Elements held (0 until the first [`Self::quantize`]).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Group size of the current contents.
    pub fn group(&self) -> usize {
        self.group
    }

    /// Quantizes `x` with `group` elements per scale: `q = round(x / s)`,
    /// `s = max|x| / 127` per group. Elements past the buffers' capacity are
    /// dropped (the plan sizes the buffers so that never happens).
    pub fn quantize(&mut self, x: &[f32], group: usize) {
        let group = group.max(1);
        let len = x.len().min(self.q.len());
        let groups = len
            .div_ceil(group)
            .min(self.scales.len())
            .min(self.sums.len());
        let len = len.min(groups * group);
        self.len = len;
        self.group = group;
        let xs = x.get(..len).unwrap_or(&[]);
        let q = self.q.get_mut(..len).unwrap_or(&mut []);
        for (((xg, qg), s), sum) in xs
            .chunks(group)
            .zip(q.chunks_mut(group))
            .zip(self.scales.iter_mut())
            .zip(self.sums.iter_mut())
        {
            let amax = xg.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = amax / crate::quant::Q8_MAX;
            let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            let mut total = 0i32;
            for (o, v) in qg.iter_mut().zip(xg) {
                let r = libm::roundf(v * inv).clamp(-127.0, 127.0) as i8;
                *o = r;
                total += r as i32;
            }
            *s = scale;
            *sum = total;
        }
        // Pad an odd length with a zero so Q4 can read whole byte pairs.
        if let Some(pad) = self.q.get_mut(len) {
            *pad = 0;
        }
        if group & 1 == 0 {
            let padded = len.div_ceil(2) * 2;
            let (Some(q), Some(split)) = (self.q.get(..padded), self.split.get_mut(..padded))
            else {
                return;
            };
            for (qg, sg) in q.chunks(group).zip(split.chunks_mut(group)) {
                let half = qg.len() / 2;
                let (evens, odds) = sg.split_at_mut(half);
                for ((pair, e), o) in qg.chunks_exact(2).zip(evens).zip(odds) {
                    if let [a, b] = pair {
                        *e = *a;
                        *o = *b;
                    }
                }
            }
        }
    }
}

/// `out[r] = Σ_c w[r, c] · x[c]` for every row (F32/F16 weights read in
/// place, Q8/Q4 through `acts`, which is re-quantized from `x`). Extra rows or
/// columns on either side are ignored; nothing panics on mismatched lengths.
pub fn matvec(out: &mut [f32], w: &TensorView<'_>, x: &[f32], acts: &mut QuantizedActivations<'_>) {
    match w.dtype {
        DType::F32 | DType::F16 => matvec_float(out, w, x),
        DType::Q8 | DType::Q4 => {
            acts.quantize(x, w.group as usize);
            matvec_quantized(out, w, acts);
        }
    }
}

/// Matvec of an F32/F16 tensor (a quantized tensor yields zeros).
pub fn matvec_float(out: &mut [f32], w: &TensorView<'_>, x: &[f32]) {
    let rb = w.row_bytes();
    let x = x.get(..w.cols()).unwrap_or(x);
    if rb == 0 {
        out.fill(0.0);
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
        DType::Q8 | DType::Q4 => out.fill(0.0),
    }
}

/// Matvec of a Q8/Q4 tensor with activations already quantized with the
/// tensor's group size (`acts.group() == w.group`; otherwise zeros, since the
/// groups would not line up).
pub fn matvec_quantized(out: &mut [f32], w: &TensorView<'_>, acts: &QuantizedActivations<'_>) {
    let group = w.group as usize;
    let gpr = w.groups_per_row();
    let rb = w.row_bytes();
    if group == 0 || acts.group != group || acts.len < w.cols() || rb == 0 {
        out.fill(0.0);
        return;
    }
    let sb = crate::format::scale_bytes(w.scale_type);
    let xq = acts.q.get(..w.cols()).unwrap_or(&[]);
    let xs = acts.scales.get(..gpr).unwrap_or(&[]);
    let xsum = acts.sums.get(..gpr).unwrap_or(&[]);
    let rows = w.data.chunks_exact(rb).zip(w.scales.chunks_exact(gpr * sb));
    match w.dtype {
        DType::Q8 => {
            for (o, (row, scales)) in out.iter_mut().zip(rows) {
                *o = dot_q8_row(row, scales, w.scale_type, xq, xs, group);
            }
        }
        DType::Q4 => {
            let split = acts.split.get(..w.cols().div_ceil(2) * 2).unwrap_or(&[]);
            for (o, (row, scales)) in out.iter_mut().zip(rows) {
                *o = dot_q4_row(row, scales, w.scale_type, split, xs, xsum, group);
            }
        }
        DType::F32 | DType::F16 => out.fill(0.0),
    }
}

#[inline]
fn dot_q8_row(
    row: &[u8],
    scales: &[u8],
    st: ScaleType,
    xq: &[i8],
    xs: &[f32],
    group: usize,
) -> f32 {
    let mut acc = 0f32;
    for (g, ((wg, xg), sx)) in row.chunks(group).zip(xq.chunks(group)).zip(xs).enumerate() {
        let isum: i32 = wg
            .iter()
            .zip(xg)
            .map(|(&w, &x)| (w as i8 as i32) * (x as i32))
            .sum();
        acc += isum as f32 * (scale_at(scales, g, st) * sx);
    }
    acc
}

#[inline]
fn dot_q4_row(
    row: &[u8],
    scales: &[u8],
    st: ScaleType,
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
        acc += (isum - 8 * sum) as f32 * (scale_at(scales, g, st) * sx);
    }
    acc
}

/// `out = x / sqrt(mean(x²) + eps) · gain`, the gain read as f32 bytes.
pub fn rmsnorm(out: &mut [f32], x: &[f32], gain: &[u8], eps: f32) {
    let n = x.len().max(1) as f32;
    let inv = 1.0 / libm::sqrtf(dot(x, x) / n + eps);
    for ((o, v), g) in out.iter_mut().zip(x).zip(gain.chunks_exact(4)) {
        *o = v * inv * le_f32(g);
    }
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

/// In-place softmax (max-subtracted, [`exp`], sequential sum).
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
    for v in x.iter_mut() {
        *v = exp(*v - max);
    }
    let mut sum = 0f32;
    for v in x.iter() {
        sum += *v;
    }
    let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// `x[i] += y[i]`.
#[inline]
pub fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// SwiGLU's gate: `gate[i] = silu(gate[i]) · up[i]`.
#[inline]
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + exp(-*g)) * u;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
