//! Load benchmark (issue 11, "Load"): 200,000 active series scraped every 10 s plus a steady
//! stream of dashboard queries, edgeprom (the real release binary) beside Prometheus 2.42 (the
//! Debian binary) scraping the same targets in the same run, on this machine's cores.
//!
//! Run: `cargo bench --bench load` (about 7 minutes at the defaults). Knobs (environment):
//! - `LOAD_SERIES` (200,000) active series in all, spread over `LOAD_TARGETS` (20) targets;
//! - `LOAD_WARMUP` (60 s after both servers are ready; not measured: series are created, the
//!   first flushes happen) and `LOAD_SECONDS` (300 s, the measured window);
//! - `LOAD_QUERY_EVERY_MS` (1,000): each server gets one dashboard query per period from its own
//!   client task, one at a time (bounded rate and concurrency; the count is window / period);
//!   0 sends none, which measures ingestion alone;
//! - `PROMETHEUS_BIN` (`prometheus`); `LOAD_DIR` (where the temporary data directories go;
//!   default cargo's target tmp dir, on disk rather than tmpfs so written bytes are real).
//!
//! Small scale while developing: `LOAD_SERIES=20000 LOAD_WARMUP=20 LOAD_SECONDS=60 cargo bench
//! --bench load`.
//!
//! The targets are served by this process on 127.0.0.1 (hyper, one port per target). Each body
//! is rendered at most once per second and cached, so values change between any two scrapes:
//! node-exporter-like counters with two decimals, sensor gauges with one decimal, HTTP counters
//! and a histogram, topped up with queue-depth gauges. Reported per server, over the window after
//! the warm-up:
//! - CPU: utime + stime from `/proc/PID/stat`, as average cores and per million samples;
//! - RSS: `VmRSS` sampled every second (median, max), `VmHWM` (peak over the whole run) and the
//!   final `VmRSS`;
//! - bytes written per sample: `write_bytes` of `/proc/PID/io` over samples appended (each
//!   server's own `prometheus_tsdb_head_samples_appended_total`), and the data directory's size;
//! - scrape timing seen by the targets: a scraper's ticker keeps a fixed phase per target, so each
//!   scrape's lag is its delay against the earliest phase seen for that target (p50/p99/max), a
//!   scrape later than a tenth of the interval counts as late, a slot with no scrape as missed;
//!   also the spread of the gap between successive scrapes (|gap - 10 s|);
//! - scrape timing as each server recorded it: scrapes stored (`count_over_time(up)`), failed
//!   ones (`up == 0`), `scrape_duration_seconds` mean and max;
//! - dashboard query latency p50/p99 over the whole mix, and p50 per query.
//!
//! Children are killed when the benchmark ends (drop guards, and `PR_SET_PDEATHSIG` should the
//! benchmark itself be killed); the data directories are removed at the end.
//!
//! Prometheus cuts its first head chunks to disk after 120 samples (20 minutes at 10 s) and
//! writes blocks after 2 h or more: a shorter window counts its WAL only, which favours it.

#![allow(clippy::print_stdout)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use edgeprom::http_client::HttpClient;

const INTERVAL_MS: u64 = 10_000;
/// A scrape later than this after its slot counts as late (a tenth of the interval).
const LATE_MS: f64 = 1_000.0;
/// Bound on every HTTP request the benchmark makes.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Targets

/// How a series' value moves.
#[derive(Clone, Copy)]
enum Kind {
    /// Counter rising by `inc` hundredths per generation, printed with two decimals.
    Counter2 { base: u64, inc: u64 },
    /// Integer counter.
    Counter { base: u64, inc: u64 },
    /// Gauge printed with one decimal.
    Gauge1 { mid: f64, amp: f64, phase: f64 },
    /// Large integer gauge (bytes).
    Bytes { base: u64, step: u64 },
}

struct Family {
    header: String,
    series: Vec<(String, Kind)>,
}

/// A cheap deterministic hash for per-series parameters.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The series layout of one target: about 1,500 realistic series, topped up with queue gauges to
/// exactly `n`.
fn layout(n: usize, target: usize) -> Vec<Family> {
    let mut fams = Vec::new();
    let mut seed = (target as u64) << 32;
    let mut next = || {
        seed += 1;
        mix(seed)
    };
    let f = |name: &str, typ: &str, help: &str| Family {
        header: format!("# HELP {name} {help}\n# TYPE {name} {typ}\n"),
        series: Vec::new(),
    };
    let mut cpu = f(
        "node_cpu_seconds_total",
        "counter",
        "Seconds the CPUs spent in each mode.",
    );
    for c in 0..8 {
        for m in [
            "idle", "user", "system", "iowait", "irq", "softirq", "nice", "steal",
        ] {
            let h = next();
            let inc = if m == "idle" { 600 + h % 300 } else { h % 150 };
            cpu.series.push((
                format!("node_cpu_seconds_total{{cpu=\"{c}\",mode=\"{m}\"}}"),
                Kind::Counter2 {
                    base: h % 10_000_000,
                    inc,
                },
            ));
        }
    }
    fams.push(cpu);
    for (name, scale) in [
        ("node_network_receive_bytes_total", 200_000),
        ("node_network_transmit_bytes_total", 80_000),
        ("node_network_receive_packets_total", 400),
        ("node_network_transmit_packets_total", 300),
    ] {
        let mut fam = f(name, "counter", "Network device statistic.");
        for d in 0..8 {
            let h = next();
            fam.series.push((
                format!("{name}{{device=\"eth{d}\"}}"),
                Kind::Counter {
                    base: h % 1_000_000_000,
                    inc: h % scale,
                },
            ));
        }
        fams.push(fam);
    }
    for name in [
        "node_filesystem_size_bytes",
        "node_filesystem_free_bytes",
        "node_filesystem_avail_bytes",
    ] {
        let mut fam = f(name, "gauge", "Filesystem space in bytes.");
        for d in 0..8 {
            let h = next();
            let step = if name.ends_with("size_bytes") {
                0
            } else {
                4096 * (h % 16)
            };
            fam.series.push((
                format!("{name}{{device=\"/dev/sd{d}\",fstype=\"ext4\",mountpoint=\"/srv/{d}\"}}"),
                Kind::Bytes {
                    base: 64_000_000_000 + (h % 1_000_000) * 4096,
                    step,
                },
            ));
        }
        fams.push(fam);
    }
    for name in [
        "node_memory_MemFree_bytes",
        "node_memory_Cached_bytes",
        "node_memory_Buffers_bytes",
        "node_memory_Active_bytes",
    ] {
        let mut fam = f(name, "gauge", "Memory information field.");
        let h = next();
        fam.series.push((
            name.to_string(),
            Kind::Bytes {
                base: 200_000_000 + h % 100_000_000,
                step: 4096 * (h % 64),
            },
        ));
        fams.push(fam);
    }
    for (name, mid) in [
        ("sensor_temperature_celsius", 21.0),
        ("sensor_humidity_percent", 45.0),
    ] {
        let mut fam = f(name, "gauge", "Sensor reading.");
        for s in 0..200 {
            let h = next();
            fam.series.push((
                format!("{name}{{room=\"room-{}\",sensor=\"s{s:03}\"}}", s % 12),
                Kind::Gauge1 {
                    mid: mid + (h % 50) as f64 / 10.0,
                    amp: 2.0,
                    phase: (h % 360) as f64,
                },
            ));
        }
        fams.push(fam);
    }
    let handlers: Vec<String> = (0..20).map(|i| format!("/api/v1/resource{i}")).collect();
    let mut req = f("http_requests_total", "counter", "Requests handled.");
    for m in ["GET", "POST", "PUT", "DELETE"] {
        for hd in &handlers {
            for code in ["200", "201", "404", "429", "500"] {
                let h = next();
                let inc = if code.starts_with('2') {
                    h % 400
                } else {
                    h % 4
                };
                req.series.push((
                    format!(
                        "http_requests_total{{code=\"{code}\",handler=\"{hd}\",method=\"{m}\"}}"
                    ),
                    Kind::Counter {
                        base: h % 1_000_000,
                        inc,
                    },
                ));
            }
        }
    }
    fams.push(req);
    let les = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
    ];
    let mut hist = f(
        "http_request_duration_seconds",
        "histogram",
        "Request latency.",
    );
    for m in ["GET", "POST"] {
        for hd in &handlers {
            let h = next();
            let rate = 50 + h % 400;
            for (i, le) in les.iter().enumerate() {
                // Cumulative buckets rise together.
                let inc = rate * (i as u64 + 1) / les.len() as u64;
                hist.series.push((
                    format!("http_request_duration_seconds_bucket{{handler=\"{hd}\",method=\"{m}\",le=\"{le}\"}}"),
                    Kind::Counter { base: inc * 1000, inc },
                ));
            }
            hist.series.push((
                format!("http_request_duration_seconds_sum{{handler=\"{hd}\",method=\"{m}\"}}"),
                Kind::Counter2 {
                    base: h % 100_000,
                    inc: rate * 7,
                },
            ));
            hist.series.push((
                format!("http_request_duration_seconds_count{{handler=\"{hd}\",method=\"{m}\"}}"),
                Kind::Counter {
                    base: rate * 1000,
                    inc: rate,
                },
            ));
        }
    }
    fams.push(hist);
    let mut q = f("app_queue_depth", "gauge", "Items waiting per queue.");
    let fixed: usize = fams.iter().map(|f| f.series.len()).sum();
    for i in 0..n.saturating_sub(fixed) {
        let h = next();
        q.series.push((
            format!("app_queue_depth{{queue=\"q{i:04}\"}}"),
            Kind::Gauge1 {
                mid: (h % 100) as f64,
                amp: 10.0,
                phase: (h % 360) as f64,
            },
        ));
    }
    fams.push(q);
    // Cut to exactly n when the fixed families alone exceed it.
    let mut left = n;
    for fam in &mut fams {
        fam.series.truncate(left);
        left -= fam.series.len();
    }
    fams.retain(|f| !f.series.is_empty());
    fams
}

fn render(fams: &[Family], generation: u64) -> Bytes {
    let mut s = String::with_capacity(fams.iter().map(|f| f.series.len() * 80).sum());
    for fam in fams {
        s.push_str(&fam.header);
        for (name, kind) in &fam.series {
            s.push_str(name);
            s.push(' ');
            let _ = match *kind {
                Kind::Counter2 { base, inc } => {
                    let v = base + inc * generation;
                    writeln!(s, "{}.{:02}", v / 100, v % 100)
                }
                Kind::Counter { base, inc } => writeln!(s, "{}", base + inc * generation),
                Kind::Gauge1 { mid, amp, phase } => {
                    let x = mid + amp * ((generation as f64) / 30.0 + phase).sin();
                    writeln!(s, "{:.1}", x)
                }
                Kind::Bytes { base, step } => {
                    let wave = (generation % 64) as i64 - 32;
                    writeln!(s, "{}", (base as i64 + wave * step as i64).max(0))
                }
            };
        }
    }
    Bytes::from(s)
}

/// Which scraper sent a request, by its User-Agent: 0 edgeprom, 1 Prometheus.
fn scraper_of(ua: &str) -> usize {
    usize::from(ua.starts_with("Prometheus"))
}

struct Target {
    fams: Vec<Family>,
    /// The body of the current second.
    cache: Mutex<(u64, Bytes)>,
    /// Arrival times (ms) of scrapes, per scraper (0 edgeprom, 1 Prometheus).
    arrivals: [Mutex<Vec<u64>>; 2],
}

impl Target {
    fn body(&self, now: u64) -> Bytes {
        let generation = now / 1000;
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if c.0 != generation || c.1.is_empty() {
            *c = (generation, render(&self.fams, generation));
        }
        c.1.clone()
    }
}

async fn serve_targets(targets: &[Arc<Target>]) -> Vec<u16> {
    let mut ports = Vec::new();
    for t in targets {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a target port on 127.0.0.1");
        ports.push(l.local_addr().expect("local addr").port());
        let t = t.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = l.accept().await else {
                    return;
                };
                let t = t.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let t = t.clone();
                            async move {
                                let now = now_ms();
                                let ua = req
                                    .headers()
                                    .get(http::header::USER_AGENT)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("");
                                t.arrivals[scraper_of(ua)]
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .push(now);
                                let mut r =
                                    http::Response::new(http_body_util::Full::new(t.body(now)));
                                r.headers_mut().insert(
                                    "content-type",
                                    http::HeaderValue::from_static("text/plain; version=0.0.4"),
                                );
                                Ok::<_, std::convert::Infallible>(r)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
    }
    ports
}

// ---------------------------------------------------------------------------------------------
// Process readings

fn proc_cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // utime and stime are fields 14 and 15 (1-based).
    (ticks(11) + ticks(12)) / hz
}

fn proc_field(path: &str, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|r| r.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0)
}

fn rss_bytes(pid: u32) -> u64 {
    proc_field(&format!("/proc/{pid}/status"), "VmRSS:") * 1024
}

fn peak_rss_bytes(pid: u32) -> u64 {
    proc_field(&format!("/proc/{pid}/status"), "VmHWM:") * 1024
}

fn write_bytes(pid: u32) -> u64 {
    proc_field(&format!("/proc/{pid}/io"), "write_bytes:")
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A child process killed (and reaped) when dropped.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` so that it dies with this process even if drop guards never run (SIGINT).
fn spawn_guarded(mut cmd: std::process::Command) -> std::io::Result<Child> {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent; the closure runs
    // between fork and exec and only calls it.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().map(Child)
}

// ---------------------------------------------------------------------------------------------
// HTTP client side

fn encode(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            let _ = write!(o, "%{b:02X}");
        }
    }
    o
}

async fn get(c: &HttpClient, url: &str) -> Result<(u16, Vec<u8>), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let mut body = Vec::new();
    let headers = http::HeaderMap::new();
    let fut = c.get_into(&uri, &headers, &mut body, 0);
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(Ok(h)) => Ok((h.status.as_u16(), body)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
    }
}

/// The server's own count of samples appended to its head.
async fn samples_appended(c: &HttpClient, port: u16) -> f64 {
    let Ok((200, body)) = get(c, &format!("http://127.0.0.1:{port}/metrics")).await else {
        return f64::NAN;
    };
    // Summed over its series (2.42 splits it by sample type).
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| {
            l.strip_prefix("prometheus_tsdb_head_samples_appended_total")
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|x| x.1.parse::<f64>().ok()))
        .sum()
}

/// A scalar from an instant query's first sample, evaluated at `at_s`.
async fn scalar_query(c: &HttpClient, port: u16, q: &str, at_s: f64) -> f64 {
    let url = format!(
        "http://127.0.0.1:{port}/api/v1/query?query={}&time={at_s:.3}",
        encode(q)
    );
    let Ok((200, body)) = get(c, &url).await else {
        return f64::NAN;
    };
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    v["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Waits until `/-/ready` answers 200; false when `deadline` passes first.
async fn wait_ready(c: &HttpClient, port: u16, deadline: Instant) -> bool {
    while Instant::now() < deadline {
        if let Ok((200, _)) = get(c, &format!("http://127.0.0.1:{port}/-/ready")).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// One dashboard request.
enum Query {
    /// A range query over the last `range_s` seconds at `step_s`.
    Range {
        q: String,
        range_s: u64,
        step_s: u64,
    },
    /// An instant query now.
    Instant(String),
    /// `/api/v1/label/<name>/values` over the last hour.
    LabelValues(&'static str),
    /// `/api/v1/series` for a matcher over the last hour.
    Series(String),
}

impl Query {
    fn path(&self, end_s: u64) -> String {
        match self {
            Query::Range { q, range_s, step_s } => format!(
                "/api/v1/query_range?query={}&start={}&end={end_s}&step={step_s}",
                encode(q),
                end_s - range_s
            ),
            Query::Instant(q) => format!("/api/v1/query?query={}&time={end_s}", encode(q)),
            Query::LabelValues(n) => {
                format!(
                    "/api/v1/label/{n}/values?start={}&end={end_s}",
                    end_s - 3600
                )
            }
            Query::Series(m) => format!(
                "/api/v1/series?match%5B%5D={}&start={}&end={end_s}",
                encode(m),
                end_s - 3600
            ),
        }
    }

    fn label(&self) -> String {
        let short = |s: &str| -> String {
            if s.len() > 52 {
                format!("{}...", s.chars().take(49).collect::<String>())
            } else {
                s.to_string()
            }
        };
        match self {
            Query::Range { q, range_s, .. } => short(&format!("[{}m] {q}", range_s / 60)),
            Query::Instant(q) => short(&format!("[now] {q}")),
            Query::LabelValues(n) => format!("label values {n}"),
            Query::Series(m) => short(&format!("series {m}")),
        }
    }
}

/// A fixed dashboard mix: rates and aggregations over 5 minutes to 1 hour, label values, series.
/// Each selects at most a few thousand series, as a dashboard panel does.
fn dashboard(first_port: u16) -> Vec<Query> {
    let inst = format!("127.0.0.1:{first_port}");
    let range = |q: &str, min: u64| Query::Range {
        q: q.to_string(),
        range_s: min * 60,
        // About 240 points per panel, as Grafana asks for on a wide panel.
        step_s: (min * 60 / 240).max(15),
    };
    vec![
        range(
            r#"sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[1m]))"#,
            60,
        ),
        range(
            r#"histogram_quantile(0.99, sum by (le, method) (rate(http_request_duration_seconds_bucket[5m])))"#,
            30,
        ),
        range(
            r#"topk(5, sum by (handler) (rate(http_requests_total[5m])))"#,
            15,
        ),
        range("avg by (room) (sensor_temperature_celsius)", 60),
        Query::Instant("count(up == 1)".into()),
        range(
            r#"sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))"#,
            5,
        ),
        range(
            &format!(
                r#"1 - node_filesystem_avail_bytes{{instance="{inst}"}} / node_filesystem_size_bytes{{instance="{inst}"}}"#
            ),
            60,
        ),
        Query::LabelValues("instance"),
        range(
            &format!(r#"rate(node_network_receive_bytes_total{{instance="{inst}"}}[5m])"#),
            15,
        ),
        Query::Series(format!(r#"node_cpu_seconds_total{{instance="{inst}"}}"#)),
        range(r#"max by (instance) (app_queue_depth{queue=~"q00.."})"#, 30),
        Query::LabelValues("__name__"),
        range(r#"sum by (instance) (scrape_samples_scraped)"#, 60),
        Query::Instant(r#"sum by (code) (increase(http_requests_total[1h]))"#.into()),
    ]
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

// ---------------------------------------------------------------------------------------------
// Scrape timing seen by the targets

/// One scraper's timing over all targets, within the measured window.
#[derive(Default)]
struct Timing {
    /// Delay of each scrape against its target's earliest phase (ms).
    lag: Vec<f64>,
    /// |gap between successive scrapes - interval| (ms).
    gap_dev: Vec<f64>,
    received: usize,
    expected: usize,
    late: usize,
    missed: usize,
}

impl Timing {
    /// Adds one target's arrival times; the window is [t0, t1] (ms).
    fn add(&mut self, arrivals: &[u64], t0: u64, t1: u64) {
        let mut a = arrivals.to_vec();
        a.sort_unstable();
        let Some(&first) = a.first() else {
            self.expected += ((t1 - t0) / INTERVAL_MS) as usize;
            self.missed += ((t1 - t0) / INTERVAL_MS) as usize;
            return;
        };
        let iv = INTERVAL_MS as i64;
        // Slot and offset of each scrape against the first; the earliest offset is the phase.
        let slot = |x: u64| ((x - first) as f64 / iv as f64).round() as i64;
        let off = |x: u64| (x - first) as i64 - slot(x) * iv;
        let phase = a.iter().map(|&x| off(x)).min().unwrap_or(0);
        let mut slots = BTreeSet::new();
        for &x in &a {
            if x < t0 || x > t1 {
                continue;
            }
            self.received += 1;
            let lag = (off(x) - phase) as f64;
            self.lag.push(lag);
            if lag > LATE_MS {
                self.late += 1;
            }
            slots.insert(slot(x));
        }
        for w in a.windows(2) {
            if w[1] >= t0 && w[1] <= t1 {
                self.gap_dev
                    .push(((w[1] - w[0]) as f64 - INTERVAL_MS as f64).abs());
            }
        }
        // Slots whose on-time instant falls inside the window.
        let base = first as i64 + phase;
        let lo = ((t0 as i64 - base) as f64 / iv as f64).ceil() as i64;
        let hi = ((t1 as i64 - base) as f64 / iv as f64).floor() as i64;
        let expected = (hi - lo + 1).max(0) as usize;
        let hit = slots.range(lo..=hi).count();
        self.expected += expected;
        self.missed += expected.saturating_sub(hit);
    }
}

// ---------------------------------------------------------------------------------------------

struct Server {
    name: &'static str,
    pid: u32,
    port: u16,
    data: PathBuf,
}

#[derive(Default, Clone, Copy)]
struct Reading {
    cpu: f64,
    written: u64,
    samples: f64,
}

async fn reading(c: &HttpClient, s: &Server) -> Reading {
    Reading {
        cpu: proc_cpu_seconds(s.pid),
        written: write_bytes(s.pid),
        samples: samples_appended(c, s.port).await,
    }
}

/// Latencies (ms) per query of the mix, and the errors, of one server.
#[derive(Default)]
struct QueryStats {
    lat: Vec<Vec<f64>>,
    /// Latencies since the last progress line.
    recent: Vec<f64>,
    errors: Vec<String>,
}

/// Sends the dashboard mix to one server, one request per `every`, until `until`.
async fn query_stream(
    c: Arc<HttpClient>,
    port: u16,
    queries: Arc<Vec<Query>>,
    every: Duration,
    delay: Duration,
    until: Instant,
    st: Arc<Mutex<QueryStats>>,
) {
    st.lock().unwrap_or_else(|p| p.into_inner()).lat = vec![Vec::new(); queries.len()];
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + delay, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut k = 0usize;
    loop {
        tick.tick().await;
        if Instant::now() >= until {
            return;
        }
        let i = k % queries.len();
        k += 1;
        let url = format!(
            "http://127.0.0.1:{port}{}",
            queries[i].path(now_ms() / 1000)
        );
        let t = Instant::now();
        let r = get(&c, &url).await;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let mut st = st.lock().unwrap_or_else(|p| p.into_inner());
        match r {
            Ok((200, _)) => {
                st.lat[i].push(ms);
                st.recent.push(ms);
            }
            Ok((code, body)) => st.errors.push(format!(
                "{code} {}: {}",
                queries[i].label(),
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )),
            Err(e) => st.errors.push(format!("{}: {e}", queries[i].label())),
        }
    }
}

struct Knobs {
    targets: usize,
    series: usize,
    warmup: u64,
    window: u64,
    query_every: u64,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let k = Knobs {
        targets: env_or("LOAD_TARGETS", 20usize).max(1),
        series: env_or("LOAD_SERIES", 200_000usize),
        warmup: env_or("LOAD_WARMUP", 60),
        window: env_or("LOAD_SECONDS", 300).max(20),
        query_every: env_or("LOAD_QUERY_EVERY_MS", 1_000),
    };
    let prom_bin = std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| "prometheus".into());
    let parent = std::env::var("LOAD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&parent).expect("the benchmark's parent directory");
    // Removed when dropped, after the children (declared later, dropped earlier).
    let dir = tempfile::Builder::new()
        .prefix("loadbench-")
        .tempdir_in(&parent)
        .expect("a temporary directory");
    let base = dir.path();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let per_target = k.series / k.targets;
    let targets: Vec<Arc<Target>> = (0..k.targets)
        .map(|i| {
            Arc::new(Target {
                fams: layout(per_target, i),
                cache: Mutex::new((0, Bytes::new())),
                arrivals: [Mutex::new(Vec::new()), Mutex::new(Vec::new())],
            })
        })
        .collect();
    let ports = rt.block_on(serve_targets(&targets));
    let addrs: Vec<String> = ports.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
    let yaml = format!(
        "global:\n  scrape_interval: 10s\n  scrape_timeout: 10s\n  evaluation_interval: 1m\nscrape_configs:\n  - job_name: load\n    static_configs:\n      - targets: [{}]\n",
        addrs.join(", ")
    );
    let cfg = base.join("load.yml");
    std::fs::write(&cfg, &yaml).expect("write the config");

    // Children are spawned from the main thread: PR_SET_PDEATHSIG follows the spawning thread.
    let ep_port = free_port();
    let ep_data = base.join("edgeprom-data");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_edgeprom"));
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.tsdb.path={}", ep_data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{ep_port}"))
        .arg("--log.level=warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(base.join("edgeprom.log")).expect("log file"));
    let ep = spawn_guarded(cmd).expect("start edgeprom");
    let pr_port = free_port();
    let pr_data = base.join("prometheus-data");
    let mut cmd = std::process::Command::new(&prom_bin);
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.tsdb.path={}", pr_data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{pr_port}"))
        .arg("--log.level=warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(base.join("prometheus.log")).expect("log file"));
    let pr = match spawn_guarded(cmd) {
        Ok(c) => Some(c),
        Err(e) => {
            println!("cannot start {prom_bin} ({e}): measuring edgeprom alone");
            None
        }
    };
    let mut servers = vec![Server {
        name: "edgeprom",
        pid: ep.0.id(),
        port: ep_port,
        data: ep_data,
    }];
    if let Some(p) = &pr {
        servers.push(Server {
            name: "prometheus 2.42",
            pid: p.0.id(),
            port: pr_port,
            data: pr_data,
        });
    }
    println!(
        "load: {} targets x {per_target} series = {} series every 10 s; warm-up {} s, window {} s, \
         {}; load average at start {}",
        k.targets,
        k.targets * per_target,
        k.warmup,
        k.window,
        if k.query_every == 0 {
            "no dashboard queries".to_string()
        } else {
            format!("one dashboard query per {} ms to each server", k.query_every)
        },
        loadavg()
    );
    // Ctrl-C ends the run through the same clean-up as a finished one.
    let ok = rt.block_on(async {
        tokio::select! {
            ok = run(&k, &servers, &targets, ports[0]) => ok,
            _ = tokio::signal::ctrl_c() => {
                println!("interrupted");
                false
            }
        }
    });
    if !ok {
        for s in &servers {
            let log = base.join(format!("{}.log", s.name.split(' ').next().unwrap_or("x")));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            println!("--- {} log (last lines):", s.name);
            for l in text
                .lines()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                println!("{l}");
            }
        }
    }
    drop(pr);
    drop(ep);
    rt.shutdown_timeout(Duration::from_secs(1));
    drop(dir);
}

/// Warm-up, measured window, report. False when a server never became ready.
async fn run(k: &Knobs, servers: &[Server], targets: &[Arc<Target>], first_port: u16) -> bool {
    let client = Arc::new(HttpClient::new(&Default::default()).expect("HTTP client"));
    let deadline = Instant::now() + Duration::from_secs(120);
    for s in servers {
        if !wait_ready(&client, s.port, deadline).await {
            println!("{} not ready within 120 s", s.name);
            return false;
        }
    }
    tokio::time::sleep(Duration::from_secs(k.warmup)).await;

    // Window start.
    let mut r0 = Vec::new();
    for s in servers {
        r0.push(reading(&client, s).await);
    }
    let bench_cpu0 = proc_cpu_seconds(std::process::id());
    let t0 = now_ms();
    let started = Instant::now();
    let until = started + Duration::from_secs(k.window);

    let queries = Arc::new(dashboard(first_port));
    let every = Duration::from_millis(k.query_every);
    let qstats: Vec<Arc<Mutex<QueryStats>>> = servers.iter().map(|_| Arc::default()).collect();
    let mut streams = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        if k.query_every == 0 {
            break;
        }
        // Servers take turns within each period, so their queries do not collide.
        let delay = every * i as u32 / servers.len() as u32;
        streams.push(tokio::spawn(query_stream(
            client.clone(),
            s.port,
            queries.clone(),
            every,
            delay,
            until,
            qstats[i].clone(),
        )));
    }

    // RSS every second; progress every 30 s.
    let mut rss: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n = 0u64;
    let mut last_cpu: Vec<f64> = r0.iter().map(|r| r.cpu).collect();
    while Instant::now() < until {
        tick.tick().await;
        for (i, s) in servers.iter().enumerate() {
            rss[i].push(rss_bytes(s.pid) as f64);
        }
        n += 1;
        if n % 30 == 0 {
            let mut line = format!("  {:>4} s:", started.elapsed().as_secs());
            // The last 30 s: CPU, and the latency of dashboard requests (it grows with the
            // data a query must read).
            for (i, s) in servers.iter().enumerate() {
                let cpu = proc_cpu_seconds(s.pid);
                let recent =
                    std::mem::take(&mut qstats[i].lock().unwrap_or_else(|p| p.into_inner()).recent);
                let _ = write!(
                    line,
                    "  {}: {:.0} MiB, {:.2} cores, query p50 {:.0} ms",
                    s.name,
                    rss_bytes(s.pid) as f64 / 1048576.0,
                    (cpu - last_cpu[i]) / 30.0,
                    pct(&recent, 0.5)
                );
                last_cpu[i] = cpu;
            }
            println!("{line}");
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let t1 = now_ms();
    let mut r1 = Vec::new();
    for s in servers {
        r1.push(reading(&client, s).await);
    }
    let bench_cpu = proc_cpu_seconds(std::process::id()) - bench_cpu0;
    for h in streams {
        let _ = h.await;
    }
    let qs: Vec<QueryStats> = qstats
        .iter()
        .map(|q| std::mem::take(&mut *q.lock().unwrap_or_else(|p| p.into_inner())))
        .collect();
    let load_end = loadavg();
    // Memory at the end of the window, before the summary queries below.
    let rss_end: Vec<(u64, u64)> = servers
        .iter()
        .map(|s| (peak_rss_bytes(s.pid), rss_bytes(s.pid)))
        .collect();

    // Scrape timing as each server stored it, over exactly the window.
    let w = format!("{}s", (t1 - t0) / 1000);
    let at = t1 as f64 / 1000.0;
    let mut seen = Vec::new();
    for s in servers {
        let mut v = [f64::NAN; 4];
        for (x, e) in v.iter_mut().zip([
            r#"sum(count_over_time(up{job="load"}[W]))"#,
            r#"sum(count_over_time(up{job="load"}[W]) - sum_over_time(up{job="load"}[W]))"#,
            r#"avg(avg_over_time(scrape_duration_seconds{job="load"}[W]))"#,
            r#"max(max_over_time(scrape_duration_seconds{job="load"}[W]))"#,
        ]) {
            *x = scalar_query(&client, s.port, &e.replace("[W", &format!("[{w}")), at).await;
        }
        seen.push(v);
    }

    // Scrape timing seen by the targets.
    let mut timing: Vec<Timing> = servers.iter().map(|_| Timing::default()).collect();
    for t in targets {
        for (i, tm) in timing.iter_mut().enumerate() {
            let a = t.arrivals[i].lock().unwrap_or_else(|p| p.into_inner());
            tm.add(&a, t0, t1);
        }
    }

    println!(
        "\nmeasured window {elapsed:.0} s; load average at end {load_end}; the benchmark process \
         (targets + queries) used {bench_cpu:.1} CPU s"
    );
    let col = |f: &dyn Fn(usize) -> String| -> String {
        (0..servers.len())
            .map(|i| format!("{:>20}", f(i)))
            .collect()
    };
    let row = |name: &str, f: &dyn Fn(usize) -> String| println!("{name:<56}{}", col(f));
    let samples: Vec<f64> = (0..servers.len())
        .map(|i| r1[i].samples - r0[i].samples)
        .collect();
    let cpu: Vec<f64> = (0..servers.len()).map(|i| r1[i].cpu - r0[i].cpu).collect();
    let mib = |b: f64| format!("{:.0}", b / 1048576.0);
    row("", &|i| servers[i].name.to_string());
    row("samples appended", &|i| format!("{:.0}", samples[i]));
    row("samples/s", &|i| format!("{:.0}", samples[i] / elapsed));
    row("CPU s (utime+stime)", &|i| format!("{:.1}", cpu[i]));
    row("CPU (cores, average)", &|i| {
        format!("{:.3}", cpu[i] / elapsed)
    });
    row("CPU s per million samples", &|i| {
        format!("{:.2}", cpu[i] / (samples[i] / 1e6))
    });
    row("RSS median in window MiB", &|i| mib(pct(&rss[i], 0.5)));
    row("RSS max in window MiB", &|i| mib(pct(&rss[i], 1.0)));
    row("RSS peak (VmHWM, whole run) MiB", &|i| {
        mib(rss_end[i].0 as f64)
    });
    row("RSS final MiB", &|i| mib(rss_end[i].1 as f64));
    row("bytes written per sample", &|i| {
        format!(
            "{:.2}",
            r1[i].written.saturating_sub(r0[i].written) as f64 / samples[i]
        )
    });
    row("data dir at end MiB", &|i| {
        format!("{:.1}", dir_bytes(&servers[i].data) as f64 / 1048576.0)
    });
    row("scrapes seen by targets / slots", &|i| {
        format!("{} / {}", timing[i].received, timing[i].expected)
    });
    row("missed slots", &|i| timing[i].missed.to_string());
    row("late scrapes (> 1 s after phase)", &|i| {
        timing[i].late.to_string()
    });
    row("scrape lag p50 ms", &|i| {
        format!("{:.1}", pct(&timing[i].lag, 0.5))
    });
    row("scrape lag p99 ms", &|i| {
        format!("{:.1}", pct(&timing[i].lag, 0.99))
    });
    row("scrape lag max ms", &|i| {
        format!("{:.1}", pct(&timing[i].lag, 1.0))
    });
    row("|gap - 10 s| p99 ms", &|i| {
        format!("{:.1}", pct(&timing[i].gap_dev, 0.99))
    });
    row("scrapes stored (count_over_time(up))", &|i| {
        format!("{:.0}", seen[i][0])
    });
    row("failed scrapes stored (up == 0)", &|i| {
        format!("{:.0}", seen[i][1])
    });
    row("scrape_duration_seconds mean ms", &|i| {
        format!("{:.1}", seen[i][2] * 1000.0)
    });
    row("scrape_duration_seconds max ms", &|i| {
        format!("{:.1}", seen[i][3] * 1000.0)
    });
    let all: Vec<Vec<f64>> = qs.iter().map(|q| q.lat.concat()).collect();
    row("dashboard requests ok", &|i| all[i].len().to_string());
    row("dashboard request errors", &|i| {
        qs[i].errors.len().to_string()
    });
    row("query latency p50 ms", &|i| {
        format!("{:.1}", pct(&all[i], 0.5))
    });
    row("query latency p99 ms", &|i| {
        format!("{:.1}", pct(&all[i], 0.99))
    });
    if k.query_every == 0 {
        return true;
    }
    println!("\nper query, p50 ms:");
    for (j, q) in queries.iter().enumerate() {
        row(&format!("  {}", q.label()), &|i| {
            format!("{:.1}", pct(qs[i].lat.get(j).map_or(&[], |v| v), 0.5))
        });
    }
    for (i, q) in qs.iter().enumerate() {
        for m in q.errors.iter().take(3) {
            println!("  {} error: {m}", servers[i].name);
        }
    }
    true
}
