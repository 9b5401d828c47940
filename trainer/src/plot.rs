//! `plot.svg`: training losses (left axis) and held-out accuracy (right axis).

use crate::metrics::MetricRow;
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

/// A curve: its legend, colour and the value it reads from a row.
type Series = (&'static str, RGBColor, fn(&MetricRow) -> f32);

pub fn write(path: &Path, rows: &[MetricRow]) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("plot {}: {e}", path.display());
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let max_step = rows.iter().map(|r| r.step).max().unwrap_or(1).max(1) as f64;
    let max_loss = rows
        .iter()
        .flat_map(|r| [r.loss, r.think_loss, r.answer_loss])
        .filter(|v| v.is_finite())
        .fold(0.1f32, f32::max) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption("training", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .right_y_label_area_size(50)
        .build_cartesian_2d(0f64..max_step, 0f64..max_loss * 1.05)
        .map_err(|e| err(&e))?
        .set_secondary_coord(0f64..max_step, 0f64..1.0);
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss")
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .configure_secondary_axes()
        .y_desc("held-out exact match")
        .draw()
        .map_err(|e| err(&e))?;
    let series: [Series; 3] = [
        ("loss", BLACK, |r| r.loss),
        ("think loss", BLUE, |r| r.think_loss),
        ("answer loss", RED, |r| r.answer_loss),
    ];
    for (name, color, f) in series {
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| f(r).is_finite())
            .map(|r| (r.step as f64, f(r) as f64))
            .collect();
        chart
            .draw_series(LineSeries::new(pts, color))
            .map_err(|e| err(&e))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    let acc: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| r.accuracy.map(|a| (r.step as f64, a as f64)))
        .collect();
    chart
        .draw_secondary_series(LineSeries::new(acc, GREEN.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("held-out exact match")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
