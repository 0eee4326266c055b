//! Whole-binary fault tests (issue 11, "Faults"): the data directory's file system fills up or
//! turns read-only while edgeprom ingests, or the directory cannot be used at all at start-up.
//!
//! The file-system cases mount a small tmpfs (root only; without the right to mount they print
//! `SKIP` and pass). Each test unmounts and kills what it started through drop guards, also
//! when it fails. What every case checks: writes fail cleanly (counted in a metric and logged),
//! `/-/ready` stays up, queries keep answering what is stored, and when the fault is removed
//! ingestion resumes by itself without losing any sample that was accepted before.

mod common;

use common::{metric_value, write_file, Server};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A tmpfs mounted on a fresh directory; unmounted (lazily, so a live process cannot block it)
/// and removed on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount's syntax: `512k`, `16m`), or `None` when mounting is
    /// refused (not root): the caller skips.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755")])
            .arg("tmpfs")
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                eprintln!(
                    "SKIP: cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIP: cannot run mount(8): {e}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `mount -o remount,OPTS`. Linux refuses a read-only remount while a file is open for
    /// writing (EBUSY); edgeprom holds none between flushes, so a few tries find a gap.
    fn remount(&self, opts: &str) {
        let mut err = String::new();
        for _ in 0..100 {
            let out = Command::new("mount")
                .args(["-o", &format!("remount,{opts}")])
                .arg(self.path())
                .output()
                .unwrap();
            if out.status.success() {
                return;
            }
            err = String::from_utf8_lossy(&out.stderr).into_owned();
            std::thread::sleep(Duration::from_millis(30));
        }
        panic!("remount {opts}: {err}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

/// A loopback target serving `fault_seq N` (N counts the scrapes served) and `noise` series
/// whose values are pseudo-random, so that they compress badly and fill a disk quickly.
fn start_target(noise: usize) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let seq = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        let mut rng = 0x9E3779B97F4A7C15u64;
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            if c.read(&mut buf).unwrap_or(0) == 0 {
                continue;
            }
            let n = seq.fetch_add(1, Ordering::SeqCst) + 1;
            let mut body = format!("# TYPE fault_seq counter\nfault_seq {n}\n");
            for i in 0..noise {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                body.push_str(&format!(
                    "fault_noise{{i=\"{i}\"}} {}\n",
                    (rng >> 11) as f64 / 7.0
                ));
            }
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = c.write_all(resp.as_bytes());
        }
    });
    addr
}

/// A config scraping edgeprom itself (job `self`) and the target (job `fault`) every 100 ms.
fn config(dir: &Path, self_addr: &str, target: &str) {
    write_file(
        dir,
        "edgeprom.yml",
        &format!(
            "global:\n  scrape_interval: 100ms\n  scrape_timeout: 90ms\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['{self_addr}']\n  - job_name: fault\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    );
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Every stored `(t_ms, value)` of `fault_seq`, through the query API.
fn stored(s: &Server) -> BTreeSet<(i64, u64)> {
    let (code, body) = s.get(&format!(
        "/api/v1/query?query=fault_seq%5B1h%5D&time={:.3}",
        now_s() + 1.0
    ));
    assert_eq!(code, 200, "range selector query: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut out = BTreeSet::new();
    for series in v["data"]["result"].as_array().unwrap() {
        for p in series["values"].as_array().unwrap() {
            let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
            let val: f64 = p[1].as_str().unwrap().parse().unwrap();
            out.insert((t, val as u64));
        }
    }
    out
}

fn metric(s: &Server, name: &str) -> f64 {
    let (_, text) = s.get("/metrics");
    metric_value(&text, name).unwrap_or(-1.0)
}

/// Runs edgeprom on a tmpfs, applies `fault`, checks it degrades cleanly, applies `heal` and
/// checks it recovers without losing anything accepted.
fn fault_and_recover(
    name: &str,
    size: &str,
    noise: usize,
    fault: &dyn Fn(&Tmpfs),
    heal: &dyn Fn(&Tmpfs),
    log_says: &str,
) {
    let Some(fs) = Tmpfs::mount(size) else { return };
    let data = fs.path().join("data");
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let target = start_target(noise);
    config(dir.path(), &format!("127.0.0.1:{port}"), &target);
    let s = Server::start_in_at(
        dir,
        port,
        &[
            "--config.file=edgeprom.yml",
            &format!("--storage.tsdb.path={}", data.display()),
            "--storage.tsdb.flush-interval=200ms",
            "--storage.tsdb.retention.time=1d",
        ],
    );
    s.wait_for(
        &format!("{name}: first flushes"),
        Duration::from_secs(20),
        |s| metric(s, "edgeprom_storage_flushes_total") >= 3.0 && !stored(s).is_empty(),
    );

    fault(&fs);
    s.wait_for(
        &format!("{name}: a failing write counted"),
        Duration::from_secs(60),
        |s| metric(s, "edgeprom_storage_write_failures_total") >= 1.0,
    );
    s.wait_for(
        &format!("{name}: samples refused while writes fail"),
        Duration::from_secs(20),
        |s| metric(s, "edgeprom_storage_rejected_samples_total") >= 1.0,
    );
    assert_eq!(
        metric(&s, "edgeprom_storage_write_failing"),
        1.0,
        "{name}: failing gauge"
    );
    assert_eq!(s.get("/-/ready").0, 200, "{name}: /-/ready while failing");
    assert_eq!(
        s.get("/-/healthy").0,
        200,
        "{name}: /-/healthy while failing"
    );
    let log = s.log();
    assert!(
        log.contains("flush failed") && log.contains(log_says),
        "{name}: the log must say what failed ({log_says:?}); log:\n{log}"
    );
    assert!(!log.contains("panicked"), "{name}: panic in log:\n{log}");
    // Queries answer what is stored; this set must survive the fault.
    let accepted = stored(&s);
    assert!(!accepted.is_empty(), "{name}: stored data not queryable");
    let newest_before = accepted.iter().map(|x| x.0).max().unwrap();
    // Still failing a little later (no silent progress), and still answering.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(metric(&s, "edgeprom_storage_write_failing"), 1.0);
    let still = stored(&s);
    assert!(
        accepted.is_subset(&still),
        "{name}: data vanished while failing"
    );

    heal(&fs);
    s.wait_for(
        &format!("{name}: ingestion resumes by itself"),
        Duration::from_secs(30),
        |s| {
            metric(s, "edgeprom_storage_write_failing") == 0.0
                && stored(s).iter().any(|x| x.0 > newest_before + 1000)
        },
    );
    let after = stored(&s);
    let lost: Vec<_> = accepted.difference(&after).collect();
    assert!(lost.is_empty(), "{name}: accepted samples lost: {lost:?}");
    eprintln!(
        "{name}: {} samples accepted before the fault, {} after recovery, {} writes failed, {} samples refused",
        accepted.len(),
        after.len(),
        metric(&s, "edgeprom_storage_write_failures_total"),
        metric(&s, "edgeprom_storage_rejected_samples_total"),
    );

    // And on disk: a clean restart still has every one of them.
    let (st, _, dir) = s.stop(Duration::from_secs(20));
    assert!(st.success(), "{name}: exit status after recovery {st}");
    let s = Server::start_in_at(
        dir,
        port,
        &[
            "--config.file=edgeprom.yml",
            &format!("--storage.tsdb.path={}", data.display()),
            "--storage.tsdb.retention.time=1d",
        ],
    );
    let reopened = stored(&s);
    let lost: Vec<_> = after.difference(&reopened).collect();
    assert!(
        lost.is_empty(),
        "{name}: samples lost across the restart: {lost:?}; log:\n{}",
        s.log()
    );
    drop(s);
    drop(fs);
}

#[test]
fn full_disk_refuses_cleanly_and_resumes_when_space_returns() {
    fault_and_recover(
        "full disk",
        "512k",
        400,
        &|_| {}, // the scrapes fill the 512 KiB by themselves
        &|fs| fs.remount("size=64m"),
        "No space left on device",
    );
}

#[test]
fn read_only_remount_refuses_cleanly_and_resumes_when_writable() {
    fault_and_recover(
        "read-only",
        "64m",
        20,
        &|fs| fs.remount("ro"),
        &|fs| fs.remount("rw"),
        "Read-only file system",
    );
}

/// The unprivileged user the binary runs as.
const NOBODY: &str = "65534";

/// Runs edgeprom as `nobody` until it exits (or kills it after 20 s): (exit code, stderr).
fn run_as_nobody(cwd: &Path, data: &Path) -> (Option<i32>, String) {
    let mut child = Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            env!("CARGO_BIN_EXE_edgeprom"),
        ])
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!(
            "--web.listen-address=127.0.0.1:{}",
            common::free_port()
        ))
        .arg("--config.file=edgeprom.yml")
        .current_dir(cwd)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("setpriv");
    let t = std::time::Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    (code, err)
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown_nobody(p: &Path) {
    let st = Command::new("chown")
        .arg(format!("{NOBODY}:{NOBODY}"))
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

/// A data directory edgeprom may not use stops start-up with an error naming the path and a
/// non-zero exit code, as Prometheus does ("opening storage failed"), and never panics.
#[test]
fn data_dir_with_bad_permissions_fails_start_up_naming_the_path() {
    // Root ignores file permissions, so the binary runs as nobody; that needs root.
    if !is_root() {
        eprintln!("SKIP: needs root to run the binary as another user");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIP: setpriv(1) not installed");
        return;
    }
    type Setup = fn(&Path) -> PathBuf;
    // (case, prepare the directory and return the data path, what the error names)
    let cases: &[(&str, Setup, &str)] = &[
        (
            "parent not writable, data dir missing",
            |root| root.join("locked").join("data"),
            "locked/data",
        ),
        (
            "data dir owned by root, mode 0755",
            |root| {
                let d = root.join("data");
                std::fs::create_dir(&d).unwrap();
                d
            },
            "data",
        ),
        (
            "data dir mode 0000",
            |root| {
                let d = root.join("data");
                std::fs::create_dir(&d).unwrap();
                chown_nobody(&d);
                chmod(&d, 0o000);
                d
            },
            "data",
        ),
        (
            "series log not readable",
            |root| {
                let d = root.join("data");
                std::fs::create_dir(&d).unwrap();
                chown_nobody(&d);
                let f = d.join("series.log");
                std::fs::write(&f, b"").unwrap();
                chmod(&f, 0o600);
                d
            },
            "series.log",
        ),
        (
            "unfinished segment not readable",
            |root| {
                let d = root.join("data");
                std::fs::create_dir(&d).unwrap();
                chown_nobody(&d);
                let f = d.join("0000000003.live");
                std::fs::write(&f, b"EPSEG\0").unwrap();
                chmod(&f, 0o600);
                d
            },
            "0000000003.live",
        ),
    ];
    for (case, setup, names) in cases {
        let root = tempfile::tempdir().unwrap();
        chmod(root.path(), 0o755);
        std::fs::create_dir(root.path().join("locked")).unwrap();
        write_file(root.path(), "edgeprom.yml", "scrape_configs: []\n");
        let data = setup(root.path());
        let (code, err) = run_as_nobody(root.path(), &data);
        assert_eq!(code, Some(1), "{case}: exit code; stderr:\n{err}");
        assert!(
            err.contains(names) && err.contains("Permission denied"),
            "{case}: the error must name {names:?} and the cause; stderr:\n{err}"
        );
        assert!(!err.contains("panicked"), "{case}: panic:\n{err}");
        // Let the temp dir be removed (the data dir may not exist).
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755));
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
