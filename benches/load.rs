//! Load benchmark (issue 11 "Load"): 200,000 active series scraped every 10 s plus a steady
//! stream of dashboard queries, edgeprom (the real binary) beside Prometheus 2.42 scraping the
//! same targets in the same run, on this machine's cores.
//!
//! Run: `cargo bench --bench load` (about 9 minutes). Knobs (environment):
//! `LOAD_TARGETS` (100) x `LOAD_SERIES_PER_TARGET` (2,000) series, `LOAD_WARMUP` (60 s, not
//! measured), `LOAD_SECONDS` (480 s, the measured window), `LOAD_QUERY_EVERY_MS` (2,000: one
//! dashboard query to each server per period), `PROMETHEUS_BIN` (`prometheus`),
//! `LOAD_DIR` (data directories; default `target/loadbench`, on disk rather than tmpfs so written
//! bytes are real).
//!
//! The targets are served by this process (hyper, one port per target). Each body is rendered
//! once per 10 s generation and cached, so both scrapers read identical data: node-exporter-like
//! counters with two decimals, sensor gauges with one decimal, HTTP counters and histograms.
//! Reported per server, over the window after the warm-up:
//! - CPU: user+system seconds from `/proc/PID/stat`, as average cores and per million samples;
//! - RSS: `VmRSS` sampled every second (median and max);
//! - bytes written per sample: `write_bytes` of `/proc/PID/io` over samples appended
//!   (`prometheus_tsdb_head_samples_appended_total` of each server), and the data directory's
//!   size at the end per sample;
//! - scrape lag, seen from the targets: each scrape's arrival time against its target's previous
//!   one (|interval - 10 s|), p50/p99/max, and scrapes received against expected;
//! - dashboard query latency p50/p99 (the same query to both servers, alternating who goes first).
//!
//! Prometheus writes its 2-hour blocks and compactions only after 2 h or more: a window shorter
//! than that counts its WAL and head-chunk writes only, which favours it.

#![allow(clippy::print_stdout)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

const INTERVAL_MS: u64 = 10_000;

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
    let mut count = 0usize;
    let mut seed = (target as u64) << 32;
    let mut next = |count: &mut usize| {
        *count += 1;
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
            let h = next(&mut count);
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
            let h = next(&mut count);
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
            let h = next(&mut count);
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
        let h = next(&mut count);
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
            let h = next(&mut count);
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
                let h = next(&mut count);
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
            let h = next(&mut count);
            let rate = 50 + h % 400;
            for (i, le) in les.iter().enumerate() {
                // Cumulative buckets rise together.
                let inc = rate * (i as u64 + 1) / les.len() as u64;
                hist.series.push((
                    format!("http_request_duration_seconds_bucket{{handler=\"{hd}\",method=\"{m}\",le=\"{le}\"}}"),
                    Kind::Counter { base: inc * 1000, inc },
                ));
                count += 1;
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
            count += 2;
        }
    }
    fams.push(hist);
    let mut q = f("app_queue_depth", "gauge", "Items waiting per queue.");
    let mut i = 0;
    while count < n {
        let h = next(&mut count);
        q.series.push((
            format!("app_queue_depth{{queue=\"q{i:04}\"}}"),
            Kind::Gauge1 {
                mid: (h % 100) as f64,
                amp: 10.0,
                phase: (h % 360) as f64,
            },
        ));
        i += 1;
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

/// Which scraper sent a request, by its User-Agent.
fn scraper_of(ua: &str) -> usize {
    if ua.starts_with("Prometheus") {
        1
    } else {
        0
    }
}

struct Target {
    fams: Vec<Family>,
    cache: Mutex<(u64, Bytes)>,
    /// Arrival times (ms) of scrapes, per scraper (0 edgeprom, 1 Prometheus).
    arrivals: [Mutex<Vec<u64>>; 2],
}

async fn serve_targets(targets: Vec<Arc<Target>>) -> Vec<u16> {
    let mut ports = Vec::new();
    for t in targets {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        ports.push(l.local_addr().expect("addr").port());
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
                                if let Ok(mut a) = t.arrivals[scraper_of(ua)].lock() {
                                    a.push(now);
                                }
                                let generation = now / INTERVAL_MS;
                                let body = {
                                    let mut c = t.cache.lock().expect("cache");
                                    if c.0 != generation || c.1.is_empty() {
                                        *c = (generation, render(&t.fams, generation));
                                    }
                                    c.1.clone()
                                };
                                let mut r = http::Response::new(http_body_util::Full::new(body));
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
    let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
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

fn write_bytes(pid: u32) -> u64 {
    proc_field(&format!("/proc/{pid}/io"), "write_bytes:")
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
        .expect("free port")
}

/// Kills the child when dropped.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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

async fn get(c: &edgeprom::http_client::HttpClient, url: &str) -> Result<(u16, Vec<u8>), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{e}"))?;
    let mut body = Vec::new();
    let headers = http::HeaderMap::new();
    let fut = c.get_into(&uri, &headers, &mut body, 0);
    match tokio::time::timeout(Duration::from_secs(60), fut).await {
        Ok(Ok(h)) => Ok((h.status.as_u16(), body)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timeout".into()),
    }
}

async fn samples_appended(c: &edgeprom::http_client::HttpClient, port: u16) -> f64 {
    let Ok((_, body)) = get(c, &format!("http://127.0.0.1:{port}/metrics")).await else {
        return f64::NAN;
    };
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| {
            l.strip_prefix("prometheus_tsdb_head_samples_appended_total")
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|x| x.1.parse::<f64>().ok()))
        .sum()
}

/// A scalar from an instant query's first sample.
async fn scalar_query(c: &edgeprom::http_client::HttpClient, port: u16, q: &str) -> f64 {
    let url = format!("http://127.0.0.1:{port}/api/v1/query?query={}", encode(q));
    let Ok((200, body)) = get(c, &url).await else {
        return f64::NAN;
    };
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    v["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Dashboard queries: (instant?, query). Range queries cover the last 10 minutes at 15 s.
fn dashboard(first_port: u16) -> Vec<(bool, String)> {
    vec![
        (false, r#"sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[1m]))"#.into()),
        (false, r#"histogram_quantile(0.99, sum by (le, handler) (rate(http_request_duration_seconds_bucket[1m])))"#.into()),
        (false, r#"topk(5, sum by (instance) (rate(http_requests_total[1m])))"#.into()),
        (false, "avg by (room) (sensor_temperature_celsius)".into()),
        (true, "up".into()),
        (false, r#"sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))"#.into()),
        (false, format!(r#"1 - node_filesystem_avail_bytes{{instance="127.0.0.1:{first_port}"}} / node_filesystem_size_bytes{{instance="127.0.0.1:{first_port}"}}"#)),
        (false, format!(r#"rate(node_network_receive_bytes_total{{instance="127.0.0.1:{first_port}"}}[1m])"#)),
        (true, "count(up == 1)".into()),
        (false, "max by (instance) (app_queue_depth)".into()),
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

struct Server {
    name: &'static str,
    pid: u32,
    port: u16,
    data: PathBuf,
}

#[derive(Default, Clone)]
struct Reading {
    cpu: f64,
    written: u64,
    samples: f64,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n_targets: usize = env_or("LOAD_TARGETS", 100);
    let per_target: usize = env_or("LOAD_SERIES_PER_TARGET", 2_000);
    let warmup: u64 = env_or("LOAD_WARMUP", 60);
    let window: u64 = env_or("LOAD_SECONDS", 480);
    let query_every: u64 = env_or("LOAD_QUERY_EVERY_MS", 2_000);
    let prom_bin = std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| "prometheus".into());
    let base = std::env::var("LOAD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/loadbench"));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).expect("bench dir");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let targets: Vec<Arc<Target>> = (0..n_targets)
            .map(|i| {
                Arc::new(Target {
                    fams: layout(per_target, i),
                    cache: Mutex::new((0, Bytes::new())),
                    arrivals: [Mutex::new(Vec::new()), Mutex::new(Vec::new())],
                })
            })
            .collect();
        let ports = serve_targets(targets.clone()).await;
        let addrs: Vec<String> = ports.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
        let yaml = format!(
            "global:\n  scrape_interval: 10s\n  scrape_timeout: 10s\n  evaluation_interval: 1m\nscrape_configs:\n  - job_name: load\n    static_configs:\n      - targets: [{}]\n",
            addrs.join(", ")
        );
        let cfg = base.join("load.yml");
        std::fs::write(&cfg, &yaml).expect("config");

        let ep_port = free_port();
        let ep_data = base.join("edgeprom-data");
        let ep = Child(
            std::process::Command::new(env!("CARGO_BIN_EXE_edgeprom"))
                .arg(format!("--config.file={}", cfg.display()))
                .arg(format!("--storage.tsdb.path={}", ep_data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{ep_port}"))
                .arg("--log.level=warn")
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(base.join("edgeprom.log")).expect("log"))
                .spawn()
                .expect("start edgeprom"),
        );
        let pr_port = free_port();
        let pr_data = base.join("prometheus-data");
        let pr = match std::process::Command::new(&prom_bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", pr_data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{pr_port}"))
            .arg("--log.level=warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(base.join("prometheus.log")).expect("log"))
            .spawn()
        {
            Ok(c) => Some(Child(c)),
            Err(e) => {
                println!("cannot start {prom_bin} ({e}): measuring edgeprom alone");
                None
            }
        };
        let mut servers = vec![Server { name: "edgeprom", pid: ep.0.id(), port: ep_port, data: ep_data }];
        if let Some(p) = &pr {
            servers.push(Server { name: "prometheus 2.42", pid: p.0.id(), port: pr_port, data: pr_data });
        }
        let servers = Arc::new(servers);
        let client = Arc::new(edgeprom::http_client::HttpClient::new(&Default::default()).expect("client"));
        println!(
            "load: {n_targets} targets x {per_target} series = {} series every 10s; warm-up {warmup}s, window {window}s, one dashboard query per {query_every} ms to each server",
            n_targets * per_target
        );
        tokio::time::sleep(Duration::from_secs(warmup)).await;

        // Window start.
        let mut r0 = Vec::new();
        for s in servers.iter() {
            r0.push(Reading { cpu: proc_cpu_seconds(s.pid), written: write_bytes(s.pid), samples: samples_appended(&client, s.port).await });
        }
        let bench_cpu0 = proc_cpu_seconds(std::process::id());
        let t0 = now_ms();
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));

        // RSS sampler.
        let rss: Arc<Mutex<Vec<Vec<f64>>>> = Arc::new(Mutex::new(vec![Vec::new(); servers.len()]));
        let rss_task = {
            let (rss, servers, stop) = (rss.clone(), servers.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(mut r) = rss.lock() {
                        for (i, s) in servers.iter().enumerate() {
                            r[i].push(rss_bytes(s.pid) as f64);
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        };
        // Dashboard query stream.
        let lat: Arc<Mutex<Vec<Vec<f64>>>> = Arc::new(Mutex::new(vec![Vec::new(); servers.len()]));
        let errs: Arc<Mutex<Vec<Vec<String>>>> = Arc::new(Mutex::new(vec![Vec::new(); servers.len()]));
        let query_task = {
            let (lat, errs, servers, stop, client) = (lat.clone(), errs.clone(), servers.clone(), stop.clone(), client.clone());
            let queries = dashboard(ports[0]);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(query_every));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut k = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let (instant, q) = &queries[k % queries.len()];
                    let end = now_ms() / 1000;
                    let start = end.saturating_sub(600).max(t0 / 1000 - warmup);
                    let path = if *instant {
                        format!("/api/v1/query?query={}&time={end}", encode(q))
                    } else {
                        format!("/api/v1/query_range?query={}&start={start}&end={end}&step=15", encode(q))
                    };
                    let n = servers.len();
                    for j in 0..n {
                        let i = (j + k) % n;
                        let url = format!("http://127.0.0.1:{}{path}", servers[i].port);
                        let t = Instant::now();
                        let r = get(&client, &url).await;
                        let ms = t.elapsed().as_secs_f64() * 1000.0;
                        match r {
                            Ok((200, _)) => {
                                if let Ok(mut l) = lat.lock() {
                                    l[i].push(ms);
                                }
                            }
                            Ok((code, body)) => {
                                if let Ok(mut e) = errs.lock() {
                                    e[i].push(format!("{code} {q}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])));
                                }
                            }
                            Err(e) => {
                                if let Ok(mut v) = errs.lock() {
                                    v[i].push(format!("{q}: {e}"));
                                }
                            }
                        }
                    }
                    k += 1;
                }
            })
        };
        // Progress every minute.
        let mut left = window;
        while left > 0 {
            let step = left.min(60);
            tokio::time::sleep(Duration::from_secs(step)).await;
            left -= step;
            let mut line = format!("  {:>4}s:", started.elapsed().as_secs());
            for s in servers.iter() {
                let _ = write!(line, "  {} {:.0} MiB", s.name, rss_bytes(s.pid) as f64 / 1048576.0);
            }
            println!("{line}");
        }
        stop.store(true, Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        let t1 = now_ms();
        let mut r1 = Vec::new();
        for s in servers.iter() {
            r1.push(Reading { cpu: proc_cpu_seconds(s.pid), written: write_bytes(s.pid), samples: samples_appended(&client, s.port).await });
        }
        let bench_cpu = proc_cpu_seconds(std::process::id()) - bench_cpu0;
        let _ = rss_task.await;
        let _ = query_task.await;
        // Scrape durations as each server saw them (over the last 10 minutes).
        let mut dur = Vec::new();
        for s in servers.iter() {
            dur.push((
                scalar_query(&client, s.port, "avg(avg_over_time(scrape_duration_seconds[10m]))").await,
                scalar_query(&client, s.port, "max(max_over_time(scrape_duration_seconds[10m]))").await,
            ));
        }

        // Scrape timing from the targets' side, within the window.
        let mut lag: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
        let mut received = vec![0usize; servers.len()];
        let mut missed = vec![0usize; servers.len()];
        for t in &targets {
            for (i, l) in lag.iter_mut().enumerate() {
                let a = t.arrivals[i].lock().expect("arrivals").clone();
                for w in a.windows(2) {
                    if w[1] < t0 || w[1] > t1 {
                        continue;
                    }
                    received[i] += 1;
                    let d = (w[1] - w[0]) as f64 - INTERVAL_MS as f64;
                    l.push(d.abs());
                    if d > INTERVAL_MS as f64 / 2.0 {
                        missed[i] += ((w[1] - w[0]) / INTERVAL_MS).saturating_sub(1) as usize;
                    }
                }
            }
        }
        let expected = (window * 1000 / INTERVAL_MS) as usize * n_targets;

        println!("\nmeasured window {elapsed:.0}s; the bench process itself (targets + queries) used {bench_cpu:.1} CPU s");
        let rssv = rss.lock().expect("rss").clone();
        let latv = lat.lock().expect("lat").clone();
        let errv = errs.lock().expect("errs").clone();
        let col = |f: &dyn Fn(usize) -> String| -> String {
            (0..servers.len()).map(|i| format!("{:>18}", f(i))).collect::<String>()
        };
        println!("{:<34}{}", "", col(&|i| servers[i].name.to_string()));
        let samples: Vec<f64> = (0..servers.len()).map(|i| r1[i].samples - r0[i].samples).collect();
        let cpu: Vec<f64> = (0..servers.len()).map(|i| r1[i].cpu - r0[i].cpu).collect();
        println!("{:<34}{}", "samples appended", col(&|i| format!("{:.0}", samples[i])));
        println!("{:<34}{}", "samples/s", col(&|i| format!("{:.0}", samples[i] / elapsed)));
        println!("{:<34}{}", "CPU (cores, average)", col(&|i| format!("{:.3}", cpu[i] / elapsed)));
        println!("{:<34}{}", "CPU s per million samples", col(&|i| format!("{:.3}", cpu[i] / (samples[i] / 1e6))));
        println!("{:<34}{}", "RSS median MiB", col(&|i| format!("{:.0}", pct(&rssv[i], 0.5) / 1048576.0)));
        println!("{:<34}{}", "RSS max MiB", col(&|i| format!("{:.0}", pct(&rssv[i], 1.0) / 1048576.0)));
        println!("{:<34}{}", "bytes written per sample", col(&|i| format!("{:.2}", (r1[i].written - r0[i].written) as f64 / samples[i])));
        println!("{:<34}{}", "data dir at end (MiB)", col(&|i| format!("{:.1}", dir_bytes(&servers[i].data) as f64 / 1048576.0)));
        println!("{:<34}{}", "scrapes received / expected", col(&|i| format!("{} / {}", received[i], expected)));
        println!("{:<34}{}", "missed scrapes", col(&|i| missed[i].to_string()));
        println!("{:<34}{}", "scrape lag |interval-10s| p50 ms", col(&|i| format!("{:.1}", pct(&lag[i], 0.5))));
        println!("{:<34}{}", "scrape lag p99 ms", col(&|i| format!("{:.1}", pct(&lag[i], 0.99))));
        println!("{:<34}{}", "scrape lag max ms", col(&|i| format!("{:.1}", pct(&lag[i], 1.0))));
        println!("{:<34}{}", "scrape_duration_seconds avg ms", col(&|i| format!("{:.1}", dur[i].0 * 1000.0)));
        println!("{:<34}{}", "scrape_duration_seconds max ms", col(&|i| format!("{:.1}", dur[i].1 * 1000.0)));
        println!("{:<34}{}", "dashboard queries ok", col(&|i| latv[i].len().to_string()));
        println!("{:<34}{}", "query latency p50 ms", col(&|i| format!("{:.1}", pct(&latv[i], 0.5))));
        println!("{:<34}{}", "query latency p99 ms", col(&|i| format!("{:.1}", pct(&latv[i], 0.99))));
        println!("{:<34}{}", "query errors", col(&|i| errv[i].len().to_string()));
        for (i, e) in errv.iter().enumerate() {
            for m in e.iter().take(3) {
                println!("  {} error: {m}", servers[i].name);
            }
        }
        drop(pr);
        drop(ep);
    });
}
