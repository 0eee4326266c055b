//! `pressure` collector: pressure stall information (PSI) totals from /proc/pressure.
//!
//! Like node_exporter 1.5, CPU reports only the `some` line (waiting); IO and memory report both
//! `some` (waiting) and `full` (stalled). Kernels without PSI give no data.

use super::expo::{Type, W};
use super::{parse_u64, Ctx, NodeError};

const RESOURCES: [&str; 3] = ["cpu", "io", "memory"];

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    // [resource][some, full] in seconds.
    let mut totals = [[None::<f64>; 2]; 3];
    for (i, res) in RESOURCES.iter().enumerate() {
        let rel = match *res {
            "cpu" => "pressure/cpu",
            "io" => "pressure/io",
            _ => "pressure/memory",
        };
        let (text, path) = match cx.files.read(&cx.opts.procfs, rel) {
            Ok(t) => t,
            Err(e) if e.is_not_found() => {
                return Err(NodeError::NoData(
                    "pressure information is unavailable, you need a Linux kernel >= 4.20 and/or CONFIG_PSI",
                ))
            }
            Err(e) => return Err(e),
        };
        for line in text.lines() {
            let mut f = line.split_whitespace();
            let slot = match f.next() {
                Some("some") => 0,
                Some("full") => 1,
                _ => continue,
            };
            for kv in f {
                if let Some(t) = kv.strip_prefix("total=") {
                    let us = parse_u64(t, path)?;
                    totals[i][slot] = Some(us as f64 / 1000.0 / 1000.0);
                }
            }
        }
    }
    let [cpu, io, mem] = totals;
    w.single(
        "node_pressure_cpu_waiting_seconds_total",
        "Total time in seconds that processes have waited for CPU time",
        Type::Counter,
        cpu[0].unwrap_or(0.0),
    );
    w.single(
        "node_pressure_io_waiting_seconds_total",
        "Total time in seconds that processes have waited due to IO congestion",
        Type::Counter,
        io[0].unwrap_or(0.0),
    );
    w.single(
        "node_pressure_io_stalled_seconds_total",
        "Total time in seconds no process could make progress due to IO congestion",
        Type::Counter,
        io[1].unwrap_or(0.0),
    );
    w.single(
        "node_pressure_memory_waiting_seconds_total",
        "Total time in seconds that processes have waited for memory",
        Type::Counter,
        mem[0].unwrap_or(0.0),
    );
    w.single(
        "node_pressure_memory_stalled_seconds_total",
        "Total time in seconds no process could make progress due to memory congestion",
        Type::Counter,
        mem[1].unwrap_or(0.0),
    );
    Ok(())
}
