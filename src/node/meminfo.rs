//! `meminfo` collector: one `node_memory_<field>[_bytes]` gauge per line of /proc/meminfo.
//!
//! Like node_exporter, `Active(anon)` becomes `Active_anon`, and values with a `kB` unit are
//! multiplied by 1024 and get a `_bytes` suffix.

use super::expo::{Type, W};
use super::{parse_f64, Ctx, NodeError};

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    let (text, path) = cx.files.read(&cx.opts.procfs, "meminfo")?;
    // Validate the whole file first: node_exporter emits nothing when a line is malformed.
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(key) = f.next() else { continue };
        let n = line.split_whitespace().count();
        if !(2..=3).contains(&n) || !key.ends_with(':') {
            return Err(NodeError::parse(path, format!("invalid line {line:?}")));
        }
        parse_f64(f.next().unwrap_or(""), path)?;
    }
    let name = &mut cx.name;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(key) = f.next() else { continue };
        let Some(val) = f.next() else { continue };
        let mut v = parse_f64(val, path)?;
        let key = &key[..key.len() - 1];
        name.clear();
        // `Active(anon)` -> `Active_anon` (node_exporter's `\((.*)\)` -> `_$1`).
        match (key.find('('), key.rfind(')')) {
            (Some(a), Some(b)) if a < b => {
                name.push_str(&key[..a]);
                name.push('_');
                name.push_str(&key[a + 1..b]);
                name.push_str(&key[b + 1..]);
            }
            _ => name.push_str(key),
        }
        if f.next().is_some() {
            v *= 1024.0;
            name.push_str("_bytes");
        }
        w.family(
            &["node_memory_", name],
            &["Memory information field ", name, "."],
            Type::Gauge,
        );
        w.sample(&["node_memory_", name], &[], v);
    }
    Ok(())
}
