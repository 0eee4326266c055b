//! Benchmark: CPU time and allocations per node collection, beside node_exporter's CPU per
//! scrape measured in the same run, plus the sysinfo alternative for the data both can give.
//!
//! Run: `cargo bench --bench node` (env: `NODE_BENCH_N` collections, default 300;
//! `NODE_EXPORTER` path to the peer binary, default `prometheus-node-exporter` on `$PATH`).
//!
//! edgeprom's figure is the thread CPU time of `NodeExporter::collect` (median of N) with a
//! counting global allocator; node_exporter's is the utime+stime growth of its process (from
//! /proc/PID/stat) over N HTTP scrapes divided by N, so it includes its HTTP handling, which
//! edgeprom's figure does not. Both run the same collectors on the same machine.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use edgeprom::node::{NodeExporter, NodeOptions, COLLECTORS};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: delegates to the system allocator; only adds relaxed counters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(l.size() as u64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(n as u64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn thread_cpu() -> Duration {
    // SAFETY: timespec is plain old data filled by the call.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid clock id and pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median thread-CPU seconds, allocations and bytes per call of `f`.
fn measure(n: usize, mut f: impl FnMut()) -> (f64, f64, f64) {
    for _ in 0..5 {
        f();
    }
    let mut cpu = Vec::with_capacity(n);
    let (a0, b0) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    for _ in 0..n {
        let t = thread_cpu();
        f();
        cpu.push((thread_cpu() - t).as_secs_f64());
    }
    let (a1, b1) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    (
        median(&mut cpu),
        (a1 - a0) as f64 / n as f64,
        (b1 - b0) as f64 / n as f64,
    )
}

fn find_peer() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("NODE_EXPORTER") {
        return Some(p.into());
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("prometheus-node-exporter"))
        .find(|p| p.is_file())
}

fn scrape(port: u16) -> Option<usize> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut body = Vec::new();
    s.read_to_end(&mut body).ok()?;
    body.starts_with(b"HTTP/1.").then_some(body.len())
}

/// utime + stime of `pid` in seconds.
fn proc_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the comm field: state is index 0, utime 11, stime 12.
    let ticks: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

fn main() {
    let n: usize = std::env::var("NODE_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let tf = tempfile::tempdir().expect("temp dir");
    std::fs::write(tf.path().join("cron.prom"), "cron_ok{job=\"backup\"} 1\n").expect("write");
    let same_as_peer: Vec<&str> = COLLECTORS
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| !c.starts_with("edgeprom"))
        .collect();

    let opts = |enabled: &[&str]| NodeOptions {
        textfile_dir: Some(tf.path().to_path_buf()),
        enabled: enabled.iter().map(|s| s.to_string()).collect(),
        ..NodeOptions::default()
    };
    let exp = NodeExporter::new(opts(&same_as_peer));
    let mut out = String::new();
    let (ours_cpu, ours_allocs, ours_bytes) = measure(n, || {
        out.clear();
        exp.collect(&mut out);
    });
    let out_len = out.len();
    let all: Vec<&str> = COLLECTORS.iter().map(|(c, _)| *c).collect();
    let exp_all = NodeExporter::new(opts(&all));
    let (all_cpu, all_allocs, _) = measure(n, || {
        out.clear();
        exp_all.collect(&mut out);
    });

    // Per collector, to see where the time goes.
    let mut per = Vec::new();
    for c in &all {
        let e = NodeExporter::new(opts(&[c]));
        let (cpu, allocs, _) = measure(n.min(100), || {
            out.clear();
            e.collect(&mut out);
        });
        per.push((*c, cpu, allocs));
    }

    // sysinfo for what it can give (memory, CPU, load, boot time) vs the equivalent collectors.
    let direct = NodeExporter::new(opts(&["cpu", "loadavg", "meminfo", "stat"]));
    let (direct_cpu, direct_allocs, _) = measure(n, || {
        out.clear();
        direct.collect(&mut out);
    });
    let mut sys = sysinfo::System::new();
    let (sysinfo_cpu, sysinfo_allocs, _) = measure(n, || {
        sys.refresh_memory();
        sys.refresh_cpu_all();
        std::hint::black_box((
            sys.total_memory(),
            sysinfo::System::load_average().one,
            sysinfo::System::boot_time(),
        ));
    });

    println!(
        "node collection, {n} runs, same collectors as the peer ({} collectors):",
        same_as_peer.len()
    );
    println!(
        "  edgeprom      median CPU {:8.1} us/collection, {:7.1} allocations ({:.0} bytes)/collection, {out_len} bytes of text",
        ours_cpu * 1e6,
        ours_allocs,
        ours_bytes
    );
    println!(
        "  edgeprom +rpi median CPU {:8.1} us/collection, {:7.1} allocations/collection",
        all_cpu * 1e6,
        all_allocs
    );
    for (c, cpu, allocs) in &per {
        println!("    {c:<14} {:8.1} us  {:7.1} allocs", cpu * 1e6, allocs);
    }
    println!(
        "  sysinfo (memory+cpu refresh, load, boot time): {:8.1} us, {:7.1} allocs; direct cpu+loadavg+meminfo+stat collectors: {:8.1} us, {:7.1} allocs",
        sysinfo_cpu * 1e6,
        sysinfo_allocs,
        direct_cpu * 1e6,
        direct_allocs
    );

    let Some(peer) = find_peer() else {
        println!("  node_exporter: not found (install prometheus-node-exporter or set NODE_EXPORTER); no ratio");
        return;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let mut args = vec![
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--collector.disable-defaults".to_string(),
        format!("--collector.textfile.directory={}", tf.path().display()),
        "--collector.netdev.device-exclude=".to_string(),
        "--log.level=error".to_string(),
    ];
    args.extend(same_as_peer.iter().map(|c| format!("--collector.{c}")));
    let mut child = Command::new(&peer)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start node_exporter");
    let deadline = Instant::now() + Duration::from_secs(15);
    while scrape(port).is_none() {
        assert!(Instant::now() < deadline, "node_exporter did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..5 {
        scrape(port);
    }
    let c0 = proc_cpu(child.id());
    let t0 = Instant::now();
    let mut bytes = 0;
    for _ in 0..n {
        bytes = scrape(port).unwrap_or(0);
    }
    let wall = t0.elapsed().as_secs_f64() / n as f64;
    let peer_cpu = (proc_cpu(child.id()) - c0) / n as f64;
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "  node_exporter CPU {:8.1} us/scrape (utime+stime over {n} scrapes), {:.1} us wall/scrape, {bytes} bytes/response",
        peer_cpu * 1e6,
        wall * 1e6
    );
    println!(
        "  ratio edgeprom/node_exporter CPU: {:.3} (goal <= 0.333)",
        ours_cpu / peer_cpu
    );
}
