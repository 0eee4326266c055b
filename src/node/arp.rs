//! `arp` collector: ARP table entries per network device, from /proc/net/arp.

use super::expo::{Type, W};
use super::{Ctx, NodeError};

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    let (text, path) = cx.files.read(&cx.opts.procfs, "net/arp")?;
    let mut per_device: std::collections::BTreeMap<&str, f64> = Default::default();
    // Header: "IP address HW type Flags HW address Mask Device"; the device is the 6th column.
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let device = line
            .split_whitespace()
            .nth(5)
            .ok_or_else(|| NodeError::parse(path, format!("short row {line:?}")))?;
        *per_device.entry(device).or_default() += 1.0;
    }
    w.family(
        &["node_arp_entries"],
        &["ARP entries by device"],
        Type::Gauge,
    );
    for (device, n) in per_device {
        w.sample(&["node_arp_entries"], &[("device", device)], n);
    }
    Ok(())
}
