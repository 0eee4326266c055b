//! `sockstat` collector: sockets in use per protocol and the memory they hold, from
//! /proc/net/sockstat and /proc/net/sockstat6 (absent when IPv6 is off, which is not an error).

use super::expo::{Type, W};
use super::{parse_f64, Ctx, NodeError};

/// Appends (name, help, value) for every `PROTO: key value ...` pair of one sockstat file.
fn parse(
    text: &str,
    path: &std::path::Path,
    page_size: f64,
    out: &mut Vec<(String, String, f64)>,
) -> Result<(), NodeError> {
    for line in text.lines() {
        let Some((proto, rest)) = line.split_once(':') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() % 2 != 0 {
            return Err(NodeError::parse(
                path,
                format!("odd field count in {line:?}"),
            ));
        }
        for kv in f.chunks(2) {
            let (key, v) = (kv[0], parse_f64(kv[1], path)?);
            if proto == "sockets" {
                out.push((
                    format!("node_sockstat_sockets_{key}"),
                    "Number of IPv4 sockets in use.".to_string(),
                    v,
                ));
                continue;
            }
            out.push((
                format!("node_sockstat_{proto}_{key}"),
                format!("Number of {proto} sockets in state {key}."),
                v,
            ));
            if key == "mem" {
                out.push((
                    format!("node_sockstat_{proto}_mem_bytes"),
                    format!("Number of {proto} sockets in state mem_bytes."),
                    v * page_size,
                ));
            }
        }
    }
    Ok(())
}

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    // SAFETY: sysconf only reads a system constant.
    let page_size = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as f64,
        _ => 4096.0,
    };
    let mut rows = Vec::new();
    let (text, path) = cx.files.read(&cx.opts.procfs, "net/sockstat")?;
    parse(text, path, page_size, &mut rows)?;
    match cx.files.read(&cx.opts.procfs, "net/sockstat6") {
        Ok((text, path)) => parse(text, path, page_size, &mut rows)?,
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, help, v) in &rows {
        w.single(name, help, Type::Gauge, *v);
    }
    Ok(())
}
