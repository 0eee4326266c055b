//! `cpufreq` collector: CPU frequencies from `<sysfs>/devices/system/cpu/cpu*/cpufreq/`
//! (kHz in sysfs, hertz in the metrics). Files that are missing or unreadable (`cpuinfo_cur_freq`
//! is root-only) are left out, as node_exporter does.

use super::expo::{Type, W};
use super::{list_dir, read_attr, Ctx, NodeError};

/// (file, metric, help), in metric-name order.
const FILES: [(&str, &str, &str); 6] = [
    (
        "cpuinfo_cur_freq",
        "node_cpu_frequency_hertz",
        "Current cpu thread frequency in hertz.",
    ),
    (
        "cpuinfo_max_freq",
        "node_cpu_frequency_max_hertz",
        "Maximum cpu thread frequency in hertz.",
    ),
    (
        "cpuinfo_min_freq",
        "node_cpu_frequency_min_hertz",
        "Minimum cpu thread frequency in hertz.",
    ),
    (
        "scaling_cur_freq",
        "node_cpu_scaling_frequency_hertz",
        "Current scaled CPU thread frequency in hertz.",
    ),
    (
        "scaling_max_freq",
        "node_cpu_scaling_frequency_max_hertz",
        "Maximum scaled CPU thread frequency in hertz.",
    ),
    (
        "scaling_min_freq",
        "node_cpu_scaling_frequency_min_hertz",
        "Minimum scaled CPU thread frequency in hertz.",
    ),
];

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    let base = cx
        .files
        .path(&cx.opts.sysfs, "devices/system/cpu")
        .to_path_buf();
    list_dir(&base, "cpu", &mut cx.names)?;
    // (cpu number, values)
    let mut cpus: Vec<(String, [Option<f64>; 6])> = Vec::new();
    for d in &cx.names {
        let num = &d[3..];
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let dir = base.join(d).join("cpufreq");
        if !dir.is_dir() {
            continue;
        }
        let mut v = [None; 6];
        for (slot, (file, _, _)) in v.iter_mut().zip(FILES) {
            *slot = read_attr(&dir.join(file), &mut cx.buf2)
                .and_then(|s| s.parse::<u64>().ok())
                .map(|khz| khz as f64 * 1000.0);
        }
        cpus.push((num.to_string(), v));
    }
    // glob order is lexicographic ("cpu10" before "cpu2"); sort numerically for readability.
    cpus.sort_by_key(|(n, _)| n.parse::<u64>().unwrap_or(u64::MAX));
    for (i, (_, metric, help)) in FILES.iter().enumerate() {
        w.family(&[metric], &[help], Type::Gauge);
        for (cpu, v) in &cpus {
            if let Some(x) = v[i] {
                w.sample(&[metric], &[("cpu", cpu)], x);
            }
        }
    }
    Ok(())
}
