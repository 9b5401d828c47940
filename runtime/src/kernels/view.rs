//! [`TensorView`]: a weight matrix borrowed from the blob, and the readers
//! of its bytes (little-endian f32 and f16, per-group scale tables).

use super::scalar::f16_bits_to_f32;
use super::Mismatch;
use crate::format::{DType, ScaleType, TensorRecord};

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

    /// Rows `r0..r1` as a tensor of their own (the batched pass applies a
    /// block of rows to every token while it stays in cache).
    #[inline]
    pub fn row_range(&self, r0: usize, r1: usize) -> Result<TensorView<'a>, Mismatch> {
        let outside = Mismatch("row range outside the tensor");
        let rb = self.row_bytes();
        let sb = self.groups_per_row() * crate::format::scale_bytes(self.scale_type);
        Ok(TensorView {
            data: self.data.get(r0 * rb..r1 * rb).ok_or(outside)?,
            scales: if sb == 0 {
                self.scales
            } else {
                self.scales.get(r0 * sb..r1 * sb).ok_or(outside)?
            },
            rows: u32::try_from(r1.saturating_sub(r0)).map_err(|_| outside)?,
            ..*self
        })
    }

    /// Dequantizes row `r` into `out` (one embedding lookup).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) -> Result<(), Mismatch> {
        let rb = self.row_bytes();
        let data = self
            .data
            .get(r * rb..(r + 1) * rb)
            .ok_or(Mismatch("row outside the tensor"))?;
        if out.len() != self.cols() {
            return Err(Mismatch("output length differs from the row"));
        }
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
                let scales = self
                    .scales
                    .get(r * g * sb..(r + 1) * g * sb)
                    .ok_or(Mismatch("scales of a row outside the table"))?;
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
        Ok(())
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

/// A scale table read as f32 whatever its storage (the storage type is
/// matched once per matvec, not per group).
pub(crate) trait Scales {
    /// Scale `i` (0.0 past the end).
    fn get(&self, i: usize) -> f32;
    /// Scales in the table (the x86-64 kernels check their reads with it).
    #[allow(dead_code)]
    fn len(&self) -> usize;
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

pub(crate) struct F32Scales<'a>(pub &'a [u8]);

impl Scales for F32Scales<'_> {
    #[inline(always)]
    fn get(&self, i: usize) -> f32 {
        self.0.get(i * 4..i * 4 + 4).map_or(0.0, le_f32)
    }
    fn len(&self) -> usize {
        self.0.len() / 4
    }
    fn f32_bytes(&self) -> Option<&[u8]> {
        Some(self.0)
    }
}

pub(crate) struct F16Scales<'a>(pub &'a [u8]);

impl Scales for F16Scales<'_> {
    #[inline(always)]
    fn get(&self, i: usize) -> f32 {
        self.0
            .get(i * 2..i * 2 + 2)
            .map_or(0.0, |b| f16_bits_to_f32(le_u16(b)))
    }
    fn len(&self) -> usize {
        self.0.len() / 2
    }
    fn f16_bytes(&self) -> Option<&[u8]> {
        Some(self.0)
    }
}

/// One query head against the cached rows: position `p`'s key and value
/// are `keys` / `values[p · kv_dim + off..][..q.len()]`, and its score is
/// `q · key · scale`.
pub(crate) struct Head<'a, T> {
    pub q: &'a [f32],
    pub keys: &'a [T],
    pub values: &'a [T],
    /// The Q8 cache's f16 scales, `[position][group]` (empty for the float
    /// caches, whose native kernels never read them).
    pub key_scales: &'a [u16],
    pub value_scales: &'a [u16],
    pub kv_dim: usize,
    pub off: usize,
    pub scale: f32,
}

impl<T> Head<'_, T> {
    /// Whether a native kernel reading `lanes` elements at a time applies
    /// over `positions` cached rows: the query a nonzero multiple of `lanes`
    /// long, room for it in `out`, and every row's head inside `keys` and
    /// `values`.
    #[cfg_attr(
        not(any(
            target_arch = "x86_64",
            all(target_arch = "arm", thinkling_arm_dsp, thinkling_arm_fp16)
        )),
        allow(dead_code)
    )]
    pub(crate) fn fits(&self, out: &[f32], positions: usize, lanes: usize) -> bool {
        let hd = self.q.len();
        let rows = positions.saturating_mul(self.kv_dim);
        hd != 0
            && hd.is_multiple_of(lanes)
            && out.len() >= hd
            && self.off + hd <= self.kv_dim
            && self.keys.len() >= rows
            && self.values.len() >= rows
    }
}
