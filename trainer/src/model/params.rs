//! Named trainable variables, iterated in name order (deterministic, unlike
//! candle's `VarMap`).

use anyhow::{anyhow, bail, Result};
use candle_core::{Device, Tensor, Var};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct Params {
    vars: BTreeMap<String, Var>,
}

impl Params {
    pub fn insert(&mut self, name: impl Into<String>, var: Var) {
        self.vars.insert(name.into(), var);
    }

    pub fn get(&self, name: &str) -> Result<&Var> {
        self.vars
            .get(name)
            .ok_or_else(|| anyhow!("missing tensor {name:?}"))
    }

    /// The variable as a tensor sharing its storage.
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        Ok(self.get(name)?.as_tensor().clone())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Var)> {
        self.vars.iter()
    }

    pub fn len(&self) -> usize {
        self.vars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    pub fn num_elements(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    /// Tensors by name (for saving).
    pub fn tensors(&self) -> BTreeMap<String, Tensor> {
        self.vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect()
    }

    /// Overwrites every variable from `tensors`, which must hold exactly the
    /// same names and shapes.
    pub fn load(&self, tensors: &BTreeMap<String, Tensor>, device: &Device) -> Result<()> {
        for name in tensors.keys() {
            if !self.vars.contains_key(name) {
                bail!("unexpected tensor {name:?} in checkpoint");
            }
        }
        for (name, var) in &self.vars {
            let t = tensors
                .get(name)
                .ok_or_else(|| anyhow!("checkpoint lacks tensor {name:?}"))?;
            if t.dims() != var.dims() {
                bail!(
                    "tensor {name:?}: checkpoint shape {:?}, model shape {:?}",
                    t.dims(),
                    var.dims()
                );
            }
            var.set(&t.to_device(device)?)?;
        }
        Ok(())
    }
}
