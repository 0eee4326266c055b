//! `loadavg` collector: `node_load1`, `node_load5`, `node_load15` from /proc/loadavg.

use super::expo::{Type, W};
use super::{parse_f64, Ctx, NodeError};

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    let (text, path) = cx.files.read(&cx.opts.procfs, "loadavg")?;
    let mut it = text.split_whitespace();
    let mut vals = [0.0; 3];
    for v in &mut vals {
        let f = it
            .next()
            .ok_or_else(|| NodeError::parse(path, "fewer than 3 load averages"))?;
        *v = parse_f64(f, path)?;
    }
    w.single("node_load1", "1m load average.", Type::Gauge, vals[0]);
    w.single("node_load5", "5m load average.", Type::Gauge, vals[1]);
    w.single("node_load15", "15m load average.", Type::Gauge, vals[2]);
    Ok(())
}
