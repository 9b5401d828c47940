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
    let cols = w.cols();
    match w.dtype {
        DType::Q8 => {
            o.layouts.pairs == Some(DType::Q8)
                && q8_rows_dsp(out, w.data, cols, s, o.group, o.xq, o.pairs, o.xs)
        }
        DType::Q4 => {
            o.layouts.pairs == Some(DType::Q4)
                && q4_rows_dsp(out, w.data, cols, s, o.group, o.xq, o.pairs, o.xs, o.xsum)
        }
        DType::F32 | DType::F16 => false,
    }
}

/// A scale table's bytes, bytes per scale and whether they are halves
/// (None for a table the native kernels do not read raw).
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
    let (Some(tail_x), Some(tail_pairs)) = (xq.get(tail..cols), pairs.get(tail / 2..)) else {
        return false;
    };
    // Read only when there is a short last group.
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
                    groups::q8_groups_f16(w, x, ws, xsp, whole, group / 16)
                } else {
                    groups::q8_groups_f32(w, x, ws, xsp, whole, group / 16)
                }
            };
        }
        if tail < cols {
            let Some(row_tail) = row.get(tail..) else {
                return false;
            };
            let isum = super::dot_i8_pairs_tail(row_tail, tail_pairs, tail_x);
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
    let Some(tail_x) = xq.get(tail..cols) else {
        return false;
    };
    // Read only when there is a short last group.
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
                    groups::q4_groups32_f16(w, x, ws, xsp, sump, whole)
                } else {
                    groups::q4_groups32_f32(w, x, ws, xsp, sump, whole)
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
