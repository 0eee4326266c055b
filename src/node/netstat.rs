//! `netstat` collector: IP, ICMP, TCP and UDP protocol counters from /proc/net/netstat,
//! /proc/net/snmp and /proc/net/snmp6 (absent without IPv6), with node_exporter's default field
//! filter (`--collector.netstat.fields`).

use std::sync::OnceLock;

use super::expo::{Type, W};
use super::{parse_f64, Ctx, NodeError};

/// node_exporter 1.5's default field filter, applied to `<Proto>_<Field>`.
const FIELDS: &str = "^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|\
Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)|\
Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|\
Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$";

fn fields() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(FIELDS).expect("the default netstat filter compiles"))
}

/// `Proto: name name ...` followed by `Proto: value value ...` (netstat, snmp).
fn parse_pairs(
    text: &str,
    path: &std::path::Path,
    out: &mut Vec<(String, f64)>,
) -> Result<(), NodeError> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    while let Some(names) = lines.next() {
        let values = lines
            .next()
            .ok_or_else(|| NodeError::parse(path, format!("no values after {names:?}")))?;
        let (proto, names) = names
            .split_once(':')
            .ok_or_else(|| NodeError::parse(path, format!("no protocol in {names:?}")))?;
        let (vproto, values) = values
            .split_once(':')
            .ok_or_else(|| NodeError::parse(path, format!("no protocol in {values:?}")))?;
        if proto != vproto {
            return Err(NodeError::parse(
                path,
                format!("header {proto:?} followed by values of {vproto:?}"),
            ));
        }
        let (names, values): (Vec<&str>, Vec<&str>) = (
            names.split_whitespace().collect(),
            values.split_whitespace().collect(),
        );
        if names.len() != values.len() {
            return Err(NodeError::parse(
                path,
                format!("{proto}: field count mismatch"),
            ));
        }
        for (n, v) in names.iter().zip(values) {
            let key = format!("{proto}_{n}");
            if fields().is_match(&key) {
                out.push((key, parse_f64(v, path)?));
            }
        }
    }
    Ok(())
}

/// `Ip6InReceives 44` lines: the protocol ends at the first `6` (Ip6, Icmp6, Udp6, UdpLite6).
fn parse_snmp6(
    text: &str,
    path: &std::path::Path,
    out: &mut Vec<(String, f64)>,
) -> Result<(), NodeError> {
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(stat), Some(v)) = (f.next(), f.next()) else {
            continue;
        };
        let Some(six) = stat.find('6') else {
            continue;
        };
        let key = format!("{}_{}", &stat[..=six], &stat[six + 1..]);
        if fields().is_match(&key) {
            out.push((key, parse_f64(v, path)?));
        }
    }
    Ok(())
}

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    let mut rows = Vec::new();
    let (text, path) = cx.files.read(&cx.opts.procfs, "net/netstat")?;
    parse_pairs(text, path, &mut rows)?;
    let (text, path) = cx.files.read(&cx.opts.procfs, "net/snmp")?;
    parse_pairs(text, path, &mut rows)?;
    match cx.files.read(&cx.opts.procfs, "net/snmp6") {
        Ok((text, path)) => parse_snmp6(text, path, &mut rows)?,
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows.dedup_by(|a, b| a.0 == b.0);
    for (key, v) in &rows {
        let stat = key.replacen('_', "", 1);
        w.family(
            &["node_netstat_", key],
            &["Statistic ", &stat, "."],
            Type::Untyped,
        );
        w.sample(&["node_netstat_", key], &[], *v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_field_filter_matches_node_exporter() {
        for (k, want) in [
            ("Tcp_InErrs", true),
            ("Udp6_InErrors", true),
            ("Icmp_InCsumErrors", false),
            ("Ip_Forwarding", true),
            ("Ip_DefaultTTL", false),
            ("IpExt_InOctets", true),
            ("TcpExt_ListenDrops", true),
            ("TcpExt_TCPTimeouts", true),
            ("TcpExt_TCPPureAcks", false),
            ("Tcp_MaxConn", false),
            ("UdpLite_InErrors", true),
        ] {
            assert_eq!(super::fields().is_match(k), want, "{k}");
        }
    }
}
