//! `netdev` collector: `node_network_{receive,transmit}_*_total{device}` from /proc/net/dev,
//! plus `receive_nohandler` from `<sysfs>/class/net/<dev>/statistics/rx_nohandler`, so the
//! families match what node_exporter 1.5 reads over netlink.
//!
//! Difference from node_exporter's netlink path: `drop`, `frame` and `carrier` are the kernel's
//! /proc/net/dev sums (e.g. `drop` includes missed errors), which equal the netlink counters
//! whenever the detailed error counters are zero. No device is excluded by default (upstream's
//! default; Debian's package excludes `lo`).

use super::expo::{Type, W};
use super::{parse_f64, read_attr, Ctx, NodeError};

/// /proc/net/dev columns: 8 receive then 8 transmit.
const RX: [&str; 8] = [
    "bytes",
    "packets",
    "errs",
    "drop",
    "fifo",
    "frame",
    "compressed",
    "multicast",
];
const TX: [&str; 8] = [
    "bytes",
    "packets",
    "errs",
    "drop",
    "fifo",
    "colls",
    "carrier",
    "compressed",
];

struct Row {
    dev: (usize, usize),
    v: [f64; 16],
    nohandler: Option<f64>,
}

#[derive(Default)]
pub(crate) struct State {
    rows: Vec<Row>,
    attr: String,
    path: std::path::PathBuf,
}

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    let (text, path) = cx.files.read(&cx.opts.procfs, "net/dev")?;
    let path = path.to_path_buf();
    let st = &mut cx.netdev;
    st.rows.clear();
    let base = text.as_ptr() as usize;
    for line in text.lines().skip(2) {
        let Some((dev, rest)) = line.split_once(':') else {
            return Err(NodeError::parse(&path, format!("invalid line {line:?}")));
        };
        let dev = dev.trim();
        let a = dev.as_ptr() as usize - base;
        let mut row = Row {
            dev: (a, a + dev.len()),
            v: [0.0; 16],
            nohandler: None,
        };
        let mut n = 0;
        for (slot, s) in row.v.iter_mut().zip(rest.split_whitespace()) {
            *slot = parse_f64(s, &path)?;
            n += 1;
        }
        if n != 16 {
            return Err(NodeError::parse(&path, format!("invalid line {line:?}")));
        }
        st.rows.push(row);
    }
    for r in &mut st.rows {
        let dev = &text[r.dev.0..r.dev.1];
        st.path.as_mut_os_string().clear();
        st.path.push(&cx.opts.sysfs);
        st.path.push("class/net");
        st.path.push(dev);
        st.path.push("statistics/rx_nohandler");
        r.nohandler = read_attr(&st.path, &mut st.attr).and_then(|s| s.parse().ok());
    }
    // Families in name order, like node_exporter's output.
    let mut fams: [(&str, &str, Option<usize>); 17] = [("", "", None); 17];
    for (i, c) in RX.iter().enumerate() {
        fams[i] = ("receive_", c, Some(i));
    }
    fams[8] = ("receive_", "nohandler", None);
    for (i, c) in TX.iter().enumerate() {
        fams[9 + i] = ("transmit_", c, Some(8 + i));
    }
    fams.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    for (dir, col, idx) in fams {
        let name = ["node_network_", dir, col, "_total"];
        w.family(
            &name,
            &["Network device statistic ", dir, col, "."],
            Type::Counter,
        );
        for r in &st.rows {
            let v = match idx {
                Some(i) => r.v[i],
                None => match r.nohandler {
                    Some(v) => v,
                    None => continue,
                },
            };
            w.sample(&name, &[("device", &text[r.dev.0..r.dev.1])], v);
        }
    }
    Ok(())
}
