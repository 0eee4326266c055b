//! `cpu` collector: `node_cpu_seconds_total{cpu,mode}` and `node_cpu_guest_seconds_total` from
//! the per-CPU lines of /proc/stat (USER_HZ ticks divided by 100, as node_exporter does).

use super::expo::{Type, W};
use super::{parse_f64, Ctx, NodeError};

/// The kernel's USER_HZ, fixed at 100 on every architecture /proc reports in.
const USER_HZ: f64 = 100.0;

/// /proc/stat column order after the `cpuN` name.
const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// Iterates `(cpu number, ticks[10])` over the `cpuN` lines; missing columns are zero.
fn for_each_cpu(
    text: &str,
    path: &std::path::Path,
    mut f: impl FnMut(&str, &[f64; 10]),
) -> Result<(), NodeError> {
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some(name) = it.next() else { continue };
        let Some(num) = name.strip_prefix("cpu") else {
            continue;
        };
        if num.is_empty() {
            continue; // the aggregate line
        }
        if !num.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NodeError::parse(path, format!("invalid cpu line {line:?}")));
        }
        let mut v = [0.0; 10];
        for (slot, s) in v.iter_mut().zip(it) {
            *slot = parse_f64(s, path)? / USER_HZ;
        }
        f(num, &v);
    }
    Ok(())
}

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    let (text, path) = cx.files.read(&cx.opts.procfs, "stat")?;
    // Parse once to validate, so a bad line fails the collector before anything is written.
    for_each_cpu(text, path, |_, _| {})?;
    w.family(
        &["node_cpu_seconds_total"],
        &["Seconds the CPUs spent in each mode."],
        Type::Counter,
    );
    for_each_cpu(text, path, |cpu, v| {
        for (mode, val) in MODES.iter().zip(v) {
            w.sample(
                &["node_cpu_seconds_total"],
                &[("cpu", cpu), ("mode", mode)],
                *val,
            );
        }
    })?;
    w.family(
        &["node_cpu_guest_seconds_total"],
        &["Seconds the CPUs spent in guests (VMs) for each mode."],
        Type::Counter,
    );
    for_each_cpu(text, path, |cpu, v| {
        w.sample(
            &["node_cpu_guest_seconds_total"],
            &[("cpu", cpu), ("mode", "nice")],
            v[9],
        );
        w.sample(
            &["node_cpu_guest_seconds_total"],
            &[("cpu", cpu), ("mode", "user")],
            v[8],
        );
    })?;
    Ok(())
}
