//! Range-query benchmark: `sum by (job) (rate(...[5m]))` over the 1,317 counter series of three
//! metrics (names whose label sets cannot collide once `rate` drops the name, which Prometheus 2.42
//! would reject) over the whole 24 h of a `gen.py` file at step 60 s, on edgeprom's engine over its tsdb,
//! beside Prometheus 2.42 (Debian's `prometheus` + `promtool`) loaded with the same file.
//!
//! ```text
//! python3 ../shared/bench/gen.py --hours 24 --interval 60 --seed 42 -o /tmp/d60.om
//! EDGEPROM_BENCH_OM=/tmp/d60.om cargo bench --bench promql_bench
//! ```
//! Prints the median latency of 5 runs (and the first, before the read cache holds anything) and the peak RSS of each side. edgeprom's figures come from
//! a child process that only opens the store and queries (the import runs in another child), so
//! its peak RSS is that of query serving. Without `EDGEPROM_BENCH_OM` the bench says so and exits.

#![allow(clippy::print_stdout, missing_docs)]

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edgeprom::model::Labels;
use edgeprom::promql::{Engine, EngineOptions, Value};
use edgeprom::storage::{Appendable, SeriesRef};
use edgeprom::tsdb::{Options, Tsdb};

const QUERY: &str = "sum by (job) (rate({__name__=~\"http_request_duration_seconds_bucket|http_requests_total|node_cpu_seconds_total\"}[5m]))";
const RUNS: usize = 5;

fn vm_hwm_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Parses `name{a="b",...} value ts_seconds` OpenMetrics sample lines (gen.py's output).
fn parse_line(line: &str) -> Option<(Labels, f64, i64)> {
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    let (series, rest) = match line.find('}') {
        Some(i) => (&line[..=i], &line[i + 1..]),
        None => {
            let i = line.find(' ')?;
            (&line[..i], &line[i..])
        }
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    let (name, labels) = match series.find('{') {
        Some(i) => (&series[..i], &series[i + 1..series.len() - 1]),
        None => (series, ""),
    };
    pairs.push(("__name__".into(), name.into()));
    let mut s = labels;
    while let Some(eq) = s.find("=\"") {
        let k = s[..eq].trim_start_matches(',').trim();
        let after = &s[eq + 2..];
        let end = after.find('"')?;
        pairs.push((k.into(), after[..end].into()));
        s = &after[end + 1..];
    }
    let mut it = rest.split_whitespace();
    let v: f64 = it.next()?.parse().ok()?;
    let ts: f64 = it.next()?.parse().ok()?;
    Some((Labels::from_pairs(pairs), v, (ts * 1000.0).round() as i64))
}

fn import(om: &Path, dir: &Path) -> (usize, i64, i64) {
    let db = Tsdb::open(Options {
        path: dir.to_path_buf(),
        retention_time: Duration::ZERO,
        ..Default::default()
    })
    .expect("open tsdb");
    let f = std::io::BufReader::new(std::fs::File::open(om).expect("open data"));
    let mut app = db.appender();
    let (mut n, mut mint, mut maxt) = (0usize, i64::MAX, i64::MIN);
    let mut refs: std::collections::HashMap<Labels, SeriesRef> = std::collections::HashMap::new();
    for line in f.lines() {
        let Ok(line) = line else { break };
        let Some((l, v, t)) = parse_line(&line) else {
            continue;
        };
        let r = refs.get(&l).copied().unwrap_or_default();
        if let Ok(nr) = app.append(r, &l, t, v) {
            refs.insert(l, nr);
        }
        n += 1;
        mint = mint.min(t);
        maxt = maxt.max(t);
        if n % 100_000 == 0 {
            app.commit().expect("commit");
            if n % 1_000_000 == 0 {
                // The head refuses more than 2 M samples waiting for a flush.
                db.flush().expect("flush");
            }
            app = db.appender();
        }
    }
    app.commit().expect("commit");
    db.flush().expect("flush");
    db.close().expect("close");
    (n, mint, maxt)
}

fn query_child(dir: &Path, start: i64, end: i64) {
    let db = Tsdb::open(Options {
        path: dir.to_path_buf(),
        retention_time: Duration::ZERO,
        ..Default::default()
    })
    .expect("open tsdb");
    let before = vm_hwm_kib(std::process::id());
    let engine = Engine::new(EngineOptions::default());
    let mut times = Vec::new();
    let mut series = 0;
    for _ in 0..RUNS {
        let t0 = Instant::now();
        let v = engine
            .range(db.as_ref(), QUERY, start, end, 60_000)
            .expect("query");
        times.push(t0.elapsed());
        if let Value::Matrix(m) = v {
            series = m.len();
        }
    }
    println!(
        "RESULT {} {} {} {} {} {}",
        median(times.clone()).as_micros(),
        before,
        vm_hwm_kib(std::process::id()),
        series,
        times[0].as_micros(),
        // What the read cache holds after the runs (here every series of every segment).
        db.read_cache_bytes()
    );
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn main() {
    let Ok(om) = std::env::var("EDGEPROM_BENCH_OM") else {
        println!("promql_bench: set EDGEPROM_BENCH_OM to a gen.py OpenMetrics file (see the file's doc comment)");
        return;
    };
    let om = PathBuf::from(om);
    if let Ok(phase) = std::env::var("EDGEPROM_BENCH_PHASE") {
        let dir = PathBuf::from(std::env::var("EDGEPROM_BENCH_DIR").expect("dir"));
        if phase == "import" {
            let (n, mint, maxt) = import(&om, &dir);
            println!("IMPORTED {n} {mint} {maxt}");
        } else {
            let start: i64 = std::env::var("EDGEPROM_BENCH_START")
                .expect("start")
                .parse()
                .expect("start");
            let end: i64 = std::env::var("EDGEPROM_BENCH_END")
                .expect("end")
                .parse()
                .expect("end");
            query_child(&dir, start, end);
        }
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let edir = work.path().join("edgeprom");
    let pdir = work.path().join("prometheus");
    let exe = std::env::current_exe().expect("exe");
    let run_child = |phase: &str, extra: &[(&str, String)]| -> String {
        let mut c = Command::new(&exe);
        c.env("EDGEPROM_BENCH_PHASE", phase)
            .env("EDGEPROM_BENCH_DIR", &edir)
            .env("EDGEPROM_BENCH_OM", &om);
        for (k, v) in extra {
            c.env(k, v);
        }
        let out = c.output().expect("child");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let t0 = Instant::now();
    let imp = run_child("import", &[]);
    let line = imp
        .lines()
        .find(|l| l.starts_with("IMPORTED"))
        .unwrap_or_else(|| panic!("import failed: {imp}"));
    let f: Vec<i64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let (n, mint, maxt) = (f[0], f[1], f[2]);
    println!("edgeprom import: {n} samples in {:.1?}", t0.elapsed());
    let (start, end) = (maxt - 24 * 3_600_000 + 60_000, maxt);
    let _ = mint;
    let q = run_child(
        "query",
        &[
            ("EDGEPROM_BENCH_START", start.to_string()),
            ("EDGEPROM_BENCH_END", end.to_string()),
        ],
    );
    let r: Vec<u64> = q
        .lines()
        .find(|l| l.starts_with("RESULT"))
        .unwrap_or_else(|| panic!("query failed: {q}"))
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let (e_us, e_open_kib, e_peak_kib, e_series, e_first) = (r[0], r[1], r[2], r[3], r[4]);
    let e_cache = r[5];

    // Prometheus 2.42 with the same data.
    let t0 = Instant::now();
    let st = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&pdir)
        .stdout(Stdio::null())
        .status()
        .expect("promtool");
    assert!(st.success(), "promtool failed");
    println!("promtool import: {:.1?}", t0.elapsed());
    let cfg = work.path().join("prometheus.yml");
    std::fs::write(&cfg, "global: {}\n").expect("config");
    let port = 19_000 + (std::process::id() % 1000) as u16;
    let mut prom = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.tsdb.path={}", pdir.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--storage.tsdb.retention.time=10y")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus");
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if http_get(port, "/-/ready").is_some_and(|r| r.contains("200 OK")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let p_open_kib = vm_hwm_kib(prom.id());
    let path = format!(
        "/api/v1/query_range?query={}&start={}&end={}&step=60",
        enc(QUERY),
        start as f64 / 1000.0,
        end as f64 / 1000.0
    );
    let mut times = Vec::new();
    let mut p_series = 0;
    let mut last = String::new();
    for _ in 0..RUNS {
        let t0 = Instant::now();
        let body = http_get(port, &path).unwrap_or_default();
        times.push(t0.elapsed());
        p_series = body.matches("\"metric\"").count();
        last = body;
    }
    if p_series == 0 {
        println!("prometheus answered: {}", &last[..last.len().min(600)]);
    }
    let p_first = times[0].as_micros() as u64;
    let p_us = median(times).as_micros() as u64;
    let p_peak_kib = vm_hwm_kib(prom.id());
    let _ = prom.kill();
    let _ = prom.wait();

    println!("query: {QUERY}, 24 h, step 60 s, {n} samples in the store, median of {RUNS}");
    println!(
        "{:<22} {:>12} {:>12} {:>16} {:>16} {:>8}",
        "", "latency", "first run", "RSS after open", "peak RSS", "series"
    );
    println!(
        "{:<22} {:>9.1} ms {:>9.1} ms {:>12} MiB {:>12} MiB {:>8}",
        "edgeprom (in-process)",
        e_us as f64 / 1000.0,
        e_first as f64 / 1000.0,
        e_open_kib / 1024,
        e_peak_kib / 1024,
        e_series
    );
    println!(
        "{:<22} {:>9.1} ms {:>9.1} ms {:>12} MiB {:>12} MiB {:>8}",
        "prometheus 2.42 (HTTP)",
        p_us as f64 / 1000.0,
        p_first as f64 / 1000.0,
        p_open_kib / 1024,
        p_peak_kib / 1024,
        p_series
    );
    println!(
        "edgeprom read cache after the runs: {:.1} MiB, {:.2} bytes per stored sample",
        e_cache as f64 / (1u64 << 20) as f64,
        e_cache as f64 / n.max(1) as f64
    );
    println!(
        "latency ratio edgeprom/prometheus: {:.2}",
        e_us as f64 / p_us.max(1) as f64
    );
}
