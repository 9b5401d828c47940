//! `metrics.csv`: one row per logged step, plus held-out accuracy when measured.

use anyhow::{Context, Result};
use std::path::Path;

pub const HEADER: &str =
    "step,loss,think_loss,answer_loss,lr,tokens_per_s,accuracy,moe_aux_loss,expert_usage";

#[derive(Clone, Debug, PartialEq)]
pub struct MetricRow {
    /// Steps completed.
    pub step: u64,
    pub loss: f32,
    pub think_loss: f32,
    pub answer_loss: f32,
    pub lr: f64,
    pub tokens_per_s: f64,
    /// Held-out exact match, only on evaluation rows.
    pub accuracy: Option<f32>,
    /// Mean load-balancing loss of the MoE layers (NaN for dense models).
    pub moe_aux_loss: f32,
    /// Share of tokens per expert, `/` between experts, `;` between MoE
    /// layers (empty for dense models).
    pub expert_usage: String,
}

impl MetricRow {
    pub fn to_csv(&self) -> String {
        let f = |v: f32| {
            if v.is_finite() {
                format!("{v:.5}")
            } else {
                String::new()
            }
        };
        format!(
            "{},{},{},{},{:.6e},{:.1},{},{},{}",
            self.step,
            f(self.loss),
            f(self.think_loss),
            f(self.answer_loss),
            self.lr,
            self.tokens_per_s,
            self.accuracy.map(|a| format!("{a:.4}")).unwrap_or_default(),
            f(self.moe_aux_loss),
            self.expert_usage
        )
    }

    pub fn from_csv(line: &str) -> Option<Self> {
        let c: Vec<&str> = line.split(',').collect();
        // Files written before the MoE columns have 7.
        if c.len() != 7 && c.len() != 9 {
            return None;
        }
        let f = |s: &str| {
            if s.is_empty() {
                Some(f32::NAN)
            } else {
                s.parse().ok()
            }
        };
        Some(Self {
            step: c[0].parse().ok()?,
            loss: f(c[1])?,
            think_loss: f(c[2])?,
            answer_loss: f(c[3])?,
            lr: c[4].parse().ok()?,
            tokens_per_s: c[5].parse().ok()?,
            accuracy: if c[6].is_empty() {
                None
            } else {
                Some(c[6].parse().ok()?)
            },
            moe_aux_loss: match c.get(7) {
                Some(v) => f(v)?,
                None => f32::NAN,
            },
            expert_usage: c.get(8).map(|s| s.to_string()).unwrap_or_default(),
        })
    }
}

pub fn to_csv(rows: &[MetricRow]) -> String {
    let mut s = String::from(HEADER);
    s.push('\n');
    for r in rows {
        s.push_str(&r.to_csv());
        s.push('\n');
    }
    s
}

/// Rows of an existing file (unparsable lines are skipped).
pub fn read(path: &Path) -> Result<Vec<MetricRow>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(MetricRow::from_csv)
        .collect())
}
