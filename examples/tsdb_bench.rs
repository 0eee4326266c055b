//! The storage benchmark: one command, figures beside the goals of issue 4 and beside the
//! peers (VictoriaMetrics, promtool) measured in the same run.
//!
//! ```text
//! python3 ../shared/bench/gen.py --preset full --seed 42 -o /tmp/full.om   # once, 1.15 GB
//! cargo run --release --example tsdb_bench -- [--full /tmp/full.om] [--peers]
//! cargo run --release --example tsdb_bench -- --import-vs-vm /tmp/full.om 3   # import only
//! ```
//!
//! Phases (each in its own child process, so RSS and /proc/self/io are clean):
//! * `live`: replays a gen.py file scrape by scrape (one appender per timestamp, a flush after
//!   every scrape: a 10 s flush interval with 15 s scrapes), then closes the store. Reports
//!   append throughput (appends + commits, one core), bytes on disk per sample and bytes
//!   written per sample (`/proc/self/io` write_bytes over open..close: every write the design
//!   makes; nothing is rewritten later).
//! * `rss`: 50,000 node-like series, 20 scrapes at 5 s, flushing every 10 s; RSS growth per series.
//! * `w50k`: 50,000 series at 5 s for 30 minutes of data time, default flush policy: bytes
//!   written per sample (the issue's Prometheus figure is 19.0 with 2-minute blocks).
//! * `crash`: a child commits 1 M samples without flushing and aborts; the parent times open.
//! * `import`: `import_openmetrics` of the file; wall and CPU time, peak RSS (VmHWM);
//!   with `--peers` also VictoriaMetrics (POST to /api/v1/import/prometheus on 127.0.0.1)
//!   and `promtool tsdb create-blocks-from openmetrics`.
#![allow(clippy::print_stdout)]

use edgeprom::model::Labels;
use edgeprom::storage::{Appendable, SeriesRef};
use edgeprom::tsdb::{import_openmetrics, Options, Tsdb};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn proc_field(file: &str, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l[key.len()..].split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}
fn write_bytes() -> u64 {
    proc_field("/proc/self/io", "write_bytes:")
}
fn rss_kib() -> u64 {
    proc_field("/proc/self/status", "VmRSS:")
}
fn hwm_kib() -> u64 {
    proc_field("/proc/self/status", "VmHWM:")
}
fn cpu_secs() -> f64 {
    // utime + stime of this process from /proc/self/stat (clock ticks of 1/100 s).
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn opts(dir: &Path) -> Options {
    Options {
        path: dir.to_path_buf(),
        retention_time: Duration::ZERO,
        ..Options::default()
    }
}

/// Loads a gen.py file: per series (labels, samples).
fn load(file: &Path) -> Vec<(Labels, Vec<(i64, f64)>)> {
    let text = std::fs::read_to_string(file).expect("read input");
    let mut idx: HashMap<&str, usize> = HashMap::new();
    let mut out: Vec<(Labels, Vec<(i64, f64)>)> = Vec::new();
    for l in text.lines() {
        if l.starts_with('#') || l.is_empty() {
            continue;
        }
        let Some(i) = l.rfind(' ') else { continue };
        let Some(j) = l[..i].rfind(' ') else { continue };
        let (series, v, t) = (&l[..j], &l[j + 1..i], &l[i + 1..]);
        let k = *idx.entry(series).or_insert_with(|| {
            out.push((parse_series(series), Vec::new()));
            out.len() - 1
        });
        let v: f64 = match v {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            _ => v.parse().unwrap_or(f64::NAN),
        };
        let t: f64 = t.parse().unwrap_or(0.0);
        out[k].1.push(((t * 1000.0).round() as i64, v));
    }
    out
}

fn parse_series(s: &str) -> Labels {
    let (name, rest) = match s.find('{') {
        Some(i) => (&s[..i], &s[i + 1..s.len() - 1]),
        None => (s, ""),
    };
    let mut pairs = vec![("__name__".to_string(), name.to_string())];
    for p in rest.split("\",").filter(|p| !p.is_empty()) {
        if let Some((k, v)) = p.split_once("=\"") {
            pairs.push((
                k.trim_start_matches(',').to_string(),
                v.trim_end_matches('"').to_string(),
            ));
        }
    }
    Labels::from_pairs(pairs)
}

fn phase_live(file: &Path, dir: &Path, flush_every_ms: i64) {
    let data = load(file);
    let mut ts: Vec<i64> = data.iter().flat_map(|s| s.1.iter().map(|x| x.0)).collect();
    ts.sort_unstable();
    ts.dedup();
    let total: usize = data.iter().map(|s| s.1.len()).sum();
    let wb0 = write_bytes();
    let db = Tsdb::open(Options {
        flush_interval: Duration::from_millis(flush_every_ms as u64),
        ..opts(dir)
    })
    .expect("open");
    let mut pos = vec![0usize; data.len()];
    let mut refs = vec![SeriesRef(0); data.len()];
    let (mut t_append, mut t_flush) = (Duration::ZERO, Duration::ZERO);
    let mut last_flush = i64::MIN;
    for &t in &ts {
        let s0 = Instant::now();
        let mut a = db.appender();
        for (k, (l, s)) in data.iter().enumerate() {
            if let Some(&(st, v)) = s.get(pos[k]) {
                if st == t {
                    refs[k] = a.append(refs[k], l, t, v).expect("append");
                    pos[k] += 1;
                }
            }
        }
        a.commit().expect("commit");
        let s1 = Instant::now();
        t_append += s1 - s0;
        // The store's flush policy, in data time: `flush_due` as `Tsdb::run` asks it.
        let since = Duration::from_millis((t - last_flush).max(0) as u64);
        if last_flush == i64::MIN || db.flush_due(since) {
            db.flush().expect("flush");
            last_flush = t;
            t_flush += s1.elapsed();
        }
    }
    db.close().expect("close");
    let written = write_bytes() - wb0;
    let disk = db.disk_bytes();
    println!(
        "RESULT live flush_interval_s={} samples={total} series={} scrapes={} append_samples_per_s={:.0} flush_ms_per_scrape={:.2} disk_b_per_sample={:.3} written_b_per_sample={:.3} engine_counted_b_per_sample={:.3}",
        flush_every_ms / 1000,
        data.len(),
        ts.len(),
        total as f64 / t_append.as_secs_f64(),
        t_flush.as_secs_f64() * 1000.0 / ts.len() as f64,
        disk as f64 / total as f64,
        written as f64 / total as f64,
        db.bytes_written() as f64 / total as f64,
    );
}

fn phase_rss(dir: &Path) {
    const N: usize = 50_000;
    let labels: Vec<Labels> = (0..N)
        .map(|i| {
            Labels::from_pairs([
                ("__name__", format!("node_metric_{}_total", i % 400)),
                ("instance", format!("pi-{:03}.lan:9100", i / 5000)),
                ("job", "node".to_string()),
                ("device", format!("dev{}", (i / 400) % 13)),
                (
                    "mode",
                    ["idle", "user", "system", "iowait"][i % 4].to_string(),
                ),
                ("series", format!("{i}")),
            ])
        })
        .collect();
    let base_rss = rss_kib();
    let db = Tsdb::open(opts(dir)).expect("open");
    let mut refs = vec![SeriesRef(0); N];
    let t0 = 1_800_000_000_000i64;
    for k in 0..20i64 {
        let mut a = db.appender();
        for (i, l) in labels.iter().enumerate() {
            refs[i] = a
                .append(refs[i], l, t0 + k * 5000, (k * i as i64) as f64 * 0.5)
                .expect("append");
        }
        a.commit().expect("commit");
        if k % 2 == 1 {
            db.flush().expect("flush");
        }
    }
    let rss = rss_kib();
    // The benchmark's own label vectors are not the store's: measure them and subtract.
    let own: usize = labels
        .iter()
        .map(|l| {
            l.iter()
                .map(|x| x.name.len() + x.value.len() + 48)
                .sum::<usize>()
                + 24
        })
        .sum();
    let per = ((rss - base_rss) as f64 * 1024.0 - own as f64) / N as f64;
    println!(
        "RESULT rss series={N} rss_growth_kib={} bench_label_copies_kib={} bytes_per_series={per:.0} index_estimate_bytes_per_series={:.0}",
        rss - base_rss,
        own / 1024,
        db.index_bytes() as f64 / N as f64
    );
    db.close().expect("close");
}

/// 50,000 node-like series scraped every 5 s for 30 minutes of data time, under the default
/// flush policy (in data time, as `phase_live`): bytes written per sample over the whole run
/// (open..close, `/proc/self/io` write_bytes), the figure the issue gives Prometheus 19.0 for.
fn phase_w50k(dir: &Path) {
    const N: usize = 50_000;
    const SCRAPES: i64 = 360;
    let labels: Vec<Labels> = (0..N)
        .map(|i| {
            Labels::from_pairs([
                ("__name__", format!("node_metric_{}", i % 400)),
                ("instance", format!("pi-{:03}.lan:9100", i / 5000)),
                ("job", "node".to_string()),
                ("series", format!("{i}")),
            ])
        })
        .collect();
    // Deterministic values: a third counters growing by small integers, a third two-decimal
    // gauges on a random walk, a third byte counters growing by thousands.
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut vals: Vec<i64> = (0..N).map(|_| (next() % 1_000_000) as i64).collect();
    let wb0 = write_bytes();
    let db = Tsdb::open(opts(dir)).expect("open");
    let mut refs = vec![SeriesRef(0); N];
    let t0 = 1_800_000_000_000i64;
    let mut last_flush = i64::MIN;
    let c0 = cpu_secs();
    for k in 0..SCRAPES {
        let t = t0 + k * 5000;
        let mut a = db.appender();
        for (i, l) in labels.iter().enumerate() {
            let r = next();
            let v = match i % 3 {
                0 => {
                    vals[i] += (r % 8) as i64;
                    vals[i] as f64
                }
                1 => {
                    vals[i] += (r % 5) as i64 - 2;
                    vals[i] as f64 / 100.0
                }
                _ => {
                    vals[i] += (r % 20_000) as i64;
                    vals[i] as f64
                }
            };
            refs[i] = a.append(refs[i], l, t, v).expect("append");
        }
        a.commit().expect("commit");
        let since = Duration::from_millis((t - last_flush).max(0) as u64);
        if last_flush == i64::MIN || db.flush_due(since) {
            db.flush().expect("flush");
            last_flush = t;
        }
    }
    db.close().expect("close");
    let total = N as f64 * SCRAPES as f64;
    println!(
        "RESULT w50k series={N} interval_s=5 minutes={} samples={total} written_b_per_sample={:.3} disk_b_per_sample={:.3} cpu_us_per_sample={:.3}",
        SCRAPES * 5 / 60,
        (write_bytes() - wb0) as f64 / total,
        db.disk_bytes() as f64 / total,
        (cpu_secs() - c0) * 1e6 / total,
    );
}

fn phase_crash_child(dir: &Path) {
    let db = Tsdb::open(opts(dir)).expect("open");
    let labels: Vec<Labels> = (0..2000)
        .map(|i| Labels::from_pairs([("__name__", "crash_bench"), ("i", &i.to_string())]))
        .collect();
    let mut refs = vec![SeriesRef(0); labels.len()];
    let t0 = 1_800_000_000_000i64;
    // 2 h flushed, then 1 M committed samples that never get flushed.
    let mut k = 0i64;
    let mut unflushed = 0usize;
    loop {
        let mut a = db.appender();
        for (i, l) in labels.iter().enumerate() {
            refs[i] = a
                .append(refs[i], l, t0 + k * 15_000, (k + i as i64) as f64)
                .expect("append");
        }
        a.commit().expect("commit");
        k += 1;
        if k <= 480 {
            db.flush().expect("flush");
        } else {
            unflushed += labels.len();
            if unflushed >= 1_000_000 {
                break;
            }
        }
    }
    println!("RESULT crash_child unflushed={unflushed}");
    std::process::abort();
}

fn phase_import(file: &Path, dir: &Path) {
    let c0 = cpu_secs();
    let wb0 = write_bytes();
    let s = import_openmetrics(file, opts(dir)).expect("import");
    let wb = write_bytes() - wb0;
    println!(
        "RESULT import samples={} wall_s={:.2} cpu_s={:.2} peak_rss_mib={} disk_b_per_sample={:.3} engine_written_b_per_sample={:.3} kernel_write_bytes_per_sample={:.3}",
        s.samples,
        s.elapsed.as_secs_f64(),
        cpu_secs() - c0,
        hwm_kib() / 1024,
        s.disk_bytes as f64 / s.samples as f64,
        s.bytes_written as f64 / s.samples as f64,
        wb as f64 / s.samples as f64
    );
}

fn child(args: &[&str]) -> String {
    let exe = std::env::current_exe().expect("exe");
    let out = Command::new(exe).args(args).output().expect("run phase");
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    s.lines()
        .filter(|l| l.starts_with("RESULT"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs gen.py with `args` into `tmp/name`.
fn gen_file(tmp: &Path, name: &str, args: &[&str]) -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let gen = std::env::var("EDGEPROM_GEN_PY")
        .map(PathBuf::from)
        .ok()
        .or_else(|| {
            ["../shared/bench/gen.py", "../../shared/bench/gen.py"]
                .iter()
                .map(|r| root.join(r))
                .find(|p| p.exists())
        })?;
    let out = tmp.join(name);
    let ok = Command::new("python3")
        .arg(gen)
        .args(args)
        .arg("-o")
        .arg(&out)
        .status()
        .ok()?
        .success();
    ok.then_some(out)
}

/// One VictoriaMetrics import of `file` into a fresh data directory under `tmp`: (ok, wall s,
/// peak RSS MiB, CPU s), or `None` when the binary cannot be started.
fn vm_import(file: &Path, tmp: &Path, run: usize) -> Option<(bool, f64, u64, f64)> {
    let vm_dir = tmp.join(format!("vm{run}"));
    let port = 18_000 + (std::process::id() % 1000) as u16;
    let mut vm = Command::new("victoria-metrics")
        .arg(format!("-storageDataPath={}", vm_dir.display()))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg("-retentionPeriod=100y")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if Command::new("curl")
            .args(["-sf", &format!("{url}/health")])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let stat = |pid: u32| -> f64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let rest = s.rsplit(')').next().unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let t = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
        (t(11) + t(12)) / 100.0
    };
    let c0 = stat(vm.id());
    let s = Instant::now();
    // -T streams the file (`--data-binary @file` would load 1.15 GB into curl first).
    let st = Command::new("curl")
        .args(["-sf", "-X", "POST", "-H", "Content-Type: text/plain", "-T"])
        .arg(file)
        .arg(format!("{url}/api/v1/import/prometheus"))
        .status();
    let wall = s.elapsed().as_secs_f64();
    let cpu = stat(vm.id()) - c0;
    let hwm = proc_field(&format!("/proc/{}/status", vm.id()), "VmHWM:");
    let _ = vm.kill();
    let _ = vm.wait();
    let _ = std::fs::remove_dir_all(&vm_dir);
    Some((st.is_ok_and(|s| s.success()), wall, hwm / 1024, cpu))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// `--import-vs-vm FILE [RUNS]`: edgeprom's import and VictoriaMetrics's, alternately, RUNS
/// times each in the same command; prints every run and the medians.
fn import_vs_vm(file: &Path, runs: usize, tmp: &Path) {
    let fs = file.to_string_lossy().to_string();
    let (mut ew, mut ec, mut er, mut vw, mut vc, mut vr) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        let dir = tmp.join(format!("imp{run}"));
        let out = child(&["--phase", "import", &fs, &dir.to_string_lossy()]);
        println!("{out}");
        let field = |k: &str| -> f64 {
            out.split_whitespace()
                .find_map(|w| w.strip_prefix(k)?.parse().ok())
                .unwrap_or(f64::NAN)
        };
        ew.push(field("wall_s="));
        ec.push(field("cpu_s="));
        er.push(field("peak_rss_mib="));
        let _ = std::fs::remove_dir_all(&dir);
        match vm_import(file, tmp, run) {
            Some((ok, wall, hwm, cpu)) => {
                println!(
                    "RESULT victoriametrics import_ok={ok} wall_s={wall:.2} cpu_s={cpu:.2} peak_rss_mib={hwm}"
                );
                vw.push(wall);
                vc.push(cpu);
                vr.push(hwm as f64);
            }
            None => println!("RESULT victoriametrics skipped: victoria-metrics not found"),
        }
    }
    let (mw, mv) = (median(ew), median(vw));
    println!(
        "MEDIAN over {runs} runs: edgeprom wall_s={mw:.2} cpu_s={:.2} peak_rss_mib={:.0} | VictoriaMetrics wall_s={mv:.2} cpu_s={:.2} peak_rss_mib={:.0} | wall ratio edgeprom/VM {:.2}   [faster than VictoriaMetrics, < 200 MiB peak]",
        median(ec),
        median(er),
        median(vc),
        median(vr),
        mw / mv
    );
}

fn peers(file: &Path, tmp: &Path) {
    match vm_import(file, tmp, 0) {
        Some((ok, wall, hwm, cpu)) => println!(
            "RESULT victoriametrics import_ok={ok} wall_s={wall:.2} cpu_s={cpu:.2} peak_rss_mib={hwm}"
        ),
        None => println!("RESULT victoriametrics skipped: victoria-metrics not found"),
    }
    // promtool, under /usr/bin/time for its peak RSS.
    let out = Command::new("/usr/bin/time")
        .args([
            "-f",
            "TIME %e %M",
            "promtool",
            "tsdb",
            "create-blocks-from",
            "openmetrics",
        ])
        .arg(file)
        .arg(tmp.join("prom"))
        .stdout(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let line = err
                .lines()
                .find(|l| l.starts_with("TIME "))
                .unwrap_or("TIME ? 0");
            let f: Vec<&str> = line.split_whitespace().collect();
            let kib: u64 = f.get(2).and_then(|x| x.parse().ok()).unwrap_or(0);
            println!(
                "RESULT promtool ok={} wall_s={} peak_rss_mib={}",
                o.status.success(),
                f.get(1).unwrap_or(&"?"),
                kib / 1024
            );
        }
        Err(e) => println!("RESULT promtool skipped: {e}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    match a.as_slice() {
        ["--phase", "live", f, d, ms] => {
            return phase_live(Path::new(f), Path::new(d), ms.parse().unwrap_or(10_000))
        }
        ["--phase", "rss", d] => return phase_rss(Path::new(d)),
        ["--phase", "w50k", d] => return phase_w50k(Path::new(d)),
        ["--phase", "crash", d] => return phase_crash_child(Path::new(d)),
        ["--phase", "import", f, d] => return phase_import(Path::new(f), Path::new(d)),
        ["--phase", "peers", f, d] => return peers(Path::new(f), Path::new(d)),
        _ => {}
    }
    if let ["--import-vs-vm", f, rest @ ..] = a.as_slice() {
        let runs = rest.first().and_then(|r| r.parse().ok()).unwrap_or(3);
        let tmp = tempfile::Builder::new()
            .prefix("edgeprom-bench")
            .tempdir_in(std::env::temp_dir())
            .expect("tmp");
        return import_vs_vm(Path::new(f), runs, tmp.path());
    }
    let full = a
        .iter()
        .position(|x| *x == "--full")
        .and_then(|i| a.get(i + 1))
        .map(PathBuf::from);
    let with_peers = a.contains(&"--peers");
    let tmp = tempfile::Builder::new()
        .prefix("edgeprom-bench")
        .tempdir_in(std::env::temp_dir())
        .expect("tmp");
    let t = |n: &str| tmp.path().join(n).to_string_lossy().to_string();
    let Some(small) = gen_file(
        tmp.path(),
        "small.om",
        &["--preset", "small", "--seed", "42"],
    ) else {
        println!("gen.py not found: set EDGEPROM_GEN_PY");
        return;
    };
    let small_s = small.to_string_lossy().to_string();
    println!("# edgeprom storage benchmark (goals from issue 4 in brackets)");
    // 60 s is the default flush interval; 10 s flushes every 15 s scrape.
    for ms in ["10000", "30000", "60000"] {
        println!(
            "{}   [bytes written <= 1.5/sample]",
            child(&[
                "--phase",
                "live",
                &small_s,
                &t(&format!("live-small-{ms}")),
                ms
            ])
        );
    }
    // The issue's Pi-like row: 2,000 series scraped every second for 5 minutes, default flush
    // policy (early flushes every 10 s at this rate).
    if let Some(pi) = gen_file(
        tmp.path(),
        "pi1s.om",
        &["--hours", "0.0834", "--interval", "1", "--seed", "42"],
    ) {
        let ps = pi.to_string_lossy().to_string();
        println!(
            "{}   [1 s scrapes, 5 min: bytes written <= 1.5/sample]",
            child(&["--phase", "live", &ps, &t("live-pi"), "60000"])
        );
    }
    if let Some(f) = &full {
        let fs = f.to_string_lossy().to_string();
        for ms in ["60000", "10000"] {
            println!(
                "{}   [disk <= 0.7 B/sample on the 24 h file; written <= 1.5]",
                child(&["--phase", "live", &fs, &t(&format!("live-full-{ms}")), ms])
            );
        }
    }
    println!(
        "{}   [< 1 kB per active series at 50,000]",
        child(&["--phase", "rss", &t("rss")])
    );
    println!(
        "{}   [Prometheus 2.42 with 2-minute blocks: 19.0 (issue 4)]",
        child(&["--phase", "w50k", &t("w50k")])
    );
    let cdir = t("crash");
    println!("{}", child(&["--phase", "crash", &cdir]));
    let s = Instant::now();
    let db = Tsdb::open(opts(Path::new(&cdir))).expect("open after crash");
    println!(
        "RESULT restart_after_crash open_ms={:.1} corruptions={}   [< 1 s]",
        s.elapsed().as_secs_f64() * 1000.0,
        db.corruptions()
    );
    drop(db);
    let imp = full.clone().unwrap_or(small.clone());
    let is = imp.to_string_lossy().to_string();
    println!(
        "{}   [faster than VictoriaMetrics, < 200 MiB peak]",
        child(&["--phase", "import", &is, &t("import")])
    );
    if with_peers {
        peers(&imp, tmp.path());
    }
}
