//! `softnet` collector: per-CPU packets processed, dropped and out-of-quota counts from
//! /proc/net/softnet_stat (one row of hexadecimal columns per CPU).

use super::expo::{Type, W};
use super::{Ctx, NodeError};

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    let (text, path) = cx.files.read(&cx.opts.procfs, "net/softnet_stat")?;
    // (processed, dropped, times_squeezed) per CPU, in row order.
    let mut rows: Vec<[f64; 3]> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut f = line.split_whitespace();
        let mut row = [0.0; 3];
        for slot in &mut row {
            let x = f
                .next()
                .ok_or_else(|| NodeError::parse(path, format!("short row {line:?}")))?;
            *slot = u32::from_str_radix(x, 16)
                .map_err(|_| NodeError::parse(path, format!("invalid hex {x:?}")))?
                as f64;
        }
        rows.push(row);
    }
    const FAMILIES: [(usize, &str, &str); 3] = [
        (1, "node_softnet_dropped_total", "Number of dropped packets"),
        (
            0,
            "node_softnet_processed_total",
            "Number of processed packets",
        ),
        (
            2,
            "node_softnet_times_squeezed_total",
            "Number of times processing packets ran out of quota",
        ),
    ];
    let cpus: Vec<String> = (0..rows.len()).map(|i| i.to_string()).collect();
    for (col, name, help) in FAMILIES {
        w.family(&[name], &[help], Type::Counter);
        for (cpu, row) in cpus.iter().zip(&rows) {
            w.sample(&[name], &[("cpu", cpu)], row[col]);
        }
    }
    Ok(())
}
