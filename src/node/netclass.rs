//! `netclass` collector: network interface properties from `<sysfs>/class/net/<iface>/`,
//! notably `node_network_up{device}` (operstate is `up`), `node_network_info` and the numeric
//! attributes node_exporter 1.5 exports (`mtu_bytes`, `speed_bytes`, `carrier`, ...).
//!
//! Attributes the kernel refuses to read (`speed` or `duplex` on a down link answer EINVAL) are
//! left out, as in node_exporter.

use super::expo::{Type, W};
use super::{list_dir, read_attr, Ctx, NodeError};

/// (sysfs attribute, metric suffix, type), in metric-name order.
const NUMERIC: [(&str, &str, Type); 16] = [
    ("addr_assign_type", "address_assign_type", Type::Gauge),
    ("carrier", "carrier", Type::Gauge),
    ("carrier_changes", "carrier_changes_total", Type::Counter),
    (
        "carrier_down_count",
        "carrier_down_changes_total",
        Type::Counter,
    ),
    (
        "carrier_up_count",
        "carrier_up_changes_total",
        Type::Counter,
    ),
    ("dev_id", "device_id", Type::Gauge),
    ("dormant", "dormant", Type::Gauge),
    ("flags", "flags", Type::Gauge),
    ("ifindex", "iface_id", Type::Gauge),
    ("iflink", "iface_link", Type::Gauge),
    ("link_mode", "iface_link_mode", Type::Gauge),
    ("mtu", "mtu_bytes", Type::Gauge),
    ("name_assign_type", "name_assign_type", Type::Gauge),
    ("netdev_group", "net_dev_group", Type::Gauge),
    ("type", "protocol_type", Type::Gauge),
    ("speed", "speed_bytes", Type::Gauge),
];
/// Attributes that come last in name order (after `speed_bytes`).
const TX_QUEUE: (&str, &str, Type) = ("tx_queue_len", "transmit_queue_length", Type::Gauge);

/// String attributes for `node_network_info`, in label order after `device`.
const INFO: [(&str, &str); 5] = [
    ("address", "address"),
    ("broadcast", "broadcast"),
    ("duplex", "duplex"),
    ("ifalias", "ifalias"),
    ("operstate", "operstate"),
];

/// Parses an integer like Go's `strconv.ParseInt(s, 0, 64)` (decimal, `0x` hex, `0` octal).
fn parse_int(s: &str) -> Option<i64> {
    let (neg, t) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if t.len() > 1 && t.starts_with('0') {
        i64::from_str_radix(&t[1..], 8).ok()?
    } else {
        t.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

struct Iface {
    name: String,
    info: [String; 5],
    nums: [Option<f64>; 17],
}

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    let base = cx.files.path(&cx.opts.sysfs, "class/net").to_path_buf();
    list_dir(&base, "", &mut cx.names)?;
    let mut ifaces = Vec::new();
    // One path buffer, pushed and popped, instead of a fresh PathBuf per attribute.
    let mut dir = base;
    for d in &cx.names {
        dir.push(d);
        if !dir.is_dir() {
            dir.pop();
            continue; // e.g. bonding_masters
        }
        let mut ifc = Iface {
            name: d.clone(),
            info: Default::default(),
            nums: [None; 17],
        };
        for (i, (file, _)) in INFO.iter().enumerate() {
            dir.push(file);
            if let Some(v) = read_attr(&dir, &mut cx.buf2) {
                ifc.info[i] = v.to_string();
            }
            dir.pop();
        }
        for (i, (file, _, _)) in NUMERIC.iter().chain([&TX_QUEUE]).enumerate() {
            dir.push(file);
            let v = read_attr(&dir, &mut cx.buf2).and_then(parse_int);
            dir.pop();
            let Some(v) = v else {
                continue;
            };
            ifc.nums[i] = Some(if *file == "speed" {
                // Mbit/s to bytes/s, truncated like node_exporter's int64 arithmetic.
                (v.saturating_mul(1000 * 1000) / 8) as f64
            } else {
                v as f64
            });
        }
        ifaces.push(ifc);
        dir.pop();
    }

    for (i, (_, suffix, t)) in NUMERIC.iter().chain([&TX_QUEUE]).enumerate() {
        if *suffix == "transmit_queue_length" {
            continue;
        }
        emit_numeric(w, &ifaces, i, suffix, *t);
    }
    w.family(
        &["node_network_info"],
        &["Non-numeric data from /sys/class/net/<iface>, value is always 1."],
        Type::Gauge,
    );
    for ifc in &ifaces {
        w.sample(
            &["node_network_info"],
            &[
                (INFO[0].1, &ifc.info[0]),
                (INFO[1].1, &ifc.info[1]),
                ("device", &ifc.name),
                (INFO[2].1, &ifc.info[2]),
                (INFO[3].1, &ifc.info[3]),
                (INFO[4].1, &ifc.info[4]),
            ],
            1.0,
        );
    }
    emit_numeric(w, &ifaces, 16, TX_QUEUE.1, TX_QUEUE.2);
    w.family(
        &["node_network_up"],
        &["Value is 1 if operstate is 'up', 0 otherwise."],
        Type::Gauge,
    );
    for ifc in &ifaces {
        let up = if ifc.info[4] == "up" { 1.0 } else { 0.0 };
        w.sample(&["node_network_up"], &[("device", &ifc.name)], up);
    }
    Ok(())
}

fn emit_numeric(w: &mut W, ifaces: &[Iface], i: usize, suffix: &str, t: Type) {
    w.family(
        &["node_network_", suffix],
        &["Network device property: ", suffix],
        t,
    );
    for ifc in ifaces {
        if let Some(v) = ifc.nums[i] {
            w.sample(&["node_network_", suffix], &[("device", &ifc.name)], v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_integers() {
        let cases = [
            ("1500", Some(1500)),
            ("0x1003", Some(0x1003)),
            ("-1", Some(-1)),
            ("0", Some(0)),
            ("010", Some(8)),
            ("up", None),
            ("", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_int(s), want, "{s}");
        }
    }
}
