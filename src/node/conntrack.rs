//! `conntrack` collector: connection-tracking table size and limit from
//! /proc/sys/net/netfilter, and the per-CPU statistics of /proc/net/stat/nf_conntrack summed over
//! CPUs. Without the nf_conntrack module there is nothing to report (no data, as node_exporter).

use super::expo::{Type, W};
use super::{parse_f64, Ctx, NodeError};

/// The statistics node_exporter reports: (column, help), sorted by column name.
const STATS: &[(&str, &str)] = &[
    ("drop", "Number of packets dropped due to conntrack failure."),
    (
        "early_drop",
        "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached.",
    ),
    ("found", "Number of searched entries which were successful."),
    (
        "ignore",
        "Number of packets seen which are already connected to a conntrack entry.",
    ),
    ("insert", "Number of entries inserted into the list."),
    (
        "insert_failed",
        "Number of entries for which list insertion was attempted but failed.",
    ),
    ("invalid", "Number of packets seen which can not be tracked."),
    (
        "search_restart",
        "Number of conntrack table lookups which had to be restarted due to hashtable resizes.",
    ),
];

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    let read_one = |cx: &mut Ctx, rel: &str| -> Result<f64, NodeError> {
        let (t, p) = cx.files.read(&cx.opts.procfs, rel)?;
        parse_f64(t.trim(), p)
    };
    let entries = match read_one(cx, "sys/net/netfilter/nf_conntrack_count") {
        Err(e) if e.is_not_found() => return Err(NodeError::NoData("no nf_conntrack")),
        r => r?,
    };
    let limit = read_one(cx, "sys/net/netfilter/nf_conntrack_max")?;
    w.single(
        "node_nf_conntrack_entries",
        "Number of currently allocated flow entries for connection tracking.",
        Type::Gauge,
        entries,
    );
    w.single(
        "node_nf_conntrack_entries_limit",
        "Maximum size of connection tracking table.",
        Type::Gauge,
        limit,
    );
    let (text, path) = match cx.files.read(&cx.opts.procfs, "net/stat/nf_conntrack") {
        Ok(x) => x,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let mut sums = [0.0f64; STATS.len()];
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() != header.len() {
            return Err(NodeError::parse(
                path,
                format!("row {line:?} does not match header"),
            ));
        }
        for (i, (name, _)) in STATS.iter().enumerate() {
            if let Some(j) = header.iter().position(|h| h == name) {
                sums[i] += u64::from_str_radix(cols[j], 16)
                    .map_err(|_| NodeError::parse(path, format!("invalid hex {:?}", cols[j])))?
                    as f64;
            }
        }
    }
    for ((name, help), v) in STATS.iter().zip(sums) {
        w.family(&["node_nf_conntrack_stat_", name], &[help], Type::Gauge);
        w.sample(&["node_nf_conntrack_stat_", name], &[], v);
    }
    Ok(())
}
