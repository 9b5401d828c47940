//! The quantized activations of several rows (tokens) at once: the buffers
//! a batched pass quantizes each row's input into, and the view the
//! multi-token kernel reads.

use super::{pair_words, Layouts, QuantizedActivations};
use crate::format::DType;
use crate::kernels::{Mismatch, TensorView};

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

/// The quantized activations of `n` rows (tokens) for one matvec input,
/// all with the same length, group size and layouts: row `t`'s values at
/// `t · (width + 1)`, its scales and sums at `t · width`, its pairs at
/// `t · pair_words(width)`. Row 0 starts where the buffers do, so one row
/// is the buffers themselves ([`Self::first`]).
pub(crate) struct ActivationRows<'s> {
    /// Every row's buffers; its length, group size and layouts are what the
    /// rows hold now (`group == 0`: nothing).
    all: QuantizedActivations<'s>,
    /// Longest input a row holds.
    width: usize,
    /// Rows the buffers hold.
    n: usize,
}

impl<'s> ActivationRows<'s> {
    /// `all` as the buffers of `n` rows of `width` elements: each of its
    /// buffers `n` times what one row of `width` needs (see
    /// [`QuantizedActivations::new`]).
    #[inline]
    pub fn new(all: QuantizedActivations<'s>, width: usize, n: usize) -> Self {
        Self { all, width, n }
    }

    /// Row `t`'s buffers, holding nothing.
    #[inline]
    fn buffers(&mut self, t: usize) -> Result<QuantizedActivations<'_>, Mismatch> {
        let (qn, sn, pn) = (self.width + 1, self.width, pair_words(self.width));
        let outside = Mismatch("activation row outside the buffers");
        if t >= self.n {
            return Err(outside);
        }
        let a = &mut self.all;
        Ok(QuantizedActivations::new(
            a.q.get_mut(t * qn..(t + 1) * qn).ok_or(outside)?,
            a.split.get_mut(t * qn..(t + 1) * qn).ok_or(outside)?,
            a.pairs.get_mut(t * pn..(t + 1) * pn).ok_or(outside)?,
            a.scales.get_mut(t * sn..(t + 1) * sn).ok_or(outside)?,
            a.sums.get_mut(t * sn..(t + 1) * sn).ok_or(outside)?,
        ))
    }

    /// The first row as it holds the last one-row [`Self::quantize_for`].
    #[inline]
    pub fn first(&self) -> &QuantizedActivations<'s> {
        &self.all
    }

    /// Row `t` as it holds the last [`Self::quantize_for`].
    #[inline]
    pub fn row(&mut self, t: usize) -> Result<QuantizedActivations<'_>, Mismatch> {
        let a = &self.all;
        let (len, group, layouts) = (a.len, a.group, a.layouts);
        let mut row = self.buffers(t)?;
        row.set_held(len, group, layouts);
        Ok(row)
    }

    /// Whether the rows serve a product with `w` (quantized with its group
    /// size, with the layout its kernels read).
    #[inline]
    pub fn holds(&self, w: &TensorView<'_>) -> bool {
        self.all.holds(w.dtype, w.group as usize)
    }

    /// Makes the first `n` rows of `x` (`cols` each) the input of the next
    /// products: quantized for `w` (its group size and the layout its
    /// kernels read) when `w` is Q8/Q4; for F32/F16 weights the rows hold
    /// nothing, so a quantized weight that follows quantizes `x` itself.
    #[inline]
    pub fn quantize_for(
        &mut self,
        x: &[f32],
        cols: usize,
        n: usize,
        w: &TensorView<'_>,
    ) -> Result<(), Mismatch> {
        let (group, dtype) = (w.group as usize, w.dtype);
        if !matches!(dtype, DType::Q8 | DType::Q4) {
            self.all.set_held(0, 0, Layouts::default());
            return Ok(());
        }
        if x.len() < n.saturating_mul(cols) || cols == 0 || n > self.n {
            return Err(Mismatch("input rows outside their buffers"));
        }
        if n == 1 {
            // Row 0 is the start of the buffers.
            self.all
                .quantize_for(crate::bytes::prefix(x, cols), group, dtype);
            return Ok(());
        }
        let (mut len, mut layouts) = (0, Layouts::default());
        for (t, xt) in x.chunks_exact(cols).take(n).enumerate() {
            let mut a = self.buffers(t)?;
            a.quantize_for(xt, group, dtype);
            len = a.len();
            layouts = a.layouts();
        }
        self.all.set_held(len, group.max(1), layouts);
        Ok(())
    }

    /// The first `n` rows as one operand of a multi-token kernel.
    #[inline]
    pub fn tokens(&self, n: usize) -> TokenActivations<'_> {
        let a = &self.all;
        TokenActivations {
            q: a.q,
            q_stride: self.width + 1,
            scales: a.scales,
            s_stride: self.width,
            tokens: n.min(self.n),
            len: a.len,
            group: a.group,
        }
    }
}
