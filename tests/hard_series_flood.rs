//! Whole-binary memory-pressure test (issue 11, "Faults"): a target that suddenly exposes a
//! million series. With `sample_limit` the scrape is cut (`up` 0,
//! `prometheus_target_scrapes_exceeded_sample_limit_total`); with no `sample_limit` the global
//! `--storage.tsdb.max-series` refuses the new series beyond it (counted in
//! `edgeprom_tsdb_series_limit_refusals_total`) while series already stored keep ingesting. In
//! both, resident memory stays bounded: the figures are printed (VmRSS, VmHWM from
//! /proc/PID/status) and checked against the 1 GB board's budget.

mod common;

use common::{metric_value, write_file, Server};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const FLOOD_SERIES: usize = 1_000_000;
/// What edgeprom may use while a million-series target hammers it: a quarter of a 1 GB board.
const RSS_BUDGET_KIB: u64 = 256 * 1024;

/// Serves a small steady body, or, once `flood` is set, a million new series.
fn start_target(flood: Arc<AtomicBool>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let mut big = String::with_capacity(FLOOD_SERIES * 24);
    big.push_str("# TYPE flood gauge\n");
    for i in 0..FLOOD_SERIES {
        big.push_str(&format!("flood{{i=\"{i}\"}} {}\n", i % 97));
    }
    let big = Arc::new(big);
    let seq = AtomicU64::new(0);
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let big = big.clone();
            let n = seq.fetch_add(1, Ordering::SeqCst) + 1;
            let flood = flood.load(Ordering::SeqCst);
            std::thread::spawn(move || {
                let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 4096];
                if c.read(&mut buf).unwrap_or(0) == 0 {
                    return;
                }
                let small = format!("# TYPE flood_steady counter\nflood_steady {n}\n");
                let body: &str = if flood { &big } else { &small };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = c.write_all(head.as_bytes());
                let _ = c.write_all(body.as_bytes());
            });
        }
    });
    addr
}

/// A second target that never changes its series: `steady_seq N`.
fn start_steady() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut n = 0u64;
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            if c.read(&mut buf).unwrap_or(0) == 0 {
                continue;
            }
            n += 1;
            let body = format!("steady_seq {n}\n");
            let _ = c.write_all(format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes());
        }
    });
    addr
}

/// (VmRSS, VmHWM) of `pid` in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        st.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn metric(s: &Server, name: &str) -> f64 {
    metric_value(&s.get("/metrics").1, name).unwrap_or(-1.0)
}

/// Value of an instant query with a one-element vector result.
fn query1(s: &Server, q: &str) -> Option<f64> {
    let (code, body) = s.get(&format!("/api/v1/query?query={q}"));
    assert_eq!(code, 200, "{q}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"]["result"].as_array()?.first()?["value"][1]
        .as_str()?
        .parse()
        .ok()
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Starts edgeprom scraping the flood target (job `flood`, with `limit_line` in its config) and
/// the steady target every second; returns the server and the flood switch.
fn setup(limit_line: &str, flags: &[&str]) -> (Server, Arc<AtomicBool>) {
    let flood = Arc::new(AtomicBool::new(false));
    let target = start_target(flood.clone());
    let steady = start_steady();
    let dir = tempfile::tempdir().unwrap();
    write_file(
        dir.path(),
        "edgeprom.yml",
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: flood\n    scrape_interval: 3s\n    scrape_timeout: 3s\n{limit_line}    static_configs:\n      - targets: ['{target}']\n  - job_name: steady\n    static_configs:\n      - targets: ['{steady}']\n"
        ),
    );
    let mut args = vec![
        "--config.file=edgeprom.yml",
        "--storage.tsdb.flush-interval=1s",
    ];
    args.extend_from_slice(flags);
    let s = Server::start_in(dir, &args);
    s.wait_for("both targets scraped", Duration::from_secs(30), |s| {
        query1(s, "flood_steady").is_some() && query1(s, "steady_seq").is_some()
    });
    (s, flood)
}

/// Waits until `steady_seq` has stored `n` more samples than now (existing series ingest).
fn steady_keeps_ingesting(s: &Server, what: &str) {
    let c0 = query1(s, "count_over_time(steady_seq%5B1h%5D)").unwrap_or(0.0);
    s.wait_for(what, Duration::from_secs(30), |s| {
        query1(s, "count_over_time(steady_seq%5B1h%5D)").unwrap_or(0.0) >= c0 + 3.0
    });
}

#[test]
fn sample_limit_cuts_a_million_series_scrape() {
    let (s, flood) = setup("    sample_limit: 1000\n", &[]);
    let (rss0, _) = rss_kib(s.child.id());
    let series0 = metric(&s, "prometheus_tsdb_head_series");
    flood.store(true, Ordering::SeqCst);
    s.wait_for(
        "the scrape cut by sample_limit",
        Duration::from_secs(60),
        |s| metric(s, "prometheus_target_scrapes_exceeded_sample_limit_total") >= 2.0,
    );
    assert_eq!(
        query1(&s, "up%7Bjob%3D%22flood%22%7D"),
        Some(0.0),
        "up of the cut target"
    );
    steady_keeps_ingesting(&s, "the steady target keeps ingesting");
    // Like Prometheus's head, series are created as they are appended, up to the limit, and
    // the rolled-back scrape commits none of their samples.
    let series = metric(&s, "prometheus_tsdb_head_series");
    assert!(
        series <= series0 + 1001.0,
        "at most sample_limit + 1 series created: head series {series0} -> {series}"
    );
    assert_eq!(
        query1(&s, "count(flood)"),
        None,
        "a cut scrape commits nothing"
    );
    let (rss, hwm) = rss_kib(s.child.id());
    eprintln!(
        "sample_limit: 1M-series target cut; RSS before {rss0} KiB, after {rss} KiB, peak {hwm} KiB; head series {series}"
    );
    assert!(hwm < RSS_BUDGET_KIB, "peak RSS {hwm} KiB over the budget");
}

#[test]
fn max_series_refuses_new_series_and_keeps_memory_bounded() {
    const LIMIT: usize = 20_000;
    let flag = format!("--storage.tsdb.max-series={LIMIT}");
    let (s, flood) = setup("", &[&flag]);
    let (rss0, _) = rss_kib(s.child.id());
    flood.store(true, Ordering::SeqCst);
    s.wait_for(
        "new series refused at the limit",
        Duration::from_secs(60),
        |s| metric(s, "edgeprom_tsdb_series_limit_refusals_total") >= (FLOOD_SERIES - LIMIT) as f64,
    );
    let series = metric(&s, "prometheus_tsdb_head_series");
    assert_eq!(series, LIMIT as f64, "head series at the limit");
    // Series stored before the limit keep ingesting: the steady target, and the flood series
    // that made it in before the limit.
    steady_keeps_ingesting(&s, "existing series keep ingesting at the limit");
    let t0 = now_s();
    s.wait_for("a later flood scrape", Duration::from_secs(60), |s| {
        metric(s, "edgeprom_tsdb_series_limit_refusals_total")
            >= 3.0 * (FLOOD_SERIES - LIMIT) as f64
    });
    let admitted = query1(&s, &format!("count(timestamp(flood)%3E{t0})")).unwrap_or(0.0);
    assert!(
        admitted > 0.0 && admitted <= LIMIT as f64,
        "flood series admitted before the limit keep ingesting: {admitted}"
    );
    // Refused series are retried each scrape (they may fit later), never stored.
    assert_eq!(metric(&s, "prometheus_tsdb_head_series"), LIMIT as f64);
    for _ in 0..3 {
        steady_keeps_ingesting(&s, "steady ingestion under a sustained flood");
    }
    let (rss, hwm) = rss_kib(s.child.id());
    eprintln!(
        "max-series {LIMIT}: 1M-series target; RSS before {rss0} KiB, under the flood {rss} KiB, peak {hwm} KiB; head series {series}"
    );
    assert!(hwm < RSS_BUDGET_KIB, "peak RSS {hwm} KiB over the budget");
}
