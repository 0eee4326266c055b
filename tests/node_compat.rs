//! Side-by-side test with Debian's `prometheus-node-exporter` on the same machine.
//!
//! Starts node_exporter on a free loopback port with the collectors edgeprom implements (and
//! upstream's default exclusions, which Debian's package changes), scrapes it over HTTP with a
//! tiny std::net client, runs edgeprom's node exporter, and checks for every family both expose:
//! the same TYPE, HELP and label names; the same series for stable families; equal values for
//! slow-moving ones (memory total, filesystem sizes, boot time, CPU count, ...); and the same
//! collector success. It prints, then asserts empty, the list of families node_exporter has that
//! edgeprom lacks.
//!
//! The binary is found through `$NODE_EXPORTER` or as `prometheus-node-exporter` /
//! `node_exporter` on `$PATH`; when it is missing the test fails with a message saying so.
#![allow(clippy::print_stdout)] // the test reports what it compared, for the closing note

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgeprom::node::{NodeExporter, NodeOptions, COLLECTORS};

/// Upstream node_exporter 1.5 defaults (Debian's package patches these).
const MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
const FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$";

fn find_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NODE_EXPORTER") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["prometheus-node-exporter", "node_exporter"] {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "node_exporter not found: install Debian's `prometheus-node-exporter` package \
         (CI does) or set NODE_EXPORTER to the binary; this test does not pass without it"
    );
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// HTTP/1.0 GET of `/metrics`; returns the body on a 200.
fn scrape(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n\r\n")
        .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.0 200").then(|| body.to_string()))
}

#[derive(Default, Debug)]
struct Family {
    help: String,
    typ: String,
    /// Series (sorted label pairs) -> value.
    series: BTreeMap<Vec<(String, String)>, f64>,
}

impl Family {
    fn label_names(&self) -> BTreeSet<String> {
        self.series
            .keys()
            .flat_map(|l| l.iter().map(|(n, _)| n.clone()))
            .collect()
    }
}

/// A parser for well-formed exposition text (both peers emit it); samples are attached to the
/// last family header.
fn parse(text: &str) -> BTreeMap<String, Family> {
    let mut fams: BTreeMap<String, Family> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            current = name.to_string();
            fams.entry(current.clone()).or_default().help = help.to_string();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, t) = rest.split_once(' ').unwrap_or((rest, ""));
            fams.entry(name.to_string()).or_default().typ = t.to_string();
        } else if !line.is_empty() && !line.starts_with('#') {
            let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
            let (_name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            let mut pairs = Vec::new();
            let mut rest = labels;
            while let Some((k, r)) = rest.split_once("=\"") {
                // Values here contain no escaped quotes except in rare uname strings.
                let mut end = 0;
                let b = r.as_bytes();
                while end < b.len() && !(b[end] == b'"' && (end == 0 || b[end - 1] != b'\\')) {
                    end += 1;
                }
                pairs.push((k.trim_start_matches(',').to_string(), r[..end].to_string()));
                rest = &r[(end + 1).min(r.len())..];
            }
            pairs.sort();
            let v: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or(f64::NAN),
            };
            fams.entry(current.clone())
                .or_default()
                .series
                .insert(pairs, v);
        }
    }
    fams
}

/// Families that belong to node_exporter itself, not to a collector.
fn is_exporter_own(name: &str) -> bool {
    name.starts_with("go_")
        || name.starts_with("process_")
        || name.starts_with("promhttp_")
        || name == "node_exporter_build_info"
}

#[test]
fn same_families_types_labels_and_slow_values_as_node_exporter() {
    let bin = find_binary();
    let tf = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        tf.path().join("cron.prom"),
        "# HELP backup_last_success_timestamp_seconds Last good backup.\n\
         # TYPE backup_last_success_timestamp_seconds gauge\n\
         backup_last_success_timestamp_seconds{job=\"nightly\"} 1.7e+09\n\
         untyped_thing{a=\"1\"} 3\nuntyped_thing{b=\"2\"} 4\n",
    )
    .expect("write textfile");

    let chosen: Vec<&str> = COLLECTORS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !n.starts_with("edgeprom"))
        .collect();
    let port = free_port();
    let mut args = vec![
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--collector.disable-defaults".to_string(),
        format!("--collector.textfile.directory={}", tf.path().display()),
        format!("--collector.filesystem.mount-points-exclude={MOUNT_POINTS_EXCLUDE}"),
        format!("--collector.filesystem.fs-types-exclude={FS_TYPES_EXCLUDE}"),
        "--collector.netdev.device-exclude=".to_string(),
        "--log.level=error".to_string(),
    ];
    args.extend(chosen.iter().map(|c| format!("--collector.{c}")));
    let child = Command::new(&bin)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let _guard = KillOnDrop(child);

    let deadline = Instant::now() + Duration::from_secs(15);
    let theirs_text = loop {
        if let Some(b) = scrape(port) {
            break b;
        }
        assert!(
            Instant::now() < deadline,
            "node_exporter did not answer on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    let opts = NodeOptions {
        textfile_dir: Some(tf.path().to_path_buf()),
        ..NodeOptions::default()
    };
    let mut ours_text = String::new();
    NodeExporter::new(opts).collect(&mut ours_text);

    let theirs = parse(&theirs_text);
    let ours = parse(&ours_text);

    let mut problems = Vec::new();
    let mut missing = Vec::new();
    let mut common = 0;
    for (name, t) in &theirs {
        if is_exporter_own(name) {
            continue;
        }
        let Some(o) = ours.get(name) else {
            missing.push(name.clone());
            continue;
        };
        common += 1;
        if o.typ != t.typ {
            problems.push(format!("{name}: TYPE {} (node_exporter {})", o.typ, t.typ));
        }
        if o.help != t.help {
            problems.push(format!(
                "{name}: HELP {:?} (node_exporter {:?})",
                o.help, t.help
            ));
        }
        if o.label_names() != t.label_names() {
            problems.push(format!(
                "{name}: labels {:?} (node_exporter {:?})",
                o.label_names(),
                t.label_names()
            ));
        }
    }
    let extra: Vec<&String> = ours
        .keys()
        .filter(|n| !theirs.contains_key(*n) && !n.starts_with("edgeprom_"))
        .collect();
    println!("families compared: {common}");
    println!("families node_exporter has that edgeprom lacks: {missing:?}");
    // cpu, loadavg, meminfo, stat, time, uname, os, entropy, textfile alone give more than 40.
    assert!(
        common > 40,
        "only {common} common families: is node_exporter's output parsed?"
    );
    println!("families edgeprom has that node_exporter lacks here: {extra:?}");

    // Series identity must match for stable families.
    for name in [
        "node_cpu_seconds_total",
        "node_cpu_guest_seconds_total",
        "node_filesystem_size_bytes",
        "node_filesystem_device_error",
        "node_filesystem_readonly",
        "node_disk_info",
        "node_uname_info",
        "node_os_info",
        "node_os_version",
        "node_time_zone_offset_seconds",
        "node_time_clocksource_available_info",
        "node_time_clocksource_current_info",
        "node_thermal_zone_temp",
        "node_network_receive_bytes_total",
        "node_textfile_mtime_seconds",
        "untyped_thing",
        "backup_last_success_timestamp_seconds",
    ] {
        let (o, t) = (ours.get(name), theirs.get(name));
        let ok: BTreeSet<_> = o.map(|f| f.series.keys().collect()).unwrap_or_default();
        let tk: BTreeSet<_> = t.map(|f| f.series.keys().collect()).unwrap_or_default();
        if ok != tk {
            problems.push(format!("{name}: series {ok:?} (node_exporter {tk:?})"));
        }
    }
    // Slow-moving values must be equal.
    for name in [
        "node_memory_MemTotal_bytes",
        "node_memory_SwapTotal_bytes",
        "node_memory_Hugepagesize_bytes",
        "node_filesystem_size_bytes",
        "node_filesystem_files",
        "node_filesystem_readonly",
        "node_filesystem_device_error",
        "node_boot_time_seconds",
        "node_entropy_pool_size_bits",
        "node_os_version",
        "node_uname_info",
        "node_disk_info",
        "node_time_zone_offset_seconds",
        "node_textfile_mtime_seconds",
        "node_textfile_scrape_error",
        "untyped_thing",
        "backup_last_success_timestamp_seconds",
        "node_cpu_frequency_max_hertz",
        "node_cpu_frequency_min_hertz",
    ] {
        let (Some(o), Some(t)) = (ours.get(name), theirs.get(name)) else {
            continue;
        };
        for (labels, tv) in &t.series {
            match o.series.get(labels) {
                Some(ov) if ov == tv => {}
                other => problems.push(format!(
                    "{name}{labels:?}: value {other:?} (node_exporter {tv})"
                )),
            }
        }
    }
    // Collector outcomes must agree.
    if let (Some(o), Some(t)) = (
        ours.get("node_scrape_collector_success"),
        theirs.get("node_scrape_collector_success"),
    ) {
        for (labels, tv) in &t.series {
            if o.series.get(labels) != Some(tv) {
                problems.push(format!(
                    "node_scrape_collector_success{labels:?}: {:?} (node_exporter {tv})",
                    o.series.get(labels)
                ));
            }
        }
    }
    // CPU count.
    let cpus = |f: &BTreeMap<String, Family>| -> BTreeSet<String> {
        f.get("node_cpu_seconds_total")
            .map(|f| {
                f.series
                    .keys()
                    .flat_map(|l| l.iter().filter(|(n, _)| n == "cpu").map(|(_, v)| v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(!cpus(&ours).is_empty(), "no CPUs reported");
    assert_eq!(cpus(&ours), cpus(&theirs), "CPU sets differ");

    for p in &problems {
        println!("MISMATCH {p}");
    }
    assert!(
        problems.is_empty(),
        "{} mismatches (see output)",
        problems.len()
    );
    assert!(
        missing.is_empty(),
        "edgeprom lacks node_exporter families: {missing:?}"
    );
}
