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

    /// Whether a product of `out_len` rows of `row_bytes` bytes (`cols`
    /// weights, `gpr` groups) reads inside `data`, this table and the
    /// activations `o`.
    fn fit(
        &self,
        out_len: usize,
        data: &[u8],
        row_bytes: usize,
        cols: usize,
        gpr: usize,
        o: &Operands<'_>,
    ) -> bool {
        cols != 0
            && o.xq.len() >= cols
            && o.xs.len() >= gpr
            && data.len() >= out_len.saturating_mul(row_bytes)
            && self.bytes.len() >= out_len.saturating_mul(gpr * self.width())
    }

    fn width(&self) -> usize {
        if self.half {
            2
        } else {
            4
        }
    }

    /// Scale `g` of the row whose scales start at `ws`.
    ///
    /// # Safety
    /// `ws` points at the row's scales, which hold scale `g`.
    #[inline(always)]
    unsafe fn get(&self, ws: *const u8, g: usize) -> f32 {
        let bytes = core::slice::from_raw_parts(ws.add(g * self.width()), self.width());
        if self.half {
            F16Scales(bytes).get(0)
        } else {
            F32Scales(bytes).get(0)
        }
    }

    /// `out[r] = row(weights of row r, scales of row r)` for every row of
    /// `row_bytes` weight bytes and `gpr` scales, with nothing but two
    /// pointers carried from row to row (the row loop runs between the
    /// assembly loops, where registers are scarce).
    ///
    /// # Safety
    /// `data` holds `out.len()` rows and the table covers them (`covers`).
    #[inline(always)]
    unsafe fn each_row(
        &self,
        out: &mut [f32],
        data: &[u8],
        row_bytes: usize,
        gpr: usize,
        mut row: impl FnMut(*const u8, *const u8) -> f32,
    ) {
        let (mut w, mut ws) = (data.as_ptr(), self.bytes.as_ptr());
        let step = gpr * self.width();
        for o in out.iter_mut() {
            *o = row(w, ws);
            w = w.add(row_bytes);
            ws = ws.add(step);
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
        || pairs.len() < pair_words(cols)
        || !scales.fit(out.len(), data, cols, cols, gpr, o)
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
    let (x, xsp, n16) = (pairs.as_ptr(), xs.as_ptr(), group / 16);
    if n16 == 2 && whole > 0 {
        // SAFETY: as below; row `r` starts `r · cols` bytes into `data` and
        // its scales `r · gpr` scales into the table.
        unsafe { q8_rows32(out, data, cols, scales, o, whole, gpr) };
        return true;
    }
    // SAFETY: `data` holds every row and the scale table covers them
    // (checked above). Each row holds `whole · group` bytes, `pairs` `whole
    // · group / 2` words, each row's scales `whole` scales and `xs` `whole`
    // f32s; `group / 16 ≥ 1`. The short last group is `cols - tail` bytes
    // after the row's first `tail` and its scale the row's scale `whole`.
    unsafe {
        scales.each_row(out, data, cols, gpr, |w, ws| {
            let mut acc = 0f32;
            if whole > 0 {
                acc = groups::q8_groups(w, x, ws, xsp, whole, n16, scales.half);
            }
            if tail < cols {
                let row_tail = core::slice::from_raw_parts(w.add(tail), cols - tail);
                let isum = super::dot_i8_pairs_tail(row_tail, tail_pairs, tail_x);
                acc += isum as f32 * (scales.get(ws, whole) * tail_sx);
            }
            acc
        });
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
        || pairs.len() < whole * 16
        || xsum.len() < gpr
        || !scales.fit(out.len(), data, rb, cols, gpr, o)
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
    let (x, xsp, sump) = (pairs.as_ptr(), xs.as_ptr(), xsum.as_ptr());
    // SAFETY: `data` holds every row and the scale table covers them
    // (checked above). Each row holds `16 · whole` bytes (and `rb` in all),
    // `pairs` `16 · whole` words, each row's scales `whole` scales (and one
    // more for a short last group), `xs` and `xsum` `whole` entries.
    unsafe {
        scales.each_row(out, data, rb, gpr, |w, ws| {
            let mut acc = 0f32;
            if whole > 0 {
                acc = groups::q4_groups32(w, x, ws, xsp, sump, whole, scales.half);
            }
            if tail < cols {
                let row = core::slice::from_raw_parts(w, rb);
                let mut isum = 0i32;
                for (i, xv) in tail_x.iter().enumerate() {
                    let e = tail + i;
                    let byte = row.get(e / 2).copied().unwrap_or(0);
                    isum += ((byte >> (4 * (e & 1))) & 0x0f) as i32 * *xv as i32;
                }
                acc += (isum - 8 * tail_sum) as f32 * (scales.get(ws, whole) * tail_sx);
            }
            acc
        });
    }
    true
}

/// [`q8_rows_dsp`] for groups of 32 and at least one whole group per row:
/// the whole groups of every pair of rows in one assembly loop
/// ([`groups::q8_row_pairs32`]), an odd last row on its own, then each
/// row's short last group added as the portable loop adds it, last.
///
/// # Safety
/// As [`q8_rows_dsp`] checks: `data` holds every row of `cols` bytes, the
/// scale table `gpr` scales per row, the activations `cols` elements with
/// their pairs and `gpr` scales; `whole = cols / 32 ≥ 1`.
unsafe fn q8_rows32(
    out: &mut [f32],
    data: &[u8],
    cols: usize,
    scales: &RawScales<'_>,
    o: &Operands<'_>,
    whole: usize,
    gpr: usize,
) {
    let (x, xsp) = (o.pairs.as_ptr(), o.xs.as_ptr());
    let ws_row = gpr * scales.width();
    let pairs = out.len() / 2;
    if pairs > 0 {
        groups::q8_row_pairs32(
            out.as_mut_ptr(),
            pairs,
            data.as_ptr(),
            cols,
            x,
            scales.bytes.as_ptr(),
            ws_row,
            xsp,
            whole,
            scales.half,
        );
    }
    if let Some(last) = out.get_mut(2 * pairs) {
        let r = 2 * pairs;
        *last = groups::q8_groups(
            data.as_ptr().add(r * cols),
            x,
            scales.bytes.as_ptr().add(r * ws_row),
            xsp,
            whole,
            2,
            scales.half,
        );
    }
    let tail = whole * 32;
    if tail < cols {
        let (Some(tail_x), Some(tail_pairs)) = (o.xq.get(tail..cols), o.pairs.get(tail / 2..))
        else {
            return;
        };
        let tail_sx = o.xs.get(whole).copied().unwrap_or(0.0);
        let (mut w, mut ws) = (data.as_ptr(), scales.bytes.as_ptr());
        for acc in out.iter_mut() {
            let row_tail = core::slice::from_raw_parts(w.add(tail), cols - tail);
            let isum = super::dot_i8_pairs_tail(row_tail, tail_pairs, tail_x);
            *acc += isum as f32 * (scales.get(ws, whole) * tail_sx);
            w = w.add(cols);
            ws = ws.add(ws_row);
        }
    }
}
