//! Group quantization along rows: symmetric, one scale per group,
//! the last group of a row may be short, a group never spans two rows.
//! The writer (export) and the reader (engine) share these functions.

use crate::format::{DType, ScaleType};
use half::f16;

/// Largest quantized magnitude of each format.
pub const Q8_MAX: f32 = 127.0;
pub const Q4_MAX: f32 = 7.0;

/// Rounds a scale through its storage type, so quantization uses the scale the
/// reader will see.
pub fn stored_scale(s: f32, t: ScaleType) -> f32 {
    match t {
        ScaleType::F32 => s,
        ScaleType::F16 => f16::from_f32(s).to_f32(),
    }
}

pub fn write_scale(out: &mut [u8], s: f32, t: ScaleType) {
    match t {
        ScaleType::F32 => copy_prefix(out, &s.to_le_bytes()),
        ScaleType::F16 => copy_prefix(out, &f16::from_f32(s).to_le_bytes()),
    }
}

fn copy_prefix(out: &mut [u8], bytes: &[u8]) {
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = *b;
    }
}

#[inline(always)]
pub fn read_scale(bytes: &[u8], index: usize, t: ScaleType) -> f32 {
    match t {
        ScaleType::F32 => match bytes.get(index * 4..index * 4 + 4) {
            Some(b) => f32::from_le_bytes(crate::bytes::arr4(b)),
            None => 0.0,
        },
        ScaleType::F16 => match bytes.get(index * 2..index * 2 + 2) {
            Some(b) => f16::from_le_bytes(crate::bytes::arr2(b)).to_f32(),
            None => 0.0,
        },
    }
}

fn round_half_away(x: f32) -> f32 {
    libm::roundf(x)
}

/// Quantizes one row `x` into `data` (its row bytes) and `scales` (its
/// `ceil(len / group)` scales). Returns the group scales' count.
pub fn quantize_row(
    x: &[f32],
    dtype: DType,
    group: usize,
    scale_type: ScaleType,
    data: &mut [u8],
    scales: &mut [u8],
) -> usize {
    let sb = crate::format::scale_bytes(scale_type);
    let qmax = match dtype {
        DType::Q8 => Q8_MAX,
        DType::Q4 => Q4_MAX,
        DType::F32 => {
            for (o, v) in data.chunks_exact_mut(4).zip(x) {
                o.copy_from_slice(&v.to_le_bytes());
            }
            return 0;
        }
        DType::F16 => {
            for (o, v) in data.chunks_exact_mut(2).zip(x) {
                o.copy_from_slice(&f16::from_f32(*v).to_le_bytes());
            }
            return 0;
        }
    };
    let mut n = 0;
    for (g, chunk) in x.chunks(group).enumerate() {
        let amax = chunk.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = stored_scale(amax / qmax, scale_type);
        write_scale(crate::bytes::suffix_mut(scales, g * sb), scale, scale_type);
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        for (i, v) in chunk.iter().enumerate() {
            let q = round_half_away(v * inv)
                .clamp(-qmax - if dtype == DType::Q4 { 1.0 } else { 0.0 }, qmax)
                as i32;
            let idx = g * group + i;
            match dtype {
                DType::Q8 => {
                    if let Some(b) = data.get_mut(idx) {
                        *b = q as i8 as u8;
                    }
                }
                _ => {
                    let nib = (q + 8) as u8 & 0x0f;
                    if let Some(b) = data.get_mut(idx / 2) {
                        if idx.is_multiple_of(2) {
                            *b = (*b & 0xf0) | nib;
                        } else {
                            *b = (*b & 0x0f) | (nib << 4);
                        }
                    }
                }
            }
        }
        n += 1;
    }
    n
}

/// Dequantizes one row (`data`/`scales` of that row) into `out`.
pub fn dequantize_row(
    data: &[u8],
    scales: &[u8],
    dtype: DType,
    group: usize,
    scale_type: ScaleType,
    out: &mut [f32],
) {
    match dtype {
        DType::F32 => {
            for (o, b) in out.iter_mut().zip(data.chunks_exact(4)) {
                *o = f32::from_le_bytes(crate::bytes::arr4(b));
            }
        }
        DType::F16 => {
            for (o, b) in out.iter_mut().zip(data.chunks_exact(2)) {
                *o = f16::from_le_bytes(crate::bytes::arr2(b)).to_f32();
            }
        }
        DType::Q8 | DType::Q4 => {
            let group = group.max(1);
            for (i, o) in out.iter_mut().enumerate() {
                let s = read_scale(scales, i / group, scale_type);
                let q = if dtype == DType::Q8 {
                    data.get(i).map_or(0, |b| *b as i8 as i32)
                } else {
                    let b = data.get(i / 2).copied().unwrap_or(0x88);
                    let nib = if i % 2 == 0 { b & 0x0f } else { b >> 4 };
                    nib as i32 - 8
                };
                *o = q as f32 * s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_last_group_round_trips() {
        // 172 = 5 * 32 + 12: the last group is short and must keep its own scale.
        let x: [f32; 172] = core::array::from_fn(|i| {
            ((i * 37 % 101) as f32 - 50.0) / 7.0 + if i >= 160 { 100.0 } else { 0.0 }
        });
        for dtype in [DType::Q8, DType::Q4] {
            let mut data = [0u8; 172];
            let mut scales = [0u8; 6 * 4];
            let n = quantize_row(&x, dtype, 32, ScaleType::F32, &mut data, &mut scales);
            assert_eq!(n, 6);
            let mut y = [0f32; 172];
            dequantize_row(&data, &scales, dtype, 32, ScaleType::F32, &mut y);
            let qmax = if dtype == DType::Q8 { Q8_MAX } else { Q4_MAX };
            for (g, (xc, yc)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
                let amax = xc.iter().fold(0f32, |m, v| m.max(v.abs()));
                for (a, b) in xc.iter().zip(yc) {
                    assert!(
                        (a - b).abs() <= amax / qmax / 2.0 + 1e-5,
                        "group {g}: {a} vs {b}"
                    );
                }
            }
        }
    }
}
