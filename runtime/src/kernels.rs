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

#[cfg(all(target_arch = "arm", thinkling_arm_dsp))]
mod arm;
#[cfg(target_arch = "x86_64")]
mod x86;

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
    #[cfg(all(target_arch = "arm", thinkling_arm_fp16))]
    {
        arm::f16_bits_to_f32(h)
    }
    #[cfg(not(all(target_arch = "arm", thinkling_arm_fp16)))]
    {
        f16_bits_to_f32_soft(h)
    }
}

/// The portable body of [`f16_bits_to_f32`].
#[inline(always)]
pub fn f16_bits_to_f32_soft(h: u16) -> f32 {
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

/// A scale table read as f32 whatever its storage (the storage type is
/// matched once per matvec, not per group).
trait Scales {
    /// Scale `i` (0.0 past the end).
    fn get(&self, i: usize) -> f32;
    /// The raw table when it holds IEEE halves (native kernels convert four
    /// at once).
    #[allow(dead_code)]
    fn f16_bytes(&self) -> Option<&[u8]> {
        None
    }
    /// The raw table when it holds f32s.
    #[allow(dead_code)]
    fn f32_bytes(&self) -> Option<&[u8]> {
        None
    }
}

struct F32Scales<'a>(&'a [u8]);

impl Scales for F32Scales<'_> {
    #[inline(always)]
    fn get(&self, i: usize) -> f32 {
        self.0.get(i * 4..i * 4 + 4).map_or(0.0, le_f32)
    }
    fn f32_bytes(&self) -> Option<&[u8]> {
        Some(self.0)
    }
}

struct F16Scales<'a>(&'a [u8]);

impl Scales for F16Scales<'_> {
    #[inline(always)]
    fn get(&self, i: usize) -> f32 {
        self.0
            .get(i * 2..i * 2 + 2)
            .map_or(0.0, |b| f16_bits_to_f32(le_u16(b)))
    }
    fn f16_bytes(&self) -> Option<&[u8]> {
        Some(self.0)
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
    /// `q` sign-extended to 16-bit pairs in the order SXTB16 unpacks a word
    /// of weights (word `2i` holds elements `4i` and `4i + 2`, word `2i + 1`
    /// elements `4i + 1` and `4i + 3`), so the Armv7E-M Q8 kernel unpacks only
    /// the weights. Filled on that target (with its FPU) alone, with groups
    /// of a multiple of 4; [`pair_words`] words for `len` elements.
    #[cfg_attr(
        not(all(target_arch = "arm", thinkling_arm_dsp, thinkling_arm_fp16)),
        allow(dead_code)
    )]
    pairs: &'s mut [u32],
    scales: &'s mut [f32],
    /// `Σ q` per group: Q4 stores nibbles `q + 8`, so its dot product is
    /// `Σ nibble·x − 8·Σ x` and the second term is computed once here.
    sums: &'s mut [i32],
    len: usize,
    group: usize,
    /// Which rearrangements of `q` are filled (see [`Self::quantize_for`]).
    layouts: Layouts,
}

/// The rearrangements of quantized activations a buffer holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Layouts {
    /// The Q4 even/odd split.
    pub split: bool,
    /// The Armv7E-M halfword pairs, in the order of this dtype's kernel.
    pub pairs: Option<DType>,
}

impl Layouts {
    /// Whether these are all that `dtype`'s kernels read here for weights
    /// in groups of `group`.
    pub(crate) fn serve(self, dtype: DType, group: usize) -> bool {
        let pairs = self.pairs == pairs_for(dtype, group);
        match dtype {
            DType::Q4 => self.split && pairs,
            DType::Q8 => pairs,
            DType::F32 | DType::F16 => false,
        }
    }
}

/// The pair order this target's kernel for `dtype` weights in groups of
/// `group` reads, if it reads one (Armv7E-M with its FPU: Q8 with groups of
/// a multiple of 4, Q4 with groups of 32).
fn pairs_for(dtype: DType, group: usize) -> Option<DType> {
    let wanted = match dtype {
        DType::Q8 => group.is_multiple_of(4),
        DType::Q4 => group == 32,
        DType::F32 | DType::F16 => false,
    };
    (PAIRS && wanted).then_some(dtype)
}

impl<'s> QuantizedActivations<'s> {
    /// `q` and `split` need `len + 1` entries (the one for Q4 pair padding);
    /// `pairs` [`pair_words`]`(len)`; `scales` and `sums` one per group. With
    /// group size 1 (the worst case) that is `len` each.
    pub fn new(
        q: &'s mut [i8],
        split: &'s mut [i8],
        pairs: &'s mut [u32],
        scales: &'s mut [f32],
        sums: &'s mut [i32],
    ) -> Self {
        Self {
            q,
            split,
            pairs,
            scales,
            sums,
            len: 0,
            group: 0,
            layouts: Layouts::default(),
        }
    }

    /// These buffers as already holding a quantization of `len` elements in
    /// groups of `group` with `layouts` (a batch keeps one set per token and
    /// views them again).
    pub(crate) fn holding(mut self, len: usize, group: usize, layouts: Layouts) -> Self {
        self.len = len;
        self.group = group;
        self.layouts = layouts;
        self
    }

    /// The rearrangements the current contents include.
    pub(crate) fn layouts(&self) -> Layouts {
        self.layouts
    }

    /// Whether the contents serve a product with `dtype` weights in groups
    /// of `group` (quantized with that group size, with the layout that
    /// dtype's kernels read).
    pub fn holds(&self, dtype: DType, group: usize) -> bool {
        self.group == group.max(1) && self.layouts.serve(dtype, group.max(1))
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

    /// Quantizes `x` with `group` elements per scale for products with
    /// weights of any quantized dtype (the Q4 split and, where the target
    /// has them, the Q8 pairs; Armv7E-M's Q4 kernel needs
    /// [`Self::quantize_for`]).
    pub fn quantize(&mut self, x: &[f32], group: usize) {
        self.quantize_with(x, group, true, pairs_for(DType::Q8, group.max(1)));
    }

    /// Quantizes `x` with `group` elements per scale for products with
    /// `dtype` weights, filling only the layout their kernels read (the Q4
    /// split costs as much as the quantization itself and Q8 never reads it).
    pub fn quantize_for(&mut self, x: &[f32], group: usize, dtype: DType) {
        self.quantize_with(x, group, dtype == DType::Q4, pairs_for(dtype, group.max(1)));
    }

    /// `q = round(x / s)`, `s = max|x| / 127` per group of `group`; then the
    /// Q4 split and the Armv7E-M pairs where asked for (and possible).
    /// Elements past the buffers' capacity are dropped (the plan sizes the
    /// buffers so that never happens).
    fn quantize_with(&mut self, x: &[f32], group: usize, split: bool, pairs: Option<DType>) {
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
            let amax = abs_max(xg);
            let scale = amax / crate::quant::Q8_MAX;
            let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            let mut total = 0i32;
            for (o, v) in qg.iter_mut().zip(xg) {
                let r = round_q8(v * inv);
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
        self.layouts = Layouts::default();
        let q = self.q.get(..len).unwrap_or(&[]);
        match pairs {
            Some(DType::Q8) => fill_pairs(q, self.pairs),
            Some(DType::Q4) => fill_pairs_q4(q, self.pairs),
            _ => {}
        }
        self.layouts.pairs = pairs;
        if split && group & 1 == 0 {
            self.layouts.split = true;
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

/// Whether this target's Q8/Q4 kernels read [`QuantizedActivations`]'s
/// halfword pairs (Armv7E-M with its FPU).
const PAIRS: bool = cfg!(all(
    target_arch = "arm",
    thinkling_arm_dsp,
    thinkling_arm_fp16
));

/// `max |x|` (0 for an empty slice; NaNs are skipped, as `f32::max` does),
/// in [`LANES`] lanes so it vectorizes: a maximum does not depend on the
/// order it is taken in, so this is exactly the sequential fold.
#[inline]
fn abs_max(x: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (m, v) in lanes.iter_mut().zip(c) {
            *m = m.max(v.abs());
        }
    }
    lanes.iter().chain(tail).fold(0f32, |m, v| m.max(v.abs()))
}

/// Words of [`QuantizedActivations`]'s SXTB16 pair layout for `len`
/// elements (two per four, the last four padded with zeros).
pub const fn pair_words(len: usize) -> usize {
    len.div_ceil(4) * 2
}

/// Writes `q` in the SXTB16 pair layout into `pairs` (as far as both go).
fn fill_pairs(q: &[i8], pairs: &mut [u32]) {
    let half = |v: Option<&i8>| v.map_or(0, |v| *v as i16 as u16 as u32);
    for (i, p) in pairs
        .chunks_exact_mut(2)
        .take(q.len().div_ceil(4))
        .enumerate()
    {
        let at = |j: usize| half(q.get(4 * i + j));
        if let [even, odd] = p {
            *even = at(0) | at(2) << 16;
            *odd = at(1) | at(3) << 16;
        }
    }
}

/// Writes `q` in the pair order of the Armv7E-M Q4 kernel into `pairs` (as
/// far as both go): per eight elements the words `(x0, x4)`, `(x2, x6)`,
/// `(x1, x5)`, `(x3, x7)`, the halves UXTB16 makes of a word of eight
/// nibbles masked to its low nibbles (even elements) and then its high ones.
fn fill_pairs_q4(q: &[i8], pairs: &mut [u32]) {
    let half = |v: Option<&i8>| v.map_or(0, |v| *v as i16 as u16 as u32);
    for (i, p) in pairs
        .chunks_exact_mut(4)
        .take(q.len().div_ceil(8))
        .enumerate()
    {
        let at = |j: usize| half(q.get(8 * i + j));
        if let [a, b, c, d] = p {
            *a = at(0) | at(4) << 16;
            *b = at(2) | at(6) << 16;
            *c = at(1) | at(5) << 16;
            *d = at(3) | at(7) << 16;
        }
    }
}

/// `roundf(y).clamp(-127, 127) as i8` (halves away from zero, NaN → 0)
/// without a call: clamped first (same result), the fraction `c − trunc(c)`
/// is exact for `|c| ≤ 127`, so the comparisons decide the rounding exactly.
/// Branch-free, so the quantization loop vectorizes.
#[inline(always)]
fn round_q8(y: f32) -> i8 {
    let c = y.clamp(-127.0, 127.0);
    let t = c as i32;
    let f = c - t as f32;
    (t + (f >= 0.5) as i32 - (f <= -0.5) as i32) as i8
}

/// `out[r] = Σ_c w[r, c] · x[c]` for every row (F32/F16 weights read in
/// place, Q8/Q4 through `acts`, which is re-quantized from `x`). Extra rows or
/// columns on either side are ignored; nothing panics on mismatched lengths.
pub fn matvec(out: &mut [f32], w: &TensorView<'_>, x: &[f32], acts: &mut QuantizedActivations<'_>) {
    match w.dtype {
        DType::F32 | DType::F16 => matvec_float(out, w, x),
        DType::Q8 | DType::Q4 => {
            acts.quantize_for(x, w.group as usize, w.dtype);
            matvec_quantized(out, w, acts);
        }
    }
}

/// Matvec of an F32/F16 tensor (a quantized tensor yields zeros).
pub fn matvec_float(out: &mut [f32], w: &TensorView<'_>, x: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if w.dtype == DType::F32 {
        if let Some(x) = x.get(..w.cols()) {
            let rows = out.len().min(w.rows());
            if x86::matvec_f32(out.get_mut(..rows).unwrap_or(&mut []), w.data, x) {
                return;
            }
        }
    }
    matvec_float_portable(out, w, x);
}

/// [`matvec_float`] without target-specific code paths.
pub fn matvec_float_portable(out: &mut [f32], w: &TensorView<'_>, x: &[f32]) {
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

/// Matvec of a Q8/Q4 tensor with activations already quantized for it
/// ([`QuantizedActivations::holds`]; otherwise zeros when the groups would
/// not line up or a Q4 product lacks the split).
pub fn matvec_quantized(out: &mut [f32], w: &TensorView<'_>, acts: &QuantizedActivations<'_>) {
    matvec_quantized_with(out, w, acts, true);
}

/// [`matvec_quantized`] without target-specific code paths.
pub fn matvec_quantized_portable(
    out: &mut [f32],
    w: &TensorView<'_>,
    acts: &QuantizedActivations<'_>,
) {
    matvec_quantized_with(out, w, acts, false);
}

fn matvec_quantized_with(
    out: &mut [f32],
    w: &TensorView<'_>,
    acts: &QuantizedActivations<'_>,
    native: bool,
) {
    let group = w.group as usize;
    let rb = w.row_bytes();
    let no_split = w.dtype == DType::Q4 && !acts.layouts.split;
    if group == 0 || acts.group != group || acts.len < w.cols() || rb == 0 || no_split {
        out.fill(0.0);
        return;
    }
    match w.scale_type {
        ScaleType::F32 => quantized_rows(out, w, acts, &F32Scales(w.scales), 4, native),
        ScaleType::F16 => quantized_rows(out, w, acts, &F16Scales(w.scales), 2, native),
    }
}

fn quantized_rows<S: Scales>(
    out: &mut [f32],
    w: &TensorView<'_>,
    acts: &QuantizedActivations<'_>,
    scales: &S,
    scale_bytes: usize,
    native: bool,
) {
    let group = w.group as usize;
    let gpr = w.groups_per_row();
    let rb = w.row_bytes();
    let cols = w.cols();
    let xq = acts.q.get(..cols).unwrap_or(&[]);
    let xs = acts.scales.get(..gpr).unwrap_or(&[]);
    let xsum = acts.sums.get(..gpr).unwrap_or(&[]);
    let split = acts.split.get(..cols.div_ceil(2) * 2).unwrap_or(&[]);
    let rows = out.len().min(w.rows());
    let out = out.get_mut(..rows).unwrap_or(&mut []);
    let scale_count = w.scales.len() / scale_bytes;
    #[cfg(target_arch = "x86_64")]
    if native {
        let done = match w.dtype {
            DType::Q8 => x86::matvec_q8(out, w.data, cols, scales, scale_count, group, xq, xs),
            DType::Q4 => x86::matvec_q4(
                out,
                w.data,
                cols,
                scales,
                scale_count,
                group,
                split,
                xs,
                xsum,
            ),
            DType::F32 | DType::F16 => false,
        };
        if done {
            return;
        }
    }
    // The pair layout exists where the quantization filled it.
    #[cfg(all(target_arch = "arm", thinkling_arm_dsp, thinkling_arm_fp16))]
    if native
        && w.dtype == DType::Q8
        && acts.layouts.pairs == Some(DType::Q8)
        && q8_rows_dsp(out, w.data, cols, scales, group, xq, acts.pairs, xs)
    {
        return;
    }
    #[cfg(all(target_arch = "arm", thinkling_arm_dsp, thinkling_arm_fp16))]
    if native
        && w.dtype == DType::Q4
        && acts.layouts.pairs == Some(DType::Q4)
        && q4_rows_dsp(out, w.data, cols, scales, group, xq, acts.pairs, xs, xsum)
    {
        return;
    }
    let _ = (native, scale_count);
    let rows = w.data.chunks_exact(rb);
    match w.dtype {
        DType::Q8 => {
            for (r, (o, row)) in out.iter_mut().zip(rows).enumerate() {
                *o = dot_q8_row(row, scales, r * gpr, xq, xs, group);
            }
        }
        DType::Q4 => {
            for (r, (o, row)) in out.iter_mut().zip(rows).enumerate() {
                *o = dot_q4_row(row, scales, r * gpr, split, xs, xsum, group);
            }
        }
        DType::F32 | DType::F16 => out.fill(0.0),
    }
}

/// Quantized activations of several tokens with one length and group size:
/// token `t`'s values at `t · q_stride`, its group scales at `t · s_stride`.
/// (Only x86-64 has a multi-token kernel so far; elsewhere the batched pass
/// runs one matvec per token.)
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct TokenActivations<'a> {
    pub q: &'a [i8],
    pub q_stride: usize,
    pub scales: &'a [f32],
    pub s_stride: usize,
    pub tokens: usize,
    pub len: usize,
    pub group: usize,
}

/// `out[t · out_stride + r] = row r · token t` for every token, with a kernel
/// that reads each block of weights once for several tokens; each output is
/// bit for bit [`matvec_quantized`]'s. Returns false (nothing written) where
/// no such kernel applies (the caller then runs one matvec per token).
pub(crate) fn matmul_quantized(
    out: &mut [f32],
    out_stride: usize,
    w: &TensorView<'_>,
    acts: &TokenActivations<'_>,
) -> bool {
    let group = w.group as usize;
    if w.dtype != DType::Q8 || group == 0 || acts.group != group || acts.len < w.cols() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        match w.scale_type {
            ScaleType::F32 => matmul_rows(out, out_stride, w, acts, &F32Scales(w.scales), 4),
            ScaleType::F16 => matmul_rows(out, out_stride, w, acts, &F16Scales(w.scales), 2),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (out, out_stride);
        false
    }
}

/// [`matmul_quantized`] with the scale table read as `S`.
#[cfg(target_arch = "x86_64")]
fn matmul_rows<S: Scales>(
    out: &mut [f32],
    out_stride: usize,
    w: &TensorView<'_>,
    acts: &TokenActivations<'_>,
    scales: &S,
    scale_bytes: usize,
) -> bool {
    x86::matmul_q8(
        out,
        out_stride,
        acts.tokens,
        w.data,
        w.cols(),
        scales,
        w.scales.len() / scale_bytes,
        w.group as usize,
        acts.q,
        acts.q_stride,
        acts.scales,
        acts.s_stride,
    )
}

/// Exact `Σ w·x` of int8 weights (as bytes) and int8 activations.
#[inline(always)]
fn dot_i8(w: &[u8], x: &[i8]) -> i32 {
    #[cfg(all(target_arch = "arm", thinkling_arm_dsp))]
    {
        arm::dot_i8(w, x)
    }
    #[cfg(not(all(target_arch = "arm", thinkling_arm_dsp)))]
    {
        dot_i8_soft(w, x)
    }
}

#[inline(always)]
#[allow(dead_code)]
fn dot_i8_soft(w: &[u8], x: &[i8]) -> i32 {
    w.iter()
        .zip(x)
        .map(|(&w, &x)| (w as i8 as i32) * (x as i32))
        .sum()
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

/// A scale table's bytes, bytes per scale and whether they are halves
/// (None for a table the native kernels do not read raw).
#[cfg(all(target_arch = "arm", thinkling_arm_dsp, thinkling_arm_fp16))]
fn raw_scales<S: Scales>(scales: &S) -> Option<(&[u8], usize, bool)> {
    match (scales.f16_bytes(), scales.f32_bytes()) {
        (Some(b), _) => Some((b, 2, true)),
        (None, Some(b)) => Some((b, 4, false)),
        (None, None) => None,
    }
}

/// Q8 rows on Armv7E-M: each row's whole groups in one assembly loop over
/// the activations' SXTB16 pair layout, its short last group word by word,
/// with [`dot_q8_row`]'s results bit for bit. Returns false (nothing
/// written) where it does not apply: a group size not a multiple of 16,
/// activations without pairs, or a scale table shorter than the rows.
#[cfg(all(target_arch = "arm", thinkling_arm_dsp, thinkling_arm_fp16))]
#[allow(clippy::too_many_arguments)]
fn q8_rows_dsp<S: Scales>(
    out: &mut [f32],
    data: &[u8],
    cols: usize,
    scales: &S,
    group: usize,
    xq: &[i8],
    pairs: &[u32],
    xs: &[f32],
) -> bool {
    let gpr = cols.div_ceil(group.max(1));
    let Some((raw, scale_bytes, half)) = raw_scales(scales) else {
        return false;
    };
    if group == 0
        || !group.is_multiple_of(16)
        || cols == 0
        || xq.len() < cols
        || pairs.len() < pair_words(cols)
        || xs.len() < gpr
        || data.len() < out.len().saturating_mul(cols)
        || raw.len() < out.len().saturating_mul(gpr * scale_bytes)
    {
        return false;
    }
    let whole = cols / group;
    let tail = whole * group;
    let (tail_x, tail_pairs) = (
        xq.get(tail..cols).unwrap_or(&[]),
        pairs.get(tail / 2..).unwrap_or(&[]),
    );
    let tail_sx = xs.get(whole).copied().unwrap_or(0.0);
    let rows = data
        .chunks_exact(cols)
        .zip(raw.chunks_exact(gpr * scale_bytes));
    for (o, (row, row_scales)) in out.iter_mut().zip(rows) {
        let mut acc = 0f32;
        if whole > 0 {
            let (w, x, ws, xsp) = (
                row.as_ptr(),
                pairs.as_ptr(),
                row_scales.as_ptr(),
                xs.as_ptr(),
            );
            // SAFETY: the row holds `whole · group` bytes, `pairs` `whole ·
            // group / 2` words, `row_scales` `whole` scales and `xs` `whole`
            // f32s (all checked above); `group / 16 ≥ 1`.
            acc = unsafe {
                if half {
                    arm::q8_groups_f16(w, x, ws, xsp, whole, group / 16)
                } else {
                    arm::q8_groups_f32(w, x, ws, xsp, whole, group / 16)
                }
            };
        }
        if tail < cols {
            let isum = arm::dot_i8_pairs_tail(row.get(tail..).unwrap_or(&[]), tail_pairs, tail_x);
            let sw = if half {
                F16Scales(row_scales).get(whole)
            } else {
                F32Scales(row_scales).get(whole)
            };
            acc += isum as f32 * (sw * tail_sx);
        }
        *o = acc;
    }
    true
}

/// Q4 rows on Armv7E-M: each row's whole groups of 32 in one assembly loop
/// over the activations' Q4 pair order, its short last group nibble by
/// nibble, with [`dot_q4_row`]'s results bit for bit. Returns false
/// (nothing written) where it does not apply: another group size or a
/// buffer or scale table shorter than the rows.
#[cfg(all(target_arch = "arm", thinkling_arm_dsp, thinkling_arm_fp16))]
#[allow(clippy::too_many_arguments)]
fn q4_rows_dsp<S: Scales>(
    out: &mut [f32],
    data: &[u8],
    cols: usize,
    scales: &S,
    group: usize,
    xq: &[i8],
    pairs: &[u32],
    xs: &[f32],
    xsum: &[i32],
) -> bool {
    let Some((raw, scale_bytes, half)) = raw_scales(scales) else {
        return false;
    };
    let rb = cols.div_ceil(2);
    let gpr = cols.div_ceil(32);
    let whole = cols / 32;
    if group != 32
        || cols == 0
        || xq.len() < cols
        || pairs.len() < whole * 16
        || xs.len() < gpr
        || xsum.len() < gpr
        || data.len() < out.len().saturating_mul(rb)
        || raw.len() < out.len().saturating_mul(gpr * scale_bytes)
    {
        return false;
    }
    let tail = whole * 32;
    let tail_x = xq.get(tail..cols).unwrap_or(&[]);
    let (tail_sx, tail_sum) = (
        xs.get(whole).copied().unwrap_or(0.0),
        xsum.get(whole).copied().unwrap_or(0),
    );
    let rows = data
        .chunks_exact(rb)
        .zip(raw.chunks_exact(gpr * scale_bytes));
    for (o, (row, row_scales)) in out.iter_mut().zip(rows) {
        let mut acc = 0f32;
        if whole > 0 {
            let (w, x, ws) = (row.as_ptr(), pairs.as_ptr(), row_scales.as_ptr());
            let (xsp, sump) = (xs.as_ptr(), xsum.as_ptr());
            // SAFETY: the row holds `16 · whole` bytes, `pairs` `16 · whole`
            // words, `row_scales` `whole` scales, `xs` and `xsum` `whole`
            // entries (all checked above).
            acc = unsafe {
                if half {
                    arm::q4_groups32_f16(w, x, ws, xsp, sump, whole)
                } else {
                    arm::q4_groups32_f32(w, x, ws, xsp, sump, whole)
                }
            };
        }
        if tail < cols {
            let mut isum = 0i32;
            for (i, xv) in tail_x.iter().enumerate() {
                let e = tail + i;
                let byte = row.get(e / 2).copied().unwrap_or(0);
                isum += ((byte >> (4 * (e & 1))) & 0x0f) as i32 * *xv as i32;
            }
            let sw = if half {
                F16Scales(row_scales).get(whole)
            } else {
                F32Scales(row_scales).get(whole)
            };
            acc += (isum - 8 * tail_sum) as f32 * (sw * tail_sx);
        }
        *o = acc;
    }
    true
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

/// One attention head over an f32 KV cache with the target's fastest code:
/// scores of `q` against the keys of every position (`scores.len()` of
/// them, position `p` at `keys[p · kv_dim + off..][..q.len()]`), scaled by
/// `scale`, softmax, and the score-weighted sum of the values into `out`.
/// Returns false (nothing done) where there is no such code; the caller then
/// runs the portable loop, which computes the same bits.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend_head_f32(
    q: &[f32],
    out: &mut [f32],
    scores: &mut [f32],
    keys: &[f32],
    values: &[f32],
    kv_dim: usize,
    off: usize,
    scale: f32,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86::attend_head(q, out, scores, keys, values, kv_dim, off, scale)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (q, out, scores, keys, values, kv_dim, off, scale);
        false
    }
}

/// [`attend_head_f32`] over an f16 KV cache (bit patterns).
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend_head_f16(
    q: &[f32],
    out: &mut [f32],
    scores: &mut [f32],
    keys: &[u16],
    values: &[u16],
    kv_dim: usize,
    off: usize,
    scale: f32,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86::attend_head(q, out, scores, keys, values, kv_dim, off, scale)
    }
    #[cfg(all(target_arch = "arm", thinkling_arm_fp16))]
    {
        arm::attend_head_f16(q, out, scores, keys, values, kv_dim, off, scale)
    }
    #[cfg(not(any(target_arch = "x86_64", all(target_arch = "arm", thinkling_arm_fp16))))]
    {
        let _ = (q, out, scores, keys, values, kv_dim, off, scale);
        false
    }
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

/// In-place softmax: max-subtracted [`exp`], the sum over [`LANES`] lane
/// accumulators combined in the fixed order (so it vectorizes and every
/// target adds in the same order), then scaled by its inverse.
pub fn softmax(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if x86::softmax(x) {
        return;
    }
    softmax_body(x);
}

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
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    /// Random weights of `rows × cols` stored as `dtype` (groups of `group`,
    /// scales as `st`), with a few extreme values (−128 bytes, zeros).
    fn tensor(
        rows: usize,
        cols: usize,
        dtype: DType,
        group: usize,
        st: ScaleType,
        seed: u64,
    ) -> (Vec<u8>, Vec<u8>) {
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
        (data, scales)
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
                            let (data, scales) =
                                tensor(rows, cols, dtype, group, st, rng.next_u64());
                            let w = TensorView {
                                data: &data,
                                scales: &scales,
                                rows: rows as u32,
                                cols: cols as u32,
                                group: if matches!(dtype, DType::Q8 | DType::Q4) {
                                    group as u32
                                } else {
                                    0
                                },
                                dtype,
                                scale_type: st,
                            };
                            let x: Vec<f32> = (0..cols)
                                .map(|_| (rng.next_f32() * 2.0 - 1.0) * 3.0)
                                .collect();
                            let n = cols + 1;
                            let (mut q, mut sp, mut sc, mut su) =
                                (vec![0i8; n], vec![0i8; n], vec![0f32; n], vec![0i32; n]);
                            let mut pa = vec![0u32; pair_words(n)];
                            let mut acts = QuantizedActivations::new(
                                &mut q, &mut sp, &mut pa, &mut sc, &mut su,
                            );
                            let (mut a, mut b) = (vec![0f32; rows], vec![0f32; rows]);
                            match dtype {
                                DType::F32 | DType::F16 => {
                                    matvec_float(&mut a, &w, &x);
                                    matvec_float_portable(&mut b, &w, &x);
                                }
                                DType::Q8 | DType::Q4 => {
                                    acts.quantize(&x, group);
                                    matvec_quantized(&mut a, &w, &acts);
                                    matvec_quantized_portable(&mut b, &w, &acts);
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
    /// layout: a Q4 product over Q8-only activations is zeros, not a read of
    /// a stale split.
    #[test]
    fn quantization_layouts_follow_the_weight_dtype() {
        let mut rng = crate::sampling::Rng::new(4);
        let (rows, cols, group) = (4usize, 64usize, 32usize);
        let (data, scales) = tensor(rows, cols, DType::Q4, group, ScaleType::F32, 9);
        let w = TensorView {
            data: &data,
            scales: &scales,
            rows: rows as u32,
            cols: cols as u32,
            group: group as u32,
            dtype: DType::Q4,
            scale_type: ScaleType::F32,
        };
        let x: Vec<f32> = (0..cols).map(|_| rng.next_f32() - 0.5).collect();
        let n = cols + 1;
        let (mut q, mut sp, mut sc, mut su) =
            (vec![0i8; n], vec![0i8; n], vec![0f32; n], vec![0i32; n]);
        let mut pa = vec![0u32; pair_words(n)];
        let mut acts = QuantizedActivations::new(&mut q, &mut sp, &mut pa, &mut sc, &mut su);
        acts.quantize_for(&x, group, DType::Q8);
        assert!(acts.holds(DType::Q8, group) && !acts.holds(DType::Q4, group));
        assert!(!acts.holds(DType::Q8, 16));
        let mut out = vec![f32::NAN; rows];
        matvec_quantized(&mut out, &w, &acts);
        assert!(out.iter().all(|v| *v == 0.0), "{out:?}");
        acts.quantize_for(&x, group, DType::Q4);
        assert!(acts.holds(DType::Q4, group));
        matvec_quantized(&mut out, &w, &acts);
        let mut want = vec![0f32; rows];
        acts.quantize(&x, group);
        matvec_quantized(&mut want, &w, &acts);
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
                        let (data, scales) =
                            tensor(rows, cols, DType::Q8, group, st, rng.next_u64());
                        let w = TensorView {
                            data: &data,
                            scales: &scales,
                            rows: rows as u32,
                            cols: cols as u32,
                            group: group as u32,
                            dtype: DType::Q8,
                            scale_type: st,
                        };
                        // Per-token buffers at strides wider than needed, as in a session.
                        let (qs, ss) = (cols + 5, cols.div_ceil(group) + 2);
                        let (mut q_all, mut s_all) =
                            (vec![0i8; tokens * qs], vec![0f32; tokens * ss]);
                        let mut want = vec![0f32; tokens * rows];
                        for t in 0..tokens {
                            let x: Vec<f32> = (0..cols)
                                .map(|_| (rng.next_f32() * 2.0 - 1.0) * 3.0)
                                .collect();
                            let n = cols + 1;
                            let (mut q, mut sp, mut sc, mut su) =
                                (vec![0i8; n], vec![0i8; n], vec![0f32; n], vec![0i32; n]);
                            let mut pa = vec![0u32; pair_words(n)];
                            let mut acts = QuantizedActivations::new(
                                &mut q, &mut sp, &mut pa, &mut sc, &mut su,
                            );
                            acts.quantize(&x, group);
                            matvec_quantized(&mut want[t * rows..(t + 1) * rows], &w, &acts);
                            q_all[t * qs..t * qs + cols].copy_from_slice(&q[..cols]);
                            let g = cols.div_ceil(group);
                            s_all[t * ss..t * ss + g].copy_from_slice(&sc[..g]);
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
                            assert!(!cfg!(target_arch = "x86_64") || !x86::avx2());
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
}
