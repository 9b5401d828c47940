//! Activations quantized to int8 for Q8/Q4 products: one vector
//! ([`QuantizedActivations`]), with the rearrangements the kernels of each
//! target read ([`Layouts`]), or several tokens' at once
//! ([`TokenActivations`]).

use super::{Mismatch, TensorView, LANES};
use crate::format::DType;

mod rows;

pub(crate) use rows::{ActivationRows, TokenActivations};

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
    #[inline]
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

    /// Records that the buffers hold a quantization of `len` elements in
    /// groups of `group` with `layouts` (filled by someone else: the rows of
    /// an [`ActivationRows`], which keeps one set per token and views them
    /// again).
    #[inline]
    fn set_held(&mut self, len: usize, group: usize, layouts: Layouts) {
        self.len = len;
        self.group = group;
        self.layouts = layouts;
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

    /// The operands of a product of these activations with `w` into `out_len`
    /// outputs, checked: `w` is Q8/Q4, the activations were quantized with
    /// its group size and hold at least its columns, with the layout its
    /// kernels read, and the output has one entry per row.
    #[inline]
    pub(crate) fn operands(
        &self,
        out_len: usize,
        w: &TensorView<'_>,
    ) -> Result<Operands<'_>, Mismatch> {
        let group = w.group as usize;
        let (cols, gpr) = (w.cols(), w.groups_per_row());
        if !matches!(w.dtype, DType::Q8 | DType::Q4) || group == 0 {
            return Err(Mismatch("a float tensor through the quantized kernels"));
        }
        if self.group != group {
            return Err(Mismatch("activations quantized with another group size"));
        }
        if self.len < cols {
            return Err(Mismatch("activations shorter than the tensor's columns"));
        }
        if w.dtype == DType::Q4 && !self.layouts.split {
            return Err(Mismatch("Q4 product without the split activations"));
        }
        if out_len != w.rows() {
            return Err(Mismatch("output length differs from the tensor's rows"));
        }
        if w.data.len() < w.rows().saturating_mul(w.row_bytes()) {
            return Err(Mismatch("tensor data shorter than its rows"));
        }
        let short = Mismatch("activation buffers shorter than their length");
        Ok(Operands {
            xq: self.q.get(..cols).ok_or(short)?,
            xs: self.scales.get(..gpr).ok_or(short)?,
            xsum: self.sums.get(..gpr).ok_or(short)?,
            split: if w.dtype == DType::Q4 {
                self.split.get(..cols.div_ceil(2) * 2).ok_or(short)?
            } else {
                &[]
            },
            pairs: self.pairs,
            layouts: self.layouts,
            group,
            gpr,
        })
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
        self.group = group;
        self.layouts = Layouts::default();
        // Pad an odd length with a zero so Q4 can read whole byte pairs.
        if let Some(pad) = self.q.get_mut(len) {
            *pad = 0;
        }
        let (Some(xs), Some(q)) = (x.get(..len), self.q.get_mut(..len)) else {
            // Unreachable (`len` is at most both lengths); holding nothing,
            // the next product reports the mismatch.
            self.len = 0;
            return;
        };
        self.len = len;
        // Armv7E-M writes the Q8 pairs group by group as it quantizes
        // (one pass instead of two, in assembly where a group allows).
        let q8_pairs = PAIRS
            && pairs == Some(DType::Q8)
            && group.is_multiple_of(4)
            && self.pairs.len() >= pair_words(len);
        let mut pair_groups = self.pairs.chunks_mut((group / 2).max(1));
        for (((xg, qg), s), sum) in xs
            .chunks(group)
            .zip(q.chunks_mut(group))
            .zip(self.scales.iter_mut())
            .zip(self.sums.iter_mut())
        {
            let amax = abs_max(xg);
            let scale = amax / crate::quant::Q8_MAX;
            let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            *s = scale;
            let mut pg = if q8_pairs { pair_groups.next() } else { None };
            if let Some(pg) = pg.as_deref_mut() {
                if let Some(total) = quantize_group_pairs(xg, inv, scale, qg, pg) {
                    *sum = total;
                    continue;
                }
            }
            let mut total = 0i32;
            for (o, v) in qg.iter_mut().zip(xg) {
                let r = round_q8(v * inv);
                *o = r;
                total += r as i32;
            }
            *sum = total;
            if let Some(pg) = pg {
                fill_pairs(qg, pg);
            }
        }
        let q: &[i8] = q;
        // A layout counts as held only once it is filled for all `len`.
        if self.pairs.len() >= pair_words(len) {
            match pairs {
                Some(DType::Q8) if !q8_pairs => fill_pairs(q, self.pairs),
                Some(DType::Q4) => fill_pairs_q4(q, self.pairs),
                _ => {}
            }
            self.layouts.pairs = pairs;
        }
        if split && group & 1 == 0 {
            let padded = len.div_ceil(2) * 2;
            let (Some(q), Some(split)) = (self.q.get(..padded), self.split.get_mut(..padded))
            else {
                return;
            };
            self.layouts.split = true;
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

/// One group quantized with `inv` straight into its int8 values and pairs
/// by the Armv7E-M loop, with its sum; None (nothing written) where that
/// loop does not apply: a length not a multiple of 4, or a scale that is
/// zero, subnormal or not finite (there `x · inv` may pass ±127 and the
/// clamp of [`round_q8`] matters).
#[inline(always)]
#[allow(unused_variables)]
fn quantize_group_pairs(
    x: &[f32],
    inv: f32,
    scale: f32,
    q: &mut [i8],
    pairs: &mut [u32],
) -> Option<i32> {
    #[cfg(all(target_arch = "arm", thinkling_arm_dsp, thinkling_arm_fp16))]
    {
        let quads = x.len() / 4;
        let fits = x.len().is_multiple_of(4)
            && quads > 0
            && q.len() >= x.len()
            && pairs.len() >= 2 * quads
            && (f32::MIN_POSITIVE..=f32::MAX).contains(&scale);
        if fits {
            // SAFETY: `x` and `q` hold `4 · quads` elements and `pairs`
            // `2 · quads` words (checked above); a normal finite scale
            // keeps every `|x · inv|` within a few ulps of 127.
            return Some(unsafe {
                super::arm::quantize_q8_pairs(
                    x.as_ptr(),
                    inv,
                    q.as_mut_ptr(),
                    pairs.as_mut_ptr(),
                    quads,
                )
            });
        }
    }
    None
}

/// `round_q8(v · inv)` of every element of `x` (at most 32, a multiple of
/// 4) into `q` and their SXTB16 pairs into `pairs`, by the Armv7E-M loop
/// of the Q8 products; false (nothing written) where it does not apply.
/// `amax` is `abs_max(x)`: below `127.5 / inv` every `v · inv` rounds
/// inside the int8 range, where that loop (which has no clamp) and
/// [`round_q8`] agree, whatever the scale `inv` came from.
#[inline(always)]
#[allow(unused_variables)]
pub(crate) fn round_q8_pairs(
    x: &[f32],
    amax: f32,
    inv: f32,
    q: &mut [i8],
    pairs: &mut [u32],
) -> bool {
    #[cfg(all(target_arch = "arm", thinkling_arm_dsp, thinkling_arm_fp16))]
    {
        let quads = x.len() / 4;
        let fits = x.len().is_multiple_of(4)
            && (1..=8).contains(&quads)
            && q.len() >= x.len()
            && pairs.len() >= 2 * quads
            && amax * inv < 127.5;
        if fits {
            // SAFETY: `x` and `q` hold `4 · quads` elements and `pairs`
            // `2 · quads` words (checked above).
            unsafe {
                super::arm::quantize_q8_pairs(
                    x.as_ptr(),
                    inv,
                    q.as_mut_ptr(),
                    pairs.as_mut_ptr(),
                    quads,
                );
            }
            return true;
        }
    }
    false
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
pub(crate) fn abs_max(x: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (m, v) in lanes.iter_mut().zip(c) {
            *m = larger(*m, v.abs());
        }
    }
    lanes
        .iter()
        .chain(tail)
        .fold(0f32, |m, v| larger(m, v.abs()))
}

/// `m.max(a)` for `m` not NaN, as a compare and select: `f32::max` is a
/// library call on FPUs without VMAXNM (Cortex-M4); NaNs are skipped the
/// same way.
#[inline(always)]
fn larger(m: f32, a: f32) -> f32 {
    if a > m {
        a
    } else {
        m
    }
}

/// Words of [`QuantizedActivations`]'s SXTB16 pair layout for `len`
/// elements (two per four, the last four padded with zeros).
pub const fn pair_words(len: usize) -> usize {
    len.div_ceil(4) * 2
}

/// Writes `q` in the SXTB16 pair layout into `pairs` (as far as both go).
pub(super) fn fill_pairs(q: &[i8], pairs: &mut [u32]) {
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
pub(crate) fn round_q8(y: f32) -> i8 {
    let c = y.clamp(-127.0, 127.0);
    let t = c as i32;
    let f = c - t as f32;
    (t + (f >= 0.5) as i32 - (f <= -0.5) as i32) as i8
}

/// The operands of one quantized matvec, checked against its weights
/// ([`QuantizedActivations::operands`]).
pub(crate) struct Operands<'x> {
    /// The int8 activations, one per column.
    pub xq: &'x [i8],
    /// Activation scales, one per group of a row.
    pub xs: &'x [f32],
    /// `Σ q` per group.
    pub xsum: &'x [i32],
    /// The Q4 even/odd split (empty for Q8).
    pub split: &'x [i8],
    /// The SXTB16 pairs (filled where `layouts.pairs` says so).
    #[cfg_attr(
        not(all(target_arch = "arm", thinkling_arm_dsp, thinkling_arm_fp16)),
        allow(dead_code)
    )]
    pub pairs: &'x [u32],
    #[cfg_attr(
        not(all(target_arch = "arm", thinkling_arm_dsp, thinkling_arm_fp16)),
        allow(dead_code)
    )]
    pub layouts: Layouts,
    pub group: usize,
    /// Groups per row.
    pub gpr: usize,
}
