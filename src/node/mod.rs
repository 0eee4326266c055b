//! The node self-exporter: node_exporter-compatible metrics about the board edgeprom runs on.
//!
//! Users already have dashboards and alerts written against node_exporter's metric names, so each
//! collector here speaks exactly that dialect (names, HELP, TYPE, label names, units and default
//! exclusions of node_exporter 1.5), reading /proc and /sys directly under configurable roots so
//! tests can point it at fixture trees. One file per collector family; `edgeprom_rpi` adds
//! Raspberry Pi health that node_exporter lacks (see `src/node/README.md`).
//!
//! Why direct reads and not `sysinfo`: sysinfo lacks most of the data (per-mode CPU seconds,
//! every /proc/meminfo field, diskstats, pressure, hwmon, thermal zones) and, where it overlaps
//! (memory, CPU, load, uname), a refresh costs more time and allocations than parsing the one
//! file we need; `benches/node.rs` prints both figures.
//!
//! [`NodeExporter::collect`] never panics on odd input: each collector runs under
//! `catch_unwind`, and a failing collector is reported like node_exporter does, through
//! `node_scrape_collector_success{collector}` and `node_scrape_collector_duration_seconds`.

mod arp;
mod conntrack;
mod cpu;
mod cpufreq;
mod diskstats;
mod entropy;
pub(crate) mod expo;
mod filefd;
mod filesystem;
mod hwmon;
mod loadavg;
mod meminfo;
mod netclass;
mod netdev;
mod netstat;
mod os;
mod pressure;
mod rpi;
mod sockstat;
mod softnet;
mod stat;
mod textfile;
mod thermal_zone;
mod time;
mod timex;
mod uname;
mod vmstat;

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use expo::{Type, W};

/// Where the collectors read from and which of them run.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// procfs mount point (`--path.procfs`, default `/proc`).
    pub procfs: PathBuf,
    /// sysfs mount point (`--path.sysfs`, default `/sys`).
    pub sysfs: PathBuf,
    /// Root of the host file system (`--path.rootfs`, default `/`): prefix for statfs, os-release
    /// and udev data, stripped from reported mount points.
    pub rootfs: PathBuf,
    /// `--collector.textfile.directory`; `None` reads no text files (node_exporter's default).
    pub textfile_dir: Option<PathBuf>,
    /// Names (from [`COLLECTORS`]) of the collectors to run.
    pub enabled: BTreeSet<String>,
    /// `--collector.filesystem.mount-points-exclude`; `None` keeps node_exporter's default.
    pub filesystem_mount_points_exclude: Option<String>,
    /// `--collector.filesystem.fs-types-exclude`; `None` keeps node_exporter's default.
    pub filesystem_fs_types_exclude: Option<String>,
    /// `--collector.diskstats.device-exclude`; `None` keeps node_exporter's default.
    pub diskstats_device_exclude: Option<String>,
    /// `--collector.netdev.device-exclude`; `None` excludes nothing (node_exporter's default).
    pub netdev_device_exclude: Option<String>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            procfs: PathBuf::from("/proc"),
            sysfs: PathBuf::from("/sys"),
            rootfs: PathBuf::from("/"),
            textfile_dir: None,
            enabled: COLLECTORS
                .iter()
                .filter(|(_, on)| *on)
                .map(|(n, _)| (*n).to_string())
                .collect(),
            filesystem_mount_points_exclude: None,
            filesystem_fs_types_exclude: None,
            diskstats_device_exclude: None,
            netdev_device_exclude: None,
        }
    }
}

/// Every collector: (node_exporter's name, enabled by default), for `--collector.<name>` and
/// `--no-collector.<name>`. Sorted by name, which is also the order of the output.
pub const COLLECTORS: &[(&str, bool)] = &[
    ("arp", true),
    ("conntrack", true),
    ("cpu", true),
    ("cpufreq", true),
    ("diskstats", true),
    ("edgeprom_rpi", true),
    ("entropy", true),
    ("filefd", true),
    ("filesystem", true),
    ("hwmon", true),
    ("loadavg", true),
    ("meminfo", true),
    ("netclass", true),
    ("netdev", true),
    ("netstat", true),
    ("os", true),
    ("pressure", true),
    ("sockstat", true),
    ("softnet", true),
    ("stat", true),
    ("textfile", true),
    ("thermal_zone", true),
    ("time", true),
    ("timex", true),
    ("uname", true),
    ("vmstat", true),
];

type CollectFn = fn(&mut Ctx, &mut W) -> Result<(), NodeError>;

/// Collector functions, index-aligned with [`COLLECTORS`] (checked by a unit test).
const FNS: &[(&str, CollectFn)] = &[
    ("arp", arp::collect),
    ("conntrack", conntrack::collect),
    ("cpu", cpu::collect),
    ("cpufreq", cpufreq::collect),
    ("diskstats", diskstats::collect),
    ("edgeprom_rpi", rpi::collect),
    ("entropy", entropy::collect),
    ("filefd", filefd::collect),
    ("filesystem", filesystem::collect),
    ("hwmon", hwmon::collect),
    ("loadavg", loadavg::collect),
    ("meminfo", meminfo::collect),
    ("netclass", netclass::collect),
    ("netdev", netdev::collect),
    ("netstat", netstat::collect),
    ("os", os::collect),
    ("pressure", pressure::collect),
    ("sockstat", sockstat::collect),
    ("softnet", softnet::collect),
    ("stat", stat::collect),
    ("textfile", textfile::collect),
    ("thermal_zone", thermal_zone::collect),
    ("time", time::collect),
    ("timex", timex::collect),
    ("uname", uname::collect),
    ("vmstat", vmstat::collect),
];

/// Why a collector failed; shown in the log, counted as `node_scrape_collector_success 0`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A file or directory could not be read.
    #[error("cannot read {}", .path.display())]
    Io {
        /// What was read.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A file had content the collector does not understand.
    #[error("{}: {what}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong, with the offending text.
        what: String,
    },
    /// The data does not exist on this system (node_exporter's `ErrNoData`): logged at debug.
    #[error("no data: {0}")]
    NoData(&'static str),
    /// An exclusion pattern from the options is not a valid regular expression.
    #[error("invalid regular expression for --{flag}")]
    Regex {
        /// The node_exporter flag the pattern came from.
        flag: &'static str,
        /// Why it does not compile.
        #[source]
        source: regex::Error,
    },
    /// The collector panicked; the panic is contained and its partial output dropped.
    #[error("collector panicked")]
    Panicked,
}

impl NodeError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        NodeError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    fn parse(path: &Path, what: impl Into<String>) -> Self {
        NodeError::Parse {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }
    /// True for a missing file or directory.
    fn is_not_found(&self) -> bool {
        matches!(self, NodeError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Reusable read buffers: a path scratch and a content buffer, so steady-state collections reuse
/// their capacity instead of allocating per file.
#[derive(Default)]
pub(crate) struct Files {
    path: PathBuf,
    buf: String,
}

impl Files {
    /// Joins `base` and `rel` into the scratch path.
    pub(crate) fn path(&mut self, base: &Path, rel: &str) -> &Path {
        self.path.as_mut_os_string().clear();
        self.path.push(base);
        if !rel.is_empty() {
            self.path.push(rel.trim_start_matches('/'));
        }
        &self.path
    }

    /// Reads `base/rel` into the content buffer and returns it.
    pub(crate) fn read(&mut self, base: &Path, rel: &str) -> Result<(&str, &Path), NodeError> {
        self.path(base, rel);
        self.buf.clear();
        read_into(&self.path, &mut self.buf)?;
        Ok((&self.buf, &self.path))
    }

    /// The content of the last successful `read`.
    pub(crate) fn read_again(&self) -> &str {
        &self.buf
    }

    /// The path of the last `read`, for error messages.
    pub(crate) fn last_path(&self) -> &Path {
        &self.path
    }
}

/// Reads a whole file into `buf` (appending).
pub(crate) fn read_into(path: &Path, buf: &mut String) -> Result<(), NodeError> {
    let mut f = std::fs::File::open(path).map_err(|e| NodeError::io(path, e))?;
    f.read_to_string(buf).map_err(|e| NodeError::io(path, e))?;
    Ok(())
}

/// Reads a small sysfs attribute, trimmed, into `buf`; `None` if it cannot be read.
pub(crate) fn read_attr<'b>(path: &Path, buf: &'b mut String) -> Option<&'b str> {
    buf.clear();
    read_into(path, buf).ok()?;
    Some(buf.trim())
}

/// Sorted names of the entries of `dir` whose name starts with `prefix`.
pub(crate) fn list_dir(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<(), NodeError> {
    out.clear();
    let rd = std::fs::read_dir(dir).map_err(|e| NodeError::io(dir, e))?;
    for e in rd.flatten() {
        if let Some(n) = e.file_name().to_str() {
            if n.starts_with(prefix) {
                out.push(n.to_string());
            }
        }
    }
    out.sort();
    Ok(())
}

/// Collector state kept between collections (buffers, compiled filters).
pub(crate) struct Ctx {
    pub(crate) opts: NodeOptions,
    pub(crate) files: Files,
    /// A second scratch string for nested reads.
    pub(crate) buf2: String,
    /// A scratch string for composed names.
    pub(crate) name: String,
    pub(crate) names: Vec<String>,
    pub(crate) filesystem: filesystem::State,
    pub(crate) diskstats: diskstats::State,
    pub(crate) netdev: netdev::State,
    pub(crate) rpi: rpi::State,
}

/// Per-collector outcome of the last collection.
struct Outcome {
    name: &'static str,
    secs: f64,
    ok: bool,
}

struct Inner {
    cx: Ctx,
    outcomes: Vec<Outcome>,
}

/// The node exporter: collects the enabled collectors into Prometheus text format 0.0.4.
pub struct NodeExporter {
    inner: Mutex<Inner>,
    enabled: Vec<(&'static str, CollectFn)>,
}

impl NodeExporter {
    /// Builds the exporter; unknown names in `o.enabled` are ignored. An invalid exclusion
    /// pattern is logged and replaced by node_exporter's default (use [`NodeExporter::try_new`]
    /// to refuse it instead).
    pub fn new(mut o: NodeOptions) -> Self {
        match Self::try_new(o.clone()) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "node exporter: using default exclusions");
                o.filesystem_mount_points_exclude = None;
                o.filesystem_fs_types_exclude = None;
                o.diskstats_device_exclude = None;
                o.netdev_device_exclude = None;
                Self::build(o)
            }
        }
    }

    /// Like [`NodeExporter::new`], but an invalid exclusion pattern is an error naming its flag.
    pub fn try_new(o: NodeOptions) -> Result<Self, NodeError> {
        let compile = |flag: &'static str, p: &Option<String>| {
            p.as_deref()
                .map(regex::Regex::new)
                .transpose()
                .map_err(|source| NodeError::Regex { flag, source })
        };
        let mp = compile(
            "collector.filesystem.mount-points-exclude",
            &o.filesystem_mount_points_exclude,
        )?;
        let fs = compile(
            "collector.filesystem.fs-types-exclude",
            &o.filesystem_fs_types_exclude,
        )?;
        let disk = compile(
            "collector.diskstats.device-exclude",
            &o.diskstats_device_exclude,
        )?;
        let net = compile("collector.netdev.device-exclude", &o.netdev_device_exclude)?;
        let e = Self::build(o);
        {
            let mut g = e.inner.lock().unwrap_or_else(|p| p.into_inner());
            let cx = &mut g.cx;
            if let Some(r) = mp {
                cx.filesystem.mount_points_exclude = r;
            }
            if let Some(r) = fs {
                cx.filesystem.fs_types_exclude = r;
            }
            if let Some(r) = disk {
                cx.diskstats.exclude = r;
            }
            // An empty pattern means "exclude nothing", as node_exporter treats the empty flag.
            cx.netdev.exclude = net.filter(|r| !r.as_str().is_empty());
        }
        Ok(e)
    }

    fn build(o: NodeOptions) -> Self {
        let enabled = FNS
            .iter()
            .filter(|(n, _)| o.enabled.contains(*n))
            .copied()
            .collect();
        NodeExporter {
            inner: Mutex::new(Inner {
                cx: Ctx {
                    opts: o,
                    files: Files::default(),
                    buf2: String::new(),
                    name: String::new(),
                    names: Vec::new(),
                    filesystem: filesystem::State::new(),
                    diskstats: diskstats::State::new(),
                    netdev: netdev::State::default(),
                    rpi: rpi::State::default(),
                },
                outcomes: Vec::new(),
            }),
            enabled,
        }
    }

    /// Appends one collection (all enabled collectors plus the `node_scrape_collector_*`
    /// families) to `out`. Concurrent calls are serialised.
    pub fn collect(&self, out: &mut String) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *guard;
        inner.outcomes.clear();
        for &(name, f) in &self.enabled {
            let start = Instant::now();
            let mark = out.len();
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut w = W::new(&mut *out);
                let r = f(&mut inner.cx, &mut w);
                w.finish();
                r
            }))
            .unwrap_or_else(|_| {
                // A panic may have stopped mid-line: drop everything it wrote.
                out.truncate(mark);
                Err(NodeError::Panicked)
            });
            let ok = match res {
                Ok(()) => true,
                Err(NodeError::NoData(why)) => {
                    tracing::debug!(collector = name, why, "collector returned no data");
                    false
                }
                Err(e) => {
                    tracing::error!(collector = name, error = %e, "collector failed");
                    false
                }
            };
            inner.outcomes.push(Outcome {
                name,
                secs: start.elapsed().as_secs_f64(),
                ok,
            });
        }
        let mut w = W::new(out);
        w.family(
            &["node_scrape_collector_duration_seconds"],
            &["node_exporter: Duration of a collector scrape."],
            Type::Gauge,
        );
        for o in &inner.outcomes {
            w.sample(
                &["node_scrape_collector_duration_seconds"],
                &[("collector", o.name)],
                o.secs,
            );
        }
        w.family(
            &["node_scrape_collector_success"],
            &["node_exporter: Whether a collector succeeded."],
            Type::Gauge,
        );
        for o in &inner.outcomes {
            w.sample(
                &["node_scrape_collector_success"],
                &[("collector", o.name)],
                if o.ok { 1.0 } else { 0.0 },
            );
        }
    }
}

/// Parses a decimal unsigned integer field, naming the file on failure.
pub(crate) fn parse_u64(s: &str, path: &Path) -> Result<u64, NodeError> {
    s.parse()
        .map_err(|_| NodeError::parse(path, format!("invalid integer {s:?}")))
}

/// Parses a float field like Go's `strconv.ParseFloat`, naming the file on failure.
pub(crate) fn parse_f64(s: &str, path: &Path) -> Result<f64, NodeError> {
    s.parse()
        .map_err(|_| NodeError::parse(path, format!("invalid number {s:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_table_matches_functions() {
        let a: Vec<&str> = COLLECTORS.iter().map(|c| c.0).collect();
        let b: Vec<&str> = FNS.iter().map(|c| c.0).collect();
        assert_eq!(a, b);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(a, sorted, "COLLECTORS must stay sorted");
    }

    #[test]
    fn missing_roots_fail_collectors_without_panicking() {
        let o = NodeOptions {
            procfs: PathBuf::from("/nonexistent/proc"),
            sysfs: PathBuf::from("/nonexistent/sys"),
            rootfs: PathBuf::from("/nonexistent"),
            textfile_dir: Some(PathBuf::from("/nonexistent/tf")),
            ..NodeOptions::default()
        };
        let e = NodeExporter::new(o);
        let mut out = String::new();
        e.collect(&mut out);
        assert!(out.contains("node_scrape_collector_success{collector=\"cpu\"} 0"));
        assert!(out.contains("node_scrape_collector_success{collector=\"meminfo\"} 0"));
        // uname and time do not read files.
        assert!(out.contains("node_scrape_collector_success{collector=\"uname\"} 1"));
    }
}
