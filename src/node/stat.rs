//! `stat` collector: interrupts, context switches, boot time, forks and runnable/blocked
//! processes from /proc/stat.

use super::expo::{Type, W};
use super::{parse_f64, Ctx, NodeError};

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    let (text, path) = cx.files.read(&cx.opts.procfs, "stat")?;
    // intr, ctxt, btime, processes, procs_running, procs_blocked
    let mut v = [None::<f64>; 6];
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let idx = match f.next() {
            Some("intr") => 0,
            Some("ctxt") => 1,
            Some("btime") => 2,
            Some("processes") => 3,
            Some("procs_running") => 4,
            Some("procs_blocked") => 5,
            _ => continue,
        };
        let x = f
            .next()
            .ok_or_else(|| NodeError::parse(path, format!("missing value in {line:?}")))?;
        v[idx] = Some(parse_f64(x, path)?);
    }
    const FAMILIES: [(&str, &str, Type); 6] = [
        (
            "node_intr_total",
            "Total number of interrupts serviced.",
            Type::Counter,
        ),
        (
            "node_context_switches_total",
            "Total number of context switches.",
            Type::Counter,
        ),
        (
            "node_boot_time_seconds",
            "Node boot time, in unixtime.",
            Type::Gauge,
        ),
        ("node_forks_total", "Total number of forks.", Type::Counter),
        (
            "node_procs_running",
            "Number of processes in runnable state.",
            Type::Gauge,
        ),
        (
            "node_procs_blocked",
            "Number of processes blocked waiting for I/O to complete.",
            Type::Gauge,
        ),
    ];
    // node_exporter reports zero for a line the kernel does not print.
    for ((name, help, t), val) in FAMILIES.iter().zip(v) {
        w.single(name, help, *t, val.unwrap_or(0.0));
    }
    Ok(())
}
