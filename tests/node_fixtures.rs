//! Golden-file tests of the node exporter on a Raspberry Pi-shaped fixture tree
//! (`tests/fixtures/node/{proc,sys,root,textfile}`), one golden file per collector, plus a table
//! of odd /proc and /sys contents that must fail a collector cleanly, never panic.
//!
//! Values that depend on the machine or the clock (statfs figures, the time, uname, collector
//! durations, text file mtimes) are masked before comparing. Regenerate the golden files after an
//! intended change with `UPDATE_GOLDEN=1 cargo test --test node_fixtures`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use edgeprom::node::{NodeExporter, NodeOptions, COLLECTORS};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/node")
}

fn options(root: &Path, enabled: &[&str]) -> NodeOptions {
    NodeOptions {
        procfs: root.join("proc"),
        sysfs: root.join("sys"),
        rootfs: root.join("root"),
        textfile_dir: Some(root.join("textfile")),
        enabled: enabled.iter().map(|s| s.to_string()).collect(),
        ..NodeOptions::default()
    }
}

fn collect(o: NodeOptions) -> String {
    let mut out = String::new();
    NodeExporter::new(o).collect(&mut out);
    out
}

/// Series whose value depends on the machine or the clock.
const MASK_VALUE: &[&str] = &[
    "node_scrape_collector_duration_seconds",
    "node_time_seconds",
    "node_filesystem_size_bytes",
    "node_filesystem_free_bytes",
    "node_filesystem_avail_bytes",
    "node_filesystem_files",
    "node_filesystem_files_free",
    "node_textfile_mtime_seconds",
];
/// The kernel clock state comes from adjtimex(2) on the running machine, not from the fixtures.
const MASK_VALUE_PREFIX: &str = "node_timex_";
/// Series whose labels too depend on the machine.
const MASK_LINE: &[&str] = &["node_uname_info", "node_time_zone_offset_seconds"];

fn normalise(text: &str, root: &Path) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with('#') {
            out.push_str(line);
        } else {
            let name = line.split(['{', ' ']).next().unwrap_or("");
            let (series, _value) = line.rsplit_once(' ').unwrap_or((line, ""));
            if MASK_LINE.contains(&name) {
                out.push_str(name);
                out.push_str(" <masked>");
            } else if MASK_VALUE.contains(&name) || name.starts_with(MASK_VALUE_PREFIX) {
                out.push_str(series);
                out.push_str(" <masked>");
            } else {
                out.push_str(line);
            }
        }
        out.push('\n');
    }
    out.replace(&root.display().to_string(), "$FIXTURES")
}

#[test]
fn golden_output_per_collector() {
    let root = fixtures();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for (name, _) in COLLECTORS {
        let got = normalise(&collect(options(&root, &[name])), &root);
        let golden = root.join("golden").join(format!("{name}.prom"));
        if update {
            std::fs::create_dir_all(golden.parent().expect("has parent")).expect("mkdir");
            std::fs::write(&golden, &got).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&golden)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", golden.display()));
        if got != want {
            failures.push(format!(
                "collector {name}: output differs from {}\n--- got ---\n{got}--- want ---\n{want}",
                golden.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The fixture tree exercises every collector: each succeeds and emits a family of its own.
#[test]
fn every_collector_succeeds_on_the_fixture_tree() {
    let root = fixtures();
    let all: Vec<&str> = COLLECTORS.iter().map(|(n, _)| *n).collect();
    let out = collect(options(&root, &all));
    for (name, _) in COLLECTORS {
        assert!(
            out.contains(&format!(
                "node_scrape_collector_success{{collector=\"{name}\"}} 1\n"
            )),
            "collector {name} failed on the fixture tree:\n{out}"
        );
    }
    let families: BTreeSet<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    // One expected family per collector family, including the Pi extras.
    for want in [
        "node_cpu_seconds_total",
        "node_cpu_scaling_frequency_hertz",
        "node_disk_read_bytes_total",
        "node_disk_filesystem_info",
        "edgeprom_rpi_throttle_flag",
        "edgeprom_rpi_under_voltage_alarm",
        "edgeprom_rpi_soc_temperature_celsius",
        "edgeprom_mmc_life_time_estimate",
        "edgeprom_mmc_pre_eol_info",
        "node_entropy_available_bits",
        "node_filesystem_size_bytes",
        "node_hwmon_temp_celsius",
        "node_load1",
        "node_memory_MemTotal_bytes",
        "node_network_receive_bytes_total",
        "node_os_info",
        "node_pressure_io_stalled_seconds_total",
        "node_boot_time_seconds",
        "backup_last_success_timestamp_seconds",
        "node_thermal_zone_temp",
        "node_time_seconds",
        "node_uname_info",
        "node_arp_entries",
        "node_nf_conntrack_entries",
        "node_nf_conntrack_stat_drop",
        "node_filefd_allocated",
        "node_netstat_Tcp_InSegs",
        "node_netstat_Ip6_InOctets",
        "node_sockstat_sockets_used",
        "node_sockstat_TCP_mem_bytes",
        "node_sockstat_TCP6_inuse",
        "node_softnet_processed_total",
        "node_timex_sync_status",
        "node_vmstat_pgmajfault",
    ] {
        assert!(families.contains(want), "missing family {want}");
    }
    // Every family appears once (its lines are contiguous).
    let headers = out.lines().filter(|l| l.starts_with("# TYPE ")).count();
    assert_eq!(headers, families.len(), "a family header appears twice");
}

/// (collector, file under the temp root, content, expected success)
type OddCase = (&'static str, &'static str, &'static [u8], bool);

const ODD: &[OddCase] = &[
    ("loadavg", "proc/loadavg", b"garbage", false),
    ("loadavg", "proc/loadavg", b"", false),
    ("loadavg", "proc/loadavg", b"0.1 0.2", false),
    ("loadavg", "proc/loadavg", b"0.1 0.2 0.3 1/2 3\n", true),
    ("meminfo", "proc/meminfo", b"MemTotal: abc kB\n", false),
    ("meminfo", "proc/meminfo", b"MemTotal:\n", false),
    ("meminfo", "proc/meminfo", b"MemTotal 10 kB\n", false),
    ("meminfo", "proc/meminfo", b"MemTotal: 1 kB extra\n", false),
    ("meminfo", "proc/meminfo", b"\xff\xfe\x00", false),
    ("meminfo", "proc/meminfo", b"\n\nMemTotal: 1 kB\n", true),
    ("cpu", "proc/stat", b"cpu0 1 2 x\n", false),
    ("cpu", "proc/stat", b"cpuX 1 2 3\n", false),
    ("cpu", "proc/stat", b"cpu0 1\n", true),
    ("cpu", "proc/stat", b"\x00\x01\x02", true),
    ("stat", "proc/stat", b"intr\n", false),
    ("stat", "proc/stat", b"ctxt many\n", false),
    ("stat", "proc/stat", b"", true),
    ("diskstats", "proc/diskstats", b"8 0 sda 1 2\n", true),
    (
        "diskstats",
        "proc/diskstats",
        b"8 0 sda x 2 3 4 5 6 7 8 9 10 11\n",
        false,
    ),
    ("diskstats", "proc/diskstats", b"8\n", true),
    ("netdev", "proc/net/dev", b"header only\n", true),
    ("netdev", "proc/net/dev", b"h\nh\neth0 1 2 3\n", false),
    ("netdev", "proc/net/dev", b"h\nh\neth0: 1 2 3\n", false),
    (
        "netdev",
        "proc/net/dev",
        b"h\nh\neth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n",
        false,
    ),
    (
        "pressure",
        "proc/pressure/cpu",
        b"some avg10=0 total=abc\n",
        false,
    ),
    ("pressure", "proc/pressure/memory", b"some total=1\n", false), // cpu and io missing
    (
        "entropy",
        "proc/sys/kernel/random/entropy_avail",
        b"lots\n",
        false,
    ),
    ("filesystem", "proc/1/mounts", b"onlyonefield\n", false),
    (
        "filesystem",
        "proc/mounts",
        b"/dev/x /nonexistent/mp ext4 rw 0 0\n",
        true,
    ),
    (
        "os",
        "root/etc/os-release",
        b"=\n\x00garbage\nID=\"unterminated\n",
        true,
    ),
    (
        "os",
        "root/usr/lib/os-release",
        b"VERSION_ID=rolling\n",
        true,
    ),
    (
        "thermal_zone",
        "sys/class/thermal/thermal_zone0/temp",
        b"hot\n",
        true,
    ), // no type/policy: skipped
    ("hwmon", "sys/class/hwmon/hwmon0/temp1_input", b"x\n", true),
    ("hwmon", "sys/class/hwmon/hwmon0/name", b"\xff\n", true),
    (
        "cpufreq",
        "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq",
        b"fast\n",
        true,
    ),
    (
        "edgeprom_rpi",
        "sys/devices/platform/soc/soc:firmware/get_throttled",
        b"zz\n",
        true,
    ),
    (
        "edgeprom_rpi",
        "sys/block/mmcblk0/device/type",
        b"MMC\n",
        true,
    ),
    ("edgeprom_rpi", "proc/device-tree/model", b"\xff\xfe", true),
    ("textfile", "textfile/a.prom", b"a{b=\"c} 1\n", true),
    ("filefd", "proc/sys/fs/file-nr", b"1 2\n", false),
    ("filefd", "proc/sys/fs/file-nr", b"1 0 many\n", false),
    ("filefd", "proc/sys/fs/file-nr", b"1\t0\t9\n", true),
    ("vmstat", "proc/vmstat", b"pgfault lots\n", false),
    (
        "vmstat",
        "proc/vmstat",
        b"nr_free_pages x\npgfault 3\n",
        true,
    ), // unwanted field unparsed
    ("vmstat", "proc/vmstat", b"pgfault\n", true),
    ("sockstat", "proc/net/sockstat", b"TCP: inuse\n", false),
    ("sockstat", "proc/net/sockstat", b"TCP: inuse x\n", false),
    ("sockstat", "proc/net/sockstat", b"sockets: used 3\n", true), // no sockstat6: IPv6 off
    ("softnet", "proc/net/softnet_stat", b"zz 0 0\n", false),
    (
        "softnet",
        "proc/net/softnet_stat",
        b"00000001 00000002\n",
        false,
    ),
    ("softnet", "proc/net/softnet_stat", b"", true),
    (
        "arp",
        "proc/net/arp",
        b"IP address HW type\n10.0.0.1 0x1\n",
        false,
    ),
    (
        "arp",
        "proc/net/arp",
        b"IP address HW type Flags HW address Mask Device\n",
        true,
    ),
    (
        "netstat",
        "proc/net/netstat",
        b"TcpExt: A B\nTcpExt: 1\n",
        false,
    ),
    (
        "netstat",
        "proc/net/netstat",
        b"TcpExt: A\nIpExt: 1\n",
        false,
    ),
    (
        "netstat",
        "proc/net/netstat",
        b"TcpExt: ListenDrops\n",
        false,
    ),
    (
        "netstat",
        "proc/net/netstat",
        b"TcpExt: ListenDrops\nTcpExt: x\n",
        false,
    ),
    ("netstat", "proc/net/netstat", b"", false), // snmp missing
    (
        "conntrack",
        "proc/sys/net/netfilter/nf_conntrack_count",
        b"many\n",
        false,
    ),
    (
        "conntrack",
        "proc/net/stat/nf_conntrack",
        b"found drop\n1\n",
        false,
    ), // no count: no data
    ("textfile", "textfile/b.prom", b"\xff\xfe\n", true),
    (
        "time",
        "sys/devices/system/clocksource/clocksource0/available_clocksource",
        b"\n",
        true,
    ),
];

#[test]
fn odd_input_fails_collectors_cleanly() {
    for (collector, rel, content, want_ok) in ODD {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
        std::fs::write(&path, content).expect("write");
        std::fs::create_dir_all(dir.path().join("textfile")).expect("mkdir");
        let out = collect(options(dir.path(), &[collector]));
        let ok = out.contains(&format!(
            "node_scrape_collector_success{{collector=\"{collector}\"}} 1\n"
        ));
        assert_eq!(
            ok,
            *want_ok,
            "{collector} with {rel} = {:?}:\n{out}",
            String::from_utf8_lossy(content)
        );
        // Whatever happened, the output is well-formed: every line is a comment or
        // `name[{labels}] value`.
        for line in out.lines() {
            assert!(
                line.starts_with("# HELP ")
                    || line.starts_with("# TYPE ")
                    || line
                        .rsplit_once(' ')
                        .is_some_and(|(_, v)| v.parse::<f64>().is_ok()
                            || matches!(v, "NaN" | "+Inf" | "-Inf")),
                "malformed line {line:?} for {collector}/{rel}"
            );
        }
    }
}

/// A bad text file sets node_textfile_scrape_error and is skipped; the good one still shows.
#[test]
fn textfile_errors_are_reported_not_fatal() {
    let root = fixtures();
    let out = collect(options(&root, &["textfile"]));
    assert!(out.contains("node_textfile_scrape_error 1\n"), "{out}");
    assert!(!out.contains("with_timestamp"), "{out}");
    assert!(
        out.contains(
            "backup_last_success_timestamp_seconds{job=\"nightly\",target=\"\"} 1.7e+09\n"
        ),
        "{out}"
    );
}

/// The exclusion flags replace node_exporter's defaults; a bad pattern names its flag.
#[test]
fn exclusion_options() {
    let root = fixtures();
    // (option setter, collector, series that must be absent, series that must be present)
    type Case = (
        fn(&mut NodeOptions),
        &'static str,
        &'static str,
        &'static str,
    );
    let cases: &[Case] = &[
        (
            |o| o.filesystem_mount_points_exclude = Some("^/boot/".into()),
            "filesystem",
            "mountpoint=\"/boot/firmware\"",
            "mountpoint=\"/run\"",
        ),
        (
            |o| o.filesystem_fs_types_exclude = Some("^tmpfs$".into()),
            "filesystem",
            "mountpoint=\"/run\"",
            "mountpoint=\"/boot/firmware\"",
        ),
        (
            |o| o.diskstats_device_exclude = Some("^mmcblk0p".into()),
            "diskstats",
            "device=\"mmcblk0p1\"",
            "device=\"sda\"",
        ),
        (
            |o| o.netdev_device_exclude = Some("^lo$".into()),
            "netdev",
            "device=\"lo\"",
            "device=\"eth0\"",
        ),
    ];
    for (set, collector, absent, present) in cases {
        let mut o = options(&root, &[collector]);
        set(&mut o);
        let out = collect(o);
        assert!(
            !out.contains(absent),
            "{collector}: {absent} still there:\n{out}"
        );
        assert!(
            out.contains(present),
            "{collector}: {present} missing:\n{out}"
        );
    }
    let mut bad = options(&root, &["filesystem"]);
    bad.diskstats_device_exclude = Some("(".into());
    let err = NodeExporter::try_new(bad.clone())
        .err()
        .expect("invalid regex refused");
    assert!(
        err.to_string()
            .contains("collector.diskstats.device-exclude"),
        "{err}"
    );
    // `new` falls back to the defaults instead.
    assert!(collect(bad).contains("node_scrape_collector_success{collector=\"filesystem\"} 1"));
}
