//! End-to-end scrape cost beside Prometheus: CPU seconds per million scraped samples (HTTP +
//! parse + relabel + append into the real tsdb), edgeprom and Debian's Prometheus 2.42 scraping
//! the same loopback targets in the same run.
//!
//! Run: `cargo bench --bench scrape` (needs the `prometheus` binary; `PROMETHEUS_BIN` overrides).
//! Knobs: `SCRAPE_BENCH_TARGETS` (default 10), `SCRAPE_BENCH_SECONDS` (measured window, 20).
//!
//! The targets are served by a child process (this binary re-run with `--serve`), so neither
//! scraper pays for them. edgeprom's CPU is this process's (`/proc/self/stat`); Prometheus's is
//! its `/proc/PID/stat`; both over the same window after a warm-up. Sample counts come from
//! each side's storage counter (`samples_appended`, `prometheus_tsdb_head_samples_appended_total`).
//!
//! Measured 2026-11-29 on the 2-core dev machine under heavy load from parallel builds (load
//! average ~25), 10 targets x 10,000 series at 1 s, 20 s window:
//! - run 1: edgeprom 0.93 CPU s per million samples (2.12 M samples), Prometheus 9.16 (0.18 M);
//! - run 2: edgeprom 1.11 (1.90 M samples), Prometheus 7.30 (0.30 M); ratio 0.10-0.15.
//!
//! Prometheus, starved of CPU, ingested far fewer samples, so its figure carries its fixed
//! background cost over fewer samples; rerun on a quiet machine before quoting the ratio.

use std::fmt::Write as _;
use std::io::{BufRead, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use edgeprom::model::Labels;
use edgeprom::scrape::ScrapeManager;
use edgeprom::storage::{Appendable, Appender, Result as SResult, SeriesRef};

/// A realistic 10,000-series exposition: 50 families, HELP/TYPE, 4-5 labels, histograms.
fn payload() -> String {
    let mut s = String::new();
    let mut n = 0;
    let mut fam = 0;
    while n < 10_000 {
        let name = format!("app_requests_family{fam}");
        let _ = writeln!(s, "# HELP {name} Requests handled by handler {fam}.");
        if fam % 5 == 0 {
            let _ = writeln!(s, "# TYPE {name} histogram");
            for inst in 0..20 {
                for le in ["0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "+Inf"] {
                    let _ = writeln!(s, "{name}_bucket{{method=\"GET\",code=\"200\",handler=\"/api/v1/query_range\",pod=\"web-{inst}\",le=\"{le}\"}} {}", inst * 1000 + 7);
                    n += 1;
                }
                let _ = writeln!(s, "{name}_sum{{method=\"GET\",code=\"200\",handler=\"/api/v1/query_range\",pod=\"web-{inst}\"}} {}.25", inst * 31);
                let _ = writeln!(s, "{name}_count{{method=\"GET\",code=\"200\",handler=\"/api/v1/query_range\",pod=\"web-{inst}\"}} {}", inst * 1000 + 7);
                n += 2;
            }
        } else {
            let _ = writeln!(s, "# TYPE {name} gauge");
            for i in 0..200 {
                let _ = writeln!(
                    s,
                    "{name}{{device=\"sd{}\",mountpoint=\"/srv/data/{i}\",fstype=\"ext4\"}} {}",
                    i % 7,
                    1.5e9 + f64::from(i) * 0.125
                );
                n += 1;
            }
        }
        fam += 1;
    }
    s
}

/// Child mode: serve the payload on `n` loopback ports, print them, run until stdin closes.
fn serve(n: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let body = Bytes::from(payload());
        let mut ports = Vec::new();
        for _ in 0..n {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            ports.push(l.local_addr().expect("addr").port());
            let body = body.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = l.accept().await else {
                        return;
                    };
                    let body = body.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |_req| {
                            let body = body.clone();
                            async move {
                                let mut r = http::Response::new(http_body_util::Full::new(body));
                                r.headers_mut().insert(
                                    "content-type",
                                    http::HeaderValue::from_static("text/plain; version=0.0.4"),
                                );
                                Ok::<_, std::convert::Infallible>(r)
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                            .await;
                    });
                }
            });
        }
        let line: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
        #[allow(clippy::print_stdout)]
        {
            println!("{}", line.join(" "));
        }
        let _ = std::io::stdout().flush();
        // Exit when the parent closes our stdin.
        let _ = tokio::task::spawn_blocking(|| {
            let mut s = String::new();
            let _ = std::io::stdin().read_line(&mut s);
        })
        .await;
    });
}

/// CPU seconds (user + system) of a process from /proc/PID/stat.
fn cpu_seconds(pid: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (1-based); here index 11 and 12.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

/// Counts appended samples on top of the real tsdb.
struct Counting(Arc<edgeprom::tsdb::Tsdb>, Arc<AtomicU64>);
struct CountingApp(Box<dyn Appender>, Arc<AtomicU64>, u64);
impl Appendable for Counting {
    fn appender(&self) -> Box<dyn Appender> {
        Box::new(CountingApp(self.0.appender(), self.1.clone(), 0))
    }
}
impl Appender for CountingApp {
    fn append(&mut self, r: SeriesRef, l: &Labels, t: i64, v: f64) -> SResult<SeriesRef> {
        let x = self.0.append(r, l, t, v);
        if x.is_ok() {
            self.2 += 1;
        }
        x
    }
    fn commit(self: Box<Self>) -> SResult<()> {
        let me = *self;
        me.1.fetch_add(me.2, Ordering::Relaxed);
        me.0.commit()
    }
    fn rollback(self: Box<Self>) {
        self.0.rollback()
    }
}

async fn prometheus_samples(port: u16) -> f64 {
    let c = edgeprom::http_client::HttpClient::new(&Default::default()).expect("client");
    let mut body = Vec::new();
    let uri: http::Uri = format!("http://127.0.0.1:{port}/metrics")
        .parse()
        .expect("uri");
    if c.get_into(&uri, &http::HeaderMap::new(), &mut body, 0)
        .await
        .is_err()
    {
        return f64::NAN;
    }
    // Sum over the series (2.42 splits it by sample type).
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| {
            l.strip_prefix("prometheus_tsdb_head_samples_appended_total")
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|x| x.1.parse::<f64>().ok()))
        .sum()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        let n = args.get(i + 1).and_then(|x| x.parse().ok()).unwrap_or(10);
        serve(n);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let targets: usize = std::env::var("SCRAPE_BENCH_TARGETS")
        .ok()
        .and_then(|x| x.parse().ok())
        .unwrap_or(10);
    let window: u64 = std::env::var("SCRAPE_BENCH_SECONDS")
        .ok()
        .and_then(|x| x.parse().ok())
        .unwrap_or(20);
    let exe = std::env::current_exe().expect("exe");
    let mut server = std::process::Command::new(exe)
        .args(["--serve", &targets.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn target server");
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ports");
    let addrs: Vec<String> = line
        .split_whitespace()
        .map(|p| format!("'127.0.0.1:{p}'"))
        .collect();
    let yaml = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: bench\n    static_configs:\n      - targets: [{}]\n",
        addrs.join(", ")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("prom.yml"), &yaml).expect("write config");

    // Prometheus on a free port.
    let prom_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let bin = std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| "prometheus".into());
    let prom = std::process::Command::new(&bin)
        .arg(format!(
            "--config.file={}",
            dir.path().join("prom.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("prom-data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let mut prom = match prom {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("cannot start {bin} ({e}); measuring edgeprom alone");
            None
        }
    };
    let prom_pid = prom.as_ref().map(|p| p.id().to_string());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let tsdb = edgeprom::tsdb::Tsdb::open(edgeprom::tsdb::Options {
            path: dir.path().join("edgeprom-data"),
            ..Default::default()
        })
        .expect("tsdb");
        let (trigger, shutdown) = edgeprom::shutdown::channel();
        let storage = tokio::spawn(tsdb.clone().run(shutdown));
        let count = Arc::new(AtomicU64::new(0));
        let m = ScrapeManager::new(Arc::new(Counting(tsdb.clone(), count.clone())));
        let cfg = edgeprom::config::load_str(&yaml, "bench.yml", dir.path()).expect("config");
        m.apply_config(&cfg.scrape_configs).expect("apply");

        tokio::time::sleep(Duration::from_secs(5)).await; // warm-up: caches filled, series created
        let (c0, s0) = (cpu_seconds("self"), count.load(Ordering::Relaxed));
        let p0 = match &prom_pid {
            Some(pid) => Some((cpu_seconds(pid), prometheus_samples(prom_port).await)),
            None => None,
        };
        tokio::time::sleep(Duration::from_secs(window)).await;
        let (c1, s1) = (cpu_seconds("self"), count.load(Ordering::Relaxed));
        let p1 = match &prom_pid {
            Some(pid) => Some((cpu_seconds(pid), prometheus_samples(prom_port).await)),
            None => None,
        };
        m.stop().await;
        trigger.trigger();
        let _ = storage.await;

        let ours = (c1 - c0) / ((s1 - s0) as f64 / 1e6);
        #[allow(clippy::print_stdout)]
        {
            println!(
                "targets: {targets} x 10000 series, interval 1s, window {window}s (after 5s warm-up)"
            );
            println!(
                "edgeprom:        {:>9} samples  {:>6.2} CPU s  {:>7.3} CPU s per million samples",
                s1 - s0,
                c1 - c0,
                ours
            );
            if let (Some((pc0, ps0)), Some((pc1, ps1))) = (p0, p1) {
                let theirs = (pc1 - pc0) / ((ps1 - ps0) / 1e6);
                println!(
                    "prometheus 2.42: {:>9} samples  {:>6.2} CPU s  {:>7.3} CPU s per million samples",
                    ps1 - ps0,
                    pc1 - pc0,
                    theirs
                );
                println!("ratio edgeprom / prometheus: {:.3}", ours / theirs);
            }
        }
    });
    if let Some(p) = prom.as_mut() {
        let _ = p.kill();
        let _ = p.wait();
    }
    drop(server.stdin.take());
    let _ = server.kill();
    let _ = server.wait();
}
