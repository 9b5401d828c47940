//! The Q8/Q4 row drivers of Cortex-M4/M7 with an FPU: each row's whole
//! groups in one assembly loop ([`super::groups`]), a short last group word
//! by word, with the portable kernels' results bit for bit.

use super::groups;
use crate::format::DType;
use crate::kernels::activations::{pair_words, Operands};
use crate::kernels::view::{F16Scales, F32Scales, Scales, TensorView};

/// Q8/Q4 rows where the activations hold the pair layout of this dtype's
/// kernel; false (nothing written) where no loop here applies.
pub fn quantized_rows<S: Scales>(
    out: &mut [f32],
    w: &TensorView<'_>,
    o: &Operands<'_>,
    s: &S,
) -> bool {
    let Some(scales) = RawScales::of(s) else {
        return false;
    };
    if o.layouts.pairs != Some(w.dtype) {
        return false;
    }
    match w.dtype {
        DType::Q8 => q8_rows_dsp(out, w.data, w.cols(), &scales, o),
        DType::Q4 => q4_rows_dsp(out, w.data, w.cols(), &scales, o),
        DType::F32 | DType::F16 => false,
    }
}

/// A scale table as the assembly loops read it: its bytes, halves or f32s.
struct RawScales<'a> {
    bytes: &'a [u8],
    half: bool,
}

impl<'a> RawScales<'a> {
    /// None for a table the native kernels do not read raw.
    fn of<S: Scales>(scales: &'a S) -> Option<Self> {
        match (scales.f16_bytes(), scales.f32_bytes()) {
            (Some(bytes), _) => Some(Self { bytes, half: true }),
            (None, Some(bytes)) => Some(Self { bytes, half: false }),
            (None, None) => None,
        }
    }

    /// Whether the table holds `gpr` scales for each of `rows` rows.
    fn covers(&self, rows: usize, gpr: usize) -> bool {
        self.bytes.len() >= rows.saturating_mul(gpr * self.width())
    }

    fn width(&self) -> usize {
        if self.half {
            2
        } else {
            4
        }
    }

    /// The rows of `data` (`row_bytes` each) with their `gpr` scales' bytes.
    fn rows<'d>(
        &self,
        data: &'d [u8],
        row_bytes: usize,
        gpr: usize,
    ) -> impl Iterator<Item = (&'d [u8], &'a [u8])> {
        let bytes: &'a [u8] = self.bytes;
        data.chunks_exact(row_bytes)
            .zip(bytes.chunks_exact(gpr * self.width()))
    }

    /// Scale `g` of a row's scale bytes.
    #[inline(always)]
    fn get(&self, row_scales: &[u8], g: usize) -> f32 {
        if self.half {
            F16Scales(row_scales).get(g)
        } else {
            F32Scales(row_scales).get(g)
        }
    }
}

/// Q8 rows on Armv7E-M: each row's whole groups in one assembly loop over
/// the activations' SXTB16 pair layout, its short last group word by word,
/// with the portable kernel's results bit for bit. Returns false (nothing
/// written) where it does not apply: a group size not a multiple of 16,
/// activations without pairs, or a scale table shorter than the rows.
fn q8_rows_dsp(
    out: &mut [f32],
    data: &[u8],
    cols: usize,
    scales: &RawScales<'_>,
    o: &Operands<'_>,
) -> bool {
    let (group, xq, pairs, xs) = (o.group, o.xq, o.pairs, o.xs);
    let gpr = cols.div_ceil(group.max(1));
    if group == 0
        || !group.is_multiple_of(16)
        || cols == 0
        || xq.len() < cols
        || pairs.len() < pair_words(cols)
        || xs.len() < gpr
        || data.len() < out.len().saturating_mul(cols)
        || !scales.covers(out.len(), gpr)
    {
        return false;
    }
    let whole = cols / group;
    let tail = whole * group;
    let (Some(tail_x), Some(tail_pairs)) = (xq.get(tail..cols), pairs.get(tail / 2..)) else {
        return false;
    };
    // Read only when there is a short last group.
    let tail_sx = xs.get(whole).copied().unwrap_or(0.0);
    for (o, (row, row_scales)) in out.iter_mut().zip(scales.rows(data, cols, gpr)) {
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
            acc = unsafe { groups::q8_groups(w, x, ws, xsp, whole, group / 16, scales.half) };
        }
        if tail < cols {
            let Some(row_tail) = row.get(tail..) else {
                return false;
            };
            let isum = super::dot_i8_pairs_tail(row_tail, tail_pairs, tail_x);
            acc += isum as f32 * (scales.get(row_scales, whole) * tail_sx);
        }
        *o = acc;
    }
    true
}

/// Q4 rows on Armv7E-M: each row's whole groups of 32 in one assembly loop
/// over the activations' Q4 pair order, its short last group nibble by
/// nibble, with the portable kernel's results bit for bit. Returns false
/// (nothing written) where it does not apply: another group size or a
/// buffer or scale table shorter than the rows.
fn q4_rows_dsp(
    out: &mut [f32],
    data: &[u8],
    cols: usize,
    scales: &RawScales<'_>,
    o: &Operands<'_>,
) -> bool {
    let (xq, pairs, xs, xsum) = (o.xq, o.pairs, o.xs, o.xsum);
    let rb = cols.div_ceil(2);
    let gpr = cols.div_ceil(32);
    let whole = cols / 32;
    if o.group != 32
        || cols == 0
        || xq.len() < cols
        || pairs.len() < whole * 16
        || xs.len() < gpr
        || xsum.len() < gpr
        || data.len() < out.len().saturating_mul(rb)
        || !scales.covers(out.len(), gpr)
    {
        return false;
    }
    let tail = whole * 32;
    let Some(tail_x) = xq.get(tail..cols) else {
        return false;
    };
    // Read only when there is a short last group.
    let (tail_sx, tail_sum) = (
        xs.get(whole).copied().unwrap_or(0.0),
        xsum.get(whole).copied().unwrap_or(0),
    );
    for (o, (row, row_scales)) in out.iter_mut().zip(scales.rows(data, rb, gpr)) {
        let mut acc = 0f32;
        if whole > 0 {
            let (w, x, ws) = (row.as_ptr(), pairs.as_ptr(), row_scales.as_ptr());
            let (xsp, sump) = (xs.as_ptr(), xsum.as_ptr());
            // SAFETY: the row holds `16 · whole` bytes, `pairs` `16 · whole`
            // words, `row_scales` `whole` scales, `xs` and `xsum` `whole`
            // entries (all checked above).
            acc = unsafe { groups::q4_groups32(w, x, ws, xsp, sump, whole, scales.half) };
        }
        if tail < cols {
            let mut isum = 0i32;
            for (i, xv) in tail_x.iter().enumerate() {
                let e = tail + i;
                let byte = row.get(e / 2).copied().unwrap_or(0);
                isum += ((byte >> (4 * (e & 1))) & 0x0f) as i32 * *xv as i32;
            }
            acc += (isum - 8 * tail_sum) as f32 * (scales.get(row_scales, whole) * tail_sx);
        }
        *o = acc;
    }
    true
}
