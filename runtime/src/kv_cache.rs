//! The KV cache: keys and values of every layer and position, in f32 or
//! rounded to f16, and attention of a query over them.

use crate::error::SessionError;
use crate::kernels;
use crate::kernels::nn::{CacheElem, Heads};

/// Element type of the KV cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvDType {
    F32,
    /// Half the cache memory; keys and values are rounded to f16 when stored.
    F16,
}

impl KvDType {
    pub fn bytes(self) -> usize {
        match self {
            KvDType::F32 => 4,
            KvDType::F16 => 2,
        }
    }
}

/// `[layer][position][kv_dim]` keys, then values.
pub(crate) enum KvCache<'m> {
    F32 {
        k: &'m mut [f32],
        v: &'m mut [f32],
    },
    /// f16 bit patterns.
    F16 {
        k: &'m mut [u16],
        v: &'m mut [u16],
    },
}

const OUTSIDE: SessionError = SessionError::Invariant {
    what: "KV cache rows outside the cache",
};

impl KvCache<'_> {
    /// Writes the key and value vectors of one position at element `at`.
    pub fn store(&mut self, at: usize, k: &[f32], v: &[f32]) -> Result<(), SessionError> {
        let n = k.len();
        match self {
            KvCache::F32 { k: kc, v: vc } => {
                let (Some(kd), Some(vd)) = (kc.get_mut(at..at + n), vc.get_mut(at..at + n)) else {
                    return Err(OUTSIDE);
                };
                kd.copy_from_slice(k);
                vd.copy_from_slice(v.get(..n).ok_or(OUTSIDE)?);
            }
            KvCache::F16 { k: kc, v: vc } => {
                let (Some(kd), Some(vd)) = (kc.get_mut(at..at + n), vc.get_mut(at..at + n)) else {
                    return Err(OUTSIDE);
                };
                for (d, s) in kd.iter_mut().zip(k.iter()) {
                    *d = half::f16::from_f32(*s).to_bits();
                }
                for (d, s) in vd.iter_mut().zip(v.iter()) {
                    *d = half::f16::from_f32(*s).to_bits();
                }
            }
        }
        Ok(())
    }

    /// Attention of `q` over the cached `rows` (elements) into `out`.
    pub fn attend(
        &self,
        heads: &Heads,
        q: &[f32],
        out: &mut [f32],
        scores: &mut [f32],
        rows: core::ops::Range<usize>,
    ) -> Result<(), SessionError> {
        match self {
            KvCache::F32 { k, v } => {
                attend(heads, q, out, scores, k.get(rows.clone()), v.get(rows))
            }
            KvCache::F16 { k, v } => {
                attend(heads, q, out, scores, k.get(rows.clone()), v.get(rows))
            }
        }
    }
}

/// [`kernels::nn::attend`] over the cached rows, which must lie inside the
/// cache.
fn attend<T: CacheElem>(
    heads: &Heads,
    q: &[f32],
    out: &mut [f32],
    scores: &mut [f32],
    keys: Option<&[T]>,
    values: Option<&[T]>,
) -> Result<(), SessionError> {
    let (Some(keys), Some(values)) = (keys, values) else {
        return Err(OUTSIDE);
    };
    kernels::nn::attend(heads, q, out, scores, keys, values);
    Ok(())
}
