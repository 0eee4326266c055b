//! edgeprom's own metrics (`prometheus_*`, `edgeprom_*`, `process_*`) and their exposition.
//!
//! A tiny registry instead of a metrics crate: counters and gauges are atomics, histograms fixed
//! buckets, summaries a small sampled sliding window (quantiles over 10 minutes, as client_golang
//! reports them); families with
//! labels are maps behind a mutex touched only when a new label combination appears, and
//! exposition writes Prometheus text format 0.0.4. Every module registers what it owns at start-up
//! with [`Registry::global`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A float stored in an atomic `u64`.
#[derive(Debug, Default)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed)
    }
    fn add(&self, d: f64) {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(cur) + d).to_bits();
            match self
                .0
                .compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(c) => cur = c,
            }
        }
    }
}

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicF64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.add(1.0)
    }
    /// Adds `d` (must be >= 0).
    pub fn add(&self, d: f64) {
        self.0.add(d)
    }
    /// Current value.
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicF64);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.set(v)
    }
    /// Adds `d` (may be negative).
    pub fn add(&self, d: f64) {
        self.0.add(d)
    }
    /// Current value.
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

/// A histogram with fixed upper bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<AtomicU64>,
    sum: AtomicF64,
    count: AtomicU64,
}

impl Histogram {
    /// A histogram with the given (sorted) upper bounds; `+Inf` is implied.
    pub fn new(bounds: &[f64]) -> Self {
        Histogram {
            bounds: bounds.to_vec(),
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicF64::default(),
            count: AtomicU64::new(0),
        }
    }
    /// Records one observation.
    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| v <= b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum.add(v);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
    /// Total number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// How long a summary's quantiles look back: client_golang's default `MaxAge` (10 minutes).
const SUMMARY_MAX_AGE: Duration = Duration::from_secs(600);
/// Age buckets of a summary's window (client_golang's default `AgeBuckets`): the window slides in
/// steps of `SUMMARY_MAX_AGE / SUMMARY_AGE_BUCKETS`.
const SUMMARY_AGE_BUCKETS: usize = 5;
/// Observations kept per age bucket; beyond this a bucket keeps a uniform random sample
/// (reservoir sampling), so memory stays at most 5 x 256 x 8 bytes per summary however busy it
/// is. 256 samples put the 0.99 quantile within about one rank of the exact one for a few hundred
/// evaluations per bucket, which is what rule groups and Alertmanager sends produce.
const SUMMARY_SAMPLE_CAP: usize = 256;

/// One age bucket of a summary: a (possibly sampled) set of observations.
#[derive(Debug, Default)]
struct AgeBucket {
    samples: Vec<f64>,
    /// Observations offered to this bucket (>= `samples.len()`).
    seen: u64,
}

/// The sliding window of a summary, guarded by the summary's mutex.
#[derive(Debug)]
struct Window {
    buckets: Vec<AgeBucket>,
    /// The newest bucket.
    head: usize,
    /// When the newest bucket started.
    head_started: Instant,
    /// xorshift state for reservoir sampling.
    rng: u64,
}

impl Window {
    fn rotate(&mut self, now: Instant) {
        let span = SUMMARY_MAX_AGE / SUMMARY_AGE_BUCKETS as u32;
        let elapsed = now.saturating_duration_since(self.head_started);
        let steps = (elapsed.as_nanos() / span.as_nanos().max(1)) as usize;
        if steps == 0 {
            return;
        }
        for _ in 0..steps.min(SUMMARY_AGE_BUCKETS) {
            self.head = (self.head + 1) % SUMMARY_AGE_BUCKETS;
            let b = &mut self.buckets[self.head];
            b.samples.clear();
            b.seen = 0;
        }
        self.head_started += span * steps as u32;
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

/// A summary: `_sum` and `_count` since start, and quantiles over the last 10 minutes (as
/// client_golang's summaries with their default `MaxAge`). Observing takes a short mutex and
/// never allocates once a bucket's vector has grown; quantiles are computed at exposition.
#[derive(Debug)]
pub struct Summary {
    objectives: Vec<f64>,
    sum: AtomicF64,
    count: AtomicU64,
    window: Mutex<Window>,
}

impl Summary {
    /// A summary reporting the given quantiles (each in `0..=1`).
    pub fn new(objectives: &[f64]) -> Self {
        Summary {
            objectives: objectives.to_vec(),
            sum: AtomicF64::default(),
            count: AtomicU64::new(0),
            window: Mutex::new(Window {
                buckets: (0..SUMMARY_AGE_BUCKETS)
                    .map(|_| AgeBucket::default())
                    .collect(),
                head: 0,
                head_started: Instant::now(),
                rng: 0x9E37_79B9_7F4A_7C15,
            }),
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        self.observe_at(v, Instant::now());
    }

    fn observe_at(&self, v: f64, now: Instant) {
        self.sum.add(v);
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.rotate(now);
        let r = w.next_random();
        let head = w.head;
        let b = &mut w.buckets[head];
        b.seen += 1;
        if b.samples.len() < SUMMARY_SAMPLE_CAP {
            b.samples.push(v);
        } else {
            // Keep each of the `seen` observations with equal probability.
            let j = (r % b.seen) as usize;
            if j < SUMMARY_SAMPLE_CAP {
                b.samples[j] = v;
            }
        }
    }

    /// Total number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of all observations.
    pub fn sum(&self) -> f64 {
        self.sum.get()
    }

    /// `(quantile, value)` for each objective over the window; NaN without observations (as
    /// client_golang reports an empty summary).
    pub fn quantiles(&self) -> Vec<(f64, f64)> {
        self.quantiles_at(Instant::now())
    }

    fn quantiles_at(&self, now: Instant) -> Vec<(f64, f64)> {
        // Each kept sample stands for `seen / kept` observations of its bucket.
        let mut weighted: Vec<(f64, f64)> = Vec::new();
        {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            w.rotate(now);
            for b in &w.buckets {
                if b.samples.is_empty() {
                    continue;
                }
                let weight = b.seen as f64 / b.samples.len() as f64;
                weighted.extend(b.samples.iter().map(|&v| (v, weight)));
            }
        }
        weighted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total: f64 = weighted.iter().map(|(_, w)| w).sum();
        self.objectives
            .iter()
            .map(|&q| {
                if weighted.is_empty() {
                    return (q, f64::NAN);
                }
                // The smallest value whose cumulative weight reaches q of the total.
                let target = q * total;
                let mut cum = 0.0;
                let v = weighted
                    .iter()
                    .find(|(_, w)| {
                        cum += w;
                        cum >= target
                    })
                    .or(weighted.last())
                    .map(|(v, _)| *v)
                    .unwrap_or(f64::NAN);
                (q, v)
            })
            .collect()
    }
}

/// Objectives of Prometheus's latency summaries (`{0.5: 0.05, 0.9: 0.01, 0.99: 0.001}`).
pub const DEFAULT_OBJECTIVES: &[f64] = &[0.5, 0.9, 0.99];

/// Prometheus client_golang's default buckets.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

enum Metric {
    Counter(Arc<Counter>),
    Gauge(Arc<Gauge>),
    Histogram(Arc<Histogram>),
    Summary(Arc<Summary>),
    /// A gauge computed at exposition time.
    GaugeFn(Box<dyn Fn() -> f64 + Send + Sync>),
    /// A counter computed at exposition time.
    CounterFn(Box<dyn Fn() -> f64 + Send + Sync>),
}

struct Family {
    help: String,
    kind: &'static str,
    /// Label names, then per label-value tuple one metric.
    label_names: Vec<String>,
    children: BTreeMap<Vec<String>, Metric>,
}

/// The process-wide metric registry.
#[derive(Default)]
pub struct Registry {
    families: Mutex<BTreeMap<String, Family>>,
}

fn fmt_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn write_labels(
    out: &mut String,
    names: &[String],
    values: &[String],
    extra: Option<(&str, &str)>,
) {
    if names.is_empty() && extra.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (n, v) in names.iter().zip(values) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(n);
        out.push_str("=\"");
        escape_label_value(out, v);
        out.push('"');
    }
    if let Some((n, v)) = extra {
        if !first {
            out.push(',');
        }
        out.push_str(n);
        out.push_str("=\"");
        out.push_str(v);
        out.push('"');
    }
    out.push('}');
}

impl Registry {
    /// The process-wide registry.
    pub fn global() -> &'static Registry {
        static R: OnceLock<Registry> = OnceLock::new();
        R.get_or_init(Registry::default)
    }

    fn register(
        &self,
        name: &str,
        help: &str,
        kind: &'static str,
        label_names: &[&str],
        values: &[&str],
        m: impl FnOnce() -> Metric,
    ) -> Option<Metric> {
        let mut fams = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let fam = fams.entry(name.to_string()).or_insert_with(|| Family {
            help: help.to_string(),
            kind,
            label_names: label_names.iter().map(|s| s.to_string()).collect(),
            children: BTreeMap::new(),
        });
        let key: Vec<String> = values.iter().map(|s| s.to_string()).collect();
        match fam.children.get(&key) {
            Some(Metric::Counter(c)) => Some(Metric::Counter(c.clone())),
            Some(Metric::Gauge(g)) => Some(Metric::Gauge(g.clone())),
            Some(Metric::Histogram(h)) => Some(Metric::Histogram(h.clone())),
            Some(Metric::Summary(h)) => Some(Metric::Summary(h.clone())),
            Some(_) => None,
            None => {
                let m = m();
                let ret = match &m {
                    Metric::Counter(c) => Some(Metric::Counter(c.clone())),
                    Metric::Gauge(g) => Some(Metric::Gauge(g.clone())),
                    Metric::Histogram(h) => Some(Metric::Histogram(h.clone())),
                    Metric::Summary(h) => Some(Metric::Summary(h.clone())),
                    _ => None,
                };
                fam.children.insert(key, m);
                ret
            }
        }
    }

    /// Gets or creates a counter `name{label_names=values}`.
    pub fn counter(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Arc<Counter> {
        let (n, v): (Vec<&str>, Vec<&str>) = labels.iter().copied().unzip();
        match self.register(name, help, "counter", &n, &v, || {
            Metric::Counter(Arc::default())
        }) {
            Some(Metric::Counter(c)) => c,
            _ => Arc::default(), // registered as another kind: a detached metric, never exposed
        }
    }

    /// Gets or creates a gauge.
    pub fn gauge(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Arc<Gauge> {
        let (n, v): (Vec<&str>, Vec<&str>) = labels.iter().copied().unzip();
        match self.register(
            name,
            help,
            "gauge",
            &n,
            &v,
            || Metric::Gauge(Arc::default()),
        ) {
            Some(Metric::Gauge(g)) => g,
            _ => Arc::default(),
        }
    }

    /// Gets or creates a histogram with the given buckets.
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        buckets: &[f64],
    ) -> Arc<Histogram> {
        let (n, v): (Vec<&str>, Vec<&str>) = labels.iter().copied().unzip();
        match self.register(name, help, "histogram", &n, &v, || {
            Metric::Histogram(Arc::new(Histogram::new(buckets)))
        }) {
            Some(Metric::Histogram(h)) => h,
            _ => Arc::new(Histogram::new(buckets)),
        }
    }

    /// Gets or creates a summary reporting the given quantiles (see [`Summary`]).
    pub fn summary(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        objectives: &[f64],
    ) -> Arc<Summary> {
        let (n, v): (Vec<&str>, Vec<&str>) = labels.iter().copied().unzip();
        match self.register(name, help, "summary", &n, &v, || {
            Metric::Summary(Arc::new(Summary::new(objectives)))
        }) {
            Some(Metric::Summary(s)) => s,
            _ => Arc::new(Summary::new(objectives)),
        }
    }

    /// Registers a gauge whose value is computed at exposition time (replaces an earlier one).
    pub fn gauge_fn(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        f: impl Fn() -> f64 + Send + Sync + 'static,
    ) {
        self.set_fn(name, help, "gauge", labels, Metric::GaugeFn(Box::new(f)));
    }

    /// Registers a counter whose value is computed at exposition time (replaces an earlier one).
    pub fn counter_fn(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        f: impl Fn() -> f64 + Send + Sync + 'static,
    ) {
        self.set_fn(
            name,
            help,
            "counter",
            labels,
            Metric::CounterFn(Box::new(f)),
        );
    }

    fn set_fn(
        &self,
        name: &str,
        help: &str,
        kind: &'static str,
        labels: &[(&str, &str)],
        m: Metric,
    ) {
        let mut fams = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let fam = fams.entry(name.to_string()).or_insert_with(|| Family {
            help: help.to_string(),
            kind,
            label_names: labels.iter().map(|(n, _)| n.to_string()).collect(),
            children: BTreeMap::new(),
        });
        fam.children
            .insert(labels.iter().map(|(_, v)| v.to_string()).collect(), m);
    }

    /// Removes one child of a family (e.g. a target that went away).
    pub fn remove(&self, name: &str, labels: &[(&str, &str)]) {
        let mut fams = self.families.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = fams.get_mut(name) {
            let key: Vec<String> = labels.iter().map(|(_, v)| v.to_string()).collect();
            f.children.remove(&key);
        }
    }

    /// Writes every family in text format 0.0.4.
    pub fn expose(&self, out: &mut String) {
        self.expose_prefix("", out)
    }

    /// Writes the families whose name starts with `prefix` (all for ""), in text format 0.0.4.
    pub fn expose_prefix(&self, prefix: &str, out: &mut String) {
        let fams = self.families.lock().unwrap_or_else(|e| e.into_inner());
        for (name, fam) in fams.range::<str, _>((Bound::Included(prefix), Bound::Unbounded)) {
            if !name.starts_with(prefix) {
                break;
            }
            if fam.children.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "# HELP {name} {}",
                fam.help.replace('\\', "\\\\").replace('\n', "\\n")
            );
            let _ = writeln!(out, "# TYPE {name} {}", fam.kind);
            for (values, m) in &fam.children {
                match m {
                    Metric::Counter(_)
                    | Metric::Gauge(_)
                    | Metric::GaugeFn(_)
                    | Metric::CounterFn(_) => {
                        let v = match m {
                            Metric::Counter(c) => c.get(),
                            Metric::Gauge(g) => g.get(),
                            Metric::GaugeFn(f) | Metric::CounterFn(f) => f(),
                            Metric::Histogram(_) | Metric::Summary(_) => {
                                unreachable!("matched above")
                            }
                        };
                        out.push_str(name);
                        write_labels(out, &fam.label_names, values, None);
                        out.push(' ');
                        fmt_value(out, v);
                        out.push('\n');
                    }
                    Metric::Histogram(h) => {
                        let mut cum = 0u64;
                        for (b, c) in h.bounds.iter().zip(&h.counts) {
                            cum += c.load(Ordering::Relaxed);
                            let mut le = String::new();
                            fmt_value(&mut le, *b);
                            let _ = write!(out, "{name}_bucket");
                            write_labels(out, &fam.label_names, values, Some(("le", &le)));
                            let _ = writeln!(out, " {cum}");
                        }
                        let total = h.count.load(Ordering::Relaxed);
                        let _ = write!(out, "{name}_bucket");
                        write_labels(out, &fam.label_names, values, Some(("le", "+Inf")));
                        let _ = writeln!(out, " {total}");
                        let _ = write!(out, "{name}_sum");
                        write_labels(out, &fam.label_names, values, None);
                        out.push(' ');
                        fmt_value(out, h.sum.get());
                        out.push('\n');
                        let _ = write!(out, "{name}_count");
                        write_labels(out, &fam.label_names, values, None);
                        let _ = writeln!(out, " {total}");
                    }
                    Metric::Summary(s) => {
                        for (q, v) in s.quantiles() {
                            let mut qs = String::new();
                            fmt_value(&mut qs, q);
                            out.push_str(name);
                            write_labels(out, &fam.label_names, values, Some(("quantile", &qs)));
                            out.push(' ');
                            fmt_value(out, v);
                            out.push('\n');
                        }
                        let _ = write!(out, "{name}_sum");
                        write_labels(out, &fam.label_names, values, None);
                        out.push(' ');
                        fmt_value(out, s.sum());
                        out.push('\n');
                        let _ = write!(out, "{name}_count");
                        write_labels(out, &fam.label_names, values, None);
                        let _ = writeln!(out, " {}", s.count());
                    }
                }
            }
        }
    }
}

/// Registers the standard `process_*` metrics, read from /proc/self at exposition time.
pub fn register_process_metrics() {
    let r = Registry::global();
    let ticks = clock_ticks();
    let page = 4096.0; // Linux page size on x86_64 and the Pi's aarch64 kernels (4 KiB pages)
    r.counter_fn(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        &[],
        move || {
            proc_stat_field(13)
                .zip(proc_stat_field(14))
                .map(|(u, s)| (u + s) / ticks)
                .unwrap_or(0.0)
        },
    );
    r.gauge_fn(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        &[],
        move || proc_stat_field(23).map(|p| p * page).unwrap_or(0.0),
    );
    r.gauge_fn(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        &[],
        || proc_stat_field(22).unwrap_or(0.0),
    );
    r.gauge_fn(
        "process_open_fds",
        "Number of open file descriptors.",
        &[],
        || {
            std::fs::read_dir("/proc/self/fd")
                .map(|d| d.count() as f64)
                .unwrap_or(0.0)
        },
    );
    r.gauge_fn(
        "process_max_fds",
        "Maximum number of open file descriptors.",
        &[],
        || {
            std::fs::read_to_string("/proc/self/limits")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("Max open files"))
                        .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
                })
                .unwrap_or(0.0)
        },
    );
    let start = process_start_time_seconds(ticks);
    r.gauge_fn(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        &[],
        move || start,
    );
}

/// USER_HZ: 100 on every Linux architecture edgeprom targets (the kernel ABI fixes it).
fn clock_ticks() -> f64 {
    100.0
}

/// Field `i` (0-based, after the command name) of /proc/self/stat.
fn proc_stat_field(i: usize) -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    rest.split_whitespace().nth(i - 2)?.parse().ok()
}

fn process_start_time_seconds(ticks: f64) -> f64 {
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("btime "))
                .and_then(|l| l[6..].trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0);
    boot + proc_stat_field(21).unwrap_or(0.0) / ticks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_of_each_kind() {
        let r = Registry::default();
        r.counter("a_total", "A.", &[("x", "1")]).add(2.0);
        r.gauge("b", "B.", &[]).set(-1.5);
        let h = r.histogram("c_seconds", "C.", &[], &[0.1, 1.0]);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(5.0);
        r.gauge_fn("d", "D.", &[], || 7.0);
        let mut s = String::new();
        r.expose(&mut s);
        for want in [
            "# TYPE a_total counter\na_total{x=\"1\"} 2\n",
            "b -1.5\n",
            "c_seconds_bucket{le=\"0.1\"} 1\n",
            "c_seconds_bucket{le=\"1\"} 2\n",
            "c_seconds_bucket{le=\"+Inf\"} 3\n",
            "c_seconds_count 3\n",
            "d 7\n",
        ] {
            assert!(s.contains(want), "missing {want:?} in\n{s}");
        }
    }

    #[test]
    fn expose_prefix_writes_only_matching_families() {
        let r = Registry::default();
        r.gauge("process_open_fds", "Fds.", &[]).set(7.0);
        r.gauge("process_zzz", "Z.", &[]).set(1.0);
        r.counter("prometheus_x_total", "X.", &[]).add(1.0);
        r.counter("proc_total", "P.", &[]).add(1.0);
        let mut out = String::new();
        r.expose_prefix("process_", &mut out);
        assert!(out.contains("process_open_fds 7\n"), "{out}");
        assert!(out.contains("process_zzz 1\n"), "{out}");
        assert!(!out.contains("prometheus_x_total"), "{out}");
        assert!(!out.contains("proc_total"), "{out}");
        let mut all = String::new();
        r.expose(&mut all);
        assert!(all.contains("prometheus_x_total 1\n") && all.contains("proc_total 1\n"));
    }

    #[test]
    fn summary_exposition_and_quantiles() {
        let r = Registry::default();
        let empty = r.summary(
            "e_seconds",
            "E.",
            &[("alertmanager", "x")],
            DEFAULT_OBJECTIVES,
        );
        let s = r.summary("s_seconds", "S.", &[], &[0.01, 0.5, 0.9, 0.99]);
        // 1..=100: nearest-rank quantiles are exact.
        for i in 1..=100 {
            s.observe(i as f64);
        }
        let mut out = String::new();
        r.expose(&mut out);
        for want in [
            "# TYPE s_seconds summary\n",
            "s_seconds{quantile=\"0.01\"} 1\n",
            "s_seconds{quantile=\"0.5\"} 50\n",
            "s_seconds{quantile=\"0.9\"} 90\n",
            "s_seconds{quantile=\"0.99\"} 99\n",
            "s_seconds_sum 5050\n",
            "s_seconds_count 100\n",
            "e_seconds{alertmanager=\"x\",quantile=\"0.5\"} NaN\n",
            "e_seconds_count{alertmanager=\"x\"} 0\n",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
        assert_eq!(empty.count(), 0);
    }

    #[test]
    fn summary_window_slides_and_sampling_keeps_quantiles() {
        let t0 = Instant::now();
        let s = Summary::new(&[0.5]);
        for _ in 0..10 {
            s.observe_at(1.0, t0);
        }
        // Two minutes later a new bucket starts; the old one still counts.
        for _ in 0..30 {
            s.observe_at(3.0, t0 + Duration::from_secs(130));
        }
        assert_eq!(
            s.quantiles_at(t0 + Duration::from_secs(140)),
            vec![(0.5, 3.0)]
        );
        // After the window has passed, nothing is left for quantiles; the totals stay.
        let later = t0 + SUMMARY_MAX_AGE + Duration::from_secs(300);
        assert!(s.quantiles_at(later)[0].1.is_nan());
        assert_eq!(s.count(), 40);
        assert_eq!(s.sum(), 100.0);

        // Far more observations than a bucket keeps: the sample still tracks the distribution
        // (uniform 0..10000, median near 5000).
        let s = Summary::new(&[0.5, 0.9]);
        for i in 0..10_000u32 {
            s.observe_at(f64::from(i.wrapping_mul(7919) % 10_000), t0);
        }
        let q = s.quantiles_at(t0);
        assert!((q[0].1 - 5000.0).abs() < 1000.0, "{q:?}");
        assert!((q[1].1 - 9000.0).abs() < 600.0, "{q:?}");
        let kept: usize = s
            .window
            .lock()
            .unwrap()
            .buckets
            .iter()
            .map(|b| b.samples.len())
            .sum();
        assert_eq!(kept, SUMMARY_SAMPLE_CAP);
    }

    #[test]
    fn same_name_and_labels_share_one_metric() {
        let r = Registry::default();
        r.counter("x_total", "X.", &[]).inc();
        r.counter("x_total", "X.", &[]).inc();
        assert_eq!(r.counter("x_total", "X.", &[]).get(), 2.0);
    }
}
