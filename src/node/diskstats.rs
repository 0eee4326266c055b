//! `diskstats` collector: `node_disk_*` from /proc/diskstats plus udev properties
//! (`<rootfs>/run/udev/data/b<major>:<minor>`) for `node_disk_info` and friends.
//!
//! Sectors are 512 bytes and times milliseconds, as the kernel documents; only the columns the
//! running kernel prints are exposed (discards since 4.18, flushes since 5.5).

use regex::Regex;

use super::expo::{Type, W};
use super::{parse_f64, read_into, Ctx, NodeError};

/// node_exporter 1.5's `--collector.diskstats.device-exclude` default.
pub(crate) const DEFAULT_DEVICE_EXCLUDE: &str = r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";

const SECTOR: f64 = 512.0;
const SECONDS_PER_TICK: f64 = 1.0 / 1000.0;

/// (name suffix, help, type, multiplier) for the columns after the device name, in order.
const COLUMNS: [(&str, &str, Type, f64); 17] = [
    (
        "reads_completed_total",
        "The total number of reads completed successfully.",
        Type::Counter,
        1.0,
    ),
    (
        "reads_merged_total",
        "The total number of reads merged.",
        Type::Counter,
        1.0,
    ),
    (
        "read_bytes_total",
        "The total number of bytes read successfully.",
        Type::Counter,
        SECTOR,
    ),
    (
        "read_time_seconds_total",
        "The total number of seconds spent by all reads.",
        Type::Counter,
        SECONDS_PER_TICK,
    ),
    (
        "writes_completed_total",
        "The total number of writes completed successfully.",
        Type::Counter,
        1.0,
    ),
    (
        "writes_merged_total",
        "The number of writes merged.",
        Type::Counter,
        1.0,
    ),
    (
        "written_bytes_total",
        "The total number of bytes written successfully.",
        Type::Counter,
        SECTOR,
    ),
    (
        "write_time_seconds_total",
        "This is the total number of seconds spent by all writes.",
        Type::Counter,
        SECONDS_PER_TICK,
    ),
    (
        "io_now",
        "The number of I/Os currently in progress.",
        Type::Gauge,
        1.0,
    ),
    (
        "io_time_seconds_total",
        "Total seconds spent doing I/Os.",
        Type::Counter,
        SECONDS_PER_TICK,
    ),
    (
        "io_time_weighted_seconds_total",
        "The weighted # of seconds spent doing I/Os.",
        Type::Counter,
        SECONDS_PER_TICK,
    ),
    (
        "discards_completed_total",
        "The total number of discards completed successfully.",
        Type::Counter,
        1.0,
    ),
    (
        "discards_merged_total",
        "The total number of discards merged.",
        Type::Counter,
        1.0,
    ),
    (
        "discarded_sectors_total",
        "The total number of sectors discarded successfully.",
        Type::Counter,
        1.0,
    ),
    (
        "discard_time_seconds_total",
        "This is the total number of seconds spent by all discards.",
        Type::Counter,
        SECONDS_PER_TICK,
    ),
    (
        "flush_requests_total",
        "The total number of flush requests completed successfully",
        Type::Counter,
        1.0,
    ),
    (
        "flush_requests_time_seconds_total",
        "This is the total number of seconds spent by all flush requests.",
        Type::Counter,
        SECONDS_PER_TICK,
    ),
];

/// udev property keys, index-aligned with `Row::udev`.
const UDEV_KEYS: [&str; 18] = [
    "ID_PATH",
    "ID_WWN",
    "ID_MODEL",
    "ID_SERIAL_SHORT",
    "ID_REVISION",
    "ID_FS_TYPE",
    "ID_FS_USAGE",
    "ID_FS_UUID",
    "ID_FS_VERSION",
    "DM_NAME",
    "DM_UUID",
    "DM_VG_NAME",
    "DM_LV_NAME",
    "DM_LV_LAYER",
    "ID_ATA",
    "ID_ATA_ROTATION_RATE_RPM",
    "ID_ATA_WRITE_CACHE",
    "ID_ATA_WRITE_CACHE_ENABLED",
];

struct Row {
    name: (usize, usize),
    major: (usize, usize),
    minor: (usize, usize),
    n: usize,
    v: [f64; 17],
    /// Ranges into `State::udev`, empty when absent.
    udev: [(usize, usize); 18],
}

pub(crate) struct State {
    exclude: Regex,
    rows: Vec<Row>,
    udev: String,
    path: std::path::PathBuf,
}

impl State {
    pub(crate) fn new() -> Self {
        #[allow(clippy::expect_used)] // constant pattern, compiled by a unit test too
        State {
            exclude: Regex::new(DEFAULT_DEVICE_EXCLUDE).expect("default regex is valid"),
            rows: Vec::new(),
            udev: String::new(),
            path: Default::default(),
        }
    }
}

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    let (text, path) = cx.files.read(&cx.opts.procfs, "diskstats")?;
    let st = &mut cx.diskstats;
    st.rows.clear();
    st.udev.clear();
    let base = text.as_ptr() as usize;
    let range = |s: &str| {
        let a = s.as_ptr() as usize - base;
        (a, a + s.len())
    };
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(major), Some(minor), Some(name)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if st.exclude.is_match(name) {
            continue;
        }
        let mut row = Row {
            name: range(name),
            major: range(major),
            minor: range(minor),
            n: 0,
            v: [0.0; 17],
            udev: [(0, 0); 18],
        };
        for (i, s) in f.take(17).enumerate() {
            row.v[i] = parse_f64(s, path)? * COLUMNS[i].3;
            row.n = i + 1;
        }
        if row.n < 11 {
            continue; // procfs drops lines with fewer than 14 fields
        }
        // udev properties: lines `E:KEY=VALUE`.
        st.path.as_mut_os_string().clear();
        st.path.push(&cx.opts.rootfs);
        st.path.push("run/udev/data");
        let p = st.path.as_mut_os_string();
        p.push("/b");
        p.push(major);
        p.push(":");
        p.push(minor);
        let start = st.udev.len();
        if read_into(&st.path, &mut st.udev).is_ok() {
            let mut pos = start;
            while pos < st.udev.len() {
                let end = st.udev[pos..]
                    .find('\n')
                    .map(|i| pos + i)
                    .unwrap_or(st.udev.len());
                if let Some((k, v)) = st.udev[pos..end]
                    .strip_prefix("E:")
                    .and_then(|kv| kv.split_once('='))
                {
                    if let Some(i) = UDEV_KEYS.iter().position(|x| *x == k) {
                        let vs = end - v.len();
                        row.udev[i] = (vs, end);
                    }
                }
                pos = end + 1;
            }
        }
        st.rows.push(row);
    }

    let udev = |r: &Row, i: usize| &st.udev[r.udev[i].0..r.udev[i].1];
    let dev = |r: &Row| &text[r.name.0..r.name.1];
    w.family(
        &["node_disk_info"],
        &["Info of /sys/block/<block_device>."],
        Type::Gauge,
    );
    for r in &st.rows {
        w.sample(
            &["node_disk_info"],
            &[
                ("device", dev(r)),
                ("major", &text[r.major.0..r.major.1]),
                ("minor", &text[r.minor.0..r.minor.1]),
                ("model", udev(r, 2)),
                ("path", udev(r, 0)),
                ("revision", udev(r, 4)),
                ("serial", udev(r, 3)),
                ("wwn", udev(r, 1)),
            ],
            1.0,
        );
    }
    w.family(
        &["node_disk_filesystem_info"],
        &["Info about disk filesystem."],
        Type::Gauge,
    );
    for r in st.rows.iter().filter(|r| !udev(r, 5).is_empty()) {
        w.sample(
            &["node_disk_filesystem_info"],
            &[
                ("device", dev(r)),
                ("type", udev(r, 5)),
                ("usage", udev(r, 6)),
                ("uuid", udev(r, 7)),
                ("version", udev(r, 8)),
            ],
            1.0,
        );
    }
    w.family(
        &["node_disk_device_mapper_info"],
        &["Info about disk device mapper."],
        Type::Gauge,
    );
    for r in st.rows.iter().filter(|r| !udev(r, 9).is_empty()) {
        w.sample(
            &["node_disk_device_mapper_info"],
            &[
                ("device", dev(r)),
                ("lv_layer", udev(r, 13)),
                ("lv_name", udev(r, 12)),
                ("name", udev(r, 9)),
                ("uuid", udev(r, 10)),
                ("vg_name", udev(r, 11)),
            ],
            1.0,
        );
    }
    for (name, help, key) in [
        (
            "node_disk_ata_rotation_rate_rpm",
            "ATA disk rotation rate in RPMs (0 for SSDs).",
            15,
        ),
        (
            "node_disk_ata_write_cache",
            "ATA disk has a write cache.",
            16,
        ),
        (
            "node_disk_ata_write_cache_enabled",
            "ATA disk has its write cache enabled.",
            17,
        ),
    ] {
        w.family(&[name], &[help], Type::Gauge);
        for r in st.rows.iter().filter(|r| !udev(r, 14).is_empty()) {
            if let Ok(v) = udev(r, key).parse::<f64>() {
                w.sample(&[name], &[("device", dev(r))], v);
            }
        }
    }
    for (i, (suffix, help, t, _)) in COLUMNS.iter().enumerate() {
        w.family(&["node_disk_", suffix], &[help], *t);
        for r in st.rows.iter().filter(|r| i < r.n) {
            w.sample(&["node_disk_", suffix], &[("device", dev(r))], r.v[i]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_device_exclusion() {
        let st = State::new();
        let cases = [
            ("sda", false),
            ("sda1", true),
            ("vda", false),
            ("vda2", true),
            ("mmcblk0", false),
            ("mmcblk0p1", false),
            ("nvme0n1", false),
            ("nvme0n1p1", true),
            ("loop0", true),
            ("ram1", true),
            ("zram0", false),
            ("dm-0", false),
        ];
        for (d, excluded) in cases {
            assert_eq!(st.exclude.is_match(d), excluded, "{d}");
        }
    }
}
