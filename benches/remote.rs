//! Remote write benchmarks (not a test: prints figures, asserts nothing about timing).
//!
//! 1. Flash: bytes this process writes (`/proc/self/io` `write_bytes` and `wchar`) per sample
//!    ingested, with remote write off, and with remote write on while the uplink is down (the
//!    receiver port refuses connections). The goal is no measurable difference.
//! 2. CPU per sample sent: edgeprom's queue sends a stored backlog to a receiving Prometheus 2.42,
//!    which forwards it with its own `remote_write` to VictoriaMetrics, in the same run; CPU
//!    seconds of each process divided by the samples each sent. Prometheus's figure includes
//!    receiving and appending to its WAL, which its forwarding depends on.
//!
//! Run: `cargo bench --bench remote` (REMOTE_BENCH_SECS sets each flash phase, default 60;
//! REMOTE_BENCH_SERIES the series count, default 1000).
#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgeprom::model::Labels;
use edgeprom::remote::{RemoteWriter, WriterOptions};
use edgeprom::storage::{Appendable, SeriesRef};
use edgeprom::tsdb::{Options, Tsdb};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// (write_bytes, wchar) of this process so far.
fn proc_io() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (get("write_bytes:"), get("wchar:"))
}

fn cpu_secs_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn series(n: usize) -> Vec<Labels> {
    (0..n)
        .map(|i| {
            Labels::from_pairs([
                ("__name__", format!("bench_metric_{}", i % 50)),
                ("instance", "pi:9100".to_string()),
                ("job", "node".to_string()),
                ("idx", i.to_string()),
            ])
        })
        .collect()
}

fn writer_yaml(port: u16) -> Vec<edgeprom::config::RemoteWriteConfig> {
    let y = format!("remote_write:\n- url: http://127.0.0.1:{port}/api/v1/write\n");
    edgeprom::config::load_str(&y, "bench.yml", Path::new("."))
        .map(|c| c.remote_write)
        .unwrap_or_default()
}

/// Ingests `series` samples per second for `secs` s with the TSDB flushing as in production;
/// returns (samples, write_bytes, wchar) for the phase.
fn flash_phase(dir: &Path, n: usize, secs: u64, remote_on: bool) -> (u64, u64, u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let db = Tsdb::open(Options {
        path: dir.to_path_buf(),
        ..Options::default()
    })
    .expect("tsdb");
    let (trigger, shutdown) = edgeprom::shutdown::channel();
    let db_task = rt.spawn(db.clone().run(shutdown.clone()));
    let w_task = remote_on.then(|| {
        // Nothing listens on this port: the uplink is down for the whole phase.
        let w = RemoteWriter::with_options(
            db.clone(),
            dir.to_path_buf(),
            Labels::empty(),
            WriterOptions {
                settle: Duration::from_secs(1),
                ..WriterOptions::default()
            },
        );
        w.apply_config(&writer_yaml(free_port()));
        rt.spawn(w.run(shutdown.clone()))
    });
    let ls = series(n);
    let (wb0, wc0) = proc_io();
    let start = Instant::now();
    let mut samples = 0u64;
    let mut refs = vec![SeriesRef(0); n];
    let mut k = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        let t = now_ms();
        let mut app = db.appender();
        for (i, l) in ls.iter().enumerate() {
            if let Ok(r) = app.append(refs[i], l, t, (k * 7 + i as u64) as f64) {
                refs[i] = r;
            }
        }
        let _ = app.commit();
        samples += n as u64;
        k += 1;
        std::thread::sleep(
            Duration::from_secs(1)
                .saturating_sub(Duration::from_millis((now_ms() - t).max(0) as u64)),
        );
    }
    trigger.trigger();
    if let Some(t) = w_task {
        let _ = rt.block_on(t);
    }
    let _ = rt.block_on(db_task);
    let _ = db.close();
    let (wb1, wc1) = proc_io();
    (samples, wb1 - wb0, wc1 - wc0)
}

struct Peer(Child);
impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut b = String::new();
    s.read_to_string(&mut b).ok()?;
    b.split_once("\r\n\r\n").map(|x| x.1.to_string())
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

fn cpu_phase(tmp: &Path, n: usize) {
    let (vp, pp) = (free_port(), free_port());
    let vm = Peer(
        Command::new("victoria-metrics")
            .arg(format!("-storageDataPath={}", tmp.join("vm").display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{vp}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("victoria-metrics"),
    );
    let pdir = tmp.join("prom");
    std::fs::create_dir_all(&pdir).expect("dir");
    let cfg = pdir.join("p.yml");
    std::fs::write(
        &cfg,
        format!("remote_write:\n- url: http://127.0.0.1:{vp}/api/v1/write\n"),
    )
    .expect("write config");
    let prom = Peer(
        Command::new("prometheus")
            .arg("--web.enable-remote-write-receiver")
            .arg(format!(
                "--storage.tsdb.path={}",
                pdir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{pp}"))
            .arg(format!("--config.file={}", cfg.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus"),
    );
    let pa = format!("127.0.0.1:{pp}");
    let va = format!("127.0.0.1:{vp}");
    wait_for("victoria-metrics", || get(&va, "/health").is_some());
    wait_for("prometheus", || {
        get(&pa, "/-/ready").is_some_and(|b| b.contains("Ready"))
    });

    // A stored backlog of 160 samples per series. Prometheus's queue skips samples older than
    // its own start, so the timestamps lie after it started: 10 ms apart, ending now.
    let db = Tsdb::open(Options {
        path: tmp.join("edge"),
        ..Options::default()
    })
    .expect("tsdb");
    let ls = series(n);
    let steps: i64 = 160;
    let step_ms: i64 = 10;
    std::thread::sleep(Duration::from_millis((steps * step_ms) as u64 + 500));
    let base = now_ms() - steps * step_ms;
    for s in 0..steps {
        let mut app = db.appender();
        for (i, l) in ls.iter().enumerate() {
            let _ = app.append(
                SeriesRef(0),
                l,
                base + s * step_ms,
                (s as u64 * 3 + i as u64) as f64,
            );
        }
        let _ = app.commit();
    }
    let total = (steps as usize * n) as f64;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let w = RemoteWriter::with_options(
        db.clone(),
        tmp.join("edge"),
        Labels::empty(),
        WriterOptions {
            settle: Duration::from_secs(1),
            new_queue_lookback: Duration::from_secs(3600),
            max_backlog_samples_per_second: 0.0, // unbounded: measure CPU, not the limit
            ..WriterOptions::default()
        },
    );
    w.apply_config(&writer_yaml(pp));
    let ours0 = cpu_secs_of(std::process::id());
    let prom0 = cpu_secs_of(prom.0.id());
    let t0 = Instant::now();
    let (trigger, shutdown) = edgeprom::shutdown::channel();
    let task = rt.spawn(w.clone().run(shutdown));
    let last_t = base + (steps - 1) * step_ms;
    wait_for("edgeprom to send the backlog", || {
        let st = w.status();
        !st.is_empty() && st.iter().all(|q| q.sent_until_ms >= last_t)
    });
    let ours = cpu_secs_of(std::process::id()) - ours0;
    let ours_wall = t0.elapsed().as_secs_f64();
    wait_for("prometheus to forward everything", || {
        get(&pa, "/metrics")
            .map(|m| metric_sum(&m, "prometheus_remote_storage_samples_total") >= total)
            .unwrap_or(false)
    });
    let theirs = cpu_secs_of(prom.0.id()) - prom0;
    trigger.trigger();
    let _ = rt.block_on(task);
    println!(
        "cpu per sample sent: edgeprom {:.3} us ({} samples, {:.2} s CPU, {:.2} s wall) | prometheus 2.42 receive+forward {:.3} us ({:.2} s CPU) | ratio edgeprom/prometheus {:.2}",
        ours / total * 1e6,
        total,
        ours,
        ours_wall,
        theirs / total * 1e6,
        theirs,
        ours / theirs.max(1e-9)
    );
    drop(vm);
    drop(prom);
}

fn main() {
    let secs = env_num("REMOTE_BENCH_SECS", 60);
    let n = env_num("REMOTE_BENCH_SERIES", 1000) as usize;
    let tmp = tempfile::tempdir().expect("tempdir");
    let off = flash_phase(&tmp.path().join("off"), n, secs, false);
    let on = flash_phase(&tmp.path().join("on"), n, secs, true);
    let per = |x: (u64, u64, u64)| (x.1 as f64 / x.0 as f64, x.2 as f64 / x.0 as f64);
    let (off_wb, off_wc) = per(off);
    let (on_wb, on_wc) = per(on);
    println!(
        "flash bytes per sample ({n} series, {secs} s each): remote write off: write_bytes {off_wb:.3} wchar {off_wc:.3} | on, uplink down: write_bytes {on_wb:.3} wchar {on_wc:.3} | extra wchar {} bytes total, ratio on/off {:.4}",
        on.2 as i64 - off.2 as i64,
        on_wc / off_wc.max(1e-9)
    );
    cpu_phase(tmp.path(), n);
}
